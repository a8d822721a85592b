"""Runs every fuzzer in this folder for ``EDGEQ_FUZZ_S`` seconds (default 30; ``make fuzz
FUZZ_S=600`` for the long run). A fuzzer fails on any exception other than ``EdgeqError``, an
input over 10 s, or an allocation over its cap (``tests/fuzz/harness.py``); the crashing input is
kept in ``build/fuzz/NAME/`` and reproduced with ``python -m tests.fuzz.NAME --repro FILE``."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.fuzz.harness import ROOT

FUZZERS = sorted(f[:-3] for f in os.listdir(os.path.dirname(__file__))
                 if f.startswith("fuzz_") and f.endswith(".py"))
SECONDS = int(os.environ.get("EDGEQ_FUZZ_S", "30"))


def test_every_loader_has_a_fuzzer():
    assert {"fuzz_onnx", "fuzz_eqm", "fuzz_calib"} <= set(FUZZERS), FUZZERS


@pytest.mark.parametrize("name", FUZZERS)
def test_fuzz(name):
    pytest.importorskip("atheris", reason="atheris is in the dev extra (make test installs it)")
    cmd = [sys.executable, "-m", f"tests.fuzz.{name}", "--seconds", str(SECONDS)]
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=SECONDS + 300)
    log = p.stdout + p.stderr
    # libFuzzer's own summary at -max_total_time ("Done N runs in S second(s)"), or the
    # driver's line when it exits through Python
    m = re.search(r"Done (\d+) runs in (\d+) second", log) or \
        re.search(r"fuzz \S+: (\d+) executions in (\d+) s", log)
    print(f"fuzz {name}: {m.group(1)} executions in {m.group(2)} s" if m else log[-2000:])
    assert p.returncode == 0, f"{name} found a crash:\n{log[-6000:]}"
    assert m and int(m.group(1)) > 0, log[-2000:]
