"""Every supported ONNX op, imported and run on the reference interpreter, against ONNX Runtime.

Each case is a one- or two-node model built with onnx.helper; inputs are random. Tolerance:
1e-4 relative (float32 kernels computed in a different order)."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from edgeq.frontend.onnx import from_onnx
from edgeq.runtime.reference import run_graph
from tests.helpers import onnx_model, ort_run, rel_err

pytest.importorskip("onnxruntime", reason="ONNX Runtime is the oracle for these tests")

R = np.random.default_rng(7)


def w(*shape, scale=0.3):
    return (R.normal(0, scale, shape)).astype(np.float32)


def n(op, ins, outs=("y",), **attrs):
    return helper.make_node(op, list(ins), list(outs), name=f"{op.lower()}_{outs[0]}", **attrs)


def i64(*v):
    return np.array(v, np.int64)


X4 = {"x": (1, 4, 9, 9)}
CASES = {
    "conv_pads_dil": ([n("Conv", ["x", "w", "b"], pads=[1, 2, 0, 1], dilations=[2, 1],
                         strides=[1, 2])], X4, {"w": w(6, 4, 3, 3), "b": w(6)}, 17),
    "conv_groups": ([n("Conv", ["x", "w"], group=2, strides=[2, 2])], X4, {"w": w(6, 2, 3, 3)},
                    13),
    "conv_depthwise": ([n("Conv", ["x", "w", "b"], group=4, pads=[1, 1, 1, 1])], X4,
                       {"w": w(4, 1, 3, 3), "b": w(4)}, 13),
    "conv_same_upper": ([n("Conv", ["x", "w"], auto_pad="SAME_UPPER", strides=[2, 2])], X4,
                        {"w": w(5, 4, 4, 4)}, 11),
    "conv_same_lower": ([n("Conv", ["x", "w"], auto_pad="SAME_LOWER")], X4,
                        {"w": w(5, 4, 2, 2)}, 11),
    "conv_transpose": ([n("ConvTranspose", ["x", "w", "b"], strides=[2, 2], pads=[1, 1, 0, 0],
                          output_padding=[1, 1])], X4, {"w": w(4, 3, 3, 3), "b": w(3)}, 17),
    "conv_transpose_group": ([n("ConvTranspose", ["x", "w"], group=2, strides=[2, 1])], X4,
                             {"w": w(4, 2, 2, 3)}, 17),
    "conv_transpose_output_shape": ([n("ConvTranspose", ["x", "w"], strides=[2, 2],
                                       output_shape=[18, 18])], X4, {"w": w(4, 2, 3, 3)}, 17),
    "gemm": ([n("Gemm", ["a", "bw", "c"], alpha=0.7, beta=1.3, transB=1)], {"a": (3, 5)},
             {"bw": w(4, 5), "c": w(4)}, 17),
    "gemm_transA": ([n("Gemm", ["a", "bw"], transA=1)], {"a": (5, 3)}, {"bw": w(5, 4)}, 11),
    "matmul_batched": ([n("MatMul", ["a", "bw"])], {"a": (2, 3, 5)}, {"bw": w(5, 4)}, 17),
    "add_broadcast": ([n("Add", ["x", "c"])], X4, {"c": w(4, 1, 1)}, 17),
    "sub": ([n("Sub", ["x", "c"])], X4, {"c": w(9)}, 17),
    "mul": ([n("Mul", ["x", "c"])], X4, {"c": w(1, 4, 1, 1)}, 17),
    "div": ([n("Div", ["x", "c"])], X4, {"c": (np.abs(w(4, 1, 1)) + 0.5)}, 17),
    "relu": ([n("Relu", ["x"])], X4, {}, 17),
    "clip11": ([n("Clip", ["x", "lo", "hi"])], X4, {"lo": np.float32(-0.2),
                                                    "hi": np.float32(0.3)}, 13),
    "clip9": ([n("Clip", ["x"], min=-0.1, max=0.2)], X4, {}, 9),
    "leaky_relu": ([n("LeakyRelu", ["x"], alpha=0.2)], X4, {}, 17),
    "prelu": ([n("PRelu", ["x", "s"])], X4, {"s": w(4, 1, 1)}, 17),
    "sigmoid": ([n("Sigmoid", ["x"])], X4, {}, 17),
    "hard_sigmoid": ([n("HardSigmoid", ["x"], alpha=0.3, beta=0.4)], X4, {}, 17),
    "hard_swish": ([n("HardSwish", ["x"])], X4, {}, 17),
    "tanh": ([n("Tanh", ["x"])], X4, {}, 17),
    "erf": ([n("Erf", ["x"])], X4, {}, 17),
    "gelu": ([n("Gelu", ["x"])], X4, {}, 20),
    "gelu_tanh": ([n("Gelu", ["x"], approximate="tanh")], X4, {}, 20),
    "softmax13": ([n("Softmax", ["x"], axis=1)], X4, {}, 13),
    "softmax11_coerce": ([n("Softmax", ["x"], axis=1)], X4, {}, 11),
    "batchnorm": ([n("BatchNormalization", ["x", "s", "b", "m", "v"], epsilon=1e-3)], X4,
                  {"s": w(4), "b": w(4), "m": w(4), "v": np.abs(w(4)) + 0.5}, 15),
    "layernorm": ([n("LayerNormalization", ["x", "s", "b"], axis=-1)], {"x": (2, 3, 8)},
                  {"s": w(8), "b": w(8)}, 17),
    "layernorm_2axes": ([n("LayerNormalization", ["x", "s"], axis=1)], {"x": (2, 3, 8)},
                        {"s": w(3, 8)}, 17),
    "maxpool_ceil_pads": ([n("MaxPool", ["x"], kernel_shape=[3, 3], strides=[2, 2],
                             pads=[1, 0, 1, 0], ceil_mode=1)], X4, {}, 12),
    "maxpool_dilated": ([n("MaxPool", ["x"], kernel_shape=[2, 2], dilations=[2, 2])], X4, {},
                        12),
    "avgpool_include_pad": ([n("AveragePool", ["x"], kernel_shape=[3, 3], strides=[2, 2],
                               pads=[1, 1, 1, 1], count_include_pad=1)], X4, {}, 17),
    "avgpool_exclude_pad_ceil": ([n("AveragePool", ["x"], kernel_shape=[3, 3], strides=[2, 2],
                                    pads=[1, 1, 0, 0], ceil_mode=1)], X4, {}, 17),
    "global_avgpool": ([n("GlobalAveragePool", ["x"])], X4, {}, 17),
    "reduce_mean13": ([n("ReduceMean", ["x"], axes=[2, 3], keepdims=0)], X4, {}, 13),
    "reduce_mean18": ([n("ReduceMean", ["x", "ax"])], X4, {"ax": i64(-1)}, 18),
    "concat_split": ([n("Split", ["x"], ["a", "b"], axis=1, split=[1, 3]),
                      n("Concat", ["b", "a"], axis=1)], X4, {}, 11),
    "split13_input": ([n("Split", ["x", "sp"], ["a", "b"], axis=2),
                       n("Concat", ["b", "a"], axis=2)], X4, {"sp": i64(4, 5)}, 13),
    "split18_num_outputs": ([n("Split", ["x"], ["a", "b"], axis=3, num_outputs=2),
                             n("Concat", ["b", "a"], axis=3)], X4, {}, 18),
    "slice_steps": ([n("Slice", ["x", "st", "en", "ax", "sp"])], X4,
                    {"st": i64(1, -1), "en": i64(8, -100), "ax": i64(2, 3), "sp": i64(2, -2)},
                    13),
    "slice9": ([n("Slice", ["x"], starts=[1], ends=[3], axes=[1])], X4, {}, 9),
    "pad_constant": ([n("Pad", ["x", "p", "v"])], X4,
                     {"p": i64(0, 0, 1, 2, 0, 0, 2, 1), "v": np.float32(0.5)}, 13),
    "pad_reflect": ([n("Pad", ["x", "p"], mode="reflect")], X4,
                    {"p": i64(0, 0, 1, 2, 0, 0, 2, 1)}, 13),
    "pad_edge_negative": ([n("Pad", ["x", "p"], mode="edge")], X4,
                          {"p": i64(0, 0, -1, 2, 0, 0, 2, -2)}, 13),
    "pad9": ([n("Pad", ["x"], pads=[0, 0, 1, 1, 0, 0, 1, 1], value=1.0)], X4, {}, 9),
    "reshape_flatten": ([n("Reshape", ["x", "s"], ["r"]), n("Flatten", ["r"], axis=2)], X4,
                        {"s": i64(0, -1, 9)}, 13),
    "squeeze_unsqueeze": ([n("Unsqueeze", ["x", "a1"], ["u"]), n("Squeeze", ["u", "a2"])], X4,
                          {"a1": i64(0, -1), "a2": i64(0)}, 13),
    "squeeze11_attr": ([n("Unsqueeze", ["x"], ["u"], axes=[2]), n("Squeeze", ["u"], axes=[2])],
                       X4, {}, 11),
    "transpose": ([n("Transpose", ["x"], perm=[0, 2, 3, 1])], X4, {}, 17),
    "resize_nearest": ([n("Resize", ["x", "", "sc"], mode="nearest")], X4,
                       {"sc": np.array([1, 1, 2, 1.5], np.float32)}, 13),
    "resize_linear_sizes": ([n("Resize", ["x", "", "", "sz"], mode="linear")], X4,
                            {"sz": i64(1, 4, 13, 7)}, 13),
    "resize_align_corners": ([n("Resize", ["x", "", "sc"], mode="linear",
                                coordinate_transformation_mode="align_corners")], X4,
                             {"sc": np.array([1, 1, 2, 2], np.float32)}, 13),
    "resize_asym_floor": ([n("Resize", ["x", "", "sc"], mode="nearest",
                             coordinate_transformation_mode="asymmetric", nearest_mode="floor")],
                          X4, {"sc": np.array([1, 1, 2, 2], np.float32)}, 13),
    "upsample9": ([n("Upsample", ["x", "sc"], mode="nearest")], X4,
                  {"sc": np.array([1, 1, 2, 2], np.float32)}, 9),
    "identity_dropout": ([n("Identity", ["x"], ["i"]), n("Dropout", ["i"], ratio=0.5)], X4, {},
                         11),
    "constant_shape_gather": ([n("Shape", ["x"], ["s"]),
                               n("Constant", [], ["k"], value=helper.make_tensor(
                                   "k", 7, [1], [2])),
                               n("Gather", ["s", "k"], ["d"]),
                               n("ConstantOfShape", ["d"], ["c"], value=helper.make_tensor(
                                   "v", 1, [1], [0.25])),
                               n("Add", ["x", "c"])], X4, {}, 13),
    "cast_roundtrip": ([n("Cast", ["x"], ["c"], to=11), n("Cast", ["c"], to=1)], X4, {}, 13),
    "sum3": ([n("Sum", ["x", "c", "x"])], X4, {"c": w(9)}, 13),
    "lrn": ([n("LRN", ["x"], size=3, alpha=1e-3, beta=0.75, bias=1.5)], X4, {}, 13),
    "gather_embedding": ([n("Gather", ["emb", "idx"], axis=0)], {"idx_f": (1,)},
                         {"emb": w(10, 4), "idx": i64(3, 1, 9)}, 13),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_op_matches_onnxruntime(case):
    nodes, inputs, inits, opset = CASES[case]
    out_name = nodes[-1].output[0]
    model = onnx_model(nodes, inputs, [out_name], inits, opset)
    feeds = {k: R.normal(0, 1, s).astype(np.float32) for k, s in inputs.items()}
    expected = ort_run(model, feeds)[0]
    graph = from_onnx(model)
    got = run_graph(graph, feeds)[graph.outputs[0].name]
    assert got.shape == expected.shape
    assert rel_err(got, expected) < 1e-4, case
