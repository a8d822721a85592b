"""What tests share: ONNX models from node lists, ORT as the independent oracle, the table of
integer-op cases every backend is checked on, the zoo models with calibration data, and the CLI
as a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zlib
from typing import Any, Sequence

import numpy as np
from onnx import helper

import edgeq
from edgeq.quant.calibrate import CalibrationData
from models import data


def onnx_model(nodes: list, inputs: dict[str, Sequence[int]], outputs: Sequence[str],
               inits: dict[str, np.ndarray] | None = None, opset: int = 17,
               out_shapes: dict[str, Sequence[int]] | None = None) -> Any:
    from onnx import TensorProto, helper, numpy_helper

    ins = [helper.make_tensor_value_info(n, TensorProto.FLOAT, list(s)) for n, s in
           inputs.items()]
    outs = [helper.make_tensor_value_info(n, TensorProto.FLOAT,
                                          None if not out_shapes else out_shapes.get(n))
            for n in outputs]
    graph = helper.make_graph(nodes, "test", ins, outs,
                              [numpy_helper.from_array(np.asarray(v), k) for k, v in
                               (inits or {}).items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = min(model.ir_version, 9)
    return model


def graph_of(nodes, inputs, outputs, inits=None, opset=17):
    """An edgeq graph imported from ONNX nodes (``onnx_model``'s arguments)."""
    return edgeq.from_onnx(onnx_model(nodes, inputs, outputs, inits, opset))


def ort_run(model: Any, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(model.SerializeToString(), so,
                                providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def rel_err(a: np.ndarray, b: np.ndarray) -> float:
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-6))


# --- the integer-op cases (one row per op form; every backend runs them) ---------------------

_W = np.random.default_rng(11)  # the cases' weights and constants, drawn once at import


def w(*s, scale=0.4):
    """Random float32 weights (the cases' generator)."""
    return _W.normal(0, scale, s).astype(np.float32)


def n(op, ins, outs=("y",), **attrs):
    return helper.make_node(op, list(ins), list(outs), name=f"{op.lower()}_{outs[0]}", **attrs)


X = {"x": (1, 6, 8, 8)}
CASES = {  # name: (nodes, inputs, inits, min SQNR dB)
    "conv_relu_pad": ([n("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
                       n("Relu", ["c"])], X, {"w": w(5, 6, 3, 3), "b": w(5)}, 35),
    "conv_depthwise_stride": ([n("Conv", ["x", "w"], strides=[2, 2], group=6, pads=[1, 0, 1, 0])],
                              X, {"w": w(6, 1, 3, 3)}, 35),
    "conv_transpose": ([n("ConvTranspose", ["x", "w", "b"], strides=[2, 2])], X,
                       {"w": w(6, 4, 2, 2), "b": w(4)}, 35),
    "gemm": ([n("Reshape", ["x", "s"], ["f"]), n("Gemm", ["f", "w", "b"], transB=1, alpha=0.5)],
             X, {"s": np.array([1, -1]), "w": w(7, 384, scale=0.05), "b": w(7)}, 35),
    "matmul_const": ([n("MatMul", ["x", "w"])], X, {"w": w(8, 5)}, 35),
    "matmul_activations": ([n("Transpose", ["x"], ["t"], perm=[0, 1, 3, 2]),
                            n("MatMul", ["x", "t"])], X, {}, 30),
    "add_sub_residual": ([n("Relu", ["x"], ["r"]), n("Add", ["x", "r"], ["a"]),
                          n("Sub", ["a", "c"])], X, {"c": w(8)}, 35),
    "mul_per_channel_and_scalar": ([n("Mul", ["x", "c"], ["m"]), n("Div", ["m", "d"])], X,
                                   {"c": w(6, 1, 1), "d": np.float32(3.0)}, 35),
    "mul_activations": ([n("Sigmoid", ["x"], ["s"]), n("Mul", ["x", "s"])], X, {}, 30),
    "pools": ([n("MaxPool", ["x"], ["m"], kernel_shape=[2, 2], strides=[2, 2]),
               n("AveragePool", ["m"], ["a"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
               n("GlobalAveragePool", ["a"])], X, {}, 35),
    "avgpool_include_pad_ceil": ([n("AveragePool", ["x"], kernel_shape=[3, 3], strides=[2, 2],
                                    pads=[1, 1, 1, 1], count_include_pad=1, ceil_mode=1)],
                                 X, {}, 35),
    "reduce_mean": ([n("ReduceMean", ["x"], axes=[2, 3], keepdims=0)], X, {}, 35),
    "concat_differing_scales": ([n("Mul", ["x", "k"], ["big"]), n("Concat", ["x", "big"],
                                                                   axis=1)],
                                X, {"k": np.float32(5.0)}, 35),
    "data_movement": ([n("Split", ["x"], ["a", "b"], axis=1, split=[2, 4]),
                       n("Slice", ["b", "st", "en", "ax"], ["s"]),
                       n("Pad", ["s", "p"], ["p2"]),
                       n("Transpose", ["p2"], ["t"], perm=[0, 2, 3, 1]),
                       n("Reshape", ["t", "sh"])], X,
                      {"st": np.array([1]), "en": np.array([7]), "ax": np.array([2]),
                       "p": np.array([0, 0, 1, 1, 0, 0, 1, 1]), "sh": np.array([1, -1])}, 38),
    "resize_nearest": ([n("Resize", ["x", "", "sc"], mode="nearest")], X,
                       {"sc": np.array([1, 1, 2, 2], np.float32)}, 38),
    "resize_linear": ([n("Resize", ["x", "", "sc"], mode="linear",
                         coordinate_transformation_mode="half_pixel")], X,
                      {"sc": np.array([1, 1, 2, 2], np.float32)}, 30),
    "resize_linear_align_corners": ([n("Resize", ["x", "", "", "sz"], mode="linear",
                                       coordinate_transformation_mode="align_corners")], X,
                                    {"sz": np.array([1, 6, 13, 11])}, 30),
    "lookup_ops": ([n("Tanh", ["x"], ["t"]), n("HardSwish", ["t"], ["h"]), n("Gelu", ["h"], ["g"]),
                    n("LeakyRelu", ["g"], alpha=0.1)], X, {}, 30),
    "softmax": ([n("Softmax", ["x"], axis=-1)], X, {}, 30),
    "softmax_axis1": ([n("Softmax", ["x"], axis=1)], X, {}, 30),
    "min_max": ([n("Relu", ["x"], ["r"]), n("Max", ["x", "c"], ["m"]), n("Min", ["m", "r"])],
                X, {"c": np.float32(-0.5)}, 35),
    "prelu_per_channel": ([n("PRelu", ["x", "sl"])], X,
                          {"sl": _W.uniform(0.05, 0.4, (6, 1, 1)).astype(np.float32)}, 35),
    "layernorm_affine": ([n("LayerNormalization", ["x", "g", "b"], axis=-1)], X,
                         {"g": (_W.uniform(-2, 2, 8)).astype(np.float32), "b": w(8)}, 30),
}


def quantized_case(case, samples=24):
    """(optimized float graph, its QuantResult, the calibration inputs) of ``CASES[case]``;
    the inputs are drawn from a generator seeded by the case's name, whatever runs first."""
    nodes, inputs, inits, _ = CASES[case]
    opset = 20 if case == "lookup_ops" else 17
    g = graph_of(nodes, inputs, [nodes[-1].output[0]], inits, opset=opset)
    g, _ = edgeq.optimize(g)
    rng = np.random.default_rng(zlib.crc32(case.encode()))
    x = rng.normal(0, 1, (samples,) + inputs["x"][1:]).astype(np.float32)
    return g, edgeq.quantize(g, x, equalize=False), x


# --- the zoo --------------------------------------------------------------------------------

ZOO = ["digits_cnn", "mobilenet_v2", "resnet8", "ds_cnn", "transformer_block"]


def float_and_data(name, zoo_dir, n=24):
    """A zoo model's optimized float graph and ``n`` calibration samples of its kind (digits,
    photo crops, or unit normals)."""
    with open(os.path.join(zoo_dir, "manifest.json")) as f:
        info = json.load(f)[name]
    fg, _ = edgeq.optimize(edgeq.load(os.path.join(zoo_dir, info["file"])), mean=info["mean"],
                           std=info["std"])
    shape = info["input_shape"]
    if name == "digits_cnn":
        x = data.digits()[0][:n]
    elif len(shape) == 4 and shape[1] == 3:
        x = data.photo_crops(n, shape[-1], seed=1)
    else:
        x = np.random.default_rng(0).normal(size=(n,) + tuple(shape[1:])).astype(np.float32)
    return fg, CalibrationData(fg, arrays={"input": x})


# --- the CLI ---------------------------------------------------------------------------------

EDGEQ = [sys.executable, "-m", "edgeq.cli"]


def run_cli(*args, cwd=None):
    return subprocess.run(EDGEQ + [str(a) for a in args], capture_output=True, text=True,
                          cwd=cwd)


def small_cnn(d, hw: int = 24, stem: str = "stem/conv", stem_out: str = "c",
              skip: bool = False) -> tuple[Any, Any]:
    """A two-conv CNN (Conv, Relu, Conv, [Add skip], GlobalAveragePool, Flatten, Gemm) as
    ``d/m.onnx`` with 8 calibration samples ``d/cal.npy``: the model the profile, report and
    runtime tests export. Returns (model path, calibration path)."""
    from onnx import helper

    rng = np.random.default_rng(0)
    nodes = [helper.make_node("Conv", ["x", "w"], [stem_out], name=stem, pads=[1, 1, 1, 1]),
             helper.make_node("Relu", [stem_out], ["r"], name="relu"),
             helper.make_node("Conv", ["r", "w2"], ["c2"], name="conv2", pads=[1, 1, 1, 1])]
    last = "c2"
    if skip:
        nodes.append(helper.make_node("Add", ["c2", "r"], ["s"], name="skip"))
        last = "s"
    nodes += [helper.make_node("GlobalAveragePool", [last], ["p"], name="gap"),
              helper.make_node("Flatten", ["p"], ["f"], name="flat"),
              helper.make_node("Gemm", ["f", "fc"], ["y"], name="fc")]
    m = onnx_model(nodes, {"x": (1, 8, hw, hw)}, ["y"],
                   {"w": rng.normal(size=(16, 8, 3, 3)).astype(np.float32) * 0.2,
                    "w2": rng.normal(size=(16, 16, 3, 3)).astype(np.float32) * 0.1,
                    "fc": rng.normal(size=(16, 10)).astype(np.float32) * 0.3})
    path = d / "m.onnx"
    path.write_bytes(m.SerializeToString())
    np.save(d / "cal.npy", rng.normal(size=(8, 8, hw, hw)).astype(np.float32))
    return path, d / "cal.npy"
