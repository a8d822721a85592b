"""Hostile and broken ONNX input: each case is refused with one ``EdgeqError`` naming the node
or field and the problem, before anything large is allocated; on the command line it is one
``edgeq: error:`` line and exit code 2. One case per crash class the ONNX fuzzer
(``tests/fuzz/fuzz_onnx.py``) found, per structural rule, and per size limit."""

from __future__ import annotations

import time
import tracemalloc

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgeq import api
from edgeq.cli import main as cli_main
from edgeq.frontend.onnx import from_onnx
from edgeq.ir.graph import EdgeqError
from edgeq.runtime.reference import run_graph
from tests.helpers import onnx_model

X = {"x": (1, 2, 5, 5)}


def n(op, ins, outs=("y",), name=None, **attrs):
    return helper.make_node(op, list(ins), list(outs), name=name or f"{op.lower()}_{outs[0]}",
                            **attrs)


def w(*shape):
    return np.random.default_rng(0).normal(0, 0.3, shape).astype(np.float32)


def i64(*v):
    return np.array(v, np.int64)


def refuse(model, *needles):
    """Import + optimize + inspect refuses ``model`` with a message holding every needle."""
    with pytest.raises(EdgeqError) as e:
        g = from_onnx(model)
        api.inspect(api.optimize(g, verify=True)[0])
    msg = str(e.value)
    assert "\n" not in msg
    for s in needles:
        assert s in msg, msg
    return msg


def quick_and_small(model, *needles, max_mb=64, max_s=5.0):
    """Refused within ``max_s`` seconds while numpy allocates less than ``max_mb`` MiB."""
    tracemalloc.start()
    t = time.perf_counter()
    try:
        refuse(model, *needles)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - t < max_s
    assert peak < max_mb << 20, f"{peak / 2 ** 20:.0f} MiB allocated"


def model(nodes, inputs=X, out=None, inits=None, opset=17):
    return onnx_model(nodes, inputs, [out or nodes[-1].output[0]], inits, opset)


# --- the node's signature against its ONNX schema ---------------------------------------------

def test_too_few_inputs():
    refuse(model([n("Gemm", ["x"], name="fc")], {"x": (2, 3)}), "Gemm 'fc'", "1 inputs",
           "2 to 3")


def test_too_many_inputs():
    refuse(model([n("Gelu", ["x", "x", "x"], name="g")], opset=20), "Gelu 'g'", "3 inputs")


def test_required_input_empty():
    refuse(model([n("Add", ["x", ""], name="a")]), "Add 'a'", "input 1", "required")


def test_attribute_of_the_wrong_type():
    refuse(model([n("MaxPool", ["x"], name="p", kernel_shape=[2.5, 2.0])]), "MaxPool 'p'",
           "'kernel_shape'", "FLOATS", "INTS")


def test_unknown_attribute():
    refuse(model([n("Relu", ["x"], name="r", alpha=0.1)]), "Relu 'r'", "unknown attribute "
           "'alpha'")


def test_missing_required_attribute():
    refuse(model([n("Cast", ["x"], name="c")]), "Cast 'c'", "required attribute 'to'")


def test_input_type_outside_the_constraint():
    refuse(model([n("Cast", ["x"], ["b"], to=TensorProto.BOOL), n("Neg", ["b"], name="neg")]),
           "Neg 'neg'", "bool")


def test_cast_to_an_unsupported_type():
    refuse(model([n("Cast", ["x"], name="c", to=TensorProto.STRING)]), "Cast 'c'", "STRING")


def test_attribute_that_is_nan():
    refuse(model([n("LeakyRelu", ["x"], name="lr", alpha=float("nan"))]), "LeakyRelu 'lr'",
           "'alpha'", "nan")


def test_names_that_are_not_utf8():
    import onnx

    data = model([n("Relu", ["x"], name="QQ")]).SerializeToString()
    m = onnx.ModelProto()
    m.ParseFromString(data.replace(b"QQ", b"\xff\xfe"))  # kept as bytes by protobuf
    refuse(m, "not valid UTF-8")


def test_graph_input_of_an_unknown_element_type():
    m = model([n("Relu", ["x"], name="r")])
    m.graph.input[0].type.tensor_type.elem_type = 0
    refuse(m, "input 'x'", "element type UNDEFINED")


# --- shapes and attributes: each op's shape rule or converter -----------------------------------

@pytest.mark.parametrize("attr, needle", [
    ({"strides": [0, 1]}, "strides"), ({"dilations": [1, 0]}, "dilations"),
    ({"kernel_shape": [0, 3]}, "kernel_shape"), ({"pads": [-1, 0, 0, 0]}, "pads"),
    ({"pads": [0, 0, 0]}, "pads"), ({"group": 0}, "group")])
def test_conv_window_attributes(attr, needle):
    refuse(model([n("Conv", ["x", "wt"], name="conv", **attr)], inits={"wt": w(2, 2, 3, 3)}),
           "Conv 'conv'", needle)


def test_conv_kernel_shape_differs_from_the_weight():
    refuse(model([n("Conv", ["x", "wt"], name="conv", kernel_shape=[2, 2])],
                 inits={"wt": w(2, 2, 3, 3)}), "Conv 'conv'", "kernel_shape [2, 2]")


def test_conv_bias_of_the_wrong_size():
    refuse(model([n("Conv", ["x", "wt", "b"], name="conv")],
                 inits={"wt": w(2, 2, 3, 3), "b": w(3)}), "Conv 'conv'", "bias shape [3]")


def test_conv_huge_pads_are_refused_before_padding():
    quick_and_small(model([n("Conv", ["x", "wt"], name="conv", pads=[10 ** 6] * 4)],
                          inits={"wt": w(2, 2, 3, 3)}), "Conv 'conv'", "EDGEQ_MAX_ACTIVATION")


def test_conv_transpose_output_padding_not_below_the_stride():
    refuse(model([n("ConvTranspose", ["x", "wt"], name="up", strides=[2, 2],
                    output_padding=[2, 0])], inits={"wt": w(2, 2, 3, 3)}),
           "ConvTranspose 'up'", "output_padding")


def test_pool_pads_not_below_the_kernel():
    refuse(model([n("MaxPool", ["x"], name="p", kernel_shape=[2, 2], pads=[2, 0, 0, 0])]),
           "MaxPool 'p'", "smaller than the kernel")


def test_pool_kernel_larger_than_the_input():
    refuse(model([n("AveragePool", ["x"], name="p", kernel_shape=[7, 7])]), "AveragePool 'p'",
           "larger than the padded input")


def test_reshape_to_negative_dimensions():
    refuse(model([n("Reshape", ["x", "s"], name="r")], inits={"s": i64(-2, -96)}),
           "Reshape 'r'", "[-2, -96]", "negative")


def test_reshape_copies_a_dimension_that_does_not_exist():
    refuse(model([n("Reshape", ["x", "s"], name="r")], inits={"s": i64(1, 0, 0, 0, 0)}),
           "Reshape 'r'", "copies (0)")


@pytest.mark.parametrize("node", [
    n("Softmax", ["x"], name="bad", axis=4), n("Concat", ["x", "x"], name="bad", axis=-5),
    n("Gather", ["x", "i"], name="bad", axis=7), n("Flatten", ["x"], name="bad", axis=9),
    n("LayerNormalization", ["x", "g"], name="bad", axis=4)])
def test_axis_out_of_range(node):
    refuse(model([node], inits={"i": i64(0), "g": w(5)}), "'bad'", "out of range")


def test_reduce_axes_repeated():
    refuse(model([n("ReduceMean", ["x"], name="m", axes=[1, -3])], opset=13),
           "ReduceMean 'm'", "repeat")


def test_gather_constant_indices_out_of_range():
    refuse(model([n("Gather", ["x", "i"], name="g", axis=1)], inits={"i": i64(0, 2)}),
           "Gather 'g'", "out of range", "size 2")


def test_gather_computed_indices_stay_in_range():
    """Indices computed at run time (here from data) are clamped, never an IndexError."""
    g = from_onnx(model([n("Cast", ["ix"], ["c"], to=TensorProto.INT64),
                         n("Gather", ["emb", "c"], name="g")], {"ix": (3,)},
                        inits={"emb": w(4, 2)}))
    out = run_graph(g, {"ix": np.array([-1, 9, 1], np.float32)})["y"]
    assert out.shape == (3, 2)


def test_transpose_perm_not_a_permutation():
    refuse(model([n("Transpose", ["x"], name="t", perm=[0, 0, 1, 2])]), "Transpose 't'",
           "permutation")


def test_split_sizes_and_outputs_disagree():
    refuse(model([n("Split", ["x"], ["a", "b"], name="s", axis=1, split=[1, 1, 0])],
                 out="a", opset=11), "Split 's'", "3 split sizes for 2 outputs")


def test_slice_step_zero_and_repeated_axes():
    refuse(model([n("Slice", ["x", "st", "en", "ax", "sp"], name="s")],
                 inits={"st": i64(0), "en": i64(2), "ax": i64(1), "sp": i64(0)}),
           "Slice 's'", "step 0")
    refuse(model([n("Slice", ["x", "st", "en", "ax"], name="s")],
                 inits={"st": i64(0, 0), "en": i64(2, 2), "ax": i64(1, -3)}),
           "Slice 's'", "repeat")


def test_batchnorm_statistics_of_the_wrong_size():
    refuse(model([n("BatchNormalization", ["x", "s", "b", "m", "v"], name="bn")],
                 inits={"s": w(2), "b": w(2), "m": w(3), "v": w(2)}),
           "BatchNormalization 'bn'", "mean has shape [3]")


def test_layernorm_scale_does_not_broadcast():
    refuse(model([n("LayerNormalization", ["x", "g"], name="ln")], inits={"g": w(5, 1)}),
           "LayerNormalization 'ln'", "scale shape [5, 1]")


def test_lrn_size_zero():
    refuse(model([n("LRN", ["x"], name="lrn", size=0)]), "LRN 'lrn'", "size 0")


def test_lrn_window_far_wider_than_the_channels_costs_nothing():
    g = from_onnx(model([n("LRN", ["x"], name="lrn", size=2 ** 31 - 1)]))
    x = np.random.default_rng(1).normal(size=(1, 2, 5, 5)).astype(np.float32)
    y = run_graph(g, {"x": x})["y"]
    sq = (x.astype(np.float64) ** 2).sum(axis=1, keepdims=True)  # every channel in the window
    np.testing.assert_allclose(y, x / (1 + 1e-4 / (2 ** 31 - 1) * sq) ** 0.75, rtol=1e-5)


def test_prelu_slope_does_not_broadcast():
    refuse(model([n("PRelu", ["x", "s"], name="pr")], inits={"s": w(3, 1, 1)}),
           "PRelu 'pr'", "slope shape [3, 1, 1]")


def test_gemm_bias_does_not_broadcast():
    refuse(model([n("Gemm", ["a", "b", "c"], name="fc")], {"a": (2, 3)},
                 inits={"b": w(3, 4), "c": w(3)}), "Gemm 'fc'", "C of shape [3]")


def test_gemm_input_not_2d():
    refuse(model([n("Gemm", ["a", "b"], name="fc")], {"a": (2, 3, 1)}, inits={"b": w(3, 4)}),
           "Gemm 'fc'", "2-D")


@pytest.mark.parametrize("scales, needle", [
    ([1, 1, float("nan"), 2], "finite and positive"), ([1, 1, 0, 2], "finite and positive"),
    ([1, 1, 2], "3 scales for a rank-4 input")])
def test_resize_bad_scales(scales, needle):
    refuse(model([n("Resize", ["x", "", "sc"], name="up")],
                 inits={"sc": np.array(scales, np.float32)}), "Resize 'up'", needle)


def test_resize_unknown_coordinate_mode():
    refuse(model([n("Resize", ["x", "", "sc"], name="up",
                    coordinate_transformation_mode="constant")],
                 inits={"sc": np.array([1, 1, 2, 2], np.float32)}), "Resize 'up'", "'constant'")


def test_pad_reflect_wider_than_the_axis():
    refuse(model([n("Pad", ["x", "p"], name="pad", mode="reflect")],
                 inits={"p": i64(0, 0, 5, 0, 0, 0, 0, 0)}), "Pad 'pad'", "reflect")


def test_pad_count_wrong_and_crop_too_deep():
    refuse(model([n("Pad", ["x", "p"], name="pad")], inits={"p": i64(1, 1)}), "Pad 'pad'",
           "2 pads for a rank-4 input")
    refuse(model([n("Pad", ["x", "p"], name="pad")], inits={"p": i64(0, 0, -4, 0, 0, 0, -4, 0)}),
           "Pad 'pad'", "crop")


def test_clip_bounds_not_scalar():
    refuse(model([n("Clip", ["x", "lo"], name="clip")], inits={"lo": w(2)}), "Clip 'clip'",
           "min has 2 values")


def test_range_delta_zero():
    refuse(model([n("Range", ["a", "b", "d"], ["r"], name="rng"), n("Cast", ["r"], to=1)],
                 inits={"a": np.int64(0), "b": np.int64(5), "d": np.int64(0)}),
           "Range 'rng'", "delta is 0")


def test_range_of_one_element_vectors_imports():
    g = from_onnx(model([n("Range", ["a", "b", "d"], ["r"], name="rng"),
                         n("Cast", ["r"], ["rf"], to=1), n("Add", ["x", "rf"])],
                        inits={"a": i64(0), "b": i64(5), "d": i64(1)}))
    assert g.outputs[0].shape == (1, 2, 5, 5)


def test_recurrent_weights_not_3d_and_huge_sequences():
    refuse(model([n("LSTM", ["s", "W", "R"], ["Y"], name="lstm", hidden_size=3)],
                 {"s": (2, 1, 4)}, inits={"W": w(12, 4), "R": w(1, 12, 3)}, opset=14),
           "LSTM 'lstm'", "3-D")
    quick_and_small(model([n("GRU", ["s", "W", "R"], ["Y"], name="gru", hidden_size=3)],
                          {"s": (10 ** 6, 1, 4)}, inits={"W": w(1, 9, 4), "R": w(1, 9, 3)},
                          opset=14), "GRU 'gru'", "sequence length 1000000", max_mb=128)


# --- structure: single assignment, order, outputs ------------------------------------------------

def test_two_nodes_write_one_name():
    refuse(model([n("Relu", ["x"], ["y"], name="a"), n("Neg", ["x"], ["y"], name="b")]),
           "Neg 'b'", "output 'y'", "node 'a'")


def test_node_overwrites_a_graph_input():
    refuse(model([n("Relu", ["x"], ["x"], name="r")], out="x"), "Relu 'r'", "output 'x'",
           "a graph input")


def test_node_overwrites_an_initializer():
    refuse(model([n("Relu", ["x"], ["c"], name="r"), n("Add", ["x", "c"])], inits={"c": w(5)}),
           "Relu 'r'", "output 'c'", "an initializer")


def test_nodes_out_of_topological_order():
    refuse(model([n("Neg", ["h"], ["y"], name="second"), n("Relu", ["x"], ["h"], name="first")],
                 out="y"), "Neg 'second'", "'first'", "topological order")


def test_cycle():
    refuse(model([n("Add", ["x", "b"], ["a"], name="p"), n("Relu", ["a"], ["b"], name="q")],
                 out="b"), "Add 'p'", "'q'", "cycle")


def test_dangling_input():
    refuse(model([n("Add", ["x", "nowhere"], name="add")]), "Add 'add'", "'nowhere'",
           "names no value")


def test_graph_output_produced_by_no_node():
    refuse(model([n("Relu", ["x"], name="r")], out="ghost"), "graph output 'ghost'")


def test_duplicate_initializers_and_inputs():
    m = model([n("Add", ["x", "c"], name="add")], inits={"c": w(5)})
    m.graph.initializer.append(numpy_helper.from_array(w(5), "c"))
    refuse(m, "initializer 'c' is defined twice")
    m = model([n("Relu", ["x"], name="r")])
    m.graph.input.append(m.graph.input[0])
    refuse(m, "graph input 'x' is listed twice")


# --- sizes: declared data and import-time folds (edgeq/ir/limits.py) -----------------------------

def test_initializer_raw_data_shorter_than_its_dims():
    m = model([n("Add", ["x", "c"], name="add")], inits={"c": w(5)})
    m.graph.initializer[0].raw_data = m.graph.initializer[0].raw_data[:7]
    refuse(m, "tensor 'c'", "raw_data has 7 bytes", "needs 20")


def test_initializer_declaring_a_huge_shape():
    m = model([n("Add", ["x", "c"], name="add")], inits={"c": w(5)})
    t = m.graph.initializer[0]
    t.ClearField("raw_data")
    del t.dims[:]
    t.dims.extend([2 ** 20, 2 ** 20, 64])
    quick_and_small(m, "tensor 'c'", "EDGEQ_MAX_TENSOR_BYTES")


def test_graph_input_declaring_a_huge_shape():
    quick_and_small(model([n("Relu", ["x"], name="r")], {"x": (1, 3, 2 ** 20, 2 ** 20)}),
                    "input 'x'", "EDGEQ_MAX_ACTIVATION_BYTES")


def test_constant_of_shape_huge():
    """The 112 GiB fold: refused from the shape's value, before numpy allocates it."""
    quick_and_small(model([n("ConstantOfShape", ["s"], ["c"], name="fill"),
                           n("Add", ["x", "c"])], inits={"s": i64(1, 2, 2 ** 17, 2 ** 17)}),
                    "ConstantOfShape 'fill' output", "EDGEQ_MAX_TENSOR_BYTES")


def test_constant_of_shape_negative():
    refuse(model([n("ConstantOfShape", ["s"], ["c"], name="fill"), n("Add", ["x", "c"])],
                 inits={"s": i64(1, -5)}), "ConstantOfShape 'fill'", "negative")


def test_expand_huge():
    quick_and_small(model([n("Expand", ["c", "s"], ["e"], name="ex"), n("Add", ["x", "e"])],
                          inits={"c": w(1, 5), "s": i64(2 ** 20, 2 ** 14, 5)}),
                    "Expand 'ex' output", "EDGEQ_MAX_TENSOR_BYTES")


def test_range_huge():
    quick_and_small(model([n("Range", ["a", "b", "d"], ["r"], name="rng"),
                           n("Cast", ["r"], to=1)],
                          inits={"a": np.float32(0), "b": np.float32(1e12),
                                 "d": np.float32(1e-3)}),
                    "Range 'rng' output", "EDGEQ_MAX_TENSOR_BYTES")


def test_resize_by_20000():
    quick_and_small(model([n("Resize", ["x", "", "sc"], name="up1")],
                          inits={"sc": np.array([1, 1, 2e4, 2e4], np.float32)}),
                    "Resize 'up1' output", "EDGEQ_MAX_ACTIVATION_BYTES")


def test_pads_of_a_million():
    quick_and_small(model([n("Pad", ["x", "p"], name="pad")],
                          inits={"p": i64(0, 0, 10 ** 6, 10 ** 6, 0, 0, 10 ** 6, 10 ** 6)}),
                    "Pad 'pad' output", "EDGEQ_MAX_ACTIVATION_BYTES")


def test_limit_from_the_environment(monkeypatch):
    monkeypatch.setenv("EDGEQ_MAX_ACTIVATION_BYTES", "1000")
    refuse(model([n("Relu", ["x"], ["h"], name="r"),
                  n("Resize", ["h", "", "sc"], name="up")],
                 inits={"sc": np.array([1, 1, 4, 4], np.float32)}), "Resize 'up' output")


# --- the command line: one line, exit code 2, no traceback ---------------------------------------

CLI_CASES = {
    "signature": model([n("Gemm", ["x"], name="fc")], {"x": (2, 3)}),
    "shape": model([n("Reshape", ["x", "s"], name="r")], inits={"s": i64(-2, -96)}),
    "window": model([n("Conv", ["x", "wt"], name="conv", strides=[0, 0])],
                    inits={"wt": w(2, 2, 3, 3)}),
    "structure": model([n("Relu", ["x"], ["y"], name="a"), n("Neg", ["x"], ["y"], name="b")]),
    "order": model([n("Neg", ["h"], ["y"], name="second"), n("Relu", ["x"], ["h"], name="f")],
                   out="y"),
    "fold_size": model([n("ConstantOfShape", ["s"], ["c"], name="fill"), n("Add", ["x", "c"])],
                       inits={"s": i64(1, 2, 2 ** 17, 2 ** 17)}),
    "activation_size": model([n("Resize", ["x", "", "sc"], name="up1")],
                             inits={"sc": np.array([1, 1, 2e4, 2e4], np.float32)}),
    "initializer": None,
}


def _short_raw():
    m = model([n("Add", ["x", "c"], name="add")], inits={"c": w(5)})
    m.graph.initializer[0].raw_data = b"\0" * 3
    return m


@pytest.mark.parametrize("case", sorted(CLI_CASES))
@pytest.mark.parametrize("command", ["inspect", "run"])
def test_cli_one_line_exit_2(case, command, tmp_path, capsys):
    m = CLI_CASES[case] or _short_raw()
    path = tmp_path / f"{case}.onnx"
    path.write_bytes(m.SerializeToString())
    argv = [command, str(path)]
    if command == "run":
        x = tmp_path / "x.npy"
        np.save(x, np.zeros((1, 2, 5, 5), np.float32))
        argv += ["--input", str(x), "--output", str(tmp_path / "y.npy")]
    rc = cli_main(argv)
    err = capsys.readouterr().err
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edgeq: error: "), err
    assert "Traceback" not in err



def test_unread_outputs_are_assigned_once_too():
    """A recurrent node nothing reads is checked but not unrolled; its output names still
    count, so a second node writing one is refused."""
    gru = n("GRU", ["s", "W", "R"], ["Y"], name="gru", hidden_size=3)
    inits = {"W": w(1, 9, 4), "R": w(1, 9, 3)}
    g = from_onnx(model([gru, n("Relu", ["s"])], {"s": (2, 1, 4)}, inits=inits, opset=14))
    assert g.ops() == ["Relu"]
    refuse(model([gru, n("GRU", ["s", "W", "R"], ["Y"], name="gru2", hidden_size=3),
                  n("Relu", ["s"])], {"s": (2, 1, 4)}, inits=inits, opset=14),
           "GRU 'gru2'", "output 'Y'", "node 'gru'")


def test_range_of_mixed_types_or_a_count_that_overflows():
    refuse(model([n("Range", ["a", "b", "d"], ["r"], name="rng"), n("Cast", ["r"], to=1)],
                 inits={"a": np.int64(0), "b": np.int64(5), "d": np.float64(1)}),
           "Range 'rng'", "one type")
    refuse(model([n("Range", ["a", "b", "d"], ["r"], name="rng"), n("Cast", ["r"], to=1)],
                 inits={"a": np.float64(0), "b": np.float64(5), "d": np.float64(5e-324)}),
           "Range 'rng'", "not a finite count")


def test_inputs_of_one_type_parameter_have_one_type():
    refuse(model([n("Add", ["x", "c"], name="add")], inits={"c": np.ones(5, np.float64)}),
           "Add 'add'", "float64", "float32", "one type T")
