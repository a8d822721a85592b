"""Integer graph -> Relax IRModule, one lowering function per integer op (exact semantics).

Each op's lowering is one function in ``LOWER``, registered (``@lowering``) with its support
checks: ``check(node) -> reason | None``, whose docstring states the limit (and is the
condition docs/supported_ops.md lists); ``GRAPH_CHECKS`` apply to the whole graph.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from edgeq.backends.base import Lowering, Refusal, integer_graph, lowering_registry
from edgeq.ir.graph import Graph, Node
from edgeq.ops.pool import pool_output_hw
from edgeq.ops.resize import linear_taps, nearest_index, resize_coords

Check = Callable[[Node], "str | None"]
GraphCheck = Callable[[Graph], "str | None"]
NO_LOWERING = "no Relax lowering for this op yet"


LOWER: dict[str, Lowering] = {}
lowering = lowering_registry(LOWER)  # @lowering(op, checks=(...)): the op's Relax lowering


# --- graph-wide checks (each returns the reason it fails, or None) ----------------------------
def _known_rounding(graph: Graph) -> str | None:
    """The requantization rule is edgeq's or TFLite's (docs/numerics.md): the lowering spells
    both."""
    if graph.metadata.get("rounding", "edgeq") not in ("edgeq", "tflite"):
        return f"rounding rule {graph.metadata.get('rounding')!r} is not implemented"
    return None


GRAPH_CHECKS: tuple[GraphCheck, ...] = (integer_graph, _known_rounding)


# --- node checks --------------------------------------------------------------------------------
def _constant_nonnegative_pads(n: Node) -> str | None:
    """Constant, non-negative padding (``nn.pad``): no reflect or edge mode, no cropping."""
    if n.attrs.get("mode", "constant") != "constant" or min(n.attrs["pads"]) < 0:
        return "only constant, non-negative padding is lowered"
    return None


def supports(graph: Graph) -> list[Refusal]:
    """One refusal per graph-wide check that fails and per node the Relax lowering cannot
    take (the first reason that applies to it)."""
    reasons = [Refusal("", "", why) for check in GRAPH_CHECKS if (why := check(graph))]
    for n in graph.nodes:
        lw = LOWER.get(n.op)
        why = NO_LOWERING if lw is None else lw.refusal(n)
        if why:
            reasons.append(Refusal(n.op, n.name, why))
    return reasons


class Lowerer:
    def __init__(self, graph: Graph, bb):
        from tvm import relax

        self.relax, self.op, self.bb = relax, relax.op, bb
        self.graph = graph
        self.env: dict[str, object] = {}

    def c(self, a) -> object:
        a = np.asarray(a)
        return self.relax.const(a, str(a.dtype))

    def emit(self, expr):
        return self.bb.emit(expr)

    def val(self, v):
        return self.c(v.const) if v.is_const else self.env[v.name]

    def centered(self, v, zp: int, dtype: str = "int32"):
        x = self.op.astype(self.val(v), dtype)
        return self.emit(self.op.subtract(x, self.c(np.asarray(zp, dtype)))) if zp else \
            self.emit(x)

    def per_axis(self, a, rank: int, axis: int | None):
        a = np.asarray(a, np.int64)
        if a.ndim == 0 or a.size == 1:
            return a.reshape(())
        if a.ndim == rank:
            return a
        shape = [1] * rank
        shape[axis if axis is not None else -1] = a.size
        return a.reshape(shape)

    def rescale(self, acc, m, n, rank: int, axis: int | None = None, rule: str = "edgeq"):
        """(acc * m + 2**(n-1)) >> n in int64 (the edgeq rule), or TFLite's
        MultiplyByQuantizedMultiplier (docs/numerics.md section 3)."""
        m = self.per_axis(m, rank, axis)
        n = self.per_axis(n, rank, axis)
        if rule == "tflite":
            return self.rescale_tflite(acc, m, n)
        half = np.where(n > 0, np.left_shift(np.int64(1), np.maximum(n - 1, 0)), 0)
        acc = self.op.astype(acc, "int64")
        prod = self.op.add(self.op.multiply(acc, self.c(m)), self.c(half.astype(np.int64)))
        return self.emit(self.op.right_shift(prod, self.c(n.astype(np.int64))))

    def rescale_tflite(self, acc, m: np.ndarray, n: np.ndarray):
        op, i64 = self.op, (lambda v: self.c(np.asarray(v, np.int64)))
        left = np.maximum(31 - n, 0)
        right = np.maximum(n - 31, 0)
        x = op.multiply(op.astype(acc, "int64"), i64(np.left_shift(np.int64(1), left)))
        x = self.emit(op.clip(x, -(1 << 31), (1 << 31) - 1))
        ab = self.emit(op.multiply(x, i64(m)))
        s = self.emit(op.add(ab, op.where(op.greater_equal(ab, i64(0)), i64(1 << 30),
                                          i64(1 - (1 << 30)))))
        # C++ division by 2**31 truncates toward zero
        hi = self.emit(op.where(op.greater_equal(s, i64(0)), op.right_shift(s, i64(31)),
                                op.negative(op.right_shift(op.negative(s), i64(31)))))
        mask = np.left_shift(np.int64(1), right) - 1
        rem = op.bitwise_and(hi, i64(mask))
        threshold = op.add(i64(mask >> 1), op.astype(op.less(hi, i64(0)), "int64"))
        return self.emit(op.add(op.right_shift(hi, i64(right)),
                                op.astype(op.greater(rem, threshold), "int64")))

    def rule(self, node: Node) -> str:
        return node.attrs.get("rounding", "edgeq")

    def out(self, y, node: Node):
        a = node.attrs
        y = self.op.add(y, self.c(np.int64(a["y_zp"])))
        y = self.op.clip(y, int(a["act_min"]), int(a["act_max"]))
        self.env[node.outputs[0].name] = self.emit(self.op.astype(y, a["dtype"]))

    def acc_dtype(self, x, k_terms: int) -> str:
        """int32 if every sum of products fits, else int64."""
        span = int(np.iinfo(x.dtype.numpy).max) - int(np.iinfo(x.dtype.numpy).min)
        return "int32" if span * 127 * k_terms < 2 ** 31 - 2 ** 24 else "int64"


@lowering("QConv", "QConvTranspose")
def _conv(lw: Lowerer, n: Node) -> None:
    a = n.attrs
    x, w = n.inputs[0], n.inputs[1]
    k = int(np.prod(w.shape[1:]))
    dt = lw.acc_dtype(x, k)
    xc = lw.centered(x, a["x_zp"], dt)
    wc = lw.c(w.const.astype(dt))
    if n.op == "QConv":
        acc = lw.emit(lw.op.nn.conv2d(xc, wc, strides=a["strides"], padding=a["pads"],
                                      dilation=a["dilations"], groups=a["group"], out_dtype=dt))
    else:
        acc = lw.emit(lw.op.nn.conv2d_transpose(
            xc, wc, strides=a["strides"], padding=a["pads"], dilation=a["dilations"],
            output_padding=a["output_padding"], groups=a["group"], out_dtype=dt))
    b = n.inputs[2].const.astype(np.int64).reshape(1, -1, 1, 1)
    acc = lw.emit(lw.op.add(lw.op.astype(acc, "int64"), lw.c(b)))
    lw.out(lw.rescale(acc, a["multiplier"], a["shift"], 4, 1, rule=lw.rule(n)), n)


@lowering("QGemm")
def _gemm(lw: Lowerer, n: Node) -> None:
    a = n.attrs
    x, w = n.inputs[0], n.inputs[1]
    dt = lw.acc_dtype(x, w.shape[1])
    acc = lw.emit(lw.op.matmul(lw.centered(x, a["x_zp"], dt),
                               lw.c(np.ascontiguousarray(w.const.T).astype(dt)), out_dtype=dt))
    acc = lw.emit(lw.op.add(lw.op.astype(acc, "int64"),
                            lw.c(n.inputs[2].const.astype(np.int64))))
    lw.out(lw.rescale(acc, a["multiplier"], a["shift"], len(x.shape), -1,
                      rule=lw.rule(n)), n)


@lowering("QMatMul")
def _matmul(lw: Lowerer, n: Node) -> None:
    a = n.attrs
    x, y = n.inputs
    acc = lw.emit(lw.op.matmul(lw.centered(x, a["a_zp"], "int64"),
                               lw.centered(y, a["b_zp"], "int64"), out_dtype="int64"))
    lw.out(lw.rescale(acc, a["multiplier"], a["shift"], len(n.outputs[0].shape),
                      rule=lw.rule(n)), n)


@lowering("QAdd")
def _add(lw: Lowerer, n: Node) -> None:
    a = n.attrs
    x, y = n.inputs
    if a.get("flavor") == "tflite":  # TFLite ADD/SUB: inputs << 20, rescaled, summed, rescaled
        rank = len(n.outputs[0].shape)
        sa = lw.rescale(lw.emit(lw.op.left_shift(lw.centered(x, a["a_zp"], "int64"),
                                                 _i64(lw, 20))), a["a_mult"], a["a_shift"],
                        rank, rule="tflite")
        sb = lw.rescale(lw.emit(lw.op.left_shift(lw.centered(y, a["b_zp"], "int64"),
                                                 _i64(lw, 20))), a["b_mult"], a["b_shift"],
                        rank, rule="tflite")
        total = lw.emit(lw.op.subtract(sa, sb) if a.get("subtract") else lw.op.add(sa, sb))
        lw.out(lw.rescale(total, a["multiplier"], a["shift"], rank, rule="tflite"), n)
        return
    acc = lw.op.add(lw.op.multiply(lw.centered(x, a["a_zp"], "int64"), lw.c(np.int64(
        a["a_mult"]))), lw.op.multiply(lw.centered(y, a["b_zp"], "int64"),
                                       lw.c(np.int64(a["b_mult"]))))
    lw.out(lw.rescale(lw.emit(acc), 1, a["shift"], len(n.outputs[0].shape)), n)


@lowering("QMul")
def _mul(lw: Lowerer, n: Node) -> None:
    a = n.attrs
    x, y = n.inputs
    acc = lw.emit(lw.op.multiply(lw.centered(x, a["a_zp"], "int64"),
                                 lw.centered(y, a["b_zp"], "int64")))
    lw.out(lw.rescale(acc, a["multiplier"], a["shift"], len(n.outputs[0].shape),
                      a.get("axis"), rule=lw.rule(n)), n)


@lowering("Requantize")
def _requantize(lw: Lowerer, n: Node) -> None:
    a = n.attrs
    lw.out(lw.rescale(lw.centered(n.inputs[0], a["x_zp"], "int64"), a["multiplier"],
                      a["shift"], len(n.outputs[0].shape), rule=lw.rule(n)), n)


@lowering("QMax", "QMin")
def _min_max(lw: Lowerer, n: Node) -> None:
    a = n.attrs
    rank = len(n.outputs[0].shape)
    lo, hi = int(np.iinfo(a["dtype"]).min), int(np.iinfo(a["dtype"]).max)

    def at_output(v, zp, mult, shift):
        if mult is None:
            return lw.emit(lw.op.astype(lw.val(v), "int64"))
        y = lw.rescale(lw.centered(v, zp, "int64"), mult, shift, rank, rule=lw.rule(n))
        return lw.emit(lw.op.clip(lw.op.add(y, lw.c(np.int64(a["y_zp"]))), lo, hi))
    xa = at_output(n.inputs[0], a["a_zp"], a["a_mult"], a["a_shift"])
    ya = at_output(n.inputs[1], a["b_zp"], a["b_mult"], a["b_shift"])
    pick = lw.op.maximum if n.op == "QMax" else lw.op.minimum
    y = lw.op.clip(pick(xa, ya), int(a["act_min"]), int(a["act_max"]))
    lw.env[n.outputs[0].name] = lw.emit(lw.op.astype(y, a["dtype"]))


@lowering("QPRelu")
def _prelu(lw: Lowerer, n: Node) -> None:
    a = n.attrs
    rank = len(n.outputs[0].shape)
    d = lw.centered(n.inputs[0], a["x_zp"], "int64")
    pos = lw.rescale(d, a["pos_mult"], a["pos_shift"], rank, rule=lw.rule(n))
    prod = lw.emit(lw.op.multiply(d, lw.centered(n.inputs[1], a["a_zp"], "int64")))
    neg = lw.rescale(prod, a["neg_mult"], a["neg_shift"], rank, rule=lw.rule(n))
    lw.out(lw.emit(lw.op.where(lw.op.greater_equal(d, lw.c(np.int64(0))), pos, neg)), n)


def _window_sum(lw: Lowerer, n: Node, xc, c: int):
    """Sum over pooling windows: a depthwise conv with a kernel of ones; the right/bottom
    padding grows to cover ceil_mode windows (extra zeros add nothing)."""
    a = n.attrs
    kh, kw = a["kernel_shape"]
    s, p = a["strides"], a["pads"]
    hw = n.inputs[0].shape[2:]
    oh, ow = pool_output_hw(hw, (kh, kw), s, p, (1, 1), a.get("ceil_mode", 0))
    extra_b = max(0, (oh - 1) * s[0] + kh - (hw[0] + p[0] + p[2]))
    extra_r = max(0, (ow - 1) * s[1] + kw - (hw[1] + p[1] + p[3]))
    ones = lw.c(np.ones((c, 1, kh, kw), np.int32))
    return lw.emit(lw.op.nn.conv2d(xc, ones, strides=s, padding=[p[0], p[1], p[2] + extra_b,
                                                                 p[3] + extra_r],
                                   groups=c, out_dtype="int32"))


@lowering("QAveragePool")
def _avgpool(lw: Lowerer, n: Node) -> None:
    a = n.attrs
    x = n.inputs[0]
    if a.get("flavor") == "tflite":  # raw sum / valid count, rounded half away from zero
        op = lw.op
        total = op.astype(_window_sum(lw, n, lw.emit(op.astype(lw.val(x), "int32")),
                                      x.shape[1]), "int64")
        ones = lw.c(np.ones((1, 1) + tuple(x.shape[2:]), np.int32))
        count = lw.emit(op.astype(_window_sum(lw, n, ones, 1), "int64"))
        half = op.right_shift(count, _i64(lw, 1))
        pos = op.floor_divide(op.add(total, half), count)
        neg = op.negative(op.floor_divide(op.add(op.negative(total), half), count))
        q = lw.emit(op.where(op.greater(total, _i64(lw, 0)), pos, neg))
        lw.env[n.outputs[0].name] = lw.emit(op.astype(op.clip(q, int(a["act_min"]),
                                                              int(a["act_max"])), a["dtype"]))
        return
    acc = _window_sum(lw, n, lw.centered(x, a["x_zp"]), x.shape[1])
    oh, ow = n.outputs[0].shape[2:]
    m = np.asarray(a["multiplier"], np.int64).reshape(1, 1, oh, ow)
    s = np.asarray(a["shift"], np.int64).reshape(1, 1, oh, ow)
    lw.out(lw.rescale(acc, m, s, 4, rule=lw.rule(n)), n)


@lowering("QGlobalAveragePool", "QReduceMean")
def _mean(lw: Lowerer, n: Node) -> None:
    a = n.attrs
    x = n.inputs[0]
    if n.op == "QGlobalAveragePool":
        axes, keep = list(range(2, len(x.shape))), True
    else:
        axes = a.get("axes") or list(range(len(x.shape)))
        keep = bool(a.get("keepdims", 1))
    acc = lw.emit(lw.op.sum(lw.centered(x, a["x_zp"], "int64"), axis=axes, keepdims=keep))
    lw.out(lw.rescale(acc, a["multiplier"], a["shift"], len(n.outputs[0].shape),
                      rule=lw.rule(n)), n)


def _i64(lw: Lowerer, v) -> object:
    return lw.c(np.asarray(v, np.int64))


def _bit_length(lw: Lowerer, x):
    """Mirrors edgeq.numerics.reciprocal.bit_length."""
    op = lw.op
    n = lw.emit(op.multiply(x, _i64(lw, 0)))
    for k in (32, 16, 8, 4, 2, 1):
        big = lw.emit(op.greater_equal(x, _i64(lw, 1 << k)))
        x = lw.emit(op.where(big, op.right_shift(x, _i64(lw, k)), x))
        n = lw.emit(op.add(n, op.where(big, _i64(lw, k), _i64(lw, 0))))
    return lw.emit(op.add(n, op.astype(op.greater(x, _i64(lw, 0)), "int64")))


def _normalize_q30(lw: Lowerer, s, b):
    op = lw.op
    left = op.maximum(op.subtract(_i64(lw, 30), b), _i64(lw, 0))
    right = op.maximum(op.subtract(b, _i64(lw, 30)), _i64(lw, 0))
    return lw.emit(op.where(op.less_equal(b, _i64(lw, 30)), op.left_shift(s, left),
                            op.right_shift(s, right)))


def _reciprocal(lw: Lowerer, s):
    """Mirrors edgeq.numerics.reciprocal.reciprocal: returns (r, k) tensors."""
    op = lw.op
    b = lw.emit(op.subtract(_bit_length(lw, s), _i64(lw, 1)))
    x = _normalize_q30(lw, s, b)
    r = lw.emit(op.right_shift(op.subtract(_i64(lw, 3031741620), op.right_shift(
        op.multiply(_i64(lw, 2021161081), x), _i64(lw, 31))), _i64(lw, 1)))
    for _ in range(4):
        t = op.subtract(_i64(lw, 1 << 30), op.right_shift(op.multiply(x, r), _i64(lw, 30)))
        r = lw.emit(op.add(r, op.right_shift(op.multiply(r, t), _i64(lw, 30))))
    return r, lw.emit(op.add(b, _i64(lw, 30)))


def _inverse_sqrt(lw: Lowerer, q):
    """Mirrors edgeq.numerics.reciprocal.inverse_sqrt: returns (r, k) tensors."""
    op = lw.op
    b = lw.emit(op.subtract(_bit_length(lw, q), _i64(lw, 1)))
    b2 = lw.emit(op.left_shift(op.right_shift(b, _i64(lw, 1)), _i64(lw, 1)))
    x = _normalize_q30(lw, q, b2)
    r = lw.emit(op.where(op.greater_equal(x, _i64(lw, 2 << 30)),
                         _i64(lw, np.int64(0.6 * (1 << 30))),
                         _i64(lw, np.int64(0.85 * (1 << 30)))))
    for _ in range(6):
        t = op.right_shift(op.multiply(r, r), _i64(lw, 30))
        t = op.right_shift(op.multiply(x, t), _i64(lw, 30))
        r = lw.emit(op.right_shift(op.multiply(r, op.subtract(_i64(lw, 3 << 30), t)),
                                   _i64(lw, 31)))
    return r, lw.emit(op.add(op.right_shift(b2, _i64(lw, 1)), _i64(lw, 30)))


def _shift_half_up(lw: Lowerer, x, n):
    """(x + 2**(n-1)) >> n with a per-element shift tensor ``n``."""
    op = lw.op
    half = op.where(op.greater(n, _i64(lw, 0)),
                    op.left_shift(_i64(lw, 1), op.maximum(op.subtract(n, _i64(lw, 1)),
                                                          _i64(lw, 0))), _i64(lw, 0))
    return lw.emit(op.right_shift(op.add(x, half), n))


def _srdhm(lw: Lowerer, a, b):
    """gemmlowp SaturatingRoundingDoublingHighMul on int64 tensors holding int32 values,
    saturating to INT32_MAX when both are INT32_MIN (as the numpy and C spellings do)."""
    op = lw.op
    ab = lw.emit(op.multiply(a, b))
    s = lw.emit(op.add(ab, op.where(op.greater_equal(ab, _i64(lw, 0)), _i64(lw, 1 << 30),
                                    _i64(lw, 1 - (1 << 30)))))
    q = lw.emit(op.where(op.greater_equal(s, _i64(lw, 0)), op.right_shift(s, _i64(lw, 31)),
                         op.negative(op.right_shift(op.negative(s), _i64(lw, 31)))))
    lowest = _i64(lw, -(1 << 31))
    both_lowest = op.logical_and(op.equal(a, lowest), op.equal(b, lowest))
    return lw.emit(op.where(both_lowest, _i64(lw, (1 << 31) - 1), q))


def _rdbpot(lw: Lowerer, x, e):
    """gemmlowp RoundingDivideByPOT (round half away from zero); ``e`` a tensor or an int."""
    op = lw.op
    e = _i64(lw, e) if isinstance(e, int) else e
    mask = lw.emit(op.subtract(op.left_shift(_i64(lw, 1), e), _i64(lw, 1)))
    rem = op.bitwise_and(x, mask)
    thr = op.add(op.right_shift(mask, _i64(lw, 1)), op.astype(op.less(x, _i64(lw, 0)), "int64"))
    return lw.emit(op.add(op.right_shift(x, e), op.astype(op.greater(rem, thr), "int64")))


def _mul_pot(lw: Lowerer, x, k: int):
    """gemmlowp SaturatingRoundingMultiplyByPOT<k>, k > 0."""
    op = lw.op
    thr = (1 << (31 - k)) - 1
    shifted = op.left_shift(x, _i64(lw, k))
    return lw.emit(op.where(op.greater(x, _i64(lw, thr)), _i64(lw, (1 << 31) - 1),
                            op.where(op.less(x, _i64(lw, -thr)), _i64(lw, -(1 << 31)), shifted)))


def _softmax_tflite(lw: Lowerer, n: Node, e, ax: int) -> None:
    """Mirrors the tflite flavor of edgeq.ops.softmax.qsoftmax (edgeq.numerics.gemmlowp)."""
    op = lw.op
    total = lw.emit(op.sum(_rdbpot(lw, e, 12), axis=[ax], keepdims=True))
    headroom = lw.emit(op.multiply(total, _i64(lw, 0)))  # leading zeros of an int32
    t = total
    for k in (16, 8, 4, 2, 1):
        small = lw.emit(op.less(t, _i64(lw, 1 << (32 - k))))
        headroom = lw.emit(op.add(headroom, op.where(small, _i64(lw, k), _i64(lw, 0))))
        t = lw.emit(op.where(small, op.left_shift(t, _i64(lw, k)), t))
    a = lw.emit(op.subtract(op.left_shift(total, headroom), _i64(lw, 1 << 31)))
    # one_over_one_plus_x_for_x_in_0_1, Newton-Raphson in Q2.29
    half = lw.emit(op.right_shift(op.add(a, _i64(lw, (1 << 31) - 1 + 1)), _i64(lw, 1)))
    x = lw.emit(op.add(_i64(lw, 1515870810), _srdhm(lw, half, _i64(lw, -1010580540))))
    for _ in range(3):
        t = lw.emit(op.subtract(_i64(lw, 1 << 29), _srdhm(lw, half, x)))
        x = lw.emit(op.add(x, _mul_pot(lw, _srdhm(lw, x, t), 2)))
    scale = _mul_pot(lw, x, 1)
    bits = lw.emit(op.subtract(_i64(lw, 12 + 23), headroom))
    lw.out(_rdbpot(lw, _srdhm(lw, scale, e), bits), n)


@lowering("QSoftmax")
def _softmax(lw: Lowerer, n: Node) -> None:
    op = lw.op
    a = n.attrs
    ax = a["axis"]
    x = lw.emit(op.astype(lw.val(n.inputs[0]), "int64"))
    d = lw.emit(op.subtract(op.max(x, axis=[ax], keepdims=True), x))
    e = lw.emit(op.take(lw.c(np.asarray(a["exp_table"], np.int64)), d, axis=0))
    if a.get("flavor") == "tflite":
        return _softmax_tflite(lw, n, e, ax)
    r, k = _reciprocal(lw, lw.emit(op.sum(e, axis=[ax], keepdims=True)))
    lw.out(_shift_half_up(lw, op.multiply(e, r), lw.emit(op.subtract(k, _i64(lw, 8)))), n)


@lowering("QLayerNorm")
def _layer_norm(lw: Lowerer, n: Node) -> None:
    op = lw.op
    a = n.attrs
    x = n.inputs[0]
    k = x.shape[-1]
    rank = len(x.shape)
    d = lw.centered(x, a["x_zp"], "int64")
    c = lw.emit(op.subtract(op.multiply(d, _i64(lw, k)), op.sum(d, axis=[-1], keepdims=True)))
    q = lw.emit(op.add(op.sum(op.multiply(c, c), axis=[-1], keepdims=True),
                       _i64(lw, a["eps_q"])))
    r, kk = _inverse_sqrt(lw, q)
    t = _shift_half_up(lw, op.multiply(c, r), lw.emit(op.subtract(kk, _i64(lw, 16))))
    if a.get("gamma_sign") is not None:
        t = lw.emit(op.multiply(t, lw.c(np.asarray(a["gamma_sign"], np.int64))))
    y = lw.rescale(t, a["multiplier"], np.asarray(a["shift"]) + 16, rank, -1, rule=lw.rule(n))
    if a.get("beta_q") is not None:
        y = lw.emit(op.add(y, lw.c(np.asarray(a["beta_q"], np.int64))))
    lw.out(y, n)


@lowering("QLookup")
def _lookup(lw: Lowerer, n: Node) -> None:
    x = n.inputs[0]
    lo = int(np.iinfo(x.dtype.numpy).min)
    idx = lw.op.subtract(lw.op.astype(lw.val(x), "int32"), lw.c(np.int32(lo)))
    table = np.asarray(n.attrs["table"]).astype(n.outputs[0].dtype.numpy)
    lw.env[n.outputs[0].name] = lw.emit(lw.op.take(lw.c(table), idx, axis=0))


@lowering("MaxPool")
def _maxpool(lw: Lowerer, n: Node) -> None:
    a = n.attrs
    lw.env[n.outputs[0].name] = lw.emit(lw.op.nn.max_pool2d(
        lw.val(n.inputs[0]), pool_size=a["kernel_shape"], strides=a["strides"],
        padding=a["pads"], dilation=a.get("dilations", [1, 1]),
        ceil_mode=bool(a.get("ceil_mode", 0))))


@lowering("Reshape")
def _reshape(lw: Lowerer, n: Node) -> None:
    lw.env[n.outputs[0].name] = lw.emit(lw.op.reshape(lw.val(n.inputs[0]), n.attrs["shape"]))


@lowering("Transpose")
def _transpose(lw: Lowerer, n: Node) -> None:
    lw.env[n.outputs[0].name] = lw.emit(lw.op.permute_dims(lw.val(n.inputs[0]),
                                                           n.attrs["perm"]))


@lowering("Concat")
def _concat(lw: Lowerer, n: Node) -> None:
    lw.env[n.outputs[0].name] = lw.emit(lw.op.concat([lw.val(v) for v in n.inputs],
                                                     axis=n.attrs["axis"]))


@lowering("Split")
def _split(lw: Lowerer, n: Node) -> None:
    idx = [int(i) for i in np.cumsum(n.attrs["split"])[:-1]]
    t = lw.emit(lw.op.split(lw.val(n.inputs[0]), idx, axis=n.attrs["axis"]))
    for i, v in enumerate(n.outputs):
        lw.env[v.name] = lw.emit(lw.relax.TupleGetItem(t, i))


@lowering("Slice", "Gather", "Resize")
def _take_based(lw: Lowerer, n: Node) -> None:
    """Slice, Gather and nearest Resize as index selection (take), exact by construction."""
    x = lw.val(n.inputs[0])
    shape = n.inputs[0].shape
    a = n.attrs
    if n.op == "Gather":
        idx = n.inputs[1].const.astype(np.int64)
        idx = np.where(idx < 0, idx + shape[a.get("axis", 0)], idx)
        lw.env[n.outputs[0].name] = lw.emit(lw.op.take(x, lw.c(idx), axis=a.get("axis", 0)))
        return
    y = x
    if n.op == "Slice":
        for st, en, ax, sp in zip(a["starts"], a["ends"], a["axes"], a["steps"]):
            idx = np.arange(shape[ax])[slice(st, en, sp)].astype(np.int64)
            y = lw.emit(lw.op.take(y, lw.c(idx), axis=ax))
    else:
        for ax, (out_len, scale) in enumerate(zip(a["sizes"], a["scales"])):
            in_len = shape[ax]
            if out_len == in_len and scale == 1.0:
                continue
            c = resize_coords(out_len, in_len, scale, a["coordinate_transformation_mode"])
            idx = np.clip(nearest_index(c, a.get("nearest_mode", "round_prefer_floor")), 0,
                          in_len - 1).astype(np.int64)
            y = lw.emit(lw.op.take(y, lw.c(idx), axis=ax))
    lw.env[n.outputs[0].name] = y


@lowering("QResize")
def _qresize(lw: Lowerer, n: Node) -> None:
    """TFLite's integer bilinear arithmetic: corners taken with the interpreter's index tables,
    int64 products with the 10-bit weights, summed, divided by 2**20 half away from zero."""
    op = lw.op
    x, y = n.inputs[0], n.outputs[0]
    oh, ow = n.attrs["sizes"][2], n.attrs["sizes"][3]
    mode = n.attrs["coordinate_transformation_mode"]
    y0, y1, fy = linear_taps(x.shape[2], oh, mode)
    x0, x1, fx = linear_taps(x.shape[3], ow, mode)
    xi = lw.emit(op.astype(lw.val(x), "int64"))
    acc = None
    for rows, wr in ((y0, 1024 - fy), (y1, fy)):
        r = lw.emit(op.take(xi, lw.c(rows.astype(np.int64)), axis=2))
        for cols, wc in ((x0, 1024 - fx), (x1, fx)):
            t = lw.emit(op.multiply(op.take(r, lw.c(cols.astype(np.int64)), axis=3),
                                    _i64(lw, wr[:, None] * wc[None, :])))
            acc = t if acc is None else lw.emit(op.add(acc, t))
    half, shift = _i64(lw, 1 << 19), _i64(lw, 20)
    up = op.right_shift(op.add(acc, half), shift)
    down = op.negative(op.right_shift(op.add(op.negative(acc), half), shift))
    q = lw.emit(op.where(op.greater(acc, _i64(lw, 0)), up, down))
    lw.env[y.name] = lw.emit(op.astype(q, np.dtype(y.dtype.numpy).name))


@lowering("Pad", checks=(_constant_nonnegative_pads,))
def _pad(lw: Lowerer, n: Node) -> None:
    a = n.attrs
    p = a["pads"]
    r = len(n.inputs[0].shape)
    width = [int(v) for i in range(r) for v in (p[i], p[i + r])]
    lw.env[n.outputs[0].name] = lw.emit(lw.op.nn.pad(lw.val(n.inputs[0]), width,
                                                     pad_value=float(a.get("value", 0))))


def build_module(graph: Graph, node_outputs: list | None = None):
    """The Relax module of ``graph``; with a list, also records each node's output variables
    in it, in order, as ``(node name, [relax values])`` (the profiler's map back to nodes)."""
    from tvm import relax

    bb = relax.BlockBuilder()
    params = [relax.Var(v.name.replace("/", "_"), relax.TensorType(v.shape, v.dtype.value))
              for v in graph.inputs]
    lw = Lowerer(graph, bb)
    with bb.function("main", params):
        with bb.dataflow():
            for v, p in zip(graph.inputs, params):
                lw.env[v.name] = p
            for n in graph.nodes:
                LOWER[n.op].emit(lw, n)
                if node_outputs is not None:
                    node_outputs.append((n.name, [lw.env[v.name] for v in n.outputs]))
            outs = [lw.env[v.name] for v in graph.outputs]
            out = bb.emit_output(outs[0] if len(outs) == 1 else relax.Tuple(outs))
        bb.emit_func_output(out)
    return bb.get()

