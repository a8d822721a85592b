"""The onnx wheel's model-zoo graphs (re-drawn weights): squeezenet, inception_v2,
densenet121 and shufflenet export to every target (densenet121's 8M weights are left out of the
C build to keep the suite short): TFLite (LiteRT reference kernels), TFLite Micro, TVM and C
bit-exact with the integer interpreter, ORT within 1 LSB per layer on the same inputs (end to
end is reported). They end in Softmax: the TFLite targets make the integer model follow
TFLite's own int8 softmax arithmetic. shufflenet's grouped convolutions are grouped CONV_2Ds,
its channel shuffles 5-D TRANSPOSEs, its padded average pools SAME on reversed axes."""

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


@pytest.mark.parametrize("name,exact", [
    ("squeezenet", EXACT), ("inception_v2", EXACT), ("densenet121", ["tflite", "tflm", "tvm"]),
    ("shufflenet", EXACT)])
def test_light_graph_exports_to_every_target(name, exact, tmp_path):
    fg, _ = edgeq.optimize(edgeq.from_onnx(load_light(name)))
    x = np.random.default_rng(0).normal(size=(3,) + fg.inputs[0].shape[1:]).astype(np.float32)
    data = CalibrationData(fg, arrays={fg.inputs[0].name: x})
    opts = {"eval_samples": 1, "weight_rounding": "nearest"}
    report = export(fg, data, ["ort"] + exact, str(tmp_path), opts)
    targets = report["targets"]
    assert report["quantization"]["config"]["rounding"] == "tflite"
    assert targets["ort"]["verification"]["per_layer"]["max_abs_diff_lsb"] <= 1
    for target in exact:
        for part in ("calibration", "held_out"):
            assert targets[target]["verification"][part]["max_abs_diff_lsb"] == 0, (target,
                                                                                   part)
    assert targets["tflite"]["verification"]["per_layer_default_delegate"][
        "max_abs_diff_lsb"] <= 1
