"""Idioms real exporters write, on small hand-built models in their exact form (paddle2onnx,
tf2onnx, torch.onnx, YOLO heads): each imports, or is refused with the right message."""

import re

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import edgeq
from edgeq.frontend.onnx import from_onnx
from edgeq.ir.graph import EdgeqError

R = np.random.default_rng(3)


def _init(name, a):
    return numpy_helper.from_array(np.asarray(a), name)


def _paddle_style(dims, tail=()):
    """Input dims as paddle2onnx writes them: -1 for every dynamic one."""
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             helper.make_node("Conv", ["r1", "w2"], ["y"], strides=[2, 2], kernel_shape=[3, 3],
                              name="conv2"), *tail]
    out = tail[-1].output[0] if tail else "y"
    g = helper.make_graph(nodes, "paddle", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, dims)], [helper.make_tensor_value_info(out, TensorProto.FLOAT,
                                                                       None)],
        [_init("w1", R.normal(size=(8, 3, 3, 3)).astype(np.float32)),
         _init("w2", R.normal(size=(8, 8, 3, 3)).astype(np.float32)),
         _init("shape", np.array([1, -1], np.int64))])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 12)])


@pytest.mark.parametrize("dims", [[-1, 3, -1, -1], [0, 3, 0, 0], ["N", 3, "H", "W"],
                                  [-1, 3, "h", 0]])
def test_dynamic_dims_written_as_minus_one_zero_or_names_take_any_positive_size(dims):
    m = _paddle_style(dims)
    g = from_onnx(m, {"x": (1, 3, 224, 224)})
    assert g.inputs[0].shape == (1, 3, 224, 224)
    assert g.outputs[0].shape == (1, 8, 111, 111)
    g2 = from_onnx(m, {"#0": (2, 3, 64, 48)})  # a shape given without a name: the first input
    assert g2.outputs[0].shape == (2, 8, 31, 23)


def test_the_suggested_shape_imports():
    m = _paddle_style([-1, 3, -1, -1])
    with pytest.raises(EdgeqError) as e:
        from_onnx(m)
    msg = str(e.value)
    assert "dynamic shape [-1" not in msg and "[?, 3, ?, ?]" in msg, msg
    shape = re.search(r"--input-shape x=([\d,]+)", msg).group(1)
    g = from_onnx(m, {"x": tuple(int(d) for d in shape.split(","))})
    assert all(d > 1 for d in g.outputs[0].shape[2:])


def test_no_suggestion_when_no_guess_imports():
    tail = (helper.make_node("Reshape", ["y", "fixed"], ["flat"], name="flatten_fixed"),)
    m = _paddle_style([-1, 3, -1, -1], tail)
    m.graph.initializer.append(_init("fixed", np.array([1, 8 * 3 * 3], np.int64)))
    with pytest.raises(EdgeqError, match=r"dynamic shape \[\?, 3, \?, \?\]; give a static one "
                                         r"with --input-shape$"):
        from_onnx(m)


def test_known_dims_must_match_and_sizes_must_be_positive():
    m = _paddle_style([-1, 3, -1, -1])
    with pytest.raises(EdgeqError, match=r"does not match the model's \[\?, 3, \?, \?\]"):
        from_onnx(m, {"x": (1, 4, 32, 32)})
    with pytest.raises(EdgeqError, match="not positive"):
        from_onnx(m, {"x": (-1, 3, 32, 32)})
    assert edgeq.run(from_onnx(m, {"x": (1, 3, 9, 9)}),
                     np.ones((1, 3, 9, 9), np.float32))[0].shape == (1, 8, 4, 4)


def _shape_arithmetic_model(opset=13):
    """A YOLO-style head's reshape target: Shape -> Gather(scalar) -> arithmetic on scalars ->
    Unsqueeze -> Concat, plus Squeeze back to a scalar and a Range over scalars."""
    i64 = lambda name, a: _init(name, np.array(a, np.int64))  # noqa: E731
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Gather", ["s", "i0"], ["n"], axis=0),          # rank 0
        helper.make_node("Gather", ["s", "i1"], ["c"], axis=0),
        helper.make_node("Mul", ["c", "two"], ["c2"]),                   # scalar arithmetic
        helper.make_node("Div", ["c2", "two"], ["c3"]),
        helper.make_node("Unsqueeze", ["n", "ax0"], ["n1"]),
        helper.make_node("Unsqueeze", ["c3", "ax0"], ["c1"]),
        helper.make_node("Squeeze", ["c1", "ax0"], ["c0"]),              # back to rank 0
        helper.make_node("Range", ["zero", "c0", "one"], ["r"]),         # scalars in, [c]
        helper.make_node("Shape", ["r"], ["rs"]),
        helper.make_node("Concat", ["n1", "rs", "m1"], ["shape"], axis=0),
        helper.make_node("Reshape", ["x", "shape"], ["y"], name="reshape_head"),
    ]
    g = helper.make_graph(nodes, "yolo_head", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [1, 6, 4, 4])], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, None)],
        [i64("i0", 0), i64("i1", 1), i64("ax0", [0]), i64("two", 2), i64("m1", [-1]),
         i64("zero", 0), i64("one", 1)])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


def test_rank0_values_stay_scalars_through_shape_arithmetic():
    g = from_onnx(_shape_arithmetic_model())
    assert g.ops() == ["Reshape"] and g.outputs[0].shape == (1, 6, 16)
    x = R.normal(size=(1, 6, 4, 4)).astype(np.float32)
    np.testing.assert_array_equal(edgeq.run(g, x)[0], x.reshape(1, 6, 16))


def test_a_malformed_node_gives_one_error_line_naming_it():
    m = _shape_arithmetic_model()  # Gather index 7 into a 4-element shape
    m.graph.initializer.append(_init("seven", np.array(7, np.int64)))
    m.graph.node[1].input[1] = "seven"
    with pytest.raises(EdgeqError, match=r"Gather '.*': "):
        from_onnx(m)


def test_gather_on_a_negative_axis_has_onnx_shape_and_values():
    """torch exports ``x[..., [0, 2]]`` as Gather(axis=-1)."""
    from tests.helpers import ort_run

    x = R.normal(size=(1, 3, 8, 8)).astype(np.float32)
    node = helper.make_node("Gather", ["x", "idx"], ["y"], axis=-1, name="pick")
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                      [1, 3, 8, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                          [_init("idx", np.array([0, 2], np.int64))])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    eg = from_onnx(m)
    assert list(eg.outputs[0].shape) == [1, 3, 8, 2]
    np.testing.assert_array_equal(edgeq.run(eg, x[None])[0][0], ort_run(m, {"x": x})[0])
