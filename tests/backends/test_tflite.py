"""TFLite backend: bit-exact (0 LSB) with the integer interpreter on LiteRT's reference kernels
and on TFLite Micro, within 1 LSB per layer on LiteRT's default (XNNPACK) path; TFLM arena and
Ethos-U (Vela) summary in the report; refusals with reasons."""

import os
import re

import numpy as np
import pytest

import edgeq
from edgeq.backends import get_backend
from edgeq.export import export
from tests.helpers import float_and_data as _float_and_data
from tests.helpers import CASES
from tests.helpers import quantized_case as _quantized

pytest.importorskip("ai_edge_litert", reason="the TFLite backend needs ai-edge-litert")
pytest.importorskip("tflite_micro", reason="the TFLM target needs tflite-micro")
ZOO = ["digits_cnn", "mobilenet_v2", "resnet8", "ds_cnn", "transformer_block"]


@pytest.mark.slow
@pytest.mark.parametrize("name", ZOO)
def test_zoo_model_bit_exact_on_litert_reference_and_tflm(name, zoo_dir, tmp_path):
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


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_integer_op_case_bit_exact_on_litert_and_tflm_or_refused(case, tmp_path):
    """Softmax follows TFLite's own int8 arithmetic, LayerNorm is decomposed into int8
    builtins, means are fully connected layers of ones, so all but a few cases lower."""
    from edgeq.quant.calibrate import CalibrationData

    g, _, x = _quantized(case)
    ig = edgeq.quantize(g, x, rounding="tflite", equalize=False).graph
    reasons = get_backend("tflite").supports(ig)
    if case in REFUSED:
        assert reasons and all(re.match(r"\w+ '.+': .+", str(r)) for r in reasons), reasons
        return
    assert reasons == []
    report = export(g, CalibrationData(g, arrays={"x": x}), ["tflite", "tflm"], str(tmp_path),
                    {"eval_samples": 2, "equalize": False})
    for target in ("tflite", "tflm"):
        for part in ("calibration", "held_out"):
            assert report["targets"][target]["verification"][part][
                "max_abs_diff_lsb"] == 0, (case, target, part)


REFUSED = {"avgpool_include_pad_ceil"}


def test_refusals_name_every_node_and_reason():
    g, _, x = _quantized("avgpool_include_pad_ceil")
    ig = edgeq.quantize(g, x, rounding="tflite").graph
    reasons = get_backend("tflite").supports(ig)
    assert any("QAveragePool" in str(r) and "counts padding" in str(r) for r in reasons)
    ig = edgeq.quantize(*_quantized("conv_relu_pad")[::2]).graph  # edgeq rounding
    assert any("--rounding tflite" in str(r) for r in get_backend("tflite").supports(ig))


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
    # Vela's per-layer estimates beside edgeq's simulator's, matched by layer
    rows = t["per_layer"]
    matched = [r for r in rows if r["vela_cycles"] and r["edgeq_cycles"]]
    assert matched, rows
    assert all(r["ratio"] == round(r["edgeq_cycles"] / r["vela_cycles"], 3) for r in matched)
    assert {r["layer"] for r in matched} <= {n.name for n in g.nodes} | {
        n.name for n in edgeq.quantize(g, x, rounding="tflite").graph.nodes}


def test_tvm_follows_the_tflite_rule_too(tmp_path):
    pytest.importorskip("tvm", reason="needs apache-tvm")
    from edgeq.quant.calibrate import CalibrationData

    g, _, x = _quantized("add_sub_residual")
    report = export(g, CalibrationData(g, arrays={"x": x}), ["tflite", "tvm"], str(tmp_path),
                    {"eval_samples": 2, "equalize": False})
    assert report["targets"]["tvm"]["verification"]["calibration"]["max_abs_diff_lsb"] == 0
    assert np.isfinite(report["targets"]["tflite"]["sqnr_db_vs_float"])


def _avgpool_counting_padding():
    from onnx import helper

    from tests.passes.util import graph_of

    r = np.random.default_rng(0)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("AveragePool", ["c"], ["y"], kernel_shape=[3, 3], strides=[2, 2],
                              pads=[1, 1, 1, 1], count_include_pad=1)]
    g = graph_of(nodes, {"x": (1, 3, 8, 8)}, ["y"],
                 {"w": r.normal(size=(4, 3, 3, 3)).astype(np.float32)})
    g, _ = edgeq.optimize(g)
    return g, r.normal(size=(16, 3, 8, 8)).astype(np.float32)


def test_allow_fallback_runs_the_refused_node_in_float_and_says_so(tmp_path):
    from edgeq.ir.graph import EdgeqError
    from edgeq.quant.calibrate import CalibrationData

    g, x = _avgpool_counting_padding()
    opts = {"eval_samples": 2, "equalize": False}
    with pytest.raises(EdgeqError, match="QAveragePool '.+': average pooling that counts pad"):
        export(g, CalibrationData(g, arrays={"x": x}), ["tflite"], str(tmp_path / "a"), opts)
    (tmp_path / "b").mkdir()
    report = export(g, CalibrationData(g, arrays={"x": x}), ["tflite", "tflm"],
                    str(tmp_path / "b"), opts, allow_fallback=True)
    for target in ("tflite", "tflm"):
        t = report["targets"][target]
        pool = next(n.name for n in edgeq.load_model(str(tmp_path / "b")).nodes
                    if n.op == "QAveragePool")
        assert t["float_fallback"]["nodes"] == [pool]
        # float rounding in one node: a few LSB at most, and no accuracy lost
        assert 0 < t["verification"]["calibration"]["max_abs_diff_lsb"] <= 3
        assert t["sqnr_db_vs_float"] >= report["integer_interpreter"]["sqnr_db_vs_float"] - 1


def test_mobilenet_lowering_keeps_xnnpack_partitions_whole(zoo_dir, tmp_path):
    """Zero-point padding is PAD (XNNPACK takes it; PADV2 split MobileNetV2 into 6 delegate
    partitions), and the input normalization's 3-channel constants are stored as one image
    row (broadcast over NHWC's 3-long innermost runs, XNNPACK's MUL took 13x longer). Both keep
    the model bit-exact on the reference kernels (verification) and on XNNPACK (here)."""
    from edgeq.backends.tflite import _litert

    fg, cal = _float_and_data("mobilenet_v2", zoo_dir, n=8)
    report = export(fg, cal, ["tflite"], str(tmp_path), {"eval_samples": 2})
    assert report["targets"]["tflite"]["verification"]["calibration"]["max_abs_diff_lsb"] == 0
    interp = _litert("AUTO", 1, path=str(tmp_path / "model.tflite"))
    ops = [o["op_name"] for o in interp._get_ops_details()]
    assert "PADV2" not in ops and ops.count("PAD") == 4, ops
    assert ops.count("DELEGATE") <= 2, ops  # one partition, and one after the average pool
    shapes = {t["name"]: list(t["shape"]) for t in interp.get_tensor_details()}
    norm = [s for name, s in shapes.items() if name.startswith("input_norm/") and
            "/" in name[len("input_norm/"):] and len(s) == 4]
    assert len(norm) == 2 and all(s == [1, 1, 96, 3] for s in norm), norm
    # a layer profiled alone keeps its layout in the model (edgeq profile's sub-models)
    from edgeq.backends.base import load_integer_model, single_node_graph
    from edgeq.backends.tflite.lower import lower_graph, nhwc_values

    g = load_integer_model(str(tmp_path))
    sub = single_node_graph(g, next(n for n in g.nodes if n.name == "input_norm/mul"))
    alone = _litert("AUTO", 1, content=lower_graph(sub)).get_input_details()[0]["shape"]
    kept = _litert("AUTO", 1, content=lower_graph(sub, layout=nhwc_values(g)))
    assert list(alone) == [1, 3, 96, 96]
    assert list(kept.get_input_details()[0]["shape"]) == [1, 96, 96, 3]
