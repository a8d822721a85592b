"""Softmax and its integer form QSoftmax (last axis, int8 in, fixed output scale 1/256 and zero
point -128; docs/numerics.md).

edgeq flavor: ``d = max(x) - x``, ``e = exp_table[d]`` (Q16), ``S = sum(e)``, ``1/S`` by the
integer reciprocal, ``y = round(256 e / S) - 128``. ``flavor = tflite``: TFLite's int8 SOFTMAX
reference kernel (gemmlowp fixed point, ``edgeq.numerics.gemmlowp``): Q0.31 exp table, Q12.19
sum, gemmlowp's reciprocal, rounding divides.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from edgeq.ir.graph import DType, EdgeqError, Node, QParams, TensorType
from edgeq.numerics import gemmlowp as gl
from edgeq.numerics.reciprocal import reciprocal, shift_round_half_up
from edgeq.ops._integer import out
from edgeq.ops.base import (Attrs, kernel, quantize_rule, result_dtype,
                            shape_rule, traits)

if TYPE_CHECKING:
    from edgeq.quant.convert import Converter

traits("QSoftmax", add="integer")

SOFTMAX_QPARAMS = QParams((1.0 / 256,), (-128,))


@shape_rule("Softmax", "QSoftmax")
def _same_shape(node: Node, ts: list[TensorType]) -> list[TensorType]:
    r = len(ts[0].shape)
    ax = node.attrs.get("axis", -1)
    if not -r <= ax < r:
        raise EdgeqError(f"{node.op} '{node.name}': axis {ax} is out of range for a rank-{r} "
                         f"input")
    return [TensorType(result_dtype(node, ts[0]), ts[0].shape)]


@kernel("Softmax")
def softmax(a: Attrs, x):
    ax = a.get("axis", -1)
    e = np.exp(x.astype(np.float64) - x.max(axis=ax, keepdims=True))
    return ((e / e.sum(axis=ax, keepdims=True)).astype(x.dtype),)


@kernel("QSoftmax")
def qsoftmax(a: Attrs, x):
    """e = table[max - x] (Q16 exp), y = y_zp + round(e * 256 / sum(e)) via a Newton reciprocal.
    The tflite flavor is TFLite's int8 SOFTMAX (edgeq.numerics.gemmlowp): Q0.31 exp table,
    Q12.19 sum, gemmlowp's reciprocal, rounding divides."""
    ax = a["axis"]
    if a.get("flavor") == "tflite":
        xi = x.astype(np.int64)
        e = np.asarray(a["exp_table"], np.int64)[xi.max(axis=ax, keepdims=True) - xi]
        total = gl.rdbpot(e, gl.ACCUMULATION_INTEGER_BITS).sum(axis=ax, keepdims=True)
        scale, bits = gl.reciprocal(total)
        return (out(gl.rdbpot(gl.srdhm(scale, e), bits + 23), a),)
    xi = x.astype(np.int64)
    d = xi.max(axis=ax, keepdims=True) - xi
    e = np.asarray(a["exp_table"], np.int64)[d]
    total = e.sum(axis=ax, keepdims=True)
    r, k = reciprocal(total)
    return (out(shift_round_half_up(e * r, k - 8), a),)


# --- quantize rule --------------------------------------------------------------------------


@quantize_rule("Softmax")
def _quantize_softmax(cv: Converter, node: Node) -> None:
    """QSoftmax runs over the last axis; another axis (distribution-focal-loss box heads take
    the softmax over axis 1) is moved last by a Transpose before and back after, which move
    integers only."""
    x = cv.get(node.inputs[0])
    if x.dtype != DType.INT8:
        raise EdgeqError(f"Softmax '{node.name}': needs an int8 input, got {x.dtype.value}")
    rank = len(x.shape)
    ax = node.attrs.get("axis", -1) % rank
    perm = [i for i in range(rank) if i != ax] + [ax]
    if ax != rank - 1:
        x = cv.intermediate("Transpose", [x], {"perm": perm}, x.qparams, x.dtype,
                            f"{node.name}/axis_last", move=True)
    attrs: Attrs = dict(axis=rank - 1, y_zp=-128, act_min=-128, act_max=127)
    if cv.cfg.rounding == "tflite":  # TFLite's own int8 softmax (gemmlowp fixed point)
        attrs.update(flavor="tflite", exp_table=gl.softmax_exp_table(
            float(np.float32(x.qparams.scale[0]))).astype(np.int32))
    else:
        d = np.arange(256, dtype=np.float64)
        attrs["exp_table"] = np.round(65536.0 * np.exp(-d * x.qparams.scale[0])).astype(
            np.int32)
    if ax == rank - 1:
        cv.emit("QSoftmax", node, [x], attrs, node.outputs[0], SOFTMAX_QPARAMS, DType.INT8)
        return
    y = cv.intermediate("QSoftmax", [x], attrs, SOFTMAX_QPARAMS, DType.INT8,
                        f"{node.name}/softmax")
    cv.move(node, "Transpose", [y], {"perm": [int(i) for i in np.argsort(perm)]})
