"""Integer graph (quantized with ``rounding="tflite"``) -> a .tflite flatbuffer, NHWC.

Written with the schema's object API from the ``tflite-micro`` wheel; no TensorFlow needed.
The integer graph already follows TFLite's int8 arithmetic op by op (its multipliers, ADD's
20-bit left shift, AVERAGE_POOL's rounding division), so the reference kernels reproduce the
integer interpreter bit for bit. 4-D activations are NHWC; padding is TFLite's SAME or VALID
when edgeq's explicit pads match one of them, else an explicit PADV2. Activations are int8,
except that requantization (QUANTIZE) and data movement also take int16 (``int16_ops``): a
detector's final Concat of boxes and scores stays int16 to the graph output.

Each op's lowering is one function in ``LOWER``, registered (``@lowering``) with its support
checks: ``check(node, nhwc) -> reason | None``, whose docstring states the limit (and is the
condition docs/supported_ops.md lists); ``nhwc`` is the layout analysis (``nhwc_values``).
``NODE_CHECKS`` apply to every node, ``GRAPH_CHECKS`` to the whole graph. With
``--allow-fallback``, ops in ``FALLBACK`` run as float islands where ``FALLBACK_OK`` says so.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from edgeq.backends.base import Lowering, Refusal, integer_graph, lowering_registry
from edgeq.ops import has
from edgeq.ops.resize import resize
from edgeq.ir.graph import DType, Graph, Node, Value
from edgeq.numerics.dyadic import effective_scale, quantize_multiplier, rescale
from edgeq.numerics.scheme import INT_RANGE

Check = Callable[[Node, "set[str]"], "str | None"]
GraphCheck = Callable[[Graph], "str | None"]
NO_LOWERING = "no TFLite lowering for this op"
NCHW_TO_NHWC = [0, 2, 3, 1]
NHWC_TO_NCHW = [0, 3, 1, 2]
AXIS_TO_NHWC = {0: 0, 1: 3, 2: 1, 3: 2}


LOWER: dict[str, Lowering] = {}
_lowering = lowering_registry(LOWER)


def lowering(*ops: str, checks: tuple[Check, ...] = (), int16: bool = False
             ) -> Callable[[Callable], Callable]:
    """``@lowering("QGemm", checks=(...))``: the decorated function is the TFLite lowering of
    ``ops`` (its checks take the node and the NHWC values); an op that neither runs NHWC nor
    carries the layout must list ``_logical_layout``."""
    for op in ops:
        if not _layout_safe(op) and _logical_layout not in checks:
            raise ValueError(f"TFLite lowering of {op}: list _logical_layout in its checks")
    return _lowering(*ops, checks=checks, int16=int16)


def _schema():
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as s

    return s


def same_pads(in_hw, k, s, d) -> list[int]:
    """TFLite's SAME padding as explicit [top, left, bottom, right]."""
    out = []
    for i in range(2):
        o = -(-in_hw[i] // s[i])
        total = max(0, (o - 1) * s[i] + (k[i] - 1) * d[i] + 1 - in_hw[i])
        out.append((total // 2, total - total // 2))
    return [out[0][0], out[1][0], out[0][1], out[1][1]]


def _nhwc_op(op: str) -> bool:
    """Laid out NHWC in TFLite (the op's ``image`` trait)."""
    return has(op, "image")


def _carries_layout(op: str) -> bool:
    """Runs in any layout and carries it along: element-wise ops, and ops whose layout enters
    only through an axis attribute the lowering permutes."""
    return has(op, "elementwise") or has(op, "axis_attr")


def _layout_safe(op: str) -> bool:
    """Lowered for NHWC tensors too: runs NHWC, carries the layout or converts it."""
    return _nhwc_op(op) or _carries_layout(op) or has(op, "reorders")


def nhwc_values(graph: Graph) -> set[str]:
    """Names of the 4-D values laid out NHWC: those a spatial op reads or writes, and every 4-D
    value joined to them through layout-agnostic ops. Other values (attention scores, 5-D
    reshapes) keep their logical layout."""
    out: set[str] = set()
    for n in graph.nodes:
        if _nhwc_op(n.op):
            out.update(v.name for v in (n.inputs[0], n.outputs[0]))
    changed = True
    while changed:
        changed = False
        for n in graph.nodes:
            if not _carries_layout(n.op):
                continue
            vals = [v for v in n.inputs + n.outputs if v is not None and not v.is_const and
                    len(v.shape) == 4]
            if any(v.name in out for v in vals) and not all(v.name in out for v in vals):
                out.update(v.name for v in vals)
                changed = True
    return out


# --- graph-wide checks (each returns the reason it fails, or None) ----------------------------
def _tflite_rounding(graph: Graph) -> str | None:
    """The integer model follows TFLite's requantization rule (``--rounding tflite``, which
    export picks for a TFLite target): exactness needs TFLite's rounding."""
    if graph.metadata.get("quantized") == "int" and graph.metadata.get("rounding") != "tflite":
        return ("quantize with --rounding tflite: TFLite's kernels round differently from "
                "edgeq's rule, and exactness needs the integer model to follow theirs")
    return None


GRAPH_CHECKS: tuple[GraphCheck, ...] = (integer_graph, _tflite_rounding)


# --- node checks --------------------------------------------------------------------------------
def int16_ops() -> list[str]:
    """Ops whose TFLite form takes int16 tensors (``@lowering(..., int16=True)``): QUANTIZE
    (requantization) and data movement; a detector's final Concat of boxes and scores stays
    int16 through them to the graph output."""
    return sorted(op for op, lw in LOWER.items() if lw.int16)


def _activation_types(n: Node, nhwc: set[str]) -> str | None:
    """Every activation it reads or writes is int8, except in Requantize (QUANTIZE) and data
    movement (Concat, Reshape, Transpose, Split, Slice), which take int16 too: symmetric, zero
    point 0 (TFLite's int16 QUANTIZE, CONCATENATION and MAXIMUM require it), a Concat's inputs
    at the output's scale (int16 CONCATENATION copies, it does not rescale)."""
    wide = [v for v in n.inputs + n.outputs
            if v is not None and not v.is_const and v.dtype != DType.INT8]
    if not wide:
        return None
    lw = LOWER.get(n.op)
    if lw is None or not lw.int16 or any(v.dtype != DType.INT16 for v in wide):
        return (f"int16 activations are not lowered to TFLite here ({wide[0].name} is "
                f"{wide[0].dtype.value}; only {', '.join(int16_ops())} take int16)")
    for v in wide:
        if any(int(z) != 0 for z in v.qparams.zero_point):
            return (f"{v.name} is int16 with zero point {list(v.qparams.zero_point)}: "
                    f"TFLite's int16 kernels require zero point 0")
    y = n.outputs[0]
    if n.op == "Concat" and any(v.qparams != y.qparams for v in n.inputs):
        return "int16 CONCATENATION does not rescale: every input needs the output's scale"
    return None


NODE_CHECKS: tuple[Check, ...] = (_activation_types,)


def pool_pads(n: Node) -> list[int]:
    """[top, left, bottom, right] padding after which a VALID pool gives the node's output
    size: edgeq's pads, bottom and right extended over ceil_mode's extra cells, or shortened
    where the last window ends before them."""
    a, x, y = n.attrs, n.inputs[0], n.outputs[0]
    k, s, p = a["kernel_shape"], a["strides"], a["pads"]
    d = a.get("dilations", [1, 1])
    end = [max(0, (y.shape[2 + i] - 1) * s[i] + (k[i] - 1) * d[i] + 1 - x.shape[2 + i] - p[i])
           for i in range(2)]
    return [p[0], p[1], end[0], end[1]]


def _padding_not_counted(n: Node, nhwc: set[str]) -> str | None:
    """Padding is left out of the average (``count_include_pad=0``, quantized with
    ``--rounding tflite``): AVERAGE_POOL_2D divides by the valid count."""
    if n.attrs.get("flavor") != "tflite":
        return "average pooling that counts padding has no TFLite form"
    return None


def _undilated_pool(n: Node, nhwc: set[str]) -> str | None:
    """No dilation: MAX_POOL_2D has none."""
    if list(n.attrs.get("dilations", [1, 1])) != [1, 1]:
        return "dilated max pooling has no TFLite form"
    return None


def average_pool_mirrors(n: Node) -> tuple[bool, bool] | None:
    """Per spatial axis, whether AVERAGE_POOL_2D runs on it reversed: TFLite's SAME puts the
    larger half of the padding after the input, edgeq's pads (``pool_pads``, ceil_mode's cells
    included) may put it before, and reversing the axis swaps the two. None when the padding
    is neither SAME nor its mirror image; (False, False) for SAME as is and for VALID."""
    pads = pool_pads(n)
    if not any(pads):
        return False, False
    same = same_pads(n.inputs[0].shape[2:], n.attrs["kernel_shape"], n.attrs["strides"], [1, 1])
    out = []
    for i in range(2):
        mine, theirs = (pads[i], pads[i + 2]), (same[i], same[i + 2])
        if mine != theirs and mine[::-1] != theirs:
            return None
        out.append(mine != theirs)
    return out[0], out[1]


def _average_pool_pads(n: Node, nhwc: set[str]) -> str | None:
    """The padding the windows need (``pool_pads``: edgeq's pads with ceil_mode's cells) is
    none (VALID) or, per axis, TFLite's SAME or its mirror image (``average_pool_mirrors``):
    AVERAGE_POOL_2D leaves padding out of the count only with SAME, and the cells of an
    explicit PAD would be counted (ONNX counts neither padding nor ceil_mode's cells)."""
    if average_pool_mirrors(n) is None:
        same = same_pads(n.inputs[0].shape[2:], n.attrs["kernel_shape"], n.attrs["strides"],
                         [1, 1])
        return (f"average pooling padding {pool_pads(n)} (ceil_mode's cells included) is "
                f"neither TFLite's SAME {same}, its mirror image, nor VALID: AVERAGE_POOL_2D "
                f"would count an explicit pad")
    return None


def _fc_rank_at_most_4(n: Node, nhwc: set[str]) -> str | None:
    """An input of rank <= 4 (FULLY_CONNECTED)."""
    if len(n.inputs[0].shape) > 4:
        return "fully connected layers on inputs of rank > 4"
    return None


def _per_tensor_multiplier(n: Node, nhwc: set[str]) -> str | None:
    """The second operand has one scale: MUL has no per-channel form (with
    ``--allow-fallback`` a constant per-channel multiplier runs in float)."""
    if len(n.inputs[1].qparams.scale if n.inputs[1].qparams else ()) > 1:
        return "per-channel constant multipliers have no TFLite MUL form"
    return None


def _nearest_pixels_match(n: Node, nhwc: set[str]) -> str | None:
    """Nearest resizing of H and W only, where some align_corners / half_pixel_centers setting
    of RESIZE_NEAREST_NEIGHBOR picks the same source pixels (``resize_flags``)."""
    if resize_flags(n) is None:
        return ("no TFLite RESIZE_NEAREST_NEIGHBOR mode picks the same source pixels "
                f"(mode {n.attrs.get('mode')!r}, "
                f"{n.attrs.get('coordinate_transformation_mode')!r})")
    return None


def _tflite_softmax(n: Node, nhwc: set[str]) -> str | None:
    """TFLite's int8 softmax arithmetic (quantized with ``--rounding tflite``)."""
    if n.attrs.get("flavor") != "tflite":
        return "edgeq's integer softmax is not TFLite's: quantize with --rounding tflite"
    return None


def _logical_layout(n: Node, nhwc: set[str]) -> str | None:
    """No tensor it reads or writes is laid out NHWC (``nhwc_values``: it meets no
    convolution, pooling, pad or resize through layout-agnostic ops): it is lowered for
    logical layouts only."""
    if not _layout_safe(n.op) and any(v is not None and v.name in nhwc
                                      for v in n.inputs + n.outputs):
        return ("a tensor it reads or writes is laid out NHWC in TFLite (it meets a "
                "convolution, pooling or pad) and this op is lowered for logical layouts "
                "only")
    return None


def _mean_as_fc(n: Node, nhwc: set[str]) -> str | None:
    """TFLite's arithmetic for means (a FULLY_CONNECTED layer of ones; quantized with
    ``--rounding tflite``): TFLite's MEAN requantizes in float."""
    if "fc_weight_scale" not in n.attrs:
        return "mean without TFLite's arithmetic: quantize with --rounding tflite"
    return None


def _batch_matmul_operands(n: Node, nhwc: set[str]) -> str | None:
    """Two activations with equal batch dimensions (BATCH_MATMUL; constant right operands
    become QGemm)."""
    if n.inputs[1].is_const or list(n.inputs[0].shape[:-2]) != list(n.inputs[1].shape[:-2]):
        return "BATCH_MATMUL needs two activations with equal batch dimensions"
    return None


def _constant_nonnegative_pads(n: Node, nhwc: set[str]) -> str | None:
    """Constant, non-negative padding (PADV2): no reflect or edge mode, no cropping."""
    if n.attrs.get("mode", "constant") != "constant" or min(n.attrs["pads"]) < 0:
        return "only constant, non-negative padding is lowered"
    return None


def supports(graph: Graph, fallback: bool = False) -> list[Refusal]:
    """One refusal per graph-wide check that fails and per node TFLite's integer kernels cannot
    take. With ``fallback``, nodes that can run as a float island (DEQUANTIZE -> float builtin
    -> QUANTIZE) are not listed."""
    reasons = [Refusal("", "", why) for check in GRAPH_CHECKS if (why := check(graph))]
    nhwc = nhwc_values(graph)
    keep_float = {n.name for n in fallback_nodes(graph)} if fallback else set()
    for n in graph.nodes:
        why = _node_reason(n, nhwc)
        if why and n.name not in keep_float:
            reasons.append(Refusal(n.op, n.name, why))
    return reasons


def _node_reason(n: Node, nhwc: set[str]) -> str | None:
    """Why TFLite's integer kernels cannot take node ``n`` (None if they can): no lowering,
    else the first of ``NODE_CHECKS`` and the lowering's checks that fails."""
    lw = LOWER.get(n.op)
    if lw is None:
        return NO_LOWERING
    for check in NODE_CHECKS:
        why = check(n, nhwc)
        if why:
            return why
    return lw.refusal(n, nhwc)


def fallback_nodes(graph: Graph) -> list[Node]:
    """Nodes TFLite's integer kernels cannot take but its float kernels can, as float islands
    (``--allow-fallback``)."""
    if graph.metadata.get("rounding") != "tflite":
        return []
    nhwc = nhwc_values(graph)
    return [n for n in graph.nodes if n.op in FALLBACK and FALLBACK_OK[n.op](n)
            and _node_reason(n, nhwc)]


class Writer:
    def __init__(self, graph: Graph, layout: set[str] | None = None):
        self.s = _schema()
        self.graph = graph
        self.tensors: list = []
        self.buffers: list = [self.s.BufferT()]  # buffer 0: the empty buffer
        self.ops: list = []
        self.op_codes: list = []
        self.code_index: dict[int, int] = {}
        self.index: dict[str, int] = {}
        # ``layout``: the NHWC values of a larger graph this one is cut from (a layer profiled
        # alone keeps the layout it has in the model)
        self.nhwc = nhwc_values(graph) if layout is None else \
            {name for name in layout if name in graph.values}

    # --- tensors ------------------------------------------------------------------------------
    def _qparams(self, scale, zp, dim=0):
        q = self.s.QuantizationParametersT()
        q.scale = [float(x) for x in scale]
        q.zeroPoint = [int(z) for z in zp]
        q.quantizedDimension = dim
        return q

    def tensor(self, name: str, shape, dtype, data: np.ndarray | None = None, q=None) -> int:
        t = self.s.TensorT()
        t.name = name
        t.shape = [int(d) for d in shape]
        t.type = {np.dtype("int8"): self.s.TensorType.INT8,
                  np.dtype("int16"): self.s.TensorType.INT16,
                  np.dtype("int32"): self.s.TensorType.INT32,
                  np.dtype("float32"): self.s.TensorType.FLOAT32}[np.dtype(dtype)]
        t.buffer = 0
        if data is not None:
            b = self.s.BufferT()
            # a numpy array packs as one vector (a list packs element by element: slow)
            b.data = np.ascontiguousarray(data, dtype).reshape(-1).view(np.uint8)
            self.buffers.append(b)
            t.buffer = len(self.buffers) - 1
        t.quantization = q
        self.tensors.append(t)
        return len(self.tensors) - 1

    @staticmethod
    def nhwc_shape(shape) -> list[int]:
        return [shape[i] for i in NCHW_TO_NHWC] if len(shape) == 4 else list(shape)

    def shape_of(self, v: Value) -> list[int]:
        """The TFLite shape of an activation: NHWC for image tensors, else as is."""
        return self.nhwc_shape(v.shape) if v.name in self.nhwc else list(v.shape)

    def const_nhwc(self, v: Value) -> bool:
        return any(u.outputs[0].name in self.nhwc for u, _ in v.uses)

    def act(self, v: Value) -> int:
        """The tensor of an integer activation value (created on first use)."""
        if v.name in self.index:
            return self.index[v.name]
        if v.is_const:
            data = v.const
            if data.ndim == 4 and self.const_nhwc(v):
                data = data.transpose(NCHW_TO_NHWC)
            qp = v.qparams
            i = self.tensor(v.name, data.shape, data.dtype, data,
                            self._qparams(qp.scale, qp.zero_point) if qp else None)
        else:
            i = self.like(v.name, self.shape_of(v), v)
        self.index[v.name] = i
        return i

    def like(self, name: str, shape, v: Value) -> int:
        """A new activation tensor of ``shape`` with ``v``'s type and quantization."""
        return self.tensor(name, shape, v.dtype.numpy, None,
                           self._qparams(v.qparams.scale, v.qparams.zero_point))

    # --- float islands (--allow-fallback) ------------------------------------------------------
    def dequantized(self, v: Value) -> int:
        """A float32 tensor holding ``v`` dequantized (constants: stored dequantized)."""
        qp = v.qparams
        if v.is_const:
            data = (v.const.astype(np.float64) - np.asarray(qp.zero_point, np.float64).reshape(
                [-1] + [1] * (v.const.ndim - 1)) if len(qp.zero_point) > 1 else
                v.const.astype(np.float64) - qp.zero_point[0])
            scale = np.asarray(qp.scale, np.float64)
            data = data * (scale.reshape([-1] + [1] * (v.const.ndim - 1)) if scale.size > 1
                           else scale[0])
            if self.const_nhwc(v) and data.ndim <= 4:  # broadcast against an NHWC tensor
                data = data.reshape((1,) * (4 - data.ndim) + data.shape).transpose(
                    NCHW_TO_NHWC)
            return self.tensor(f"{v.name}/float", data.shape, np.float32,
                               data.astype(np.float32))
        t = self.tensor(f"{v.name}/float", self.shape_of(v), np.float32)
        self.op(self.s.BuiltinOperator.DEQUANTIZE, [self.act(v)], [t])
        return t

    def requantized(self, float_tensor: int, v: Value) -> None:
        self.op(self.s.BuiltinOperator.QUANTIZE, [float_tensor], [self.act(v)])

    def const_i32(self, name: str, data) -> int:
        a = np.asarray(data, np.int32)
        return self.tensor(name, a.shape, np.int32, a)

    # --- operators ----------------------------------------------------------------------------
    def op(self, code: int, inputs: list[int], outputs: list[int], opt_type=0, options=None):
        if code not in self.code_index:
            oc = self.s.OperatorCodeT()
            oc.builtinCode = code
            oc.deprecatedBuiltinCode = min(code, 127)
            oc.version = 1
            self.op_codes.append(oc)
            self.code_index[code] = len(self.op_codes) - 1
        o = self.s.OperatorT()
        o.opcodeIndex = self.code_index[code]
        o.inputs, o.outputs = inputs, outputs
        o.builtinOptionsType = opt_type
        o.builtinOptions = options
        self.ops.append(o)

    def fused(self, n: Node) -> int:
        """The fused activation whose clamp equals the integer op's [act_min, act_max]."""
        af = self.s.ActivationFunctionType
        v = n.outputs[0]
        s, z = v.qparams.scale[0], v.qparams.zero_point[0]
        lo, hi = n.attrs.get("act_min", -128), n.attrs.get("act_max", 127)
        six = min(127, z + int(np.floor(6.0 / s + 0.5)))
        for fn, bounds in ((af.NONE, (-128, 127)), (af.RELU, (max(-128, z), 127)),
                           (af.RELU6, (max(-128, z), six))):
            if (lo, hi) == bounds:
                return fn
        raise ValueError(f"{n.op} '{n.name}': clamp [{lo}, {hi}] is not a TFLite activation")

    def weights_and_bias(self, name: str, x: Value, kq: np.ndarray, scales, bias: np.ndarray,
                         qdim: int = 0) -> tuple[int, int]:
        """Per-channel int8 weights ``kq`` (channels on ``qdim``, zero points 0) and the int32
        bias at ``s_x * s_w[c]`` (a double product of float32 scales, as TFLite forms it)."""
        wi = self.tensor(f"{name}/weight", kq.shape, np.int8, kq,
                         self._qparams(scales, [0] * len(scales), qdim))
        bscale = [float(np.float64(np.float32(x.qparams.scale[0])) * np.float32(sc))
                  for sc in scales]
        bi = self.tensor(f"{name}/bias", bias.shape, np.int32, bias,
                         self._qparams(bscale, [0] * len(bscale)))
        return wi, bi

    def reversed_hw(self, name: str, src: int, v: Value, axes: tuple[bool, bool],
                    into: int | None = None) -> int:
        """The NHWC tensor ``src`` (holding ``v``) reversed along H and/or W (``axes``): a
        STRIDED_SLICE with stride -1 there and every bit of its begin and end masks set."""
        s = self.s
        if into is None:
            into = self.tensor(name, self.shape_of(v), np.int8, None,
                               self._qparams(v.qparams.scale, v.qparams.zero_point))
        o = s.StridedSliceOptionsT()
        o.beginMask = o.endMask = 0b1111
        strides = [1, -1 if axes[0] else 1, -1 if axes[1] else 1, 1]
        self.op(s.BuiltinOperator.STRIDED_SLICE,
                [src, self.const_i32(f"{name}/begin", [0] * 4),
                 self.const_i32(f"{name}/end", [0] * 4),
                 self.const_i32(f"{name}/strides", strides)],
                [into], s.BuiltinOptions.StridedSliceOptions, o)
        return into

    def padded_input(self, n: Node, x: Value, pads, k, strides, dil, pad_value: int):
        """(input tensor, Padding enum): SAME/VALID if they match, else an explicit PADV2."""
        P = self.s.Padding
        if not any(pads):
            return self.act(x), P.VALID
        if list(pads) == same_pads(x.shape[2:], k, strides, dil):
            return self.act(x), P.SAME
        t, l_, b, r = pads
        paddings = self.const_i32(f"{n.name}/paddings", [[0, 0], [t, b], [l_, r], [0, 0]])
        shape = self.nhwc_shape(x.shape)
        shape[1] += t + b
        shape[2] += l_ + r
        out = self.tensor(f"{n.name}/padded", shape, np.int8, None,
                          self._qparams(x.qparams.scale, x.qparams.zero_point))
        self.pad_op(x, paddings, pad_value, out, n.name)
        return out, P.VALID

    def pad_op(self, x: Value, paddings: int, pad_value: int, out: int, name: str) -> None:
        """PAD when the value is ``x``'s zero point (TFLite's quantized PAD pads with the
        output zero point; XNNPACK takes PAD into its partition, not PADV2: the zoo
        MobileNetV2 ran in 6 delegate partitions split by 4 PADV2s), else PADV2."""
        zp = int(np.asarray(x.qparams.zero_point).reshape(-1)[0])
        if pad_value == zp:
            self.op(self.s.BuiltinOperator.PAD, [self.act(x), paddings], [out],
                    self.s.BuiltinOptions.PadOptions, self.s.PadOptionsT())
            return
        value = self.tensor(f"{name}/pad_value", [], np.int8, np.asarray(pad_value, np.int8),
                            self._qparams(x.qparams.scale, x.qparams.zero_point))
        self.op(self.s.BuiltinOperator.PADV2, [self.act(x), paddings, value], [out],
                self.s.BuiltinOptions.PadV2Options, self.s.PadV2OptionsT())


@lowering("QConv")
def _conv(w: Writer, n: Node) -> None:
    """CONV_2D, grouped or not (the filter's input depth is C / group: LiteRT's reference
    kernel and TFLite Micro take groups natively), or DEPTHWISE_CONV_2D for one group per
    input channel with one input channel per filter."""
    s = w.s
    a = n.attrs
    x, wt, b = n.inputs
    y = n.outputs[0]
    xin, padding = w.padded_input(n, x, a["pads"], a["kernel_shape"], a["strides"],
                                  a["dilations"], a["x_zp"])
    depthwise = a["group"] != 1 and a["group"] == x.shape[1] and wt.shape[1] == 1
    kq = wt.const
    if depthwise:  # (C*mult, 1, kh, kw) -> (1, kh, kw, C*mult), channels on dim 3
        kq = kq.transpose(1, 2, 3, 0)
        qdim = 3
    else:  # OIHW -> OHWI
        kq = kq.transpose(0, 2, 3, 1)
        qdim = 0
    wi, bi = w.weights_and_bias(n.name, x, kq, wt.qparams.scale, b.const, qdim)
    if depthwise:
        o = s.DepthwiseConv2DOptionsT()
        o.depthMultiplier = wt.shape[0] // x.shape[1]
        code, otype = s.BuiltinOperator.DEPTHWISE_CONV_2D, s.BuiltinOptions.DepthwiseConv2DOptions
    else:
        o = s.Conv2DOptionsT()
        code, otype = s.BuiltinOperator.CONV_2D, s.BuiltinOptions.Conv2DOptions
    o.padding = padding
    o.strideH, o.strideW = a["strides"]
    o.dilationHFactor, o.dilationWFactor = a["dilations"]
    o.fusedActivationFunction = w.fused(n)
    w.op(code, [xin, wi, bi], [w.act(y)], otype, o)


def _tfl_window(same: bool, size: int, k: int, stride: int) -> tuple[int, int]:
    """TFLite's window count over ``size`` and the padding before it (``ComputeOutSize`` and
    ``ComputePaddingHeightWidth``, C division), for SAME or VALID."""
    num = size + stride - 1 if same else size + stride - k
    count = num // stride if num >= 0 else -(-num // stride)
    return count, max(0, (count - 1) * stride + k - size) // 2


def transpose_conv_plan(n: Node) -> tuple[bool, list[int], list[int]] | None:
    """How TRANSPOSE_CONV gives QConvTranspose's output: (SAME or not, the H and W it writes,
    the top and left rows and columns a STRIDED_SLICE then crops), None if it cannot.

    TRANSPOSE_CONV writes the full scatter (``stride * (in - 1) + k``, a dilated ``k`` spread
    out) shifted up and left by the padding TFLite derives from the size it writes, which must
    give back the input size (``_tfl_window``); rows past the scatter hold the bias alone, as
    ONNX's ``output_padding`` rows do."""
    a, x, y = n.attrs, n.inputs[0], n.outputs[0]
    k = [(a["kernel_shape"][i] - 1) * a["dilations"][i] + 1 for i in range(2)]
    s, p = a["strides"], a["pads"]
    out = list(y.shape[2:])
    for same in (True, False):
        if all(_tfl_window(same, out[i], k[i], s[i]) == (x.shape[2 + i], p[i])
               for i in range(2)):
            return same, out, [0, 0]
    written = [max(s[i] * (x.shape[2 + i] - 1) + k[i], p[i] + out[i]) for i in range(2)]
    if any(_tfl_window(False, written[i], k[i], s[i]) != (x.shape[2 + i], 0) for i in range(2)):
        return None
    return False, written, [p[0], p[1]]


def _transpose_conv_reach(n: Node, nhwc: set[str]) -> str | None:
    """The output ends less than ``stride`` rows and columns past the full scatter
    (``output_padding - pads_end < stride``): TRANSPOSE_CONV writes no further."""
    if transpose_conv_plan(n) is None:
        return (f"output_padding {n.attrs['output_padding']} reaches a stride or more past "
                f"the transposed convolution's full output: TRANSPOSE_CONV writes no further")
    return None


@lowering("QConvTranspose", checks=(_transpose_conv_reach,))
def _conv_transpose(w: Writer, n: Node) -> None:
    """TRANSPOSE_CONV, one per group (SPLIT_V of the input channels, CONCATENATION of the
    outputs: the op has no groups); a dilated kernel is the undilated one with zeros between
    its taps (the op has no dilation). ``transpose_conv_plan`` gives its padding and, when
    neither SAME nor VALID crops as edgeq's pads do, the STRIDED_SLICE that does."""
    s = w.s
    a = n.attrs
    x, wt, b = n.inputs
    y = n.outputs[0]
    plan = transpose_conv_plan(n)
    assert plan is not None
    same, written, crop = plan
    g, (cin, mg) = a["group"], wt.shape[:2]
    cg, d = cin // g, a["dilations"]
    kd = np.zeros((cin, mg) + tuple((a["kernel_shape"][i] - 1) * d[i] + 1 for i in range(2)),
                  np.int8)
    kd[:, :, ::d[0], ::d[1]] = wt.const
    qx = w._qparams(x.qparams.scale, x.qparams.zero_point)
    qy = w._qparams(y.qparams.scale, y.qparams.zero_point)
    shape_x, shape_y = w.shape_of(x), w.shape_of(y)
    whole = [shape_y[0], written[0], written[1], shape_y[3]]
    cropped = whole != shape_y
    out = w.tensor(f"{n.name}/uncropped", whole, np.int8, None, qy) if cropped else w.act(y)
    ins, outs = [w.act(x)], [out]
    if g > 1:
        ins = [w.tensor(f"{n.name}/group{i}_in", shape_x[:3] + [cg], np.int8, None, qx)
               for i in range(g)]
        outs = [w.tensor(f"{n.name}/group{i}_out", whole[:3] + [mg], np.int8, None, qy)
                for i in range(g)]
        so = s.SplitVOptionsT()
        so.numSplits = g
        w.op(s.BuiltinOperator.SPLIT_V, [w.act(x), w.const_i32(f"{n.name}/split", [cg] * g),
                                         w.const_i32(f"{n.name}/split_axis", [3])], ins,
             s.BuiltinOptions.SplitVOptions, so)
    for i in range(g):
        name = n.name if g == 1 else f"{n.name}/group{i}"
        kq = kd[i * cg:(i + 1) * cg].transpose(1, 2, 3, 0)  # (Cg, Mg, kh, kw) -> OHWI
        wi, bi = w.weights_and_bias(name, x, kq, wt.qparams.scale[i * mg:(i + 1) * mg],
                                    b.const[i * mg:(i + 1) * mg])
        o = s.TransposeConvOptionsT()
        o.padding = s.Padding.SAME if same else s.Padding.VALID
        o.strideH, o.strideW = a["strides"]
        o.fusedActivationFunction = w.fused(n)
        w.op(s.BuiltinOperator.TRANSPOSE_CONV,
             [w.const_i32(f"{name}/output_shape", whole[:3] + [mg]), wi, ins[i], bi], [outs[i]],
             s.BuiltinOptions.TransposeConvOptions, o)
    if g > 1:
        co = s.ConcatenationOptionsT()
        co.axis = 3
        co.fusedActivationFunction = s.ActivationFunctionType.NONE
        w.op(s.BuiltinOperator.CONCATENATION, outs, [out], s.BuiltinOptions.ConcatenationOptions,
             co)
    if cropped:
        begin = [0, crop[0], crop[1], 0]
        w.op(s.BuiltinOperator.STRIDED_SLICE,
             [out, w.const_i32(f"{n.name}/crop_begin", begin),
              w.const_i32(f"{n.name}/crop_end", [b_ + e for b_, e in zip(begin, shape_y)]),
              w.const_i32(f"{n.name}/crop_strides", [1, 1, 1, 1])], [w.act(y)],
             s.BuiltinOptions.StridedSliceOptions, s.StridedSliceOptionsT())


@lowering("QGemm", checks=(_fc_rank_at_most_4, _logical_layout))
def _fc(w: Writer, n: Node) -> None:
    s = w.s
    x, wt, b = n.inputs
    wi, bi = w.weights_and_bias(n.name, x, wt.const, wt.qparams.scale, b.const)
    o = s.FullyConnectedOptionsT()
    o.fusedActivationFunction = w.fused(n)
    o.keepNumDims = len(x.shape) > 2  # (..., K) -> (..., N)
    w.op(s.BuiltinOperator.FULLY_CONNECTED, [w.act(x), wi, bi], [w.act(n.outputs[0])],
         s.BuiltinOptions.FullyConnectedOptions, o)


@lowering("QMul", checks=(_per_tensor_multiplier,))
@lowering("QAdd")
def _binary(w: Writer, n: Node) -> None:
    s = w.s
    if n.op == "QMul":
        o, code, otype = s.MulOptionsT(), s.BuiltinOperator.MUL, s.BuiltinOptions.MulOptions
    elif n.attrs.get("subtract"):
        o, code, otype = s.SubOptionsT(), s.BuiltinOperator.SUB, s.BuiltinOptions.SubOptions
    else:
        o, code, otype = s.AddOptionsT(), s.BuiltinOperator.ADD, s.BuiltinOptions.AddOptions
    o.fusedActivationFunction = w.fused(n)
    w.op(code, _operands(w, n), [w.act(n.outputs[0])], otype, o)


def _operands(w: Writer, n: Node) -> list[int]:
    """The tensors of an element-wise node's inputs; constants broadcast to NHWC where the
    output is."""
    ins = []
    y = n.outputs[0]
    rank = len(y.shape)
    for v in n.inputs:
        if v.is_const and rank == 4 and y.name in w.nhwc:  # broadcast constants to NHWC
            v.const = v.const.reshape((1,) * (rank - v.const.ndim) + v.const.shape)
            if v.const.shape[2:] == (1, 1) and y.shape[1] <= SHORT_CHANNELS:
                # a per-channel constant over a few channels (an input normalization's mean
                # and std over RGB): broadcast against NHWC, the innermost run is 3 values
                # long and XNNPACK's int8 MUL / ADD ran at 3.8 ns per element (106 us for
                # 96x96x3, measured); stored as one row (1 x 1 x W x C: 288 bytes there), the
                # runs are W x C long
                v.const = np.broadcast_to(v.const, v.const.shape[:3] + (y.shape[3],)).copy()
        ins.append(w.act(v))
    return ins


SHORT_CHANNELS = 8  # fewer channels than one int8 SIMD step of any x86/Arm kernel


@lowering("QMax", "QMin")
def _min_max(w: Writer, n: Node) -> None:
    """Exact: each input not at the output's parameters gets a QUANTIZE to them (TFLite's int8
    requantization, the tflite rule), then MAXIMUM / MINIMUM compare the int8 values."""
    s = w.s
    y = n.outputs[0]
    ins = []
    for v, t, mult in zip(n.inputs, _operands(w, n), (n.attrs["a_mult"], n.attrs["b_mult"])):
        if mult is not None:
            q = w.tensor(f"{n.name}/{v.name}/at_output", w.tensors[t].shape, np.int8, None,
                         w._qparams(y.qparams.scale, y.qparams.zero_point))
            w.op(s.BuiltinOperator.QUANTIZE, [t], [q])
            t = q
        ins.append(t)
    code = s.BuiltinOperator.MAXIMUM if n.op == "QMax" else s.BuiltinOperator.MINIMUM
    w.op(code, ins, [w.act(y)], s.BuiltinOptions.MaximumMinimumOptions,
         s.MaximumMinimumOptionsT())


@lowering("QPRelu")
def _prelu(w: Writer, n: Node) -> None:
    """TFLite's PRELU: the same two multipliers and rounding (LiteRT derives them in float32,
    ``TfliteBackend.reference_graph``)."""
    w.op(w.s.BuiltinOperator.PRELU, _operands(w, n), [w.act(n.outputs[0])])


@lowering("MaxPool", checks=(_undilated_pool,))
@lowering("QAveragePool", checks=(_padding_not_counted, _average_pool_pads))
def _pool(w: Writer, n: Node) -> None:
    """TFLite's SAME or VALID with the padding the windows need (``pool_pads``, ceil_mode
    included). Otherwise max pooling gets an explicit PADV2 with -128 (below every input, as
    ONNX's -inf) and VALID; average pooling runs SAME between two STRIDED_SLICEs that reverse
    the axes whose padding is SAME's mirror image (``average_pool_mirrors``)."""
    s = w.s
    a = n.attrs
    x, y = n.inputs[0], n.outputs[0]
    pads = pool_pads(n)
    padding = s.Padding.SAME if any(pads) else s.Padding.VALID
    options = s.BuiltinOptions.Pool2DOptions
    if n.op == "MaxPool":
        xin, padding = w.padded_input(n, x, pads, a["kernel_shape"], a["strides"], [1, 1], -128)
        w.op(s.BuiltinOperator.MAX_POOL_2D, [xin], [w.act(y)], options,
             _pool_options(w, a, padding))
        return
    mirrors = average_pool_mirrors(n)
    assert mirrors is not None
    if not any(mirrors):
        w.op(s.BuiltinOperator.AVERAGE_POOL_2D, [w.act(x)], [w.act(y)], options,
             _pool_options(w, a, padding))
        return
    xin = w.reversed_hw(f"{n.name}/reversed_in", w.act(x), x, mirrors)
    out = w.tensor(f"{n.name}/reversed_out", w.shape_of(y), np.int8, None,
                   w._qparams(y.qparams.scale, y.qparams.zero_point))
    w.op(s.BuiltinOperator.AVERAGE_POOL_2D, [xin], [out], options, _pool_options(w, a, padding))
    w.reversed_hw(f"{n.name}/unreversed", out, y, mirrors, into=w.act(y))


def _pool_options(w: Writer, a: dict, padding: int):
    o = w.s.Pool2DOptionsT()
    o.padding = padding
    o.strideH, o.strideW = a["strides"]
    o.filterHeight, o.filterWidth = a["kernel_shape"]
    o.fusedActivationFunction = w.s.ActivationFunctionType.NONE
    return o


@lowering("Reshape", int16=True)
def _reshape(w: Writer, n: Node) -> None:
    """Reshape in NCHW element order: leave NHWC first unless the spatial size is 1x1."""
    s = w.s
    x, y = n.inputs[0], n.outputs[0]
    src = w.act(x)
    if x.name in w.nhwc and x.shape[2] * x.shape[3] != 1:
        t = w.like(f"{n.name}/nchw", list(x.shape), x)
        w.op(s.BuiltinOperator.TRANSPOSE, [src, w.const_i32(f"{n.name}/perm", [0, 3, 1, 2])],
             [t], s.BuiltinOptions.TransposeOptions, s.TransposeOptionsT())
        src = t
    out = w.act(y)
    shape = list(y.shape)
    if y.name in w.nhwc and y.shape[2] * y.shape[3] == 1:
        shape = w.nhwc_shape(shape)  # same element order as NCHW
    elif y.name in w.nhwc:  # reshape to NCHW, then transpose to the NHWC tensor
        t = w.like(f"{n.name}/nchw_out", shape, y)
        o = s.ReshapeOptionsT()
        o.newShape = shape
        w.op(s.BuiltinOperator.RESHAPE, [src, w.const_i32(f"{n.name}/shape", shape)], [t],
             s.BuiltinOptions.ReshapeOptions, o)
        w.op(s.BuiltinOperator.TRANSPOSE, [t, w.const_i32(f"{n.name}/perm_out", [0, 2, 3, 1])],
             [out], s.BuiltinOptions.TransposeOptions, s.TransposeOptionsT())
        return
    o = s.ReshapeOptionsT()
    o.newShape = shape
    w.op(s.BuiltinOperator.RESHAPE, [src, w.const_i32(f"{n.name}/shape", shape)],
         [out], s.BuiltinOptions.ReshapeOptions, o)


def _quantize_multiplier(n: Node, nhwc: set[str]) -> str | None:
    """The multiplier is ``QuantizeMultiplier(s_x / s_y)`` (the float32 scales divided in
    float64): what QUANTIZE derives from its tensors' scales."""
    s_x, s_y = n.inputs[0].qparams.scale[0], n.outputs[0].qparams.scale[0]
    if quantize_multiplier(effective_scale(s_x, denominator=s_y)) != \
            (int(n.attrs["multiplier"]), int(n.attrs["shift"])):
        return (f"its multiplier ({n.attrs['multiplier']}, shift {n.attrs['shift']}) is not "
                f"the one QUANTIZE derives from the scales {s_x:.9g} / {s_y:.9g}")
    return None


def requantize_reach(n: Node) -> tuple[int, int]:
    """The lowest and highest values a Requantize can compute before its clamp: the rescale is
    monotone, so those of the input range's ends (edgeq's int8 or int16 range)."""
    a = n.attrs
    ends = rescale(np.array(INT_RANGE[n.inputs[0].dtype]) - int(a["x_zp"]), int(a["multiplier"]),
                   int(a["shift"]), a.get("rounding", "tflite")) + int(a["y_zp"])
    return int(ends[0]), int(ends[1])


@lowering("Requantize", checks=(_quantize_multiplier,), int16=True)
def _requantize(w: Writer, n: Node) -> None:
    """QUANTIZE (int8 or int16 in and out): ``reference_ops::Requantize`` in LiteRT and TFLite
    Micro, ``MultiplyByQuantizedMultiplier(x - x_zp)`` with the multiplier it derives from
    ``s_x / s_y`` in float64, plus ``y_zp``: the tflite rule, bit for bit. It clamps to the
    output type, and edgeq's int16 is symmetric ([-32767, 32767]): where the input can reach
    below -32767 (an input range wider below zero than the output's, by up to half an int8
    step), a MAXIMUM with -32767 follows (and a MINIMUM for a bound below the type's top)."""
    s = w.s
    x, y = n.inputs[0], n.outputs[0]
    a = n.attrs
    info = np.iinfo(y.dtype.numpy)
    reach = requantize_reach(n)
    bounds = [(s.BuiltinOperator.MAXIMUM, int(a["act_min"]), "min")
              if reach[0] < a["act_min"] and a["act_min"] > info.min else None,
              (s.BuiltinOperator.MINIMUM, int(a["act_max"]), "max")
              if reach[1] > a["act_max"] and a["act_max"] < info.max else None]
    clamps = [b for b in bounds if b is not None]
    src = w.like(f"{n.name}/unclamped", w.shape_of(y), y) if clamps else w.act(y)
    w.op(s.BuiltinOperator.QUANTIZE, [w.act(x)], [src])
    for i, (code, bound, kind) in enumerate(clamps):
        dst = w.act(y) if i == len(clamps) - 1 else w.like(f"{n.name}/clamped_{kind}",
                                                           w.shape_of(y), y)
        value = w.tensor(f"{n.name}/act_{kind}", [], info.dtype, np.asarray(bound, info.dtype),
                         w._qparams(y.qparams.scale, y.qparams.zero_point))
        w.op(code, [src, value], [dst], s.BuiltinOptions.MaximumMinimumOptions,
             s.MaximumMinimumOptionsT())
        src = dst


@lowering("Concat", int16=True)
def _concat(w: Writer, n: Node) -> None:
    s = w.s
    o = s.ConcatenationOptionsT()
    rank = len(n.outputs[0].shape)
    ax = n.attrs["axis"] % rank
    o.axis = AXIS_TO_NHWC[ax] if n.outputs[0].name in w.nhwc else ax
    o.fusedActivationFunction = s.ActivationFunctionType.NONE
    w.op(s.BuiltinOperator.CONCATENATION, [w.act(v) for v in n.inputs],
         [w.act(n.outputs[0])], s.BuiltinOptions.ConcatenationOptions, o)


@lowering("QLookup")
def _lookup(w: Writer, n: Node) -> None:
    """Exact: y = table[x + 128] as CAST -> ADD (int32) -> GATHER."""
    s = w.s
    x, y = n.inputs[0], n.outputs[0]
    shape = w.shape_of(x)
    as_int = w.tensor(f"{n.name}/idx", shape, np.int32)
    o = s.CastOptionsT()
    o.inDataType, o.outDataType = s.TensorType.INT8, s.TensorType.INT32
    w.op(s.BuiltinOperator.CAST, [w.act(x)], [as_int], s.BuiltinOptions.CastOptions, o)
    idx = w.tensor(f"{n.name}/idx_offset", shape, np.int32)
    ao = s.AddOptionsT()
    ao.fusedActivationFunction = s.ActivationFunctionType.NONE
    w.op(s.BuiltinOperator.ADD, [as_int, w.const_i32(f"{n.name}/offset", [128])], [idx],
         s.BuiltinOptions.AddOptions, ao)
    table = np.asarray(n.attrs["table"], np.int8)
    ti = w.tensor(f"{n.name}/table", table.shape, np.int8, table,
                  w._qparams(y.qparams.scale, y.qparams.zero_point))
    go = s.GatherOptionsT()
    go.axis = 0
    w.op(s.BuiltinOperator.GATHER, [ti, idx], [w.act(y)], s.BuiltinOptions.GatherOptions, go)


@lowering("QSoftmax", checks=(_tflite_softmax, _logical_layout))
def _softmax(w: Writer, n: Node) -> None:
    """TFLite's int8 SOFTMAX (beta 1, output 1/256 and -128): the tflite flavor of QSoftmax
    follows its arithmetic, so the reference kernels match bit for bit."""
    s = w.s
    o = s.SoftmaxOptionsT()
    o.beta = 1.0
    w.op(s.BuiltinOperator.SOFTMAX, [w.act(n.inputs[0])], [w.act(n.outputs[0])],
         s.BuiltinOptions.SoftmaxOptions, o)


def _tflite_nearest(in_len: int, out_len: int, align: bool, half: bool) -> np.ndarray:
    """TFLite's GetNearestNeighbor (float32 arithmetic, as the kernel computes it)."""
    f32 = np.float32
    scale = f32(in_len - 1) / f32(out_len - 1) if align and out_len > 1 else \
        f32(in_len) / f32(out_len)
    pos = (np.arange(out_len, dtype=f32) + f32(0.5 if half else 0.0)) * scale
    idx = np.floor(pos + f32(0.5)) if align else np.floor(pos)  # TfLiteRound for pos >= 0
    idx = np.minimum(idx.astype(np.int64), in_len - 1)
    return np.maximum(idx, 0) if half else idx


def resize_flags(n: Node) -> tuple[bool, bool] | None:
    """(align_corners, half_pixel_centers) with which TFLite picks the pixels edgeq's nearest
    Resize picks on both spatial axes; None if no setting does (or N, C are resized)."""
    x, y = n.inputs[0], n.outputs[0]
    if n.attrs.get("mode") != "nearest" or len(x.shape) != 4 or \
            list(x.shape[:2]) != list(y.shape[:2]):
        return None
    maps = []
    for ax in (2, 3):
        shape = [1, 1, 1, 1]
        shape[ax] = x.shape[ax]
        probe = np.broadcast_to(np.arange(x.shape[ax], dtype=np.float32).reshape(shape),
                                (1, 1, x.shape[2], x.shape[3]))
        out = resize(n.attrs, np.ascontiguousarray(probe))[0]
        maps.append(out[0, 0, :, 0] if ax == 2 else out[0, 0, 0, :])
    for align, half in ((False, False), (False, True), (True, False)):
        if all(np.array_equal(m.astype(np.int64), _tflite_nearest(x.shape[ax], y.shape[ax],
                                                                  align, half))
               for m, ax in zip(maps, (2, 3))):
            return align, half
    return None


@lowering("Resize", checks=(_nearest_pixels_match,))
def _resize(w: Writer, n: Node) -> None:
    """Nearest resize is data movement: exact when TFLite picks the same pixels."""
    s = w.s
    align, half = resize_flags(n)
    o = s.ResizeNearestNeighborOptionsT()
    o.alignCorners, o.halfPixelCenters = align, half
    w.op(s.BuiltinOperator.RESIZE_NEAREST_NEIGHBOR,
         [w.act(n.inputs[0]), w.const_i32(f"{n.name}/size", list(n.outputs[0].shape[2:]))],
         [w.act(n.outputs[0])], s.BuiltinOptions.ResizeNearestNeighborOptions, o)


@lowering("QResize")
def _resize_bilinear(w: Writer, n: Node) -> None:
    """RESIZE_BILINEAR: QResize is its int8 arithmetic (``edgeq.ops.resize``); the coordinate
    mode sets align_corners or half_pixel_centers (neither: asymmetric)."""
    s = w.s
    mode = n.attrs["coordinate_transformation_mode"]
    o = s.ResizeBilinearOptionsT()
    o.alignCorners, o.halfPixelCenters = mode == "align_corners", mode == "half_pixel"
    w.op(s.BuiltinOperator.RESIZE_BILINEAR,
         [w.act(n.inputs[0]), w.const_i32(f"{n.name}/size", list(n.outputs[0].shape[2:]))],
         [w.act(n.outputs[0])], s.BuiltinOptions.ResizeBilinearOptions, o)


@lowering("Slice", int16=True)
def _slice(w: Writer, n: Node) -> None:
    s = w.s
    x = n.inputs[0]
    rank = len(x.shape)
    begin, end, step = [0] * rank, list(x.shape), [1] * rank
    for st, en, ax, sp in zip(n.attrs["starts"], n.attrs["ends"], n.attrs["axes"],
                              n.attrs["steps"]):
        ax %= rank
        size = x.shape[ax]
        st = max(0, min(st + size if st < 0 else st, size))
        en = size if en is None else max(-1, min(en + size if en < 0 else en, size))
        begin[ax], end[ax], step[ax] = st, en, sp
    if x.name in w.nhwc:
        begin, end, step = ([v[i] for i in NCHW_TO_NHWC] for v in (begin, end, step))
    o = s.StridedSliceOptionsT()
    w.op(s.BuiltinOperator.STRIDED_SLICE,
         [w.act(x), w.const_i32(f"{n.name}/begin", begin), w.const_i32(f"{n.name}/end", end),
          w.const_i32(f"{n.name}/strides", step)], [w.act(n.outputs[0])],
         s.BuiltinOptions.StridedSliceOptions, o)


@lowering("Transpose", int16=True)
def _transpose(w: Writer, n: Node) -> None:
    s = w.s
    perm = [int(p) for p in n.attrs["perm"]]
    x, y = n.inputs[0], n.outputs[0]
    if x.name in w.nhwc:  # stored NHWC: read through NHWC -> NCHW first
        perm = [NHWC_TO_NCHW[p] for p in perm]
    if y.name in w.nhwc:  # stored NHWC: write NCHW -> NHWC last
        perm = [perm[i] for i in NCHW_TO_NHWC]
    w.op(s.BuiltinOperator.TRANSPOSE, [w.act(n.inputs[0]), w.const_i32(f"{n.name}/perm", perm)],
         [w.act(n.outputs[0])], s.BuiltinOptions.TransposeOptions, s.TransposeOptionsT())


@lowering("Split", int16=True)
def _split(w: Writer, n: Node) -> None:
    s = w.s
    x = n.inputs[0]
    o = s.SplitVOptionsT()
    o.numSplits = len(n.outputs)
    ax = n.attrs["axis"] % len(x.shape)
    sizes = [int(v.shape[ax]) for v in n.outputs]
    if x.name in w.nhwc:
        ax = AXIS_TO_NHWC[ax]
    w.op(s.BuiltinOperator.SPLIT_V, [w.act(x), w.const_i32(f"{n.name}/sizes", sizes),
                                     w.const_i32(f"{n.name}/axis", [ax])],
         [w.act(v) for v in n.outputs], s.BuiltinOptions.SplitVOptions, o)


@lowering("QMatMul", checks=(_logical_layout, _batch_matmul_operands))
def _batch_matmul(w: Writer, n: Node) -> None:
    s = w.s
    o = s.BatchMatMulOptionsT()
    o.adjX = o.adjY = False
    w.op(s.BuiltinOperator.BATCH_MATMUL, [w.act(n.inputs[0]), w.act(n.inputs[1])],
         [w.act(n.outputs[0])], s.BuiltinOptions.BatchMatMulOptions, o)


@lowering("QReduceMean", checks=(_mean_as_fc,))
def _mean(w: Writer, n: Node) -> None:
    """Mean as TFLite computes it in integers: the reduced axes moved last (TRANSPOSE), merged
    (RESHAPE), then a FULLY_CONNECTED with one output and weights of 1 at scale 1/count, whose
    multiplier the quantizer derived from those scales; RESHAPE to the output shape. On NHWC
    tensors the TRANSPOSE reads the stored axes, and the kept axes go in the order the output
    stores them (torchvision's ``x.mean([2, 3])`` after the last convolution)."""
    s = w.s
    x, y = n.inputs[0], n.outputs[0]
    rank = len(x.shape)
    axes = sorted(a % rank for a in (n.attrs.get("axes") or range(rank)))
    keep = [a for a in range(rank) if a not in axes]
    if y.name in w.nhwc:  # keepdims: the reduced axes are 1, the kept ones in NHWC order
        keep.sort(key=lambda a: AXIS_TO_NHWC[a])
    perm = [AXIS_TO_NHWC[a] if x.name in w.nhwc else a for a in keep + axes]
    qx = w._qparams(x.qparams.scale, x.qparams.zero_point)
    src = w.act(x)
    if perm != list(range(rank)):
        t = w.tensor(f"{n.name}/moved", [x.shape[a] for a in keep + axes], np.int8, None, qx)
        w.op(s.BuiltinOperator.TRANSPOSE, [src, w.const_i32(f"{n.name}/perm", perm)],
             [t], s.BuiltinOptions.TransposeOptions, s.TransposeOptionsT())
        src = t
    count = int(np.prod([x.shape[a] for a in axes]))
    rows = [int(x.shape[a]) for a in keep] or [1]
    flat = w.tensor(f"{n.name}/rows", rows + [count], np.int8, None, qx)
    ro = s.ReshapeOptionsT()
    ro.newShape = rows + [count]
    w.op(s.BuiltinOperator.RESHAPE, [src, w.const_i32(f"{n.name}/rows_shape", rows + [count])],
         [flat], s.BuiltinOptions.ReshapeOptions, ro)
    ws = float(n.attrs["fc_weight_scale"])
    wi = w.tensor(f"{n.name}/ones", [1, count], np.int8, np.ones((1, count), np.int8),
                  w._qparams([ws], [0]))
    bscale = float(np.float64(np.float32(x.qparams.scale[0])) * np.float32(ws))
    bi = w.tensor(f"{n.name}/zero_bias", [1], np.int32, np.zeros(1, np.int32),
                  w._qparams([bscale], [0]))
    qy = w._qparams(y.qparams.scale, y.qparams.zero_point)
    fc_out = w.tensor(f"{n.name}/sum", rows + [1], np.int8, None, qy)
    o = s.FullyConnectedOptionsT()
    o.fusedActivationFunction = w.fused(n)
    o.keepNumDims = True
    w.op(s.BuiltinOperator.FULLY_CONNECTED, [flat, wi, bi], [fc_out],
         s.BuiltinOptions.FullyConnectedOptions, o)
    shape = w.shape_of(y)
    ro = s.ReshapeOptionsT()
    ro.newShape = shape
    w.op(s.BuiltinOperator.RESHAPE, [fc_out, w.const_i32(f"{n.name}/out_shape", shape)],
         [w.act(y)], s.BuiltinOptions.ReshapeOptions, ro)


@lowering("Pad", checks=(_constant_nonnegative_pads,))
def _pad(w: Writer, n: Node) -> None:
    x = n.inputs[0]
    p = n.attrs["pads"]
    r = len(x.shape)
    pairs = [[p[i], p[i + r]] for i in range(r)]
    if x.name in w.nhwc:
        pairs = [pairs[i] for i in NCHW_TO_NHWC]
    w.pad_op(x, w.const_i32(f"{n.name}/paddings", pairs), int(n.attrs.get("value", 0)),
             w.act(n.outputs[0]), n.name)


FALLBACK: dict[str, Callable[[Writer, Node], None]] = {}  # op -> its float island
FALLBACK_OK: dict[str, Callable[[Node], bool]] = {}  # op -> whether the island takes the node


def fallback(op: str, ok: Callable[[Node], bool]) -> Callable[[Callable], Callable]:
    """``@fallback("QMul", ok=...)``: the decorated function lowers ``op`` as a float island
    (``--allow-fallback``) for the nodes the integer checks refuse and ``ok`` accepts; ``ok``'s
    docstring states when."""
    def deco(fn: Callable) -> Callable:
        FALLBACK[op], FALLBACK_OK[op] = fn, ok
        return fn
    return deco


def _float_pool_padding_ok(n: Node) -> bool:
    """No ``ceil_mode``; padding counted (an explicit zero PAD), none, or TFLite's SAME."""
    a = n.attrs
    if a.get("ceil_mode"):
        return False
    return a.get("count_include_pad") or not any(a["pads"]) or a["pads"] == same_pads(
        n.inputs[0].shape[2:], a["kernel_shape"], a["strides"], [1, 1])


def _float_mul_ok(n: Node) -> bool:
    """A constant second operand, int8 activations and no clamp beyond the int8 range."""
    return n.inputs[1].is_const and all(
        v is not None and v.dtype == DType.INT8 for v in n.inputs + n.outputs) \
        and n.attrs["act_min"] == -128 and n.attrs["act_max"] == 127


@fallback("QAveragePool", ok=_float_pool_padding_ok)
def _float_pool(w: Writer, n: Node) -> None:
    """Average pooling in float: padding counted (count_include_pad) is an explicit zero PAD
    then a VALID pool; otherwise TFLite's SAME, which leaves padding out of the count."""
    s = w.s
    a = n.attrs
    x, y = n.inputs[0], n.outputs[0]
    xf = w.dequantized(x)
    t, l_, b, r = a["pads"]
    padding = s.Padding.VALID
    if any(a["pads"]) and a.get("count_include_pad"):
        shape = w.shape_of(x)
        shape[1] += t + b
        shape[2] += l_ + r
        padded = w.tensor(f"{n.name}/padded_float", shape, np.float32)
        w.op(s.BuiltinOperator.PAD, [xf, w.const_i32(f"{n.name}/paddings",
                                                     [[0, 0], [t, b], [l_, r], [0, 0]])],
             [padded], s.BuiltinOptions.PadOptions, s.PadOptionsT())
        xf = padded
    elif any(a["pads"]):
        padding = s.Padding.SAME
    yf = w.tensor(f"{n.name}/float_out", w.shape_of(y), np.float32)
    w.op(s.BuiltinOperator.AVERAGE_POOL_2D, [xf], [yf], s.BuiltinOptions.Pool2DOptions,
         _pool_options(w, a, padding))
    w.requantized(yf, y)


@fallback("QMul", ok=_float_mul_ok)
def _float_mul(w: Writer, n: Node) -> None:
    """Multiplication by a per-channel constant in float."""
    s = w.s
    ins = [w.dequantized(v) for v in n.inputs]
    y = n.outputs[0]
    yf = w.tensor(f"{n.name}/float_out", w.shape_of(y), np.float32)
    o = s.MulOptionsT()
    o.fusedActivationFunction = s.ActivationFunctionType.NONE
    w.op(s.BuiltinOperator.MUL, ins, [yf], s.BuiltinOptions.MulOptions, o)
    w.requantized(yf, y)


def lower_graph(graph: Graph, fallback: bool = False, layout: set[str] | None = None
                ) -> bytes:
    """The .tflite flatbuffer; with ``fallback``, nodes in ``fallback_nodes`` become float
    islands; ``layout``: lay out NHWC these values (default ``nhwc_values(graph)``), for a
    graph cut from a larger one."""
    import flatbuffers

    w = Writer(graph.copy(), layout)
    g = w.graph
    keep_float = {n.name for n in fallback_nodes(g)} if fallback else set()
    for v in g.inputs:
        w.act(v)
    for n in g.nodes:
        (FALLBACK[n.op] if n.name in keep_float else LOWER[n.op].emit)(w, n)
    s = w.s
    sub = s.SubGraphT()
    sub.tensors = w.tensors
    sub.inputs = [w.index[v.name] for v in g.inputs]
    sub.outputs = [w.index[v.name] for v in g.outputs]
    sub.operators = w.ops
    sub.name = "main"
    model = s.ModelT()
    model.version = 3
    model.description = "edgeq"
    model.operatorCodes = w.op_codes
    model.subgraphs = [sub]
    model.buffers = w.buffers
    b = flatbuffers.Builder(1024)
    b.Finish(model.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())
