"""The CLI as a user runs it: a subprocess, exit codes, stdout/stderr, and files written."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from onnx import helper

from tests.helpers import onnx_model, run_cli



@pytest.fixture
def small_model(tmp_path):
    w = np.random.default_rng(0).normal(size=(4, 3, 3, 3)).astype(np.float32)
    m = onnx_model([helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
                    helper.make_node("Relu", ["c"], ["y"], name="relu")],
                   {"x": ("N", 3, 6, 6)}, ["y"], {"w": w})
    path = tmp_path / "small.onnx"
    path.write_bytes(m.SerializeToString())
    return path


def assert_user_error(res, *needles):
    assert res.returncode == 2, (res.returncode, res.stderr)
    assert "Traceback" not in res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edgeq: error: "), res.stderr
    for n in needles:
        assert n in lines[0], (n, lines[0])


def test_version():
    res = run_cli("--version")
    assert res.returncode == 0 and res.stdout.strip().startswith("edgeq 0.")


def test_inspect_table_and_json(small_model):
    res = run_cli("inspect", small_model)
    assert res.returncode == 0, res.stderr
    assert "Conv+Relu" in res.stdout and "1x4x6x6" in res.stdout
    assert "3,888 MACs" in res.stdout  # 4*6*6 outputs * 3*3*3
    res = run_cli("inspect", small_model, "--json")
    info = json.loads(res.stdout)
    assert info["totals"]["macs"] == 4 * 6 * 6 * 27
    assert info["layers"][0]["params"] == 108
    assert info["layers"][0]["activation_bytes"] == 4 * 6 * 6 * 4


def test_run_batch_matches_reference(small_model, tmp_path):
    x = np.random.default_rng(1).normal(size=(5, 3, 6, 6)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    res = run_cli("run", small_model, "--input", tmp_path / "x.npy", "--output",
                  tmp_path / "y.npy")
    assert res.returncode == 0, res.stderr
    y = np.load(tmp_path / "y.npy")
    assert y.shape == (5, 4, 6, 6)
    import onnxruntime as ort

    sess = ort.InferenceSession(str(small_model), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(y, sess.run(None, {"x": x})[0], rtol=1e-5, atol=1e-5)


def test_run_with_input_normalization_takes_raw_input(small_model, tmp_path):
    raw = np.random.default_rng(2).uniform(0, 255, (2, 3, 6, 6)).astype(np.float32)
    np.save(tmp_path / "x.npy", raw)
    res = run_cli("run", small_model, "--input", tmp_path / "x.npy", "--output",
                  tmp_path / "y.npy", "--mean", "100,110,120", "--std", "50,55,60")
    assert res.returncode == 0, res.stderr
    import onnxruntime as ort

    norm = (raw - np.array([100, 110, 120], np.float32).reshape(1, 3, 1, 1)) / \
        np.array([50, 55, 60], np.float32).reshape(1, 3, 1, 1)
    sess = ort.InferenceSession(str(small_model), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), sess.run(None, {"x": norm})[0],
                               rtol=1e-4, atol=1e-4)


def test_missing_file(tmp_path):
    assert_user_error(run_cli("inspect", tmp_path / "nope.onnx"), "nope.onnx", "no such file")


def test_not_onnx(tmp_path):
    p = tmp_path / "notes.onnx"
    p.write_text("this is a text file, not a model\n" * 10)
    assert_user_error(run_cli("inspect", p), "notes.onnx", "not")


def test_truncated_onnx(small_model, tmp_path):
    data = small_model.read_bytes()
    p = tmp_path / "cut.onnx"
    p.write_bytes(data[: len(data) // 2])
    assert_user_error(run_cli("inspect", p), "cut.onnx", "truncated")


def test_unknown_ops_listed_with_node_names(tmp_path):
    m = onnx_model([helper.make_node("Relu", ["x"], ["a"], name="ok"),
                    helper.make_node("Hardmax", ["a"], ["b"], name="hm1"),
                    helper.make_node("Hardmax", ["b"], ["c"], name="hm2"),
                    helper.make_node("Celu", ["c"], ["y"], name="celu0")],
                   {"x": (1, 4)}, ["y"])
    p = tmp_path / "ops.onnx"
    p.write_bytes(m.SerializeToString())
    assert_user_error(run_cli("inspect", p), "Celu", "'celu0'", "Hardmax", "'hm1'", "'hm2'")


def test_dynamic_shape_without_shape_given(tmp_path):
    m = onnx_model([helper.make_node("Relu", ["x"], ["y"], name="r")],
                   {"x": (1, 3, "H", "W")}, ["y"])
    p = tmp_path / "dyn.onnx"
    p.write_bytes(m.SerializeToString())
    assert_user_error(run_cli("inspect", p), "input 'x'", "dynamic shape", "--input-shape")
    res = run_cli("inspect", p, "--input-shape", "1,3,8,8")
    assert res.returncode == 0 and "1x3x8x8" in res.stdout


def test_errors_write_nothing(small_model, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    np.save(tmp_path / "bad.npy", np.zeros((2, 3, 5, 5), np.float32))  # wrong spatial size
    res = run_cli("run", small_model, "--input", tmp_path / "bad.npy", "--output",
                  out / "y.npy")
    assert_user_error(res, "expected (N, 3, 6, 6)")
    assert list(out.iterdir()) == []
    (tmp_path / "junk.npy").write_text("not numpy")
    res = run_cli("run", small_model, "--input", tmp_path / "junk.npy", "--output",
                  out / "y.npy")
    assert_user_error(res, "junk.npy", "not a readable .npy")
    assert list(out.iterdir()) == []


def test_torch_factory_on_cli(tmp_path):
    pytest.importorskip("torch", reason="--torch needs torch")
    pkg = tmp_path / "mynets.py"
    pkg.write_text("import torch\n"
                   "def tiny():\n"
                   "    torch.manual_seed(0)\n"
                   "    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3),"
                   " torch.nn.BatchNorm2d(4), torch.nn.ReLU6())\n")
    res = run_cli("inspect", "--torch", "mynets:tiny", "--input-shape", "1,3,10,10", "--json",
                  cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    info = json.loads(res.stdout)
    assert [r["op"] for r in info["layers"]] == ["Conv+Clip"]
    assert_user_error(run_cli("inspect", "--torch", "mynets:nothing", "--input-shape", "1,3",
                              cwd=tmp_path), "no callable 'nothing'")
    assert_user_error(run_cli("inspect", "--torch", "mynets:tiny", cwd=tmp_path),
                      "--input-shape")


def test_quantize_then_run(small_model, tmp_path):
    rng = np.random.default_rng(3)
    cal = rng.normal(size=(16, 3, 6, 6)).astype(np.float32)
    np.save(tmp_path / "cal.npy", cal)
    out = tmp_path / "q"
    res = run_cli("quantize", small_model, "--calib", tmp_path / "cal.npy", "-o", out,
                  "--deterministic-report")
    assert res.returncode == 0, res.stderr
    assert "output SQNR" in res.stdout and sorted(os.listdir(out)) == ["model.eqm",
                                                                          "report.json"]
    report = json.loads((out / "report.json").read_text())
    for key in ("layers", "output_sqnr_db", "top1_agreement", "weight_bytes", "config"):
        assert key in report
    first = (out / "model.eqm").read_bytes()
    res = run_cli("quantize", small_model, "--calib", tmp_path / "cal.npy", "-o", out,
                  "--deterministic-report")
    assert (out / "model.eqm").read_bytes() == first  # byte-identical rerun
    x = cal[:3] * 0.9  # inside the calibrated range (outside it, int8 saturates by design)
    np.save(tmp_path / "x.npy", x)
    res = run_cli("run", out, "--input", tmp_path / "x.npy", "--output", tmp_path / "y.npy")
    assert res.returncode == 0, res.stderr
    res = run_cli("run", out / "model.eqm", "--input", tmp_path / "x.npy", "--output",
                  tmp_path / "raw.npy", "--raw")
    assert res.returncode == 0, res.stderr
    y, raw = np.load(tmp_path / "y.npy"), np.load(tmp_path / "raw.npy")
    assert raw.dtype == np.int8 and y.dtype == np.float32 and y.shape == raw.shape
    import onnxruntime as ort

    ref = ort.InferenceSession(str(small_model), providers=["CPUExecutionProvider"]).run(
        None, {"x": x})[0]
    assert 10 * np.log10((ref ** 2).sum() / ((ref - y) ** 2).sum()) > 30


def test_quantize_errors_write_nothing(small_model, tmp_path):
    (tmp_path / "empty").mkdir()
    res = run_cli("quantize", small_model, "--calib", tmp_path / "empty", "-o", tmp_path / "q")
    assert_user_error(res, "folder has no images")
    np.save(tmp_path / "few.npy", np.zeros((2, 3, 6, 6), np.float32))
    res = run_cli("quantize", small_model, "--calib", tmp_path / "few.npy", "-o",
                  tmp_path / "q", "--calib-samples", "5")
    assert_user_error(res, "5 calibration samples requested but only 2")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "few.npy", "small.onnx"]


def test_plan_memory_table_budget_and_exit_codes(small_model):
    res = run_cli("plan-memory", small_model, "--steps", "--sram", "64KB")
    assert res.returncode == 0, res.stderr
    assert "activation memory of" in res.stdout and "(int8 activations)" in res.stdout
    assert "layer-by-layer" in res.stdout and "live bytes (layer by layer)" in res.stdout
    assert "fits 65,536 bytes of SRAM with the layer-by-layer schedule" in res.stdout
    res = run_cli("plan-memory", small_model, "--sram", "100B")
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert "does not fit 100 bytes of SRAM: the smallest achievable peak is" in res.stderr
    assert "the layer-by-layer peak is set by step" in res.stderr


def test_run_target_needs_an_exported_folder(small_model, tmp_path):
    cal = np.random.default_rng(3).normal(size=(8, 3, 6, 6)).astype(np.float32)
    np.save(tmp_path / "cal.npy", cal)
    np.save(tmp_path / "x.npy", cal[:2])
    res = run_cli("run", small_model, "--target", "ort", "--input", tmp_path / "x.npy",
                  "--output", tmp_path / "y.npy")
    assert_user_error(res, "--target ort needs the folder `edgeq export` wrote")
    assert run_cli("quantize", small_model, "--calib", tmp_path / "cal.npy", "-o",
                   tmp_path / "q").returncode == 0
    res = run_cli("run", tmp_path / "q", "--target", "ort", "--input", tmp_path / "x.npy",
                  "--output", tmp_path / "y.npy")
    assert_user_error(res, "has no ort artifact (model.qdq.onnx); export with --target ort")
    res = run_cli("run", tmp_path / "q", "--target", "coreml", "--input", tmp_path / "x.npy",
                  "--output", tmp_path / "y.npy")
    assert_user_error(res, "unknown target 'coreml'")
    assert not (tmp_path / "y.npy").exists()
