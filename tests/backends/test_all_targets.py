"""One export, every target: the transformer block (LayerNorm, attention, softmax, GELU) goes to
ORT, TFLite, TFLite Micro, TVM, C and a Cortex-M4 in a single `export`, all from one integer
model that follows TFLite's arithmetic: every target but ORT bit-exact, ORT within 1 LSB per
layer."""

import shutil

import pytest

from edgeq.export import export
from tests.helpers import float_and_data as _float_and_data

pytest.importorskip("onnxruntime", reason="the ORT backend needs onnxruntime")
pytest.importorskip("tvm", reason="the TVM backend needs apache-tvm")
pytest.importorskip("ai_edge_litert", reason="the TFLite backend needs ai-edge-litert")
ARM = all(shutil.which(t) for t in ("arm-none-eabi-gcc", "qemu-system-arm"))


@pytest.mark.slow
def test_transformer_block_to_every_target_in_one_export(zoo_dir, tmp_path):
    fg, cal = _float_and_data("transformer_block", zoo_dir, n=12)
    exact = ["tflite", "tflm", "tvm", "c"] + (["cortex-m4"] if ARM else [])
    if not ARM:
        print("cortex-m4 left out: arm-none-eabi-gcc or qemu-system-arm missing")
    report = export(fg, cal, ["ort"] + exact, str(tmp_path), {"eval_samples": 2})
    assert report["quantization"]["decomposed_layernorms"]  # TFLite has no LayerNorm kernel
    for target in exact:
        for part in ("calibration", "held_out"):
            assert report["targets"][target]["verification"][part]["max_abs_diff_lsb"] == 0, (
                target, part)
    assert report["targets"]["ort"]["verification"]["per_layer"]["max_abs_diff_lsb"] <= 1
    ref = report["integer_interpreter"]["sqnr_db_vs_float"]
    assert ref > 25
    assert abs(report["targets"]["ort"]["sqnr_db_vs_float"] - ref) <= 1
