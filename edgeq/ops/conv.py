"""Convolutions: Conv, ConvTranspose and their integer forms QConv, QConvTranspose (2-D, NCHW).

Output size ``floor((in + pad_begin + pad_end - dilation*(k-1) - 1) / stride) + 1``;
transposed: ``stride*(in-1) + output_padding + (k-1)*dilation + 1 - pad_begin - pad_end``.
MACs: Conv ``out_elems * Cin/g * kh*kw``, ConvTranspose ``in_elems * Cout/g * kh*kw``.
Integer form (docs/numerics.md): ``acc[c] = sum((x - x_zp) * w[c]) + bias[c]`` (padding
contributes 0, the same as padding ``x`` with ``x_zp``), rescaled per output channel.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numpy.lib.stride_tricks import as_strided

from edgeq.ir.graph import EdgeqError, Node, TensorType
from edgeq.ir.limits import check_activation
from edgeq.numerics.scheme import quantize_weight
from edgeq.ops._integer import centered, requant, to_int
from edgeq.ops._quantize import constant_weights, quantize_linear
from edgeq.ops.activation import apply_activation
from edgeq.ops.base import (KERNEL, Attrs, macs_rule, quantize_check, quantize_rule,
                            result_dtype, shape_rule, traits)

if TYPE_CHECKING:
    from edgeq.quant.convert import Converter

traits("Conv", add=("spatial", "fuses_activation", "int16_input", "folds_channel_affine",
                    "compensated_weights"))
traits("ConvTranspose", add=("fuses_activation", "int16_input", "folds_channel_affine"))
traits("QConv", add=("integer", "spatial"))
traits("QConvTranspose", add="integer")
traits("Conv", "ConvTranspose", "QConv", "QConvTranspose", add="image")


# --- spatial helpers (shared with pooling) -------------------------------------------------------

def windows(x: np.ndarray, kernel_shape, strides, dilations, out_hw) -> np.ndarray:
    """View (N, C, OH, OW, KH, KW) of an already padded NCHW array; no copy."""
    n, c, _, _ = x.shape
    sn, sc, sh, sw = x.strides
    return as_strided(x, shape=(n, c, out_hw[0], out_hw[1], kernel_shape[0], kernel_shape[1]),
                      strides=(sn, sc, sh * strides[0], sw * strides[1], sh * dilations[0],
                               sw * dilations[1]), writeable=False)


def pad_nchw(x: np.ndarray, pads, value=0) -> np.ndarray:
    top, left, bottom, right = pads[0], pads[1], pads[2], pads[3]
    if not (top or left or bottom or right):
        return x
    return np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)), constant_values=value)


def conv2d(x: np.ndarray, w: np.ndarray, attrs: Attrs, acc=np.float32) -> np.ndarray:
    """Grouped 2-D convolution without bias, accumulating in ``acc`` (exact for integer inputs
    in float64 while partial sums stay below 2**53)."""
    kh, kw = attrs["kernel_shape"]
    s, d, g = attrs["strides"], attrs["dilations"], attrs["group"]
    xp = pad_nchw(x, attrs["pads"], attrs.get("pad_value", 0))
    n, c, hp, wp = xp.shape
    oh = (hp - (kh - 1) * d[0] - 1) // s[0] + 1
    ow = (wp - (kw - 1) * d[1] - 1) // s[1] + 1
    m = w.shape[0]
    cg, mg = c // g, m // g
    xp = xp.astype(acc, copy=False)
    wa = w.astype(acc, copy=False)
    if cg == 1 and mg == 1:  # depthwise: a sum of shifted products, no im2col
        out = np.zeros((n, c, oh, ow), acc)
        for i in range(kh):
            for j in range(kw):
                sl = xp[:, :, i * d[0]: i * d[0] + s[0] * (oh - 1) + 1: s[0],
                        j * d[1]: j * d[1] + s[1] * (ow - 1) + 1: s[1]]
                out += sl * wa[:, 0, i, j][None, :, None, None]
        return out
    cols = windows(np.ascontiguousarray(xp), (kh, kw), s, d, (oh, ow))
    # (N, G, Cg, OH, OW, KH, KW) -> (G, N*OH*OW, Cg*KH*KW)
    cols = cols.reshape(n, g, cg, oh, ow, kh, kw).transpose(1, 0, 3, 4, 2, 5, 6)
    cols = cols.reshape(g, n * oh * ow, cg * kh * kw)
    wm = wa.reshape(g, mg, cg * kh * kw).transpose(0, 2, 1)
    out = np.matmul(cols, wm)  # (G, N*OH*OW, Mg)
    return out.reshape(g, n, oh, ow, mg).transpose(1, 0, 4, 2, 3).reshape(n, m, oh, ow)


def conv_transpose2d(x: np.ndarray, w: np.ndarray, attrs: Attrs, acc=np.float32) -> np.ndarray:
    """Scatter form: every input pixel adds W[c, :, i, j] * x at stride*pos + dilation*(i, j)."""
    kh, kw = attrs["kernel_shape"]
    s, d, g = attrs["strides"], attrs["dilations"], attrs["group"]
    pads, opad = attrs["pads"], attrs["output_padding"]
    n, c, h, wd = x.shape
    mg = w.shape[1]
    cg = c // g
    full_h = s[0] * (h - 1) + (kh - 1) * d[0] + 1 + opad[0]
    full_w = s[1] * (wd - 1) + (kw - 1) * d[1] + 1 + opad[1]
    out = np.zeros((n, g * mg, full_h, full_w), acc)
    xa = x.astype(acc, copy=False)
    wa = w.astype(acc, copy=False)
    for gi in range(g):
        xg = xa[:, gi * cg:(gi + 1) * cg]
        for i in range(kh):
            for j in range(kw):
                contrib = np.einsum("nchw,cm->nmhw", xg, wa[gi * cg:(gi + 1) * cg, :, i, j])
                out[:, gi * mg:(gi + 1) * mg, i * d[0]: i * d[0] + s[0] * (h - 1) + 1: s[0],
                    j * d[1]: j * d[1] + s[1] * (wd - 1) + 1: s[1]] += contrib
    return out[:, :, pads[0]: full_h - pads[2], pads[1]: full_w - pads[3]]


# --- shapes ---------------------------------------------------------------------------------

def check_window(where: str, kernel_shape, strides, pads, dilations=(1, 1)) -> None:
    """A 2-D window's attributes: two positive kernel sizes, strides and dilations, and four
    non-negative pads, each below 2**31 (``where`` names the node, e.g. "Conv 'stem'")."""
    for what, vals, n, lo in (("kernel_shape", kernel_shape, 2, 1), ("strides", strides, 2, 1),
                              ("dilations", dilations, 2, 1), ("pads", pads, 4, 0)):
        vals = list(vals)
        if len(vals) != n:
            raise EdgeqError(f"{where}: {what} {vals} must have {n} values (2-D)")
        if any(not isinstance(v, (int, np.integer)) or not lo <= v < 2 ** 31 for v in vals):
            raise EdgeqError(f"{where}: {what} {vals} must be integers from {lo} to 2**31 - 1")


def check_padded(node: Node, x: TensorType, pads) -> None:
    """The kernels pad the input first: that array must fit the activation limit too."""
    n, c, h, w = x.shape
    check_activation((n, c, h + pads[0] + pads[2], w + pads[1] + pads[3]), x.dtype.itemsize,
                     f"{node.op} '{node.name}' padded input")


def conv_out_hw(node: Node, in_hw, k, s, p, d) -> tuple[int, int]:
    out = []
    for i in range(2):
        span = in_hw[i] + p[i] + p[i + 2] - (d[i] * (k[i] - 1) + 1)
        if span < 0:
            raise EdgeqError(f"{node.op} '{node.name}': kernel {list(k)} (dilation {list(d)}) is "
                             f"larger than the padded input {list(in_hw)}")
        out.append(span // s[i] + 1)
    return out[0], out[1]


@shape_rule("Conv", "QConv")
def _conv_shape(node, ts):
    x, w = ts[0], ts[1]
    a = node.attrs
    if len(x.shape) != 4:
        raise EdgeqError(f"Conv '{node.name}': only 2-D convolution (4-D NCHW input) is "
                         f"supported, got input shape {list(x.shape)}")
    where = f"{node.op} '{node.name}'"
    if len(w.shape) != 4:
        raise EdgeqError(f"{where}: weight shape {list(w.shape)} is not 4-D (M, C/group, kH, kW)")
    check_window(where, a["kernel_shape"], a["strides"], a["pads"], a["dilations"])
    if list(a["kernel_shape"]) != list(w.shape[2:]):
        raise EdgeqError(f"{where}: kernel_shape {list(a['kernel_shape'])} differs from the "
                         f"weight's {list(w.shape[2:])}")
    c, g = x.shape[1], a["group"]
    if g < 1 or c % g or w.shape[0] % g or w.shape[1] * g != c:
        raise EdgeqError(f"Conv '{node.name}': group={g} with {c} input channels and weight "
                         f"shape {list(w.shape)} is not a valid grouping")
    _check_bias(node, ts, w.shape[0])
    check_padded(node, x, a["pads"])
    oh, ow = conv_out_hw(node, x.shape[2:], a["kernel_shape"], a["strides"], a["pads"],
                         a["dilations"])
    return [TensorType(result_dtype(node, x), (x.shape[0], w.shape[0], oh, ow))]


@shape_rule("ConvTranspose", "QConvTranspose")
def _conv_transpose_shape(node, ts):
    x, w = ts[0], ts[1]
    a = node.attrs
    if len(x.shape) != 4:
        raise EdgeqError(f"ConvTranspose '{node.name}': only 2-D is supported, got input shape "
                         f"{list(x.shape)}")
    where = f"{node.op} '{node.name}'"
    if len(w.shape) != 4:
        raise EdgeqError(f"{where}: weight shape {list(w.shape)} is not 4-D (C, M/group, kH, kW)")
    k, s, d, p, op = a["kernel_shape"], a["strides"], a["dilations"], a["pads"], \
        a["output_padding"]
    check_window(where, k, s, p, d)
    if list(k) != list(w.shape[2:]):
        raise EdgeqError(f"{where}: kernel_shape {list(k)} differs from the weight's "
                         f"{list(w.shape[2:])}")
    g = a["group"]
    if g < 1 or x.shape[1] % g or w.shape[0] != x.shape[1]:
        raise EdgeqError(f"{where}: group={g} with {x.shape[1]} input channels and weight shape "
                         f"{list(w.shape)} is not a valid grouping")
    op = list(op)
    if len(op) != 2 or any(not 0 <= v < max(s[i], d[i]) for i, v in enumerate(op)):
        raise EdgeqError(f"{where}: output_padding {op} must be 2 values, each below its stride "
                         f"or dilation")
    _check_bias(node, ts, w.shape[1] * g)
    hw = [s[i] * (x.shape[2 + i] - 1) + op[i] + (k[i] - 1) * d[i] + 1 - p[i] - p[i + 2]
          for i in range(2)]
    if any(v <= 0 for v in hw) or any(v <= 0 for v in x.shape[2:]):
        raise EdgeqError(f"{where}: output size {hw} from input {list(x.shape)} is empty")
    # the kernel scatters into the full output, then crops the pads
    check_activation((x.shape[0], w.shape[1] * g, hw[0] + p[0] + p[2], hw[1] + p[1] + p[3]),
                     x.dtype.itemsize, f"{where} output before its pads are cropped")
    return [TensorType(result_dtype(node, x), (x.shape[0], w.shape[1] * a["group"], hw[0], hw[1]))]


def _check_bias(node: Node, ts: list[TensorType], m: int) -> None:
    if len(ts) > 2 and ts[2].shape != (m,):
        raise EdgeqError(f"{node.op} '{node.name}': bias shape {list(ts[2].shape)}, expected "
                         f"[{m}] (one per output channel)")


@macs_rule("Conv", "QConv")
def _conv_macs(node: Node) -> int:
    w = node.inputs[1].shape
    return node.outputs[0].type.size * w[1] * w[2] * w[3]


@macs_rule("ConvTranspose", "QConvTranspose")
def _conv_transpose_macs(node: Node) -> int:
    w = node.inputs[1].shape
    return node.inputs[0].type.size * w[1] * w[2] * w[3]


# --- kernels --------------------------------------------------------------------------------

def _float_conv(core):
    def k(a: Attrs, x, w, b=None):
        y = core(x, w, a)
        if b is not None:
            y = y + b.reshape(1, -1, 1, 1)
        return (apply_activation(y.astype(x.dtype, copy=False), a),)
    return k


def _integer_conv(core):
    def k(a: Attrs, x, w, b=None):
        # centering first makes zero padding equal to padding x with its zero point
        acc = to_int(core(centered(x, a["x_zp"]), w, a, acc=np.float64))
        if b is not None:
            acc = acc + b.astype(np.int64).reshape(1, -1, 1, 1)
        return (requant(acc, a, axis=1),)
    return k


KERNEL["Conv"] = _float_conv(conv2d)
KERNEL["ConvTranspose"] = _float_conv(conv_transpose2d)
KERNEL["QConv"] = _integer_conv(conv2d)
KERNEL["QConvTranspose"] = _integer_conv(conv_transpose2d)


# --- quantize rules -------------------------------------------------------------------------

quantize_check("Conv", "ConvTranspose")(constant_weights)


@quantize_rule("Conv")
def _quantize_conv(cv: Converter, node: Node) -> None:
    quantize_linear(cv, node, "QConv",
                    lambda w, floor: quantize_weight(w, 0, cv.cfg.weight_bits, floor))


@quantize_rule("ConvTranspose")
def _quantize_conv_transpose(cv: Converter, node: Node) -> None:
    g = node.attrs["group"]

    def q(w, floor):
        c, mg = w.shape[0], w.shape[1]
        # output channel gi*mg + j owns w[gi*cg:(gi+1)*cg, j]: move it to the front
        per_out = w.reshape(g, c // g, mg, *w.shape[2:]).transpose(0, 2, 1, 3, 4)
        wq, s = quantize_weight(per_out.reshape(g * mg, c // g, *w.shape[2:]), 0,
                                cv.cfg.weight_bits, floor)
        back = wq.reshape(g, mg, c // g, *w.shape[2:]).transpose(0, 2, 1, 3, 4)
        return back.reshape(w.shape), s
    quantize_linear(cv, node, "QConvTranspose", q)
