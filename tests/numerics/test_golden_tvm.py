"""The TVM Relax spelling (``edgeq/backends/tvm/lower.py``) against the golden vectors.

Each helper of the lowering is called alone: a ``Lowerer`` over a bare ``BlockBuilder`` (the
helpers never read its graph) emits one Relax function per helper whose parameters are the
table's input columns as int64 tensors; the module is compiled once for ``llvm`` and run in the
Relax VM. ``Lowerer.rescale`` takes its multipliers and shifts as compile-time constants, so
they are baked in per element (``rank=1``, ``axis=-1``: the per-channel path); ``_mul_pot``
takes ``k`` as a Python int, so there is one function per ``k`` of the table. See ``golden.py``
for the table and its exact references.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.numerics import golden

tvm = pytest.importorskip("tvm", reason="apache-tvm is not installed: the TVM Relax spelling "
                                        "(backends/tvm/lower.py) is not checked")

pytestmark = pytest.mark.backend

TABLE = golden.load_table()


def _column(name: str, i: int) -> np.ndarray:
    return np.array([v[i] for v in golden.inputs(TABLE, name)], np.int64)


def _build(table: dict):
    from tvm import relax

    from edgeq.backends.tvm import lower as tl

    bb = relax.BlockBuilder()
    lw = tl.Lowerer(None, bb)

    def function(name: str, n_args: int, length: int, body) -> None:
        params = [relax.Var(f"in{i}", relax.TensorType((length,), "int64"))
                  for i in range(n_args)]
        with bb.function(name, params):
            with bb.dataflow():
                out = body(*params)
                out = bb.emit_output(relax.Tuple(list(out)) if isinstance(out, tuple) else out)
            bb.emit_func_output(out)

    count = lambda name: len(golden.vectors(table, name))  # noqa: E731
    m, n = _column("rescale", 1), _column("rescale", 2)
    for rule in ("edgeq", "tflite"):
        function(f"rescale_{rule}", 1, count("rescale"),
                 lambda x, rule=rule: lw.rescale(x, m, n, 1, -1, rule=rule))
    function("srdhm", 2, count("srdhm"), lambda a, b: tl._srdhm(lw, a, b))
    function("rdbpot", 2, count("rdbpot"), lambda x, e: tl._rdbpot(lw, x, e))
    for k in sorted(set(_column("mul_pot", 1).tolist())):
        function(f"mul_pot_{k}", 1, int((_column("mul_pot", 1) == k).sum()),
                 lambda x, k=k: tl._mul_pot(lw, x, k))
    function("shift_half_up", 2, count("shift_round_half_up"),
             lambda x, s: tl._shift_half_up(lw, x, s))
    function("bit_length", 1, count("bit_length"), lambda x: tl._bit_length(lw, x))
    function("reciprocal", 1, count("reciprocal"), lambda s: tl._reciprocal(lw, s))
    function("inverse_sqrt", 1, count("inverse_sqrt"), lambda q: tl._inverse_sqrt(lw, q))
    ex = tvm.compile(bb.get(), target="llvm")
    return relax.VirtualMachine(ex, tvm.cpu())


@pytest.fixture(scope="module")
def vm():
    return _build(TABLE)


def _run(vm, fn: str, *cols: np.ndarray):
    out = vm[fn](*[tvm.runtime.tensor(np.ascontiguousarray(c, np.int64)) for c in cols])
    if hasattr(out, "numpy"):
        return [int(v) for v in out.numpy()]
    return [[int(v) for v in o.numpy()] for o in out]  # a tuple of tensors


@pytest.mark.parametrize("column,rule", [(0, "edgeq"), (1, "tflite")])
def test_tvm_rescale(vm, column, rule):
    got = _run(vm, f"rescale_{rule}", _column("rescale", 0))
    golden.assert_matches(f"TVM Lowerer.rescale(rule={rule!r})", TABLE, "rescale", got, column)


def test_tvm_srdhm(vm):
    got = _run(vm, "srdhm", _column("srdhm", 0), _column("srdhm", 1))
    golden.assert_matches("TVM _srdhm", TABLE, "srdhm", got)


def test_tvm_rdbpot(vm):
    got = _run(vm, "rdbpot", _column("rdbpot", 0), _column("rdbpot", 1))
    golden.assert_matches("TVM _rdbpot", TABLE, "rdbpot", got)


def test_tvm_mul_pot(vm):
    x, k = _column("mul_pot", 0), _column("mul_pot", 1)
    got = np.zeros(len(x), np.int64)
    for kk in sorted(set(k.tolist())):
        got[k == kk] = _run(vm, f"mul_pot_{kk}", x[k == kk])
    golden.assert_matches("TVM _mul_pot", TABLE, "mul_pot", [int(v) for v in got])


def test_tvm_shift_half_up(vm):
    got = _run(vm, "shift_half_up", _column("shift_round_half_up", 0),
               _column("shift_round_half_up", 1))
    golden.assert_matches("TVM _shift_half_up", TABLE, "shift_round_half_up", got)


def test_tvm_bit_length(vm):
    golden.assert_matches("TVM _bit_length", TABLE, "bit_length",
                          _run(vm, "bit_length", _column("bit_length", 0)))


@pytest.mark.parametrize("name", ["reciprocal", "inverse_sqrt"])
def test_tvm_newton(vm, name):
    r, k = _run(vm, name, _column(name, 0))
    golden.assert_matches(f"TVM _{name}", TABLE, name, [[a, b] for a, b in zip(r, k)])
