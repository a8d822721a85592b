"""int16 graph outputs on TFLite, TFLite Micro and C.

A detector head joins box coordinates (0..300) and sigmoid scores (0..1) in its final Concat;
under one int8 scale the scores keep 1 or 2 of 256 levels. The quantizer keeps such a Concat in
int16 when it feeds only data movement to the outputs (``quant.pipeline.mixed_range_concats``),
and these backends take exactly that: Requantize int8 -> int16 (TFLite's QUANTIZE, C's
``eq_requantize_wide``), an int16 Concat, then Reshape / Transpose / Split / Slice to int16
outputs. Checked: 0 LSB against the integer interpreter on every runtime, and the scores' SQNR
against float, which an int8 Concat loses. Every other int16 reader stays refused.
"""

import shutil
import tempfile

import numpy as np
import pytest
from onnx import helper

import edgeq
from edgeq.backends import get_backend
from edgeq.backends.tflite import lower as tflite_lower
from edgeq.export import export
from edgeq.quant.calibrate import CalibrationData
from edgeq.quant.pipeline import run_integer
from edgeq.runtime import run_graph
from tests.helpers import graph_of

pytest.importorskip("ai_edge_litert", reason="the TFLite backend needs ai-edge-litert")
pytest.importorskip("tflite_micro", reason="the TFLM backend needs tflite-micro")
ARM = all(shutil.which(t) for t in ("arm-none-eabi-gcc", "qemu-system-arm"))
TARGETS = ("tflite", "tflm", "c")
EXPORTED = TARGETS + (("cortex-m4",) if ARM else ())  # the C library on QEMU's Cortex-M4 too
SCORES_MIN_SQNR_DB = 30.0  # int16 keeps the scores; one int8 scale over 0..300 does not


def n(op, ins, outs, **attrs):
    return helper.make_node(op, list(ins), list(outs), name=f"{op.lower()}_{outs[0]}", **attrs)


# tail after the Concat -> (nodes, outputs, the scores of the float or integer outputs)
TAILS = {
    "concat": ([], ["cat"], lambda o: o["cat"][:, 4:6]),
    "transpose_slice": ([n("Transpose", ["cat"], ["t"], perm=[0, 2, 3, 1]),
                         n("Slice", ["t", "st", "en", "ax"], ["y"])], ["y"],
                        lambda o: o["y"][..., 3:5]),
    "reshape_transpose_split": ([n("Reshape", ["cat", "rows"], ["r"]),
                                 n("Transpose", ["r"], ["t"], perm=[0, 2, 1]),
                                 n("Split", ["t", "parts"], ["box_out", "score_out"], axis=2)],
                                ["box_out", "score_out"], lambda o: o["score_out"]),
}


def _detector(tail: str):
    """Conv backbone; boxes = 300 sigmoid(conv), scores = sigmoid(conv); Concat on axis 1."""
    R = np.random.default_rng(7)
    nodes = [n("Conv", ["x", "w1"], ["f0"], pads=[1, 1, 1, 1]), n("Relu", ["f0"], ["f"]),
             n("Conv", ["f", "wb"], ["b0"]), n("Sigmoid", ["b0"], ["b1"]),
             n("Mul", ["b1", "size"], ["boxes"]),
             n("Conv", ["f", "ws"], ["s0"]), n("Sigmoid", ["s0"], ["scores"]),
             n("Concat", ["boxes", "scores"], ["cat"], axis=1)]
    inits = {"w1": R.normal(0, 0.5, (8, 3, 3, 3)).astype(np.float32),
             "wb": R.normal(0, 0.5, (4, 8, 1, 1)).astype(np.float32),
             "ws": R.normal(0, 0.5, (2, 8, 1, 1)).astype(np.float32),
             "size": np.float32(300), "rows": np.array([1, 6, 64], np.int64),
             "parts": np.array([4, 2], np.int64), "st": np.array([1], np.int64),
             "en": np.array([6], np.int64), "ax": np.array([3], np.int64)}
    tail_nodes, outputs, scores = TAILS[tail]
    g, _ = edgeq.optimize(graph_of(nodes + tail_nodes, {"x": (1, 3, 8, 8)}, outputs, inits))
    return g, scores


def _sqnr_db(ref: np.ndarray, got: np.ndarray) -> float:
    ref, got = np.asarray(ref, np.float64), np.asarray(got, np.float64)
    return float(10 * np.log10(np.sum(ref ** 2) / np.sum((ref - got) ** 2)))


@pytest.mark.parametrize("tail", list(TAILS))
def test_detector_head_exports_int16_outputs_bit_exact_keeping_the_scores(tail, tmp_path):
    fg, scores = _detector(tail)
    x = np.random.default_rng(8).normal(0, 1, (24, 3, 8, 8)).astype(np.float32)
    if not ARM:
        print("cortex-m4 left out: arm-none-eabi-gcc or qemu-system-arm missing")
    report = export(fg, CalibrationData(fg, arrays={"x": x}), list(EXPORTED), str(tmp_path),
                    {"eval_samples": 2})
    assert report["quantization"]["mixed_range_concats"]["cat"]["int16"]
    for t in EXPORTED:  # 0 LSB against the integer interpreter, on every sample
        for part in ("calibration", "held_out"):
            assert report["targets"][t]["verification"][part]["max_abs_diff_lsb"] == 0, (t, part)

    feeds = [{"x": x[i:i + 1]} for i in range(len(x))]
    want = np.concatenate([scores(run_graph(fg, f)) for f in feeds])
    for t in EXPORTED:
        be = get_backend(t)
        art = be.open(str(tmp_path))
        assert all(v.dtype.value == "int16" for v in art.graph.outputs)
        got = be.run_many(art, feeds)
        assert all(o.dtype == np.int16 for o in be.run_many(art, feeds[:1], raw=True)[0].values())
        db = _sqnr_db(want, np.concatenate([scores(o) for o in got]))
        assert db > SCORES_MIN_SQNR_DB, (t, db)

    # the same Concat in int8 (a target that takes no int16): the scores are lost
    ig8 = edgeq.quantize(fg, x, rounding="tflite", mixed_range_int16="none").graph
    assert all(v.dtype.value == "int8" for v in ig8.outputs)
    db8 = _sqnr_db(want, np.concatenate([scores(run_integer(ig8, f)) for f in feeds]))
    assert db8 < SCORES_MIN_SQNR_DB - 10, db8


def _signed_head():
    """Box offsets calibrated to [-300, 99] (a graph input, so the range is exact) beside
    sigmoid scores. int8: s = 399/255, z = round(-128 + 300/s) = 64, so q = -128 is -300.42,
    past the Concat's int16 range (300 / 32767 per step): it requantizes to -32813."""
    rng = np.random.default_rng(3)
    g, _ = edgeq.optimize(graph_of([n("Sigmoid", ["s"], ["scores"]),
                                    n("Concat", ["offsets", "scores"], ["y"], axis=1)],
                                   {"offsets": (1, 4, 4, 4), "s": (1, 2, 4, 4)}, ["y"]))
    offsets = rng.uniform(-300, 99, (16, 4, 4, 4)).astype(np.float32)
    offsets[0, 0, 0, :2] = -300, 99
    calib = {"offsets": offsets, "s": rng.normal(0, 2, (16, 2, 4, 4)).astype(np.float32)}
    ig = edgeq.quantize(g, CalibrationData(g, arrays=calib), equalize=False, rounding="tflite",
                        mixed_range_int16="outputs").graph
    return ig, calib


def test_int16_requantize_keeps_edgeqs_symmetric_range_on_every_runtime(monkeypatch):
    """edgeq's int16 is [-32767, 32767]; QUANTIZE clamps to the type, [-32768, 32767]. An input
    whose int8 range reaches further below zero than the Concat's (by up to half an int8 step)
    requantizes to below -32767: the lowering adds a MAXIMUM with -32767, without which LiteRT
    returns -32768."""
    ig, calib = _signed_head()
    wide = next(m for m in ig.nodes if m.op == "Requantize" and m.inputs[0].name == "offsets")
    assert tflite_lower.requantize_reach(wide)[0] == -32813 < wide.attrs["act_min"] == -32767
    feeds = [{k: v[i:i + 1] for k, v in calib.items()} for i in range(3)]
    ours = [run_integer(ig, f, raw=True)["y"] for f in feeds]
    assert min(int(o.min()) for o in ours) == -32767
    for t in EXPORTED:
        be = get_backend(t)
        with tempfile.TemporaryDirectory() as d:
            art = be.lower(ig, d)
            for f, o in zip(feeds, ours):
                np.testing.assert_array_equal(be.run(art, f, raw=True)["y"], o, err_msg=t)

    monkeypatch.setattr(tflite_lower, "requantize_reach", lambda node: (0, 0))
    be = get_backend("tflite")
    with tempfile.TemporaryDirectory() as d:
        art = be.lower(ig, d)
        assert int(be.run(art, feeds[0], raw=True)["y"].min()) == -32768


def test_int16_to_int16_requantize_on_tflite():
    """Two int16 graph inputs 300x apart joined: the narrow one is requantized int16 -> int16
    (QUANTIZE). The C backend takes int8 inputs only."""
    R = np.random.default_rng(5)
    g, _ = edgeq.optimize(graph_of([n("Concat", ["a", "b"], ["y"], axis=1)],
                                   {"a": (1, 2, 4), "b": (1, 3, 4)}, ["y"]))
    feeds = {"a": R.uniform(-300, 300, (16, 2, 4)).astype(np.float32),
             "b": R.uniform(-1, 1, (16, 3, 4)).astype(np.float32)}
    ig = edgeq.quantize(g, CalibrationData(g, arrays=feeds), int16=["a", "b"], equalize=False,
                        rounding="tflite").graph
    rq = [m for m in ig.nodes if m.op == "Requantize"]
    assert [(m.inputs[0].dtype.value, m.outputs[0].dtype.value) for m in rq] == \
        [("int16", "int16")]
    assert any("int16" in str(r) and "input" in str(r) for r in get_backend("c").supports(ig))
    for t in ("tflite", "tflm"):
        be = get_backend(t)
        with tempfile.TemporaryDirectory() as d:
            art = be.lower(ig, d)
            for i in range(4):
                f = {k: v[i:i + 1] for k, v in feeds.items()}
                np.testing.assert_array_equal(be.run(art, f, raw=True)["y"],
                                              run_integer(ig, f, raw=True)["y"], err_msg=t)


def test_an_int16_value_read_by_a_convolution_is_still_refused():
    """Both convolutions: the first writes the int16 value, the second reads it."""
    R = np.random.default_rng(6)
    g, _ = edgeq.optimize(graph_of([n("Conv", ["x", "w1"], ["f"]), n("Conv", ["f", "w2"], ["y"])],
                                   {"x": (1, 3, 4, 4)}, ["y"],
                                   {"w1": R.normal(0, 0.5, (4, 3, 1, 1)).astype(np.float32),
                                    "w2": R.normal(0, 0.5, (2, 4, 1, 1)).astype(np.float32)}))
    x = R.normal(0, 1, (8, 3, 4, 4)).astype(np.float32)
    ig = edgeq.quantize(g, x, int16=["f"], equalize=False, rounding="tflite").graph
    for t, why in (("tflite", "int16 activations are not lowered to TFLite"),
                   ("c", "the C kernels are int8 (int16 activations are not lowered to C")):
        reasons = [str(r) for r in get_backend(t).supports(ig)]
        for conv in ("conv_f", "conv_y"):
            assert any(r.startswith(f"QConv '{conv}'") and why in r for r in reasons), \
                (t, reasons)
