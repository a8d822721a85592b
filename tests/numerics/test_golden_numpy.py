"""The numpy spelling (``edgeq.numerics``) against the golden vectors of ``golden.json``.

The table and its exact references are documented in ``tests/numerics/golden.py`` (regenerate
with ``python -m tests.numerics.golden``); ``test_golden_c.py`` and ``test_golden_tvm.py``
assert the C (``edgeq_rt.h``) and TVM Relax (``backends/tvm/lower.py``) spellings against the
same table. The first tests check the table itself: it is what the generator writes, and its
Newton results and multipliers are within the error bounds docs/numerics.md states.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from edgeq.numerics import dyadic, gemmlowp
from edgeq.numerics import reciprocal as recip
from tests.numerics import golden

pytestmark = pytest.mark.unit

TABLE = golden.load_table()


def _ints(a) -> list:
    return [int(v) for v in np.asarray(a).reshape(-1)]


def _column(name: str, i: int) -> np.ndarray:
    return np.array([v[i] for v in golden.inputs(TABLE, name)], np.int64)


# ---- the table itself -----------------------------------------------------------------------

def test_golden_json_is_what_the_generator_writes():
    with open(golden.GOLDEN_PATH) as f:
        assert f.read() == golden.dumps(golden.build_table()), (
            "tests/numerics/golden.json is stale: run python -m tests.numerics.golden")


def test_table_multipliers_within_2_pow_minus_31_of_the_scale():
    for (real,), v in zip(golden.inputs(TABLE, "quantize_multiplier"),
                          golden.vectors(TABLE, "quantize_multiplier")):
        if v["out"] == "ValueError" or v["out"] == [0, 0]:
            continue
        m, n = v["out"]
        assert 1 << 30 <= m < 1 << 31, real
        assert abs(Fraction(m, 1 << n) - Fraction(real)) <= Fraction(real) / (1 << 31), real


def test_table_reciprocals_within_the_spec_bound():
    for v in golden.vectors(TABLE, "reciprocal"):
        (s,), (r, k) = v["in"], v["out"]
        assert abs(Fraction(r * s, 1 << k) - 1) < golden.RECIPROCAL_REL_ERROR, s


def test_table_inverse_square_roots_within_bound():
    eps = golden.INVERSE_SQRT_REL_ERROR
    for v in golden.vectors(TABLE, "inverse_sqrt"):
        (q,), (r, k) = v["in"], v["out"]
        assert (1 - eps) ** 2 < Fraction(r * r * q, 1 << (2 * k)) < (1 + eps) ** 2, q


# ---- edgeq.numerics.dyadic ------------------------------------------------------------------

def _quantize_multiplier(real: float):
    try:
        return list(dyadic.quantize_multiplier(real))
    except ValueError:
        return "ValueError"


def test_quantize_multiplier():
    got = [_quantize_multiplier(real) for (real,) in golden.inputs(TABLE, "quantize_multiplier")]
    golden.assert_matches("dyadic.quantize_multiplier", TABLE, "quantize_multiplier", got)


def test_quantize_multipliers_array_form():
    vecs = [(a, v) for (a,), v in zip(golden.inputs(TABLE, "quantize_multiplier"),
                                      golden.vectors(TABLE, "quantize_multiplier"))
            if v["out"] != "ValueError"]
    m, n = dyadic.quantize_multipliers(np.array([a for a, _ in vecs]))
    for (real, v), mi, ni in zip(vecs, m, n):
        assert [int(mi), int(ni)] == v["out"], f"dyadic.quantize_multipliers([{real!r}])"


@pytest.mark.parametrize("column,rule", [(0, "edgeq"), (1, "tflite")])
def test_rescale_elementwise(column, rule):
    x, m, n = (_column("rescale", i) for i in range(3))
    got = _ints(dyadic.rescale(x, m, n, rule))
    golden.assert_matches(f"dyadic.rescale[elementwise m, n](rule={rule!r})", TABLE, "rescale",
                          got, column)


@pytest.mark.parametrize("column,rule", [(0, "edgeq"), (1, "tflite")])
def test_rescale_per_tensor(column, rule):
    got = [int(dyadic.rescale(np.array([x]), m, n, rule)[0])
           for x, m, n in golden.inputs(TABLE, "rescale")]
    golden.assert_matches(f"dyadic.rescale[scalar m, n](rule={rule!r})", TABLE, "rescale", got,
                          column)


def test_exact_rescale_helper_is_the_edgeq_rule():
    x, m, n = (_column("rescale", i) for i in range(3))
    golden.assert_matches("dyadic.exact_rescale", TABLE, "rescale",
                          _ints(dyadic.exact_rescale(x, m, n)), 0)


def test_rescale_float64():
    got = [int(dyadic.rescale_float64(np.array([x]), real)[0])
           for x, real in golden.inputs(TABLE, "rescale_float64")]
    golden.assert_matches("dyadic.rescale_float64", TABLE, "rescale_float64", got)


# ---- edgeq.numerics.gemmlowp ----------------------------------------------------------------

@pytest.mark.parametrize("spelling,fn", [("gemmlowp.srdhm", gemmlowp.srdhm),
                                         ("dyadic._srdhm", dyadic._srdhm)])
def test_srdhm(spelling, fn):
    a, b = _column("srdhm", 0), _column("srdhm", 1)
    golden.assert_matches(spelling, TABLE, "srdhm", _ints(fn(a, b)))


@pytest.mark.parametrize("spelling,fn", [("gemmlowp.rdbpot", gemmlowp.rdbpot),
                                         ("dyadic._rounding_divide_by_pot",
                                          dyadic._rounding_divide_by_pot)])
def test_rdbpot(spelling, fn):
    x, e = _column("rdbpot", 0), _column("rdbpot", 1)
    golden.assert_matches(spelling, TABLE, "rdbpot", _ints(fn(x, e)))


def test_mul_pot():
    got = [int(gemmlowp.mul_pot(np.array([x]), k)[0]) for x, k in golden.inputs(TABLE, "mul_pot")]
    golden.assert_matches("gemmlowp.mul_pot", TABLE, "mul_pot", got)


# ---- edgeq.numerics.reciprocal --------------------------------------------------------------

def test_shift_round_half_up():
    x, n = _column("shift_round_half_up", 0), _column("shift_round_half_up", 1)
    golden.assert_matches("reciprocal.shift_round_half_up", TABLE, "shift_round_half_up",
                          _ints(recip.shift_round_half_up(x, n)))


def test_bit_length():
    golden.assert_matches("reciprocal.bit_length", TABLE, "bit_length",
                          _ints(recip.bit_length(_column("bit_length", 0))))


@pytest.mark.parametrize("name", ["reciprocal", "inverse_sqrt"])
def test_newton(name):
    r, k = getattr(recip, name)(_column(name, 0))
    golden.assert_matches(f"reciprocal.{name}", TABLE, name,
                          [[a, b] for a, b in zip(_ints(r), _ints(k))])


def test_every_golden_function_is_checked_here():
    """A function added to the table without a numpy test here is a gap, not a silent pass."""
    checked = {"quantize_multiplier", "rescale", "rescale_float64", "srdhm", "rdbpot",
               "mul_pot", "shift_round_half_up", "bit_length", "reciprocal", "inverse_sqrt"}
    assert set(TABLE["functions"]) == checked
    assert all(golden.vectors(TABLE, f) for f in checked)
