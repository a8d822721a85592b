"""TFLite backend: bit-exact (0 LSB) with the integer interpreter on LiteRT's reference kernels
and on TFLite Micro, within 1 LSB per layer on LiteRT's default (XNNPACK) path; TFLM arena and
Ethos-U (Vela) summary in the report; refusals with reasons."""

import os

import numpy as np
import pytest

import edgeq
from edgeq.backends import get_backend
from edgeq.export import export
from tests.backends.test_ort_qdq import _float_and_data
from tests.quant.test_integer_ops import _quantized

pytest.importorskip("ai_edge_litert", reason="the TFLite backend needs ai-edge-litert")
pytest.importorskip("tflite_micro", reason="the TFLM target needs tflite-micro")
CNN_ZOO = ["digits_cnn", "mobilenet_v2", "resnet8", "ds_cnn"]


@pytest.mark.slow
@pytest.mark.parametrize("name", CNN_ZOO)
def test_zoo_cnn_bit_exact_on_litert_reference_and_tflm(name, zoo_dir, tmp_path):
    fg, cal = _float_and_data(name, zoo_dir, n=16)
    report = export(fg, cal, ["tflite", "tflm"], str(tmp_path), {"eval_samples": 2})
    for target in ("tflite", "tflm"):
        v = report["targets"][target]["verification"]
        assert v["calibration"]["max_abs_diff_lsb"] == 0, (target, v)
        assert v["held_out"]["max_abs_diff_lsb"] == 0, (target, v)
    assert report["targets"]["tflite"]["verification"]["per_layer_default_delegate"][
        "max_abs_diff_lsb"] <= 1
    assert 0 < report["targets"]["tflm"]["arena_bytes"] < 1 << 20
    assert report["quantization"]["config"]["rounding"] == "tflite"


OP_CASES = ["conv_relu_pad", "conv_depthwise_stride", "gemm", "add_sub_residual", "pools",
            "concat_differing_scales"]


@pytest.mark.parametrize("case", OP_CASES)
def test_single_ops_bit_exact_on_litert_and_tflm(case, tmp_path):
    from edgeq.quant.calibrate import CalibrationData

    g, _, x = _quantized(case)
    report = export(g, CalibrationData(g, arrays={"x": x}), ["tflite", "tflm"], str(tmp_path),
                    {"eval_samples": 2, "equalize": False})
    for target in ("tflite", "tflm"):
        assert report["targets"][target]["verification"]["calibration"][
            "max_abs_diff_lsb"] == 0, (case, target)


def test_refusals_name_every_node_and_reason():
    g, _, x = _quantized("softmax")
    ig = edgeq.quantize(g, x, rounding="tflite").graph
    reasons = get_backend("tflite").supports(ig)
    assert any("QSoftmax" in r and "no TFLite lowering" in r for r in reasons)
    ig = edgeq.quantize(*_quantized("conv_relu_pad")[::2]).graph  # edgeq rounding
    assert any("--rounding tflite" in r for r in get_backend("tflite").supports(ig))


@pytest.mark.slow
def test_ethos_u_summary_from_vela(tmp_path):
    pytest.importorskip("ethosu.vela", reason="--target ethos-u needs ethos-u-vela")
    from edgeq.quant.calibrate import CalibrationData

    g, _, x = _quantized("conv_relu_pad")
    report = export(g, CalibrationData(g, arrays={"x": x}), ["ethos-u"], str(tmp_path),
                    {"eval_samples": 2})
    t = report["targets"]["ethos-u"]
    assert os.path.getsize(tmp_path / "model_vela.tflite") == t["size_bytes"]
    assert t["summary"]["npu_operators"] >= 1 and t["summary"]["cycles_npu"] > 0
    assert "no simulator" in t["verification"]


def test_tvm_follows_the_tflite_rule_too(tmp_path):
    pytest.importorskip("tvm", reason="needs apache-tvm")
    from edgeq.quant.calibrate import CalibrationData

    g, _, x = _quantized("add_sub_residual")
    report = export(g, CalibrationData(g, arrays={"x": x}), ["tflite", "tvm"], str(tmp_path),
                    {"eval_samples": 2, "equalize": False})
    assert report["targets"]["tvm"]["verification"]["calibration"]["max_abs_diff_lsb"] == 0
    assert np.isfinite(report["targets"]["tflite"]["sqnr_db_vs_float"])
