"""Every integer op: integer-only graph, close to the float reference, and exact against an
independent computation where the spec (docs/numerics.md) makes it exact."""

from fractions import Fraction

import numpy as np
import pytest

import edgeq
from edgeq.ir.graph import EdgeqError
from edgeq.quant.pipeline import dequantize_array, quality_warnings, quantize_feeds, run_integer
from edgeq.quant.calibrate import CalibrationData
from edgeq.runtime.reference import run_graph
from tests.helpers import CASES, X, n, w
from tests.helpers import quantized_case as _quantized
from tests.passes.util import graph_of
from tests.quant.util import assert_integer_only

R = np.random.default_rng(11)

@pytest.mark.parametrize("case", sorted(CASES))
def test_integer_op_close_to_float_and_integer_only(case):
    g, res, x = _quantized(case)
    assert_integer_only(res.graph)
    out = res.graph.outputs[0].name
    sig = noise = 0.0
    for i in range(8):
        f = run_graph(g, {"x": x[i:i + 1]})[g.outputs[0].name].astype(np.float64)
        q = run_integer(res.graph, {"x": x[i:i + 1]})[out].astype(np.float64)
        sig += (f ** 2).sum()
        noise += ((f - q) ** 2).sum()
    db = 10 * np.log10(sig / max(noise, 1e-30))
    assert db >= CASES[case][3], f"{case}: {db:.1f} dB"


def test_qconv_is_exactly_the_spec():
    """Brute-force QConv with Python integers and exact rational rounding."""
    g, res, x = _quantized("conv_relu_pad")
    node = next(nd for nd in res.graph.nodes if nd.op == "QConv")
    xq = quantize_feeds(res.graph, {"x": x[:1]})["x"].astype(np.int64)[0]
    wq = node.inputs[1].const.astype(np.int64)
    bq = node.inputs[2].const.astype(np.int64)
    a = node.attrs
    got = run_graph(res.graph, {"x": quantize_feeds(res.graph, {"x": x[:1]})["x"]})[
        node.outputs[0].name][0]
    xc = np.pad(xq - a["x_zp"], ((0, 0), (1, 1), (1, 1)))
    for m in range(wq.shape[0]):
        for i in range(0, 8, 3):
            for j in range(0, 8, 3):
                acc = int((xc[:, i:i + 3, j:j + 3] * wq[m]).sum()) + int(bq[m])
                v = Fraction(acc * int(a["multiplier"][m]), 2 ** int(a["shift"][m]))
                y = int(np.floor(v + Fraction(1, 2))) + a["y_zp"]
                assert got[m, i, j] == min(max(y, a["act_min"]), a["act_max"])


def test_qadd_is_exactly_the_spec():
    g, res, x = _quantized("add_sub_residual")
    node = next(nd for nd in res.graph.nodes if nd.op == "QAdd")
    env = run_graph(res.graph, quantize_feeds(res.graph, {"x": x[:1]}), keep=True)
    a, b = (env[v.name].astype(np.int64).reshape(-1) for v in node.inputs)
    at = node.attrs
    got = env[node.outputs[0].name].reshape(-1)
    for k in range(0, a.size, 7):
        acc = (int(a[k]) - at["a_zp"]) * at["a_mult"] + (int(b[k]) - at["b_zp"]) * at["b_mult"]
        y = int(np.floor(Fraction(acc, 2 ** at["shift"]) + Fraction(1, 2))) + at["y_zp"]
        assert got[k] == min(max(y, at["act_min"]), at["act_max"])


def test_qsoftmax_within_one_lsb_of_exact_softmax_of_its_integer_input():
    g, res, x = _quantized("softmax")
    node = res.graph.nodes[0]
    for i in range(4):
        q = quantize_feeds(res.graph, {"x": x[i:i + 1]})["x"]
        got = run_graph(res.graph, {"x": q})[node.outputs[0].name].astype(np.int64)
        real = dequantize_array(q, res.graph.inputs[0].qparams).astype(np.float64)
        e = np.exp(real - real.max(-1, keepdims=True))
        want = np.clip(np.round(256 * e / e.sum(-1, keepdims=True)) - 128, -128, 127)
        assert np.abs(got - want).max() <= 1


def test_qlayernorm_within_two_lsb_of_float_layernorm_of_its_integer_input():
    g, res, x = _quantized("layernorm_affine")
    node = res.graph.nodes[0]
    fnode = g.nodes[0]
    out_qp = node.outputs[0].qparams
    for i in range(4):
        q = quantize_feeds(res.graph, {"x": x[i:i + 1]})["x"]
        got = run_graph(res.graph, {"x": q})[node.outputs[0].name].astype(np.int64)
        real = dequantize_array(q, res.graph.inputs[0].qparams).astype(np.float64)
        mu = real.mean(-1, keepdims=True)
        var = ((real - mu) ** 2).mean(-1, keepdims=True)
        y = (real - mu) / np.sqrt(var + 1e-5) * fnode.inputs[1].const + fnode.inputs[2].const
        want = np.clip(np.round(y / out_qp.scale[0]) + out_qp.zero_point[0], -128, 127)
        assert np.abs(got - want).max() <= 2


def test_refuses_with_every_reason_listed():
    nodes = [n("Resize", ["x", "", "sc"], ["r"], mode="linear",
               coordinate_transformation_mode="tf_half_pixel_for_nn"),
             n("PRelu", ["r", "sl"], ["p"]), n("Div", ["p", "x2"])]
    g = graph_of(nodes, {"x": (1, 6, 4, 4), "x2": (1, 6, 8, 8), "sl": (6, 1, 1)}, ["y"],
                 {"sc": np.array([1, 1, 2, 2], np.float32)})
    g, _ = edgeq.optimize(g)
    cal = {"x": np.zeros((2, 6, 4, 4), np.float32), "x2": np.ones((2, 6, 8, 8), np.float32),
           "sl": np.ones((2, 6, 1, 1), np.float32)}
    with pytest.raises(EdgeqError) as e:
        edgeq.quantize(g, cal)
    msg = str(e.value)
    assert "Resize 'resize_r': linear resizing with coordinate_transformation_mode" in msg
    assert "PRelu 'prelu_p': per-channel slopes must be constants" in msg
    assert "Div 'div_y': division by a tensor computed at run time" in msg


def test_int4_weights_and_int16_values():
    g, _, x = _quantized("conv_relu_pad")
    res4 = edgeq.quantize(g, x, weight_bits=4, equalize=False)
    wq = next(v for v in res4.graph.consts() if v.name.endswith("weight_q")).const
    assert wq.min() >= -7 and wq.max() <= 7
    assert res4.report["weight_bytes"]["integer"] < edgeq.quantize(
        g, x, equalize=False).report["weight_bytes"]["integer"]
    # int16 end to end on data movement: quantization noise drops by ~48 dB (256x finer)
    g, _, x = _quantized("resize_nearest")
    out = g.outputs[0].name
    res16 = edgeq.quantize(g, x, int16=["x"], equalize=False)
    assert res16.graph.values[out].dtype.value == "int16"
    assert_integer_only(res16.graph)
    r8 = edgeq.quantize(g, x, equalize=False).report["output_sqnr_db"][out]
    assert res16.report["output_sqnr_db"][out] > r8 + 40


def test_dead_channels_quantize_with_a_floored_weight_scale_and_are_reported():
    """Trained checkpoints carry dead channels: max |w| of 1e-34 and 7e-10 next to a real bias.
    max|w|/127 cannot hold that bias in int32; the scale is floored so the bias fits, and the
    channel's output is its bias, as in float."""
    wt = w(4, 6, 3, 3)
    wt[1] = 1e-34
    wt[2] *= 7e-10 / np.abs(wt[2]).max()
    b = np.array([0.1, 0.3, -0.2, 0.05], np.float32)
    g = graph_of([n("Conv", ["x", "w", "b"], pads=[1, 1, 1, 1])], X, ["y"], {"w": wt, "b": b})
    g, _ = edgeq.optimize(g)
    x = R.normal(0, 1, (16, 6, 8, 8)).astype(np.float32)
    res = edgeq.quantize(g, x, equalize=False)
    assert res.report["weight_scale_floors"] == {"conv_y": [1, 2]}
    f = run_graph(g, {"x": x[:1]})["y"]
    q = run_integer(res.graph, {"x": x[:1]})["y"]
    s_y = res.graph.outputs[0].qparams.scale[0]
    for c in (1, 2):  # the dead channels output their bias, within an LSB
        assert np.abs(q[0, c] - b[c]).max() <= s_y
    assert np.abs(q - f).max() <= 4 * s_y


def test_mixed_range_concat_is_widened_and_a_lost_output_is_warned_about():
    """A detector head: box coordinates (0..320) and sigmoid scores (0..1) joined by one Concat.
    Under one int8 scale the scores keep 1 level; edgeq keeps the Concat in int16."""
    nodes = [n("Conv", ["x", "w"], ["c"]), n("Split", ["c"], ["b", "s"], axis=1, split=[4, 2]),
             n("Mul", ["b", "k"], ["boxes"]), n("Sigmoid", ["s"], ["scores"]),
             n("Concat", ["boxes", "scores"], axis=1)]
    g = graph_of(nodes, {"x": (1, 6, 8, 8)}, ["y"], {"w": w(6, 6, 1, 1), "k": np.float32(160)})
    g, _ = edgeq.optimize(g)
    x = R.normal(0, 1, (16, 6, 8, 8)).astype(np.float32)
    res = edgeq.quantize(g, x, equalize=False)
    assert res.report["mixed_range_concats"]["y"]["int16"]
    assert res.report["mixed_range_concats"]["y"]["ratio"] > 32
    assert res.graph.outputs[0].dtype.value == "int16"
    f = np.concatenate([run_graph(g, {"x": x[i:i + 1]})["y"][:, 4:] for i in range(4)])
    q = np.concatenate([run_integer(res.graph, {"x": x[i:i + 1]})["y"][:, 4:] for i in range(4)])
    assert 10 * np.log10((f ** 2).sum() / ((f - q) ** 2).sum()) > 30  # the scores survive
    assert res.report["warnings"] == []
    # the report warns when an output is lost
    low = dict(res.report, output_sqnr_db={"y": 3.2}, mixed_range_concats={})
    assert quality_warnings(low) == ["output 'y' has an SQNR of 3.2 dB (below 10 dB): the "
                                     "integer model has lost it"]


@pytest.mark.parametrize("scope,feeds_conv,wide", [
    ("any", True, True), ("outputs", False, True), ("outputs", True, False),
    ("none", False, False)])
def test_mixed_range_concat_scope_follows_what_the_targets_take(scope, feeds_conv, wide):
    """TFLite and C take int16 only in data movement to the outputs: export asks for scope
    "outputs", and a mixed-range Concat feeding a convolution then stays int8, with a warning
    that says why."""
    nodes = [n("Conv", ["x", "w"], ["c"]), n("Split", ["c"], ["b", "s"], axis=1, split=[4, 2]),
             n("Mul", ["b", "k"], ["boxes"]), n("Sigmoid", ["s"], ["scores"]),
             n("Concat", ["boxes", "scores"], ["cat"], axis=1)]
    tail = [n("Conv", ["cat", "w2"], ["y"])] if feeds_conv else \
        [n("Transpose", ["cat"], ["y"], perm=[0, 2, 3, 1])]
    g = graph_of(nodes + tail, {"x": (1, 6, 8, 8)}, ["y"],
                 {"w": w(6, 6, 1, 1), "k": np.float32(160), "w2": w(3, 6, 1, 1)})
    g, _ = edgeq.optimize(g)
    x = R.normal(0, 1, (16, 6, 8, 8)).astype(np.float32)
    res = edgeq.quantize(g, x, equalize=False, mixed_range_int16=scope)
    m = res.report["mixed_range_concats"]["cat"]
    assert m["int16"] == wide
    assert (res.graph.values["cat"].dtype.value == "int16") == wide
    if not wide:
        assert m["why"] in res.report["warnings"][-1]


def test_export_keeps_mixed_range_concats_where_every_target_takes_them(monkeypatch):
    from edgeq.backends import get_backend
    from edgeq.export import export

    seen = {}

    def spy(fg, calib, **opts):
        seen.update(opts)
        raise EdgeqError("stop after the options")

    monkeypatch.setattr("edgeq.export.quantize_model", spy)
    g, _ = edgeq.optimize(graph_of([n("Relu", ["x"])], {"x": (1, 6, 8, 8)}, ["y"], {}))
    calib = CalibrationData(g, arrays={"x": R.normal(size=(4, 6, 8, 8)).astype(np.float32)})
    for targets in (["ort", "tvm"], ["ort", "tflite"]):
        with pytest.raises(EdgeqError, match="stop after the options"):
            export(g, calib, targets, "/nonexistent-never-written", {"eval_samples": 1})
        want = min((get_backend(t).int16_activations for t in targets),
                   key=("none", "outputs", "any").index)
        assert seen["mixed_range_int16"] == want


def test_a_rescale_no_integer_form_holds_is_one_error_naming_the_node():
    """Near-constant logits under TFLite's softmax: its input multiplier needs a left shift
    (Python's ``negative shift count`` before); now one EdgeqError naming the node."""
    g, _ = edgeq.optimize(graph_of([n("Mul", ["x", "k"], ["t"]), n("Softmax", ["t"], axis=-1)],
                                   {"x": (1, 6, 8, 8)}, ["y"], {"k": np.float32(1e-9)}))
    x = R.normal(0, 1, (8, 6, 8, 8)).astype(np.float32)
    with pytest.raises(EdgeqError, match=r"cannot quantize Softmax '.*': softmax input scale"):
        edgeq.quantize(g, x, equalize=False, rounding="tflite")
