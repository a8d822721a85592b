"""The quantization scheme (docs/numerics.md, section 2): how float ranges and weights become
integers. Activations int8 asymmetric per tensor (int16 symmetric, zero point 0); weights int8
symmetric per output channel in [-127, 127] (int4: [-7, 7]); bias int32 at ``s_x * s_w[c]``.
Scales are float32 values, as every runtime stores them."""

from __future__ import annotations

import numpy as np

from edgeq.ir.graph import DType, EdgeqError, QParams

INT_RANGE = {DType.INT8: (-128, 127), DType.INT16: (-32767, 32767)}
BIAS_BITS = 30  # a quantized bias stays below 2**30: room in int32 for the accumulated products


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


def quantize_weight(w: np.ndarray, axis: int, bits: int, min_scale: np.ndarray | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric per-channel: scale[c] = max|w[c]| / qmax (float32), raised to ``min_scale[c]``
    where given (``bias_scale_floor``); q = round(w / scale)."""
    qmax = 127 if bits == 8 else 7
    moved = np.moveaxis(w.astype(np.float64), axis, 0)
    amax = np.abs(moved.reshape(moved.shape[0], -1)).max(axis=1)
    scale = np.where(amax > 0, amax / qmax, 1.0)
    if min_scale is not None:
        scale = np.maximum(scale, min_scale)
    scale = scale.astype(np.float32)
    shape = [1] * w.ndim
    shape[axis] = -1
    q = np.clip(np.round(w / scale.astype(np.float64).reshape(shape)), -qmax, qmax)
    return q.astype(np.int8), scale


def bias_scale_floor(b: np.ndarray, s_x: float) -> np.ndarray:
    """The smallest weight scale per output channel at which the bias fits ``BIAS_BITS`` bits
    (bias scale ``s_x * s_w[c]``). Trained checkpoints carry dead channels (max |w| of 1e-34
    next to a bias of 0.1): their ``max|w| / 127`` scale cannot hold the bias, so the scale is
    raised instead; their weights then round to (nearly) 0, which is what they are."""
    return np.abs(b.astype(np.float64)) / (float(np.float32(s_x)) * 2.0 ** BIAS_BITS)


def quantize_bias(b: np.ndarray, s_x: float, s_w: np.ndarray, where: str) -> np.ndarray:
    q = np.round(b.astype(np.float64) / (np.float64(np.float32(s_x)) *
                                         s_w.astype(np.float64)))
    if np.abs(q).max(initial=0) > 2 ** 31 - 1:
        raise EdgeqError(f"{where}: bias does not fit int32 at scale input*weight (input scale "
                         f"{s_x:g} is too small for this bias); check the calibration data")
    return q.astype(np.int32)
