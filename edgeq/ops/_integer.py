"""Helpers the integer kernels share: centering by a zero point, the output clamp and the
rescale of an accumulator by the node's rule (docs/numerics.md, sections 3 and 4).

Inputs and outputs are int8 (or int16) arrays; accumulators are int64. Products of integers are
summed through float64 matrix multiply where that is faster: each product is below 2**17 and the
sums stay far below 2**53, so float64 holds them exactly and the result is converted back to int64
before any rescale."""

from __future__ import annotations

import numpy as np

from edgeq.numerics.dyadic import rescale, rescale_float64
from edgeq.ops.base import Attrs


def to_int(acc: np.ndarray) -> np.ndarray:
    return np.rint(acc).astype(np.int64)  # exact: acc holds integers below 2**53


def out(y: np.ndarray, a: Attrs) -> np.ndarray:
    """Add the output zero point, clamp to [act_min, act_max], cast to the output dtype."""
    y = y + a["y_zp"]
    return np.clip(y, a["act_min"], a["act_max"]).astype(a["dtype"])


def requant(acc: np.ndarray, a: Attrs, axis: int | None = None) -> np.ndarray:
    if a["rounding"] == "float64":  # a runtime that requantizes in float (docs/numerics.md)
        return out(rescale_float64(acc, a["real_scale"], axis), a)
    return out(rescale(acc, a["multiplier"], a["shift"], a["rounding"], axis), a)


def centered(x: np.ndarray, zp: int) -> np.ndarray:
    return x.astype(np.int64) - zp
