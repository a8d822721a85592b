"""Integer graph -> QDQ ONNX. One lowering function per integer op (see the package docstring).

Each op's lowering is one function in ``LOWER``, registered (``@lowering``) with its support
checks: ``check(node) -> reason | None``, whose docstring states the limit (and is the
condition docs/supported_ops.md lists); ``GRAPH_CHECKS`` apply to the whole graph.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from edgeq.backends.base import Lowering, Refusal, integer_graph, lowering_registry
from edgeq.ir.graph import DType, Graph, Node, Value
from edgeq.ops.resize import linear_taps

OPSET = 21
SESSION_CONFIG = "session.x64quantprecision=1"
Check = Callable[[Node], "str | None"]
GraphCheck = Callable[[Graph], "str | None"]
NO_LOWERING = "no QDQ lowering for this op"


LOWER: dict[str, Lowering] = {}
lowering = lowering_registry(LOWER)  # @lowering(op, checks=(...)): the op's QDQ lowering


# --- graph-wide checks (each returns the reason it fails, or None) ----------------------------
GRAPH_CHECKS: tuple[GraphCheck, ...] = (integer_graph,)


# --- node checks --------------------------------------------------------------------------------
def _ungrouped_transpose(n: Node) -> str | None:
    """group is 1: a grouped ConvTranspose's per-channel weight scales lie on a split axis,
    which DequantizeLinear cannot express."""
    if n.attrs["group"] != 1:
        return ("grouped transposed convolution has per-channel weights on a split axis, "
                "which QDQ cannot express")
    return None


def supports(graph: Graph) -> list[Refusal]:
    """One refusal per node ORT cannot take from this backend (the first reason that applies
    to it), then one per graph-wide check that fails."""
    reasons = []
    for n in graph.nodes:
        lw = LOWER.get(n.op)
        why = NO_LOWERING if lw is None else lw.refusal(n)
        if why:
            reasons.append(Refusal(n.op, n.name, why))
    reasons += [Refusal("", "", why) for check in GRAPH_CHECKS if (why := check(graph))]
    return reasons


class Builder:
    def __init__(self, graph: Graph):
        from onnx import helper, numpy_helper

        self.h, self.nh = helper, numpy_helper
        self.graph = graph
        self.nodes: list = []
        self.inits: list = []
        self.floats: dict[str, str] = {}
        self.count = 0

    def name(self, base: str) -> str:
        self.count += 1
        return f"{base}__{self.count}"

    def const(self, base: str, array: np.ndarray) -> str:
        n = self.name(base)
        # copy(order="C"), not ascontiguousarray: that one turns 0-d scales into shape (1,)
        self.inits.append(self.nh.from_array(np.asarray(array).copy(order="C"), n))
        return n

    def node(self, op: str, inputs: list[str], base: str, **attrs) -> str:
        out = self.name(base)
        self.nodes.append(self.h.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def zp_array(self, v: Value, zp) -> np.ndarray:
        """``v``'s zero point as the artifact stores it: int8 values are uint8 here
        (``U8_SHIFT``)."""
        if v.dtype == DType.INT8:
            return _stored(v, np.asarray(zp))
        return np.asarray(zp, v.dtype.numpy if v.dtype != DType.INT4 else np.int8)

    def dq(self, v: Value) -> str:
        """Float tensor for integer value ``v``. A constant gets its own DQ per reader: ORT's
        QDQ fusions with ``session.x64quantprecision=1`` fail to load ("Attempt to replace the
        existing tensor") when two fused nodes read one constant's DQ (measured on ORT 1.32)."""
        if v.name in self.floats:
            return self.floats[v.name]
        qp = v.qparams
        src = self.const(v.name, _stored(v, v.const)) if v.is_const else v.name
        if len(qp.scale) > 1:
            axis = _channel_axis(v, len(qp.scale))
            s = self.const(f"{v.name}/scale", np.asarray(qp.scale, np.float32))
            z = self.const(f"{v.name}/zp", self.zp_array(v, qp.zero_point))
            out = self.node("DequantizeLinear", [src, s, z], f"{v.name}/dq", axis=axis)
        else:
            s = self.const(f"{v.name}/scale", np.float32(qp.scale[0]))
            z = self.const(f"{v.name}/zp", self.zp_array(v, qp.zero_point[0]))
            out = self.node("DequantizeLinear", [src, s, z], f"{v.name}/dq")
        if not v.is_const:
            self.floats[v.name] = out
        return out

    def q(self, float_name: str, v: Value) -> None:
        """QuantizeLinear into the integer value's own name."""
        s = self.const(f"{v.name}/scale", np.float32(v.qparams.scale[0]))
        z = self.const(f"{v.name}/zp", self.zp_array(v, v.qparams.zero_point[0]))
        self.nodes.append(self.h.make_node("QuantizeLinear", [float_name, s, z], [v.name],
                                           name=f"{v.name}/q"))

    def q_reshaped(self, float_name: str, v: Value, q_base: str, shape_base: str,
                   reshape_name: str) -> None:
        """QuantizeLinear to ``v``'s parameters, then an integer Reshape into ``v``'s own name
        and shape: for an op computed on another view of ``v`` (a 2-D Gemm, a kept axis)."""
        s = self.const(f"{v.name}/scale", np.float32(v.qparams.scale[0]))
        z = self.const(f"{v.name}/zp", self.zp_array(v, v.qparams.zero_point[0]))
        yq = self.node("QuantizeLinear", [float_name, s, z], q_base)
        self.nodes.append(self.h.make_node("Reshape", [yq, self.const(shape_base, np.asarray(
            v.shape, np.int64))], [v.name], name=reshape_name))

    def dq_weight(self, base: str, q: np.ndarray, scales, axis: int) -> str:
        s = self.const(f"{base}/scale", np.asarray(scales, np.float32))
        z = self.const(f"{base}/zp", np.zeros(len(scales), q.dtype))
        return self.node("DequantizeLinear", [self.const(base, q), s, z], f"{base}/dq",
                         axis=axis)

    def activation(self, y: str, n: Node) -> str:
        """The clamp the integer op applies beyond its dtype range, in float, before Q."""
        v = n.outputs[0]
        info = np.iinfo(v.dtype.numpy)
        lo, hi = n.attrs["act_min"], n.attrs["act_max"]
        s, z = v.qparams.scale[0], v.qparams.zero_point[0]
        if lo <= info.min + (v.dtype == DType.INT16) and hi >= info.max:
            return y
        if lo == z and hi >= info.max:
            return self.node("Relu", [y], f"{n.name}/relu")
        lo_c = self.const(f"{n.name}/min", np.float32((lo - z) * s))
        hi_c = self.const(f"{n.name}/max", np.float32((hi - z) * s))
        return self.node("Clip", [y, lo_c, hi_c], f"{n.name}/clip")


def _channel_axis(v: Value, channels: int) -> int:
    if v.qparams.axis is not None and v.qparams.axis < len(v.shape) and \
            v.shape[v.qparams.axis] == channels:
        return v.qparams.axis
    return next(i for i, d in enumerate(v.shape) if d == channels)


def _bias(b: Builder, n: Node, x: Value, w: Value) -> str:
    s = np.float64(np.float32(x.qparams.scale[0])) * np.asarray(w.qparams.scale, np.float64)
    return b.dq_weight(f"{n.name}/bias", n.inputs[2].const.astype(np.int32),
                       s.astype(np.float32), 0)


def _spatial(n: Node) -> dict:
    keys = ("kernel_shape", "strides", "pads", "dilations", "group", "output_padding")
    return {k: n.attrs[k] for k in keys if k in n.attrs}


@lowering("QConvTranspose", checks=(_ungrouped_transpose,))
@lowering("QConv")
def _conv(b: Builder, n: Node) -> None:
    x, w = n.inputs[0], n.inputs[1]
    axis = 0 if n.op == "QConv" else 1
    wf = b.dq_weight(f"{n.name}/weight", w.const, w.qparams.scale, axis)
    y = b.node("Conv" if n.op == "QConv" else "ConvTranspose", [b.dq(x), wf, _bias(b, n, x, w)],
               n.name, **_spatial(n))
    b.q(b.activation(y, n), n.outputs[0])


@lowering("QGemm")
def _gemm(b: Builder, n: Node) -> None:
    """Gemm on a 2-D view (int8 Reshape in and out for higher ranks: ORT's own 3-D MatMul
    rewrite breaks on int8 QDQ)."""
    x, w, v = n.inputs[0], n.inputs[1], n.outputs[0]
    xin = x.name
    if len(x.shape) != 2:
        flat = (int(np.prod(x.shape[:-1])), x.shape[-1])
        xin = b.node("Reshape", [x.name, b.const(f"{n.name}/flat", np.asarray(flat, np.int64))],
                     f"{n.name}/flatten")
    s = b.const(f"{x.name}/scale2d", np.float32(x.qparams.scale[0]))
    z = b.const(f"{x.name}/zp2d", b.zp_array(x, x.qparams.zero_point[0]))
    xf = b.node("DequantizeLinear", [xin, s, z], f"{x.name}/dq2d")
    wf = b.dq_weight(f"{n.name}/weight", w.const, w.qparams.scale, 0)
    y = b.activation(b.node("Gemm", [xf, wf, _bias(b, n, x, w)], n.name, transB=1), n)
    if len(x.shape) == 2:
        b.q(y, v)
    else:
        b.q_reshaped(y, v, f"{v.name}/q2d", f"{n.name}/unflat", f"{n.name}/unflatten")


@lowering("QMatMul")
def _matmul(b: Builder, n: Node) -> None:
    y = b.node("MatMul", [b.dq(n.inputs[0]), b.dq(n.inputs[1])], n.name)
    b.q(b.activation(y, n), n.outputs[0])


@lowering("QAdd")
def _add(b: Builder, n: Node) -> None:
    a = n.attrs
    subtract = a.get("subtract") if a.get("flavor") == "tflite" else \
        np.any(np.asarray(a["b_mult"]) < 0)
    op = "Sub" if subtract else "Add"
    y = b.node(op, [b.dq(n.inputs[0]), b.dq(n.inputs[1])], n.name)
    b.q(b.activation(y, n), n.outputs[0])


@lowering("QMul")
def _mul(b: Builder, n: Node) -> None:
    y = b.node("Mul", [b.dq(n.inputs[0]), b.dq(n.inputs[1])], n.name)
    b.q(b.activation(y, n), n.outputs[0])


@lowering("QMax", "QMin")
def _min_max(b: Builder, n: Node) -> None:
    """Max / Min of the dequantized inputs, quantized once: ORT rounds where edgeq requantizes
    each input first (within 1 LSB: both round the same real to the output's scale)."""
    y = b.node(n.op[1:], [b.dq(n.inputs[0]), b.dq(n.inputs[1])], n.name)
    b.q(b.activation(y, n), n.outputs[0])


@lowering("QPRelu")
def _prelu(b: Builder, n: Node) -> None:
    y = b.node("PRelu", [b.dq(n.inputs[0]), b.dq(n.inputs[1])], n.name)
    b.q(b.activation(y, n), n.outputs[0])


@lowering("Requantize")
def _requantize(b: Builder, n: Node) -> None:
    b.q(b.activation(b.dq(n.inputs[0]), n), n.outputs[0])


def _mean_axis(n: Node) -> int | None:
    """The one axis a QReduceMean reduces, counted from the end (1: the last), if one."""
    rank = len(n.inputs[0].shape)
    axes = n.attrs.get("axes")
    if n.op != "QReduceMean" or rank < 2 or axes is None or len(axes) != 1:
        return None
    return rank - axes[0] % rank


@lowering("QAveragePool", "QGlobalAveragePool", "QReduceMean")
def _average(b: Builder, n: Node) -> None:
    from_end = _mean_axis(n)
    if from_end == 2:
        # a mean over the second-last axis (a transformer's mean over its tokens) as ones at
        # scale 1/K times the input, fused into QLinearMatMul likewise (uint8 ones: ORT's
        # integer MatMul takes a uint8 left operand)
        x, v = n.inputs[0], n.outputs[0]
        k = x.shape[-2]
        ones = b.dq_weight(f"{n.name}/ones", np.ones((1, k), np.uint8), [1.0 / k], 0)
        y = b.activation(b.node("MatMul", [ones, b.dq(x)], n.name), n)
        if n.attrs.get("keepdims", 1):
            b.q(y, v)
        else:
            b.q_reshaped(y, v, f"{v.name}/q_rows", f"{n.name}/shape", f"{n.name}/squeeze")
        return
    if from_end == 1 and n.attrs.get("keepdims", 1):
        # a mean over the last axis (a LayerNorm's mean and variance) as a MatMul with ones at
        # scale 1/K: ORT fuses it into its integer QLinearMatMul, where a float ReduceMean
        # kept a DequantizeLinear and a QuantizeLinear around it (the zoo transformer block:
        # 74 -> 66 kernels, 215 -> 116-175 us)
        k = n.inputs[0].shape[-1]
        ones = b.dq_weight(f"{n.name}/ones", np.ones((k, 1), np.int8), [1.0 / k], 1)
        y = b.node("MatMul", [b.dq(n.inputs[0]), ones], n.name)
        b.q(b.activation(y, n), n.outputs[0])
        return
    x = b.dq(n.inputs[0])
    if n.op == "QAveragePool":
        attrs = {k: n.attrs[k] for k in ("kernel_shape", "strides", "pads", "ceil_mode",
                                         "count_include_pad") if k in n.attrs}
        if attrs.get("ceil_mode") and attrs.get("count_include_pad") and any(attrs["pads"]):
            # ORT's fused QLinearAveragePool divides a ceil-mode window that overruns the
            # padding by a different count than AveragePool does (38 LSB measured): pad
            # explicitly, which keeps the float AveragePool (the ONNX semantics) unfused
            t, left, bot, r = attrs.pop("pads")
            x = b.node("Pad", [x, b.const(f"{n.name}/pads", np.array(
                [0, 0, t, left, 0, 0, bot, r], np.int64))], f"{n.name}/pad")
            attrs["count_include_pad"] = 0
        y = b.node("AveragePool", [x], n.name, **attrs)
    elif n.op == "QGlobalAveragePool":
        y = b.node("GlobalAveragePool", [x], n.name)
    else:
        axes = n.attrs.get("axes")
        ins = [x] if axes is None else [x, b.const(f"{n.name}/axes", np.asarray(axes, np.int64))]
        y = b.node("ReduceMean", ins, n.name, keepdims=n.attrs.get("keepdims", 1))
    b.q(b.activation(y, n), n.outputs[0])


@lowering("QLookup")
def _lookup(b: Builder, n: Node) -> None:
    """Exact: y = table[x - min(dtype)] as an integer Gather."""
    x = n.inputs[0]
    off = b.node("Cast", [x.name], f"{n.name}/idx", to=6)  # int32
    if x.dtype != DType.INT8:  # int8 is stored as uint8: already an index from 0
        off = b.node("Add", [off, b.const(f"{n.name}/offset", np.int32(-np.iinfo(
            x.dtype.numpy).min))], f"{n.name}/offset_add")
    table = _stored(n.outputs[0], np.asarray(n.attrs["table"]))
    b.nodes.append(b.h.make_node("Gather", [b.const(f"{n.name}/table", table), off],
                                 [n.outputs[0].name], name=n.name, axis=0))


@lowering("QSoftmax")
def _softmax(b: Builder, n: Node) -> None:
    y = b.node("Softmax", [b.dq(n.inputs[0])], n.name, axis=n.attrs["axis"])
    b.q(y, n.outputs[0])


@lowering("QLayerNorm")
def _layer_norm(b: Builder, n: Node) -> None:
    """gamma, beta and epsilon rebuilt from the integer parameters (docs/numerics.md)."""
    x, v = n.inputs[0], n.outputs[0]
    a = n.attrs
    k = x.shape[-1]
    s_x, s_y = x.qparams.scale[0], v.qparams.scale[0]
    m = np.asarray(a["multiplier"], np.float64) * np.exp2(-np.asarray(a["shift"], np.float64))
    gamma = np.broadcast_to(m * s_y / math.sqrt(k), (k,)).copy()
    if a.get("gamma_sign") is not None:
        gamma *= np.asarray(a["gamma_sign"])
    beta = np.zeros(k) if a.get("beta_q") is None else np.asarray(a["beta_q"]) * s_y
    eps = a["eps_q"] * s_x * s_x / k ** 3
    y = b.node("LayerNormalization", [b.dq(x), b.const(f"{n.name}/gamma", gamma.astype(
        np.float32)), b.const(f"{n.name}/beta", beta.astype(np.float32))], n.name, axis=-1,
        epsilon=float(eps))
    b.q(b.activation(y, n), v)


def _int_node(b: Builder, n: Node, op: str, extra: list[str], **attrs) -> None:
    b.nodes.append(b.h.make_node(op, [n.inputs[0].name] + extra,
                                 [v.name for v in n.outputs], name=n.name, **attrs))


@lowering("MaxPool")
def _maxpool(b: Builder, n: Node) -> None:
    keys = ("kernel_shape", "strides", "pads", "dilations", "ceil_mode")
    _int_node(b, n, "MaxPool", [], **{k: n.attrs[k] for k in keys if k in n.attrs})


@lowering("Reshape")
def _reshape(b: Builder, n: Node) -> None:
    _int_node(b, n, "Reshape", [b.const(f"{n.name}/shape", np.asarray(n.attrs["shape"],
                                                                       np.int64))])


@lowering("Transpose")
def _transpose(b: Builder, n: Node) -> None:
    _int_node(b, n, "Transpose", [], perm=list(n.attrs["perm"]))


@lowering("Slice")
def _slice(b: Builder, n: Node) -> None:
    a = n.attrs
    big = np.iinfo(np.int64).max
    ends = [(big if s > 0 else -big) if e is None else e for e, s in zip(a["ends"], a["steps"])]
    ins = [b.const(f"{n.name}/{k}", np.asarray(v, np.int64)) for k, v in
           (("starts", a["starts"]), ("ends", ends), ("axes", a["axes"]), ("steps", a["steps"]))]
    _int_node(b, n, "Slice", ins)


@lowering("Split")
def _split(b: Builder, n: Node) -> None:
    _int_node(b, n, "Split", [b.const(f"{n.name}/split", np.asarray(n.attrs["split"],
                                                                     np.int64))],
              axis=n.attrs["axis"])


@lowering("Concat")
def _concat(b: Builder, n: Node) -> None:
    b.nodes.append(b.h.make_node("Concat", [v.name for v in n.inputs], [n.outputs[0].name],
                                 name=n.name, axis=n.attrs["axis"]))


@lowering("Pad")
def _pad(b: Builder, n: Node) -> None:
    a = n.attrs
    ins = [b.const(f"{n.name}/pads", np.asarray(a["pads"], np.int64))]
    if a.get("mode", "constant") == "constant":
        ins.append(b.const(f"{n.name}/value", _stored(n.inputs[0], np.asarray(
            a.get("value", 0)))))
    _int_node(b, n, "Pad", ins, mode=a.get("mode", "constant"))


@lowering("Gather")
def _gather(b: Builder, n: Node) -> None:
    idx = n.inputs[1]
    name = b.const(f"{n.name}/indices", idx.const) if idx.is_const else idx.name
    _int_node(b, n, "Gather", [name], axis=n.attrs.get("axis", 0))


@lowering("Resize")
def _resize(b: Builder, n: Node) -> None:
    a = n.attrs
    _int_node(b, n, "Resize", ["", "", b.const(f"{n.name}/sizes", np.asarray(a["sizes"],
                                                                              np.int64))],
              mode="nearest", coordinate_transformation_mode=a["coordinate_transformation_mode"],
              nearest_mode=a.get("nearest_mode", "round_prefer_floor"))


@lowering("QResize")
def _qresize(b: Builder, n: Node) -> None:
    """Exact: TFLite's integer bilinear arithmetic spelled in int64 ONNX ops (ORT has no
    integer linear Resize): the four corner rows and columns gathered with the interpreter's
    own index tables, weighted by the 10-bit products, summed, and divided by 2**20 rounding
    half away from zero (``sign(acc) * ((|acc| + 2**19) / 2**20)``, positive division)."""
    x, y = n.inputs[0], n.outputs[0]
    h, w = x.shape[2], x.shape[3]
    oh, ow = n.attrs["sizes"][2], n.attrs["sizes"][3]
    mode = n.attrs["coordinate_transformation_mode"]
    y0, y1, fy = linear_taps(h, oh, mode)
    x0, x1, fx = linear_taps(w, ow, mode)
    xi = b.node("Cast", [x.name], f"{n.name}/wide", to=7)  # int64
    if x.dtype == DType.INT8:  # back to int8 values: the rounding is not shift-invariant
        xi = b.node("Sub", [xi, b.const(f"{n.name}/unshift", np.int64(U8_SHIFT))],
                    f"{n.name}/signed")
    acc = None
    for k, (rows, wr) in enumerate(((y0, 1024 - fy), (y1, fy))):
        r = b.node("Gather", [xi, b.const(f"{n.name}/rows{k}", rows.astype(np.int64))],
                   f"{n.name}/rows{k}", axis=2)
        for j, (cols, wc) in enumerate(((x0, 1024 - fx), (x1, fx))):
            c = b.node("Gather", [r, b.const(f"{n.name}/cols{j}", cols.astype(np.int64))],
                       f"{n.name}/corner{k}{j}", axis=3)
            t = b.node("Mul", [c, b.const(f"{n.name}/weight{k}{j}",
                                          (wr[:, None] * wc[None, :]).astype(np.int64))],
                       f"{n.name}/weighted{k}{j}")
            acc = t if acc is None else b.node("Add", [acc, t], f"{n.name}/sum{k}{j}")
    assert acc is not None
    mag = b.node("Div", [b.node("Add", [b.node("Abs", [acc], f"{n.name}/abs"),
                                        b.const(f"{n.name}/half", np.int64(1 << 19))],
                                f"{n.name}/nudged"), b.const(f"{n.name}/one", np.int64(1 << 20))],
                 f"{n.name}/magnitude")
    q = b.node("Mul", [mag, b.node("Sign", [acc], f"{n.name}/sign")], f"{n.name}/rounded")
    if y.dtype == DType.INT8:
        q = b.node("Add", [q, b.const(f"{n.name}/shift", np.int64(U8_SHIFT))],
                   f"{n.name}/unsigned")
    b.nodes.append(b.h.make_node("Cast", [q], [y.name], name=n.name,
                                 to=_onnx_type(y.dtype, stored=True)))


def _onnx_type(dtype: DType, stored: bool = False) -> int:
    """The ONNX element type of a value's public tensors; ``stored``: inside the artifact,
    where int8 values are uint8 (``U8_SHIFT``)."""
    from onnx import TensorProto

    if stored and dtype == DType.INT8:
        return TensorProto.UINT8
    return {DType.INT8: TensorProto.INT8, DType.INT16: TensorProto.INT16,
            DType.FLOAT32: TensorProto.FLOAT}[dtype]


# int8 values are stored as uint8 (q + 128, zero point + 128: the same reals, exactly). On
# x86, ORT rewrites int8 QDQ activations to uint8 itself (its S8-to-U8 transformer), but not a
# QuantizeLinear read by two DequantizeLinears (a residual's skip value): the convolutions and
# the Add beside every residual then had mixed types and stayed float Conv / Add in the
# optimized graph (6 convolutions and 3 Adds of the zoo MobileNetV2, ORT 1.32). Stored as
# uint8, every QDQ group fuses into ORT's integer kernels. Public int8 tensors are converted
# at the edges: a per-layer model's inputs and outputs by Cast to int16, +-128, Cast; the whole
# model's ``_q`` outputs by one QuantizeLinear of its float outputs.
U8_SHIFT = 128


def _stored(v: Value, q: np.ndarray) -> np.ndarray:
    """Integers of value ``v`` as the artifact stores them."""
    if v.dtype == DType.INT8:
        return (np.asarray(q).astype(np.int16) + U8_SHIFT).astype(np.uint8)
    return np.asarray(q).astype(v.dtype.numpy)


def _to_stored(b: Builder, public: str, stored: str, base: str) -> None:
    """int8 tensor ``public`` -> its uint8 twin ``stored``."""
    from onnx import TensorProto

    wide = b.node("Cast", [public], f"{base}/wide", to=TensorProto.INT16)
    up = b.node("Add", [wide, b.const(f"{base}/shift", np.int16(U8_SHIFT))], f"{base}/up")
    b.nodes.append(b.h.make_node("Cast", [up], [stored], name=f"{base}/to_u8",
                                 to=TensorProto.UINT8))


def _to_public(b: Builder, stored: str, public: str, base: str) -> None:
    """uint8 tensor ``stored`` -> the int8 tensor ``public``."""
    from onnx import TensorProto

    wide = b.node("Cast", [stored], f"{base}/wide", to=TensorProto.INT16)
    down = b.node("Sub", [wide, b.const(f"{base}/shift", np.int16(U8_SHIFT))], f"{base}/down")
    b.nodes.append(b.h.make_node("Cast", [down], [public], name=base, to=TensorProto.INT8))


def lower_graph(graph: Graph, nodes: list[Node] | None = None,
                int_inputs: list[Value] | None = None) -> object:
    """The whole graph (float inputs quantized inside, outputs ``name`` dequantized plus
    ``name_q`` integer), or -- for per-layer checks -- just ``nodes`` reading ``int_inputs``."""
    from onnx import helper

    b = Builder(graph)
    inputs = []
    if int_inputs is None:
        for v in graph.inputs:
            inputs.append(helper.make_tensor_value_info(f"{v.name}", _onnx_type(DType.FLOAT32),
                                                        list(v.shape)))
        # the float input keeps the public name; its quantized twin gets the integer name
        renamed = {v.name: f"{v.name}__int" for v in graph.inputs}
        for v in graph.inputs:
            s = b.const(f"{v.name}/scale", np.float32(v.qparams.scale[0]))
            z = b.const(f"{v.name}/zp", b.zp_array(v, v.qparams.zero_point[0]))
            b.nodes.append(helper.make_node("QuantizeLinear", [v.name, s, z], [renamed[v.name]],
                                            name=f"{v.name}/q"))
    edges: set[int] = set()  # the public int8 <-> stored uint8 conversions (not renamed)

    def edge(convert, *args) -> None:
        start = len(b.nodes)
        convert(b, *args)
        edges.update(id(nd) for nd in b.nodes[start:])
    if int_inputs is not None:
        renamed = {v.name: f"{v.name}__u8" for v in int_inputs if v.dtype == DType.INT8}
        for v in int_inputs:
            inputs.append(helper.make_tensor_value_info(v.name, _onnx_type(v.dtype),
                                                        list(v.shape)))
            if v.name in renamed:
                edge(_to_stored, v.name, renamed[v.name], f"{v.name}/in")
    for n in nodes if nodes is not None else graph.nodes:
        LOWER[n.op].emit(b, n)
    outputs = []
    if nodes is None:
        for v in graph.outputs:
            outputs.append(helper.make_tensor_value_info(f"{v.name}_q", _onnx_type(v.dtype),
                                                         list(v.shape)))
            if v.dtype != DType.INT8:  # int8: requantized from the float output below
                b.nodes.append(helper.make_node("Identity", [v.name], [f"{v.name}_q"],
                                                name=f"{v.name}/int_out"))
        outputs = [helper.make_tensor_value_info(v.name, _onnx_type(DType.FLOAT32),
                                                 list(v.shape)) for v in graph.outputs] + outputs
        # dequantized outputs under the public names: rename integer tensors to avoid clashes
        int_names = {v.name: f"{v.name}__int" for v in graph.outputs}
        renamed.update(int_names)
        for v in graph.outputs:
            s = b.const(f"{v.name}/scale", np.float32(v.qparams.scale[0]))
            z = b.const(f"{v.name}/zp", b.zp_array(v, v.qparams.zero_point[0]))
            b.nodes.append(helper.make_node("DequantizeLinear", [int_names[v.name], s, z],
                                            [v.name], name=f"{v.name}/dq_out"))
            if v.dtype == DType.INT8:
                # the int8 output from the float one, which holds (u - zp_u8) * s exactly
                # enough: round(((u - zp_u8) * s) / s) + zp = the int8 value, one node
                zs = b.const(f"{v.name}/zp_int8", np.int8(v.qparams.zero_point[0]))
                q = helper.make_node("QuantizeLinear", [v.name, s, zs], [f"{v.name}_q"],
                                     name=f"{v.name}/int_out")
                b.nodes.append(q)
                edges.add(id(q))  # reads the public float name
    else:
        outputs = [helper.make_tensor_value_info(v.name, _onnx_type(v.dtype), list(v.shape))
                   for n in nodes for v in n.outputs]
        for n in nodes:
            for v in n.outputs:
                if v.dtype == DType.INT8:
                    renamed[v.name] = f"{v.name}__u8"
                    edge(_to_public, renamed[v.name], v.name, f"{v.name}/out")
    for node in b.nodes:  # apply the renames (graph input/output names are public)
        if node.op_type in ("QuantizeLinear",) and node.output[0] in renamed.values():
            continue
        if id(node) in edges:
            continue
        if node.name.endswith("/dq_out"):
            continue
        for i, x in enumerate(node.input):
            if x in renamed:
                node.input[i] = renamed[x]
        for i, x in enumerate(node.output):
            if x in renamed:
                node.output[i] = renamed[x]
    g = helper.make_graph(b.nodes, graph.name, inputs, outputs, b.inits)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="edgeq")
    model.ir_version = 10
    helper.set_model_props(model, {"edgeq.ort_session_config": SESSION_CONFIG,
                                   "edgeq.rounding": graph.metadata.get("rounding", "edgeq")})
    return model
