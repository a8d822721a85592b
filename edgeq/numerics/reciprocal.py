"""Integer reciprocal and inverse square root (multiply, add and shift only: no division, no
float), the spellings the interpreter, TVM and C share (docs/numerics.md, "Integer reciprocal
and inverse square root")."""

from __future__ import annotations

import numpy as np


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
    multiply/add/shift only). Relative error below 2**-29 (worst case 2**-29.03)."""
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


def shift_round_half_up(x: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Round-half-up right shift by a per-element amount (the edgeq rule with m = 1)."""
    n = np.asarray(n, np.int64)
    half = np.where(n > 0, np.int64(1) << np.maximum(n - 1, 0), 0)
    return (x + half) >> n
