"""Golden tables and properties of the dyadic rescale (docs/numerics.md, "Requantization")."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeq.numerics.dyadic import exact_rescale, quantize_multiplier, rescale

GOLDEN = [  # real -> (m, n): m in [2**30, 2**31), real ~= m / 2**n
    (0.5, (1 << 30, 31)),
    (1.0, (1 << 30, 30)),
    (0.75, (1610612736, 31)),
    (0.1, (1717986918, 34)),
    (0.0123456, (1696766344, 37)),
    (3.0, (1610612736, 29)),
]


@pytest.mark.parametrize("real,expected", GOLDEN)
def test_quantize_multiplier_golden(real, expected):
    assert quantize_multiplier(real) == expected


def test_tiny_factor_is_zero_and_zero_is_zero():
    assert quantize_multiplier(2.0 ** -40) == (0, 0)
    assert quantize_multiplier(0.0) == (0, 0)
    with pytest.raises(ValueError):
        quantize_multiplier(-1.0)


@settings(max_examples=300, deadline=None)
@given(st.floats(min_value=1e-9, max_value=1e6, allow_nan=False))
def test_multiplier_relative_error_below_2_pow_minus_31(real):
    m, n = quantize_multiplier(real)
    assert (1 << 30) <= m < (1 << 31)
    assert abs(m / 2.0 ** n - real) / real <= 2.0 ** -31


RESCALE_GOLDEN = [  # (x, m, n) -> edgeq result, tflite result
    ((5, 1 << 30, 31), (3, 3)),  # 2.5 -> half up 3; TFLite half away from zero 3
    ((-5, 1 << 30, 31), (-2, -2)),  # -2.5: gemmlowp's high-mul nudge also rounds it to -2
    ((-12, 1 << 30, 33), (-1, -2)),  # -1.5: half up -1; TFLite's divide-by-POT away: -2
    ((7, 1 << 30, 32), (2, 2)),  # 1.75
    ((-7, 1 << 30, 32), (-2, -2)),
    ((1000, 1717986918, 34), (100, 100)),
    ((3, 1 << 30, 29), (6, 6)),  # factor 2: TFLite shifts left first
]


@pytest.mark.parametrize("args,expected", RESCALE_GOLDEN)
def test_rescale_golden(args, expected):
    x, m, n = args
    assert int(rescale(np.array([x]), m, n, "edgeq")[0]) == expected[0]
    assert int(rescale(np.array([x]), m, n, "tflite")[0]) == expected[1]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(-(1 << 31) + 1, (1 << 31) - 1), min_size=1, max_size=20),
       st.floats(min_value=1e-6, max_value=0.999))
def test_edgeq_rule_is_exactly_round_half_up_of_the_dyadic_product(xs, real):
    m, n = quantize_multiplier(real)
    x = np.array(xs, np.int64)
    np.testing.assert_array_equal(rescale(x, m, n), exact_rescale(x, m, n))
    # and within 1/2 LSB (+ the multiplier's 2**-31 relative error) of the real product
    err = np.abs(rescale(x, m, n) - x.astype(np.float64) * real)
    assert np.all(err <= 0.5 + np.abs(x) * real * 2.0 ** -30 + 1e-9)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(-(1 << 24), 1 << 24), min_size=1, max_size=20),
       st.floats(min_value=1e-6, max_value=0.999))
def test_tflite_rule_within_one_of_edgeq(xs, real):
    m, n = quantize_multiplier(real)
    x = np.array(xs, np.int64)
    d = np.abs(rescale(x, m, n, "tflite") - rescale(x, m, n, "edgeq"))
    assert d.max() <= 1


def test_per_channel_broadcast_along_axis():
    x = np.arange(24, dtype=np.int64).reshape(1, 3, 2, 4) * 100
    m = np.array([1 << 30, 1 << 30, 1 << 30])
    n = np.array([31, 32, 33])
    y = rescale(x, m, n, axis=1)
    for c in range(3):
        assert np.array_equal(y[0, c], rescale(x[0, c], m[c], n[c]))
    assert math.isclose(float(y[0, 2, 1, 3]) * 8, float(x[0, 2, 1, 3]), abs_tol=4)
