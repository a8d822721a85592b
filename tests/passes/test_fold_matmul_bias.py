"""fold_matmul_bias: nn.Linear on a rank-3 input as torch.onnx writes it (MatMul + Add)."""

import numpy as np
import pytest
from onnx import helper

import edgeq
from edgeq.passes.fold_matmul_bias import fold_matmul_bias
from tests.passes.util import apply, assert_same_outputs, graph_of, random_feeds

R = np.random.default_rng(7)
W = {"w": R.normal(0, 0.3, (8, 6)).astype(np.float32),
     "b": R.normal(0, 1, (6,)).astype(np.float32),
     "b3": R.normal(0, 1, (1, 1, 6)).astype(np.float32),
     "rows": R.normal(0, 1, (5, 6)).astype(np.float32)}


@pytest.mark.parametrize("bias, order", [("b", ("y", "b")), ("b", ("b", "y")),
                                         ("b3", ("y", "b3"))])
def test_before_after_bias_add_folds_into_the_matmul(bias, order):
    nodes = [helper.make_node("MatMul", ["x", "w"], ["y"], name="fc"),
             helper.make_node("Add", list(order), ["out"], name="fc_bias")]
    before = graph_of(nodes, {"x": (1, 5, 8)}, ["out"], W)
    after, changed, _ = apply(before, "fold_matmul_bias", fold_matmul_bias)
    assert changed and after.ops() == ["MatMul"]
    mm = after.nodes[0]
    assert mm.name == "fc" and mm.inputs[2].const.shape == (6,)
    assert after.outputs[0].name == "out"  # the public output name is kept
    assert_same_outputs(before, after, random_feeds(before), rtol=1e-6, atol=1e-6)


def test_the_integer_graph_adds_the_bias_in_the_accumulator():
    """One QGemm with an int32 bias, and closer to float than the int8 QAdd it replaces."""
    nodes = [helper.make_node("MatMul", ["x", "w"], ["y"], name="fc"),
             helper.make_node("Add", ["y", "b"], ["out"], name="fc_bias")]
    g = graph_of(nodes, {"x": (1, 5, 8)}, ["out"], W)
    x = R.normal(0, 1, (32, 1, 5, 8)).astype(np.float32)[:, 0]
    folded, _ = edgeq.optimize(g)
    ig = edgeq.quantize(folded, x).graph
    assert ig.ops() == ["QGemm"] and ig.nodes[0].inputs[2].dtype.value == "int32"
    kept = g.copy()  # the same graph quantized without the fold: QGemm + QAdd
    ik = edgeq.quantize(kept, x).graph
    assert ik.ops() == ["QGemm", "QAdd"]
    ref = x @ W["w"] + W["b"]
    from edgeq.quant.pipeline import run_integer
    err = [float(np.mean((np.concatenate([run_integer(q, {"x": s[None]})["out"] for s in x])
                          - ref) ** 2))
           for q in (ig, ik)]
    assert err[0] < err[1], err


@pytest.mark.parametrize("case", ["other_reader", "rows", "activation"])
def test_refusals(case):
    if case == "other_reader":  # the product is also read without the bias
        nodes = [helper.make_node("MatMul", ["x", "w"], ["y"], name="fc"),
                 helper.make_node("Add", ["y", "b"], ["out"], name="fc_bias"),
                 helper.make_node("Mul", ["y", "out"], ["z"], name="other")]
        outs, want = ["z"], "also feeds other nodes"
    elif case == "rows":  # a constant that differs per row is no bias
        nodes = [helper.make_node("MatMul", ["x", "w"], ["y"], name="fc"),
                 helper.make_node("Add", ["y", "rows"], ["out"], name="fc_bias")]
        outs, want = ["out"], None
    else:
        nodes = [helper.make_node("MatMul", ["x", "w"], ["y"], name="fc"),
                 helper.make_node("Add", ["y", "b"], ["out"], name="fc_bias")]
        outs, want = ["out"], "carries a fused Relu"
    before = graph_of(nodes, {"x": (1, 5, 8)}, outs, W)
    if case == "activation":
        before.nodes[0].attrs["activation"] = "Relu"
    after, changed, notes = apply(before, "fold_matmul_bias", fold_matmul_bias)
    assert not changed and "Add" in after.ops()
    if want:
        assert any("fc_bias" in n and want in n for n in notes), notes
