"""LSTM and GRU with a static sequence length are unrolled at import into float ops edgeq
quantizes; ``If`` with a constant condition imports its taken branch. Float import is checked
against ONNX Runtime on the exporter's own file; the unrolled integer graph is checked on every
target against the integer interpreter."""

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import edgeq
from edgeq.frontend.onnx import from_onnx
from edgeq.ir.graph import EdgeqError
from tests.helpers import ort_run

torch = pytest.importorskip("torch", reason="the torch exporter builds these models")
R = np.random.default_rng(11)


def _torch_rnn(kind: str, tmp_path, **kw):
    torch.manual_seed(0)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = getattr(torch.nn, kind)(6, 8, **kw)
            self.fc = torch.nn.Linear(16 if kw.get("bidirectional") else 8, 3)

        def forward(self, x):
            y, _ = self.rnn(x)
            return self.fc(y)

    shape = (2, 4, 6) if kw.get("batch_first") else (4, 2, 6)
    path = tmp_path / f"{kind}.onnx"
    with torch.no_grad():
        torch.onnx.export(Net().eval(), (torch.zeros(shape),), str(path), dynamo=False,
                          opset_version=17, input_names=["x"], output_names=["y"])
    return str(path), shape


@pytest.mark.parametrize("kind,kw", [("LSTM", {}), ("GRU", {}),
                                     ("LSTM", {"bidirectional": True, "batch_first": True}),
                                     ("GRU", {"num_layers": 2, "batch_first": True})])
def test_torch_exported_recurrent_nets_import_exactly(kind, kw, tmp_path):
    import onnx

    path, shape = _torch_rnn(kind, tmp_path, **kw)
    assert kind in {n.op_type for n in onnx.load(path).graph.node}
    g = edgeq.load(path)
    assert kind not in {n.op for n in g.nodes}  # unrolled
    x = R.normal(size=shape).astype(np.float32)
    ref = ort_run(onnx.load(path), {"x": x})[0]
    got = edgeq.run(g, x[None])[0][0]
    np.testing.assert_allclose(got, ref, atol=2e-6)


def _lstm_model(attrs=None, with_states=True, lens=None, p=None, direction="reverse"):
    """A hand-written LSTM (tf2onnx style: every optional input given) with non-zero initial
    states; Y, Y_h and Y_c are all graph outputs."""
    seq, b, i, h = 3, 2, 5, 4
    nd = 2 if direction == "bidirectional" else 1
    inits = [numpy_helper.from_array(R.normal(0, 0.4, (nd, 4 * h, i)).astype(np.float32), "W"),
             numpy_helper.from_array(R.normal(0, 0.4, (nd, 4 * h, h)).astype(np.float32), "R"),
             numpy_helper.from_array(R.normal(0, 0.2, (nd, 8 * h)).astype(np.float32), "B"),
             numpy_helper.from_array(np.full(b, seq if lens is None else lens, np.int32),
                                     "lens"),
             numpy_helper.from_array(R.normal(0, 0.5, (nd, b, h)).astype(np.float32), "h0"),
             numpy_helper.from_array(R.normal(0, 0.5, (nd, b, h)).astype(np.float32), "c0"),
             numpy_helper.from_array(np.zeros((nd, 3 * h), np.float32) if p is None else p, "P")]
    ins = ["x", "W", "R", "B", "lens", "h0" if with_states else "", "c0" if with_states else "",
           "P"]
    node = helper.make_node("LSTM", ins, ["Y", "Y_h", "Y_c"], hidden_size=h,
                            direction=direction, name="lstm", **(attrs or {}))
    g = helper.make_graph([node], "lstm",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [seq, b, i])],
                          [helper.make_tensor_value_info(n, TensorProto.FLOAT, None)
                           for n in ("Y", "Y_h", "Y_c")], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 14)])


@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
@pytest.mark.parametrize("with_states", [True, False])
def test_hand_written_lstm_with_every_input_matches_onnx_runtime(direction, with_states):
    m = _lstm_model(with_states=with_states, direction=direction)
    x = R.normal(size=(3, 2, 5)).astype(np.float32)
    refs = ort_run(m, {"x": x})
    g = from_onnx(m)
    got = edgeq.run(g, x[None])
    for a, b in zip(got, refs):
        np.testing.assert_allclose(a[0], b, atol=2e-6)


@pytest.mark.parametrize("kw,message", [
    ({"attrs": {"clip": 3.0}}, "cell clipping"),
    ({"attrs": {"input_forget": 1}}, "input_forget"),
    ({"lens": 2}, "sequence_lens [2, 2] differ from the sequence length 3"),
    ({"p": np.ones((1, 12), np.float32)}, "peephole"),
    ({"attrs": {"activations": ["Sigmoid", "Softsign", "Tanh"]}}, "activation 'Softsign'"),
])
def test_what_is_not_unrolled_is_refused_naming_the_node(kw, message):
    with pytest.raises(EdgeqError, match="LSTM 'lstm'") as e:
        from_onnx(_lstm_model(**kw))
    assert message in str(e.value)


def _if_model(cond_const: bool | None):
    then_b = helper.make_graph([helper.make_node("Relu", ["x"], ["t"])], "then", [],
                               [helper.make_tensor_value_info("t", TensorProto.FLOAT, None)])
    else_b = helper.make_graph([helper.make_node("Mul", ["x", "k"], ["e"])], "else", [],
                               [helper.make_tensor_value_info("e", TensorProto.FLOAT, None)],
                               [numpy_helper.from_array(np.float32(-2.0), "k")])
    nodes = [helper.make_node("If", ["c"], ["y"], then_branch=then_b, else_branch=else_b,
                              name="shape_check")]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])]
    inits = []
    if cond_const is None:
        inputs.append(helper.make_tensor_value_info("c", TensorProto.BOOL, []))
    else:
        inits.append(numpy_helper.from_array(np.array(cond_const), "c"))
    g = helper.make_graph(nodes, "if", inputs,
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("cond", [True, False])
def test_if_with_a_constant_condition_imports_the_taken_branch(cond):
    g = from_onnx(_if_model(cond))
    assert "If" not in {n.op for n in g.nodes}
    x = R.normal(size=(2, 3)).astype(np.float32)
    np.testing.assert_allclose(edgeq.run(g, x[None])[0][0], ort_run(_if_model(cond), {"x": x})[0])


def test_if_with_a_run_time_condition_is_refused_naming_the_node():
    with pytest.raises(EdgeqError, match="If 'shape_check': the condition must be constant"):
        from_onnx(_if_model(None))


@pytest.mark.e2e
def test_unrolled_gru_exports_to_every_target_exactly(tmp_path):
    pytest.importorskip("ai_edge_litert", reason="the TFLite targets need ai-edge-litert")
    pytest.importorskip("tvm", reason="the TVM target needs apache-tvm")
    from edgeq.export import export
    from edgeq.quant.calibrate import CalibrationData

    path, shape = _torch_rnn("GRU", tmp_path, batch_first=True)  # linear_before_reset=1
    fg, _ = edgeq.optimize(edgeq.load(path))
    x = R.normal(size=(40, *shape)).astype(np.float32)
    (tmp_path / "out").mkdir()
    r = export(fg, CalibrationData(fg, arrays={"x": x}), ["ort", "tflite", "tflm", "tvm", "c"],
               str(tmp_path / "out"), {"eval_samples": 2})
    assert r["integer_interpreter"]["sqnr_db_vs_float"] > 20
    for t in ("tflite", "tflm", "tvm", "c"):
        v = r["targets"][t]["verification"]
        assert (t, v["calibration"]["max_abs_diff_lsb"], v["held_out"]["max_abs_diff_lsb"]) == \
            (t, 0, 0)
    assert r["targets"]["ort"]["verification"]["per_layer"]["max_abs_diff_lsb"] <= 1
