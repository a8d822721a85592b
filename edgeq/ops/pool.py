"""Pooling and means: MaxPool, AveragePool, GlobalAveragePool, ReduceMean and the integer forms
QAveragePool, QGlobalAveragePool, QReduceMean (2-D pooling, NCHW; docs/numerics.md).

Output size ``floor((in + pads - ((k-1)*d + 1)) / s) + 1`` (ceil with ``ceil_mode``, and a last
window that starts in the padding is dropped). Integer forms: the sum of ``x - x_zp`` over the
window (padding contributes 0), divided by the element count as a dyadic multiply; with
``flavor = tflite`` TFLite's AVERAGE_POOL_2D (raw sum over the valid elements, integer division
rounding half away from zero, the input's quantization kept). MaxPool is data movement on
integers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from edgeq.ir.graph import EdgeqError, Node, TensorType
from edgeq.numerics.dyadic import (effective_scale, quantize_multiplier, quantize_multipliers,
                                   rescale)
from edgeq.numerics.scheme import INT_RANGE
from edgeq.ops._integer import centered, out, requant
from edgeq.ops.base import Attrs, kernel, quantize_rule, result_dtype, shape_rule, traits
from edgeq.ops.conv import check_padded, check_window, windows

if TYPE_CHECKING:
    from edgeq.quant.convert import Converter

traits("MaxPool", add=("spatial", "keeps_qparams", "moves_data", "int16_input",
                       "channel_scale_commutes"))
traits("AveragePool", add=("spatial", "int16_input", "channel_scale_commutes"))
traits("GlobalAveragePool", add=("int16_input", "channel_scale_commutes"))
traits("ReduceMean", add="int16_input")
traits("QAveragePool", add=("integer", "spatial"))
traits("QGlobalAveragePool", "QReduceMean", add="integer")
traits("ReduceMean", "QReduceMean", add="axis_attr")
traits("MaxPool", "AveragePool", "GlobalAveragePool", "QAveragePool", "QGlobalAveragePool",
       add="image")


def pool_output_hw(in_hw, kernel_shape, strides, pads, dilations, ceil_mode) -> tuple[int, int]:
    out = []
    for k in range(2):
        span = in_hw[k] + pads[k] + pads[k + 2] - ((kernel_shape[k] - 1) * dilations[k] + 1)
        o = (-(-span // strides[k]) if ceil_mode else span // strides[k]) + 1
        if ceil_mode and (o - 1) * strides[k] >= in_hw[k] + pads[k]:
            o -= 1  # the last window must start inside the input or its left padding
        out.append(o)
    return out[0], out[1]


def _pool_pad(x, attrs, value):
    """Pad for pooling, with room on the right for ceil_mode windows."""
    kh, kw = attrs["kernel_shape"]
    s, p = attrs["strides"], attrs["pads"]
    d = attrs.get("dilations", [1, 1])
    oh, ow = pool_output_hw(x.shape[2:], (kh, kw), s, p, d, attrs.get("ceil_mode", 0))
    need_h = (oh - 1) * s[0] + (kh - 1) * d[0] + 1
    need_w = (ow - 1) * s[1] + (kw - 1) * d[1] + 1
    extra_b = max(0, need_h - (x.shape[2] + p[0] + p[2]))
    extra_r = max(0, need_w - (x.shape[3] + p[1] + p[3]))
    xp = np.pad(x, ((0, 0), (0, 0), (p[0], p[2] + extra_b), (p[1], p[3] + extra_r)),
                constant_values=value)
    return np.ascontiguousarray(xp), (oh, ow), d


def avg_pool_divisor(in_hw, attrs) -> np.ndarray:
    """Per output pixel: how many window elements the average divides by (ONNX semantics)."""
    kh, kw = attrs["kernel_shape"]
    s, p = attrs["strides"], attrs["pads"]
    oh, ow = pool_output_hw(in_hw, (kh, kw), s, p, (1, 1), attrs.get("ceil_mode", 0))
    lo_h, hi_h = (-p[0], in_hw[0] + p[2]) if attrs.get("count_include_pad", 0) else (0, in_hw[0])
    lo_w, hi_w = (-p[1], in_hw[1] + p[3]) if attrs.get("count_include_pad", 0) else (0, in_hw[1])
    hs = np.arange(oh) * s[0] - p[0]
    ws = np.arange(ow) * s[1] - p[1]
    ch = np.minimum(hs + kh, hi_h) - np.maximum(hs, lo_h)
    cw = np.minimum(ws + kw, hi_w) - np.maximum(ws, lo_w)
    return np.outer(ch, cw)


# --- shapes ---------------------------------------------------------------------------------


@shape_rule("MaxPool", "AveragePool", "QAveragePool")
def _pool_shape(node, ts):
    x = ts[0]
    a = node.attrs
    if len(x.shape) != 4:
        raise EdgeqError(f"{node.op} '{node.name}': only 2-D pooling is supported, got input "
                         f"shape {list(x.shape)}")
    where = f"{node.op} '{node.name}'"
    k, pads = a["kernel_shape"], a["pads"]
    check_window(where, k, a["strides"], pads, a.get("dilations", [1, 1]))
    if any(pads[i] >= k[i % 2] for i in range(4)):
        raise EdgeqError(f"{where}: pads {list(pads)} must be smaller than the kernel "
                         f"{list(k)} (a window entirely in the padding)")
    check_padded(node, x, pads)
    oh, ow = pool_output_hw(x.shape[2:], k, a["strides"], pads,
                            a.get("dilations", [1, 1]), a.get("ceil_mode", 0))
    if oh <= 0 or ow <= 0:
        raise EdgeqError(f"{where}: kernel {list(k)} is larger than the padded input "
                         f"{list(x.shape[2:])}")
    return [TensorType(result_dtype(node, x), (x.shape[0], x.shape[1], oh, ow))]


@shape_rule("GlobalAveragePool", "QGlobalAveragePool")
def _gap_shape(node, ts):
    s = ts[0].shape
    return [TensorType(result_dtype(node, ts[0]), s[:2] + (1,) * (len(s) - 2))]


@shape_rule("ReduceMean", "QReduceMean")
def _reduce_shape(node, ts):
    s = ts[0].shape
    axes = node.attrs.get("axes")
    if axes is not None and (len(set(axes)) != len(axes) or
                             any(not 0 <= a < len(s) for a in axes)):
        raise EdgeqError(f"{node.op} '{node.name}': axes {list(axes)} must be distinct axes of "
                         f"the rank-{len(s)} input")
    axes = range(len(s)) if axes is None else axes
    keep = node.attrs.get("keepdims", 1)
    shape = tuple((1 if i in axes else d) for i, d in enumerate(s) if keep or i not in axes)
    return [TensorType(result_dtype(node, ts[0]), shape)]


# --- float kernels --------------------------------------------------------------------------


@kernel("MaxPool")
def max_pool(a: Attrs, x):
    lowest = -np.inf if x.dtype.kind == "f" else np.iinfo(x.dtype).min
    xp, ohw, d = _pool_pad(x, a, lowest)
    y = windows(xp, a["kernel_shape"], a["strides"], d, ohw).max(axis=(4, 5))
    return (y,)


@kernel("AveragePool")
def average_pool(a: Attrs, x):
    xp, ohw, d = _pool_pad(x, a, 0)
    sums = windows(xp, a["kernel_shape"], a["strides"], d, ohw).sum(axis=(4, 5), dtype=np.float64)
    return ((sums / avg_pool_divisor(x.shape[2:], a)).astype(x.dtype),)


@kernel("GlobalAveragePool")
def global_average_pool(a: Attrs, x):
    return (x.mean(axis=tuple(range(2, x.ndim)), keepdims=True, dtype=np.float64).astype(x.dtype),)


@kernel("ReduceMean")
def reduce_mean(a: Attrs, x):
    axes = a.get("axes")
    axes = tuple(axes) if axes is not None else None
    y = x.mean(axis=axes, keepdims=bool(a.get("keepdims", 1)), dtype=np.float64)
    return (np.asarray(y).astype(x.dtype),)


# --- integer kernels ------------------------------------------------------------------------


@kernel("QAveragePool")
def qaverage_pool(a: Attrs, x):
    if a.get("flavor") == "tflite":
        return _tflite_average_pool(a, x)
    xc = centered(x, a["x_zp"])
    xp, ohw, d = _pool_pad(xc, a, 0)
    acc = windows(xp, a["kernel_shape"], a["strides"], d, ohw).sum(axis=(4, 5))
    m = np.asarray(a["multiplier"], np.int64).reshape(ohw)
    n = np.asarray(a["shift"], np.int64).reshape(ohw)
    return (out(rescale(acc, m[None, None], n[None, None], a["rounding"]), a),)


def _tflite_average_pool(a: Attrs, x):
    """TFLite AVERAGE_POOL_2D: the raw int8 sum over the window's valid elements divided by
    their count, rounded half away from zero (integer division, TFLite's own rule); the output
    keeps the input's quantization."""
    xs, ohw, d = _pool_pad(x.astype(np.int64), a, 0)
    ones, _, _ = _pool_pad(np.ones((1, 1) + x.shape[2:], np.int64), a, 0)
    total = windows(xs, a["kernel_shape"], a["strides"], d, ohw).sum(axis=(4, 5))
    count = windows(ones, a["kernel_shape"], a["strides"], d, ohw).sum(axis=(4, 5))
    q = np.where(total > 0, (total + count // 2) // count, -((-total + count // 2) // count))
    return (np.clip(q, a["act_min"], a["act_max"]).astype(a["dtype"]),)


@kernel("QGlobalAveragePool")
def qglobal_average_pool(a: Attrs, x):
    acc = centered(x, a["x_zp"]).sum(axis=tuple(range(2, x.ndim)), keepdims=True)
    return (requant(acc, a),)


@kernel("QReduceMean")
def qreduce_mean(a: Attrs, x):
    axes = a.get("axes")
    acc = centered(x, a["x_zp"]).sum(axis=None if axes is None else tuple(axes),
                                      keepdims=bool(a.get("keepdims", 1)))
    return (requant(np.asarray(acc), a),)


# --- quantize rules -------------------------------------------------------------------------


@quantize_rule("AveragePool", "GlobalAveragePool", "ReduceMean")
def _quantize_average(cv: Converter, node: Node) -> None:
    x = cv.get(node.inputs[0])
    out = node.outputs[0]
    dtype = cv.dtype_of(out.name)
    qp = cv.out_qparams(out)
    lo, hi = INT_RANGE[dtype]
    attrs = dict(node.attrs, x_zp=x.qparams.zero_point[0], y_zp=qp.zero_point[0], act_min=lo,
                 act_max=hi)
    gap_like = node.op == "GlobalAveragePool" or (
        node.op == "ReduceMean" and node.attrs.get("axes") == [2, 3] and
        node.attrs.get("keepdims", 1) and len(x.shape) == 4)
    tflite_pool = node.op == "AveragePool" and not (
        node.attrs.get("count_include_pad", 0) and any(node.attrs["pads"]))
    if cv.cfg.rounding == "tflite" and (tflite_pool or gap_like):
        # TFLite's AVERAGE_POOL_2D: same quantization in and out, integer rounding division
        qp, dtype = x.qparams, x.dtype
        lo, hi = INT_RANGE[dtype]
        pool: Attrs = dict(node.attrs) if node.op == "AveragePool" else {
            "kernel_shape": list(x.shape[2:]), "strides": [1, 1], "pads": [0, 0, 0, 0]}
        pool.update(flavor="tflite", x_zp=x.qparams.zero_point[0], y_zp=qp.zero_point[0],
                    act_min=lo, act_max=hi)
        cv.emit("QAveragePool", node, [x], pool, out, qp, dtype)
        return
    if node.op == "AveragePool":
        counts = avg_pool_divisor(x.shape[2:], node.attrs).reshape(-1)
        ms, ns = quantize_multipliers(np.array([effective_scale(x.qparams.scale[0],
                                                                denominator=qp.scale[0]) / c
                                                for c in counts]))
        attrs.update(multiplier=ms, shift=ns)
        cv.emit("QAveragePool", node, [x], attrs, out, qp, dtype)
        return
    if node.op == "GlobalAveragePool":
        count = int(np.prod(x.shape[2:]))
    else:
        axes = node.attrs.get("axes")
        count = int(np.prod([x.shape[a] for a in (axes if axes is not None else
                                                   range(len(x.shape)))]))
    if cv.cfg.rounding == "tflite" and node.op == "ReduceMean":
        # TFLite has no integer MEAN with a rescale (its kernel requantizes in float): the
        # TFLite lowering is a FULLY_CONNECTED with weights of 1 at scale 1/count, so the
        # multiplier is derived from those float32 scales as TFLite derives it
        w_scale = float(np.float32(1.0 / count))
        m, n = quantize_multiplier(effective_scale(x.qparams.scale[0], w_scale,
                                                   denominator=qp.scale[0]))
        attrs.update(fc_weight_scale=w_scale)
    else:
        m, n = quantize_multiplier(effective_scale(x.qparams.scale[0],
                                                   denominator=qp.scale[0]) / count)
    attrs.update(multiplier=m, shift=n)
    cv.emit("Q" + node.op, node, [x], attrs, out, qp, dtype)


@quantize_rule("MaxPool")
def _quantize_max_pool(cv: Converter, node: Node) -> None:
    cv.passthrough(node)
