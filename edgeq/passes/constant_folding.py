"""Constant folding: a node whose inputs are all constants is evaluated once at compile time.

For such a node ``y = op(c1, ..., cn)`` the reference kernel computes ``y`` and every output
value becomes a constant in place (same name, same uses); the node is removed. Folding is exact:
it is the same float computation the interpreter would run, done earlier.
"""

from __future__ import annotations

from edgeq.ir.graph import DType, Graph, Node, TensorType, Value, contiguous
from edgeq.ops.base import KERNEL
from edgeq.passes import refuse


def fold_node(graph: Graph, node: Node) -> list[Value] | None:
    """Fold ``node`` if all its inputs are constant; return its (now constant) outputs."""
    ins = [v for v in node.inputs if v is not None]
    if not ins or any(not v.is_const for v in ins):
        return None
    if node.op not in KERNEL:
        refuse("constant_folding", f"{node.op} '{node.name}': all inputs are constant but the "
               f"reference interpreter has no kernel for {node.op}; left in the graph")
        return None
    arrays = [None if v is None else v.const for v in node.inputs]
    while arrays and arrays[-1] is None:
        arrays.pop()
    outs = KERNEL[node.op](node.attrs, *arrays)
    graph.remove_node(node)
    for v, arr in zip(node.outputs, outs):
        arr = contiguous(arr)
        v.const = arr
        v.producer = None
        v.type = TensorType(DType.from_numpy(arr.dtype), tuple(arr.shape))
        graph.values.setdefault(v.name, v)
    return node.outputs


def fold_constants(graph: Graph) -> bool:
    changed = False
    for node in list(graph.nodes):
        if fold_node(graph, node) is not None:
            changed = True
    return changed
