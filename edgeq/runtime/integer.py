"""Integer kernels: the exact semantics of every integer op (docs/numerics.md is the spec).

Inputs and outputs are int8 (or int16) arrays; accumulators are int64. Products of integers are
summed through float64 matrix multiply where that is faster: each product is below 2**17 and the
sums stay far below 2**53, so float64 holds them exactly and the result is converted back to int64
before any rescale. Every rescale is ``dyadic.rescale`` with the node's ``rounding`` rule.
"""

from __future__ import annotations

import numpy as np

from edgeq.quant.dyadic import rescale, rescale_float64
from edgeq.runtime.kernels import KERNELS, _pool_pad, conv2d, conv_transpose2d, kernel, windows

Attrs = dict


def _to_int(acc: np.ndarray) -> np.ndarray:
    return np.rint(acc).astype(np.int64)  # exact: acc holds integers below 2**53


def _out(y: np.ndarray, a: Attrs) -> np.ndarray:
    """Add the output zero point, clamp to [act_min, act_max], cast to the output dtype."""
    y = y + a["y_zp"]
    return np.clip(y, a["act_min"], a["act_max"]).astype(a["dtype"])


def _requant(acc: np.ndarray, a: Attrs, axis: int | None = None) -> np.ndarray:
    if a["rounding"] == "float64":  # a runtime that requantizes in float (docs/numerics.md)
        return _out(rescale_float64(acc, a["real_scale"], axis), a)
    return _out(rescale(acc, a["multiplier"], a["shift"], a["rounding"], axis), a)


def _centered(x: np.ndarray, zp: int) -> np.ndarray:
    return x.astype(np.int64) - zp


def _qconv_kernel(core):
    def k(a: Attrs, x, w, b=None):
        # centering first makes zero padding equal to padding x with its zero point
        acc = _to_int(core(_centered(x, a["x_zp"]), w, a, acc=np.float64))
        if b is not None:
            acc = acc + b.astype(np.int64).reshape(1, -1, 1, 1)
        return (_requant(acc, a, axis=1),)
    return k


KERNELS["QConv"] = _qconv_kernel(conv2d)
KERNELS["QConvTranspose"] = _qconv_kernel(conv_transpose2d)


@kernel("QGemm")
def qgemm(a: Attrs, x, w, b=None):
    """x (..., K) int, w (N, K) int8 per-output-channel, b (N,) int32; channel axis is last."""
    acc = _to_int(np.matmul(_centered(x, a["x_zp"]).astype(np.float64),
                            w.astype(np.float64).T))
    if b is not None:
        acc = acc + b.astype(np.int64)
    return (_requant(acc, a, axis=-1),)


@kernel("QMatMul")
def qmatmul(a: Attrs, x, y):
    acc = _to_int(np.matmul(_centered(x, a["a_zp"]).astype(np.float64),
                            _centered(y, a["b_zp"]).astype(np.float64)))
    return (_requant(acc, a),)


@kernel("QAdd")
def qadd(a: Attrs, x, y):
    """y_zp + rescale((x - x_zp) * a_mult + (y - y_zp_in) * b_mult, 1, shift); the tflite
    flavor follows TFLite's ADD/SUB (inputs << 20, rescaled each, summed, rescaled)."""
    if a.get("flavor") == "tflite":
        r = "tflite"
        sa = rescale(_centered(x, a["a_zp"]) << 20, a["a_mult"], a["a_shift"], r)
        sb = rescale(_centered(y, a["b_zp"]) << 20, a["b_mult"], a["b_shift"], r)
        total = sa - sb if a.get("subtract") else sa + sb
        return (_out(rescale(total, a["multiplier"], a["shift"], r), a),)
    ax = a.get("axis")
    am = np.asarray(a["a_mult"], np.int64)
    bm = np.asarray(a["b_mult"], np.int64)
    if bm.size > 1:
        shape = [1] * max(x.ndim, y.ndim)
        shape[ax] = bm.size
        bm = bm.reshape(shape)
    acc = _centered(x, a["a_zp"]) * am + _centered(y, a["b_zp"]) * bm
    return (_out(rescale(acc, 1, a["shift"], a["rounding"]), a),)


@kernel("QMul")
def qmul(a: Attrs, x, y):
    acc = _centered(x, a["a_zp"]) * _centered(y, a["b_zp"])
    return (_requant(acc, a, axis=a.get("axis")),)


@kernel("Requantize")
def requantize(a: Attrs, x):
    return (_requant(_centered(x, a["x_zp"]), a),)


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


@kernel("QAveragePool")
def qaverage_pool(a: Attrs, x):
    if a.get("flavor") == "tflite":
        return _tflite_average_pool(a, x)
    xc = _centered(x, a["x_zp"])
    xp, ohw, d = _pool_pad(xc, a, 0)
    acc = windows(xp, a["kernel_shape"], a["strides"], d, ohw).sum(axis=(4, 5))
    m = np.asarray(a["multiplier"], np.int64).reshape(ohw)
    n = np.asarray(a["shift"], np.int64).reshape(ohw)
    return (_out(rescale(acc, m[None, None], n[None, None], a["rounding"]), a),)


@kernel("QGlobalAveragePool")
def qglobal_average_pool(a: Attrs, x):
    acc = _centered(x, a["x_zp"]).sum(axis=tuple(range(2, x.ndim)), keepdims=True)
    return (_requant(acc, a),)


@kernel("QReduceMean")
def qreduce_mean(a: Attrs, x):
    axes = a.get("axes")
    acc = _centered(x, a["x_zp"]).sum(axis=None if axes is None else tuple(axes),
                                      keepdims=bool(a.get("keepdims", 1)))
    return (_requant(np.asarray(acc), a),)


@kernel("QLookup")
def qlookup(a: Attrs, x):
    table = np.asarray(a["table"])
    lo = np.iinfo(x.dtype).min
    return (table[x.astype(np.int64) - lo].astype(a["dtype"]),)


def bit_length(x: np.ndarray) -> np.ndarray:
    """Number of bits of positive int64 values (floor(log2(x)) + 1), integer ops only."""
    x = np.asarray(x, np.int64)
    n = np.zeros(x.shape, np.int64)
    for k in (32, 16, 8, 4, 2, 1):
        big = x >= (np.int64(1) << k)
        x = np.where(big, x >> k, x)
        n = n + np.where(big, k, 0)
    return n + (x > 0)


def reciprocal(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """1/s for positive int64 ``s`` as ``(r, k)``: 1/s ~= r * 2**-k, r in Q30 (Newton-Raphson,
    multiply/add/shift only). Relative error below 2**-28."""
    s = np.asarray(s, np.int64)
    b = bit_length(s) - 1  # s in [2**b, 2**(b+1))
    x = np.where(b <= 30, s << np.maximum(30 - b, 0), s >> np.maximum(b - 30, 0))  # Q30, [1, 2)
    one = np.int64(1) << 30
    # start: 1/x = (48/17 - 32/17 * x/2) / 2, max relative error 1/17, in Q30
    r = (np.int64(3031741620) - ((np.int64(2021161081) * x) >> 31)) >> 1
    for _ in range(4):
        t = one - ((x * r) >> 30)
        r = r + ((r * t) >> 30)
    return r, 30 + b


def inverse_sqrt(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """1/sqrt(q) for positive int64 ``q`` as ``(r, k)``: ~= r * 2**-k, r in Q30 (Newton)."""
    q = np.asarray(q, np.int64)
    b = bit_length(q) - 1
    b2 = b - (b % 2)  # even exponent: x = q / 2**b2 in [1, 4)
    x = np.where(b2 <= 30, q << np.maximum(30 - b2, 0), q >> np.maximum(b2 - 30, 0))  # Q30
    three = np.int64(3) << 30
    # 1/sqrt(x) lies in (0.5, 1]: a two-piece start keeps Newton within 6 steps of Q30 accuracy
    r = np.where(x >= (np.int64(2) << 30), np.int64(0.6 * (1 << 30)), np.int64(0.85 * (1 << 30)))
    for _ in range(6):
        t = (r * r) >> 30
        t = (x * t) >> 30
        r = (r * (three - t)) >> 31
    return r, 30 + b2 // 2


@kernel("QSoftmax")
def qsoftmax(a: Attrs, x):
    """e = table[max - x] (Q16 exp), y = y_zp + round(e * 256 / sum(e)) via a Newton reciprocal.
    The tflite flavor is TFLite's int8 SOFTMAX (edgeq.quant.gemmlowp): Q0.31 exp table,
    Q12.19 sum, gemmlowp's reciprocal, rounding divides."""
    ax = a["axis"]
    if a.get("flavor") == "tflite":
        from edgeq.quant import gemmlowp as gl

        xi = x.astype(np.int64)
        e = np.asarray(a["exp_table"], np.int64)[xi.max(axis=ax, keepdims=True) - xi]
        total = gl.rdbpot(e, gl.ACCUMULATION_INTEGER_BITS).sum(axis=ax, keepdims=True)
        scale, bits = gl.reciprocal(total)
        return (_out(gl.rdbpot(gl.srdhm(scale, e), bits + 23), a),)
    xi = x.astype(np.int64)
    d = xi.max(axis=ax, keepdims=True) - xi
    e = np.asarray(a["exp_table"], np.int64)[d]
    total = e.sum(axis=ax, keepdims=True)
    r, k = reciprocal(total)
    return (_out(_rescale_var(e * r, k - 8), a),)


def _rescale_var(x: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Round-half-up right shift by a per-element amount (the edgeq rule with m = 1)."""
    n = np.asarray(n, np.int64)
    half = np.where(n > 0, np.int64(1) << np.maximum(n - 1, 0), 0)
    return (x + half) >> n


@kernel("QLayerNorm")
def qlayer_norm(a: Attrs, x):
    """Over the last axis (K values): c = K*(x - x_zp) - sum, Q = sum(c^2) + eps_q,
    y = y_zp + beta_q + rescale(c * Q**-1/2 * sqrt(K) * gamma / s_y)."""
    d = _centered(x, a["x_zp"])
    k = d.shape[-1]
    c = k * d - d.sum(axis=-1, keepdims=True)
    q = (c * c).sum(axis=-1, keepdims=True) + a["eps_q"]
    r, kk = inverse_sqrt(q)
    t = _rescale_var(c * r, kk - 16)  # c / sqrt(Q) in Q16; |t| <= 2**16 since c_i**2 <= Q
    if a.get("gamma_sign") is not None:
        t = t * np.asarray(a["gamma_sign"], np.int64)
    y = rescale(t, a["multiplier"], np.asarray(a["shift"]) + 16, a["rounding"], axis=-1)
    if a.get("beta_q") is not None:
        y = y + np.asarray(a["beta_q"], np.int64)
    return (_out(y, a),)
