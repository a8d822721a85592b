"""What each op may say in a model file: the attributes its kernel and shape rule read by name
and trust, their kinds and ranges, its arity and per-channel parameters (``check_node``). A
model file (``edgeq.serialize``) is checked against these before any of it runs, so every
refusal is one ``EdgeqError`` naming the node and the field."""

from __future__ import annotations

import inspect
import json
import math
from typing import Any, Callable

import numpy as np

from edgeq.ir.graph import DType, EdgeqError, Node, Value
from edgeq.ops import base as ops
from edgeq.ops.pool import pool_output_hw
from edgeq.ops.resize import LINEAR_MODES

INT64 = (-(1 << 63), (1 << 63) - 1)


def is_int(a: Any) -> bool:
    return isinstance(a, int) and not isinstance(a, bool)


def is_num(a: Any) -> bool:
    return (is_int(a) or isinstance(a, float)) and not (isinstance(a, float) and math.isnan(a))


KIND_NAMES = {"str": "a string", "list": "a list", "dict": "an object", "int": "an integer"}


def shown(a: Any) -> str:
    text = json.dumps(a) if not isinstance(a, np.ndarray) else f"an array {a.dtype}{list(a.shape)}"
    return text if len(text) <= 60 else text[:57] + "..."


# --- what each op may say -----------------------------------------------------------------------
#
# Each op's kernel and shape rule (edgeq.ops) read the attributes below by name and trust them:
# a model file is checked against them before any of it runs. Kinds are per attribute name,
# the same for every op that has it; REQUIRED lists what each op's kernel indexes directly.

def _int(lo: int = INT64[0], hi: int = INT64[1]) -> Callable[[Any], bool]:
    return lambda a: is_int(a) and lo <= a <= hi


def _ints(lo: int = INT64[0], hi: int = INT64[1], n: int | None = None) -> Callable[[Any], bool]:
    return lambda a: isinstance(a, list) and all(is_int(x) and lo <= x <= hi for x in a) and (
        n is None or len(a) == n)


def _int_array(lo: int, hi: int) -> Callable[[Any], bool]:
    """An integer, a list of integers or an integer array (per-channel parameters)."""
    def ok(a: Any) -> bool:
        if isinstance(a, np.ndarray):
            return a.dtype.kind in "iu" and a.size > 0 and bool(
                np.all((a >= lo) & (a <= hi)))
        return _int(lo, hi)(a) or (bool(a) and _ints(lo, hi)(a))
    return ok


def _optional(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda a: a is None or check(a)


def _nums(a: Any) -> bool:
    return isinstance(a, list) and all(is_num(x) for x in a)


def _real_scales(a: Any) -> bool:
    vals = list(a) if isinstance(a, (list, np.ndarray)) else [a]
    return bool(vals) and all((is_num(x) or isinstance(x, np.floating)) and math.isfinite(x)
                              and x >= 0 for x in vals)


INT_DTYPES = ("int8", "uint8", "int16", "int32")
RESIZE_MODES = ("half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric",
                "tf_half_pixel_for_nn")
I32 = (-(1 << 31), (1 << 31) - 1)
MULT = _int_array(*I32)
SHIFT = _int_array(0, 63)
ZP = _int(*I32)
ATTR_KINDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "x_zp": (ZP, "a 32-bit integer"), "y_zp": (ZP, "a 32-bit integer"),
    "a_zp": (ZP, "a 32-bit integer"), "b_zp": (ZP, "a 32-bit integer"),
    "act_min": (ZP, "a 32-bit integer"), "act_max": (ZP, "a 32-bit integer"),
    "multiplier": (MULT, "32-bit integer(s)"), "shift": (SHIFT, "shift(s) in [0, 63]"),
    "a_mult": (_optional(MULT), "a 32-bit integer"), "b_mult": (_optional(MULT),
                                                                "32-bit integer(s)"),
    "a_shift": (_optional(SHIFT), "a shift in [0, 63]"),
    "b_shift": (_optional(SHIFT), "a shift in [0, 63]"),
    "pos_mult": (MULT, "a 32-bit integer"), "neg_mult": (MULT, "a 32-bit integer"),
    "pos_shift": (SHIFT, "a shift in [0, 63]"), "neg_shift": (SHIFT, "a shift in [0, 63]"),
    "eps_q": (_int(1, I32[1]), "a positive integer"),
    "real_scale": (_real_scales, "finite non-negative number(s)"),
    "rounding": (lambda a: a in ("edgeq", "tflite", "float64"), "edgeq, tflite or float64"),
    "dtype": (lambda a: a in INT_DTYPES, f"one of {', '.join(INT_DTYPES)}"),
    "flavor": (lambda a: a is None or isinstance(a, str), "a string"),
    "subtract": (_int(0, 1), "0 or 1"),
    "table": (_int_array(*INT64), "an integer array"),
    "exp_table": (_int_array(*I32), "an integer array"),
    "gamma_sign": (_optional(_int_array(-1, 1)), "signs"),
    "beta_q": (_optional(_int_array(*I32)), "32-bit integers"),
    "axis": (_optional(_int(-64, 64)), "an axis"),
    "axes": (_optional(_ints(-64, 64)), "a list of axes"),
    "keepdims": (_int(0, 1), "0 or 1"), "ceil_mode": (_int(0, 1), "0 or 1"),
    "count_include_pad": (_int(0, 1), "0 or 1"),
    "transA": (_int(0, 1), "0 or 1"), "transB": (_int(0, 1), "0 or 1"),
    "group": (_int(1, I32[1]), "a positive integer"),
    "kernel_shape": (_ints(1, I32[1], 2), "two positive integers"),
    "strides": (_ints(1, I32[1], 2), "two positive integers"),
    "dilations": (_ints(1, I32[1], 2), "two positive integers"),
    "output_padding": (_ints(0, I32[1], 2), "two integers >= 0"),
    "pads": (_ints(*I32), "a list of integers"),
    "perm": (_ints(0, 64), "a permutation"),
    "split": (_ints(1, INT64[1]), "positive integers"),
    "sizes": (_ints(1, INT64[1]), "positive integers"),
    "scales": (lambda a: _nums(a) and all(math.isfinite(x) and x > 0 for x in a),
               "finite numbers above 0"),
    "shape": (_ints(1, INT64[1]), "positive integers"),
    "starts": (_ints(), "integers"), "steps": (_ints(), "integers"),
    "ends": (lambda a: isinstance(a, list) and all(x is None or is_int(x) for x in a),
             "integers or nulls"),
    "size": (_int(1, 1 << 16), "a positive integer"),
    "to": (lambda a: a in [d.value for d in DType if d is not DType.INT4], "a dtype"),
    "activation": (lambda a: a in (None, "Relu", "Clip"), "Relu or Clip"),
    "mode": (lambda a: isinstance(a, str), "a string"),
    "coordinate_transformation_mode": (lambda a: a in RESIZE_MODES, "a coordinate mode"),
    "nearest_mode": (lambda a: isinstance(a, str), "a string"),
    "approximate": (lambda a: isinstance(a, str), "a string"),
    "value": (lambda a: is_num(a) or isinstance(a, np.ndarray) and a.size > 0, "a number"),
    **{k: (is_num, "a number") for k in (
        "alpha", "beta", "epsilon", "eps", "bias", "min", "max", "activation_min",
        "activation_max", "fc_weight_scale")},
}

_CONV = ("kernel_shape", "strides", "pads", "dilations", "group")
_POOL = ("kernel_shape", "strides", "pads")
_OUT = ("y_zp", "act_min", "act_max", "dtype", "rounding")
REQUIRED: dict[str, tuple[str, ...]] = {
    "Conv": _CONV, "ConvTranspose": _CONV + ("output_padding",),
    "QConv": _CONV + ("x_zp",) + _OUT,
    "QConvTranspose": _CONV + ("output_padding", "x_zp") + _OUT,
    "MaxPool": _POOL, "AveragePool": _POOL, "QAveragePool": _POOL + _OUT,
    "QGlobalAveragePool": ("x_zp",) + _OUT, "QReduceMean": ("x_zp",) + _OUT,
    "QGemm": ("x_zp",) + _OUT, "QMatMul": ("a_zp", "b_zp") + _OUT,
    "QAdd": ("a_zp", "b_zp", "a_mult", "b_mult", "shift") + _OUT,
    "QMul": ("a_zp", "b_zp") + _OUT, "Requantize": ("x_zp",) + _OUT,
    "QMax": ("a_zp", "b_zp", "a_mult", "a_shift", "b_mult", "b_shift") + _OUT,
    "QMin": ("a_zp", "b_zp", "a_mult", "a_shift", "b_mult", "b_shift") + _OUT,
    "QLookup": ("table", "dtype"),
    "QPRelu": ("x_zp", "a_zp", "pos_mult", "pos_shift", "neg_mult", "neg_shift") + _OUT,
    "QLayerNorm": ("x_zp", "eps_q", "multiplier", "shift") + _OUT,
    "QSoftmax": ("axis", "exp_table", "y_zp", "act_min", "act_max", "dtype"),
    "QResize": ("sizes", "coordinate_transformation_mode"),
    "Resize": ("sizes", "scales", "mode", "coordinate_transformation_mode"),
    "Concat": ("axis",), "Split": ("axis", "split"),
    "Slice": ("starts", "ends", "axes", "steps"), "Pad": ("pads",), "Reshape": ("shape",),
    "Transpose": ("perm",), "Cast": ("to",), "LRN": ("size",),
}
# ops whose kernel rescales by multiplier/shift (or real_scale): the channel axis of their
# per-channel parameters
REQUANT_AXIS = {"QConv": 1, "QConvTranspose": 1, "QGemm": -1, "QMatMul": None, "QMul": None,
                "Requantize": None, "QGlobalAveragePool": None, "QReduceMean": None}


def _arity(op: str) -> tuple[int, float]:
    """(fewest, most) inputs the op's kernel takes (its signature, after the attributes)."""
    params = list(inspect.signature(ops.kernel_of(op)).parameters.values())[1:]
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return max(1, sum(p.default is p.empty for p in params if p.kind is not
                          p.VAR_POSITIONAL)), math.inf
    return sum(p.default is p.empty for p in params), len(params)


def _size(a: Any) -> int:
    return int(np.asarray(a).size)


def check_node(node: Node, what: str) -> None:
    """Refuse a node whose inputs, outputs or attributes its op's shape rule or kernel would
    not take (each reason names the field). Needs only the declared types of its values."""
    op, a = node.op, node.attrs
    d = ops.get(op)
    if d.shape is None or d.kernel is None:
        raise EdgeqError(f"{what}: op {op} cannot appear in a model file (it is folded at "
                         f"import)")
    ins = list(node.inputs)
    while ins and ins[-1] is None:
        ins.pop()
    if any(v is None for v in ins):
        raise EdgeqError(f"{what}: input {ins.index(None)} is empty but a later one is given")
    lo, hi = _arity(op)
    if not lo <= len(ins) <= hi:
        want = f"{lo}" if lo == hi else f"{lo} to {hi}" if hi < math.inf else f"at least {lo}"
        raise EdgeqError(f"{what}: takes {want} input(s), has {len(ins)}")
    for k in REQUIRED.get(op, ()):
        if k not in a:
            raise EdgeqError(f"{what}: missing attribute '{k}'")
    for k, val in a.items():
        kind = ATTR_KINDS.get(k)
        if kind is not None and not kind[0](val):
            raise EdgeqError(f"{what}: attribute '{k}' is {shown(val)}, expected {kind[1]}")
    vs: list[Value] = ins  # type: ignore[assignment]
    shapes = [v.shape for v in vs]
    x = shapes[0] if shapes else ()
    rank = len(x)

    def need(ok: Any, why: str) -> None:
        if not ok:
            raise EdgeqError(f"{what}: {why}")

    def axis_ok(ax: Any, r: int = rank) -> bool:
        return is_int(ax) and -r <= ax < r
    for i, v in enumerate(vs):
        if not (op == "Where" and i == 0):
            need(v.dtype.numpy.kind in "iuf", f"input '{v.name}' is {v.dtype.value}, expected "
                                              f"numbers")
    integer = ops.has(op, "integer")
    if integer:
        for v in vs:
            need(v.dtype.numpy.kind in "iu", f"input '{v.name}' is {v.dtype.value}; an integer "
                                             f"op takes integers")
        if "act_min" in a and "act_max" in a:
            info = np.iinfo(np.dtype(a["dtype"]))
            need(info.min <= a["act_min"] <= a["act_max"] <= info.max,
                 f"act_min {a['act_min']} / act_max {a['act_max']} do not bound {a['dtype']}")
    if a.get("activation") == "Clip":
        need("activation_min" in a and "activation_max" in a,
             "a fused Clip needs activation_min and activation_max")
    if ops.has(op, "elementwise") and len(vs) == 2 and not integer or op in (
            "MatMul", "Gemm", "Concat", "Where"):
        same = vs[1:] if op == "Where" else vs
        need(len({v.dtype for v in same}) <= 1, f"inputs of different dtypes "
                                                 f"({', '.join(v.dtype.value for v in same)})")
    if op == "Pow":
        need(all(v.dtype.is_float for v in vs), "Pow takes float inputs")
    if op in ("Conv", "QConv", "ConvTranspose", "QConvTranspose"):
        w = shapes[1]
        need(rank == 4 and len(w) == 4, f"input {list(x)} and weight {list(w)} must be 4-D")
        need(list(w[2:]) == a["kernel_shape"], f"kernel_shape {a['kernel_shape']} differs from "
                                               f"the weight's {list(w[2:])}")
        need(len(a["pads"]) == 4 and min(a["pads"]) >= 0, f"pads {a['pads']} must be 4 "
                                                          f"integers >= 0")
        g = a["group"]
        if op in ("Conv", "QConv"):
            need(x[1] % g == 0 and w[0] % g == 0 and w[1] * g == x[1],
                 f"group={g} with {x[1]} input channels and weight {list(w)} is not a valid "
                 f"grouping")
            cout = w[0]
        else:
            need(w[0] == x[1] and x[1] % g == 0, f"group={g} with {x[1]} input channels and "
                                                 f"weight {list(w)} is not a valid grouping")
            cout = w[1] * g
        if len(shapes) > 2:
            need(shapes[2] == (cout,), f"bias {list(shapes[2])} must be [{cout}]")
    if op in ("MaxPool", "AveragePool", "QAveragePool"):
        need(rank == 4, f"input {list(x)} must be 4-D")
        need(len(a["pads"]) == 4 and min(a["pads"]) >= 0, f"pads {a['pads']} must be 4 "
                                                          f"integers >= 0")
        if op != "MaxPool":
            need(a.get("dilations", [1, 1]) == [1, 1], "dilations must be [1, 1]")
        ohw = pool_output_hw(x[2:], a["kernel_shape"], a["strides"], a["pads"],
                             a.get("dilations", [1, 1]), a.get("ceil_mode", 0))
        need(min(ohw) >= 1, f"kernel {a['kernel_shape']} does not fit the input {list(x)}")
        if op == "QAveragePool" and a.get("flavor") != "tflite":
            for k in ("x_zp", "multiplier", "shift"):
                need(k in a, f"missing attribute '{k}'")
                need(k == "x_zp" or _size(a[k]) == ohw[0] * ohw[1],
                     f"'{k}' needs one value per output pixel ({ohw[0] * ohw[1]})")
    if op in REQUANT_AXIS:
        ax = a.get("axis") if op == "QMul" else REQUANT_AXIS[op]
        out_shape = node.outputs[0].shape
        if ax is not None and not axis_ok(ax, len(out_shape)):
            raise EdgeqError(f"{what}: axis {ax} is not an axis of the output {list(out_shape)}")
        channels = out_shape[ax if ax is not None else -1] if out_shape else 1
        keys = ("real_scale",) if a["rounding"] == "float64" else ("multiplier", "shift")
        for k in keys:
            need(k in a, f"missing attribute '{k}'")
            need(_size(a[k]) in (1, channels), f"'{k}' has {_size(a[k])} values for "
                                               f"{channels} channels")
    if op in ("Gemm", "QGemm"):
        w = shapes[1]
        need(len(w) == 2 and (rank == 2 if op == "Gemm" else rank >= 1),
             f"input {list(x)} and weight {list(w)} do not multiply")
        if op == "QGemm" and len(shapes) > 2:
            need(shapes[2] == (w[0],), f"bias {list(shapes[2])} must be [{w[0]}]")
        if op == "Gemm" and len(shapes) > 2:
            m = x[1] if a.get("transA", 0) else x[0]
            n = w[0] if a.get("transB", 0) else w[1]
            need(_broadcasts_to(shapes[2], (m, n)), f"C {list(shapes[2])} does not broadcast "
                                                    f"to [{m}, {n}]")
    if op in ("MatMul", "QMatMul"):
        need(rank >= 1 and len(shapes[1]) >= 1, "inputs must have rank 1 or more")
    if op == "MatMul" and len(shapes) > 2:  # a folded bias: one value per output column
        need(len(shapes[1]) == 2 and shapes[2] == (shapes[1][1],),
             f"bias {list(shapes[2])} must be [{shapes[1][-1]}] for weight {list(shapes[1])}")
    if op == "QAdd":
        if a.get("flavor") == "tflite":
            for k in ("a_shift", "b_shift", "multiplier"):
                need(k in a, f"missing attribute '{k}'")
            need(all(is_int(a[k]) for k in ("a_mult", "b_mult", "a_shift", "b_shift",
                                               "multiplier", "shift")),
                 "the tflite flavor takes one multiplier and shift per input")
        else:
            out_shape = node.outputs[0].shape
            need(is_int(a["a_mult"]) and is_int(a["shift"]), "a_mult and shift are per "
                                                               "tensor")
            if _size(a["b_mult"]) > 1:
                ax = a.get("axis")
                need(axis_ok(ax, len(out_shape)) and _size(a["b_mult"]) == out_shape[ax],
                     f"{_size(a['b_mult'])} b_mult values do not match axis {ax} of "
                     f"{list(out_shape)}")
    if op in ("QMax", "QMin"):
        for p in ("a", "b"):
            m, n = a[f"{p}_mult"], a[f"{p}_shift"]
            need((m is None) == (n is None) and (m is None or is_int(m) and is_int(n)),
                 f"{p}_mult and {p}_shift are one integer each or both null")
    if op == "QLookup":
        info = np.iinfo(vs[0].dtype.numpy)
        need(a["table"].ndim == 1 if isinstance(a["table"], np.ndarray) else True,
             "table must be 1-D")
        need(_size(a["table"]) == info.max - info.min + 1,
             f"table has {_size(a['table'])} entries; a {vs[0].dtype.value} input needs "
             f"{info.max - info.min + 1}")
    if op in ("QPRelu", "PRelu", "LayerNormalization"):
        for s in shapes[1:]:
            need(_broadcasts_to(s, x), f"{list(s)} does not broadcast to the input {list(x)}")
    if op == "QLayerNorm":
        need(rank >= 1, "input must have rank 1 or more")
        for k in ("multiplier", "shift", "gamma_sign", "beta_q"):
            if a.get(k) is not None:
                need(_size(a[k]) in (1, x[-1]), f"'{k}' has {_size(a[k])} values for "
                                                f"{x[-1]} features")
    if "axis" in a and op not in ("QMul", "QAdd"):  # null means "no axis" only for these
        need(axis_ok(a["axis"]), f"axis {shown(a['axis'])} is not an axis of {list(x)}")
    if op == "QSoftmax":
        info = np.iinfo(vs[0].dtype.numpy)
        need(_size(a["exp_table"]) >= info.max - info.min + 1,
             f"exp_table has {_size(a['exp_table'])} entries; a {vs[0].dtype.value} input "
             f"needs {info.max - info.min + 1}")
        need(np.asarray(a["exp_table"]).ndim == 1, "exp_table must be 1-D")
    if op in ("ReduceMean", "QReduceMean") and a.get("axes") is not None:
        axes = a["axes"]
        need(all(0 <= i < rank for i in axes) and len(set(axes)) == len(axes),
             f"axes {axes} must be distinct axes of {list(x)} (0 to {rank - 1})")
    if op == "Split":
        need(len(a["split"]) == len(node.outputs), f"{len(a['split'])} split sizes for "
                                                   f"{len(node.outputs)} outputs")
    if op == "Slice":
        n = len(a["starts"])
        need(len(a["ends"]) == n == len(a["axes"]) == len(a["steps"]),
             "starts, ends, axes and steps differ in length")
        need(all(axis_ok(i) for i in a["axes"]), f"axes {a['axes']} are not axes of {list(x)}")
        need(0 not in a["steps"], "a step is 0")
    if op == "Pad":
        p = a["pads"]
        need(len(p) == 2 * rank, f"pads {p} must hold 2 x {rank} integers")
        need(a.get("mode", "constant") in ("constant", "reflect", "edge"),
             f"mode {a.get('mode')!r} (constant, reflect or edge)")
        need(is_num(a.get("value", 0)), "value must be a number")
        need(all(d - max(0, -p[i]) - max(0, -p[i + rank]) >= 1 for i, d in enumerate(x)),
             f"pads {p} crop all of an axis of {list(x)}")
    if op == "Transpose":
        need(sorted(a["perm"]) == list(range(rank)), f"perm {a['perm']} is not a permutation "
                                                     f"of {rank} axes")
    if op == "Gather":
        need(rank >= 1, "input must have rank 1 or more")
        idx = vs[1]
        need(idx.is_const and idx.dtype.numpy.kind in "iu", "indices must be an integer "
                                                            "constant")
        dim = x[a.get("axis", 0)]
        need(bool(np.all((idx.const >= -dim) & (idx.const < dim))),
             f"indices outside [{-dim}, {dim})")
    if op == "Expand":
        target = vs[1]
        need(target.is_const and target.const.ndim == 1 and target.dtype.numpy.kind in "iu" and
             bool(np.all(target.const >= 1)),
             "the target shape must be a 1-D constant of positive integers")
    if op == "Resize":
        need(len(a["sizes"]) == len(a["scales"]) == rank,
             f"sizes and scales need one entry per axis of {list(x)}")
        need(a["mode"] in ("nearest", "linear"), f"mode {a['mode']!r} (nearest or linear)")
    if op == "QResize":
        need(rank == 4 and len(a["sizes"]) == 4 and list(a["sizes"][:2]) == list(x[:2]),
             f"sizes {a['sizes']} must resize H and W of the 4-D input {list(x)}")
        ctm = a["coordinate_transformation_mode"]
        need(ctm in set(LINEAR_MODES.values()), f"coordinate_transformation_mode {ctm!r}")
        need(a.get("dtype", vs[0].dtype.value) == vs[0].dtype.value,
             "dtype must be the input's")
        for ax in (2, 3):
            need(_last_linear_tap(x[ax], a["sizes"][ax], ctm) <= x[ax] - 1,
                 f"upsampling {x[ax]} -> {a['sizes'][ax]} passes the input")
    if op == "BatchNormalization":
        need(rank >= 2 and all(s == (x[1],) for s in shapes[1:]),
             f"scale, bias, mean and var must be [{x[1] if rank >= 2 else '?'}]")
    if op == "LRN":
        need(rank >= 2, "input must have rank 2 or more")


def _last_linear_tap(in_len: int, out_len: int, mode: str) -> int:
    """The largest source index ``edgeq.ops.resize.linear_taps`` gives (its ``lo`` grows with
    the output index, so the last one), from the sizes alone: calling it would allocate
    arrays of the length the file declares."""
    if mode == "align_corners" and out_len > 1:
        s10 = (1024 * (in_len - 1) + (out_len - 1) // 2) // (out_len - 1)
    else:
        s10 = (1024 * in_len + out_len // 2) // out_len
    c = (out_len - 1) * s10 + (s10 // 2 - 512 if mode == "half_pixel" else 0)
    return max(c // 1024 if c >= 0 else -(-c // 1024), 0)


def _broadcasts_to(s: tuple[int, ...], to: tuple[int, ...]) -> bool:
    try:
        return tuple(np.broadcast_shapes(s, to)) == tuple(to)
    except ValueError:
        return False
