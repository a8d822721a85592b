"""LayerNorm decomposition for targets without a LayerNorm kernel (TFLite): over the last axis,

    mean = ReduceMean(x);  d = x - mean;  var = ReduceMean(d * d)
    y = d * Rsqrt(var; eps)  [* gamma]  [+ beta]

with ``Rsqrt(v; eps) = 1 / sqrt(v + eps)`` an element-wise op (it becomes one int8 lookup table).
Exact in real arithmetic. Every step is then an integer op TFLite computes exactly (MEAN as a
fully connected layer of ones, SUB, MUL, GATHER), at the cost of int8 intermediates: the fused
QLayerNorm (edgeq's other targets) keeps more precision. Refused (logged) for normalization over
more than the last axis.
"""

from __future__ import annotations

from edgeq.ir.graph import Graph, TensorType
from edgeq.passes import refuse

NAME = "decompose_layernorm"


def decompose_layernorm(graph: Graph) -> bool:
    changed = False
    for ln in [n for n in graph.nodes if n.op == "LayerNormalization"]:
        x = ln.inputs[0]
        rank = len(x.shape)
        if ln.attrs.get("axis", -1) % rank != rank - 1:
            refuse(NAME, f"{ln.name}: normalizes over more than the last axis")
            continue
        t = x.type
        red = TensorType(t.dtype, tuple(x.shape[:-1]) + (1,))
        base = ln.name

        def add(op, ins, ty, attrs=None, suffix=""):
            return graph.add_node(op, ins, [ty], attrs or {}, before=ln,
                                  name=graph.unique_name(f"{base}/{suffix or op.lower()}")
                                  ).outputs[0]

        mean = add("ReduceMean", [x], red, {"axes": [rank - 1], "keepdims": 1}, "mean")
        d = add("Sub", [x, mean], t, suffix="centered")
        sq = add("Mul", [d, d], t, suffix="square")
        var = add("ReduceMean", [sq], red, {"axes": [rank - 1], "keepdims": 1}, "variance")
        r = add("Rsqrt", [var], red, {"eps": float(ln.attrs.get("epsilon", 1e-5))}, "rsqrt")
        y = add("Mul", [d, r], t, suffix="normalized")
        gamma = ln.inputs[1] if len(ln.inputs) > 1 else None
        beta = ln.inputs[2] if len(ln.inputs) > 2 else None
        if gamma is not None and not (gamma.is_const and (gamma.const == 1).all()):
            y = add("Mul", [y, gamma], t, suffix="gamma")
        if beta is not None and not (beta.is_const and (beta.const == 0).all()):
            y = add("Add", [y, beta], t, suffix="beta")
        graph.replace_uses(ln.outputs[0], y)
        graph.remove_node(ln)
        changed = True
    return changed
