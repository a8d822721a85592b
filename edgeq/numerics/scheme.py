"""The quantization scheme (docs/numerics.md, section 2): how float ranges and weights become
integers. Activations int8 asymmetric per tensor (int16 symmetric, zero point 0); weights int8
symmetric per output channel in [-127, 127] (int4: [-7, 7]); bias int32 at ``s_x * s_w[c]``.
Scales are float32 values, as every runtime stores them."""

from __future__ import annotations

import numpy as np

from edgeq.ir.graph import DType, EdgeqError, QParams

INT_RANGE = {DType.INT8: (-128, 127), DType.INT16: (-32767, 32767)}


def f32(x: float) -> float:
    return float(np.float32(x))


def activation_qparams(lo: float, hi: float, dtype: DType) -> QParams:
    """Asymmetric int8 over [min(lo, 0), max(hi, 0)] (zero exactly representable); int16 is
    symmetric with zero point 0."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    if dtype == DType.INT16:
        s = f32(max(abs(lo), abs(hi), 1e-8) / 32767)
        return QParams((s,), (0,))
    if hi - lo < 1e-8:
        hi = lo + 1e-8
    s = f32((hi - lo) / 255.0)
    z = int(np.clip(round(-128 - lo / s), -128, 127))
    return QParams((s,), (z,))


def quantize_weight(w: np.ndarray, axis: int, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric per-channel: scale[c] = max|w[c]| / qmax (float32); q = round(w / scale)."""
    qmax = 127 if bits == 8 else 7
    moved = np.moveaxis(w.astype(np.float64), axis, 0)
    amax = np.abs(moved.reshape(moved.shape[0], -1)).max(axis=1)
    scale = np.where(amax > 0, amax / qmax, 1.0).astype(np.float32)
    shape = [1] * w.ndim
    shape[axis] = -1
    q = np.clip(np.round(w / scale.astype(np.float64).reshape(shape)), -qmax, qmax)
    return q.astype(np.int8), scale


def quantize_bias(b: np.ndarray, s_x: float, s_w: np.ndarray, where: str) -> np.ndarray:
    q = np.round(b.astype(np.float64) / (np.float64(np.float32(s_x)) *
                                         s_w.astype(np.float64)))
    if np.abs(q).max(initial=0) > 2 ** 31 - 1:
        raise EdgeqError(f"{where}: bias does not fit int32 at scale input*weight (input scale "
                         f"{s_x:g} is too small for this bias); check the calibration data")
    return q.astype(np.int32)
