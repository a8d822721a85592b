"""Binary element-wise ops (numpy broadcasting): Add, Sub, Mul, Div, Pow, Max, Min, Equal,
Where, and the integer forms QAdd, QMul and Requantize (docs/numerics.md):

- QAdd (Add, Sub): two input scales, one rounding,
  ``y = out(rescale((a - a_zp) a_mult + (b - b_zp) b_mult, 1, n))``; with ``flavor = tflite``
  TFLite's ADD/SUB (inputs << 20, rescaled each, summed, rescaled);
- QMul: ``acc = (a - a_zp) * (b - b_zp)``, ``M = s_a s_b / s_y``; a scalar or per-channel
  constant is quantized symmetric int8 with per-channel ``M[c]``; Div by a constant is Mul by
  its reciprocal;
- Requantize: ``y = out(rescale(x - x_zp, m, n))``, ``M = s_x / s_y``;
- QMax, QMin (Max, Min with a tensor or a constant): each input requantized to the output's
  parameters (``clamp(y_zp + rescale(x - x_zp, M_x))``, skipped for an input that already has
  them), then the larger or smaller: TFLite's QUANTIZE then MAXIMUM / MINIMUM.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from edgeq.ir.graph import DType, EdgeqError, Node, QParams, TensorType
from edgeq.numerics.dyadic import (effective_scale, quantize_multiplier, quantize_multipliers,
                                   rescale)
from edgeq.numerics.scheme import f32
from edgeq.ops._integer import centered, out, requant
from edgeq.ops._quantize import detached_const
from edgeq.ops.activation import apply_activation
from edgeq.ops.base import (KERNEL, Attrs, kernel, quantize_check, quantize_rule, result_dtype,
                            shape_rule, traits)

if TYPE_CHECKING:
    from edgeq.quant.convert import Converter

traits("Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Equal", "Where", add="elementwise")
traits("Add", add="fuses_activation")
traits("Add", "Sub", "Mul", "Div", add="int16_input")
traits("QAdd", "QMul", "Requantize", "QMax", "QMin", add=("integer", "elementwise"))


def broadcast(node: Node, shapes: list[tuple[int, ...]]) -> tuple[int, ...]:
    try:
        return tuple(int(d) for d in np.broadcast_shapes(*shapes))
    except ValueError:
        raise EdgeqError(f"{node.op} '{node.name}': input shapes "
                         f"{', '.join(str(list(s)) for s in shapes)} do not broadcast") from None


@shape_rule("Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "QAdd", "QMul", "QMax", "QMin")
def _elementwise_shape(node, ts):
    return [TensorType(result_dtype(node, ts[0]), broadcast(node, [t.shape for t in ts]))]


@shape_rule("Requantize")
def _requantize_shape(node, ts):
    return [TensorType(result_dtype(node, ts[0]), ts[0].shape)]


@shape_rule("Equal")
def _compare_shape(node, ts):
    return [TensorType(DType.BOOL, broadcast(node, [t.shape for t in ts]))]


@shape_rule("Where")
def _where_shape(node, ts):
    return [TensorType(ts[1].dtype, broadcast(node, [t.shape for t in ts]))]


# --- float kernels --------------------------------------------------------------------------

def _binary(fn):
    def k(a: Attrs, x, y):
        out = fn(x, y)
        if x.dtype.kind == "f":
            out = out.astype(np.result_type(x, y), copy=False)
        return (apply_activation(out, a),)
    return k


KERNEL["Add"] = _binary(np.add)
KERNEL["Sub"] = _binary(np.subtract)
KERNEL["Mul"] = _binary(np.multiply)
KERNEL["Max"] = _binary(np.maximum)
KERNEL["Min"] = _binary(np.minimum)


@kernel("Pow")
def pow_(a: Attrs, x, y):
    if x.dtype.kind in "iub":  # numpy refuses negative integer powers; ONNX: the base's type
        with np.errstate(all="ignore"):
            return (np.power(x.astype(np.float64), y.astype(np.float64)).astype(x.dtype),)
    return (np.power(x, y).astype(x.dtype, copy=False),)


@kernel("Div")
def div(a: Attrs, x, y):
    if x.dtype.kind in "iu":
        return (np.trunc(x / y).astype(x.dtype),)  # ONNX integer Div truncates
    return ((x / y).astype(x.dtype, copy=False),)


@kernel("Equal")
def equal(a: Attrs, x, y):
    return (np.equal(x, y),)


@kernel("Where")
def where(a: Attrs, c, x, y):
    return (np.where(c, x, y),)


# --- integer kernels ------------------------------------------------------------------------

@kernel("QAdd")
def qadd(a: Attrs, x, y):
    """y_zp + rescale((x - x_zp) * a_mult + (y - y_zp_in) * b_mult, 1, shift); the tflite
    flavor follows TFLite's ADD/SUB (inputs << 20, rescaled each, summed, rescaled)."""
    if a.get("flavor") == "tflite":
        r = "tflite"
        sa = rescale(centered(x, a["a_zp"]) << 20, a["a_mult"], a["a_shift"], r)
        sb = rescale(centered(y, a["b_zp"]) << 20, a["b_mult"], a["b_shift"], r)
        total = sa - sb if a.get("subtract") else sa + sb
        return (out(rescale(total, a["multiplier"], a["shift"], r), a),)
    ax = a.get("axis")
    am = np.asarray(a["a_mult"], np.int64)
    bm = np.asarray(a["b_mult"], np.int64)
    if bm.size > 1:
        shape = [1] * max(x.ndim, y.ndim)
        shape[ax] = bm.size
        bm = bm.reshape(shape)
    acc = centered(x, a["a_zp"]) * am + centered(y, a["b_zp"]) * bm
    return (out(rescale(acc, 1, a["shift"], a["rounding"]), a),)


@kernel("QMul")
def qmul(a: Attrs, x, y):
    acc = centered(x, a["a_zp"]) * centered(y, a["b_zp"])
    return (requant(acc, a, axis=a.get("axis")),)


@kernel("Requantize")
def requantize(a: Attrs, x):
    return (requant(centered(x, a["x_zp"]), a),)


def _at_output(x, zp, m, n, a: Attrs) -> np.ndarray:
    """An input at the output's parameters, clamped to the output dtype (TFLite's QUANTIZE)."""
    if m is None:
        return x.astype(np.int64)
    lo, hi = np.iinfo(a["dtype"]).min, np.iinfo(a["dtype"]).max
    return np.clip(rescale(centered(x, zp), m, n, a["rounding"]) + a["y_zp"], lo, hi)


def _min_max(pick):
    def k(a: Attrs, x, y):
        xa = _at_output(x, a["a_zp"], a["a_mult"], a["a_shift"], a)
        ya = _at_output(y, a["b_zp"], a["b_mult"], a["b_shift"], a)
        return (np.clip(pick(xa, ya), a["act_min"], a["act_max"]).astype(a["dtype"]),)
    return k


KERNEL["QMax"] = _min_max(np.maximum)
KERNEL["QMin"] = _min_max(np.minimum)


# --- quantize rules -------------------------------------------------------------------------

@quantize_check("Add", "Sub", "Mul", "Max", "Min")
def _all_const_check(node: Node) -> str | None:
    """At least one input is computed at run time (constant folding removes the rest)."""
    if all(v.is_const for v in node.inputs):
        return "all inputs constant (run constant folding first)"
    return None


@quantize_check("Div")
def _div_check(node: Node) -> str | None:
    """The divisor is a constant (division becomes a multiply by its reciprocal)."""
    if not node.inputs[1].is_const:
        return "division by a tensor computed at run time has no integer form"
    return None


@quantize_rule("Add", "Sub")
def _quantize_add(cv: Converter, node: Node) -> None:
    a, b = cv.get(node.inputs[0]), cv.get(node.inputs[1])
    out = node.outputs[0]
    dtype = cv.dtype_of(out.name)
    qp = cv.out_qparams(out)
    ma = effective_scale(a.qparams.scale[0], denominator=qp.scale[0])
    mb = effective_scale(b.qparams.scale[0], denominator=qp.scale[0])
    _, shift = quantize_multiplier(max(ma, mb))
    sign = -1 if node.op == "Sub" else 1
    lo, hi = cv.act_bounds(node, qp, dtype)
    if cv.cfg.rounding == "tflite":  # TFLite's ADD/SUB arithmetic (docs/numerics.md)
        twice_max = 2 * max(f32(a.qparams.scale[0]), f32(b.qparams.scale[0]))
        am, an = quantize_multiplier(f32(a.qparams.scale[0]) / twice_max)
        bm, bn = quantize_multiplier(f32(b.qparams.scale[0]) / twice_max)
        om, on = quantize_multiplier(twice_max / ((1 << 20) * f32(qp.scale[0])))
        cv.emit("QAdd", node, [a, b], dict(
            flavor="tflite", a_zp=a.qparams.zero_point[0], b_zp=b.qparams.zero_point[0],
            y_zp=qp.zero_point[0], a_mult=am, a_shift=an, b_mult=bm, b_shift=bn, multiplier=om,
            shift=on, subtract=int(node.op == "Sub"), act_min=lo, act_max=hi), out, qp, dtype)
        return
    cv.emit("QAdd", node, [a, b], dict(a_zp=a.qparams.zero_point[0],
                                       b_zp=b.qparams.zero_point[0], y_zp=qp.zero_point[0],
                                       a_mult=int(round(ma * 2 ** shift)),
                                       b_mult=sign * int(round(mb * 2 ** shift)), shift=shift,
                                       act_min=lo, act_max=hi), out, qp, dtype)


@quantize_rule("Max", "Min")
def _quantize_min_max(cv: Converter, node: Node) -> None:
    a, b = cv.get(node.inputs[0]), cv.get(node.inputs[1])
    out_v = node.outputs[0]
    dtype = cv.dtype_of(out_v.name)
    qp = cv.out_qparams(out_v)
    lo, hi = cv.act_bounds(node, qp, dtype)

    def to_output(v):
        if v.qparams == qp and v.dtype == dtype:
            return None, None
        return quantize_multiplier(effective_scale(v.qparams.scale[0], denominator=qp.scale[0]))
    (am, an), (bm, bn) = to_output(a), to_output(b)
    cv.emit("Q" + node.op, node, [a, b], dict(
        a_zp=a.qparams.zero_point[0], b_zp=b.qparams.zero_point[0], y_zp=qp.zero_point[0],
        a_mult=am, a_shift=an, b_mult=bm, b_shift=bn, act_min=lo, act_max=hi), out_v, qp, dtype)


@quantize_rule("Mul", "Div")
def _quantize_mul(cv: Converter, node: Node) -> None:
    x_f, c_f = node.inputs[0], node.inputs[1]
    if x_f.is_const:
        x_f, c_f = c_f, x_f
    out = node.outputs[0]
    dtype = cv.dtype_of(out.name)
    qp = cv.out_qparams(out)
    x = cv.get(x_f)
    lo, hi = cv.act_bounds(node, qp, dtype)
    attrs: Attrs = dict(a_zp=x.qparams.zero_point[0], y_zp=qp.zero_point[0], act_min=lo,
                        act_max=hi)
    if not c_f.is_const:
        b = cv.get(c_f)
        m, n = quantize_multiplier(effective_scale(x.qparams.scale[0], b.qparams.scale[0],
                                                   denominator=qp.scale[0]))
        attrs.update(b_zp=b.qparams.zero_point[0], multiplier=m, shift=n)
        cv.emit("QMul", node, [x, b], attrs, out, qp, dtype)
        return
    c = c_f.const.astype(np.float64)
    if node.op == "Div":
        c = 1.0 / c
    rank = len(out.shape)
    full = (1,) * (rank - c.ndim) + c.shape
    per_channel = c.size > 1 and rank >= 2 and full[1] == c.size and \
        all(d == 1 for i, d in enumerate(full) if i != 1) and cv.cfg.rounding != "tflite"
    if c.size == 1 or per_channel:
        flat = c.reshape(-1)
        # symmetric int8 per channel; the sign goes into the integer, the scale stays positive
        amax = np.abs(flat)
        s_c = np.where(amax > 0, amax / 127, 1.0).astype(np.float32)
        cq = np.round(flat / s_c).astype(np.int8)
        ms, ns = quantize_multipliers(np.array([effective_scale(x.qparams.scale[0], s,
                                                                denominator=qp.scale[0])
                                                for s in s_c]))
        cv_ = cv.g.add_const(f"{node.name}/const_q", cq.reshape(c.shape))
        cv_.qparams = QParams(tuple(float(s) for s in s_c), (0,) * len(s_c),
                              axis=1 if per_channel else None)
        attrs.update(b_zp=0, multiplier=ms, shift=ns, axis=1 if per_channel else None)
        cv.emit("QMul", node, [x, cv_], attrs, out, qp, dtype)
        return
    b = cv.get(c_f) if node.op == "Mul" else cv.get(
        detached_const(f"{node.name}/reciprocal", c.astype(np.float32)))
    m, n = quantize_multiplier(effective_scale(x.qparams.scale[0], b.qparams.scale[0],
                                               denominator=qp.scale[0]))
    attrs.update(b_zp=b.qparams.zero_point[0], multiplier=m, shift=n)
    cv.emit("QMul", node, [x, b], attrs, out, qp, dtype)
