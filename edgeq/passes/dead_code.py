"""Dead-code elimination: a node none of whose outputs is used (by a node or as a graph output)
is removed, repeatedly from the end; constants nothing reads are dropped."""

from __future__ import annotations

from edgeq.ir.graph import Graph


def eliminate_dead_code(graph: Graph) -> bool:
    changed = False
    outputs = set(id(v) for v in graph.outputs)
    for node in reversed(list(graph.nodes)):
        if all(not v.uses and id(v) not in outputs for v in node.outputs):
            graph.remove_node(node)
            changed = True
    before = len(graph.values)
    graph.prune_values()
    return changed or len(graph.values) != before
