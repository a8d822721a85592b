"""Activation fusion: ``Relu(op(x))`` and ``Clip(op(x), lo, hi)`` (Relu6 is ``Clip(0, 6)``)
become ``op(x)`` carrying ``activation="Relu"`` or ``activation="Clip"`` with
``activation_min``/``activation_max``; the interpreter applies it right after the op, which is what
the fused kernels of TFLite, ORT and CMSIS-NN do. ``op`` is Conv, ConvTranspose, Gemm, MatMul or
Add. Exact: the same clamp on the same values.

Refused when the op's output feeds anything else (those readers need the un-clamped values), when
the op already carries an activation, or when the producer cannot carry one.
"""

from __future__ import annotations

import math

from edgeq.ir.graph import Graph
from edgeq.ops import has
from edgeq.passes import refuse

NAME = "fuse_activation"


def fuse_activation(graph: Graph) -> bool:
    changed = False
    for node in list(graph.nodes):
        if node.op not in ("Relu", "Clip"):
            continue
        y = node.inputs[0]
        prod = y.producer
        if prod is None or not has(prod.op, "fuses_activation"):
            what = "a graph input or constant" if prod is None else f"{prod.op} '{prod.name}'"
            refuse(NAME, f"{node.op} '{node.name}': its producer, {what}, cannot carry a fused "
                   f"activation")
            continue
        if len(y.uses) > 1 or y in graph.outputs:
            refuse(NAME, f"{node.op} '{node.name}': output of {prod.op} '{prod.name}' also feeds "
                   f"other nodes, which need it unclamped")
            continue
        if "activation" in prod.attrs:
            refuse(NAME, f"{node.op} '{node.name}': {prod.op} '{prod.name}' already has a fused "
                   f"{prod.attrs['activation']}")
            continue
        lo = node.attrs.get("min", -math.inf) if node.op == "Clip" else 0.0
        hi = node.attrs.get("max", math.inf) if node.op == "Clip" else math.inf
        if node.op == "Clip" and not (lo == 0.0 and hi == math.inf):
            prod.attrs.update(activation="Clip", activation_min=float(lo),
                              activation_max=float(hi))
        else:
            prod.attrs["activation"] = "Relu"
        graph.replace_uses(node.outputs[0], y)
        graph.remove_node(node)
        changed = True
    return changed
