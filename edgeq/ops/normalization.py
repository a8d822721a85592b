"""Normalizations: BatchNormalization (folded away by the float passes), LayerNormalization and
its integer form QLayerNorm, LRN (float only).

QLayerNorm, over the last axis of K values, int8 in (docs/numerics.md): ``d = x - x_zp``,
``c = K d - sum(d)`` (exactly K (d - mean)), ``Q = sum(c^2) + eps_q``; ``1/sqrt(Q)`` by the
integer inverse square root; ``t = round(c r / 2**(k-16))``;
``y = out(rescale(sign(gamma) t, m[j], n[j] + 16) + beta_q[j])``, ``M[j] = sqrt(K)|gamma[j]|/s_y``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from edgeq.ir.graph import EdgeqError, Node, TensorType
from edgeq.numerics.dyadic import quantize_multipliers, rescale
from edgeq.numerics.reciprocal import inverse_sqrt, shift_round_half_up
from edgeq.numerics.scheme import INT_RANGE
from edgeq.ops._integer import centered, out
from edgeq.ops.base import (Attrs, kernel, quantize_check, quantize_rule, result_dtype,
                            shape_rule, traits)

if TYPE_CHECKING:
    from edgeq.quant.convert import Converter

traits("QLayerNorm", add="integer")


@shape_rule("QLayerNorm")
def _same_shape(node: Node, ts: list[TensorType]) -> list[TensorType]:
    return [TensorType(result_dtype(node, ts[0]), ts[0].shape)]


@shape_rule("BatchNormalization")
def _batch_norm_shape(node: Node, ts: list[TensorType]) -> list[TensorType]:
    x = ts[0].shape
    if len(x) < 2:
        raise EdgeqError(f"BatchNormalization '{node.name}': input shape {list(x)} has no "
                         f"channel axis")
    names = ("scale", "bias", "mean", "var")
    for what, t in zip(names, ts[1:]):
        if t.shape != (x[1],):
            raise EdgeqError(f"BatchNormalization '{node.name}': {what} has shape "
                             f"{list(t.shape)}, expected [{x[1]}] (one per channel)")
    return [TensorType(ts[0].dtype, x)]


@shape_rule("LayerNormalization")
def _layer_norm_shape(node: Node, ts: list[TensorType]) -> list[TensorType]:
    x = ts[0].shape
    ax = node.attrs.get("axis", -1)
    if not -len(x) <= ax < len(x):
        raise EdgeqError(f"LayerNormalization '{node.name}': axis {ax} is out of range for "
                         f"input shape {list(x)}")
    normalized = x[ax % len(x):]
    for what, t in zip(("scale", "bias"), ts[1:]):
        if len(t.shape) > len(normalized) or any(
                a not in (1, b) for a, b in zip(t.shape[::-1], normalized[::-1])):
            raise EdgeqError(f"LayerNormalization '{node.name}': {what} shape {list(t.shape)} "
                             f"does not broadcast to the normalized shape {list(normalized)}")
    return [TensorType(ts[0].dtype, x)]


@shape_rule("LRN")
def _lrn_shape(node: Node, ts: list[TensorType]) -> list[TensorType]:
    x = ts[0].shape
    size = node.attrs.get("size")
    if not isinstance(size, int) or size < 1:
        raise EdgeqError(f"LRN '{node.name}': size {size!r} must be a positive integer")
    if len(x) < 2:
        raise EdgeqError(f"LRN '{node.name}': input shape {list(x)} has no channel axis")
    return [TensorType(ts[0].dtype, x)]


# --- float kernels --------------------------------------------------------------------------


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
    # channel j sums channels [j - lo, j + hi] that exist: differences of a prefix sum (no
    # padding, so a window far larger than C costs nothing)
    csum = np.concatenate([np.zeros_like(sq[:, :1]), np.cumsum(sq, axis=1)], axis=1)
    j = np.arange(c)
    win = csum[:, np.minimum(j + hi, c - 1) + 1] - csum[:, np.maximum(j - lo, 0)]
    y = x / (a.get("bias", 1.0) + a.get("alpha", 1e-4) / size * win) ** a.get("beta", 0.75)
    return (y.astype(x.dtype),)


# --- integer form ---------------------------------------------------------------------------


@kernel("QLayerNorm")
def qlayer_norm(a: Attrs, x):
    """Over the last axis (K values): c = K*(x - x_zp) - sum, Q = sum(c^2) + eps_q,
    y = y_zp + beta_q + rescale(c * Q**-1/2 * sqrt(K) * gamma / s_y)."""
    d = centered(x, a["x_zp"])
    k = d.shape[-1]
    c = k * d - d.sum(axis=-1, keepdims=True)
    q = (c * c).sum(axis=-1, keepdims=True) + a["eps_q"]
    r, kk = inverse_sqrt(q)
    t = shift_round_half_up(c * r, kk - 16)  # c / sqrt(Q) in Q16; |t| <= 2**16 since c_i**2 <= Q
    if a.get("gamma_sign") is not None:
        t = t * np.asarray(a["gamma_sign"], np.int64)
    y = rescale(t, a["multiplier"], np.asarray(a["shift"]) + 16, a["rounding"], axis=-1)
    if a.get("beta_q") is not None:
        y = y + np.asarray(a["beta_q"], np.int64)
    return (out(y, a),)


# --- quantize rule --------------------------------------------------------------------------


@quantize_rule("LayerNormalization")
def _quantize_layer_norm(cv: Converter, node: Node) -> None:
    x = cv.get(node.inputs[0])
    out = node.outputs[0]
    dtype = cv.dtype_of(out.name)
    qp = cv.out_qparams(out)
    k = x.shape[-1]
    gamma = node.const_input(1)
    gamma = np.ones(k) if gamma is None else np.broadcast_to(gamma.astype(np.float64), (k,))
    beta = node.const_input(2)
    s_x, s_y = x.qparams.scale[0], qp.scale[0]
    mult = math.sqrt(k) * np.abs(gamma) / s_y
    m, n = quantize_multipliers(mult)
    eps_q = max(1, int(round(node.attrs.get("epsilon", 1e-5) * k ** 3 / (s_x * s_x))))
    lo, hi = INT_RANGE[dtype]
    attrs = dict(x_zp=x.qparams.zero_point[0], y_zp=qp.zero_point[0], multiplier=m, shift=n,
                 eps_q=eps_q, act_min=lo, act_max=hi,
                 gamma_sign=None if np.all(gamma >= 0) else np.sign(gamma).astype(np.int64),
                 beta_q=None if beta is None else np.round(
                     np.broadcast_to(beta.astype(np.float64), (k,)) / s_y).astype(np.int64))
    cv.emit("QLayerNorm", node, [x], attrs, out, qp, dtype)


@quantize_check("LayerNormalization")
def _layer_norm_check(node: Node) -> str | None:
    """Normalizes the last axis, of at most 4096 values (the int64 variance)."""
    if node.attrs.get("axis", -1) % len(node.inputs[0].shape) != len(node.inputs[0].shape) - 1:
        return "only the last axis is supported"
    if node.inputs[0].shape[-1] > 4096:
        return "normalized size above 4096 would overflow the int64 variance"
    return None
