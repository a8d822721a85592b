"""Patch-based execution of a graph's leading stage (MCUNetV2, Lin et al. 2021).

The first layers of a vision CNN hold the largest activations. Running them patch by patch cuts
peak memory: split the output of a chosen layer (the *split layer*) into an n x n grid, trace each
patch back through the stage to the input region it needs, and run the stage on that region only,
writing each patch into the split layer's full output. Memory then holds the stage input, one
patch's intermediate tiles, and the split output, instead of whole intermediate maps.

Receptive field back-propagation (per axis, output rows ``[a, b)`` of a conv/pool with kernel k,
stride s, dilation d, padding p_top over an input of H rows)::

    needed input rows = [a*s - p_top, (b-1)*s - p_top + (k-1)*d + 1)   clipped to [0, H)

and the tile is padded only where the needed region leaves the real input (``pad_top = 0 -
start`` if start < 0, likewise at the bottom), so every patch computes exactly what whole-layer
execution computes there: patch execution is bit-exact (tested). Element-wise ops keep the region.
Overlapping regions are computed more than once: the MAC overhead is reported and bounded.

The stage must be a chain: each node reads the previous node's output (plus constants) and
nothing else reads it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edgeq.ir.graph import Graph, Node
from edgeq.ops import has
from edgeq.ops.base import KERNEL
from edgeq.ops.cost import node_macs
from edgeq.runtime.reference import check_feeds, run_graph
from edgeq.schedule.arena import plan_memory


@dataclass
class PatchPlan:
    split: int                 # index of the split layer (last node of the stage)
    n: int                     # n x n patches
    peak_bytes: int            # peak memory while the stage runs patch by patch
    stage_macs: int
    patch_macs: int
    # what the arena planner needs: the stage's nodes and the tile scratch they use
    stage: tuple[Node, ...] = field(default=(), repr=False, compare=False)
    scratch_bytes: int = 0
    bytes_per_element: int | None = None

    @property
    def overhead(self) -> float:
        return self.patch_macs / self.stage_macs - 1 if self.stage_macs else 0.0


def chain_prefix(graph: Graph) -> list[Node]:
    """The leading nodes that form a single chain of 4-D spatial or point-wise ops."""
    out: list[Node] = []
    prev = graph.inputs[0] if len(graph.inputs) == 1 else None
    for node in graph.nodes:
        acts = [v for v in node.inputs if v is not None and not v.is_const]
        if prev is None or acts != [prev] or len(node.outputs[0].shape) != 4:
            break
        if not (has(node.op, "spatial") or has(node.op, "elementwise")):
            break
        if has(node.op, "spatial") and node.attrs.get("ceil_mode"):
            break
        if node.attrs.get("count_include_pad") and any(node.attrs["pads"]):  # average pools
            break
        out.append(node)
        prev = node.outputs[0]
        if len(prev.uses) != 1 or prev in graph.outputs:
            break
    return out


def _back(node: Node, rows: tuple[int, int], cols: tuple[int, int]):
    """Input region for an output region, and the padding the tile needs at real borders."""
    if not has(node.op, "spatial"):
        return rows, cols, (0, 0, 0, 0)
    a = node.attrs
    k, s = a["kernel_shape"], a["strides"]
    d = a.get("dilations", [1, 1])
    p = a["pads"]
    h, w = node.inputs[0].shape[2:]
    out = []
    pads = []
    for (lo, hi), ki, si, di, pt, size in ((rows, k[0], s[0], d[0], p[0], h),
                                           (cols, k[1], s[1], d[1], p[1], w)):
        start = lo * si - pt
        stop = (hi - 1) * si - pt + (ki - 1) * di + 1
        out.append((max(start, 0), min(stop, size)))
        pads.append((max(0, -start), max(0, stop - size)))
    return out[0], out[1], (pads[0][0], pads[1][0], pads[0][1], pads[1][1])


def regions(stage: list[Node], rows: tuple[int, int], cols: tuple[int, int]):
    """Per node (from the last back to the first): output region, input region, tile pads."""
    res = []
    for node in reversed(stage):
        in_r, in_c, pads = _back(node, rows, cols)
        res.append((node, rows, cols, in_r, in_c, pads))
        rows, cols = in_r, in_c
    return list(reversed(res))


def _splits(size: int, n: int) -> list[tuple[int, int]]:
    edges = [round(i * size / n) for i in range(n + 1)]
    return [(edges[i], edges[i + 1]) for i in range(n) if edges[i + 1] > edges[i]]


def run_stage_patched(stage: list[Node], x: np.ndarray, n: int, env=None) -> np.ndarray:
    """Execute the stage patch by patch; returns the split layer's full output."""
    last = stage[-1].outputs[0]
    out = np.zeros(last.shape, last.dtype.numpy)
    for rows in _splits(last.shape[2], n):
        for cols in _splits(last.shape[3], n):
            plan = regions(stage, rows, cols)
            node0 = plan[0]
            tile = x[:, :, node0[3][0]:node0[3][1], node0[4][0]:node0[4][1]]
            for node, _, _, _, _, pads in plan:
                attrs = dict(node.attrs)
                if has(node.op, "spatial"):
                    attrs["pads"] = list(pads)
                args = [tile] + [v.const for v in node.inputs[1:] if v is not None]
                tile = KERNEL[node.op](attrs, *args)[0]
            out[:, :, rows[0]:rows[1], cols[0]:cols[1]] = tile
    return out


def run_with_plan(graph: Graph, feeds: dict[str, np.ndarray], plan: PatchPlan
                  ) -> dict[str, np.ndarray]:
    """The whole graph with its leading stage executed patch by patch, then layer by layer."""
    stage = chain_prefix(graph)[:plan.split + 1]
    x = check_feeds(graph, feeds)[stage[0].inputs[0].name]
    split_out = run_stage_patched(stage, x, plan.n)
    return run_graph(graph, feeds, computed={stage[-1].outputs[0].name: split_out},
                     start=len(stage))


def _tile_bytes(node_region) -> tuple[int, int]:
    node, rows, cols, in_r, in_c, _ = node_region
    x, y = node.inputs[0], node.outputs[0]
    in_b = x.shape[0] * x.shape[1] * (in_r[1] - in_r[0]) * (in_c[1] - in_c[0]) * \
        x.dtype.itemsize
    out_b = y.shape[0] * y.shape[1] * (rows[1] - rows[0]) * (cols[1] - cols[0]) * \
        y.dtype.itemsize
    return in_b, out_b


def _scaler(bytes_per_element: int | None):
    if bytes_per_element:
        return lambda b, v: b // v.dtype.itemsize * bytes_per_element
    return lambda b, v: b


def scratch_bytes(stage: list[Node], n: int, bytes_per_element: int | None = None) -> int:
    """Bytes of tile memory the patched stage needs: the first layer reads the full input in
    place and writes one tile; each later layer holds its input tile and its output tile (the
    last one writes into the full split output, counted anyway). Tiles alternate between the two
    ends of one scratch block, so this many bytes always suffice."""
    scale = _scaler(bytes_per_element)
    last = stage[-1].outputs[0]
    worst = 0
    for rows in _splits(last.shape[2], n):
        for cols in _splits(last.shape[3], n):
            for reg in regions(stage, rows, cols):
                in_b, out_b = _tile_bytes(reg)
                live = out_b if reg[0] is stage[0] else in_b + out_b
                worst = max(worst, scale(live, reg[0].outputs[0]))
    return worst


def patches(stage: list[Node], n: int) -> list[list[tuple]]:
    """Per patch, per stage node: its output region (r0, r1, c0, c1) in full-map coordinates."""
    last = stage[-1].outputs[0]
    return [[(reg[1][0], reg[1][1], reg[2][0], reg[2][1]) for reg in regions(stage, rows, cols)]
            for rows in _splits(last.shape[2], n) for cols in _splits(last.shape[3], n)]


def evaluate(graph: Graph, stage: list[Node], n: int, rest_peak: int,
             bytes_per_element: int | None = None) -> PatchPlan:
    """Peak memory and MACs of running ``stage`` in n x n patches, then the rest of the graph
    layer by layer (``rest_peak``: its own peak)."""
    scale = _scaler(bytes_per_element)
    x, last = stage[0].inputs[0], stage[-1].outputs[0]
    full_in = scale(x.type.nbytes, x)
    full_out = scale(last.type.nbytes, last)
    patch_macs = 0
    for rows in _splits(last.shape[2], n):
        for cols in _splits(last.shape[3], n):
            for reg in regions(stage, rows, cols):
                full = reg[0].outputs[0].shape
                frac = ((reg[1][1] - reg[1][0]) * (reg[2][1] - reg[2][0])) / (full[2] * full[3])
                patch_macs += int(node_macs(reg[0]) * frac)
    stage_macs = sum(node_macs(nd) for nd in stage)
    scratch = scratch_bytes(stage, n, bytes_per_element)
    peak = max(full_in + scratch + full_out, rest_peak)
    return PatchPlan(split=len(stage) - 1, n=n, peak_bytes=peak, stage_macs=stage_macs,
                     patch_macs=patch_macs, stage=tuple(stage), scratch_bytes=scratch,
                     bytes_per_element=bytes_per_element)


def search(graph: Graph, max_overhead: float = 0.20, grids=(2, 3, 4, 5, 6, 7, 8),
           bytes_per_element: int | None = None):
    """Best (lowest peak) patch plan over split layers and grid sizes within the MAC budget;
    None when no plan lowers the layer-by-layer peak (no spatial stage, or the peak lies
    after it)."""
    prefix = chain_prefix(graph)
    best = None
    full = plan_memory(graph, bytes_per_element=bytes_per_element)
    for split in range(1, len(prefix)):
        stage = prefix[:split + 1]
        if stage[-1].outputs[0].shape[2] < 2:
            break
        if not any(has(nd.op, "spatial") for nd in stage):
            continue  # point-wise only: nothing to gain
        rest_peak = _rest_peak(full, graph, stage)
        for n in grids:
            if n > stage[-1].outputs[0].shape[2]:
                break
            p = evaluate(graph, stage, n, rest_peak, bytes_per_element)
            if p.overhead <= max_overhead and p.peak_bytes < full.arena_bytes and (
                    best is None or p.peak_bytes < best.peak_bytes):
                best = p  # only plans that lower the peak are worth their extra MACs
    return best


def _rest_peak(full_plan, graph: Graph, stage: list[Node]) -> int:
    """Peak live bytes of the layer-by-layer plan after the stage."""
    first_after = len(stage)
    return max(full_plan.step_live_bytes[first_after:], default=0)
