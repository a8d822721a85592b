"""Activation memory planning over one arena (layer-by-layer execution).

Liveness: in execution order, a value is live from the step that produces it (graph inputs: step
0) to the last step that reads it (graph outputs: the end). Constants live in flash, not in the
arena.

In-place reuse: a Reshape's output is its input (same bytes); an element-wise op (QAdd, QMul,
QLookup, Requantize and their float counterparts) may write over an input of the same size whose
last reader it is, since each output element depends only on the same-position input
elements. Such values share one block.

Offsets: blocks sorted by size (largest first, then by start), each placed at the lowest offset
where it overlaps no already-placed block that is live at the same time (first fit). The arena is
the highest end; the lower bound is the largest sum of live block sizes at any step, so
``arena_bytes - peak_live_bytes`` is what fragmentation costs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from edgeq.ir.graph import Graph

ELEMENTWISE_INPLACE = {"QAdd", "QMul", "QLookup", "Requantize", "Relu", "Clip", "Sigmoid",
                       "Tanh", "LeakyRelu", "HardSwish", "HardSigmoid", "Add", "Sub", "Mul"}


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

    def offset_of(self, value: str) -> int:
        return next(b.offset for b in self.blocks if value in b.values)


def _align(n: int, a: int) -> int:
    return (n + a - 1) // a * a


def plan_memory(graph: Graph, align: int = 16, inplace: bool = True,
                bytes_per_element: int | None = None) -> Plan:
    """``bytes_per_element`` overrides each value's own element size (e.g. 1 to plan a float
    graph as the int8 model it will become)."""
    def nbytes(v) -> int:
        return v.type.size * bytes_per_element if bytes_per_element else v.type.nbytes

    n_steps = len(graph.nodes)
    start: dict[str, int] = {v.name: 0 for v in graph.inputs}
    end: dict[str, int] = {}
    size: dict[str, int] = {v.name: nbytes(v) for v in graph.inputs}
    for i, node in enumerate(graph.nodes):
        for v in node.inputs:
            if v is not None and not v.is_const:
                end[v.name] = i
        for v in node.outputs:
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
        for i, node in enumerate(graph.nodes):
            out = node.outputs[0]
            if node.op == "Reshape" or node.op in ELEMENTWISE_INPLACE:
                for v in node.inputs:
                    if v is None or v.is_const or end[v.name] != i or \
                            size[v.name] != size[out.name] or v in graph.inputs:
                        continue
                    owner[out.name] = root(v.name)
                    break
    groups: dict[str, list[str]] = {}
    for name in start:
        groups.setdefault(root(name), []).append(name)
    blocks = []
    for members in groups.values():
        blocks.append(Block(sorted(members, key=lambda n: start[n]),
                            _align(max(size[m] for m in members), align),
                            min(start[m] for m in members), max(end[m] for m in members)))
    placed: list[Block] = []
    for b in sorted(blocks, key=lambda b: (-b.size, b.start, b.values[0])):
        taken = sorted((p.offset, p.offset + p.size) for p in placed
                       if p.start <= b.end and b.start <= p.end)
        offset = 0
        for lo, hi in taken:
            if offset + b.size <= lo:
                break
            offset = max(offset, hi)
        b.offset = offset
        placed.append(b)
    live = [sum(b.size for b in blocks if b.start <= i <= b.end) for i in range(n_steps + 1)]
    return Plan(blocks=sorted(blocks, key=lambda b: (b.start, b.values[0])),
                arena_bytes=max((b.offset + b.size for b in blocks), default=0),
                peak_live_bytes=max(live, default=0), step_live_bytes=live,
                steps=[n.name for n in graph.nodes] + ["(outputs)"])
