"""IR verifier: single assignment, topological order, use-lists, and types that match both the
constants they hold and what shape inference derives from each node's inputs."""

from __future__ import annotations

from edgeq.ir.graph import Graph
from edgeq.ops import infer_node


class VerifyError(Exception):
    pass


def verify(graph: Graph) -> None:
    defined: set[int] = set()
    for v in graph.inputs:
        if v.producer is not None or v.is_const:
            raise VerifyError(f"graph input '{v.name}' has a producer or a constant")
        defined.add(id(v))
    names: dict[str, int] = {}
    for v in graph.values.values():
        names[v.name] = names.get(v.name, 0) + 1
        if v.is_const:
            if v.producer is not None:
                raise VerifyError(f"constant '{v.name}' also has a producer")
            if tuple(v.const.shape) != v.shape or v.const.dtype != v.dtype.numpy:
                raise VerifyError(f"constant '{v.name}': array {v.const.dtype}{list(v.const.shape)}"
                                  f" does not match its type {v.type}")
            defined.add(id(v))
    for name, v in graph.values.items():
        if v.name != name:
            raise VerifyError(f"value registered as '{name}' is named '{v.name}'")
    node_names: set[str] = set()
    for node in graph.nodes:
        if node.name in node_names:
            raise VerifyError(f"node name '{node.name}' is used twice")
        node_names.add(node.name)
        for i, v in enumerate(node.inputs):
            if v is None:
                continue
            if id(v) not in defined:
                raise VerifyError(f"{node.op} '{node.name}' reads '{v.name}' before it is defined")
            if (node, i) not in v.uses:
                raise VerifyError(f"use-list of '{v.name}' misses {node.op} '{node.name}'")
            if graph.values.get(v.name) is not v:
                raise VerifyError(f"'{v.name}' read by '{node.name}' is not registered in graph")
        for v in node.outputs:
            if id(v) in defined:
                raise VerifyError(f"'{v.name}' is assigned twice (by '{node.name}')")
            if v.producer is not node:
                raise VerifyError(f"'{v.name}' does not point back to its producer '{node.name}'")
            if graph.values.get(v.name) is not v:
                raise VerifyError(f"output '{v.name}' of '{node.name}' is not registered")
            defined.add(id(v))
        expected = infer_node(node)
        if len(expected) != len(node.outputs):
            raise VerifyError(f"{node.op} '{node.name}' has {len(node.outputs)} output(s), its "
                              f"op makes {len(expected)}")
        for v, t in zip(node.outputs, expected):
            if v.type != t:
                raise VerifyError(f"{node.op} '{node.name}': output '{v.name}' has type {v.type}, "
                                  f"shape inference says {t}")
    live = {id(n) for n in graph.nodes}
    for v in graph.values.values():
        for n, i in v.uses:
            if id(n) not in live or n.inputs[i] is not v:
                raise VerifyError(f"stale use of '{v.name}' by '{n.name}'")
    for v in graph.outputs:
        if id(v) not in defined:
            raise VerifyError(f"graph output '{v.name}' is never defined")
