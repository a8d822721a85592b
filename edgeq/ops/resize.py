"""Resize (and Upsample, which import canonicalizes to it): nearest and linear, every ONNX
``coordinate_transformation_mode``; QResize, linear resizing on integers.

On integers, nearest resizing is data movement (it stays, with the input's quantization).
Linear resizing of H and W of an NCHW tensor becomes QResize: TFLite's int8 RESIZE_BILINEAR
arithmetic (``ResizeBilinearInteger``, docs/numerics.md "Linear resize"), the input's
quantization kept. Per resized axis, with ``n_in``, ``n_out`` its sizes and ``o`` an output
index, in 10-bit fixed point (C integer division truncates toward zero)::

    s10  = (1024 n_in + n_out // 2) // n_out      align_corners, n_out > 1: 1024 (n_in - 1) and
                                                   n_out - 1 in place of 1024 n_in and n_out
    c    = o s10 + (s10 // 2 - 512 if half_pixel else 0)
    lo   = max(c / 1024, 0),  hi = min((c + 1023) / 1024, n_in - 1),  f = c - 1024 lo

and per output pixel, over the two rows (``lo``: ``1024 - f_h``, ``hi``: ``f_h``) and columns::

    acc  = sum of x[row, col] * row weight * column weight    (int64, raw int8 values)
    y    = (acc + (2**19 if acc > 0 else -2**19)) / 2**20      (half away from zero)

The four weights sum to 2**20, so ``y`` stays in the input's range. The fixed-point coordinates
approximate ONNX's (``resize_coords``); ``LINEAR_MODES`` maps ONNX's modes to QResize's and
``linear_reason`` says why a linear Resize has no integer form.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from edgeq.ir.graph import EdgeqError, Node, TensorType
from edgeq.ops.base import (Attrs, kernel, quantize_check, quantize_rule, result_dtype,
                            shape_rule, traits)

if TYPE_CHECKING:
    from edgeq.quant.convert import Converter

traits("Resize", add=("keeps_qparams", "moves_data", "int16_input", "image"))
traits("QResize", add=("integer", "image"))

# ONNX coordinate_transformation_mode -> QResize's (TFLite's align_corners / half_pixel_centers)
LINEAR_MODES = {"align_corners": "align_corners", "asymmetric": "asymmetric",
                "half_pixel": "half_pixel", "pytorch_half_pixel": "half_pixel"}


@shape_rule("Resize", "QResize")
def _resize_shape(node, ts):
    sizes = tuple(int(s) for s in node.attrs["sizes"])
    if len(sizes) != len(ts[0].shape) or any(s < 1 for s in sizes):
        raise EdgeqError(f"{node.op} '{node.name}': sizes {list(sizes)} must be one positive "
                         f"size per axis of the input {list(ts[0].shape)}")
    if node.op == "Resize":
        scales = node.attrs.get("scales", [1.0] * len(sizes))
        if len(scales) != len(sizes) or not all(np.isfinite(s) and s > 0 for s in scales):
            raise EdgeqError(f"Resize '{node.name}': scales {list(scales)} must be one finite "
                             f"positive scale per axis")
    return [TensorType(result_dtype(node, ts[0]), sizes)]


def resize_coords(out_len: int, in_len: int, scale: float, mode: str) -> np.ndarray:
    """Source coordinate of each output index (ONNX Resize coordinate_transformation_mode)."""
    x = np.arange(out_len, dtype=np.float64)
    if mode == "half_pixel":
        return (x + 0.5) / scale - 0.5
    if mode == "pytorch_half_pixel":
        return (x + 0.5) / scale - 0.5 if out_len > 1 else np.zeros_like(x)
    if mode == "align_corners":
        return x * (in_len - 1) / (out_len - 1) if out_len > 1 else np.zeros_like(x)
    if mode == "asymmetric":
        return x / scale
    if mode == "tf_half_pixel_for_nn":
        return (x + 0.5) / scale
    raise ValueError(f"coordinate_transformation_mode {mode}")


def nearest_index(c: np.ndarray, mode: str) -> np.ndarray:
    if mode == "floor":
        return np.floor(c)
    if mode == "ceil":
        return np.ceil(c)
    if mode == "round_prefer_ceil":
        return np.floor(c + 0.5)
    return np.ceil(c - 0.5)  # round_prefer_floor (the default)


@kernel("Resize")
def resize(a: Attrs, x):
    y = x
    for ax, (out_len, scale) in enumerate(zip(a["sizes"], a["scales"])):
        in_len = y.shape[ax]
        if out_len == in_len and scale == 1.0:
            continue
        c = resize_coords(out_len, in_len, scale, a["coordinate_transformation_mode"])
        if a["mode"] == "nearest":
            idx = np.clip(nearest_index(c, a.get("nearest_mode", "round_prefer_floor")), 0,
                          in_len - 1).astype(np.int64)
            y = np.take(y, idx, axis=ax)
        else:
            c = np.clip(c, 0, in_len - 1)
            lo = np.floor(c).astype(np.int64)
            hi = np.minimum(lo + 1, in_len - 1)
            wgt = (c - lo).reshape([-1 if i == ax else 1 for i in range(y.ndim)])
            y = np.take(y, lo, axis=ax) * (1 - wgt) + np.take(y, hi, axis=ax) * wgt
    return (y.astype(x.dtype),)


# --- the integer linear resize (TFLite's ResizeBilinearInteger) -------------------------------

def _c_div(a: np.ndarray, b: int) -> np.ndarray:
    """C integer division (truncates toward zero), for b > 0."""
    return np.where(a >= 0, a // b, -((-a) // b))


def linear_taps(in_len: int, out_len: int, mode: str) -> tuple[np.ndarray, np.ndarray,
                                                                np.ndarray]:
    """Per output index along one axis: (lo, hi, f), the two source indices and the 10-bit
    weight of ``hi`` (``lo`` weighs ``1024 - f``). ``lo`` may pass ``in_len - 1`` only for
    upsampling by about 1000x (``linear_reason`` refuses it)."""
    if mode == "align_corners" and out_len > 1:
        s10 = (1024 * (in_len - 1) + (out_len - 1) // 2) // (out_len - 1)
    else:
        s10 = (1024 * in_len + out_len // 2) // out_len
    o = np.arange(out_len, dtype=np.int64)
    c = o * s10 + (s10 // 2 - 512 if mode == "half_pixel" else 0)
    lo = np.maximum(_c_div(c, 1024), 0)
    hi = np.minimum(_c_div(c + 1023, 1024), in_len - 1)
    return lo, hi, c - 1024 * lo


@kernel("QResize")
def qresize(a: Attrs, x):
    mode = a["coordinate_transformation_mode"]
    n, ch, h, w = x.shape
    oh, ow = a["sizes"][2], a["sizes"][3]
    y0, y1, fy = linear_taps(h, oh, mode)
    x0, x1, fx = linear_taps(w, ow, mode)
    xi = x.astype(np.int64)
    wy = [(y0, 1024 - fy), (y1, fy)]
    wx = [(x0, 1024 - fx), (x1, fx)]
    acc = np.zeros((n, ch, oh, ow), np.int64)
    for rows, wr in wy:
        for cols, wc in wx:
            acc += xi[:, :, rows][:, :, :, cols] * (wr[:, None] * wc[None, :])
    q = np.where(acc > 0, (acc + (1 << 19)) >> 20, -((-acc + (1 << 19)) >> 20))
    return (q.astype(x.dtype),)


def linear_reason(node: Node) -> str | None:
    """Why a linear Resize has no integer form (None if it has one)."""
    a = node.attrs
    x = node.inputs[0]
    ctm = a["coordinate_transformation_mode"]
    if len(x.shape) != 4:
        return f"linear resizing of a rank-{len(x.shape)} tensor: only 4-D NCHW has an " \
               f"integer form"
    if list(a["sizes"][:2]) != list(x.shape[:2]):
        return "linear resizing of N or C has no integer form (H and W only)"
    if ctm not in LINEAR_MODES:
        return (f"linear resizing with coordinate_transformation_mode {ctm!r} has no integer "
                f"form (align_corners, asymmetric, half_pixel, pytorch_half_pixel)")
    for ax in (2, 3):
        n_in, n_out, scale = x.shape[ax], a["sizes"][ax], a["scales"][ax]
        if ctm == "pytorch_half_pixel" and n_out == 1 < n_in:
            return ("pytorch_half_pixel resizing to size 1 reads pixel 0, which TFLite's "
                    "half-pixel coordinates do not")
        if ctm != "align_corners" and abs(scale * n_in - n_out) > 1e-6 * n_out:
            return (f"scale {scale:g} on axis {ax} is not output/input size {n_out}/{n_in}: "
                    f"the integer coordinates derive from the sizes")
        lo, _, _ = linear_taps(n_in, n_out, LINEAR_MODES[ctm])
        if lo.max() > n_in - 1:
            return (f"upsampling {n_in} -> {n_out} on axis {ax} is beyond the 10-bit "
                    f"fixed-point coordinates (a source index passes the input)")
    return None


@quantize_check("Resize")
def _resize_check(node: Node) -> str | None:
    """Nearest resizing (data movement); or linear resizing of H and W of a 4-D NCHW tensor
    (QResize) with coordinate mode align_corners, asymmetric, half_pixel or
    pytorch_half_pixel (not to size 1), scales equal to the output/input sizes, and
    upsampling below about 1000x."""
    if node.attrs.get("mode") == "nearest":
        return None
    if node.attrs.get("mode") != "linear":
        return f"{node.attrs.get('mode')} resizing has no integer form (nearest, linear)"
    return linear_reason(node)


@quantize_rule("Resize")
def _quantize_resize(cv: Converter, node: Node) -> None:
    if node.attrs["mode"] == "nearest":
        cv.passthrough(node)
        return
    x = cv.get(node.inputs[0])
    attrs = {"sizes": list(node.attrs["sizes"]),
             "coordinate_transformation_mode":
             LINEAR_MODES[node.attrs["coordinate_transformation_mode"]]}
    cv.emit("QResize", node, [x], attrs, node.outputs[0], x.qparams, x.dtype)
