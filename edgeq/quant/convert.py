"""Float graph + calibration ranges -> integer-only graph (docs/numerics.md is the spec).

The converter drives the ops' quantize rules (``edgeq.ops``: each op's rule and the reason it
refuses live with the op) and provides what they share: calibration ranges turned into
quantization parameters (``edgeq.numerics.scheme``), constants quantized on demand, weight
rounding (error-compensated, GPTQ-style, where calibration gathered second moments), bias
correction, and ``emit``. Integer values keep the float value's name, so reports can compare
layer by layer. Every node that cannot be lowered is listed at once, with its reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from edgeq.ir.graph import DType, EdgeqError, Graph, Node, QParams, TensorType, Value
from edgeq.numerics.dyadic import ROUNDING_RULES
from edgeq.numerics.scheme import INT_RANGE, activation_qparams
from edgeq.ops import infer_node, quantize_reason
from edgeq.ops.base import QUANTIZE
from edgeq.quant.gptq import gptq_round


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
    weight_scale_floors: dict[str, list[int]] = field(default_factory=dict)
    gptq: list[str] = field(default_factory=list)
    int16_values: list[str] = field(default_factory=list)


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

    def intermediate(self, op: str, inputs: list[Value], attrs: dict, qp: QParams, dtype: DType,
                     name: str, move: bool = False) -> Value:
        """A node inside one float node's integer form (its output has no float twin):
        ``name`` names it and its output. Integer ops get the rounding rule and dtype; data
        movement (``move``) keeps its attributes as given."""
        if not move:
            attrs.setdefault("rounding", self.cfg.rounding)
            attrs["dtype"] = dtype.value
        n = self.g.add_node(op, inputs, [TensorType(dtype, ())], attrs,
                            name=self.g.unique_name(name),
                            output_names=[self.g.unique_name(name)])
        n.outputs[0].type = infer_node(n)[0]
        n.outputs[0].qparams = qp
        return n.outputs[0]

    def move(self, node: Node, op: str, inputs: list[Value], attrs: dict) -> Value:
        """The last node of ``node``'s integer form when it moves data: its output is the
        float output's twin (same name), with its input's quantization."""
        x = inputs[0]
        out = node.outputs[0]
        n = self.g.add_node(op, inputs, [TensorType(x.dtype, out.shape)], attrs,
                            name=self.g.unique_name(node.name), output_names=[out.name])
        if infer_node(n)[0].shape != out.shape:
            raise AssertionError(f"{op} '{node.name}': integer shape differs from {out.shape}")
        n.outputs[0].qparams = x.qparams
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

    # --- services the quantize rules share -----------------------------------------------------
    def round_weights(self, node: Node, w: np.ndarray, wq: np.ndarray, s_w: np.ndarray
                      ) -> np.ndarray:
        """Error-compensated (GPTQ-style) rounding of ``node``'s weight where calibration
        gathered its input's second moments; nearest rounding (``wq``) otherwise."""
        if self.cfg.weight_rounding != "gptq" or node.name not in self.moments:
            return wq
        h = self.moments[node.name]
        g = h.shape[0]
        mg = w.shape[0] // g
        qmax = 127 if self.cfg.weight_bits == 8 else 7
        out = wq.copy()
        for gi in range(g):
            rows = slice(gi * mg, (gi + 1) * mg)
            q = gptq_round(w[rows].reshape(mg, -1), s_w[rows], h[gi], qmax)
            if q is None:  # H not positive definite: keep nearest rounding for this layer
                return wq
            out[rows] = q.reshape(out[rows].shape)
        self.info.gptq.append(node.name)
        return out.astype(np.int8)

    def correct_bias(self, node: Node, w: np.ndarray, wq: np.ndarray, s_w: np.ndarray,
                     b: np.ndarray) -> np.ndarray:
        """Empirical bias correction: subtract the expected output shift the weight rounding
        causes, ``E[(Wq*s - W) x] = (Wq*s - W) E[x]`` with the per-channel input mean from
        calibration. ``w`` is (N, K) for Gemm/MatMul, OIHW for Conv."""
        mean = self.channel_means.get(node.inputs[0].name)
        if not self.cfg.bias_correction or mean is None:
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
        elif node.op in ("Gemm", "MatMul"):
            if mean.shape[0] != w.shape[1]:
                return b
            shift = ((wq.astype(np.float64) * s_w.reshape(-1, 1) - w) * mean[None, :]).sum(
                axis=1)
        else:
            return b
        self.info.bias_corrected.append(node.name)
        return b - shift

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
            try:
                QUANTIZE[node.op](self, node)
            except EdgeqError:
                raise
            except (ValueError, ArithmeticError) as e:  # a rescale no integer form can hold
                raise EdgeqError(f"cannot quantize {node.op} '{node.name}': {e}") from None
        self.g.outputs = [self.get(v) for v in self.fg.outputs]
        self.g.prune_values()
        return self.g


def check_graph(fg: Graph) -> None:
    """Raise one error listing every node that cannot become integer ops, with its reason."""
    problems = [f"{node.op} '{node.name}': {why}" for node in fg.nodes
                if (why := quantize_reason(node))]
    if problems:
        raise EdgeqError("cannot quantize: " + "; ".join(problems))


def convert(fg: Graph, ranges: dict[str, tuple[float, float]], cfg: QuantConfig,
            channel_means: dict[str, np.ndarray] | None = None,
            moments: dict[str, np.ndarray] | None = None) -> tuple[Graph, ConvertInfo]:
    cv = Converter(fg, ranges, cfg, channel_means, moments)
    g = cv.run()
    cv.info.int16_values = [v for v in cfg.int16 if v in cv.map]
    return g, cv.info
