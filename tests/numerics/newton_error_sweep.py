"""Largest relative errors of the integer reciprocal and inverse square root over every Q30
mantissa (minutes of numpy on one core; not part of the suite).

Both algorithms depend on their input only through the Q30 mantissa ``x`` (the input shifted to
``[1, 2)`` or ``[1, 4)``), so sweeping every ``x`` bounds every input: an input of at most 31
bits has error ``e(x)``; a longer one lies in ``[x, x + 1) 2**(b - 30)`` and its error tends to
``e'(x)`` computed with ``x + 1`` as the most bits are truncated. ``golden.py`` records the worst
inputs found here (``RECIPROCAL_WORST``, ``INVERSE_SQRT_WORST``) and asserts its bounds.

Run: ``python -m tests.numerics.newton_error_sweep``.
"""

from __future__ import annotations

import time

import numpy as np

from edgeq.numerics.reciprocal import inverse_sqrt, reciprocal

CHUNK = 1 << 24


def _extremes(best: dict, label: str, x: np.ndarray, err: np.ndarray) -> None:
    for key, i in ((f"{label} min", int(err.argmin())), (f"{label} max", int(err.argmax()))):
        v = float(err[i])
        if key not in best or (v < best[key][0] if key.endswith("min") else v > best[key][0]):
            best[key] = (v, int(x[i]))


def sweep(name: str, lo: int, hi: int) -> dict[str, tuple[float, int]]:
    best: dict[str, tuple[float, int]] = {}
    for start in range(lo, hi, CHUNK):
        x = np.arange(start, min(start + CHUNK, hi), dtype=np.int64)
        xf = x.astype(np.float64)
        if name == "reciprocal":
            r = reciprocal(x)[0].astype(np.float64)  # x in [2**30, 2**31): k = 60
            exact, trunc = r * xf / 2.0 ** 60 - 1, r * (xf + 1) / 2.0 ** 60 - 1
        else:
            r = inverse_sqrt(x)[0].astype(np.float64) / 2.0 ** 30  # x in [2**30, 2**32): k = 45
            exact = r * np.sqrt(xf / 2.0 ** 30) - 1
            trunc = r * np.sqrt((xf + 1) / 2.0 ** 30) - 1
        _extremes(best, "exact", x, exact)
        _extremes(best, "truncated", x, trunc)
    return best


def main() -> None:
    for name, lo, hi in (("reciprocal", 1 << 30, 1 << 31), ("inverse_sqrt", 1 << 30, 1 << 32)):
        t0 = time.time()
        for key, (err, x) in sorted(sweep(name, lo, hi).items()):
            print(f"{name:12s} {key:13s} error {err:+.4e} (2**{np.log2(abs(err)):.2f}) "
                  f"at mantissa {x}")
        print(f"{name}: {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
