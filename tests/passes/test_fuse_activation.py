import numpy as np
from onnx import helper

from edgeq.passes.fuse_activation import fuse_activation
from tests.passes.util import apply, assert_same_outputs, graph_of, random_feeds

R = np.random.default_rng(4)
W = {"w": R.normal(0, 0.5, (4, 3, 3, 3)).astype(np.float32)}


def test_before_after_relu_and_relu6_fuse_into_conv():
    for act in (helper.make_node("Relu", ["c"], ["y"], name="act"),
                helper.make_node("Clip", ["c"], ["y"], name="act", min=0.0, max=6.0)):
        before = graph_of([helper.make_node("Conv", ["x", "w"], ["c"], name="conv"), act],
                          {"x": (1, 3, 5, 5)}, ["y"], W, opset=9)
        after, changed, _ = apply(before, "fuse_activation", fuse_activation)
        assert changed and after.ops() == ["Conv"]
        conv = after.nodes[0]
        assert conv.attrs["activation"] == ("Relu" if act.op_type == "Relu" else "Clip")
        assert after.outputs[0].name == "y"  # the public output name is kept
        assert_same_outputs(before, after, random_feeds(before, scale=3), rtol=0, atol=0)


def test_refuses_when_producer_output_has_other_readers():
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
             helper.make_node("Relu", ["c"], ["y"], name="relu"),
             helper.make_node("Add", ["c", "y"], ["z"], name="residual")]
    before = graph_of(nodes, {"x": (1, 3, 5, 5)}, ["z"], W)
    after, changed, notes = apply(before, "fuse_activation", fuse_activation)
    assert not changed and after.ops() == ["Conv", "Relu", "Add"]
    assert any("relu" in n and "also feeds other nodes" in n for n in notes), notes


def test_refuses_unfusable_producer():
    nodes = [helper.make_node("MaxPool", ["x"], ["p"], name="pool", kernel_shape=[2, 2]),
             helper.make_node("Relu", ["p"], ["y"], name="relu")]
    before = graph_of(nodes, {"x": (1, 3, 4, 4)}, ["y"])
    after, changed, notes = apply(before, "fuse_activation", fuse_activation)
    assert not changed
    assert any("MaxPool 'pool'" in n and "cannot carry" in n for n in notes), notes
