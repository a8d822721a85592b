"""Energy per layer, two ways.

**Estimated** from a board's description (``edgeq/targets/*.toml``, ``[cortex_m]``): a layer of
``n`` cycles at ``clock_hz`` draws ``run_current_ua_per_mhz x MHz`` at ``supply_v`` for
``n / clock_hz`` seconds::

    E = n / clock_hz x supply_v x run_current_ua_per_mhz x 1e-6 x clock_hz / 1e6
      = n x supply_v x run_current_ua_per_mhz x 1e-12   (joules)

Instruction counts (QEMU) stand in for cycles at one instruction per cycle, and the estimate
says so; a board whose current is not given (0) gets no estimate. An NPU's energy comes from
the simulator (``npu_sim.json``).

**Measured** with a power monitor: ``--power-trace trace.csv`` (two columns, time in seconds and
power in watts, one row per sample, a header line allowed) recorded while the profiled
inference ran, the trace's first sample at the inference's start. Each layer's energy is the
integral of the trace over its time window (layers laid end to end by their measured times,
as in the Chrome trace), by the trapezoid rule with the trace interpolated linearly at the
window's edges.
"""

from __future__ import annotations

import csv
import os
from typing import Sequence

import numpy as np

from edgeq.ir.graph import EdgeqError
from edgeq.ir.limits import max_tensor_bytes

PJ = 1e-12


def estimate_uj(counts: Sequence[float], supply_v: float, run_current_ua_per_mhz: float
                ) -> list[float] | None:
    """Energy in microjoules per count (cycles, or instructions at one per cycle); None when
    the board's current is unknown."""
    if run_current_ua_per_mhz <= 0 or supply_v <= 0:
        return None
    return [round(n * supply_v * run_current_ua_per_mhz * PJ * 1e6, 6) for n in counts]


def read_trace(path: str) -> tuple[np.ndarray, np.ndarray]:
    """(time in s, power in W) of a two-column CSV; times strictly increasing, power finite and
    non-negative. Every problem is one error naming the file and the line."""
    if not os.path.isfile(path):
        raise EdgeqError(f"--power-trace {path}: no such file")
    if os.path.getsize(path) > max_tensor_bytes():
        raise EdgeqError(f"--power-trace {path}: larger than the limit (EDGEQ_MAX_TENSOR_BYTES)")
    ts: list[float] = []
    ws: list[float] = []
    with open(path, newline="") as f:
        for i, row in enumerate(csv.reader(f), start=1):
            if not row or row[0].strip().startswith("#"):
                continue
            if len(row) < 2:
                raise EdgeqError(f"--power-trace {path}:{i}: expected two columns "
                                 f"(seconds, watts), got {row!r}")
            try:
                t, w = float(row[0]), float(row[1])
            except ValueError:
                if i == 1:
                    continue  # a header line
                raise EdgeqError(f"--power-trace {path}:{i}: not numbers: {row[:2]!r}") \
                    from None
            if not (np.isfinite(t) and np.isfinite(w)) or w < 0:
                raise EdgeqError(f"--power-trace {path}:{i}: power must be finite and >= 0, "
                                 f"time finite")
            if ts and t <= ts[-1]:
                raise EdgeqError(f"--power-trace {path}:{i}: time {t} does not increase")
            ts.append(t)
            ws.append(w)
    if len(ts) < 2:
        raise EdgeqError(f"--power-trace {path}: needs at least two samples")
    return np.asarray(ts), np.asarray(ws)


def _power_at(t: np.ndarray, w: np.ndarray, x: float) -> float:
    return float(np.interp(x, t, w))


def integrate(t: np.ndarray, w: np.ndarray, a: float, b: float) -> float:
    """Joules between times ``a`` and ``b`` (trapezoid over the samples inside, linear
    interpolation at the edges)."""
    inside = (t > a) & (t < b)
    xs = np.concatenate([[a], t[inside], [b]])
    ys = np.array([_power_at(t, w, a), *w[inside], _power_at(t, w, b)])
    return float(np.sum((xs[1:] - xs[:-1]) * (ys[1:] + ys[:-1]) / 2))


def measured_uj(t: np.ndarray, w: np.ndarray, durations_s: Sequence[float]
                ) -> list[float]:
    """Energy in microjoules of each layer, the layers laid end to end from the trace's first
    sample. The trace must cover them all."""
    start = float(t[0])
    end = start + float(sum(durations_s))
    if end > float(t[-1]) * (1 + 1e-9) + 1e-12:
        raise EdgeqError(f"--power-trace covers {t[-1] - t[0]:.6g} s, the profiled inference "
                         f"takes {end - start:.6g} s: record the whole inference")
    out, a = [], start
    for d in durations_s:
        b = a + float(d)
        out.append(round(integrate(t, w, a, b) * 1e6, 6))
        a = b
    return out
