"""The C spelling (``edgeq/backends/c/edgeq_rt.h``) against the golden vectors of ``golden.json``.

A harness generated from the table ``#include``s the runtime header, calls each helper on every
vector and prints one result a line; it is built once with the host ``gcc -std=c99 -O2`` (and
once more with ``-fsanitize=undefined`` where the toolchain has it: the helpers must not rely
on undefined behaviour for any golden input). Two C transcriptions of the references the table
claims to agree with are built into the same harness: TFLite's ``QuantizeMultiplier`` (frexp and
``round``, quantization_util.cc) and LiteRT's float64 requantization ``round((double)x * M)``;
they check the table, not edgeq. See ``golden.py`` for the table and its exact references.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests.numerics import golden

pytestmark = [
    pytest.mark.backend,
    pytest.mark.skipif(shutil.which("gcc") is None,
                       reason="no host gcc: the C spelling (edgeq_rt.h) is not checked"),
]

TABLE = golden.load_table()
ROOT = os.path.dirname(os.path.dirname(golden.HERE))
RUNTIME_DIR = os.path.join(ROOT, "edgeq", "backends", "c")

# golden function -> (C expression per vector over in[i][...], one per result column)
CALLS = {
    "rescale": [
        ("eq_rescale_edgeq", "eq_rescale_edgeq(in[i][0], (int32_t)in[i][1], (int)in[i][2])", 0),
        ("eq_rescale_tflite", "eq_rescale_tflite(in[i][0], (int32_t)in[i][1], (int)in[i][2])",
         1),
        ("eq_rescale(EQ_RULE_EDGEQ)",
         "eq_rescale(in[i][0], (int32_t)in[i][1], (int)in[i][2], EQ_RULE_EDGEQ)", 0),
        ("eq_rescale(EQ_RULE_TFLITE)",
         "eq_rescale(in[i][0], (int32_t)in[i][1], (int)in[i][2], EQ_RULE_TFLITE)", 1),
    ],
    "srdhm": [("eq_srdhm", "eq_srdhm((int32_t)in[i][0], (int32_t)in[i][1])", None)],
    "rdbpot": [("eq_rdbpot", "eq_rdbpot(in[i][0], (int)in[i][1])", None)],
    "mul_pot": [("eq_mul_pot", "eq_mul_pot(in[i][0], (int)in[i][1])", None)],
    "shift_round_half_up": [("eq_shift_round", "eq_shift_round(in[i][0], (int)in[i][1])",
                             None)],
    "bit_length": [("eq_bit_length", "eq_bit_length(in[i][0])", None)],
}
PAIRS = {"reciprocal": "eq_reciprocal", "inverse_sqrt": "eq_inverse_sqrt"}  # (r, k) results

PRELUDE = r"""
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include "edgeq_rt.h"

/* TFLite quantization_util.cc QuantizeMultiplier (double rounding form), m and n = 31 - shift */
static void tflite_quantize_multiplier(double real, int64_t *m, int64_t *n) {
    int shift;
    if (real == 0.) { *m = 0; *n = 0; return; }
    double q = frexp(real, &shift);
    int64_t q_fixed = (int64_t)round(q * (double)(1LL << 31));
    if (q_fixed == (1LL << 31)) { q_fixed /= 2; ++shift; }
    if (shift < -31) { *m = 0; *n = 0; return; } /* TFLite's shift = 0, q_fixed = 0 */
    *m = q_fixed;
    *n = 31 - shift;
}

#define PRINT(tag, i, v) printf("%s %d %" PRId64 "\n", tag, (int)(i), (int64_t)(v))
"""


def _int64(v: int) -> str:
    assert -(1 << 63) < v < 1 << 63, v
    return f"INT64_C({v})"


def harness_source(table: dict) -> str:
    out = [PRELUDE, "int main(void) {"]
    for name, calls in CALLS.items():
        rows = golden.inputs(table, name)
        body = ", ".join("{" + ", ".join(_int64(a) for a in r) + "}" for r in rows)
        out.append(f"  {{ static const int64_t in[][{len(rows[0])}] = {{{body}}};")
        out.append(f"    for (int i = 0; i < {len(rows)}; i++) {{")
        for tag, expr, _ in calls:
            out.append(f'      PRINT("{tag}", i, {expr});')
        out.append("    } }")
    for name, fn in PAIRS.items():
        rows = golden.inputs(table, name)
        out.append(f"  {{ static const int64_t in[] = {{{', '.join(_int64(r[0]) for r in rows)}}};")
        out.append(f"    for (int i = 0; i < {len(rows)}; i++) {{ int k; int64_t r = "
                   f"{fn}(in[i], &k);")
        out.append(f'      PRINT("{fn}.r", i, r); PRINT("{fn}.k", i, k); }} }}')
    rows = golden.inputs(table, "rescale_float64")
    out.append(f"  {{ static const int64_t x[] = {{{', '.join(_int64(r[0]) for r in rows)}}};")
    out.append(f"    static const double M[] = {{{', '.join(float(r[1]).hex() for r in rows)}}};")
    out.append(f"    for (int i = 0; i < {len(rows)}; i++) "
               f'PRINT("round_double", i, (int64_t)round((double)x[i] * M[i])); }}')
    rows = golden.inputs(table, "quantize_multiplier")
    finite = [r[0] if r[0] == r[0] and abs(r[0]) != float("inf") else 0.0 for r in rows]
    out.append(f"  {{ static const double s[] = {{{', '.join(float(v).hex() for v in finite)}}};")
    out.append(f"    for (int i = 0; i < {len(rows)}; i++) {{ int64_t m, n; "
               f"tflite_quantize_multiplier(s[i], &m, &n);")
    out.append('      PRINT("tflite_qm.m", i, m); PRINT("tflite_qm.n", i, n); } }')
    out += ["  return 0;", "}", ""]
    return "\n".join(out)


def _build_and_run(tmp_dir: str, extra_flags: list[str]) -> dict[str, list[int]]:
    src = os.path.join(tmp_dir, "golden_harness.c")
    exe = os.path.join(tmp_dir, "golden_harness" + ("_ubsan" if extra_flags else ""))
    with open(src, "w") as f:
        f.write(harness_source(TABLE))
    cmd = ["gcc", "-std=c99", "-O2", "-Wall", "-Wno-unused-function", *extra_flags,
           "-I", RUNTIME_DIR, src, "-o", exe, "-lm"]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{res.stderr}")
    run = subprocess.run([exe], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and not run.stderr, (
        f"harness ({' '.join(extra_flags) or 'plain'}) exited {run.returncode}:\n{run.stderr}")
    results: dict[str, list[int]] = {}
    for line in run.stdout.splitlines():
        tag, i, v = line.split(" ")
        col = results.setdefault(tag, [])
        assert int(i) == len(col), line
        col.append(int(v))
    return results


@pytest.fixture(scope="module")
def c_results(tmp_path_factory) -> dict[str, list[int]]:
    return _build_and_run(str(tmp_path_factory.mktemp("golden_c")), [])


CASES = [(name, tag, col) for name, calls in CALLS.items() for tag, _, col in calls]


@pytest.mark.parametrize("name,tag,column", CASES, ids=[c[1] for c in CASES])
def test_c_helper_matches_golden(c_results, name, tag, column):
    golden.assert_matches(f"C {tag}", TABLE, name, c_results[tag], column)


@pytest.mark.parametrize("name", list(PAIRS))
def test_c_newton_matches_golden(c_results, name):
    fn = PAIRS[name]
    got = [[r, k] for r, k in zip(c_results[f"{fn}.r"], c_results[f"{fn}.k"])]
    golden.assert_matches(f"C {fn}", TABLE, name, got)


def test_table_float64_rounding_is_libm_round_of_the_double_product(c_results):
    """Checks the table: LiteRT's FULLY_CONNECTED computes round((double)x * M) in C."""
    golden.assert_matches("C round((double)x * M)", TABLE, "rescale_float64",
                          c_results["round_double"])


def test_table_multipliers_are_tflite_quantize_multiplier(c_results):
    """Checks the table against TFLite's QuantizeMultiplier (frexp, round) where edgeq accepts
    the scale; edgeq refuses negative, non-finite and >= 2**31 factors, TFLite has no such
    error."""
    got = []
    for i, v in enumerate(golden.vectors(TABLE, "quantize_multiplier")):
        got.append("ValueError" if v["out"] == "ValueError" else
                   [c_results["tflite_qm.m"][i], c_results["tflite_qm.n"][i]])
    golden.assert_matches("C TFLite QuantizeMultiplier", TABLE, "quantize_multiplier", got)


def test_c_helpers_have_no_undefined_behaviour_on_golden_inputs(c_results, tmp_path):
    """The same harness under UBSan (signed overflow, shifts out of range) gives the same
    results and no report."""
    try:
        ub = _build_and_run(str(tmp_path), ["-fsanitize=undefined",
                                            "-fno-sanitize-recover=all"])
    except RuntimeError as e:
        pytest.skip(f"gcc cannot build with -fsanitize=undefined here: {e}"[:300])
    assert ub == c_results
