"""Hand-written ONNX models in the exact idioms real exporters write, for the real-model corpus
(``models/corpus.py``). Each is built with ``onnx.helper`` (no torch), weights He-normal from a
seeded generator (biases small) so the nets are not chaotic:

- ``paddle_dfl_head``: paddle2onnx input dims (``-1`` everywhere dynamic); a detection head
  whose reshape target is computed ``Shape -> Gather(scalar) -> Unsqueeze -> Concat``; YOLOv8's
  distribution-focal-loss box decoding (Softmax over axis 1, then a 1x1 Conv with weights
  0..15); boxes in pixels (0..96) and sigmoid scores (0..1) joined by one Concat;
- ``prelu_landmark``: a face-landmark style net: per-channel PReLU (``nn.PReLU(C)``), ceil-mode
  MaxPool and AveragePool, Flatten, Gemm;
- ``fpn_resize``: an FPN: ConvTranspose upsampling, nearest Resize (asymmetric, floor) and
  linear Resize in every coordinate mode exporters use (half_pixel, pytorch_half_pixel,
  align_corners, asymmetric);
- ``lstm_kws``: a keyword-spotting CRNN: Conv over MFCC frames, Transpose / Reshape into a
  sequence, an LSTM with a fixed sequence length (the final hidden state), Gemm;
- ``tf2onnx_nhwc``: tf2onnx's NHWC input with a Transpose to NCHW, ReLU6 as Clip with constant
  inputs, depthwise convolution, ReduceMean over H and W, MatMul + Add instead of Gemm.

``build(out)`` writes ``NAME.onnx`` and returns manifest entries (input shape, input kind).
"""

from __future__ import annotations

import os
from typing import Any, Callable

import numpy as np

R = np.random.default_rng(20261201)


def _he(*shape: int) -> np.ndarray:
    fan_in = int(np.prod(shape[1:]))
    return (R.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)


def _bias(n: int) -> np.ndarray:
    return R.normal(0, 0.05, n).astype(np.float32)


class _G:
    """A tiny graph builder: nodes, initializers, unique names."""

    def __init__(self):
        from onnx import helper, numpy_helper

        self.h, self.nh = helper, numpy_helper
        self.nodes: list = []
        self.inits: list = []
        self.k = 0

    def name(self, base: str) -> str:
        self.k += 1
        return f"{base}_{self.k}"

    def const(self, a, base: str = "c") -> str:
        n = self.name(base)
        self.inits.append(self.nh.from_array(np.asarray(a), n))
        return n

    def op(self, op: str, ins: list[str], n_out: int = 1, **attrs) -> Any:
        outs = [self.name(op.lower()) for _ in range(n_out)]
        self.nodes.append(self.h.make_node(op, ins, outs, name=f"/{outs[0]}", **attrs))
        return outs[0] if n_out == 1 else outs

    def conv(self, x: str, cin: int, cout: int, k: int = 3, s: int = 1, group: int = 1,
             act: str | None = "Relu") -> str:
        y = self.op("Conv", [x, self.const(_he(cout, cin // group, k, k), "w"),
                             self.const(_bias(cout), "b")], kernel_shape=[k, k],
                    strides=[s, s], pads=[k // 2] * 4, group=group)
        return self.op(act, [y]) if act else y

    def model(self, inputs: dict[str, list], outputs: list[str], opset: int):
        from onnx import TensorProto

        g = self.h.make_graph(self.nodes, "idiom",
                              [self.h.make_tensor_value_info(n, TensorProto.FLOAT, d)
                               for n, d in inputs.items()],
                              [self.h.make_tensor_value_info(o, TensorProto.FLOAT, None)
                               for o in outputs], self.inits)
        return self.h.make_model(g, opset_imports=[self.h.make_opsetid("", opset)])


def paddle_dfl_head():
    g = _G()
    x = g.conv("x", 3, 16, s=2)
    x = g.conv(x, 16, 32, s=2)
    x = g.conv(x, 32, 64, s=2)  # (1, 64, 12, 12)
    reg = g.conv(x, 64, 64, k=1, act=None)  # 4 sides x 16 bins
    n = g.op("Unsqueeze", [g.op("Gather", [g.op("Shape", [reg]), g.const(np.int64(0))],
                                axis=0), g.const(np.array([0], np.int64))])
    shape = g.op("Concat", [n, g.const(np.array([4, 16, -1], np.int64))], axis=0)
    dist = g.op("Transpose", [g.op("Reshape", [reg, shape])], perm=[0, 2, 1, 3])  # N,16,4,A
    soft = g.op("Softmax", [dist], axis=1)
    proj = g.op("Conv", [soft, g.const(np.arange(16, dtype=np.float32).reshape(1, 16, 1, 1))])
    box = g.op("Mul", [g.op("Reshape", [proj, g.const(np.array([1, 4, 144], np.int64))]),
                       g.const(np.float32(8.0))])  # bins of 8 pixels: 0..120
    cls = g.op("Sigmoid", [g.conv(x, 64, 8, k=1, act=None)])
    score = g.op("Reshape", [cls, g.const(np.array([1, 8, -1], np.int64))])
    out = g.op("Concat", [box, score], axis=1)
    return g.model({"x": [-1, 3, -1, -1]}, [out], 13), [1, 3, 96, 96], "photo"


def prelu_landmark():
    g = _G()
    x = g.conv("x", 3, 16, s=2, act=None)
    x = g.op("PRelu", [x, g.const(R.uniform(0.05, 0.3, (16, 1, 1)).astype(np.float32))])
    x = g.op("MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1)
    x = g.conv(x, 16, 32, act=None)
    x = g.op("PRelu", [x, g.const(R.uniform(0.05, 0.3, (32, 1, 1)).astype(np.float32))])
    x = g.op("AveragePool", [x], kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1)
    x = g.conv(x, 32, 32, s=2, act=None)
    x = g.op("PRelu", [x, g.const(R.uniform(0.05, 0.3, (32, 1, 1)).astype(np.float32))])
    f = g.op("Flatten", [x], axis=1)
    feat = 32 * 6 * 6
    y = g.op("Gemm", [f, g.const(_he(20, feat), "w"), g.const(_bias(20), "b")], transB=1)
    return g.model({"x": [1, 3, 96, 96]}, [y], 17), [1, 3, 96, 96], "photo"


def fpn_resize():
    g = _G()
    c1 = g.conv("x", 3, 16, s=2)  # 48
    c2 = g.conv(c1, 16, 32, s=2)  # 24
    c3 = g.conv(c2, 32, 64, s=2)  # 12
    p3 = g.conv(c3, 64, 32, k=1, act=None)
    up3 = g.op("ConvTranspose", [p3, g.const(_he(32, 32, 2, 2) / 2, "wt"),
                                 g.const(_bias(32), "bt")], kernel_shape=[2, 2], strides=[2, 2])
    p2 = g.op("Add", [g.conv(c2, 32, 32, k=1, act=None), up3])
    empty = g.const(np.zeros(0, np.float32), "roi")
    scale2 = g.const(np.array([1, 1, 2, 2], np.float32), "scales")
    up2 = g.op("Resize", [p2, empty, scale2], mode="nearest",
               coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    p1 = g.op("Add", [g.conv(c1, 16, 32, k=1, act=None), up2])  # 48
    size48 = g.const(np.array([1, 32, 48, 48], np.int64), "sizes")
    r_a = g.op("Resize", [p2, empty, "", size48], mode="linear",
               coordinate_transformation_mode="align_corners")
    r_b = g.op("Resize", [p3, empty, "", size48], mode="linear",
               coordinate_transformation_mode="pytorch_half_pixel")
    r_c = g.op("Resize", [p2, empty, scale2], mode="linear",
               coordinate_transformation_mode="asymmetric")
    fused = g.conv(g.op("Concat", [p1, r_a, r_b, r_c], axis=1), 128, 8, k=1, act=None)
    y = g.op("Resize", [fused, empty, scale2], mode="linear",
             coordinate_transformation_mode="half_pixel")
    return g.model({"x": [1, 3, 96, 96]}, [y], 13), [1, 3, 96, 96], "photo"


def lstm_kws():
    g = _G()
    frames, hidden = 25, 32
    x = g.conv("x", 1, 8, s=1)  # (1, 8, 25, 10)
    seq = g.op("Reshape", [g.op("Transpose", [x], perm=[2, 0, 1, 3]),
                           g.const(np.array([frames, 1, 80], np.int64))])
    w = (R.standard_normal((1, 4 * hidden, 80)) / np.sqrt(80)).astype(np.float32)
    r = (R.standard_normal((1, 4 * hidden, hidden)) / np.sqrt(hidden)).astype(np.float32)
    b = R.normal(0, 0.1, (1, 8 * hidden)).astype(np.float32)
    _, y_h = g.op("LSTM", [seq, g.const(w, "W"), g.const(r, "R"), g.const(b, "B")], n_out=2,
                  hidden_size=hidden)
    feat = g.op("Reshape", [y_h, g.const(np.array([1, hidden], np.int64))])
    y = g.op("Gemm", [feat, g.const(_he(12, hidden), "w"), g.const(_bias(12), "b")], transB=1)
    return g.model({"x": [1, 1, frames, 10]}, [y], 14), [1, 1, frames, 10], "speech"


def tf2onnx_nhwc():
    g = _G()
    x = g.op("Transpose", ["x"], perm=[0, 3, 1, 2])
    lo, hi = g.const(np.float32(0.0), "min"), g.const(np.float32(6.0), "max")
    x = g.op("Clip", [g.conv(x, 3, 16, s=2, act=None), lo, hi])
    x = g.op("Clip", [g.conv(x, 16, 16, group=16, act=None), lo, hi])
    x = g.op("Clip", [g.conv(x, 16, 32, k=1, act=None), lo, hi])
    m = g.op("ReduceMean", [x], axes=[2, 3], keepdims=0)
    y = g.op("Add", [g.op("MatMul", [m, g.const(_he(10, 32).T.copy(), "w")]),
                     g.const(_bias(10), "b")])
    y = g.op("Softmax", [y], axis=-1)
    return g.model({"x": [1, 64, 64, 3]}, [y], 13), [1, 64, 64, 3], "photo_nhwc"


IDIOMS: dict[str, tuple[Callable, str]] = {
    "paddle_dfl_head": (paddle_dfl_head, "paddle2onnx dims, Shape/Gather reshape, DFL softmax "
                                         "axis 1, mixed-range Concat"),
    "prelu_landmark": (prelu_landmark, "per-channel PReLU, ceil-mode pooling"),
    "fpn_resize": (fpn_resize, "ConvTranspose, nearest and linear Resize in 4 coordinate modes"),
    "lstm_kws": (lstm_kws, "LSTM with a fixed sequence length (25 steps)"),
    "tf2onnx_nhwc": (tf2onnx_nhwc, "NHWC input, Clip ReLU6, ReduceMean, MatMul + Add"),
}


def build_one(name: str, out: str) -> dict[str, Any]:
    import onnx

    global R
    R = np.random.default_rng(sum(map(ord, name)))  # stable per model, whatever the order
    fn, note = IDIOMS[name]
    model, shape, kind = fn()
    path = os.path.join(out, f"{name}.onnx")
    onnx.save(model, path + ".tmp")
    os.replace(path + ".tmp", path)
    from models import data

    photo = kind == "photo"
    return {"file": f"{name}.onnx", "input_shape": shape,
            "mean": list(data.IMAGENET_MEAN) if photo else None,
            "std": list(data.IMAGENET_STD) if photo else None,
            "input": kind, "source": "hand-written ONNX", "exporter": "onnx.helper",
            "dead_channels": [], "note": note}
