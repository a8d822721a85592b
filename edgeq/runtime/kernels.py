"""Moved to ``edgeq.ops`` (one module per op family); this alias goes once every importer is
updated."""

from edgeq.ops.base import KERNEL as KERNELS  # noqa: F401
from edgeq.ops.conv import conv2d, conv_transpose2d, pad_nchw, windows  # noqa: F401
from edgeq.ops.pool import avg_pool_divisor, pool_output_hw  # noqa: F401
from edgeq.ops.resize import _nearest, resize_coords  # noqa: F401
