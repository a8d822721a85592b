"""Opsets newer than the ones the converters were written against (21) import node by node:
what the installed onnx package writes by default is accepted; a node that uses a newer
version's new behaviour is refused, naming the node, the op version and what changed."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import edgeq
from edgeq.ir.graph import EdgeqError


def _model(nodes, opset, inits=()):
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                     [1, 3, 8, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                          list(inits))
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


def test_model_written_with_the_installed_onnx_default_opset_imports_and_runs():
    newest = onnx.defs.onnx_opset_version()
    assert newest > 21  # the case this test is about
    w = numpy_helper.from_array(np.random.default_rng(0).normal(size=(4, 3, 3, 3)).astype(
        np.float32), "w")
    m = helper.make_model(helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], name="conv"),
         helper.make_node("Relu", ["c"], ["r"], name="relu"),
         helper.make_node("MaxPool", ["r"], ["y"], kernel_shape=[2, 2], strides=[2, 2],
                          name="pool")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [w]))
    assert m.opset_import[0].version == newest  # helper's default
    g = edgeq.from_onnx(m)
    y = edgeq.run(g, np.ones((1, 3, 8, 8), np.float32))[0]
    assert y.shape == (1, 4, 4, 4)


def test_a_newer_version_attribute_in_use_is_refused_naming_the_node():
    newest = onnx.defs.onnx_opset_version()
    if onnx.defs.get_schema("Cast", newest).attributes.get("round_mode") is None:
        pytest.skip(f"Cast in opset {newest} has no round_mode attribute")
    m = _model([helper.make_node("Cast", ["x"], ["y"], to=TensorProto.FLOAT,
                                 round_mode="up", name="cast8")], newest)
    with pytest.raises(EdgeqError, match=r"Cast 'cast8': sets attribute 'round_mode', added in "
                                         r"Cast-\d+ \(opset \d+\); edgeq implements Cast-21"):
        edgeq.from_onnx(m)
    # the same op without the new attribute is the version edgeq implements
    ok = _model([helper.make_node("Cast", ["x"], ["y"], to=TensorProto.FLOAT)], newest)
    assert edgeq.from_onnx(ok).outputs


def test_opset_beyond_the_installed_onnx_is_refused():
    m = _model([helper.make_node("Relu", ["x"], ["y"])], onnx.defs.onnx_opset_version() + 1)
    with pytest.raises(EdgeqError, match=r"supports opsets 9-\d+ \(the installed onnx"):
        edgeq.from_onnx(m)
