"""Failing early, failing whole: every target's support check runs on the integer graph's
structure before calibration, so a refusal is known in seconds with every refused node of every
target; ``--keep-going`` exports the targets that work, lists the refused ones and exits 1."""

import json
import resource
import time

import numpy as np
import pytest
from onnx import helper

import edgeq
from edgeq.export import export
from edgeq.ir.graph import EdgeqError
from edgeq.quant import calibrate as calibrate_module
from edgeq.quant.calibrate import CalibrationData
from tests.helpers import onnx_model
from tests.helpers import run_cli

pytest.importorskip("onnxruntime", reason="the ORT backend needs onnxruntime")
pytest.importorskip("ai_edge_litert", reason="the TFLite backend needs ai-edge-litert")
R = np.random.default_rng(0)


def _model():
    """A conv net TFLite refuses twice (ceil-mode pooling whose padding is not SAME, pooling
    that counts padding) and ONNX Runtime takes."""
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("AveragePool", ["r"], ["u"], kernel_shape=[3, 3], strides=[2, 2],
                              pads=[1, 1, 1, 1], ceil_mode=1, name="ceil_pool"),
             helper.make_node("AveragePool", ["u"], ["y"], kernel_shape=[3, 3],
                              pads=[1, 1, 1, 1], count_include_pad=1, name="pool")]
    return onnx_model(nodes, {"x": (1, 3, 32, 32)}, ["y"],
                      {"w": R.normal(size=(8, 3, 3, 3)).astype(np.float32)})


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


@pytest.fixture
def fg_and_data():
    fg, _ = edgeq.optimize(edgeq.from_onnx(_model()))
    x = R.normal(size=(200, 3, 32, 32)).astype(np.float32)
    return fg, CalibrationData(fg, arrays={"x": x})


def test_refusal_comes_before_calibration_with_every_node_of_every_target(fg_and_data, tmp_path,
                                                                          monkeypatch):
    fg, data = fg_and_data
    t0 = _cpu_s()
    (tmp_path / "full").mkdir()
    export(fg, data, ["ort"], str(tmp_path / "full"), {"eval_samples": 2})
    full_s = _cpu_s() - t0

    def no_calibration(*a, **k):
        raise AssertionError("calibration ran before the support checks refused the export")
    monkeypatch.setattr(calibrate_module, "calibrate", no_calibration)
    monkeypatch.setattr("edgeq.quant.pipeline.calibrate", no_calibration)
    (tmp_path / "refused").mkdir()
    t0 = _cpu_s()
    with pytest.raises(EdgeqError) as e:
        export(fg, data, ["ort", "tflite", "tflm"], str(tmp_path / "refused"))
    refused_s = _cpu_s() - t0
    msg = str(e.value)
    assert msg.startswith("cannot export (found before calibration): ")
    for target in ("tflite", "tflm"):
        assert f"{target}: QAveragePool 'ceil_pool': average pooling padding" in msg
        assert f"{target}: QAveragePool 'pool': average pooling that counts pad" in msg
    assert "ort:" not in msg
    # the acceptance figure: a refused export costs under 10% of a full one (CPU time)
    assert refused_s < 0.1 * full_s, (refused_s, full_s)


def test_keep_going_exports_what_works_lists_the_rest_and_exits_1(tmp_path):
    path = tmp_path / "m.onnx"
    path.write_bytes(_model().SerializeToString())
    np.save(tmp_path / "x.npy", R.normal(size=(8, 3, 32, 32)).astype(np.float32))
    res = run_cli("export", path, "--calib", tmp_path / "x.npy", "-o", tmp_path / "out",
                  "--target", "ort,tflite", "--keep-going")
    assert res.returncode == 1, res.stderr
    assert "Traceback" not in res.stderr
    assert "edgeq: refused target tflite: QAveragePool 'ceil_pool'" in res.stderr
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert sorted(report["targets"]) == ["ort"]
    assert any("QAveragePool 'pool'" in r for r in report["refused_targets"]["tflite"])
    assert (tmp_path / "out" / "model.qdq.onnx").exists()
    assert not (tmp_path / "out" / "model.tflite").exists()
    # without --keep-going: one error line, exit 2, nothing written
    res = run_cli("export", path, "--calib", tmp_path / "x.npy", "-o", tmp_path / "out2",
                  "--target", "ort,tflite")
    assert res.returncode == 2 and "found before calibration" in res.stderr
    assert not (tmp_path / "out2").exists()


def test_every_target_refused_is_an_error_even_with_keep_going(fg_and_data, tmp_path):
    fg, data = fg_and_data
    t0 = time.perf_counter()
    with pytest.raises(EdgeqError, match="every target refuses the model: tflite: "):
        export(fg, data, ["tflite"], str(tmp_path), keep_going=True)
    assert time.perf_counter() - t0 < 60
