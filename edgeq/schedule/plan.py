"""The memory schedule of a model, composed once: execution-order search, patch search and arena
planning, as ``edgeq plan-memory`` reports it and the C backend generates its library from it.

Steps, each a module of this package:

1. ``arena.plan_memory`` in the graph's own order (first fit): the layer-by-layer baseline;
2. ``order.search_order``: the topological order with the lowest peak of live bytes, planned
   with exact placement on small graphs;
3. ``patch.search``: the best patch plan of the leading stage within the MAC budget, kept only
   when it lowers the layer-by-layer peak;
4. the schedule that runs: the patch stage first (when there is a plan), then the searched order,
   planned with the patch scratch and exact placement.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgeq.ir.graph import Graph, Node
from edgeq.schedule.arena import Plan, plan_memory
from edgeq.schedule.order import search_order
from edgeq.schedule.patch import PatchPlan, search


@dataclass(frozen=True)
class Schedule:
    layer_by_layer: Plan          # the graph's order, first fit
    order: list[Node]             # the searched order (the graph's when the search gave up)
    searched: bool                # False: the search passed its state budget
    ordered: Plan                 # ``order``, exact placement, no patches
    patch: PatchPlan | None       # None: no patch plan lowers the peak within the budget
    execution_order: list[Node]   # what runs: the patch stage first, then ``order``
    plan: Plan                    # the arena of ``execution_order`` (patch tiles included)

    @property
    def best_peak_bytes(self) -> int:
        """The smallest peak any of these schedules reaches."""
        return min([self.layer_by_layer.arena_bytes, self.ordered.arena_bytes]
                   + ([self.patch.peak_bytes] if self.patch else []))


def plan_schedule(graph: Graph, max_overhead: float = 0.20, patch: bool = True,
                  bytes_per_element: int | None = None) -> Schedule:
    """``max_overhead``: patch plans may recompute at most this fraction more MACs;
    ``bytes_per_element``: plan each value at this element size (1: a float graph as the int8
    model it becomes) instead of its own."""
    bpe = bytes_per_element
    layer_by_layer = plan_memory(graph, bytes_per_element=bpe)
    order, searched = search_order(graph, bytes_per_element=bpe)
    ordered = plan_memory(graph, bytes_per_element=bpe, order=order, exact=True)
    pp = search(graph, max_overhead, bytes_per_element=bpe) if patch else None
    if pp is None:
        return Schedule(layer_by_layer, order, searched, ordered, None, order, ordered)
    stage = list(pp.stage)
    run_order = stage + [n for n in order if n not in stage]
    plan = plan_memory(graph, bytes_per_element=bpe, order=run_order, patch=pp, exact=True)
    return Schedule(layer_by_layer, order, searched, ordered, pp, run_order, plan)

