"""Limits on sizes that come from files. A model file, a calibration file or an attribute can
declare any size; edgeq checks every size it did not choose against these limits *before* it
allocates, and refuses with an ``EdgeqError`` naming the tensor or node.

- ``EDGEQ_MAX_TENSOR_BYTES`` (default 2 GiB): the largest single tensor a file may declare or
  an import-time fold may build (weights, folded constants, a graph.json, an ``.npy`` member).
- ``EDGEQ_MAX_ACTIVATION_BYTES`` (default 1 GiB): the largest activation a node's inferred
  output may have (so ``Resize`` by 20000 or pads of 1e6 are refused at import, not at run time).
- ``EDGEQ_MAX_UNROLL_STEPS`` (default 1024): the most time steps (over all directions) an LSTM
  or GRU is unrolled into (each step is a dozen nodes or more).
"""

from __future__ import annotations

import math
import os
from typing import Sequence

from edgeq.ir.graph import EdgeqError

DEFAULT_MAX_TENSOR_BYTES = 2 << 30
DEFAULT_MAX_ACTIVATION_BYTES = 1 << 30
DEFAULT_MAX_UNROLL_STEPS = 1024


def _env(name: str, default: int) -> int:
    text = os.environ.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise EdgeqError(f"{name}={text!r}: expected a number of bytes") from None
    if value <= 0:
        raise EdgeqError(f"{name}={text!r}: expected a positive number of bytes")
    return value


def max_tensor_bytes() -> int:
    """The largest tensor a file may declare or a fold may build (``EDGEQ_MAX_TENSOR_BYTES``)."""
    return _env("EDGEQ_MAX_TENSOR_BYTES", DEFAULT_MAX_TENSOR_BYTES)


def max_activation_bytes() -> int:
    """The largest activation a node may produce (``EDGEQ_MAX_ACTIVATION_BYTES``)."""
    return _env("EDGEQ_MAX_ACTIVATION_BYTES", DEFAULT_MAX_ACTIVATION_BYTES)


def max_unroll_steps() -> int:
    """The most recurrent time steps import unrolls (``EDGEQ_MAX_UNROLL_STEPS``)."""
    return _env("EDGEQ_MAX_UNROLL_STEPS", DEFAULT_MAX_UNROLL_STEPS)


def nbytes(shape: Sequence[int], itemsize: int) -> int:
    """Exact size in bytes (Python integers: no overflow however large the dims)."""
    return math.prod(int(d) for d in shape) * int(itemsize)


def check_tensor(shape: Sequence[int], itemsize: int, what: str) -> None:
    """Refuse a constant of ``shape`` before it is allocated. ``what`` names it for the user,
    e.g. ``"ConstantOfShape 'node_7' output"``."""
    if any(int(d) < 0 for d in shape):
        raise EdgeqError(f"{what}: negative dimension in shape {list(shape)}")
    need, cap = nbytes(shape, itemsize), max_tensor_bytes()
    if need > cap:
        raise EdgeqError(f"{what}: shape {list(shape)} needs {need:,} bytes, above the limit of "
                         f"{cap:,} (EDGEQ_MAX_TENSOR_BYTES)")


def check_activation(shape: Sequence[int], itemsize: int, what: str) -> None:
    """Refuse an activation of ``shape`` (a node's inferred output)."""
    need, cap = nbytes(shape, itemsize), max_activation_bytes()
    if need > cap:
        raise EdgeqError(f"{what}: output shape {list(shape)} needs {need:,} bytes, above the "
                         f"limit of {cap:,} (EDGEQ_MAX_ACTIVATION_BYTES)")
