"""Resize (and Upsample, which import canonicalizes to it): nearest and linear, every ONNX
``coordinate_transformation_mode``. On integers only nearest is exact (data movement, the
input's quantization kept)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from edgeq.ir.graph import Node, TensorType
from edgeq.ops.base import Attrs, kernel, quantize_check, quantize_rule, shape_rule, traits

if TYPE_CHECKING:
    from edgeq.quant.convert import Converter

traits("Resize", add=("keeps_qparams", "moves_data", "int16_input", "image"))


@shape_rule("Resize")
def _resize_shape(node, ts):
    return [TensorType(ts[0].dtype, tuple(node.attrs["sizes"]))]


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


@quantize_check("Resize")
def _resize_check(node: Node) -> str | None:
    """Nearest resizing (the only integer-exact mode)."""
    if node.attrs.get("mode") != "nearest":
        return "only nearest resizing is integer-exact; use mode='nearest'"
    return None


@quantize_rule("Resize")
def _quantize_resize(cv: Converter, node: Node) -> None:
    cv.passthrough(node)
