"""Element-wise functions of one input (Relu, Clip, Sigmoid, Tanh, HardSwish, HardSigmoid, Gelu,
Erf, LeakyRelu, scalar PRelu, Exp, Sqrt, Neg, Abs, Reciprocal, Rsqrt) and their integer form
QLookup: a 256-entry table, ``y = table[x + 128]``, exact by construction
(``table[i] = quantize(f(dequantize(i - 128)))``, docs/numerics.md).

PRelu with one slope per channel (``nn.PReLU(C)``) becomes QPRelu, TFLite's PRELU arithmetic:
slopes int8 symmetric per tensor (``s_a = max|a| / 127``), and
``y = y_zp + (d >= 0 ? rescale(d, M1) : rescale(d (a - a_zp), M2))`` with ``d = x - x_zp``,
``M1 = s_x / s_y``, ``M2 = s_x s_a / s_y`` (docs/numerics.md).

``apply_activation`` is the fused Relu / Clip that Conv, ConvTranspose, Gemm, MatMul and Add
carry after activation fusion (attribute ``activation``).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from edgeq.ir.graph import DType, EdgeqError, Node, QParams, TensorType
from edgeq.numerics.dyadic import effective_scale, quantize_multiplier, rescale
from edgeq.numerics.scheme import INT_RANGE
from edgeq.ops._integer import centered, out
from edgeq.ops.base import (KERNEL, Attrs, kernel, quantize_check, quantize_rule, result_dtype,
                            shape_rule, traits)

if TYPE_CHECKING:
    from edgeq.quant.convert import Converter

LOOKUP = ("Relu", "Clip", "Sigmoid", "Tanh", "HardSwish", "HardSigmoid", "Gelu", "Erf",
          "LeakyRelu", "PRelu", "Exp", "Sqrt", "Neg", "Abs", "Reciprocal", "Rsqrt")
traits(*LOOKUP, add=("elementwise", "lookup"))
traits("QLookup", add=("integer", "elementwise"))
traits("QPRelu", add=("integer", "elementwise"))


def apply_activation(y: np.ndarray, attrs: Attrs) -> np.ndarray:
    act = attrs.get("activation")
    if act is None:
        return y
    if act == "Relu":
        return np.maximum(y, 0).astype(y.dtype, copy=False)
    if act == "Clip":
        return np.clip(y, attrs["activation_min"], attrs["activation_max"]).astype(y.dtype,
                                                                                    copy=False)
    raise ValueError(f"unknown fused activation {act}")


@shape_rule(*LOOKUP, "QLookup", "QPRelu")
def _same_shape(node: Node, ts: list[TensorType]) -> list[TensorType]:
    if node.op in ("PRelu", "QPRelu") and len(ts) > 1:
        # the slope broadcasts to the input (unidirectionally: the output keeps x's shape)
        x, s = ts[0].shape, ts[1].shape
        if len(s) > len(x) or any(a not in (1, b) for a, b in zip(s[::-1], x[::-1])):
            raise EdgeqError(f"{node.op} '{node.name}': slope shape {list(s)} does not "
                             f"broadcast to the input shape {list(x)}")
    return [TensorType(result_dtype(node, ts[0]), ts[0].shape)]


# --- float kernels --------------------------------------------------------------------------

def _unary(fn):
    def k(a: Attrs, x):
        return (fn(x).astype(x.dtype, copy=False),)
    return k


def erf(x: np.ndarray) -> np.ndarray:
    """erf from a Chebyshev fit of erfc (erfc(z) = t * exp(P(t)), t = 1/(1 + z/2)), fractional
    error below 1.2e-7 everywhere: float32 precision, with numpy only."""
    xd = np.asarray(x, dtype=np.float64)
    z = np.abs(xd)
    t = 1.0 / (1.0 + 0.5 * z)
    poly = (-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (
        -0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (
            -0.82215223 + t * 0.17087277)))))))))
    erfc = t * np.exp(poly)
    return np.where(xd >= 0, 1.0 - erfc, erfc - 1.0)


def sigmoid(x):
    xd = np.asarray(x, dtype=np.float64)
    return np.where(xd >= 0, 1 / (1 + np.exp(-np.abs(xd))), np.exp(-np.abs(xd)) /
                    (1 + np.exp(-np.abs(xd))))


KERNEL["Relu"] = _unary(lambda x: np.maximum(x, 0))
KERNEL["Sigmoid"] = _unary(sigmoid)
KERNEL["Tanh"] = _unary(np.tanh)
KERNEL["Erf"] = _unary(erf)
KERNEL["Exp"] = _unary(np.exp)
KERNEL["Sqrt"] = _unary(np.sqrt)
KERNEL["Neg"] = _unary(np.negative)
KERNEL["Abs"] = _unary(np.abs)
KERNEL["Reciprocal"] = _unary(np.reciprocal)
KERNEL["HardSwish"] = _unary(lambda x: x * np.clip(x / 6.0 + 0.5, 0, 1))


@kernel("Rsqrt")
def rsqrt(a: Attrs, x):
    """edgeq-internal: 1 / sqrt(x + eps) (LayerNorm decomposed for TFLite targets)."""
    xd = x.astype(np.float64) + a.get("eps", 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return ((1.0 / np.sqrt(xd)).astype(x.dtype),)


@kernel("Clip")
def clip(a: Attrs, x):
    return (np.clip(x, a.get("min", -np.inf), a.get("max", np.inf)).astype(x.dtype, copy=False),)


@kernel("LeakyRelu")
def leaky_relu(a: Attrs, x):
    return (np.where(x >= 0, x, x * a.get("alpha", 0.01)).astype(x.dtype, copy=False),)


@kernel("PRelu")
def prelu(a: Attrs, x, slope):
    return (np.where(x >= 0, x, x * slope).astype(x.dtype, copy=False),)


@kernel("HardSigmoid")
def hard_sigmoid(a: Attrs, x):
    return (np.clip(a.get("alpha", 0.2) * x + a.get("beta", 0.5), 0, 1).astype(x.dtype,
                                                                                copy=False),)


@kernel("Gelu")
def gelu(a: Attrs, x):
    xd = x.astype(np.float64)
    if a.get("approximate", "none") == "tanh":
        y = 0.5 * xd * (1 + np.tanh(math.sqrt(2 / math.pi) * (xd + 0.044715 * xd ** 3)))
    else:
        y = 0.5 * xd * (1 + erf(xd / math.sqrt(2)))
    return (y.astype(x.dtype),)


# --- integer form ---------------------------------------------------------------------------

@kernel("QLookup")
def qlookup(a: Attrs, x):
    table = np.asarray(a["table"])
    lo = np.iinfo(x.dtype).min
    return (table[x.astype(np.int64) - lo].astype(a["dtype"]),)


@kernel("QPRelu")
def qprelu(a: Attrs, x, alpha):
    d = centered(x, a["x_zp"])
    pos = rescale(d, a["pos_mult"], a["pos_shift"], a["rounding"])
    neg = rescale(d * centered(alpha, a["a_zp"]), a["neg_mult"], a["neg_shift"], a["rounding"])
    return (out(np.where(d >= 0, pos, neg), a),)


@quantize_check("PRelu")
def _prelu_check(node: Node) -> str | None:
    """Per-channel slopes are constants (one slope: a lookup table; per channel: QPRelu)."""
    slope = node.inputs[1]
    if slope.type.size > 1 and not slope.is_const:
        return "per-channel slopes must be constants"
    return None


def _quantize_prelu_per_channel(cv: Converter, node: Node) -> None:
    x = cv.get(node.inputs[0])
    out_v = node.outputs[0]
    dtype = cv.dtype_of(out_v.name)
    qp = cv.out_qparams(out_v)
    slope = node.inputs[1].const.astype(np.float64)
    s_a = float(np.float32(max(float(np.abs(slope).max()), 1e-12) / 127))
    aq = np.clip(np.round(slope / s_a), -127, 127).astype(np.int8)
    av = cv.g.add_const(f"{node.name}/slope_q", aq)
    av.qparams = QParams((s_a,), (0,))
    m1, n1 = quantize_multiplier(effective_scale(x.qparams.scale[0], denominator=qp.scale[0]))
    m2, n2 = quantize_multiplier(effective_scale(x.qparams.scale[0], s_a,
                                                 denominator=qp.scale[0]))
    lo, hi = INT_RANGE[dtype]
    cv.emit("QPRelu", node, [x, av], dict(x_zp=x.qparams.zero_point[0], a_zp=0,
                                          y_zp=qp.zero_point[0], pos_mult=m1, pos_shift=n1,
                                          neg_mult=m2, neg_shift=n2, act_min=lo, act_max=hi),
            out_v, qp, dtype)


@quantize_rule(*LOOKUP)
def _quantize_lookup(cv: Converter, node: Node) -> None:
    """Element-wise function of one int8 input: a 256-entry table, exact by construction:
    table[q - qmin] = quantize(f(dequantize(q)))."""
    if node.op == "PRelu" and node.inputs[1].type.size > 1:
        return _quantize_prelu_per_channel(cv, node)
    x = cv.get(node.inputs[0])
    if x.dtype != DType.INT8:
        raise EdgeqError(f"{node.op} '{node.name}': lookup tables need an int8 input, got "
                         f"{x.dtype.value}")
    out_v = node.outputs[0]
    dtype = cv.dtype_of(out_v.name)
    qp = cv.out_qparams(out_v)
    lo, hi = INT_RANGE[dtype]
    qs = np.arange(-128, 128)
    xs = ((qs - x.qparams.zero_point[0]) * np.float64(x.qparams.scale[0])).astype(np.float32)
    if node.op == "PRelu":
        slope = float(node.inputs[1].const.reshape(-1)[0])
        ys = np.where(xs >= 0, xs, xs * slope)
    else:
        with np.errstate(all="ignore"):
            ys = KERNEL[node.op](node.attrs, xs)[0].astype(np.float64)
        ys = np.nan_to_num(ys, nan=0.0, posinf=qp.scale[0] * (hi - qp.zero_point[0]),
                           neginf=qp.scale[0] * (lo - qp.zero_point[0]))
    table = np.clip(np.round(ys / qp.scale[0]) + qp.zero_point[0], lo, hi).astype(dtype.numpy)
    cv.emit("QLookup", node, [x], dict(table=table), out_v, qp, dtype)
