"""Three of the onnx wheel's model-zoo graphs (re-drawn weights) export to every target: TFLite
(LiteRT reference kernels), TFLite Micro, TVM and C bit-exact with the integer interpreter, ORT
within 1 LSB per layer on the same inputs (end to end is reported). They end in Softmax: the
TFLite targets make the integer model follow TFLite's own int8 softmax arithmetic."""

import numpy as np
import pytest

import edgeq
from edgeq.export import export
from edgeq.quant.calibrate import CalibrationData
from models.onnx_light import load_light

pytest.importorskip("onnxruntime", reason="the ORT backend needs onnxruntime")
pytest.importorskip("tvm", reason="the TVM backend needs apache-tvm")
pytest.importorskip("ai_edge_litert", reason="the TFLite backend needs ai-edge-litert")
pytestmark = pytest.mark.slow
EXACT = ["tflite", "tflm", "tvm", "c"]


@pytest.mark.parametrize("name", ["squeezenet", "shufflenet", "inception_v2"])
def test_light_graph_exports_to_every_target(name, tmp_path):
    fg, _ = edgeq.optimize(edgeq.from_onnx(load_light(name)))
    x = np.random.default_rng(0).normal(size=(4,) + fg.inputs[0].shape[1:]).astype(np.float32)
    report = export(fg, CalibrationData(fg, arrays={fg.inputs[0].name: x}), ["ort"] + EXACT,
                    str(tmp_path), {"eval_samples": 1, "weight_rounding": "nearest"})
    targets = report["targets"]
    assert report["quantization"]["config"]["rounding"] == "tflite"
    assert targets["ort"]["verification"]["per_layer"]["max_abs_diff_lsb"] <= 1
    for target in EXACT:
        for part in ("calibration", "held_out"):
            assert targets[target]["verification"][part]["max_abs_diff_lsb"] == 0, (target,
                                                                                   part)
    assert targets["tflite"]["verification"]["per_layer_default_delegate"][
        "max_abs_diff_lsb"] <= 1
