"""Float graph + calibration ranges -> integer-only graph (docs/numerics.md is the spec).

Scheme: activations int8 asymmetric per-tensor (optionally int16 symmetric for named values);
weights int8 symmetric per-output-channel in [-127, 127] (int4: [-7, 7], stored in int8); bias
int32 at scale ``s_x * s_w[c]``. Every rescale factor becomes a Q31 multiplier and a shift
(``dyadic.quantize_multiplier``), derived from float32 scales. Integer values keep the float value's
name, so reports can compare layer by layer. Each op has one lowering function; an op or form
that cannot be lowered is listed (all of them at once) with the reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from edgeq.ir.graph import DType, EdgeqError, Graph, Node, QParams, TensorType, Value
from edgeq.passes.shape_inference import infer_node
from edgeq.quant.dyadic import ROUNDING_RULES, effective_scale, quantize_multiplier, \
    quantize_multipliers
from edgeq.runtime.kernels import KERNELS, avg_pool_divisor
from edgeq.ir.registry import registrar

INT_RANGE = {DType.INT8: (-128, 127), DType.INT16: (-32767, 32767)}


@dataclass(frozen=True)
class QuantConfig:
    observer: str = "minmax"
    percentile: float = 99.99
    weight_bits: int = 8
    int16: tuple[str, ...] = ()  # float value names whose integer form is int16
    rounding: str = "edgeq"
    bias_correction: bool = True
    weight_rounding: str = "gptq"  # or "nearest"

    def __post_init__(self):
        if self.weight_bits not in (4, 8):
            raise EdgeqError(f"weight bits must be 4 or 8, got {self.weight_bits}")
        if self.weight_rounding not in ("gptq", "nearest"):
            raise EdgeqError(f"weight rounding must be 'gptq' or 'nearest', got "
                             f"{self.weight_rounding!r}")
        if self.rounding not in ROUNDING_RULES:
            raise EdgeqError(f"rounding rule must be one of {ROUNDING_RULES}")


@dataclass
class ConvertInfo:
    bias_corrected: list[str] = field(default_factory=list)
    gptq: list[str] = field(default_factory=list)
    int16_values: list[str] = field(default_factory=list)


def f32(x: float) -> float:
    return float(np.float32(x))


def activation_qparams(lo: float, hi: float, dtype: DType) -> QParams:
    """Asymmetric int8 over [min(lo, 0), max(hi, 0)] (zero exactly representable); int16 is
    symmetric with zero point 0."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    if dtype == DType.INT16:
        s = f32(max(abs(lo), abs(hi), 1e-8) / 32767)
        return QParams((s,), (0,))
    if hi - lo < 1e-8:
        hi = lo + 1e-8
    s = f32((hi - lo) / 255.0)
    z = int(np.clip(round(-128 - lo / s), -128, 127))
    return QParams((s,), (z,))


def quantize_weight(w: np.ndarray, axis: int, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric per-channel: scale[c] = max|w[c]| / qmax (float32); q = round(w / scale)."""
    qmax = 127 if bits == 8 else 7
    moved = np.moveaxis(w.astype(np.float64), axis, 0)
    amax = np.abs(moved.reshape(moved.shape[0], -1)).max(axis=1)
    scale = np.where(amax > 0, amax / qmax, 1.0).astype(np.float32)
    shape = [1] * w.ndim
    shape[axis] = -1
    q = np.clip(np.round(w / scale.astype(np.float64).reshape(shape)), -qmax, qmax)
    return q.astype(np.int8), scale


def quantize_bias(b: np.ndarray, s_x: float, s_w: np.ndarray, where: str) -> np.ndarray:
    q = np.round(b.astype(np.float64) / (np.float64(np.float32(s_x)) *
                                         s_w.astype(np.float64)))
    if np.abs(q).max(initial=0) > 2 ** 31 - 1:
        raise EdgeqError(f"{where}: bias does not fit int32 at scale input*weight (input scale "
                         f"{s_x:g} is too small for this bias); check the calibration data")
    return q.astype(np.int32)


Lowering = Callable[["Converter", Node], None]
LOWER: dict[str, Lowering] = {}


lowering = registrar(LOWER)


class Converter:
    def __init__(self, fg: Graph, ranges: dict[str, tuple[float, float]], cfg: QuantConfig,
                 channel_means: dict[str, np.ndarray] | None = None,
                 moments: dict[str, np.ndarray] | None = None):
        self.fg, self.ranges, self.cfg = fg, ranges, cfg
        self.channel_means = channel_means or {}
        self.moments = moments or {}
        self.g = Graph(fg.name)
        self.g.metadata = dict(fg.metadata)
        self.g.metadata["quantized"] = "int"
        self.g.metadata["rounding"] = cfg.rounding
        self.g.metadata["weight_bits"] = str(cfg.weight_bits)
        self.map: dict[str, Value] = {}
        self.info = ConvertInfo()

    # --- values -------------------------------------------------------------------------------
    def dtype_of(self, name: str) -> DType:
        return DType.INT16 if name in self.cfg.int16 else DType.INT8

    def out_qparams(self, v: Value) -> QParams:
        if v.name not in self.ranges:
            raise EdgeqError(f"no calibration range for value '{v.name}'")
        lo, hi = self.ranges[v.name]
        return activation_qparams(lo, hi, self.dtype_of(v.name))

    def get(self, v: Value) -> Value:
        """The integer value for a float value; constants are quantized per-tensor on demand."""
        if v.name in self.map:
            return self.map[v.name]
        if v.is_const:
            c = v.const.astype(np.float64)
            qp = activation_qparams(float(c.min()), float(c.max()), DType.INT8)
            q = np.clip(np.round(c / qp.scale[0]) + qp.zero_point[0], -128, 127).astype(np.int8)
            iv = self.g.add_const(f"{v.name}/q", q)
            iv.qparams = qp
            self.map[v.name] = iv
            return iv
        raise KeyError(v.name)

    def emit(self, op: str, node: Node, inputs: list[Value | None], attrs: dict,
             out: Value, qp: QParams, dtype: DType) -> Value:
        attrs.setdefault("rounding", self.cfg.rounding)
        attrs["dtype"] = dtype.value
        n = self.g.add_node(op, inputs, [TensorType(dtype, out.shape)], attrs,
                            name=self.g.unique_name(node.name),
                            output_names=[out.name])
        t = infer_node(n)[0]
        if t.shape != out.shape:
            raise AssertionError(f"{op} '{node.name}': integer shape {t.shape} != {out.shape}")
        n.outputs[0].qparams = qp
        self.map[out.name] = n.outputs[0]
        return n.outputs[0]

    def passthrough(self, node: Node, attrs: dict | None = None) -> None:
        """Data movement: same op on integers, same quantization parameters."""
        x = self.get(node.inputs[0])
        ins = [x] + [self.get(v) if v is not None and not v.is_const else v
                     for v in node.inputs[1:]]
        ins = [self._plain_const(v) if v is not None and v.is_const and v.name not in
               self.g.values else v for v in ins]
        n = self.g.add_node(node.op, ins, [TensorType(x.dtype, o.shape) for o in node.outputs],
                            dict(node.attrs if attrs is None else attrs),
                            name=self.g.unique_name(node.name),
                            output_names=[o.name for o in node.outputs])
        for fo, io in zip(node.outputs, n.outputs):
            io.qparams = x.qparams
            self.map[fo.name] = io

    def _plain_const(self, v: Value) -> Value:
        if v.const.dtype.kind == "f":
            raise EdgeqError(f"constant '{v.name}' is float where an index was expected")
        return self.g.add_const(v.name, v.const)

    def act_bounds(self, node: Node, qp: QParams, dtype: DType) -> tuple[int, int]:
        lo, hi = INT_RANGE[dtype]
        act = node.attrs.get("activation")
        s, z = qp.scale[0], qp.zero_point[0]
        if act == "Relu":
            lo = max(lo, z)
        elif act == "Clip":
            if math.isfinite(node.attrs["activation_min"]):
                lo = max(lo, z + int(round(node.attrs["activation_min"] / s)))
            if math.isfinite(node.attrs["activation_max"]):
                hi = min(hi, z + int(round(node.attrs["activation_max"] / s)))
        return lo, hi

    # --- driver -------------------------------------------------------------------------------
    def run(self) -> Graph:
        check_graph(self.fg)
        for v in self.fg.inputs:
            if not v.dtype.is_float:
                raise EdgeqError(f"input '{v.name}' is {v.dtype.value}; only float inputs are "
                                 f"quantized")
            dt = self.dtype_of(v.name)
            iv = self.g.add_input(v.name, TensorType(dt, v.shape))
            iv.qparams = self.out_qparams(v)
            self.map[v.name] = iv
        for node in self.fg.nodes:
            LOWER[node.op](self, node)
        self.g.outputs = [self.get(v) for v in self.fg.outputs]
        self.g.prune_values()
        return self.g


def check_graph(fg: Graph) -> None:
    """Raise one error listing every node that cannot become integer ops, with its reason."""
    problems = [f"{node.op} '{node.name}': {why}" for node in fg.nodes
                if (why := check_lowerable(node))]
    if problems:
        raise EdgeqError("cannot quantize: " + "; ".join(problems))


def check_lowerable(node: Node) -> str | None:
    """Why ``node`` cannot become integer ops (None if it can). These are the user's reasons."""
    op = node.op
    if op not in LOWER:
        return "no integer lowering for this op"
    if op in ("Conv", "ConvTranspose", "Gemm") and any(
            v is not None and not v.is_const for v in node.inputs[1:]):
        return "weights must be constants"
    if op == "Gemm" and node.attrs.get("transA", 0):
        return "transA=1 is not supported"
    if op == "Gemm" and node.const_input(2) is not None and node.const_input(2).ndim == 2 and \
            node.const_input(2).shape[0] > 1:
        return "a 2-D bias C with several rows is not supported"
    if op == "MatMul" and node.inputs[0].is_const:
        return "a constant left operand is not supported"
    if op == "MatMul" and node.inputs[1].is_const and node.inputs[1].const.ndim != 2:
        return "constant weights must be 2-D"
    if op == "Div" and not node.inputs[1].is_const:
        return "division by a tensor computed at run time has no integer form"
    if op == "Resize" and node.attrs.get("mode") != "nearest":
        return "only nearest resizing is integer-exact; use mode='nearest'"
    if op == "PRelu" and node.inputs[1].type.size != 1:
        return "per-channel PRelu slopes are not supported (scalar slope only)"
    if op in ("Softmax", "LayerNormalization") and \
            node.attrs.get("axis", -1) % len(node.inputs[0].shape) != \
            len(node.inputs[0].shape) - 1:
        return "only the last axis is supported"
    if op == "LayerNormalization" and node.inputs[0].shape[-1] > 4096:
        return "normalized size above 4096 would overflow the int64 variance"
    if op == "Pad" and node.attrs.get("mode", "constant") not in ("constant", "reflect", "edge"):
        return "unsupported pad mode"
    if op in ("Add", "Sub", "Mul") and all(v.is_const for v in node.inputs):
        return "all inputs constant (run constant folding first)"
    return None


# --- lowerings --------------------------------------------------------------------------------

def _conv_like(cv: Converter, node: Node, op: str, w_axis_fn) -> None:
    x = cv.get(node.inputs[0])
    out = node.outputs[0]
    dtype = cv.dtype_of(out.name)
    qp = cv.out_qparams(out)
    s_x = x.qparams.scale[0]
    w = node.inputs[1].const
    wq, s_w = w_axis_fn(w)
    if cv.cfg.weight_rounding == "gptq" and node.name in cv.moments and op in ("QConv", "QGemm"):
        wq = _gptq_weights(cv, node, w, wq, s_w)
    cout = len(s_w)
    b = node.const_input(2)
    b = np.zeros(cout) if b is None else np.broadcast_to(b.astype(np.float64), (cout,)).copy()
    if cv.cfg.bias_correction:
        b = _bias_correction(cv, node, w, wq, s_w, b)
    bq = quantize_bias(b, s_x, s_w, f"{node.op} '{node.name}'")
    m, n = quantize_multipliers(np.array([effective_scale(s_x, s, denominator=qp.scale[0])
                                          for s in s_w]))
    lo, hi = cv.act_bounds(node, qp, dtype)
    attrs = {k: v for k, v in node.attrs.items() if not k.startswith("activation")
             and k not in ("alpha", "beta", "transA", "transB")}
    attrs.update(x_zp=x.qparams.zero_point[0], y_zp=qp.zero_point[0], multiplier=m, shift=n,
                 act_min=lo, act_max=hi)
    wv = cv.g.add_const(f"{node.name}/weight_q", wq)
    wv.qparams = QParams(tuple(float(s) for s in s_w), (0,) * cout, axis=0)
    bv = cv.g.add_const(f"{node.name}/bias_q", bq)
    cv.emit(op, node, [x, wv, bv], attrs, out, qp, dtype)


def _gptq_weights(cv: Converter, node: Node, w, wq, s_w) -> np.ndarray:
    from edgeq.quant.gptq import gptq_round

    h = cv.moments[node.name]
    g = h.shape[0]
    mg = w.shape[0] // g
    qmax = 127 if cv.cfg.weight_bits == 8 else 7
    out = wq.copy()
    for gi in range(g):
        rows = slice(gi * mg, (gi + 1) * mg)
        q = gptq_round(w[rows].reshape(mg, -1), s_w[rows], h[gi], qmax)
        if q is None:  # H not positive definite: keep nearest rounding for this layer
            return wq
        out[rows] = q.reshape(out[rows].shape)
    cv.info.gptq.append(node.name)
    return out.astype(np.int8)


def _bias_correction(cv: Converter, node: Node, w, wq, s_w, b) -> np.ndarray:
    """Empirical bias correction: subtract the expected output shift the weight rounding causes,
    ``E[(Wq*s - W) x] = (Wq*s - W) E[x]`` with the per-channel input mean from calibration."""
    mean = cv.channel_means.get(node.inputs[0].name)
    if mean is None:
        return b
    if node.op == "Conv":
        g = node.attrs["group"]
        cg = w.shape[1]
        if mean.shape[0] != cg * g:
            return b
        err = wq.astype(np.float64) * s_w.reshape(-1, 1, 1, 1) - w
        m_in = mean.reshape(g, cg)[np.arange(w.shape[0]) // (w.shape[0] // g)]  # (M, Cg)
        shift = (err.sum(axis=(2, 3)) * m_in).sum(axis=1)
        # a padded conv sees fewer real inputs at the border; the interior dominates
    elif node.op in ("Gemm", "MatMul"):  # w is already (N, K)
        if mean.shape[0] != w.shape[1]:
            return b
        shift = ((wq.astype(np.float64) * s_w.reshape(-1, 1) - w) * mean[None, :]).sum(axis=1)
    else:
        return b
    cv.info.bias_corrected.append(node.name)
    return b - shift


def _gemm_weight(node: Node) -> np.ndarray:
    """The weight as (N, K), alpha folded in."""
    w = node.inputs[1].const.astype(np.float64)
    if node.op == "MatMul":
        return w.T
    w = w if node.attrs.get("transB", 0) else w.T
    return w * node.attrs.get("alpha", 1.0)


@lowering("Conv")
def _conv(cv: Converter, node: Node) -> None:
    _conv_like(cv, node, "QConv", lambda w: quantize_weight(w, 0, cv.cfg.weight_bits))


@lowering("ConvTranspose")
def _conv_transpose(cv: Converter, node: Node) -> None:
    g = node.attrs["group"]

    def q(w):
        c, mg = w.shape[0], w.shape[1]
        # output channel gi*mg + j owns w[gi*cg:(gi+1)*cg, j]: move it to the front
        per_out = w.reshape(g, c // g, mg, *w.shape[2:]).transpose(0, 2, 1, 3, 4)
        wq, s = quantize_weight(per_out.reshape(g * mg, c // g, *w.shape[2:]), 0,
                                cv.cfg.weight_bits)
        back = wq.reshape(g, mg, c // g, *w.shape[2:]).transpose(0, 2, 1, 3, 4)
        return back.reshape(w.shape), s
    _conv_like(cv, node, "QConvTranspose", q)


@lowering("Gemm", "MatMul")
def _gemm(cv: Converter, node: Node) -> None:
    if node.op == "MatMul" and not node.inputs[1].is_const:
        return _matmul_activations(cv, node)
    bias = node.const_input(2) if node.op == "Gemm" else None
    if bias is not None:
        node_b = (bias.astype(np.float64) * node.attrs.get("beta", 1.0)).reshape(-1)
    view = Node(node.op, node.name, [node.inputs[0],
                                     _detached_const(f"{node.name}/w", _gemm_weight(node)),
                                     _detached_const(f"{node.name}/b", node_b)
                                     if bias is not None else None],
                node.outputs, {k: v for k, v in node.attrs.items()
                               if k.startswith("activation")})
    _conv_like(cv, view, "QGemm", lambda w: quantize_weight(w, 0, cv.cfg.weight_bits))


def _detached_const(name: str, array: np.ndarray) -> Value:
    """A constant Value in no graph: rearranged weights or a reciprocal the lowering reads."""
    return Value(name, TensorType(DType.from_numpy(array.dtype), tuple(array.shape)), array)


def _matmul_activations(cv: Converter, node: Node) -> None:
    a, b = cv.get(node.inputs[0]), cv.get(node.inputs[1])
    out = node.outputs[0]
    dtype = cv.dtype_of(out.name)
    qp = cv.out_qparams(out)
    m, n = quantize_multiplier(effective_scale(a.qparams.scale[0], b.qparams.scale[0],
                                               denominator=qp.scale[0]))
    lo, hi = cv.act_bounds(node, qp, dtype)
    cv.emit("QMatMul", node, [a, b], dict(a_zp=a.qparams.zero_point[0],
                                          b_zp=b.qparams.zero_point[0], y_zp=qp.zero_point[0],
                                          multiplier=m, shift=n, act_min=lo, act_max=hi), out,
            qp, dtype)


@lowering("Add", "Sub")
def _add(cv: Converter, node: Node) -> None:
    a, b = cv.get(node.inputs[0]), cv.get(node.inputs[1])
    out = node.outputs[0]
    dtype = cv.dtype_of(out.name)
    qp = cv.out_qparams(out)
    ma = effective_scale(a.qparams.scale[0], denominator=qp.scale[0])
    mb = effective_scale(b.qparams.scale[0], denominator=qp.scale[0])
    _, shift = quantize_multiplier(max(ma, mb))
    sign = -1 if node.op == "Sub" else 1
    lo, hi = cv.act_bounds(node, qp, dtype)
    if cv.cfg.rounding == "tflite":  # TFLite's ADD/SUB arithmetic (docs/numerics.md)
        twice_max = 2 * max(f32(a.qparams.scale[0]), f32(b.qparams.scale[0]))
        am, an = quantize_multiplier(f32(a.qparams.scale[0]) / twice_max)
        bm, bn = quantize_multiplier(f32(b.qparams.scale[0]) / twice_max)
        om, on = quantize_multiplier(twice_max / ((1 << 20) * f32(qp.scale[0])))
        cv.emit("QAdd", node, [a, b], dict(
            flavor="tflite", a_zp=a.qparams.zero_point[0], b_zp=b.qparams.zero_point[0],
            y_zp=qp.zero_point[0], a_mult=am, a_shift=an, b_mult=bm, b_shift=bn, multiplier=om,
            shift=on, subtract=int(node.op == "Sub"), act_min=lo, act_max=hi), out, qp, dtype)
        return
    cv.emit("QAdd", node, [a, b], dict(a_zp=a.qparams.zero_point[0],
                                       b_zp=b.qparams.zero_point[0], y_zp=qp.zero_point[0],
                                       a_mult=int(round(ma * 2 ** shift)),
                                       b_mult=sign * int(round(mb * 2 ** shift)), shift=shift,
                                       act_min=lo, act_max=hi), out, qp, dtype)


@lowering("Mul", "Div")
def _mul(cv: Converter, node: Node) -> None:
    x_f, c_f = node.inputs[0], node.inputs[1]
    if x_f.is_const:
        x_f, c_f = c_f, x_f
    out = node.outputs[0]
    dtype = cv.dtype_of(out.name)
    qp = cv.out_qparams(out)
    x = cv.get(x_f)
    lo, hi = cv.act_bounds(node, qp, dtype)
    attrs = dict(a_zp=x.qparams.zero_point[0], y_zp=qp.zero_point[0], act_min=lo, act_max=hi)
    if not c_f.is_const:
        b = cv.get(c_f)
        m, n = quantize_multiplier(effective_scale(x.qparams.scale[0], b.qparams.scale[0],
                                                   denominator=qp.scale[0]))
        attrs.update(b_zp=b.qparams.zero_point[0], multiplier=m, shift=n)
        cv.emit("QMul", node, [x, b], attrs, out, qp, dtype)
        return
    c = c_f.const.astype(np.float64)
    if node.op == "Div":
        c = 1.0 / c
    rank = len(out.shape)
    full = (1,) * (rank - c.ndim) + c.shape
    per_channel = c.size > 1 and rank >= 2 and full[1] == c.size and \
        all(d == 1 for i, d in enumerate(full) if i != 1) and cv.cfg.rounding != "tflite"
    if c.size == 1 or per_channel:
        flat = c.reshape(-1)
        # symmetric int8 per channel; the sign goes into the integer, the scale stays positive
        amax = np.abs(flat)
        s_c = np.where(amax > 0, amax / 127, 1.0).astype(np.float32)
        cq = np.round(flat / s_c).astype(np.int8)
        m, n = quantize_multipliers(np.array([effective_scale(x.qparams.scale[0], s,
                                                              denominator=qp.scale[0])
                                              for s in s_c]))
        cv_ = cv.g.add_const(f"{node.name}/const_q", cq.reshape(c.shape))
        cv_.qparams = QParams(tuple(float(s) for s in s_c), (0,) * len(s_c),
                              axis=1 if per_channel else None)
        attrs.update(b_zp=0, multiplier=m, shift=n, axis=1 if per_channel else None)
        cv.emit("QMul", node, [x, cv_], attrs, out, qp, dtype)
        return
    b = cv.get(c_f) if node.op == "Mul" else cv.get(
        _detached_const(f"{node.name}/reciprocal", c.astype(np.float32)))
    m, n = quantize_multiplier(effective_scale(x.qparams.scale[0], b.qparams.scale[0],
                                               denominator=qp.scale[0]))
    attrs.update(b_zp=b.qparams.zero_point[0], multiplier=m, shift=n)
    cv.emit("QMul", node, [x, b], attrs, out, qp, dtype)


@lowering("MaxPool", "Reshape", "Transpose", "Slice", "Split", "Gather", "Resize", "Identity",
          "Dropout")
def _passthrough(cv: Converter, node: Node) -> None:
    cv.passthrough(node)


@lowering("Pad")
def _pad(cv: Converter, node: Node) -> None:
    x = cv.get(node.inputs[0])
    attrs = dict(node.attrs)
    s, z = x.qparams.scale[0], x.qparams.zero_point[0]
    lo, hi = INT_RANGE[x.dtype]
    attrs["value"] = int(np.clip(round(attrs.get("value", 0.0) / s) + z, lo, hi))
    cv.passthrough(node, attrs)


@lowering("Concat")
def _concat(cv: Converter, node: Node) -> None:
    out = node.outputs[0]
    dtype = cv.dtype_of(out.name)
    qp = cv.out_qparams(out)
    ins = []
    for v in node.inputs:
        iv = cv.get(v)
        if iv.qparams != qp or iv.dtype != dtype:
            m, n = quantize_multiplier(effective_scale(iv.qparams.scale[0],
                                                       denominator=qp.scale[0]))
            lo, hi = INT_RANGE[dtype]
            r = cv.g.add_node("Requantize", [iv], [TensorType(dtype, iv.shape)],
                              dict(x_zp=iv.qparams.zero_point[0], y_zp=qp.zero_point[0],
                                   multiplier=m, shift=n, act_min=lo, act_max=hi,
                                   rounding=cv.cfg.rounding, dtype=dtype.value),
                              name=cv.g.unique_name(f"{node.name}/requant"),
                              output_names=[f"{v.name}/requant"])
            r.outputs[0].qparams = qp
            iv = r.outputs[0]
        ins.append(iv)
    n_ = cv.g.add_node("Concat", ins, [TensorType(dtype, out.shape)], dict(node.attrs),
                       name=cv.g.unique_name(node.name), output_names=[out.name])
    n_.outputs[0].qparams = qp
    cv.map[out.name] = n_.outputs[0]


@lowering("AveragePool", "GlobalAveragePool", "ReduceMean")
def _average(cv: Converter, node: Node) -> None:
    x = cv.get(node.inputs[0])
    out = node.outputs[0]
    dtype = cv.dtype_of(out.name)
    qp = cv.out_qparams(out)
    lo, hi = INT_RANGE[dtype]
    attrs = dict(node.attrs, x_zp=x.qparams.zero_point[0], y_zp=qp.zero_point[0], act_min=lo,
                 act_max=hi)
    gap_like = node.op == "GlobalAveragePool" or (
        node.op == "ReduceMean" and node.attrs.get("axes") == [2, 3] and
        node.attrs.get("keepdims", 1) and len(x.shape) == 4)
    tflite_pool = node.op == "AveragePool" and not (
        node.attrs.get("count_include_pad", 0) and any(node.attrs["pads"]))
    if cv.cfg.rounding == "tflite" and (tflite_pool or gap_like):
        # TFLite's AVERAGE_POOL_2D: same quantization in and out, integer rounding division
        qp, dtype = x.qparams, x.dtype
        lo, hi = INT_RANGE[dtype]
        pool = dict(node.attrs) if node.op == "AveragePool" else {
            "kernel_shape": list(x.shape[2:]), "strides": [1, 1], "pads": [0, 0, 0, 0]}
        pool.update(flavor="tflite", x_zp=x.qparams.zero_point[0], y_zp=qp.zero_point[0],
                    act_min=lo, act_max=hi)
        cv.emit("QAveragePool", node, [x], pool, out, qp, dtype)
        return
    if node.op == "AveragePool":
        counts = avg_pool_divisor(x.shape[2:], node.attrs).reshape(-1)
        m, n = quantize_multipliers(np.array([effective_scale(x.qparams.scale[0],
                                                              denominator=qp.scale[0]) / c
                                              for c in counts]))
        attrs.update(multiplier=m, shift=n)
        cv.emit("QAveragePool", node, [x], attrs, out, qp, dtype)
        return
    if node.op == "GlobalAveragePool":
        count = int(np.prod(x.shape[2:]))
    else:
        axes = node.attrs.get("axes")
        count = int(np.prod([x.shape[a] for a in (axes if axes is not None else
                                                   range(len(x.shape)))]))
    if cv.cfg.rounding == "tflite" and node.op == "ReduceMean":
        # TFLite has no integer MEAN with a rescale (its kernel requantizes in float): the
        # TFLite lowering is a FULLY_CONNECTED with weights of 1 at scale 1/count, so the
        # multiplier is derived from those float32 scales as TFLite derives it
        w_scale = float(np.float32(1.0 / count))
        m, n = quantize_multiplier(effective_scale(x.qparams.scale[0], w_scale,
                                                   denominator=qp.scale[0]))
        attrs.update(fc_weight_scale=w_scale)
    else:
        m, n = quantize_multiplier(effective_scale(x.qparams.scale[0],
                                                   denominator=qp.scale[0]) / count)
    attrs.update(multiplier=m, shift=n)
    cv.emit("Q" + node.op, node, [x], attrs, out, qp, dtype)


LUT_OPS = ("Relu", "Clip", "Sigmoid", "Tanh", "HardSwish", "HardSigmoid", "Gelu", "Erf",
           "LeakyRelu", "PRelu", "Exp", "Sqrt", "Neg", "Abs", "Reciprocal", "Rsqrt")


@lowering(*LUT_OPS)
def _lookup(cv: Converter, node: Node) -> None:
    """Element-wise function of one int8 input: a 256-entry table, exact by construction:
    table[q - qmin] = quantize(f(dequantize(q)))."""
    x = cv.get(node.inputs[0])
    if x.dtype != DType.INT8:
        raise EdgeqError(f"{node.op} '{node.name}': lookup tables need an int8 input, got "
                         f"{x.dtype.value}")
    out = node.outputs[0]
    dtype = cv.dtype_of(out.name)
    qp = cv.out_qparams(out)
    lo, hi = INT_RANGE[dtype]
    qs = np.arange(-128, 128)
    xs = ((qs - x.qparams.zero_point[0]) * np.float64(x.qparams.scale[0])).astype(np.float32)
    if node.op == "PRelu":
        slope = float(node.inputs[1].const.reshape(-1)[0])
        ys = np.where(xs >= 0, xs, xs * slope)
    else:
        with np.errstate(all="ignore"):
            ys = KERNELS[node.op](node.attrs, xs)[0].astype(np.float64)
        ys = np.nan_to_num(ys, nan=0.0, posinf=qp.scale[0] * (hi - qp.zero_point[0]),
                           neginf=qp.scale[0] * (lo - qp.zero_point[0]))
    table = np.clip(np.round(ys / qp.scale[0]) + qp.zero_point[0], lo, hi).astype(dtype.numpy)
    cv.emit("QLookup", node, [x], dict(table=table), out, qp, dtype)


SOFTMAX_QPARAMS = QParams((1.0 / 256,), (-128,))


@lowering("Softmax")
def _softmax(cv: Converter, node: Node) -> None:
    x = cv.get(node.inputs[0])
    if x.dtype != DType.INT8:
        raise EdgeqError(f"Softmax '{node.name}': needs an int8 input, got {x.dtype.value}")
    attrs = dict(axis=len(x.shape) - 1, y_zp=-128, act_min=-128, act_max=127)
    if cv.cfg.rounding == "tflite":  # TFLite's own int8 softmax (gemmlowp fixed point)
        from edgeq.quant.gemmlowp import softmax_exp_table

        attrs.update(flavor="tflite", exp_table=softmax_exp_table(
            float(np.float32(x.qparams.scale[0]))).astype(np.int32))
    else:
        d = np.arange(256, dtype=np.float64)
        attrs["exp_table"] = np.round(65536.0 * np.exp(-d * x.qparams.scale[0])).astype(
            np.int32)
    cv.emit("QSoftmax", node, [x], attrs, node.outputs[0], SOFTMAX_QPARAMS, DType.INT8)


@lowering("LayerNormalization")
def _layer_norm(cv: Converter, node: Node) -> None:
    x = cv.get(node.inputs[0])
    out = node.outputs[0]
    dtype = cv.dtype_of(out.name)
    qp = cv.out_qparams(out)
    k = x.shape[-1]
    gamma = node.const_input(1)
    gamma = np.ones(k) if gamma is None else np.broadcast_to(gamma.astype(np.float64), (k,))
    beta = node.const_input(2)
    s_x, s_y = x.qparams.scale[0], qp.scale[0]
    mult = math.sqrt(k) * np.abs(gamma) / s_y
    m, n = quantize_multipliers(mult)
    eps_q = max(1, int(round(node.attrs.get("epsilon", 1e-5) * k ** 3 / (s_x * s_x))))
    lo, hi = INT_RANGE[dtype]
    attrs = dict(x_zp=x.qparams.zero_point[0], y_zp=qp.zero_point[0], multiplier=m, shift=n,
                 eps_q=eps_q, act_min=lo, act_max=hi,
                 gamma_sign=None if np.all(gamma >= 0) else np.sign(gamma).astype(np.int64),
                 beta_q=None if beta is None else np.round(
                     np.broadcast_to(beta.astype(np.float64), (k,)) / s_y).astype(np.int64))
    cv.emit("QLayerNorm", node, [x], attrs, out, qp, dtype)


def convert(fg: Graph, ranges: dict[str, tuple[float, float]], cfg: QuantConfig,
            channel_means: dict[str, np.ndarray] | None = None,
            moments: dict[str, np.ndarray] | None = None) -> tuple[Graph, ConvertInfo]:
    cv = Converter(fg, ranges, cfg, channel_means, moments)
    g = cv.run()
    cv.info.int16_values = [v for v in cfg.int16 if v in cv.map]
    return g, cv.info
