"""Activation memory planning over one arena (layer-by-layer execution).

Liveness: in execution order, a value is live from the step that produces it (graph inputs: step
0) to the last step that reads it (graph outputs: the end). Constants live in flash, not in the
arena.

In-place reuse: a Reshape's output is its input (same bytes); an element-wise op (QAdd, QMul,
QLookup, Requantize and their float counterparts) may write over an input of the same size whose
last reader it is, since each output element depends only on the same-position input
elements. A depthwise convolution may write over its input too (channel-major layout): channel c
is computed into a one-plane scratch block (live at that step only) and copied to its place,
which only overlaps input channels already consumed, since an output plane is never larger than
an input plane. Such values share one block.

Offsets: blocks sorted by size (largest first, then by start), each placed at the lowest offset
where it overlaps no already-placed block that is live at the same time (first fit). The arena is
the highest end; the lower bound is the largest sum of live block sizes at any step, so
``arena_bytes - peak_live_bytes`` is what fragmentation costs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from edgeq.ir.graph import Graph
from edgeq.ops import has


@dataclass
class Block:
    values: list[str]
    size: int
    start: int
    end: int
    offset: int = -1


@dataclass
class Plan:
    blocks: list[Block]
    arena_bytes: int
    peak_live_bytes: int
    step_live_bytes: list[int] = field(default_factory=list)
    steps: list[str] = field(default_factory=list)
    optimal: bool = False  # arena_bytes proven smallest for this order

    def offset_of(self, value: str) -> int:
        return next(b.offset for b in self.blocks if value in b.values)


def _align(n: int, a: int) -> int:
    return (n + a - 1) // a * a


PATCH_SCRATCH = "(patch tiles)"


def depthwise(node) -> bool:
    """A depthwise convolution (one input channel per output channel, batch 1)."""
    if node.op not in ("QConv", "Conv") or len(node.inputs[0].shape) != 4:
        return False
    x, y = node.inputs[0], node.outputs[0]
    return x.shape[0] == 1 and node.attrs.get("group", 1) == x.shape[1] == y.shape[1]


def dw_scratch(node) -> str:
    return f"(depthwise plane: {node.name})"


def plan_memory(graph: Graph, align: int = 16, inplace: bool = True,
                bytes_per_element: int | None = None, order: list | None = None,
                patch=None, exact: bool = False) -> Plan:
    """``bytes_per_element`` overrides each value's own element size (e.g. 1 to plan a float
    graph as the int8 model it will become). ``order``: the execution order (default: the
    graph's). ``patch``: a PatchPlan; its stage (the first ``split + 1`` nodes, which must lead
    ``order``) becomes one step that holds the stage input, the split output and a scratch
    block for the patch tiles (named PATCH_SCRATCH). ``exact``: search block placements for the
    smallest arena when the graph is small (see ``place_exact``)."""
    def nbytes(v) -> int:
        return v.type.size * bytes_per_element if bytes_per_element else v.type.nbytes

    nodes = list(order if order is not None else graph.nodes)
    steps: list[tuple[str, list, list]] = []  # (name, activation inputs, outputs)
    extra: dict[str, int] = {}
    if patch is not None:
        stage = list(patch.stage)
        if nodes[:len(stage)] != stage:
            raise ValueError("the patch stage must lead the execution order")
        if patch.bytes_per_element != bytes_per_element:
            raise ValueError(f"the patch plan was searched with {patch.bytes_per_element} bytes "
                             f"per element, this plan uses {bytes_per_element}")
        steps.append((f"patched stage ({stage[0].name} .. {stage[-1].name})",
                      [stage[0].inputs[0]], [stage[-1].outputs[0]]))
        extra[PATCH_SCRATCH] = patch.scratch_bytes
        nodes = nodes[len(stage):]
    steps += [(n.name, [v for v in n.inputs if v is not None and not v.is_const],
               list(n.outputs)) for n in nodes]
    n_steps = len(steps)
    start: dict[str, int] = {v.name: 0 for v in graph.inputs}
    end: dict[str, int] = {}
    size: dict[str, int] = {v.name: nbytes(v) for v in graph.inputs}
    for name, b in extra.items():
        start[name], end[name], size[name] = 0, 0, b
    for i, (_, ins, outs) in enumerate(steps):
        for v in ins:
            end[v.name] = i
        for v in outs:
            start[v.name] = i
            size[v.name] = nbytes(v)
    for v in graph.outputs:
        end[v.name] = n_steps
    for name in start:
        end.setdefault(name, start[name])
    # in-place: merge an output into the block of an input that dies at this step
    owner = {name: name for name in start}

    def root(name: str) -> str:
        while owner[name] != name:
            name = owner[name]
        return name

    if inplace:
        first = 1 if patch is not None else 0
        for i, node in enumerate(nodes, start=first):
            out = node.outputs[0]
            if has(node.op, "alias") or has(node.op, "elementwise"):
                for v in node.inputs:
                    if v is None or v.is_const or end[v.name] != i or \
                            size[v.name] != size[out.name] or v in graph.inputs:
                        continue
                    owner[out.name] = root(v.name)
                    break
            elif depthwise(node):
                x = node.inputs[0]
                if end[x.name] == i and size[out.name] <= size[x.name] and \
                        x not in graph.inputs:
                    owner[out.name] = root(x.name)
                    plane = dw_scratch(node)
                    owner[plane] = plane
                    start[plane] = end[plane] = i
                    size[plane] = out.shape[2] * out.shape[3] * (
                        bytes_per_element or out.dtype.itemsize)
    groups: dict[str, list[str]] = {}
    for name in start:
        groups.setdefault(root(name), []).append(name)
    blocks = []
    for members in groups.values():
        blocks.append(Block(sorted(members, key=lambda n: start[n]),
                            _align(max(size[m] for m in members), align),
                            min(start[m] for m in members), max(end[m] for m in members)))
    live = [sum(b.size for b in blocks if b.start <= i <= b.end) for i in range(n_steps + 1)]
    place(sorted(blocks, key=lambda b: (-b.size, b.start, b.values[0])))
    arena = max((b.offset + b.size for b in blocks), default=0)
    optimal = arena == max(live, default=0)
    if exact and not optimal:
        arena, optimal = place_exact(blocks, max(live, default=0))
    return Plan(blocks=sorted(blocks, key=lambda b: (b.start, b.values[0])),
                arena_bytes=arena, peak_live_bytes=max(live, default=0),
                step_live_bytes=live, steps=[s[0] for s in steps] + ["(outputs)"],
                optimal=optimal)


def _lowest_fit(b: Block, placed: list[Block]) -> int:
    """Lowest offset where ``b`` overlaps no placed block that is live at the same time."""
    taken = sorted((p.offset, p.offset + p.size) for p in placed
                   if p.start <= b.end and b.start <= p.end)
    offset = 0
    for lo, hi in taken:
        if offset + b.size <= lo:
            break
        offset = max(offset, hi)
    return offset


def place(blocks: list[Block]) -> None:
    """First fit in the given order: each block at its lowest free offset."""
    placed: list[Block] = []
    for b in blocks:
        b.offset = _lowest_fit(b, placed)
        placed.append(b)


def place_exact(blocks: list[Block], lower_bound: int, budget: int = 200_000
                ) -> tuple[int, bool]:
    """Smallest arena over placement orders (branch and bound), keeping the best offsets in the
    blocks. Some order gives an optimal packing when each block goes to its lowest free offset
    (take the blocks of an optimal packing by increasing offset: each lands at or below its
    optimal offset, so none collides later), so searching orders is exact; the search stops at
    the lower bound (the peak live bytes) or after ``budget`` steps. Returns (arena, proven)."""
    placed_already = all(b.offset >= 0 for b in blocks)
    best = max(b.offset + b.size for b in blocks) if placed_already else sum(
        b.size for b in blocks) + 1
    best_offsets = [b.offset for b in blocks]
    visited = 0
    placed: list[Block] = []

    def dfs(remaining: list[Block], high: int) -> bool:
        nonlocal best, best_offsets, visited
        if not remaining:
            if high < best:
                best, best_offsets = high, [b.offset for b in blocks]
            return best == lower_bound
        seen_sizes = set()
        for i, b in enumerate(remaining):
            visited += 1
            if visited > budget:
                return True
            key = (b.size, b.start, b.end)
            if key in seen_sizes:
                continue  # identical blocks: one order is enough
            seen_sizes.add(key)
            off = _lowest_fit(b, placed)
            top = max(high, off + b.size)
            if top >= best:
                continue
            b.offset = off
            placed.append(b)
            done = dfs(remaining[:i] + remaining[i + 1:], top)
            placed.pop()
            if done:
                return True
        return False

    dfs(list(blocks), 0)
    for b, off in zip(blocks, best_offsets):
        b.offset = off
    return best, best == lower_bound or visited <= budget
