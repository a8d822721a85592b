"""Matrix products: Gemm, MatMul and their integer forms QGemm (constant weights) and QMatMul (two
activations). MACs: ``out_elems * K``.

Gemm (alpha folded into the weight, beta*C into the bias) and MatMul with a constant 2-D weight
(and an optional constant bias of N values, its third input: ``passes/fold_matmul_bias.py``)
both become QGemm: ``x (..., K)``, ``w (N, K)`` int8 per output channel, bias (N,) int32,
per-channel rescale on the last axis. QMatMul: ``acc = (a - a_zp) @ (b - b_zp)``,
``M = s_a s_b / s_y`` (docs/numerics.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from edgeq.ir.graph import EdgeqError, Node, TensorType
from edgeq.numerics.dyadic import effective_scale, quantize_multiplier
from edgeq.numerics.scheme import quantize_weight
from edgeq.ops._integer import centered, requant, to_int
from edgeq.ops._quantize import detached_const, quantize_linear
from edgeq.ops.activation import apply_activation
from edgeq.ops.base import (Attrs, kernel, macs_rule, quantize_check, quantize_rule,
                            result_dtype, shape_rule, traits)
from edgeq.ops.elementwise import broadcast

if TYPE_CHECKING:
    from edgeq.quant.convert import Converter

traits("Gemm", "MatMul", add=("fuses_activation", "int16_input", "compensated_weights"))
traits("Gemm", add="folds_channel_affine")
traits("QGemm", "QMatMul", add="integer")


@shape_rule("Gemm")
def _gemm_shape(node, ts):
    a, b = ts[0].shape, ts[1].shape
    if len(a) != 2 or len(b) != 2:
        raise EdgeqError(f"Gemm '{node.name}': inputs {list(a)} and {list(b)} must be 2-D")
    m = a[1] if node.attrs.get("transA", 0) else a[0]
    ka = a[0] if node.attrs.get("transA", 0) else a[1]
    kb, n = (b[1], b[0]) if node.attrs.get("transB", 0) else (b[0], b[1])
    if ka != kb:
        raise EdgeqError(f"Gemm '{node.name}': inner dimensions differ ({ka} vs {kb})")
    if len(ts) > 2:
        c = ts[2].shape
        if len(c) > 2 or any(x not in (1, y) for x, y in zip(c[::-1], (m, n)[::-1])):
            raise EdgeqError(f"Gemm '{node.name}': C of shape {list(c)} does not broadcast to "
                             f"the output {[m, n]}")
    return [TensorType(ts[0].dtype, (m, n))]


@shape_rule("MatMul", "QMatMul")
def _matmul_shape(node, ts):
    a, b = ts[0].shape, ts[1].shape
    if len(a) < 1 or len(b) < 1 or (a[-1] != (b[-2] if len(b) > 1 else b[0])):
        raise EdgeqError(f"MatMul '{node.name}': shapes {list(a)} and {list(b)} do not multiply")
    if len(b) == 1:
        shape = a[:-1]
    elif len(a) == 1:
        shape = b[:-2] + b[-1:]
    else:
        shape = broadcast(node, [a[:-2], b[:-2]]) + (a[-2], b[-1])
    return [TensorType(result_dtype(node, ts[0]), tuple(shape))]


@shape_rule("QGemm")
def _qgemm_shape(node, ts):
    x, w = ts[0].shape, ts[1].shape
    if x[-1] != w[1]:
        raise EdgeqError(f"QGemm '{node.name}': input has {x[-1]} features, weight expects "
                         f"{w[1]}")
    return [TensorType(result_dtype(node, ts[0]), x[:-1] + (w[0],))]


@macs_rule("Gemm")
def _gemm_macs(node: Node) -> int:
    a = node.inputs[0].shape
    k = a[0] if node.attrs.get("transA", 0) else a[1]
    return node.outputs[0].type.size * k


@macs_rule("MatMul", "QMatMul", "QGemm")
def _matmul_macs(node: Node) -> int:
    return node.outputs[0].type.size * node.inputs[0].shape[-1]


@kernel("Gemm")
def gemm(a: Attrs, x, w, c=None):
    xa = x.T if a.get("transA", 0) else x
    wa = w.T if a.get("transB", 0) else w
    y = a.get("alpha", 1.0) * (xa @ wa)
    if c is not None:
        y = y + a.get("beta", 1.0) * c
    return (apply_activation(y.astype(x.dtype, copy=False), a),)


@kernel("MatMul")
def matmul(a: Attrs, x, w, b=None):
    y = np.matmul(x, w)
    if b is not None:
        y = y + b
    return (apply_activation(y, a),)


@kernel("QGemm")
def qgemm(a: Attrs, x, w, b=None):
    """x (..., K) int, w (N, K) int8 per-output-channel, b (N,) int32; channel axis is last."""
    acc = to_int(np.matmul(centered(x, a["x_zp"]).astype(np.float64),
                           w.astype(np.float64).T))
    if b is not None:
        acc = acc + b.astype(np.int64)
    return (requant(acc, a, axis=-1),)


@kernel("QMatMul")
def qmatmul(a: Attrs, x, y):
    acc = to_int(np.matmul(centered(x, a["a_zp"]).astype(np.float64),
                           centered(y, a["b_zp"]).astype(np.float64)))
    return (requant(acc, a),)


# --- quantize rules -------------------------------------------------------------------------

@quantize_check("Gemm")
def _gemm_check(node: Node) -> str | None:
    """Constant weights, transA = 0, and a bias C with one row at most."""
    if any(v is not None and not v.is_const for v in node.inputs[1:]):
        return "weights must be constants"
    if node.attrs.get("transA", 0):
        return "transA=1 is not supported"
    c = node.const_input(2)
    if c is not None and c.ndim == 2 and c.shape[0] > 1:
        return "a 2-D bias C with several rows is not supported"
    return None


@quantize_check("MatMul")
def _matmul_check(node: Node) -> str | None:
    """The left operand is computed at run time; a constant right operand is 2-D."""
    if node.inputs[0].is_const:
        return "a constant left operand is not supported"
    if node.inputs[1].is_const and node.inputs[1].const.ndim != 2:
        return "constant weights must be 2-D"
    if len(node.inputs) > 2 and node.inputs[2] is not None and not (
            node.inputs[1].is_const and node.inputs[2].is_const):
        return "a bias needs constant weights and is itself constant"
    return None


def _gemm_weight(node: Node) -> np.ndarray:
    """The weight as (N, K), alpha folded in."""
    w = node.inputs[1].const.astype(np.float64)
    if node.op == "MatMul":
        return w.T
    w = w if node.attrs.get("transB", 0) else w.T
    return w * node.attrs.get("alpha", 1.0)


@quantize_rule("Gemm", "MatMul")
def _quantize_gemm(cv: Converter, node: Node) -> None:
    if node.op == "MatMul" and not node.inputs[1].is_const:
        return _quantize_matmul_activations(cv, node)
    bias = node.const_input(2)  # Gemm's C, or a MatMul's folded bias
    if bias is not None:
        node_b = (bias.astype(np.float64) * node.attrs.get("beta", 1.0)).reshape(-1)
    view = Node(node.op, node.name, [node.inputs[0],
                                     detached_const(f"{node.name}/w", _gemm_weight(node)),
                                     detached_const(f"{node.name}/b", node_b)
                                     if bias is not None else None],
                node.outputs, {k: v for k, v in node.attrs.items()
                               if k.startswith("activation")})
    quantize_linear(cv, view, "QGemm",
                    lambda w, floor: quantize_weight(w, 0, cv.cfg.weight_bits, floor))


def _quantize_matmul_activations(cv: Converter, node: Node) -> None:
    a, b = cv.get(node.inputs[0]), cv.get(node.inputs[1])
    out = node.outputs[0]
    dtype = cv.dtype_of(out.name)
    qp = cv.out_qparams(out)
    m, n = quantize_multiplier(effective_scale(a.qparams.scale[0], b.qparams.scale[0],
                                               denominator=qp.scale[0]))
    lo, hi = cv.act_bounds(node, qp, dtype)
    cv.emit("QMatMul", node, [a, b], dict(a_zp=a.qparams.zero_point[0],
                                          b_zp=b.qparams.zero_point[0], y_zp=qp.zero_point[0],
                                          multiplier=m, shift=n, act_min=lo, act_max=hi), out,
            qp, dtype)
