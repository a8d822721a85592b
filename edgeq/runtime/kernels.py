"""Float reference kernels (numpy only), one function per op, ONNX semantics.

Every kernel takes the node's attributes (in the canonical form the frontend produces: static
parameters are attributes, never tensor inputs) and numpy arrays, and returns a tuple of arrays.
Spatial ops are 2-D, NCHW. The ``activation`` attribute (set by the activation-fusion pass) is
applied by ``apply_activation`` after Conv, ConvTranspose, Gemm, MatMul and Add.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
from numpy.lib.stride_tricks import as_strided
from edgeq.ir.registry import registrar

Attrs = dict[str, Any]
KERNELS: dict[str, Callable[..., tuple[np.ndarray, ...]]] = {}


kernel = registrar(KERNELS)


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


# --- spatial helpers (shared with the integer interpreter) ----------------------------------------

def windows(x: np.ndarray, kernel_shape, strides, dilations, out_hw) -> np.ndarray:
    """View (N, C, OH, OW, KH, KW) of an already padded NCHW array; no copy."""
    n, c, _, _ = x.shape
    sn, sc, sh, sw = x.strides
    return as_strided(x, shape=(n, c, out_hw[0], out_hw[1], kernel_shape[0], kernel_shape[1]),
                      strides=(sn, sc, sh * strides[0], sw * strides[1], sh * dilations[0],
                               sw * dilations[1]), writeable=False)


def pad_nchw(x: np.ndarray, pads, value=0) -> np.ndarray:
    top, left, bottom, right = pads[0], pads[1], pads[2], pads[3]
    if not (top or left or bottom or right):
        return x
    return np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)), constant_values=value)


def conv2d(x: np.ndarray, w: np.ndarray, attrs: Attrs, acc=np.float32) -> np.ndarray:
    """Grouped 2-D convolution without bias, accumulating in ``acc`` (exact for integer inputs
    in float64 while partial sums stay below 2**53)."""
    kh, kw = attrs["kernel_shape"]
    s, d, g = attrs["strides"], attrs["dilations"], attrs["group"]
    xp = pad_nchw(x, attrs["pads"], attrs.get("pad_value", 0))
    n, c, hp, wp = xp.shape
    oh = (hp - (kh - 1) * d[0] - 1) // s[0] + 1
    ow = (wp - (kw - 1) * d[1] - 1) // s[1] + 1
    m = w.shape[0]
    cg, mg = c // g, m // g
    xp = xp.astype(acc, copy=False)
    wa = w.astype(acc, copy=False)
    if cg == 1 and mg == 1:  # depthwise: a sum of shifted products, no im2col
        out = np.zeros((n, c, oh, ow), acc)
        for i in range(kh):
            for j in range(kw):
                sl = xp[:, :, i * d[0]: i * d[0] + s[0] * (oh - 1) + 1: s[0],
                        j * d[1]: j * d[1] + s[1] * (ow - 1) + 1: s[1]]
                out += sl * wa[:, 0, i, j][None, :, None, None]
        return out
    cols = windows(np.ascontiguousarray(xp), (kh, kw), s, d, (oh, ow))
    # (N, G, Cg, OH, OW, KH, KW) -> (G, N*OH*OW, Cg*KH*KW)
    cols = cols.reshape(n, g, cg, oh, ow, kh, kw).transpose(1, 0, 3, 4, 2, 5, 6)
    cols = cols.reshape(g, n * oh * ow, cg * kh * kw)
    wm = wa.reshape(g, mg, cg * kh * kw).transpose(0, 2, 1)
    out = np.matmul(cols, wm)  # (G, N*OH*OW, Mg)
    return out.reshape(g, n, oh, ow, mg).transpose(1, 0, 4, 2, 3).reshape(n, m, oh, ow)


def conv_transpose2d(x: np.ndarray, w: np.ndarray, attrs: Attrs, acc=np.float32) -> np.ndarray:
    """Scatter form: every input pixel adds W[c, :, i, j] * x at stride*pos + dilation*(i, j)."""
    kh, kw = attrs["kernel_shape"]
    s, d, g = attrs["strides"], attrs["dilations"], attrs["group"]
    pads, opad = attrs["pads"], attrs["output_padding"]
    n, c, h, wd = x.shape
    mg = w.shape[1]
    cg = c // g
    full_h = s[0] * (h - 1) + (kh - 1) * d[0] + 1 + opad[0]
    full_w = s[1] * (wd - 1) + (kw - 1) * d[1] + 1 + opad[1]
    out = np.zeros((n, g * mg, full_h, full_w), acc)
    xa = x.astype(acc, copy=False)
    wa = w.astype(acc, copy=False)
    for gi in range(g):
        xg = xa[:, gi * cg:(gi + 1) * cg]
        for i in range(kh):
            for j in range(kw):
                contrib = np.einsum("nchw,cm->nmhw", xg, wa[gi * cg:(gi + 1) * cg, :, i, j])
                out[:, gi * mg:(gi + 1) * mg, i * d[0]: i * d[0] + s[0] * (h - 1) + 1: s[0],
                    j * d[1]: j * d[1] + s[1] * (wd - 1) + 1: s[1]] += contrib
    return out[:, :, pads[0]: full_h - pads[2], pads[1]: full_w - pads[3]]


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


@kernel("MaxPool")
def max_pool(a: Attrs, x):
    lowest = -np.inf if x.dtype.kind == "f" else np.iinfo(x.dtype).min
    xp, ohw, d = _pool_pad(x, a, lowest)
    y = windows(xp, a["kernel_shape"], a["strides"], d, ohw).max(axis=(4, 5))
    return (y,)


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


@kernel("AveragePool")
def average_pool(a: Attrs, x):
    xp, ohw, d = _pool_pad(x, a, 0)
    sums = windows(xp, a["kernel_shape"], a["strides"], d, ohw).sum(axis=(4, 5), dtype=np.float64)
    return ((sums / avg_pool_divisor(x.shape[2:], a)).astype(x.dtype),)


@kernel("GlobalAveragePool")
def global_average_pool(a: Attrs, x):
    return (x.mean(axis=tuple(range(2, x.ndim)), keepdims=True, dtype=np.float64).astype(x.dtype),)


def _conv_kernel(core):
    def k(a: Attrs, x, w, b=None):
        y = core(x, w, a)
        if b is not None:
            y = y + b.reshape(1, -1, 1, 1)
        return (apply_activation(y.astype(x.dtype, copy=False), a),)
    return k


KERNELS["Conv"] = _conv_kernel(conv2d)
KERNELS["ConvTranspose"] = _conv_kernel(conv_transpose2d)


@kernel("Gemm")
def gemm(a: Attrs, x, w, c=None):
    xa = x.T if a.get("transA", 0) else x
    wa = w.T if a.get("transB", 0) else w
    y = a.get("alpha", 1.0) * (xa @ wa)
    if c is not None:
        y = y + a.get("beta", 1.0) * c
    return (apply_activation(y.astype(x.dtype, copy=False), a),)


@kernel("MatMul")
def matmul(a: Attrs, x, w):
    return (apply_activation(np.matmul(x, w), a),)


def _binary(fn):
    def k(a: Attrs, x, y):
        out = fn(x, y)
        if x.dtype.kind == "f":
            out = out.astype(np.result_type(x, y), copy=False)
        return (apply_activation(out, a),)
    return k


KERNELS["Add"] = _binary(np.add)
KERNELS["Sub"] = _binary(np.subtract)
KERNELS["Mul"] = _binary(np.multiply)
KERNELS["Pow"] = _binary(np.power)
KERNELS["Max"] = _binary(np.maximum)
KERNELS["Min"] = _binary(np.minimum)


@kernel("Div")
def div(a: Attrs, x, y):
    if x.dtype.kind in "iu":
        return (np.trunc(x / y).astype(x.dtype),)  # ONNX integer Div truncates
    return ((x / y).astype(x.dtype, copy=False),)


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


KERNELS["Relu"] = _unary(lambda x: np.maximum(x, 0))
KERNELS["Sigmoid"] = _unary(sigmoid)
KERNELS["Tanh"] = _unary(np.tanh)
KERNELS["Erf"] = _unary(erf)
KERNELS["Exp"] = _unary(np.exp)
KERNELS["Sqrt"] = _unary(np.sqrt)
KERNELS["Neg"] = _unary(np.negative)
KERNELS["Abs"] = _unary(np.abs)
KERNELS["Reciprocal"] = _unary(np.reciprocal)
KERNELS["HardSwish"] = _unary(lambda x: x * np.clip(x / 6.0 + 0.5, 0, 1))


@kernel("Rsqrt")
def rsqrt(a: Attrs, x):
    """edgeq-internal: 1 / sqrt(x + eps) (LayerNorm decomposed for TFLite targets)."""
    xd = x.astype(np.float64) + a.get("eps", 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return ((1.0 / np.sqrt(xd)).astype(x.dtype),)


@kernel("Identity", "Dropout")
def identity(a: Attrs, x, *rest):
    return (x,)


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


@kernel("Softmax")
def softmax(a: Attrs, x):
    ax = a.get("axis", -1)
    e = np.exp(x.astype(np.float64) - x.max(axis=ax, keepdims=True))
    return ((e / e.sum(axis=ax, keepdims=True)).astype(x.dtype),)


@kernel("BatchNormalization")
def batch_norm(a: Attrs, x, scale, bias, mean, var):
    shape = (1, -1) + (1,) * (x.ndim - 2)
    inv = scale / np.sqrt(var.astype(np.float64) + a.get("epsilon", 1e-5))
    y = (x - mean.reshape(shape)) * inv.reshape(shape) + bias.reshape(shape)
    return (y.astype(x.dtype),)


@kernel("LayerNormalization")
def layer_norm(a: Attrs, x, scale=None, bias=None):
    axes = tuple(range(a.get("axis", -1) % x.ndim, x.ndim))
    xd = x.astype(np.float64)
    mu = xd.mean(axis=axes, keepdims=True)
    var = ((xd - mu) ** 2).mean(axis=axes, keepdims=True)
    y = (xd - mu) / np.sqrt(var + a.get("epsilon", 1e-5))
    if scale is not None:
        y = y * scale
    if bias is not None:
        y = y + bias
    return (y.astype(x.dtype),)


@kernel("LRN")
def lrn(a: Attrs, x):
    size = a["size"]
    sq = (x.astype(np.float64)) ** 2
    c = x.shape[1]
    lo, hi = (size - 1) // 2, size - 1 - (size - 1) // 2
    padded = np.pad(sq, ((0, 0), (lo, hi)) + ((0, 0),) * (x.ndim - 2))
    csum = np.cumsum(padded, axis=1)
    csum = np.concatenate([np.zeros_like(csum[:, :1]), csum], axis=1)
    win = csum[:, size:size + c] - csum[:, :c]
    y = x / (a.get("bias", 1.0) + a.get("alpha", 1e-4) / size * win) ** a.get("beta", 0.75)
    return (y.astype(x.dtype),)


@kernel("ReduceMean")
def reduce_mean(a: Attrs, x):
    axes = a.get("axes")
    axes = tuple(axes) if axes is not None else None
    y = x.mean(axis=axes, keepdims=bool(a.get("keepdims", 1)), dtype=np.float64)
    return (np.asarray(y).astype(x.dtype),)


@kernel("Concat")
def concat(a: Attrs, *xs):
    return (np.concatenate(xs, axis=a["axis"]),)


@kernel("Split")
def split(a: Attrs, x):
    idx = np.cumsum(a["split"])[:-1]
    return tuple(np.split(x, idx, axis=a["axis"]))


@kernel("Slice")
def slice_(a: Attrs, x):
    sl = [slice(None)] * x.ndim
    for st, en, ax, sp in zip(a["starts"], a["ends"], a["axes"], a["steps"]):
        sl[ax] = slice(st, None if en is None else en, sp)
    return (x[tuple(sl)],)


@kernel("Pad")
def pad(a: Attrs, x):
    p = a["pads"]
    r = x.ndim
    begin, end = p[:r], p[r:]
    # negative pads crop
    sl = tuple(slice(max(0, -b), x.shape[i] - max(0, -e)) for i, (b, e) in
               enumerate(zip(begin, end)))
    x = x[sl]
    width = [(max(0, b), max(0, e)) for b, e in zip(begin, end)]
    mode = a.get("mode", "constant")
    if mode == "constant":
        return (np.pad(x, width, constant_values=a.get("value", 0)),)
    return (np.pad(x, width, mode={"reflect": "reflect", "edge": "edge"}[mode]),)


@kernel("Reshape")
def reshape(a: Attrs, x):
    return (x.reshape(a["shape"]),)


@kernel("Transpose")
def transpose(a: Attrs, x):
    return (np.transpose(x, a["perm"]),)


@kernel("Gather")
def gather(a: Attrs, x, idx):
    return (np.take(x, idx.astype(np.int64), axis=a.get("axis", 0)),)


@kernel("Cast")
def cast(a: Attrs, x):
    return (x.astype(a["to"]),)


@kernel("Shape")
def shape(a: Attrs, x):
    dims = np.array(x.shape, dtype=np.int64)
    return (dims[a.get("start", 0): a.get("end")],)


@kernel("ConstantOfShape")
def constant_of_shape(a: Attrs, s):
    v = a.get("value", np.zeros(1, np.float32))
    return (np.full(tuple(int(d) for d in s), v.reshape(-1)[0], dtype=v.dtype),)


@kernel("Expand")
def expand(a: Attrs, x, s):
    shape = np.broadcast_shapes(x.shape, tuple(int(d) for d in s))
    return (np.ascontiguousarray(np.broadcast_to(x, shape)),)


@kernel("Equal")
def equal(a: Attrs, x, y):
    return (np.equal(x, y),)


@kernel("Where")
def where(a: Attrs, c, x, y):
    return (np.where(c, x, y),)


@kernel("Range")
def range_(a: Attrs, start, limit, delta):
    return (np.arange(start, limit, delta).astype(start.dtype),)


def resize_coords(out_len: int, in_len: int, scale: float, mode: str) -> np.ndarray:
    """Source coordinate of each output index (ONNX Resize coordinate_transformation_mode)."""
    x = np.arange(out_len, dtype=np.float64)
    if mode == "half_pixel":
        return (x + 0.5) / scale - 0.5
    if mode == "pytorch_half_pixel":
        return (x + 0.5) / scale - 0.5 if out_len > 1 else np.zeros_like(x)
    if mode == "align_corners":
        return x * (in_len - 1) / (out_len - 1) if out_len > 1 else np.zeros_like(x)
    if mode == "asymmetric":
        return x / scale
    if mode == "tf_half_pixel_for_nn":
        return (x + 0.5) / scale
    raise ValueError(f"coordinate_transformation_mode {mode}")


def _nearest(c: np.ndarray, mode: str) -> np.ndarray:
    if mode == "floor":
        return np.floor(c)
    if mode == "ceil":
        return np.ceil(c)
    if mode == "round_prefer_ceil":
        return np.floor(c + 0.5)
    return np.ceil(c - 0.5)  # round_prefer_floor (the default)


@kernel("Resize")
def resize(a: Attrs, x):
    y = x
    for ax, (out_len, scale) in enumerate(zip(a["sizes"], a["scales"])):
        in_len = y.shape[ax]
        if out_len == in_len and scale == 1.0:
            continue
        c = resize_coords(out_len, in_len, scale, a["coordinate_transformation_mode"])
        if a["mode"] == "nearest":
            idx = np.clip(_nearest(c, a.get("nearest_mode", "round_prefer_floor")), 0,
                          in_len - 1).astype(np.int64)
            y = np.take(y, idx, axis=ax)
        else:
            c = np.clip(c, 0, in_len - 1)
            lo = np.floor(c).astype(np.int64)
            hi = np.minimum(lo + 1, in_len - 1)
            wgt = (c - lo).reshape([-1 if i == ax else 1 for i in range(y.ndim)])
            y = np.take(y, lo, axis=ax) * (1 - wgt) + np.take(y, hi, axis=ax) * wgt
    return (y.astype(x.dtype),)
