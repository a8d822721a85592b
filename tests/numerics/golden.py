"""The golden vectors of edgeq's integer arithmetic, and the exact references that produce them.

Run ``python -m tests.numerics.golden`` (from the repository root) to rewrite ``golden.json``;
``--check`` only verifies that the file is what this script produces. Nothing here imports
edgeq: every expected value comes from Python integers and ``fractions.Fraction``, written from
``docs/numerics.md`` and gemmlowp's ``fixedpoint.h`` (google/gemmlowp 16e8662), never from the
numpy code under test.

Exact forms used (``x``, ``m``, ``a``, ``b`` integers, ``/`` exact rational division):

- ``quantize_multiplier(M)``: ``e`` with ``2**(e-1) <= M < 2**e``; ``m = floor(M 2**(31-e) +
  1/2)``, ``n = 31 - e``; ``m == 2**31`` becomes ``(2**30, n - 1)``; ``n > 62`` gives ``(0, 0)``;
  ``n < 0``, ``M < 0`` or a non-finite ``M`` is an error. Checked: ``|m 2**-n - M| <= M 2**-31``.
- ``rescale`` rule edgeq: ``floor(x m / 2**n + 1/2)``.
- ``srdhm(a, b)`` (gemmlowp SaturatingRoundingDoublingHighMul): ``min(floor(a b / 2**31 + 1/2),
  2**31 - 1)``. gemmlowp's nudge ``1 - 2**30`` for negative products with C++ truncation is
  rounding half toward +infinity on every sign, not half away from zero; the ``min`` is the one
  overflow, ``a = b = -2**31``. (The generator also evaluates gemmlowp's literal formula and
  asserts both agree.)
- ``rdbpot(x, e)`` (RoundingDivideByPOT): ``x / 2**e`` rounded half away from zero.
- ``rescale`` rule tflite: ``x' = clamp(x 2**max(31 - n, 0), int32)``, then
  ``rdbpot(srdhm(x', m), max(n - 31, 0))``.
- ``rescale_float64(x, M)``: the IEEE float64 product ``p = float(x) * M`` (what C and numpy
  compute), then ``p`` as an exact rational rounded half away from zero (C ``round``).
- ``mul_pot(x, k)`` (SaturatingRoundingMultiplyByPOT, ``k > 0``): ``clamp(x 2**k, int32)``.
- ``shift_round_half_up(x, n)``: ``floor(x / 2**n + 1/2)``.
- ``bit_length(x)``: Python's ``int.bit_length``.
- ``reciprocal(s)``, ``inverse_sqrt(q)``: the Newton iterations of docs/numerics.md section 4
  transcribed in Python integers (their Q30 start constants ``3031741620``, ``2021161081``,
  ``int(0.6 2**30)``, ``int(0.85 2**30)`` are part of the algorithm), each result compared with
  the mathematical ``1/s`` or ``1/sqrt(q)``: relative error below ``2**-29`` (the bound
  docs/numerics.md states for the reciprocal) and below ``2**-28`` for the inverse square root
  (docs/numerics.md states no bound for it; over every Q30 mantissa the largest error is
  ``2**-28.61``, the reciprocal's ``2**-29.03``: ``newton_error_sweep.py``, whose worst inputs
  are in the table). The recorded ``(r, k)`` are the exact integers of that transcription.

Table layout: ``functions.<name>`` has ``args`` and ``result`` (names), ``rule`` (the exact
form) and ``vectors``: ``{"in": [...], "out": [...] or "ValueError", "why": ...}``, one a line.
"""

from __future__ import annotations

import json
import math
import os
import random
import sys
from fractions import Fraction

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1
HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN_PATH = os.path.join(HERE, "golden.json")
RECIPROCAL_REL_ERROR = Fraction(1, 1 << 29)  # docs/numerics.md, section 4
INVERSE_SQRT_REL_ERROR = Fraction(1, 1 << 28)  # measured over all Q30 mantissas; no spec bound
HALF = Fraction(1, 2)


# ---- exact references --------------------------------------------------------------------

def round_half_up(v: Fraction) -> int:
    return math.floor(v + HALF)


def round_half_away(v: Fraction) -> int:
    return math.floor(v + HALF) if v >= 0 else -math.floor(-v + HALF)


def clamp32(v: int) -> int:
    return max(INT32_MIN, min(INT32_MAX, v))


def quantize_multiplier(real: float) -> tuple[int, int]:
    if not math.isfinite(real) or real < 0:
        raise ValueError(f"rescale factor must be finite and >= 0, got {real}")
    if real == 0:
        return 0, 0
    big_m = Fraction(real)  # a float is a dyadic rational: exact
    e = big_m.numerator.bit_length() - big_m.denominator.bit_length()
    while big_m >= Fraction(2) ** e:
        e += 1
    while big_m < Fraction(2) ** (e - 1):
        e -= 1
    m, n = round_half_up(big_m * Fraction(2) ** (31 - e)), 31 - e
    if m == 1 << 31:
        m, n = 1 << 30, n - 1
    if n > 62:
        return 0, 0
    if n < 0:
        raise ValueError(f"rescale factor {real} is too large (>= 2**31)")
    assert abs(Fraction(m, 1 << n) - big_m) <= big_m / (1 << 31), real
    return m, n


def rescale_edgeq(x: int, m: int, n: int) -> int:
    return round_half_up(Fraction(x * m, 1 << n))


def srdhm(a: int, b: int) -> int:
    exact = min(round_half_up(Fraction(a * b, 1 << 31)), INT32_MAX)
    # gemmlowp's literal formula: (ab + nudge) / 2**31 in C++ (truncating) division
    ab = a * b
    s = ab + ((1 << 30) if ab >= 0 else 1 - (1 << 30))
    literal = INT32_MAX if a == b == INT32_MIN else (s >> 31 if s >= 0 else -((-s) >> 31))
    assert exact == literal, (a, b)
    return exact


def rdbpot(x: int, e: int) -> int:
    return round_half_away(Fraction(x, 1 << e))


def rescale_tflite(x: int, m: int, n: int) -> int:
    xl = clamp32(x << max(31 - n, 0))
    return rdbpot(srdhm(xl, m), max(n - 31, 0))


def rescale_float64(x: int, real: float) -> int:
    return round_half_away(Fraction(float(x) * real))


def mul_pot(x: int, k: int) -> int:
    return clamp32(x << k)


def shift_round_half_up(x: int, n: int) -> int:
    return round_half_up(Fraction(x, 1 << n))


def bit_length(x: int) -> int:
    return x.bit_length()


def _q30_mantissa(v: int, b: int) -> int:
    return v << (30 - b) if b <= 30 else v >> (b - 30)


def reciprocal(s: int) -> tuple[int, int]:
    b = s.bit_length() - 1
    x = _q30_mantissa(s, b)  # [1, 2) in Q30
    r = (3031741620 - ((2021161081 * x) >> 31)) >> 1  # (48/17 - 32/17 x/2) / 2
    for _ in range(4):
        t = (1 << 30) - ((x * r) >> 30)
        r = r + ((r * t) >> 30)
    err = abs(Fraction(r * s, 1 << (30 + b)) - 1)
    assert err < RECIPROCAL_REL_ERROR, (s, float(err))
    return r, 30 + b


def inverse_sqrt(q: int) -> tuple[int, int]:
    b = q.bit_length() - 1
    b2 = b - b % 2
    x = _q30_mantissa(q, b2)  # [1, 4) in Q30
    r = math.floor(Fraction(3, 5) * (1 << 30)) if x >= 2 << 30 else \
        math.floor(Fraction(17, 20) * (1 << 30))
    for _ in range(6):
        t = (r * r) >> 30
        t = (x * t) >> 30
        r = (r * ((3 << 30) - t)) >> 31
    k = 30 + b2 // 2
    # |r 2**-k sqrt(q) - 1| < eps  <=>  (1 - eps)**2 < r**2 q / 4**k < (1 + eps)**2
    v, eps = Fraction(r * r * q, 1 << (2 * k)), INVERSE_SQRT_REL_ERROR
    assert (1 - eps) ** 2 < v < (1 + eps) ** 2, (q, float(v))
    return r, k


# ---- vectors ----------------------------------------------------------------------------

def _qm_vectors():
    below = lambda v: math.nextafter(v, 0.0)  # noqa: E731 -- the float just below v
    cases = [
        (0.0, "zero"),
        (1.0, "2**0"), (0.5, "2**-1"), (2.0, "2**1"), (0.25, "2**-2"), (2.0 ** -10, "2**-10"),
        (2.0 ** 30, "2**30: largest power of two, n = 0"), (1.5 * 2.0 ** 30, "n = 0"),
        (2.0 ** 31 - 1, "2**31 - 1: n = 0, m = 2**31 - 1"),
        (0.75, ""), (0.1, ""), (0.0123456, ""), (3.0, ""), (1 / 3, ""), (1e-9, ""),
        (1 - 2.0 ** -31, "f 2**31 = 2**31 - 1: no carry"),
        (1 - 2.0 ** -32, "f 2**31 = 2**31 - 1/2: tie rounds up to 2**31 -> (2**30, 30)"),
        (1 - 2.0 ** -33, "rounds to 2**31 -> (2**30, 30)"),
        (below(1.0), "just below 1 -> (2**30, 30)"),
        (below(0.5), "just below 2**-1 -> (2**30, 31)"),
        (below(2.0 ** 20), "just below 2**20 -> (2**30, 10)"),
        (below(2.0 ** -20), "just below 2**-20 -> (2**30, 50)"),
        ((2 ** 30 + 0.5) / 2 ** 31, "f 2**31 = 2**30 + 1/2: tie rounds up"),
        ((2 ** 31 - 1.5) / 2 ** 31, "f 2**31 = 2**31 - 3/2: tie rounds up to 2**31 - 1"),
        (2.0 ** -31, "n = 61"),
        (2.0 ** -32, "n = 62: smallest kept power of two"),
        (below(2.0 ** -32), "just below 2**-32 rounds up into n = 62"),
        ((1 - 2.0 ** -32) * 2.0 ** -32, "tie just below 2**-32 rounds up into n = 62"),
        ((1 - 2.0 ** -31) * 2.0 ** -32, "f 2**31 = 2**31 - 1, no carry: n = 63 -> (0, 0)"),
        (2.0 ** -33, "n = 63: underflows to (0, 0)"),
        (2.0 ** -40, "underflows to (0, 0)"),
        (5e-324, "smallest subnormal: (0, 0)"),
        (below(2.0 ** 31), "rounds to 2**31 -> n = -1: error"),
        (2.0 ** 31, "too large: error"),
        (-1.0, "negative: error"),
        (math.inf, "infinite: error"),
        (math.nan, "nan: error"),
    ]
    out = []
    for real, why in cases:
        try:
            res: object = list(quantize_multiplier(real))
        except ValueError:
            res = "ValueError"
        arg = real if math.isfinite(real) else str(real)
        out.append({"in": [arg], "out": res, "why": why})
    return out


def _rescale_vectors():
    half, eighth = (1 << 30, 31), (1 << 30, 33)
    one_ish = quantize_multiplier(1 - 2.0 ** -31)  # (2**31 - 1, 31)
    cases = [
        ((5, *half), "2.5: half up 3; tflite 3"),
        ((-5, *half), "-2.5: half up -2; srdhm rounds half up too: -2"),
        ((3, *half), "1.5"), ((-3, *half), "-1.5"),
        ((1, *half), "0.5"), ((-1, *half), "-0.5: edgeq 0, srdhm 0"),
        ((-12, *eighth), "-1.5: edgeq -1; tflite rdbpot half away: -2"),
        ((12, *eighth), "1.5"), ((4, *eighth), "0.5"), ((-4, *eighth), "-0.5: edgeq 0, tflite -1"),
        ((-20, *eighth), "-2.5: edgeq -2, tflite -3"),
        ((7, 1 << 30, 32), "1.75"), ((-7, 1 << 30, 32), "-1.75"),
        ((1000, 1717986918, 34), "x 0.1"), ((-1000, 1717986918, 34), "x 0.1"),
        ((0, 1717986918, 34), "zero"),
        ((3, 1 << 30, 29), "factor 2: tflite shifts left 2 first"),
        ((-3, 1 << 30, 29), "factor 2, negative"),
        ((100, 1610612736, 29), "factor 3"),
        ((1, 1 << 30, 30), "factor 1: left shift 1"),
        ((INT32_MAX, 1 << 30, 30), "factor 1 at INT32_MAX: x << 1 saturates in tflite"),
        ((INT32_MIN, 1 << 30, 30), "factor 1 at INT32_MIN"),
        ((1 << 29, 1 << 30, 29), "factor 2: 2**29 << 2 = 2**31 saturates in tflite"),
        (((1 << 29) - 1, 1 << 30, 29), "factor 2: largest x whose left shift fits"),
        ((-(1 << 29), 1 << 30, 29), "factor 2: -2**29 << 2 = INT32_MIN fits"),
        ((-(1 << 29) - 1, 1 << 30, 29), "factor 2: saturates at INT32_MIN"),
        ((1, 1 << 30, 0), "n = 0 (factor 2**30): 1 << 31 saturates, rounding restores 2**30"),
        ((2, 1 << 30, 0), "n = 0: edgeq 2**31, tflite saturated"),
        ((-1, 1 << 30, 0), "n = 0: -1 << 31 = INT32_MIN fits"),
        ((-2, 1 << 30, 0), "n = 0: saturated at INT32_MIN"),
        ((INT32_MAX, *one_ish), "INT32_MAX x (1 - 2**-31)"),
        ((INT32_MIN, *one_ish), "INT32_MIN x (1 - 2**-31)"),
        ((INT32_MAX, *half), "INT32_MAX / 2: tie"),
        ((INT32_MIN, *half), "INT32_MIN / 2: exact"),
        ((1 << 31, *half), "x = 2**31 beyond int32: tflite saturates x to INT32_MAX"),
        ((-(1 << 31) - 1, *half), "x beyond int32: tflite saturates x to INT32_MIN"),
        ((1 << 32, *half), "x = 2**32: edgeq 2**31, tflite saturated"),
        (((1 << 31) - 1, 1 << 30, 62), "n = 62: x M below 1/2: edgeq 0; tflite rounds twice: 1"),
        ((1 << 31, 1 << 30, 62), "n = 62: x M = 1/2: edgeq 1; tflite saturates then rounds to 1"),
        ((INT32_MIN, 1 << 30, 62), "n = 62: -1/2: edgeq 0, tflite -1"),
        ((INT32_MIN, INT32_MAX, 62), "n = 62, largest m"),
        (((1 << 32) - 1, INT32_MAX, 31), "x m + 2**30 just below 2**63; tflite saturates x"),
        ((-(1 << 32), INT32_MAX, 40), "|x m| near 2**63, negative; tflite saturates x"),
        ((123456789, 1 << 30, 31 + 26), "n = 57"),
    ]
    rng = random.Random(20240611)
    for _ in range(24):
        m, n = quantize_multiplier(rng.uniform(1e-6, 4.0))
        x = rng.randrange(-(1 << 24), 1 << 24)
        cases.append(((x, m, n), "random"))
    for _ in range(8):  # exact ties x m / 2**n = j + 1/2: m = m_odd 2**t, n = t + d
        t = rng.randrange(10, 26)
        d = rng.randrange(31 - t, 31 - t + 12)  # n = t + d in [31, 42]: no left shift
        m_odd = rng.randrange(1 << (30 - t), 1 << (31 - t)) | 1
        j = 1 << max(min(12, 30 - d), 0)  # keeps |x| below 2**31
        x = ((1 << (d - 1)) * pow(m_odd, -1, 1 << d)) % (1 << d) + (rng.randrange(-j, j) << d)
        assert (x * (m_odd << t)) % (1 << (t + d)) == 1 << (t + d - 1)
        cases.append(((x, m_odd << t, t + d), "random exact tie"))
    for (x, m, n), _ in cases:  # edgeq computes x m + 2**(n-1) in int64
        assert -(1 << 63) <= x * m + ((1 << n) >> 1) < 1 << 63, (x, m, n)
    return [{"in": list(args), "out": [rescale_edgeq(*args), rescale_tflite(*args)], "why": why}
            for args, why in cases]


def _float64_near_ties(count: int) -> list[tuple[int, float]]:
    """(x, M) whose exact product is not k + 1/2 but whose float64 product is exactly k + 1/2:
    the float64 rule rounds it away from zero although the exact product lies below the tie."""
    found = []
    for x in range(3, 10000, 2):
        for k in (0, 1, 2, 7, 100):
            t = k + 0.5
            real = t / x
            for _ in range(3):
                real = math.nextafter(real, 0.0)
                if float(x) * real == t and Fraction(x) * Fraction(real) != Fraction(t):
                    found.append((x, real))
                    break
            if len(found) == count:
                return found
    raise AssertionError("no near ties found")


def _float64_vectors():
    cases = [
        ((3, 0.5), "1.5 -> 2"), ((-3, 0.5), "-1.5 -> -2"), ((1, 0.5), "0.5 -> 1"),
        ((-1, 0.5), "-0.5 -> -1"), ((5, 0.5), "2.5 -> 3"), ((-5, 0.5), "-2.5 -> -3"),
        ((1, 2.5), "2.5 -> 3"), ((0, 0.7), "zero"), ((7, 0.25), "1.75"), ((-7, 0.25), "-1.75"),
        ((5, 0.1), "float product 0.5 exactly -> 1"), ((-5, 0.1), "-> -1"),
        ((INT32_MAX, 0.5), "INT32_MAX / 2: tie -> away"), ((INT32_MIN, 0.5), "exact"),
        ((-INT32_MAX, 0.5), "-INT32_MAX / 2: tie -> away"),
        (((1 << 40) + 1, 0.5), "x above int32"),
        ((123456, 0.0123456), ""), ((-98765, 1.75e-3), ""),
    ]
    for x, real in _float64_near_ties(3):
        cases.append(((x, real), "near tie: exact product below k + 1/2, float64 product a tie"))
        cases.append(((-x, real), "near tie, negative"))
    return [{"in": list(args), "out": rescale_float64(*args), "why": why}
            for args, why in cases]


def _magnitudes(top_bit: int) -> list[int]:
    vals = {1, 2, 3, 5, 7, 10, 17, 100, 255, 1000, 65535, 65536, 65537, 123456789,
            (1 << 30) + 12345, 3 * (1 << 30), (1 << 31) - 1, 987654321987, (1 << 63) - 1}
    for j in (2, 3, 8, 15, 16, 20, 29, 30, 31, 32, 33, 40):
        vals.update({(1 << j) - 1, 1 << j, (1 << j) + 1})
    for j in range(41, top_bit + 1, 7):
        vals.update({(1 << j) - 1, 1 << j})
    return sorted(v for v in vals if v < 1 << top_bit)


# Largest errors over every Q30 mantissa x (``python -m tests.numerics.newton_error_sweep``,
# minutes, not in the suite): the Newton error at x itself, and with the most bits truncated
# below x (s = (x + 1) 2**(b - 30) - 1) when the input is longer than the mantissa.
RECIPROCAL_WORST = {
    2147483630: "largest error for an exact Q30 mantissa: 2**-30",
    (1112187361 << 10) - 1: "mantissa 1112187360 with 10 truncated one bits",
    (1112187361 << 32) - 1: "worst case: mantissa 1112187360, 32 truncated one bits: "
                            "error 2**-29.03, the spec's bound is 2**-29",
}
INVERSE_SQRT_WORST = {
    4291695011: "largest error for an exact Q30 mantissa: 2**-28.68",
    4294443056: "largest negative error: 2**-29.0",
    (4291695012 << 2) - 1: "mantissa 4291695011 with 2 truncated one bits",
    (4291695012 << 30) - 1: "worst case: mantissa 4291695011, 30 truncated one bits: "
                            "error 2**-28.61",
}


def _newton_vectors(fn, values, notes: dict[int, str]):
    return [{"in": [v], "out": list(fn(v)), "why": notes.get(v, "")}
            for v in sorted(set(values) | set(notes))]


def _bit_length_vectors():
    vals = {0, 1, 2, 3, (1 << 63) - 1, 12345, 1 << 40}
    for j in (2, 4, 7, 8, 15, 16, 17, 31, 32, 33, 47, 48, 62):
        vals.update({(1 << j) - 1, 1 << j, (1 << j) + 1})
    return [{"in": [v], "out": bit_length(v), "why": "0 by convention" if v == 0 else ""}
            for v in sorted(vals)]


def _srdhm_vectors():
    cases = [
        ((INT32_MIN, INT32_MIN), "the one overflow: saturates to INT32_MAX"),
        ((INT32_MAX, INT32_MAX), ""), ((INT32_MIN, INT32_MAX), ""), ((INT32_MAX, INT32_MIN), ""),
        ((INT32_MIN, 1 << 30), "-2**30 exact"), ((INT32_MIN, -(1 << 30)), ""),
        ((INT32_MIN, 1), "-1: exact -1"), ((INT32_MIN, -1), "+1"),
        ((1, 1 << 30), "1/2: tie up -> 1"), ((-1, 1 << 30), "-1/2: tie up -> 0 (not -1)"),
        ((5, 1 << 30), "2.5 -> 3"), ((-5, 1 << 30), "-2.5 -> -2"),
        ((3, -(1 << 30)), "-1.5 -> -1"), ((-3, -(1 << 30)), "1.5 -> 2"),
        ((7, 1 << 29), "1.75 -> 2"), ((-7, 1 << 29), "-1.75 -> -2"),
        ((0, INT32_MIN), "zero"), ((1, 1), "2**-31 -> 0"), ((-1, 1), "-2**-31 -> 0"),
        ((1073741823, 1073741825), ""), ((1895147668, 715827883), "gemmlowp constants"),
        ((-1010580540, 1073741823), "one_over_one_plus_x constants"),
    ]
    rng = random.Random(7)
    for _ in range(10):
        cases.append(((rng.randrange(INT32_MIN, INT32_MAX + 1),
                       rng.randrange(INT32_MIN, INT32_MAX + 1)), "random"))
    return [{"in": list(args), "out": srdhm(*args), "why": why} for args, why in cases]


def _rdbpot_vectors():
    cases = [
        ((5, 1), "2.5 -> 3"), ((-5, 1), "-2.5 -> -3 (away)"), ((3, 1), "1.5 -> 2"),
        ((-3, 1), "-1.5 -> -2"), ((1, 1), "0.5 -> 1"), ((-1, 1), "-0.5 -> -1"),
        ((6, 2), "1.5"), ((-6, 2), "-1.5"), ((5, 2), "1.25"), ((-5, 2), "-1.25"),
        ((7, 2), "1.75"), ((-7, 2), "-1.75"), ((12345, 0), "e = 0: unchanged"),
        ((-12345, 0), "e = 0"), ((0, 31), "zero"),
        ((INT32_MAX, 31), "~1 - 2**-31 -> 1"), ((INT32_MIN, 31), "-1 exact"),
        ((1 << 30, 31), "1/2 -> 1"), ((-(1 << 30), 31), "-1/2 -> -1"),
        (((1 << 30) - 1, 31), "below 1/2 -> 0"), ((-(1 << 30) + 1, 31), "above -1/2 -> 0"),
        ((INT32_MAX, 12), ""), ((INT32_MIN, 12), ""), ((1 << 11, 12), "1/2"),
        ((-(1 << 11), 12), "-1/2"), ((INT32_MIN + 1, 1), ""),
    ]
    rng = random.Random(11)
    for _ in range(10):
        cases.append(((rng.randrange(INT32_MIN, INT32_MAX + 1), rng.randrange(0, 32)),
                      "random"))
    return [{"in": list(args), "out": rdbpot(*args), "why": why} for args, why in cases]


def _mul_pot_vectors():
    cases: dict[tuple[int, int], str] = {}
    for k in (1, 2, 5, 30, 31):
        thr = (1 << (31 - k)) - 1
        for x, why in ((0, "zero"), (1, ""), (-1, ""), (thr, "largest unsaturated"),
                       (thr + 1, "saturates at INT32_MAX"), (-thr, "smallest unsaturated"),
                       (-thr - 1, "x 2**k = INT32_MIN exactly"), (-thr - 2, "saturates"),
                       (INT32_MAX, "saturates"), (INT32_MIN, "saturates")):
            cases.setdefault((x, k), why)  # the first reason for a repeated input
    return [{"in": list(args), "out": mul_pot(*args), "why": why}
            for args, why in sorted(cases.items())]


def _shift_round_vectors():
    cases = [
        ((5, 1), "2.5 -> 3"), ((-5, 1), "-2.5 -> -2 (half up)"), ((3, 1), "1.5"),
        ((-3, 1), "-1.5 -> -1"), ((1, 1), "0.5 -> 1"), ((-1, 1), "-0.5 -> 0"),
        ((7, 2), "1.75"), ((-7, 2), "-1.75"), ((-6, 2), "-1.5 -> -1"),
        ((12345, 0), "n = 0: unchanged"), ((-12345, 0), "n = 0"),
        ((1 << 61, 62), "1/2 -> 1"), ((-(1 << 61), 62), "-1/2 -> 0"),
        (((1 << 62) - 1, 62), "below 1 -> 1"), ((-(1 << 62), 62), "-1"),
        ((65536 * 1073741823, 30 + 16 - 8), "softmax: e r >> (k - 8)"),
        ((-(1 << 40) - 1, 41), "just below -1/2 -> -1"),
    ]
    for (x, n), _ in cases:  # x + 2**(n-1) is computed in int64
        assert -(1 << 63) <= x + ((1 << n) >> 1) < 1 << 63, (x, n)
    return [{"in": list(args), "out": shift_round_half_up(*args), "why": why}
            for args, why in cases]


RULES = {
    "quantize_multiplier": "e: 2**(e-1) <= M < 2**e; m = floor(M 2**(31-e) + 1/2), n = 31 - e; "
                           "m == 2**31 -> (2**30, n-1); n > 62 -> (0, 0); n < 0 -> error",
    "rescale": "edgeq: floor(x m / 2**n + 1/2); tflite: rdbpot(srdhm(clamp32(x << max(31-n, "
               "0)), m), max(n-31, 0))",
    "rescale_float64": "round half away from zero of the IEEE float64 product float(x) * M",
    "srdhm": "min(floor(a b / 2**31 + 1/2), INT32_MAX)",
    "rdbpot": "x / 2**e rounded half away from zero",
    "mul_pot": "clamp32(x 2**k), k > 0",
    "shift_round_half_up": "floor(x / 2**n + 1/2), n >= 0",
    "bit_length": "Python int.bit_length (0 for 0)",
    "reciprocal": "docs/numerics.md section 4 in Python ints; |r 2**-k s - 1| < 2**-29",
    "inverse_sqrt": "docs/numerics.md section 4 in Python ints; |r 2**-k sqrt(q) - 1| < 2**-28",
}


def build_table() -> dict:
    funcs = {
        "quantize_multiplier": (["scale"], ["m", "n"], _qm_vectors()),
        "rescale": (["x", "m", "n"], ["edgeq", "tflite"], _rescale_vectors()),
        "rescale_float64": (["x", "M"], ["y"], _float64_vectors()),
        "srdhm": (["a", "b"], ["y"], _srdhm_vectors()),
        "rdbpot": (["x", "e"], ["y"], _rdbpot_vectors()),
        "mul_pot": (["x", "k"], ["y"], _mul_pot_vectors()),
        "shift_round_half_up": (["x", "n"], ["y"], _shift_round_vectors()),
        "bit_length": (["x"], ["bits"], _bit_length_vectors()),
        "reciprocal": (["s"], ["r", "k"],
                       _newton_vectors(reciprocal, _magnitudes(63), RECIPROCAL_WORST)),
        "inverse_sqrt": (["q"], ["r", "k"],
                         _newton_vectors(inverse_sqrt, _magnitudes(63), INVERSE_SQRT_WORST)),
    }
    return {
        "about": "edgeq integer arithmetic golden vectors (docs/numerics.md); generated by "
                 "tests/numerics/golden.py from exact Python-integer references",
        "functions": {name: {"args": a, "result": r, "rule": RULES[name], "vectors": v}
                      for name, (a, r, v) in funcs.items()},
    }


def dumps(table: dict) -> str:
    """JSON with one vector a line (diffs and reviews read a vector at a time)."""
    lines = ["{", f'  "about": {json.dumps(table["about"])},', '  "functions": {']
    names = list(table["functions"])
    for i, name in enumerate(names):
        f = table["functions"][name]
        lines.append(f"    {json.dumps(name)}: {{")
        for key in ("args", "result", "rule"):
            lines.append(f"      {json.dumps(key)}: {json.dumps(f[key])},")
        lines.append('      "vectors": [')
        vecs = f["vectors"]
        for j, v in enumerate(vecs):
            lines.append("        " + json.dumps(v, allow_nan=False) +
                         ("," if j < len(vecs) - 1 else ""))
        lines.append("      ]")
        lines.append("    }" + ("," if i < len(names) - 1 else ""))
    lines += ["  }", "}", ""]
    return "\n".join(lines)


def load_table(path: str = GOLDEN_PATH) -> dict:
    with open(path) as f:
        return json.load(f)


def vectors(table: dict, name: str) -> list[dict]:
    return table["functions"][name]["vectors"]


def inputs(table: dict, name: str) -> list[list]:
    """The inputs of ``name``'s vectors, non-finite scales decoded from their strings."""
    return [[float(a) if isinstance(a, str) else a for a in v["in"]]
            for v in vectors(table, name)]


def assert_matches(spelling: str, table: dict, name: str, got: list,
                   column: int | None = None) -> None:
    """Fail naming the spelling, the function and every input whose result differs from the
    golden one (``column`` picks one result of a multi-result vector)."""
    f = table["functions"][name]
    assert len(got) == len(f["vectors"]), (spelling, name, len(got))
    bad = []
    for v, g in zip(f["vectors"], got):
        want = v["out"] if column is None else v["out"][column]
        if g != want:
            args = ", ".join(f"{a}={x!r}" for a, x in zip(f["args"], v["in"]))
            why = f"  [{v['why']}]" if v["why"] else ""
            bad.append(f"  {spelling}({args}) = {g!r}, golden {want!r}{why}")
    if bad:
        import pytest

        pytest.fail(f"{spelling}: {len(bad)} of {len(got)} golden vectors of {name!r} differ\n"
                    + "\n".join(bad), pytrace=False)


def main(argv: list[str]) -> int:
    text = dumps(build_table())
    if "--check" in argv:
        with open(GOLDEN_PATH) as f:
            same = f.read() == text
        print("golden.json is up to date" if same else "golden.json differs from the generator")
        return 0 if same else 1
    with open(GOLDEN_PATH, "w") as f:
        f.write(text)
    print(f"wrote {GOLDEN_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
