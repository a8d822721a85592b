"""Bias folding for matrix products: ``Add(MatMul(x, W), b)``, with ``W`` a constant 2-D
weight (K, N) and ``b`` a constant of N values along the last axis, becomes ``MatMul(x, W, b)``:
edgeq's MatMul with a constant weight takes an optional bias, as Gemm does. That is how
torch.onnx writes ``nn.Linear`` on inputs of rank 3 or more (every transformer layer), and it
lets the integer graph add the bias in the int32 accumulator of one QGemm instead of in a
separate int8 QAdd after the product was requantized: one layer and one rounding fewer. Exact in
real arithmetic.

Refused when the product's output also feeds other nodes or is a graph output (they need it
without the bias), or when the product already carries a fused activation (the Add comes after
it).
"""

from __future__ import annotations

import numpy as np

from edgeq.ir.graph import Graph, Node
from edgeq.passes import refuse

NAME = "fold_matmul_bias"


def _bias_of(add: Node, mm: Node, y) -> np.ndarray | None:
    """The Add's constant as N values, if it only adds along the product's last axis."""
    c = add.inputs[1 if add.inputs[0] is y else 0]
    n = mm.inputs[1].const.shape[1]
    if c is None or not c.is_const or c.const.dtype != mm.inputs[1].const.dtype:
        return None
    shape = c.const.shape
    if len(shape) > len(y.shape) or shape[-1:] != (n,) or any(d != 1 for d in shape[:-1]):
        return None
    return c.const.reshape(n)


def fold_matmul_bias(graph: Graph) -> bool:
    changed = False
    for add in list(graph.nodes):
        if add.op != "Add" or len(add.inputs) != 2 or "activation" in add.attrs:
            continue
        for y in add.inputs:
            mm = y.producer if y is not None else None
            if mm is not None and mm.op == "MatMul":
                break
        else:
            continue
        w = mm.const_input(1)
        if w is None or w.ndim != 2 or len(mm.inputs) > 2 or add.inputs[0] is add.inputs[1]:
            continue
        b = _bias_of(add, mm, y)
        if b is None:
            continue
        if len(y.uses) > 1 or y in graph.outputs:
            refuse(NAME, f"Add '{add.name}': the output of MatMul '{mm.name}' also feeds other "
                   f"nodes, which need it without the bias")
            continue
        if "activation" in mm.attrs:
            refuse(NAME, f"Add '{add.name}': MatMul '{mm.name}' carries a fused "
                   f"{mm.attrs['activation']}, which comes before the bias")
            continue
        graph.set_input(mm, 2, graph.add_const(f"{mm.name}/bias", np.ascontiguousarray(b)))
        graph.replace_uses(add.outputs[0], y)
        graph.remove_node(add)
        changed = True
    return changed
