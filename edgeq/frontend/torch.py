"""PyTorch frontend: an ``nn.Module`` goes through the TorchScript ONNX exporter in memory, then
through the ONNX frontend. torch is imported only here. Nothing is unpickled: modules come from
Python factories the user names, never from untrusted files."""

from __future__ import annotations

import importlib
import io
import os
import sys
from typing import Any, Sequence

from edgeq.frontend.onnx import from_onnx
from edgeq.ir.graph import EdgeqError, Graph

OPSET = 17


def from_torch(module: Any, example_inputs: Any, name: str | None = None) -> Graph:
    import torch

    if not isinstance(module, torch.nn.Module):
        raise EdgeqError(f"expected a torch.nn.Module, got {type(module).__name__}")
    args = tuple(example_inputs) if isinstance(example_inputs, (list, tuple)) else \
        (example_inputs,)
    module = module.eval()
    names = ["input"] if len(args) == 1 else [f"input_{i}" for i in range(len(args))]
    buf = io.BytesIO()
    try:
        with torch.no_grad():
            torch.onnx.export(module, args, buf, dynamo=False, opset_version=OPSET,
                              input_names=names, do_constant_folding=True)
    except Exception as e:  # the exporter's own message names the unsupported torch op
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise EdgeqError(f"PyTorch export of {type(module).__name__} failed: {msg}") from None
    import onnx

    model = onnx.load_from_string(buf.getvalue())
    return from_onnx(model, name=name or type(module).__name__)


def load_factory(spec: str) -> Any:
    """``package.module:factory`` -> the module the factory returns (cwd is importable)."""
    if ":" not in spec:
        raise EdgeqError(f"--torch expects package.module:factory, got {spec!r}")
    mod_name, fn_name = spec.split(":", 1)
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        mod = importlib.import_module(mod_name)
    except ImportError as e:
        raise EdgeqError(f"--torch {spec}: cannot import {mod_name} ({e})") from None
    fn = getattr(mod, fn_name, None)
    if fn is None or not callable(fn):
        raise EdgeqError(f"--torch {spec}: {mod_name} has no callable {fn_name!r}")
    return fn()


def example_input(shape: Sequence[int]) -> Any:
    import torch

    return torch.zeros(tuple(shape), dtype=torch.float32)
