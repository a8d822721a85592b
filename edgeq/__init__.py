"""edgeq: a deployment compiler for integer-only inference on phones, NPUs and microcontrollers."""

__version__ = "0.1.0"

from edgeq.api import (from_onnx, from_torch, inspect, load, load_model, optimize,  # noqa: E402
                       quantize, run, save)

__all__ = ["__version__", "from_onnx", "from_torch", "inspect", "load", "load_model",
           "optimize", "quantize", "run", "save"]
