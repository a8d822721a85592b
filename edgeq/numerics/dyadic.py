"""Dyadic (multiplier + shift) arithmetic: the pure functions behind every integer rescale.

A real rescale factor ``M > 0`` is represented as ``M ~= m * 2**-n`` with ``m`` an int32 in
``[2**30, 2**31)`` (Q31-normalized) and ``n`` an integer right shift (``docs/numerics.md``)::

    frexp(M) = (f, e), f in [0.5, 1)   ->   m = floor(f * 2**31 + 1/2), n = 31 - e
    (if rounding gives m == 2**31: m = 2**30, n -= 1)

Rescaling an integer ``x`` (int64 arithmetic) follows one of two rules:

- ``"edgeq"`` (the default): one rounding, half toward +inf::

      rescale(x) = (x * m + 2**(n-1)) >> n          (arithmetic shift; n >= 1)

  so ``|rescale(x) - x * M_dyadic| <= 1/2`` exactly.
- ``"tflite"``: TFLite's ``MultiplyByQuantizedMultiplier``: a saturating rounding doubling high
  multiply (rounds half up, toward +inf, at 2**31 for both signs: gemmlowp's nudge) followed by
  a rounding divide by ``2**(n-31)``
  (round half away from zero); a left shift first when ``n < 31``. Two roundings, so it can differ
  from ``"edgeq"`` by 1.

Multipliers are derived from float32 scales the way TFLite derives them (a float64 product and
quotient of the float32 values), so the same model gives the same ``(m, n)`` in edgeq and TFLite.
Two LiteRT reference kernels differ from that (docs/numerics.md, "Per-runtime rules"): its MUL
derives the factor in float32 arithmetic (``effective_scale_f32``), and its FULLY_CONNECTED
requantizes in float64, ``round(float64(x) * M)`` half away from zero (``rescale_float64``).
"""

from __future__ import annotations

import math

import numpy as np

Q31 = 1 << 31
MAX_SHIFT = 62  # m * x stays below 2**62 for |x| < 2**31; larger shifts give 0 anyway
ROUNDING_RULES = ("edgeq", "tflite")


def quantize_multiplier(real: float) -> tuple[int, int]:
    """``real`` -> ``(m, n)`` with ``real ~= m * 2**-n``; ``(0, 0)`` for 0."""
    if real < 0 or not math.isfinite(real):
        raise ValueError(f"rescale factor must be finite and >= 0, got {real}")
    if real == 0:
        return 0, 0
    f, e = math.frexp(real)
    m = int(math.floor(f * Q31 + 0.5))  # f * 2**31 is exact in float64; half away from zero
    if m == Q31:
        m, e = m // 2, e + 1
    n = 31 - e
    if n > MAX_SHIFT:  # the factor is below 2**-31: x * M rounds to 0 for every int32 x
        return 0, 0
    if n < 0:
        raise ValueError(f"rescale factor {real} is too large (>= 2**31)")
    return m, n


def quantize_multipliers(real: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pairs = [quantize_multiplier(float(r)) for r in np.asarray(real, np.float64).reshape(-1)]
    m = np.array([p[0] for p in pairs], np.int64)
    n = np.array([p[1] for p in pairs], np.int64)
    return m, n


def effective_scale(*numerator: float, denominator: float = 1.0) -> float:
    """Product of float32 scales divided by a float32 scale, in float64 (TFLite's derivation)."""
    out = 1.0
    for s in numerator:
        out *= float(np.float32(s))
    return out / float(np.float32(denominator))


def effective_scale_f32(a: float, b: float, denominator: float) -> float:
    """``a * b / denominator`` evaluated in float32 arithmetic (each step rounded to float32), as
    LiteRT's MUL Prepare computes it from the tensors' float32 scales before QuantizeMultiplier."""
    f = np.float32
    return float((f(a) * f(b)) / f(denominator))


def rescale_float64(x: np.ndarray, real, axis: int | None = None) -> np.ndarray:
    """``round(float64(x) * real)`` rounded half away from zero (C ``round``), int64: LiteRT's
    reference FULLY_CONNECTED. ``real`` are float64 factors (per channel along ``axis``).

    Exact emulation: ``x`` (below 2**53) converts exactly, numpy's float64 product is the
    IEEE-754 product C computes, and ``p - trunc(p)`` is exact, so the half-away test is exact."""
    xf = np.asarray(x, np.int64).astype(np.float64)
    r = np.asarray(real, np.float64)
    if r.size > 1 and r.ndim != xf.ndim:
        shape = [1] * xf.ndim
        shape[axis if axis is not None else -1] = r.size
        r = r.reshape(shape)
    p = xf * (r.reshape(()) if r.size == 1 else r)
    t = np.trunc(p)
    return (t + np.where(np.abs(p - t) >= 0.5, np.sign(p), 0.0)).astype(np.int64)


def _bcast(a: np.ndarray, x: np.ndarray, axis: int | None) -> np.ndarray:
    a = np.asarray(a, np.int64)
    if a.ndim == 0 or a.size == 1:
        return a.reshape(())
    if a.ndim == x.ndim:  # already laid out for broadcasting
        return a
    shape = [1] * x.ndim
    shape[axis if axis is not None else -1] = a.size
    return a.reshape(shape)


def rescale(x: np.ndarray, m, n, rule: str = "edgeq", axis: int | None = None) -> np.ndarray:
    """``x * m * 2**-n`` rounded by ``rule``; per-channel ``m``/``n`` along ``axis``. int64."""
    x = np.asarray(x, np.int64)
    m = _bcast(m, x, axis)
    n = _bcast(n, x, axis)
    if rule == "edgeq":
        return _rescale_edgeq(x, m, n)
    if rule == "tflite":
        return _rescale_tflite(x, m, n)
    raise ValueError(f"unknown rounding rule {rule!r}; expected one of {ROUNDING_RULES}")


def _rescale_edgeq(x: np.ndarray, m: np.ndarray, n: np.ndarray) -> np.ndarray:
    prod = x * m  # |x| < 2**31 and m < 2**31: fits int64
    half = np.where(n > 0, np.left_shift(np.int64(1), np.maximum(n - 1, 0)), 0)
    return np.right_shift(prod + half, n)


def _srdhm(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """gemmlowp SaturatingRoundingDoublingHighMul on int32 values held in int64."""
    ab = a * b
    nudge = np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    s = ab + nudge
    # C++ integer division truncates toward zero
    q = np.where(s >= 0, s >> 31, -((-s) >> 31))
    overflow = (a == b) & (a == -(1 << 31))
    return np.where(overflow, (1 << 31) - 1, q)


def _rounding_divide_by_pot(x: np.ndarray, exponent: np.ndarray) -> np.ndarray:
    """gemmlowp RoundingDivideByPOT: round half away from zero."""
    mask = (np.left_shift(np.int64(1), exponent)) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + (remainder > threshold)


def _rescale_tflite(x: np.ndarray, m: np.ndarray, n: np.ndarray) -> np.ndarray:
    shift = 31 - n  # TFLite's signed shift: > 0 is a left shift
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    xl = x * np.left_shift(np.int64(1), left)
    xl = np.clip(xl, -(1 << 31), (1 << 31) - 1)  # TFLite multiplies int32 values
    return _rounding_divide_by_pot(_srdhm(xl, m), right)


def exact_rescale(x: np.ndarray, m, n) -> np.ndarray:
    """Reference for tests: ``x * m / 2**n`` as exact rationals rounded half up (Python ints)."""
    from fractions import Fraction

    xs = np.asarray(x, np.int64).reshape(-1)
    ms = np.broadcast_to(np.asarray(m, np.int64), np.asarray(x).shape).reshape(-1)
    ns = np.broadcast_to(np.asarray(n, np.int64), np.asarray(x).shape).reshape(-1)
    out = [math.floor(Fraction(int(a) * int(b), 1 << int(c)) + Fraction(1, 2))
           for a, b, c in zip(xs, ms, ns)]
    return np.array(out, np.int64).reshape(np.asarray(x).shape)


def saturate(x: np.ndarray, dtype) -> np.ndarray:
    info = np.iinfo(dtype)
    return np.clip(x, info.min, info.max).astype(dtype)
