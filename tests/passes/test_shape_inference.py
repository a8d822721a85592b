import numpy as np
import pytest
from onnx import helper

from edgeq.ir.graph import DType, EdgeqError, TensorType
from edgeq.passes.shape_inference import infer_shapes
from edgeq.runtime.reference import run_graph
from tests.passes.util import graph_of, random_feeds

R = np.random.default_rng(5)


def _net():
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv", strides=[2, 2],
                              pads=[1, 1, 1, 1]),
             helper.make_node("MaxPool", ["c"], ["p"], name="pool", kernel_shape=[3, 3],
                              ceil_mode=1, strides=[2, 2]),
             helper.make_node("Transpose", ["p"], ["t"], name="tr", perm=[0, 2, 3, 1]),
             helper.make_node("Reshape", ["t", "s"], ["y"], name="rs")]
    return graph_of(nodes, {"x": (1, 3, 17, 17)}, ["y"],
                    {"w": R.normal(size=(5, 3, 3, 3)).astype(np.float32),
                     "s": np.array([1, -1], np.int64)})


def test_before_after_wrong_types_are_recomputed():
    g = _net()
    truth = {v.name: v.type for n in g.nodes for v in n.outputs}
    for n in g.nodes:  # break every type
        for v in n.outputs:
            v.type = TensorType(DType.FLOAT32, (7,))
    assert infer_shapes(g)
    assert {v.name: v.type for n in g.nodes for v in n.outputs} == truth
    assert not infer_shapes(g)  # a second run changes nothing


def test_inferred_shapes_match_interpreter_shapes():
    g = _net()
    env = run_graph(g, random_feeds(g), keep=True)
    for n in g.nodes:
        for v in n.outputs:
            assert env[v.name].shape == v.shape, v.name


def test_refuses_inconsistent_shapes_with_node_name():
    nodes = [helper.make_node("Add", ["x", "c"], ["y"], name="bad_add")]
    with pytest.raises(EdgeqError, match=r"Add 'bad_add'.*\[2, 3\].*\[4\].*do not broadcast"):
        graph_of(nodes, {"x": (2, 3)}, ["y"], {"c": np.zeros(4, np.float32)})
    nodes = [helper.make_node("Conv", ["x", "w"], ["y"], name="bad_conv", group=2)]
    with pytest.raises(EdgeqError, match=r"Conv 'bad_conv': group=2 with 3 input channels"):
        graph_of(nodes, {"x": (1, 3, 5, 5)}, ["y"], {"w": np.zeros((4, 3, 1, 1), np.float32)})
