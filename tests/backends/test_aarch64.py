"""The C library as a phone's CPU runs it: cross-compiled with aarch64-linux-gnu-gcc and run under
qemu-aarch64 user mode, bit-exact with the integer interpreter, with per-layer counts."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from onnx import helper

from edgeq.backends import get_backend
from tests.helpers import onnx_model, run_cli

pytestmark = pytest.mark.backend

MISSING = [t for t in ("aarch64-linux-gnu-gcc", "qemu-aarch64") if not shutil.which(t)]


@pytest.fixture
def model(tmp_path):
    rng = np.random.default_rng(0)
    m = onnx_model([
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("Add", ["r", "r"], ["a"], name="add"),
        helper.make_node("GlobalAveragePool", ["a"], ["p"], name="gap"),
        helper.make_node("Flatten", ["p"], ["f"], name="flat"),
        helper.make_node("Gemm", ["f", "fc"], ["y"], name="fc")],
        {"x": (1, 3, 16, 16)}, ["y"],
        {"w": rng.normal(size=(8, 3, 3, 3)).astype(np.float32) * 0.3,
         "fc": rng.normal(size=(8, 5)).astype(np.float32) * 0.3})
    path = tmp_path / "m.onnx"
    path.write_bytes(m.SerializeToString())
    np.save(tmp_path / "cal.npy", rng.normal(size=(8, 3, 16, 16)).astype(np.float32))
    return path


@pytest.mark.skipif(bool(MISSING), reason=f"{', '.join(MISSING)} not installed (make installs "
                    f"gcc-aarch64-linux-gnu and qemu-user)")
def test_aarch64_build_is_bit_exact_under_qemu_user_and_profiles(model, tmp_path):
    res = run_cli("export", model, "--calib", tmp_path / "cal.npy", "-o", tmp_path / "out",
                  "--target", "aarch64", "--eval-samples", "2")
    assert res.returncode == 0, res.stderr
    t = json.loads((tmp_path / "out" / "report.json").read_text())["targets"]["aarch64"]
    for part in ("calibration", "held_out"):
        assert t["verification"][part]["max_abs_diff_lsb"] == 0, t["verification"]
    assert t["latency_ms"] is None  # emulated: no phone latency claimed
    be = get_backend("aarch64")
    art = be.open(str(tmp_path / "out"))
    x = {art.graph.inputs[0].name: np.load(tmp_path / "cal.npy")[:1]}
    prof = be.profile(art, x, runs=3, warmup=1)
    assert prof["source"] == "emulated" and prof["unit"] == "cpu_ns"
    assert prof["layers"] == [n.name for n in art.graph.nodes]
    assert all(sum(run) <= total for run, total in zip(prof["runs"], prof["totals"]))
    res = run_cli("run", tmp_path / "out", "--target", "aarch64", "--input",
                  tmp_path / "cal.npy", "--output", tmp_path / "y.npy")
    assert res.returncode == 0, res.stderr
