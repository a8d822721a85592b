"""Data movement and shape arithmetic: Concat, Split, Slice, Pad, Reshape, Transpose, Gather,
Cast, Shape, ConstantOfShape, Expand, Range, Identity, Dropout.

On integers they move values and keep the input's quantization; Pad's constant becomes
``round(value / s) + z``; Concat requantizes the inputs whose parameters differ from the
output's (a Requantize node each) and then joins them. Shape arithmetic (Shape,
ConstantOfShape, Range, Cast, ...) is constant-folded at import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from edgeq.ir.graph import DType, EdgeqError, Node, TensorType
from edgeq.numerics.dyadic import effective_scale, quantize_multiplier
from edgeq.numerics.scheme import INT_RANGE
from edgeq.ops.base import (KERNEL, Attrs, kernel, quantize_check, quantize_rule, shape_rule,
                            traits)
from edgeq.ops.elementwise import broadcast

if TYPE_CHECKING:
    from edgeq.quant.convert import Converter

traits("Reshape", "Transpose", "Slice", "Split", "Pad", "Gather", add="keeps_qparams")
traits("Reshape", "Transpose", "Slice", "Split", "Pad", "Gather", "Concat", add="moves_data")
traits("Reshape", "Transpose", "Slice", "Split", "Concat", "Pad", "Gather", add="int16_input")
traits("Reshape", add=("alias", "channel_scale_commutes"))
traits("Concat", "Slice", "Split", add="axis_attr")
traits("Reshape", "Transpose", add="reorders")
traits("Pad", add="image")


@shape_rule("Identity", "Dropout")
def _same_shape(node: Node, ts: list[TensorType]) -> list[TensorType]:
    return [ts[0]]


@shape_rule("Expand")
def _expand_shape(node, ts):
    shape = node.inputs[1].const
    if shape is None:
        raise EdgeqError(f"Expand '{node.name}': the target shape must be constant")
    return [TensorType(ts[0].dtype, broadcast(node, [ts[0].shape, tuple(int(d) for d in shape)]))]


@shape_rule("Concat")
def _concat_shape(node, ts):
    ax = node.attrs["axis"]
    base = list(ts[0].shape)
    for t in ts[1:]:
        if len(t.shape) != len(base) or any(a != b for i, (a, b) in
                                             enumerate(zip(t.shape, base)) if i != ax):
            raise EdgeqError(f"Concat '{node.name}': input shapes "
                             f"{[list(t.shape) for t in ts]} differ outside axis {ax}")
    base[ax] = sum(t.shape[ax] for t in ts)
    return [TensorType(ts[0].dtype, tuple(base))]


@shape_rule("Split")
def _split_shape(node, ts):
    ax, sizes = node.attrs["axis"], node.attrs["split"]
    if sum(sizes) != ts[0].shape[ax]:
        raise EdgeqError(f"Split '{node.name}': split sizes {sizes} do not add up to "
                         f"{ts[0].shape[ax]}")
    out = []
    for n in sizes:
        s = list(ts[0].shape)
        s[ax] = n
        out.append(TensorType(ts[0].dtype, tuple(s)))
    return out


@shape_rule("Slice", "Transpose")
def _meta_eval_shape(node: Node, ts: list[TensorType]) -> list[TensorType]:
    """Shape of ops whose output shape is cheapest to get by indexing an empty-strided array."""
    dummies = [np.lib.stride_tricks.as_strided(np.zeros(1, t.dtype.numpy), t.shape,
                                               [0] * len(t.shape)) for t in ts]
    outs = KERNEL[node.op](node.attrs, *dummies)
    return [TensorType(ts[0].dtype, tuple(o.shape)) for o in outs]


@shape_rule("Reshape")
def _reshape_shape(node, ts):
    shape = tuple(node.attrs["shape"])
    if int(np.prod(shape)) != ts[0].size:
        raise EdgeqError(f"Reshape '{node.name}': cannot reshape {list(ts[0].shape)} "
                         f"({ts[0].size} elements) to {list(shape)}")
    return [TensorType(ts[0].dtype, shape)]


@shape_rule("Pad")
def _pad_shape(node, ts):
    p = node.attrs["pads"]
    r = len(ts[0].shape)
    return [TensorType(ts[0].dtype, tuple(d + p[i] + p[i + r] for i, d in
                                          enumerate(ts[0].shape)))]


@shape_rule("Gather")
def _gather_shape(node, ts):
    s = ts[0].shape
    ax = node.attrs.get("axis", 0) % max(len(s), 1)
    return [TensorType(ts[0].dtype, s[:ax] + ts[1].shape + s[ax + 1:])]


@shape_rule("Cast")
def _cast_shape(node, ts):
    return [TensorType(DType.from_numpy(node.attrs["to"]), ts[0].shape)]


# --- kernels --------------------------------------------------------------------------------


@kernel("Identity", "Dropout")
def identity(a: Attrs, x, *rest):
    return (x,)


@kernel("Concat")
def concat(a: Attrs, *xs):
    return (np.concatenate(xs, axis=a["axis"]),)


@kernel("Split")
def split(a: Attrs, x):
    idx = np.cumsum(a["split"])[:-1]
    return tuple(np.split(x, idx, axis=a["axis"]))


@kernel("Slice")
def slice_(a: Attrs, x):
    sl = [slice(None)] * x.ndim
    for st, en, ax, sp in zip(a["starts"], a["ends"], a["axes"], a["steps"]):
        sl[ax] = slice(st, None if en is None else en, sp)
    return (x[tuple(sl)],)


@kernel("Pad")
def pad(a: Attrs, x):
    p = a["pads"]
    r = x.ndim
    begin, end = p[:r], p[r:]
    # negative pads crop
    sl = tuple(slice(max(0, -b), x.shape[i] - max(0, -e)) for i, (b, e) in
               enumerate(zip(begin, end)))
    x = x[sl]
    width = [(max(0, b), max(0, e)) for b, e in zip(begin, end)]
    mode = a.get("mode", "constant")
    if mode == "constant":
        return (np.pad(x, width, constant_values=a.get("value", 0)),)
    if mode == "reflect":
        return (np.pad(x, width, mode="reflect"),)
    return (np.pad(x, width, mode="edge"),)


@kernel("Reshape")
def reshape(a: Attrs, x):
    return (x.reshape(a["shape"]),)


@kernel("Transpose")
def transpose(a: Attrs, x):
    return (np.transpose(x, a["perm"]),)


@kernel("Gather")
def gather(a: Attrs, x, idx):
    return (np.take(x, idx.astype(np.int64), axis=a.get("axis", 0)),)


@kernel("Cast")
def cast(a: Attrs, x):
    return (x.astype(a["to"]),)


@kernel("Shape")
def shape(a: Attrs, x):
    dims = np.array(x.shape, dtype=np.int64)
    return (dims[a.get("start", 0): a.get("end")],)


@kernel("ConstantOfShape")
def constant_of_shape(a: Attrs, s):
    v = a.get("value", np.zeros(1, np.float32))
    return (np.full(tuple(int(d) for d in s), v.reshape(-1)[0], dtype=v.dtype),)


@kernel("Expand")
def expand(a: Attrs, x, s):
    shape = np.broadcast_shapes(x.shape, tuple(int(d) for d in s))
    return (np.ascontiguousarray(np.broadcast_to(x, shape)),)


@kernel("Range")
def range_(a: Attrs, start, limit, delta):
    return (np.arange(start, limit, delta).astype(start.dtype),)


# --- quantize rules -------------------------------------------------------------------------


@quantize_rule("Reshape", "Transpose", "Slice", "Split", "Gather", "Identity", "Dropout")
def _quantize_passthrough(cv: Converter, node: Node) -> None:
    cv.passthrough(node)


@quantize_rule("Pad")
def _quantize_pad(cv: Converter, node: Node) -> None:
    x = cv.get(node.inputs[0])
    attrs = dict(node.attrs)
    s, z = x.qparams.scale[0], x.qparams.zero_point[0]
    lo, hi = INT_RANGE[x.dtype]
    attrs["value"] = int(np.clip(round(attrs.get("value", 0.0) / s) + z, lo, hi))
    cv.passthrough(node, attrs)


@quantize_rule("Concat")
def _quantize_concat(cv: Converter, node: Node) -> None:
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


@quantize_check("Pad")
def _pad_check(node: Node) -> str | None:
    """Mode constant, reflect or edge."""
    if node.attrs.get("mode", "constant") not in ("constant", "reflect", "edge"):
        return "unsupported pad mode"
    return None
