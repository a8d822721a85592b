"""Integer graph -> C99 source (model.h, model.c) over the kernels of ``edgeq_rt.h``.

Every activation lives in one static arena at the offset the memory planner gave it
(``edgeq.schedule.arena.plan_memory``); weights, biases, multipliers and tables are ``const``
arrays (flash on a microcontroller). With a patch plan, the leading stage runs patch by patch:
a table holds each patch's output region per stage node, tiles alternate between the two ends of
one scratch block, and the last stage node writes into the split layer's full output.

Each op's C lowering is one function in ``LOWER``, registered (``@lowering``) with its support
checks and the kind of kernel it has (``Kernel``): a spatial kernel computes a region of its
output between two ``eq_view`` buffers, so one function writes the whole layer and every patch
of the patch stage; an element-wise kernel walks a strided 4-D index space (``eq_bcast``), a
whole tensor or one tile; an alias only moves bytes; the others run whole layers. Parameter
structs are written with designated initializers (``{.cin = 3, .cout = 8, ...}``), so every
value is tied to its field's name in ``edgeq_rt.h``, not to its position.

Where an op's indexing is data-independent (Slice, Gather with constant indices, Resize, the
taps of QConvTranspose and QResize), the indices are computed here, with the functions the
integer interpreter uses, and emitted as ``const`` tables: the C code follows them and holds no
coordinate arithmetic of its own that could round differently.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Callable

import numpy as np

from edgeq.backends.base import Refusal
from edgeq.ir.graph import DType, EdgeqError, Graph, Node, Value
from edgeq.ir.registry import registrar
from edgeq.ops.resize import linear_taps, nearest_index, resize_coords
from edgeq.schedule.arena import PATCH_SCRATCH, dw_scratch
from edgeq.schedule.patch import chain_prefix, patches

MAX_RANK = 6
MAX_ACC_TERMS = (2**31 - 1) // (255 * 128)  # int32 accumulation stays exact below this

Check = Callable[[Node], "str | None"]


class Kernel(Enum):
    """What the emitter may do with an op's kernel."""

    SPATIAL = "spatial"  # a region of the output between two views: whole layer or one patch
    ELEMENTWISE = "elementwise"  # a strided 4-D index space: whole tensor or one tile
    ALIAS = "alias"  # the same bytes under another shape: at most a memmove
    LAYER = "layer"  # whole layers only


@dataclass(frozen=True)
class Lowering:
    """One op's C lowering. ``emit`` returns the C statement, called as

    - ``emit(em, node, tile=None)`` for a spatial kernel (``tile`` None: the whole layer);
    - ``emit(em, node, bcast, pa, py)`` for an element-wise kernel (its ``eq_bcast`` and the
      first input's and the output's pointers, whole tensor or tile alike);
    - ``emit(em, node)`` otherwise (None: nothing to run).

    ``checks`` return a user-readable refusal reason or None; ``per_channel``: an element-wise
    kernel whose multiplier varies along ``attrs["axis"]``.
    """

    emit: Callable[..., str | None]
    kernel: Kernel
    checks: tuple[Check, ...] = ()
    per_channel: bool = False
    int16: bool = False  # also takes int16 activations (requantization, data movement)

    def refusal(self, node: Node) -> str | None:
        """The reason of the first check that fails on ``node``, or None."""
        for check in self.checks:
            reason = check(node)
            if reason:
                return reason
        return None


LOWER: dict[str, Lowering] = {}
SUPPORTED = LOWER.keys()
_register = registrar(LOWER)


def lowering(*ops: str, kernel: Kernel = Kernel.LAYER, checks: tuple[Check, ...] = (),
             per_channel: bool = False, int16: bool = False) -> Callable[[Callable], Callable]:
    """``@lowering("QConv", kernel=Kernel.SPATIAL, checks=(...))``: the decorated function is
    the C lowering of ``ops`` (see ``Lowering`` for how it is called)."""
    def deco(fn: Callable) -> Callable:
        _register(*ops)(Lowering(fn, kernel, checks, per_channel, int16))
        return fn
    return deco


def supports(graph: Graph) -> list[Refusal]:
    """One refusal per graph input that is not int8, per graph output that is neither int8 nor
    int16 (``edgeq_output(i)`` holds ``EDGEQ_OUTPUTi_TYPE`` values) and per node the C backend
    cannot take (the first reason that applies to it)."""
    out = []
    for kind, values, types in (("input", graph.inputs, (DType.INT8,)),
                                ("output", graph.outputs, (DType.INT8, DType.INT16))):
        for v in values:
            if v.dtype not in types:
                out.append(Refusal("", "", f"graph {kind} {v.name!r} is {v.dtype.value}; the "
                                           f"C backend takes "
                                           f"{' or '.join(t.value for t in types)} {kind}s"))
    for node in graph.nodes:
        lw = LOWER.get(node.op)
        reason = "no C kernel for this op" if lw is None else (
            _int8_reason(node) or lw.refusal(node))
        if reason:
            out.append(Refusal(node.op, node.name, reason))
    return out


def _lowering(node: Node) -> Lowering:
    lw = LOWER.get(node.op)
    if lw is None:  # pragma: no cover - supports() refuses these first
        raise EdgeqError(f"{node.name}: no C kernel for {node.op}")
    return lw


# --- support checks (each returns the reason it fails, or None) ---------------------------------


def _int8_reason(node: Node) -> str | None:
    """Every activation the node reads or writes is int8, except in Requantize and data
    movement (Concat, Split, Transpose, Slice, Reshape and its aliases), which take int16 too."""
    for v in node.inputs + node.outputs:
        if v is not None and not v.is_const and v.dtype != DType.INT8 and not (
                v.dtype == DType.INT16 and node.op in LOWER and LOWER[node.op].int16):
            return (f"{v.name} is {v.dtype.value}; the C kernels are int8 (int16 activations "
                    f"are not lowered to C, except in Requantize and data movement)")
    return None


def patchable(graph: Graph) -> bool:
    """The leading chain the patch stage may take (``chain_prefix``) is int8 throughout: its
    tiles are int8 views."""
    return all(v.dtype == DType.INT8 for n in chain_prefix(graph)
               for v in n.inputs + n.outputs if v is not None and not v.is_const)


def _batch1_nchw(node: Node) -> str | None:
    """The input is one NCHW map (rank 4, batch 1): the kernels index c x H x W."""
    x = node.inputs[0]
    if len(x.shape) != 4 or x.shape[0] != 1:
        return f"needs a batch-1 NCHW input, got shape {list(x.shape)}"
    return None


def _acc_terms(k: int) -> str | None:
    if k > MAX_ACC_TERMS:
        return f"{k} terms per output overflow int32 accumulation (limit {MAX_ACC_TERMS})"
    return None


def _conv_terms_fit(node: Node) -> str | None:
    """At most MAX_ACC_TERMS products per output (cin/group x kernel), so int32 is exact."""
    return _acc_terms(node.inputs[1].shape[1] * int(np.prod(node.attrs["kernel_shape"])))


def _gemm_terms_fit(node: Node) -> str | None:
    """At most MAX_ACC_TERMS products per output (the inner dimension), so int32 is exact."""
    return _acc_terms(node.inputs[0].shape[-1])


def _conv_transpose_terms_fit(node: Node) -> str | None:
    """At most MAX_ACC_TERMS products per output (cin/group x kernel), so int32 is exact."""
    return _acc_terms(node.inputs[1].shape[0] // node.attrs["group"]
                      * int(np.prod(node.attrs["kernel_shape"])))


def _constant_indices(node: Node) -> str | None:
    """Constant indices, each within the gathered axis (the index table is built at compile
    time)."""
    x, idx = node.inputs[0], node.inputs[1]
    if not idx.is_const:
        return f"needs constant indices, got the activation {idx.name}"
    ax = node.attrs.get("axis", 0)
    dim = x.shape[ax]
    bad = [int(i) for i in np.asarray(idx.const).reshape(-1) if not -dim <= i < dim]
    if bad:
        return f"indices {bad} are outside axis {ax} of size {dim}"
    return None


def _gather_shape(node: Node) -> str | None:
    """The output shape is the gather's: the input's, with the gathered axis replaced by the
    indices' shape."""
    x, idx, y = node.inputs[0], node.inputs[1], node.outputs[0]
    ax = node.attrs.get("axis", 0) % len(x.shape)
    want = list(x.shape[:ax]) + list(idx.shape) + list(x.shape[ax + 1:])
    if list(y.shape) != want:
        return f"output shape {list(y.shape)} is not the gather's {want} (axis {ax})"
    return None


def _nearest(node: Node) -> str | None:
    """Nearest resizing (a gather through index tables)."""
    if node.attrs.get("mode") != "nearest":
        return f"mode {node.attrs.get('mode')!r} has no C kernel; only nearest is a gather"
    return None


def _constant_mode(node: Node) -> str | None:
    """Constant padding (no reflect or edge mode)."""
    if node.attrs.get("mode", "constant") != "constant":
        return f"only constant padding, got mode {node.attrs.get('mode')!r}"
    return None


def _spatial_pads(node: Node) -> str | None:
    """Non-negative padding of the two spatial axes only."""
    p = node.attrs["pads"]
    if any(v < 0 for v in p) or p[0] or p[1] or p[4] or p[5]:
        return f"only non-negative spatial padding, got pads {list(p)}"
    return None


def _rank_at_most_4(node: Node) -> str | None:
    """An output of rank <= 4 (``eq_bcast`` index spaces are 4-D)."""
    if len(node.outputs[0].shape) > 4:
        return f"rank {len(node.outputs[0].shape)} > 4"
    return None


def _rank_at_most_max(node: Node) -> str | None:
    """An input of rank <= MAX_RANK (``EQ_MAX_RANK`` in edgeq_rt.h)."""
    if len(node.inputs[0].shape) > MAX_RANK:
        return f"rank {len(node.inputs[0].shape)} > {MAX_RANK}"
    return None


def _transpose_rank_fits(node: Node) -> str | None:
    """An input of rank <= MAX_RANK, one less for int16 (``eq_transpose`` moves bytes: an int16
    element's two bytes are one more axis)."""
    x = node.inputs[0]
    rank, limit = len(x.shape), MAX_RANK - (x.dtype.itemsize > 1)
    if rank > limit:
        return f"rank {rank} > {limit}" + (" (int16)" if limit < MAX_RANK else "")
    return None


def _two_activations(node: Node) -> str | None:
    """Two activations with equal batch dimensions (constant right operands become QGemm)."""
    a, b = node.inputs[0].shape, node.inputs[1].shape
    if node.inputs[1].is_const or len(a) < 2 or list(a[:-2]) != list(b[:-2]):
        return f"needs two activations with equal batch dimensions, got {list(a)} @ {list(b)}"
    return None


def _reduced_axes(node: Node) -> list[int]:
    rank = len(node.inputs[0].shape)
    return sorted(ax % rank for ax in (node.attrs.get("axes") or range(rank)))


def _adjacent_axes(node: Node) -> str | None:
    """The reduced axes are adjacent (one outer x reduce x inner loop)."""
    axes = _reduced_axes(node)
    if axes != list(range(axes[0], axes[-1] + 1)):
        return f"reduces non-adjacent axes {axes}"
    return None


def _last_axis(node: Node) -> str | None:
    """Softmax over the last axis (rows of contiguous values)."""
    rank = len(node.inputs[0].shape)
    if node.attrs["axis"] % rank != rank - 1:
        return "softmax over a non-last axis"
    return None


def _layernorm_shift_fits(node: Node) -> str | None:
    """Rescale shifts, plus the 16 bits of the Q16 normalized value, of at most 62."""
    if np.asarray(node.attrs["shift"]).max(initial=0) + 16 > 62:
        return "rescale shift above 62"
    return None


# --- C text ----------------------------------------------------------------------------------
def _4d(shape) -> list[int]:
    shape = list(shape)
    return [1] * (4 - len(shape)) + shape


def _strides(shape) -> list[int]:
    s = [1] * 4
    for i in (2, 1, 0):
        s[i] = s[i + 1] * shape[i + 1]
    return s


def _bcast_strides(shape, out) -> list[int]:
    shape = _4d(shape)
    return [0 if shape[i] == 1 and out[i] != 1 else st for i, st in enumerate(_strides(shape))]


def _c_array(ctype: str, name: str, values) -> str:
    vals = [str(int(v)) for v in np.asarray(values).reshape(-1)]
    body = ",\n".join("    " + ", ".join(vals[i:i + 16]) for i in range(0, len(vals), 16))
    return f"static const {ctype} {name}[{max(len(vals), 1)}] = {{\n{body or '    0'}\n}};"


def _fields(**values) -> str:
    """A C designated initializer in the order given: ``{.cin = 3, .cout = 8}``."""
    return "{" + ", ".join(f".{k} = {v}" for k, v in values.items()) + "}"


def _list(values) -> str:
    """A C array initializer: ``{1, 8, 4, 4}``."""
    return "{" + ", ".join(map(str, values)) + "}"


def _window(a: dict) -> dict:
    """The window fields shared by ``eq_conv_t`` and ``eq_pool_t``."""
    kh, kw = a["kernel_shape"]
    sh, sw = a["strides"]
    dh, dw = a.get("dilations", [1, 1])
    return dict(kh=kh, kw=kw, sh=sh, sw=sw, dh=dh, dw=dw, pt=a["pads"][0], pl=a["pads"][1])


def _rule(a: dict) -> str:
    return "EQ_RULE_TFLITE" if a.get("rounding") == "tflite" else "EQ_RULE_EDGEQ"


def _ident(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name)


def _operand_b(node: Node) -> Value:
    """An element-wise node's second operand (its first for a one-input op)."""
    return node.inputs[1] if len(node.inputs) > 1 else node.inputs[0]


def _axis4(node: Node, lw: Lowering) -> int:
    """The per-channel axis in the 4-D index space, or -1."""
    ax = node.attrs.get("axis")
    if ax is None or not lw.per_channel:
        return -1
    rank = len(node.outputs[0].shape)
    return (ax % rank) + 4 - rank


@dataclass(frozen=True)
class Tile:
    """Where a spatial kernel runs in the patch stage: its input and output ``eq_view``
    expressions and the output region ``r0, r1, c0, c1``."""

    x: str
    y: str
    region: str


class Emitter:
    def __init__(self, plan):
        self.plan = plan
        self.decls: list[str] = []
        self.body: list[str] = []
        self.layers: list[str] = []  # node names in execution order (the profile's table)
        self.consts: dict[tuple, str] = {}
        self.n = 0

    # --- constants -------------------------------------------------------------------------
    def const(self, ctype: str, values, hint: str) -> str:
        arr = np.asarray(values)
        key = (ctype, arr.dtype.str, arr.shape, arr.tobytes())
        if key not in self.consts:
            name = f"k{len(self.consts)}_{_ident(hint)[-40:]}"
            self.decls.append(_c_array(ctype, name, arr))
            self.consts[key] = name
        return self.consts[key]

    def requant(self, node: Node, a: dict) -> str:
        """An ``eq_requant`` initializer from ``a``'s multiplier, shift, y_zp and bounds."""
        m = np.atleast_1d(np.asarray(a["multiplier"], np.int64))
        s = np.atleast_1d(np.asarray(a["shift"], np.int64))
        if s.max(initial=0) > 62 or s.min(initial=0) < 0:
            raise EdgeqError(f"{node.name}: shift outside [0, 62]")
        return _fields(mult=self.const("int32_t", m, node.name + "_m"),
                       shift=self.const("int8_t", s, node.name + "_s"), n_mult=m.size,
                       y_zp=int(a["y_zp"]), act_min=int(a["act_min"]),
                       act_max=int(a["act_max"]), rule=_rule(a))

    def struct(self, ctype: str, init: str) -> str:
        """A ``static const`` parameter struct; returns its name."""
        self.n += 1
        name = f"p{self.n}"
        self.decls.append(f"static const {ctype} {name} = {init};")
        return name

    # --- arena -----------------------------------------------------------------------------
    def ptr(self, v: Value) -> str:
        if v.is_const:
            return self.const("int8_t", v.const, v.name)
        return f"(A + {self.plan.offset_of(v.name)})"

    def full_view(self, v: Value) -> str:
        _, c, h, w = _4d(v.shape)
        return f"eq_full({self.ptr(v)}, {c}, {h}, {w})"

    # --- nodes -----------------------------------------------------------------------------
    def spatial(self, node: Node, kernel: str, params: str, tile: Tile | None) -> str:
        """``kernel(params, &x, &y, region)`` over ``tile``, or over the whole layer."""
        if tile is None:
            x, y = node.inputs[0], node.outputs[0]
            tile = Tile(self.full_view(x), self.full_view(y), f"0, {y.shape[2]}, 0, {y.shape[3]}")
        return (f"{{ eq_view x = {tile.x}, y = {tile.y}; "
                f"{kernel}({params}, &x, &y, {tile.region}); }}")

    def profiled(self, node: Node) -> int:
        """The node's index in the profile's layer table (``edgeq_layer_names``)."""
        self.layers.append(node.name)
        return len(self.layers) - 1

    def layer(self, node: Node) -> None:
        """One node, whole layer."""
        lw = _lowering(node)
        x, y = node.inputs[0], node.outputs[0]
        k = self.profiled(node)
        self.body.append(f"    /* {node.name}: {node.op} {list(x.shape)} -> {list(y.shape)} */")
        if lw.kernel is Kernel.ELEMENTWISE:
            d = _4d(y.shape)
            bc = self.struct("eq_bcast", _fields(
                d=_list(d), sa=_list(_bcast_strides(x.shape, d)),
                sb=_list(_bcast_strides(_operand_b(node).shape, d)), sy=_list(_strides(d)),
                axis=_axis4(node, lw)))
            stmt = lw.emit(self, node, "&" + bc, self.ptr(x), self.ptr(y))
        else:
            stmt = lw.emit(self, node)
        self.body.append("    EQ_PROF_BEGIN();")
        if stmt:
            self.body.append("    " + stmt)
        self.body.append(f"    EQ_PROF_END({k});")

    def stage(self, stage: list[Node], regions: list[list[tuple]], scratch: int,
              scratch_bytes: int) -> None:
        """The patched leading stage: one loop over patches."""
        ns = len(stage)
        table = self.const("int16_t", np.asarray(regions, np.int64), "patch_regions")
        self.body.append(f"    /* patch-based stage: {len(regions)} patches x {ns} layers "
                         f"({stage[0].name} .. {stage[-1].name}) */")
        self.body.append(f"    for (int pi = 0; pi < {len(regions)}; pi++) {{")
        self.body.append(f"        const int16_t *R = {table} + pi * {ns * 4};")
        self.body.append("        eq_view t_in, t_out;")
        lo, hi_end = f"(A + {scratch})", f"(A + {scratch + scratch_bytes})"
        ks = [self.profiled(node) for node in stage]  # each layer's count sums its patches
        for i, node in enumerate(stage):
            lw = _lowering(node)
            x, y = node.inputs[0], node.outputs[0]
            r = f"R[{4 * i}], R[{4 * i + 1}], R[{4 * i + 2}], R[{4 * i + 3}]"
            c = y.shape[1]
            _, _, yh, yw = y.shape
            size = f"({c} * (R[{4 * i + 1}] - R[{4 * i}]) * (R[{4 * i + 3}] - R[{4 * i + 2}]))"
            xview = self.full_view(x) if i == 0 else "t_in"
            if i == ns - 1:
                yview = self.full_view(y)
            else:
                base = lo if i % 2 == 0 else f"({hi_end} - {size})"
                yview = f"eq_tile({base}, {c}, {yh}, {yw}, {r})"
            self.body.append(f"        /* {node.name}: {node.op} */")
            self.body.append("        EQ_PROF_BEGIN();")
            self.body.append(f"        t_out = {yview};")
            if lw.kernel is Kernel.SPATIAL:
                self.body.append("        " + lw.emit(self, node, Tile(xview, "t_out", r)))
            elif lw.kernel is Kernel.ELEMENTWISE:
                src = "t_in" if i else "t_src"
                if i == 0:
                    self.body.append(f"        eq_view t_src = {xview};")
                d = f"{{1, {c}, R[{4 * i + 1}] - R[{4 * i}], R[{4 * i + 3}] - R[{4 * i + 2}]}}"
                b = _operand_b(node)
                sb = _bcast_strides(b.shape, [1, c, 2, 2]) if b.is_const else [0, 0, 0, 0]
                if b.is_const and any(s > 1 for s in _4d(b.shape)[2:]):
                    raise EdgeqError(f"{node.name}: a constant with spatial extent cannot be "
                                     f"tiled in the patch stage")
                bcast = _fields(d=d, sa="{0}", sb=_list(sb), sy="{0}", axis=_axis4(node, lw))
                self.body.append(
                    f"        {{ eq_bcast B = {bcast}; "
                    f"const int8_t *pa = eq_view_at(&{src}, R[{4 * i}], R[{4 * i + 2}], B.sa); "
                    f"int8_t *py = eq_view_at(&t_out, R[{4 * i}], R[{4 * i + 2}], B.sy); "
                    + lw.emit(self, node, "&B", "pa", "py") + " }")
            else:
                raise EdgeqError(f"{node.name}: {node.op} has no C kernel that runs patch by "
                                 f"patch")
            self.body.append(f"        EQ_PROF_END({ks[i]});")
            self.body.append("        t_in = t_out;")
        self.body.append("    }")


# --- spatial kernels -----------------------------------------------------------------------------
@lowering("QConv", kernel=Kernel.SPATIAL, checks=(_batch1_nchw, _conv_terms_fit))
def _qconv(em: Emitter, node: Node, tile: Tile | None = None) -> str:
    """Grouped 2-D convolution; a whole layer the planner placed over its own input (depthwise)
    runs in place, channel by channel through a one-plane scratch."""
    a = node.attrs
    x, w, y = node.inputs[0], node.inputs[1], node.outputs[0]
    b = node.inputs[2] if len(node.inputs) > 2 and node.inputs[2] is not None else None
    bias = em.const("int32_t", b.const, b.name) if b is not None else "0"
    params = "&" + em.struct("eq_conv_t", _fields(
        cin=x.shape[1], cout=w.shape[0], group=a["group"], **_window(a), x_zp=int(a["x_zp"]),
        w=em.const("int8_t", w.const, w.name), bias=bias, q=em.requant(node, a)))
    if tile is None and em.ptr(x) == em.ptr(y):
        _, _, h, wd = x.shape
        _, _, oh, ow = y.shape
        return (f"eq_conv_dw_inplace({params}, {em.ptr(x)}, {h}, {wd}, {oh}, {ow}, "
                f"(A + {em.plan.offset_of(dw_scratch(node))}));")
    return em.spatial(node, "eq_conv", params, tile)


def _transpose_taps(out_len: int, in_len: int, k: int, s: int, d: int, pad: int
                    ) -> tuple[list[int], list[int], list[int]]:
    """(first, inputs, kernels): output index o receives input index i through kernel index t
    where o + pad == i * s + t * d (the interpreter's scatter at stride * i + dilation * t,
    cropped by the begin padding); the taps of o are [first[o], first[o + 1])."""
    first, ins, ks = [0], [], []
    for o in range(out_len):
        for t in range(k):
            f = o + pad - t * d
            if f >= 0 and f % s == 0 and f // s < in_len:
                ins.append(f // s)
                ks.append(t)
        first.append(len(ins))
    return first, ins, ks


@lowering("QConvTranspose", checks=(_batch1_nchw, _conv_transpose_terms_fit))
def _qconv_transpose(em: Emitter, node: Node) -> str:
    """Output-stationary: each output pixel sums the taps that reach it, from tables of
    (input row, kernel row) and (input column, kernel column) pairs; output_padding only adds
    rows and columns that fewer taps reach."""
    a = node.attrs
    x, w, y = node.inputs[0], node.inputs[1], node.outputs[0]
    b = node.inputs[2] if len(node.inputs) > 2 and node.inputs[2] is not None else None
    _, cin, h, wd = x.shape
    _, cout, oh, ow = y.shape
    (kh, kw), (sh, sw) = a["kernel_shape"], a["strides"]
    dh, dw = a.get("dilations", [1, 1])
    rf, ri, rk = _transpose_taps(oh, h, kh, sh, dh, a["pads"][0])
    cf, ci, ck = _transpose_taps(ow, wd, kw, sw, dw, a["pads"][1])
    params = em.struct("eq_conv_transpose_t", _fields(
        cin=cin, cout=cout, group=a["group"], h=h, w=wd, oh=oh, ow=ow, x_zp=int(a["x_zp"]),
        wt=em.const("int8_t", w.const, w.name),
        bias=em.const("int32_t", b.const, b.name) if b is not None else "0",
        row_first=em.const("int32_t", rf, node.name + "_row_first"),
        row_x=em.const("int32_t", np.asarray(ri, np.int64) * wd, node.name + "_row_x"),
        row_w=em.const("int32_t", np.asarray(rk, np.int64) * kw, node.name + "_row_w"),
        col_first=em.const("int32_t", cf, node.name + "_col_first"),
        col_x=em.const("int32_t", ci, node.name + "_col_x"),
        col_w=em.const("int32_t", ck, node.name + "_col_w"), kernel=kh * kw,
        q=em.requant(node, a)))
    return f"eq_conv_transpose(&{params}, {em.ptr(x)}, {em.ptr(y)});"


@lowering("MaxPool", kernel=Kernel.SPATIAL, checks=(_batch1_nchw,))
def _maxpool(em: Emitter, node: Node, tile: Tile | None = None) -> str:
    """Max over the window; padding never wins (int8 minimum)."""
    params = "&" + em.struct("eq_pool_t", _fields(**_window(node.attrs)))
    return em.spatial(node, "eq_maxpool", params, tile)


@lowering("QAveragePool", kernel=Kernel.SPATIAL, checks=(_batch1_nchw,))
def _qaverage_pool(em: Emitter, node: Node, tile: Tile | None = None) -> str:
    """edgeq flavor: a multiplier per output position (it carries 1/count); tflite flavor:
    TFLite's rounding division by the count."""
    a = node.attrs
    tfl = a.get("flavor") == "tflite"
    if tfl:
        mult = shift = "0"
    else:
        mult = em.const("int32_t", np.asarray(a["multiplier"]).reshape(-1), node.name)
        shift = em.const("int8_t", np.asarray(a["shift"]).reshape(-1), node.name + "_s")
    params = "&" + em.struct("eq_avgpool_t", _fields(
        w=_fields(**_window(a)), tflite=int(tfl), ow=node.outputs[0].shape[3],
        x_zp=int(a.get("x_zp", 0)), y_zp=int(a.get("y_zp", 0)), act_min=int(a["act_min"]),
        act_max=int(a["act_max"]), mult=mult, shift=shift, rule=_rule(a)))
    return em.spatial(node, "eq_avgpool", params, tile)


# --- element-wise kernels --------------------------------------------------------------------
@lowering("QAdd", kernel=Kernel.ELEMENTWISE, checks=(_rank_at_most_4,), per_channel=True)
def _qadd(em: Emitter, node: Node, bcast: str, pa: str, py: str) -> str:
    a = node.attrs
    if a.get("flavor") == "tflite":
        init = _fields(
            tflite=1, subtract=int(a.get("subtract", 0)), n_bmult=1, a_zp=int(a["a_zp"]),
            b_zp=int(a["b_zp"]), y_zp=int(a["y_zp"]), act_min=int(a["act_min"]),
            act_max=int(a["act_max"]), a_mult=int(a["a_mult"]), multiplier=int(a["multiplier"]),
            b_mult=em.const("int32_t", [a["b_mult"]], node.name + "_bm"),
            a_shift=int(a["a_shift"]), b_shift=int(a["b_shift"]), shift=int(a["shift"]))
    else:
        bm = np.atleast_1d(np.asarray(a["b_mult"], np.int64))
        init = _fields(
            tflite=0, subtract=0, n_bmult=bm.size, a_zp=int(a["a_zp"]), b_zp=int(a["b_zp"]),
            y_zp=int(a["y_zp"]), act_min=int(a["act_min"]), act_max=int(a["act_max"]),
            a_mult=int(np.asarray(a["a_mult"]).reshape(-1)[0]), multiplier=0,
            b_mult=em.const("int32_t", bm, node.name + "_bm"), a_shift=0, b_shift=0,
            shift=int(a["shift"]))
    p = em.struct("eq_add_t", init)
    return f"eq_add(&{p}, {bcast}, {pa}, {em.ptr(node.inputs[1])}, {py});"


@lowering("QMul", kernel=Kernel.ELEMENTWISE, checks=(_rank_at_most_4,), per_channel=True)
def _qmul(em: Emitter, node: Node, bcast: str, pa: str, py: str) -> str:
    a = node.attrs
    q = em.struct("eq_requant", em.requant(node, a))
    return (f"eq_mul(&{q}, {int(a['a_zp'])}, {int(a['b_zp'])}, {bcast}, {pa}, "
            f"{em.ptr(node.inputs[1])}, {py});")


@lowering("Requantize", kernel=Kernel.ELEMENTWISE, checks=(_rank_at_most_4,), per_channel=True,
          int16=True)
def _requantize(em: Emitter, node: Node, bcast: str, pa: str, py: str) -> str:
    """int8 to int8 (``eq_requantize``); with an int16 input or output ``eq_requantize_wide``,
    the same arithmetic."""
    q = em.struct("eq_requant", em.requant(node, node.attrs))
    x16, y16 = (int(v.dtype == DType.INT16) for v in (node.inputs[0], node.outputs[0]))
    if x16 or y16:
        return (f"eq_requantize_wide(&{q}, {int(node.attrs['x_zp'])}, {bcast}, {pa}, {x16}, "
                f"{py}, {y16});")
    return f"eq_requantize(&{q}, {int(node.attrs['x_zp'])}, {bcast}, {pa}, {py});"


@lowering("QLookup", kernel=Kernel.ELEMENTWISE, checks=(_rank_at_most_4,))
def _qlookup(em: Emitter, node: Node, bcast: str, pa: str, py: str) -> str:
    table = em.const("int8_t", node.attrs["table"], node.name + "_table")
    return f"eq_lookup({table}, {bcast}, {pa}, {py});"


@lowering("QMax", "QMin", kernel=Kernel.ELEMENTWISE, checks=(_rank_at_most_4,))
def _qminmax(em: Emitter, node: Node, bcast: str, pa: str, py: str) -> str:
    a = node.attrs
    p = em.struct("eq_minmax_t", _fields(
        is_max=int(node.op == "QMax"), a_same=int(a["a_mult"] is None),
        b_same=int(a["b_mult"] is None), a_zp=int(a["a_zp"]), b_zp=int(a["b_zp"]),
        y_zp=int(a["y_zp"]), act_min=int(a["act_min"]), act_max=int(a["act_max"]),
        a_mult=int(a["a_mult"] or 0), b_mult=int(a["b_mult"] or 0),
        a_shift=int(a["a_shift"] or 0), b_shift=int(a["b_shift"] or 0), rule=_rule(a)))
    return f"eq_minmax(&{p}, {bcast}, {pa}, {em.ptr(node.inputs[1])}, {py});"


@lowering("QPRelu", kernel=Kernel.ELEMENTWISE, checks=(_rank_at_most_4,))
def _qprelu(em: Emitter, node: Node, bcast: str, pa: str, py: str) -> str:
    a = node.attrs
    p = em.struct("eq_prelu_t", _fields(
        x_zp=int(a["x_zp"]), a_zp=int(a["a_zp"]), y_zp=int(a["y_zp"]),
        act_min=int(a["act_min"]), act_max=int(a["act_max"]), pos_mult=int(a["pos_mult"]),
        neg_mult=int(a["neg_mult"]), pos_shift=int(a["pos_shift"]),
        neg_shift=int(a["neg_shift"]), rule=_rule(a)))
    return f"eq_prelu(&{p}, {bcast}, {pa}, {em.ptr(node.inputs[1])}, {py});"


# --- data movement ---------------------------------------------------------------------------
@lowering("Reshape", "Flatten", "Squeeze", "Unsqueeze", kernel=Kernel.ALIAS, int16=True)
def _alias(em: Emitter, node: Node) -> str | None:
    """The same bytes; copied only when the planner gave the output its own block."""
    x, y = node.inputs[0], node.outputs[0]
    if em.ptr(x) == em.ptr(y):
        return None
    return f"memmove({em.ptr(y)}, {em.ptr(x)}, {y.type.nbytes});"


@lowering("Pad", checks=(_batch1_nchw, _constant_mode, _spatial_pads))
def _pad(em: Emitter, node: Node) -> str:
    x, y, p = node.inputs[0], node.outputs[0], node.attrs["pads"]
    _, c, h, w = x.shape
    return (f"eq_pad({em.ptr(x)}, {em.ptr(y)}, {c}, {h}, {w}, {p[2]}, {p[6]}, {p[3]}, {p[7]}, "
            f"{int(node.attrs.get('value', 0))});")


def _blocks(em: Emitter, node: Node, whole: Value, parts: list[Value], decl: str,
            fn: str) -> str:
    """Concat / Split: ``outer`` blocks of the joined tensor; each part holds ``inner[i]`` bytes
    per block."""
    ax = node.attrs["axis"] % len(whole.shape)
    outer = int(np.prod(whole.shape[:ax]))
    inner = ", ".join(str(int(np.prod(v.shape[ax:])) * v.dtype.itemsize) for v in parts)
    ptrs = ", ".join(em.ptr(v) for v in parts)
    return (f"{{ {decl} = {{{ptrs}}}; static const int32_t in[] = {{{inner}}}; "
            f"{fn}({em.ptr(whole)}, {outer}, {len(parts)}, xs, in); }}")


@lowering("Concat", int16=True)
def _concat(em: Emitter, node: Node) -> str:
    return _blocks(em, node, node.outputs[0], node.inputs, "const int8_t *xs[]", "eq_concat")


@lowering("Split", int16=True)
def _split(em: Emitter, node: Node) -> str:
    return _blocks(em, node, node.inputs[0], node.outputs, "int8_t *const xs[]", "eq_split")


@lowering("Transpose", checks=(_transpose_rank_fits,), int16=True)
def _transpose(em: Emitter, node: Node) -> str:
    """Byte by byte; an int16 tensor's elements are a last axis of two bytes that stays last."""
    x, y = node.inputs[0], node.outputs[0]
    shape, perm = list(x.shape), [int(p) for p in node.attrs["perm"]]
    if x.dtype.itemsize > 1:
        shape, perm = shape + [x.dtype.itemsize], perm + [len(shape)]
    return (f"{{ static const int32_t s[] = {_list(shape)}, p[] = {_list(perm)}; "
            f"eq_transpose({em.ptr(x)}, {em.ptr(y)}, {len(shape)}, s, p); }}")


# --- gathers: the input index of every output index, per axis, computed here -----------------
# Each table is built with the expression the integer interpreter evaluates (numpy slicing, take,
# resize_coords and nearest_index of edgeq.ops), so the C code only follows it (eq_gather).
def _slice_tables(node: Node) -> list[np.ndarray]:
    a, shape = node.attrs, node.inputs[0].shape
    tables = [np.arange(d) for d in shape]
    for st, en, ax, sp in zip(a["starts"], a["ends"], a["axes"], a["steps"]):
        tables[ax] = np.arange(shape[ax])[slice(st, en, sp)]
    return tables


def _gather_tables(node: Node) -> list[np.ndarray]:
    """The indices flattened onto the gathered axis: the output holds the same bytes."""
    shape, ax = node.inputs[0].shape, node.attrs.get("axis", 0)
    tables = [np.arange(d) for d in shape]
    idx = np.asarray(node.inputs[1].const).astype(np.int64).reshape(-1)
    tables[ax] = np.take(np.arange(shape[ax]), idx)
    return tables


def _resize_tables(node: Node) -> list[np.ndarray]:
    a, shape = node.attrs, node.inputs[0].shape
    tables = []
    for ax, (out_len, scale) in enumerate(zip(a["sizes"], a["scales"])):
        in_len = shape[ax]
        if out_len == in_len and scale == 1.0:
            tables.append(np.arange(in_len))
            continue
        c = resize_coords(out_len, in_len, scale, a["coordinate_transformation_mode"])
        tables.append(np.clip(nearest_index(c, a.get("nearest_mode", "round_prefer_floor")), 0,
                              in_len - 1).astype(np.int64))
    return tables


@lowering("Slice", checks=(_rank_at_most_max,), int16=True)
def _slice(em: Emitter, node: Node) -> str | None:
    return _gather(em, node, _slice_tables(node))


@lowering("Gather", checks=(_rank_at_most_max, _constant_indices, _gather_shape))
def _gather_op(em: Emitter, node: Node) -> str | None:
    return _gather(em, node, _gather_tables(node))


@lowering("Resize", checks=(_rank_at_most_max, _nearest))
def _resize(em: Emitter, node: Node) -> str | None:
    return _gather(em, node, _resize_tables(node))


def _gather(em: Emitter, node: Node, tables: list[np.ndarray]) -> str | None:
    """Trailing axes copied whole become one ``memcpy`` run, an axis with one output index an
    offset of the input pointer; the rest are byte-offset tables (int32, one entry per output
    index of the axis). Offsets and runs count bytes: an int16 element is two."""
    x, y = node.inputs[0], node.outputs[0]
    if int(np.prod([t.size for t in tables])) != y.type.size:
        raise EdgeqError(f"{node.name}: {node.op} index tables do not cover the output shape "
                         f"{list(y.shape)}")
    if y.type.size == 0:
        return None
    shape, size = list(x.shape), x.dtype.itemsize
    strides = [int(np.prod(shape[k + 1:])) * size for k in range(len(shape))]
    keep = len(shape)
    while keep and np.array_equal(tables[keep - 1], np.arange(shape[keep - 1])):
        keep -= 1
    run = int(np.prod(shape[keep:])) * size
    base, dims, offsets = 0, [], []
    for t, stride in zip(tables[:keep], strides[:keep]):
        off = np.asarray(t, np.int64) * stride
        if off.size == 1:
            base += int(off[0])
        else:
            dims.append(off.size)
            offsets.append(off)
    src = em.ptr(x) if base == 0 else f"({em.ptr(x)} + {base})"
    if not dims:
        return f"memcpy({em.ptr(y)}, {src}, {run});"
    d = em.const("int32_t", dims, node.name + "_dims")
    off = em.const("int32_t", np.concatenate(offsets), node.name + "_offsets")
    return f"eq_gather({src}, {em.ptr(y)}, {len(dims)}, {d}, {off}, {run});"


@lowering("QResize")
def _qresize(em: Emitter, node: Node) -> str:
    """Linear resizing of H and W through the interpreter's per-row and per-column taps
    (``linear_taps``: two source indices and a 10-bit weight each); int64 sums in C. Every
    N x C plane alike."""
    x, y = node.inputs[0], node.outputs[0]
    mode = node.attrs["coordinate_transformation_mode"]
    n, c, h, w = x.shape
    oh, ow = y.shape[2:]
    y0, y1, fy = linear_taps(h, oh, mode)
    x0, x1, fx = linear_taps(w, ow, mode)
    if y0.max() >= h or x0.max() >= w:  # pragma: no cover - the quantize check refuses these
        raise EdgeqError(f"{node.name}: a QResize source index passes the input")

    def t(values, hint: str) -> str:
        return em.const("int32_t", np.asarray(values, np.int64), f"{node.name}_{hint}")

    p = em.struct("eq_resize_linear_t", _fields(
        planes=n * c, h=h, w=w, oh=oh, ow=ow, row_lo=t(y0 * w, "row_lo"),
        row_hi=t(y1 * w, "row_hi"), row_f=t(fy, "row_f"), col_lo=t(x0, "col_lo"),
        col_hi=t(x1, "col_hi"), col_f=t(fx, "col_f")))
    return f"eq_resize_linear(&{p}, {em.ptr(x)}, {em.ptr(y)});"


# --- whole-layer arithmetic --------------------------------------------------------------------
@lowering("QGlobalAveragePool", checks=(_batch1_nchw,))
def _qglobal_average_pool(em: Emitter, node: Node) -> str:
    a, x = node.attrs, node.inputs[0]
    q = em.struct("eq_requant", em.requant(node, a))
    c, hw = x.shape[1], int(np.prod(x.shape[2:]))
    return (f"eq_global_avgpool(&{q}, {int(a['x_zp'])}, {em.ptr(x)}, {em.ptr(node.outputs[0])}, "
            f"{c}, {hw});")


@lowering("QGemm", checks=(_gemm_terms_fit,))
def _qgemm(em: Emitter, node: Node) -> str:
    a, x, w, y = node.attrs, node.inputs[0], node.inputs[1], node.outputs[0]
    b = node.inputs[2] if len(node.inputs) > 2 and node.inputs[2] is not None else None
    q = em.struct("eq_requant", em.requant(node, a))
    rows = int(np.prod(x.shape[:-1]))
    bias = em.const("int32_t", b.const, b.name) if b is not None else "0"
    return (f"eq_gemm(&{q}, {int(a['x_zp'])}, {em.ptr(x)}, {em.ptr(w)}, {bias}, {em.ptr(y)}, "
            f"{rows}, {w.shape[1]}, {w.shape[0]});")


@lowering("QMatMul", checks=(_two_activations,))
def _qmatmul(em: Emitter, node: Node) -> str:
    a, x, b = node.attrs, node.inputs[0], node.inputs[1]
    q = em.struct("eq_requant", em.requant(node, a))
    m, k = x.shape[-2:]
    n = b.shape[-1]
    batch = int(np.prod(x.shape[:-2]))
    return (f"eq_matmul(&{q}, {int(a['a_zp'])}, {int(a['b_zp'])}, {em.ptr(x)}, {em.ptr(b)}, "
            f"{em.ptr(node.outputs[0])}, {batch}, {m}, {k}, {n});")


@lowering("QReduceMean", checks=(_adjacent_axes,))
def _qreduce_mean(em: Emitter, node: Node) -> str:
    a, x = node.attrs, node.inputs[0]
    axes = _reduced_axes(node)
    outer = int(np.prod(x.shape[:axes[0]]))
    red = int(np.prod(x.shape[axes[0]:axes[-1] + 1]))
    inner = int(np.prod(x.shape[axes[-1] + 1:]))
    q = em.struct("eq_requant", em.requant(node, a))
    return (f"eq_reduce_mean(&{q}, {int(a['x_zp'])}, {em.ptr(x)}, {em.ptr(node.outputs[0])}, "
            f"{outer}, {red}, {inner});")


@lowering("QSoftmax", checks=(_last_axis,))
def _qsoftmax(em: Emitter, node: Node) -> str:
    """edgeq flavor: exp table and an integer reciprocal; tflite flavor: TFLite's gemmlowp
    fixed point."""
    a, x = node.attrs, node.inputs[0]
    length = x.shape[-1]
    table = em.const("int32_t", a["exp_table"], node.name + "_exp")
    fn = "eq_softmax_tflite" if a.get("flavor") == "tflite" else "eq_softmax"
    return (f"{fn}({table}, {int(a['y_zp'])}, {int(a['act_min'])}, {int(a['act_max'])}, "
            f"{em.ptr(x)}, {em.ptr(node.outputs[0])}, {x.type.size // length}, {length});")


@lowering("QLayerNorm", checks=(_layernorm_shift_fits,))
def _qlayernorm(em: Emitter, node: Node) -> str:
    """Per-element multipliers whose shifts include the 16 bits of the Q16 normalized value."""
    a, x = node.attrs, node.inputs[0]
    k = x.shape[-1]
    shifted = dict(a, shift=np.broadcast_to(np.asarray(a["shift"]) + 16, (k,)),
                   multiplier=np.broadcast_to(np.asarray(a["multiplier"]), (k,)))
    gs = a.get("gamma_sign")
    bq = a.get("beta_q")
    gs = em.const("int8_t", gs, node.name + "_gsign") if gs is not None else "0"
    bq = em.const("int32_t", bq, node.name + "_beta") if bq is not None else "0"
    p = em.struct("eq_layernorm_t", _fields(x_zp=int(a["x_zp"]), eps_q=int(a["eps_q"]),
                                            gamma_sign=gs, beta_q=bq,
                                            q=em.requant(node, shifted)))
    return (f"eq_layernorm(&{p}, {em.ptr(x)}, {em.ptr(node.outputs[0])}, {x.type.size // k}, "
            f"{k});")


def _c_string(text: str) -> str:
    """A C string literal of ``text`` (node names come from the user's model)."""
    out = []
    for ch in text.encode("utf-8"):
        c = chr(ch)
        out.append(c if 32 <= ch < 127 and c not in '"\\?' else f"\\{ch:03o}")
    return '"' + "".join(out) + '"'


def generate(graph: Graph, plan, patch=None, order=None) -> tuple[str, str]:
    """(model.h, model.c) for ``graph`` executed in ``order`` over ``plan``'s arena."""
    em = Emitter(plan)
    nodes = list(order if order is not None else graph.nodes)
    if patch is not None:
        stage = chain_prefix(graph)[:patch.split + 1]
        scratch = plan.offset_of(PATCH_SCRATCH)
        size = next(b.size for b in plan.blocks if PATCH_SCRATCH in b.values)
        em.stage(stage, patches(stage, patch.n), scratch, size)
        nodes = nodes[len(stage):]
    for node in nodes:
        em.layer(node)
    guard = "EDGEQ_MODEL_H"
    ins = [(i, v) for i, v in enumerate(graph.inputs)]
    outs = [(i, v) for i, v in enumerate(graph.outputs)]
    h = [f"/* {graph.name}: generated by edgeq. Integer-only inference, NCHW tensors: int8 "
         f"inputs, int8 or int16 outputs (EDGEQ_OUTPUTi_TYPE). */",
         f"#ifndef {guard}", f"#define {guard}", "", "#include <stdint.h>", "",
         f"#define EDGEQ_ARENA_BYTES {plan.arena_bytes}",
         f"#define EDGEQ_NUM_INPUTS {len(ins)}", f"#define EDGEQ_NUM_OUTPUTS {len(outs)}"]
    for kind, vals in (("INPUT", ins), ("OUTPUT", outs)):
        for i, v in vals:
            qp = v.qparams
            h.append(f"#define EDGEQ_{kind}{i}_BYTES {v.type.nbytes}  "
                     f"/* {v.name}: {v.dtype.value}, shape {list(v.shape)}, zero point "
                     f"{int(np.asarray(qp.zero_point).reshape(-1)[0]) if qp else 0}, "
                     f"scale {float(np.asarray(qp.scale).reshape(-1)[0]) if qp else 1:.9g} */")
            h.append(f"#define EDGEQ_{kind}{i}_TYPE {v.dtype.value}_t")
    h += ["", "/* Where to write input i (quantized int8) before each run. */",
          "int8_t *edgeq_input(int i);",
          "extern const int32_t edgeq_input_bytes[EDGEQ_NUM_INPUTS];",
          "extern const int32_t edgeq_output_bytes[EDGEQ_NUM_OUTPUTS];",
          "/* Output i after edgeq_run(), valid until the next run: EDGEQ_OUTPUTi_BYTES bytes of",
          "   EDGEQ_OUTPUTi_TYPE values (int8_t or int16_t, native byte order), e.g.",
          "   const EDGEQ_OUTPUT0_TYPE *y = edgeq_output(0); */",
          "const void *edgeq_output(int i);",
          "/* One inference; no allocation, no float. */",
          "void edgeq_run(void);", "",
          "/* With -DEDGEQ_PROFILE: per-layer counts of the runner's clock (edgeq_rt.h). */",
          f"#define EDGEQ_NUM_LAYERS {len(em.layers)}",
          "#ifdef EDGEQ_PROFILE",
          "extern uint64_t edgeq_profile_counts[EDGEQ_NUM_LAYERS];",
          "extern uint64_t edgeq_profile_total; /* the whole edgeq_run(), same clock */",
          "extern const char *const edgeq_layer_names[EDGEQ_NUM_LAYERS];",
          "#endif", "", f"#endif /* {guard} */", ""]
    c = [f"/* {graph.name}: generated by edgeq. Do not edit. */", '#include "model.h"',
         '#include "edgeq_rt.h"', "",
         f"static int8_t A[{max(plan.arena_bytes, 1)}] __attribute__((aligned(16)));", ""]
    c += em.decls
    c += ["", "const int32_t edgeq_input_bytes[EDGEQ_NUM_INPUTS] = {"
          + ", ".join(str(v.type.nbytes) for _, v in ins) + "};",
          "const int32_t edgeq_output_bytes[EDGEQ_NUM_OUTPUTS] = {"
          + ", ".join(str(v.type.nbytes) for _, v in outs) + "};"]
    c += ["", "int8_t *edgeq_input(int i) {", "    switch (i) {"]
    c += [f"    case {i}: return {em.ptr(v)};" for i, v in ins]
    c += ["    default: return 0;", "    }", "}", "",
          "const void *edgeq_output(int i) {", "    switch (i) {"]
    c += [f"    case {i}: return {em.ptr(v)};" for i, v in outs]
    c += ["    default: return 0;", "    }", "}", ""]
    c += ["#ifdef EDGEQ_PROFILE", "uint64_t edgeq_profile_counts[EDGEQ_NUM_LAYERS];",
          "const char *const edgeq_layer_names[EDGEQ_NUM_LAYERS] = {"]
    c += [f"    {_c_string(name)}," for name in em.layers]
    c += ["};", "uint64_t edgeq_profile_total;", "static uint64_t eq_prof_t0;", "#endif", "",
          "void edgeq_run(void) {", "#ifdef EDGEQ_PROFILE",
          "    uint64_t eq_run_t0 = edgeq_profile_now();", "#endif"]
    c += em.body
    c += ["#ifdef EDGEQ_PROFILE", "    edgeq_profile_total = edgeq_profile_now() - eq_run_t0;",
          "#endif", "}", ""]
    return "\n".join(h), "\n".join(c)
