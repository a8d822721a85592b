"""TFLite's int8 SOFTMAX arithmetic (gemmlowp fixed point), for the ``tflite`` QSoftmax flavor.

TFLite's reference kernel (LiteRT ``BUILTIN_REF`` and TFLite Micro) computes, per row, with
``d = x - max(x)``:

1. ``d >= diff_min``: ``exp(d * s_x)`` in Q0.31 from ``d`` rescaled to Q5.26 by a multiplier
   greater than one (``input_multiplier``, ``input_left_shift``) and gemmlowp's
   ``exp_on_negative_values`` (Taylor series around -1/8 on [-1/4, 0), times exp(-2**k) for each
   bit of the rest); 0 otherwise. It depends on ``d`` alone, so edgeq tabulates it at compile
   time (``exp_table``: 256 int32 entries indexed by ``-d``).
2. ``sum = sum(RoundingDivideByPOT(e, 12))`` (Q12.19).
3. ``1/sum`` by gemmlowp's ``one_over_one_plus_x_for_x_in_0_1`` after normalizing ``sum`` with its
   leading zeros: ``(scale, bits_over_unit)``.
4. ``y = clamp(RoundingDivideByPOT(SRDHM(scale, e), bits_over_unit + 23) - 128)``.

Every function works elementwise on int64 numpy arrays holding int32 values, with gemmlowp's
rounding (docs/numerics.md spells the steps out).
"""

from __future__ import annotations

import math

import numpy as np

from edgeq.numerics.dyadic import _rounding_divide_by_pot, _srdhm, quantize_multiplier

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1
SCALED_DIFF_INTEGER_BITS = 5
ACCUMULATION_INTEGER_BITS = 12
# exp(-2**k) in Q0.31 for k = -2 .. 4 (gemmlowp's barrel shifter constants)
EXP_BARREL = ((-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308),
              (2, 39332535), (3, 720401), (4, 242))


def srdhm(a, b) -> np.ndarray:
    return _srdhm(np.asarray(a, np.int64), np.asarray(b, np.int64))


def rdbpot(x, e) -> np.ndarray:
    return _rounding_divide_by_pot(np.asarray(x, np.int64), np.asarray(e, np.int64))


def mul_pot(x, k: int) -> np.ndarray:
    """gemmlowp SaturatingRoundingMultiplyByPOT<k>: saturating left shift (k > 0) or rounding
    divide (k < 0)."""
    x = np.asarray(x, np.int64)
    if k < 0:
        return rdbpot(x, -k)
    threshold = (1 << (31 - k)) - 1
    return np.where(x > threshold, INT32_MAX, np.where(x < -threshold, INT32_MIN, x << k))


def _exp_quarter(a) -> np.ndarray:
    """exp(a) for a in [-1/4, 0), Q0.31 in and out (Taylor series around -1/8)."""
    constant_term, one_third = 1895147668, 715827883
    x = a + (1 << 28)
    x2 = srdhm(x, x)
    x3 = srdhm(x2, x)
    x4 = srdhm(x2, x2)
    x4_over_4 = mul_pot(x4, -2)
    poly = mul_pot(srdhm(x4_over_4 + x3, one_third) + x2, -1)
    return constant_term + srdhm(constant_term, x + poly)


def exp_on_negative_values(a, integer_bits: int = SCALED_DIFF_INTEGER_BITS) -> np.ndarray:
    """exp(a) for a <= 0 given in Q(integer_bits).(31 - integer_bits); result in Q0.31."""
    if integer_bits > 5:
        raise ValueError("more than 5 integer bits needs gemmlowp's clamp at -32")
    a = np.asarray(a, np.int64)
    frac = 31 - integer_bits
    quarter = 1 << (frac - 2)
    a_mod = (a & (quarter - 1)) - quarter
    result = _exp_quarter(mul_pot(a_mod, integer_bits))
    remainder = a_mod - a
    for exponent, mult in EXP_BARREL:
        if integer_bits > exponent:
            bit = 1 << (frac + exponent)
            result = np.where(remainder & bit, srdhm(result, mult), result)
    return np.where(a == 0, INT32_MAX, result)


def one_over_one_plus_x(a) -> np.ndarray:
    """1/(1 + a) for a in [0, 1), Q0.31 in and out (Newton-Raphson in Q2.29)."""
    a = np.asarray(a, np.int64)
    s = a + INT32_MAX
    half_den = (s + np.where(s >= 0, 1, -1)) // 2  # RoundingHalfSum; s >= 0 here
    x = 1515870810 + srdhm(half_den, -1010580540)
    one_q29 = 1 << 29
    for _ in range(3):
        t = one_q29 - srdhm(half_den, x)
        x = x + mul_pot(srdhm(x, t), 2)
    return mul_pot(x, 1)


def clz32(x) -> np.ndarray:
    """Leading zeros of non-negative int32 values as uint32 (32 for 0)."""
    x = np.asarray(x, np.int64)
    n = np.zeros(x.shape, np.int64)
    for k in (16, 8, 4, 2, 1):
        small = x < (np.int64(1) << (32 - k))
        n = n + np.where(small, k, 0)
        x = np.where(small, x << k, x)
    return np.where(np.asarray(x) == 0, 32, n)


def reciprocal(total) -> tuple[np.ndarray, np.ndarray]:
    """TFLite GetReciprocal(total, 12): (Q0.31 scale, bits over unit)."""
    total = np.asarray(total, np.int64)
    headroom = clz32(total)
    shifted = ((total << headroom) & 0xFFFFFFFF) - (1 << 31)
    return one_over_one_plus_x(shifted), ACCUMULATION_INTEGER_BITS - headroom


def softmax_params(input_scale: float, beta: float = 1.0) -> tuple[int, int, int]:
    """(input_multiplier, input_left_shift, diff_min) as TFLite's Prepare derives them."""
    bits = SCALED_DIFF_INTEGER_BITS
    real = min(beta * float(input_scale) * (1 << (31 - bits)), (1 << 31) - 1.0)
    if real <= 1.0:  # TFLite's QuantizeMultiplierGreaterThanOne requires it (a left shift)
        raise ValueError(f"softmax input scale {input_scale:.3g} is below 2**-{31 - bits}: "
                         f"TFLite's softmax needs a wider input range (its logits are "
                         f"near-constant)")
    m, n = quantize_multiplier(real)  # TFLite's QuantizeMultiplier: real = m 2**(left - 31)
    left = 31 - n
    radius = math.floor(((1 << bits) - 1) * (1 << (31 - bits)) / (1 << left))
    return m, left, -radius


def softmax_exp_table(input_scale: float, beta: float = 1.0) -> np.ndarray:
    """exp_table[k] = TFLite's Q0.31 exp for d = -k (k = 0..255); 0 where d < diff_min."""
    m, left, diff_min = softmax_params(input_scale, beta)
    d = -np.arange(256, dtype=np.int64)
    scaled = srdhm(d * (1 << left), m)  # MultiplyByQuantizedMultiplierGreaterThanOne
    e = exp_on_negative_values(scaled)
    return np.where(d >= diff_min, e, 0).astype(np.int64)
