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


def axis_in(node: Node, axis, rank: int, what: str = "axis") -> int:
    """``axis`` (ONNX: -rank <= axis < rank) as 0 <= axis < rank; refused, naming the node,
    when out of range."""
    ax = int(axis)
    if not -rank <= ax < rank:
        raise EdgeqError(f"{node.op} '{node.name}': {what} {ax} is out of range for a rank-{rank} "
                         f"input")
    return ax % rank


def shape_input(node: Node, i: int, what: str = "shape") -> tuple[int, ...]:
    """A constant 1-D integer input read as dimensions (non-negative)."""
    v = node.input(i)
    if v is None or v.const is None:
        raise EdgeqError(f"{node.op} '{node.name}': the {what} input must be constant")
    c = v.const
    if c.ndim != 1 or c.dtype.kind not in "iu":
        raise EdgeqError(f"{node.op} '{node.name}': {what} must be a 1-D integer tensor, got "
                         f"{c.dtype}{list(c.shape)}")
    dims = tuple(int(d) for d in c)
    if any(d < 0 for d in dims):
        raise EdgeqError(f"{node.op} '{node.name}': {what} {list(dims)} has a negative "
                         f"dimension")
    return dims


@shape_rule("Expand")
def _expand_shape(node, ts):
    shape = shape_input(node, 1)
    return [TensorType(ts[0].dtype, broadcast(node, [ts[0].shape, shape]))]


@shape_rule("Shape")
def _shape_shape(node, ts):
    r = len(ts[0].shape)
    start, end = node.attrs.get("start", 0), node.attrs.get("end", r)
    n = len(range(r)[int(start):int(end)])  # ONNX clamps start and end like Python slicing
    return [TensorType(DType.INT64, (n,))]


@shape_rule("ConstantOfShape")
def _constant_of_shape_shape(node, ts):
    v = node.attrs.get("value", np.zeros(1, np.float32))
    if not isinstance(v, np.ndarray) or v.size != 1:
        raise EdgeqError(f"ConstantOfShape '{node.name}': value must be a one-element tensor")
    return [TensorType(DType.from_numpy(v.dtype), shape_input(node, 0))]


def range_length(node: Node, start, limit, delta) -> int:
    """ONNX Range's element count ``max(ceil((limit - start) / delta), 0)``, computed from the
    scalars before anything is allocated (delta 0 and non-finite bounds refused)."""
    import math

    vals = []
    for what, c in (("start", start), ("limit", limit), ("delta", delta)):
        if c is None or c.size != 1:
            raise EdgeqError(f"Range '{node.name}': {what} must be a constant scalar")
        if c.dtype != start.dtype:
            raise EdgeqError(f"Range '{node.name}': start, limit and delta must have one type, "
                             f"got {start.dtype} and {c.dtype}")
        x = c.reshape(-1)[0].item()
        if isinstance(x, float) and not math.isfinite(x):
            raise EdgeqError(f"Range '{node.name}': {what} is {x}")
        vals.append(x)
    lo, hi, step = vals
    if step == 0:
        raise EdgeqError(f"Range '{node.name}': delta is 0")
    if isinstance(lo, int) and isinstance(hi, int) and isinstance(step, int):
        return max(-((lo - hi) // step), 0)
    n = (hi - lo) / step
    if not math.isfinite(n):
        raise EdgeqError(f"Range '{node.name}': ({hi} - {lo}) / {step} elements is not a "
                         f"finite count")
    return max(math.ceil(n), 0)


@shape_rule("Range")
def _range_shape(node, ts):
    n = range_length(node, node.const_input(0), node.const_input(1), node.const_input(2))
    return [TensorType(ts[0].dtype, (n,))]


@shape_rule("Concat")
def _concat_shape(node, ts):
    if not ts:
        raise EdgeqError(f"Concat '{node.name}': no inputs")
    ax = axis_in(node, node.attrs["axis"], len(ts[0].shape))
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
    ax = axis_in(node, node.attrs["axis"], len(ts[0].shape))
    sizes = [int(n) for n in node.attrs["split"]]
    if not sizes or any(n < 0 for n in sizes):
        raise EdgeqError(f"Split '{node.name}': split sizes {sizes} must be one or more "
                         f"non-negative sizes")
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
    r = len(ts[0].shape)
    a = node.attrs
    if node.op == "Transpose":
        if sorted(int(p) for p in a["perm"]) != list(range(r)):
            raise EdgeqError(f"Transpose '{node.name}': perm {list(a['perm'])} is not a "
                             f"permutation of the {r} axes")
    else:
        n = len(a["starts"])
        if not len(a["ends"]) == len(a["axes"]) == len(a["steps"]) == n:
            raise EdgeqError(f"Slice '{node.name}': starts, ends, axes and steps differ in "
                             f"length")
        axes = [axis_in(node, ax, r, "axes entry") for ax in a["axes"]]
        if len(set(axes)) != len(axes):
            raise EdgeqError(f"Slice '{node.name}': axes {list(a['axes'])} repeat an axis")
        if any(int(sp) == 0 for sp in a["steps"]):
            raise EdgeqError(f"Slice '{node.name}': a step is 0")
    dummies = [np.lib.stride_tricks.as_strided(np.zeros(1, t.dtype.numpy), t.shape,
                                               [0] * len(t.shape)) for t in ts]
    outs = KERNEL[node.op](node.attrs, *dummies)
    return [TensorType(ts[0].dtype, tuple(o.shape)) for o in outs]


@shape_rule("Reshape")
def _reshape_shape(node, ts):
    shape = tuple(int(d) for d in node.attrs["shape"])
    if any(d < 0 for d in shape):
        raise EdgeqError(f"Reshape '{node.name}': target shape {list(shape)} has a negative "
                         f"dimension")
    if int(np.prod(shape, dtype=object)) != ts[0].size:
        raise EdgeqError(f"Reshape '{node.name}': cannot reshape {list(ts[0].shape)} "
                         f"({ts[0].size} elements) to {list(shape)}")
    return [TensorType(ts[0].dtype, shape)]


@shape_rule("Pad")
def _pad_shape(node, ts):
    p = [int(x) for x in node.attrs["pads"]]
    x = ts[0].shape
    r = len(x)
    if len(p) != 2 * r:
        raise EdgeqError(f"Pad '{node.name}': {len(p)} pads for a rank-{r} input (expected "
                         f"{2 * r})")
    out = tuple(d + p[i] + p[i + r] for i, d in enumerate(x))
    if any(d < 0 for d in out):
        raise EdgeqError(f"Pad '{node.name}': pads {p} crop more than the input {list(x)} has")
    mode = node.attrs.get("mode", "constant")
    for i, d in enumerate(x):
        # after a negative pad crops, reflect needs a pad below the (cropped) size, edge data
        grow, kept = max(p[i], 0) + max(p[i + r], 0), d + min(p[i], 0) + min(p[i + r], 0)
        if grow and mode == "reflect" and max(p[i], p[i + r]) >= kept:
            raise EdgeqError(f"Pad '{node.name}': reflect pads {p[i]}, {p[i + r]} on axis {i} "
                             f"need an axis longer than {max(p[i], p[i + r])} (it is {kept})")
        if grow and mode == "edge" and kept == 0:
            raise EdgeqError(f"Pad '{node.name}': edge padding of the empty axis {i}")
    return [TensorType(ts[0].dtype, out)]


@shape_rule("Gather")
def _gather_shape(node, ts):
    s = ts[0].shape
    if not s:
        raise EdgeqError(f"Gather '{node.name}': the data input is a scalar")
    ax = axis_in(node, node.attrs.get("axis", 0), len(s))
    if s[ax] == 0 and ts[1].size:
        raise EdgeqError(f"Gather '{node.name}': gathers from the empty axis {ax}")
    idx = node.const_input(1)
    if idx is not None and idx.size and (idx.dtype.kind not in "iu" or idx.min() < -s[ax] or
                                         idx.max() >= s[ax]):
        raise EdgeqError(f"Gather '{node.name}': indices {idx.min()}..{idx.max()} are out of "
                         f"range for axis {ax} of size {s[ax]}")
    return [TensorType(ts[0].dtype, s[:ax] + ts[1].shape + s[ax + 1:])]


@shape_rule("Cast")
def _cast_shape(node, ts):
    try:
        to = DType.from_numpy(node.attrs["to"])
    except (EdgeqError, TypeError):
        raise EdgeqError(f"Cast '{node.name}': cannot cast to {node.attrs['to']!r}") from None
    return [TensorType(to, ts[0].shape)]


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
    ax = a.get("axis", 0)
    n = x.shape[ax]
    i = idx.astype(np.int64)
    # ONNX: a negative index counts from the end; indices outside [-n, n) are an error, which
    # import refuses for constant indices; computed ones are clamped instead of crashing
    return (np.take(x, np.where(i < 0, i + n, i), axis=ax, mode="clip"),)


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
    lo, hi, step = (np.asarray(v).reshape(-1)[0] for v in (start, limit, delta))
    return (np.arange(lo, hi, step).astype(start.dtype),)


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
