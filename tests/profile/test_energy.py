"""Energy per layer: the board estimate's arithmetic, and the power-trace integral on synthetic
traces whose answers are known exactly."""

from __future__ import annotations

import numpy as np
import pytest

from edgeq.ir.graph import EdgeqError
from edgeq.profile.energy import estimate_uj, integrate, measured_uj, read_trace

pytestmark = pytest.mark.unit


def test_estimate_is_cycles_times_voltage_times_current_per_mhz():
    # 1e6 cycles at 3.3 V and 100 uA/MHz: 1e6 * 3.3 * 100e-12 J = 0.33 mJ = 330 uJ
    assert estimate_uj([1e6, 0, 2e6], 3.3, 100.0) == [330.0, 0.0, 660.0]
    assert estimate_uj([1e6], 3.3, 0.0) is None  # unknown current: no estimate


def test_constant_power_gives_power_times_time(tmp_path):
    t = np.linspace(0, 1e-2, 11)
    w = np.full_like(t, 0.5)
    assert measured_uj(t, w, [2e-3, 3e-3, 5e-3]) == pytest.approx([1000.0, 1500.0, 2500.0])


def test_a_ramp_is_integrated_exactly_including_between_samples():
    t = np.array([0.0, 1.0, 2.0])
    w = np.array([0.0, 1.0, 2.0])  # P(t) = t
    # windows [0, .25), [.25, 1.5), [1.5, 2): t^2/2 between the edges
    got = measured_uj(t, w, [0.25, 1.25, 0.5])
    want = [(b * b - a * a) / 2 * 1e6 for a, b in ((0, .25), (.25, 1.5), (1.5, 2))]
    assert got == pytest.approx(want, rel=1e-9)
    assert integrate(t, w, 0.0, 2.0) == pytest.approx(2.0)


def test_energy_grows_with_the_layer_and_the_trace_must_cover_it():
    t = np.linspace(0, 1, 101)
    w = 1 + np.sin(8 * t) ** 2
    short, long = measured_uj(t, w, [0.1, 0.1]), measured_uj(t, w, [0.1, 0.3])
    assert long[1] > short[1] and long[0] == short[0]
    with pytest.raises(EdgeqError, match="record the whole inference"):
        measured_uj(t, w, [0.8, 0.3])


def test_trace_files_are_checked_line_by_line(tmp_path):
    p = tmp_path / "trace.csv"
    p.write_text("time_s,watts\n0,0.5\n0.001,0.6\n0.002,0.55\n")
    t, w = read_trace(str(p))
    assert list(t) == [0, 0.001, 0.002] and list(w) == [0.5, 0.6, 0.55]
    for text, needle in (("0,1\n0,2\n", "does not increase"), ("0,1\n1,-2\n", ">= 0"),
                         ("0,1\n1,x\n", "not numbers"), ("0\n", "two columns"),
                         ("0,1\n", "at least two samples")):
        p.write_text(text)
        with pytest.raises(EdgeqError, match=needle):
            read_trace(str(p))
