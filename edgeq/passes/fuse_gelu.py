"""GELU recognition: the exact GELU as exporters spell it without a ``Gelu`` op (torch.onnx
below opset 20, Hugging Face BERT's own ``gelu``), ``x * 0.5 * (1 + erf(x / sqrt(2)))`` in any
order of its three factors, the division also written as a product with ``1/sqrt(2)``, becomes
one ``Gelu`` node (``approximate="none"``). The integer graph then holds one lookup table where
it held five layers (a scaling, the erf table, an add and two products), each requantized to
int8. Exact in real arithmetic: the constants are matched to float32 rounding.

Not matched (left as they are) when an intermediate value feeds anything else or is a graph
output, since the pattern's nodes are removed.
"""

from __future__ import annotations

import math

from edgeq.ir.graph import Graph, Node, Value

NAME = "fuse_gelu"
SQRT2 = math.sqrt(2.0)


def _scalar(v: Value | None) -> float | None:
    if v is None or not v.is_const or v.const.size != 1:
        return None
    return float(v.const.reshape(()))


def _near(x: float | None, want: float) -> bool:
    return x is not None and math.isclose(x, want, rel_tol=1e-6)


def _only_reader(v: Value, graph: Graph) -> Node | None:
    """The single node reading ``v`` (None if several, none, or ``v`` is a graph output)."""
    if len(v.uses) != 1 or v in graph.outputs:
        return None
    return v.uses[0][0]


def _other(node: Node, v: Value) -> Value | None:
    """The input of a two-input node that is not ``v``."""
    if len(node.inputs) != 2 or (node.inputs[0] is v) == (node.inputs[1] is v):
        return None
    return node.inputs[1] if node.inputs[0] is v else node.inputs[0]


def _scaled_input(d: Value) -> Node | None:
    """The node computing ``x / sqrt(2)`` (or ``x * (1/sqrt(2))``) that ``d`` is."""
    n = d.producer
    if n is None or len(n.inputs) != 2:
        return None
    if n.op == "Div" and _near(_scalar(n.inputs[1]), SQRT2) and not n.inputs[0].is_const:
        return n
    if n.op == "Mul":
        for i in (0, 1):
            if _near(_scalar(n.inputs[i]), 1 / SQRT2) and not n.inputs[1 - i].is_const:
                return n
    return None


def _match(graph: Graph, erf: Node) -> tuple[Value, list[Node], Value] | None:
    """(x, the pattern's nodes, its output) for the GELU around ``erf``."""
    scale = _scaled_input(erf.inputs[0])
    if scale is None or _only_reader(erf.inputs[0], graph) is not erf:
        return None
    x = next(v for v in scale.inputs if not v.is_const)
    add = _only_reader(erf.outputs[0], graph)
    if add is None or add.op != "Add" or not _near(_scalar(_other(add, erf.outputs[0])), 1.0):
        return None
    a = add.outputs[0]  # 1 + erf(x / sqrt(2))
    m1 = _only_reader(a, graph)
    if m1 is None or m1.op != "Mul":
        return None
    f = _other(m1, a)
    if f is None:
        return None
    if f is x or _near(_scalar(f), 0.5):  # (x * a) * 0.5, or (a * 0.5) * x
        m2 = _only_reader(m1.outputs[0], graph)
        want = 0.5 if f is x else x
        if m2 is None or m2.op != "Mul":
            return None
        g = _other(m2, m1.outputs[0])
        if not (g is x if want is x else _near(_scalar(g), 0.5)):
            return None
        return x, [scale, erf, add, m1, m2], m2.outputs[0]
    h = f.producer  # (x * 0.5) * a
    if h is None or h.op != "Mul" or _only_reader(f, graph) is not m1:
        return None
    if not any(h.inputs[i] is x and _near(_scalar(h.inputs[1 - i]), 0.5) for i in (0, 1)):
        return None
    return x, [scale, erf, add, h, m1], m1.outputs[0]


def fuse_gelu(graph: Graph) -> bool:
    changed = False
    for erf in list(graph.nodes):
        if erf.op != "Erf":
            continue
        got = _match(graph, erf)
        if got is None:
            continue
        x, nodes, y = got
        if not x.dtype.is_float:
            continue
        base = erf.name.rsplit("/", 1)[0] + "/Gelu" if "/" in erf.name else f"{erf.name}_gelu"
        last = max(nodes, key=graph.nodes.index)
        gelu = graph.add_node("Gelu", [x], [y.type], {"approximate": "none"},
                              name=graph.unique_name(base), after=last)
        graph.replace_uses(y, gelu.outputs[0])
        for n in sorted(nodes, key=graph.nodes.index, reverse=True):
            graph.remove_node(n)
        changed = True
    return changed

