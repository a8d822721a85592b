"""Helpers the quantize rules share: the linear layers' common form (per-output-channel int8
weights, int32 bias at ``s_x * s_w[c]``, one multiplier per channel) and detached constants."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import numpy as np

from edgeq.ir.graph import DType, Node, QParams, TensorType, Value
from edgeq.numerics.dyadic import effective_scale, quantize_multipliers
from edgeq.numerics.scheme import bias_scale_floor, quantize_bias
from edgeq.ops.base import has

if TYPE_CHECKING:
    from edgeq.quant.convert import Converter


def detached_const(name: str, array: np.ndarray) -> Value:
    """A constant Value in no graph: rearranged weights or a reciprocal the lowering reads."""
    return Value(name, TensorType(DType.from_numpy(array.dtype), tuple(array.shape)), array)


def quantize_linear(cv: Converter, node: Node, op: str,
                    w_axis_fn: Callable[[np.ndarray, np.ndarray | None],
                                        tuple[np.ndarray, np.ndarray]]) -> None:
    """Conv, ConvTranspose, Gemm and MatMul with constant weights: ``w_axis_fn(w, min_scale)``
    quantizes the weight per output channel (scales at least ``min_scale``, the floor at which
    the bias fits: dead channels); the converter rounds it (GPTQ for ops with the
    ``compensated_weights`` trait, where calibration gathered second moments) and corrects the
    bias."""
    x = cv.get(node.inputs[0])
    out = node.outputs[0]
    dtype = cv.dtype_of(out.name)
    qp = cv.out_qparams(out)
    s_x = x.qparams.scale[0]
    w = node.inputs[1].const
    _, s_own = w_axis_fn(w, None)
    cout = len(s_own)
    b = node.const_input(2)
    b = np.zeros(cout) if b is None else np.broadcast_to(b.astype(np.float64), (cout,)).copy()
    floor = bias_scale_floor(b, s_x)
    raised = np.flatnonzero(floor > s_own)
    wq, s_w = w_axis_fn(w, floor if raised.size else None)
    if raised.size:
        cv.info.weight_scale_floors[node.name] = [int(c) for c in raised]
    if has(node.op, "compensated_weights"):
        wq = cv.round_weights(node, w, wq, s_w)
    b = cv.correct_bias(node, w, wq, s_w, b)
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


def constant_weights(node: Node) -> str | None:
    """Weights (and bias) are constants."""
    if any(v is not None and not v.is_const for v in node.inputs[1:]):
        return "weights must be constants"
    return None
