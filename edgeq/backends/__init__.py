"""Backends: one protocol (``edgeq.backends.base``), one registry.

Built-ins are listed here; third parties register through the ``edgeq.backends`` entry-point
group: name -> a factory called with the backend options as keywords (``allow_fallback``) that
returns an object implementing ``Backend``.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Callable

from edgeq.backends.base import Artifact, Backend, Checks, Refusal
from edgeq.backends.c import Aarch64Backend, CBackend, CortexMBackend
from edgeq.backends.ethos_u import EthosUBackend
from edgeq.backends.npu_sim import NpuSimBackend
from edgeq.backends.ort_qdq import OrtQdqBackend
from edgeq.backends.tflite import TflmBackend, TfliteBackend
from edgeq.backends.tvm import TvmBackend
from edgeq.ir.graph import EdgeqError


def _builtins() -> dict[str, Callable[..., Backend]]:
    return {"ort": OrtQdqBackend, "tflite": TfliteBackend, "tflm": TflmBackend,
            "tvm": TvmBackend, "ethos-u": EthosUBackend, "c": CBackend,
            "cortex-m4": partial(CortexMBackend, "cortex-m4"),
            "cortex-m7": partial(CortexMBackend, "cortex-m7"), "npu-sim": NpuSimBackend,
            "aarch64": Aarch64Backend}


def get_backend(name: str, *, allow_fallback: bool = False, **options: Any) -> Backend:
    """The backend for target ``name``, built with its options: ``allow_fallback`` lets it run
    nodes its integer kernels lack in float where its runtime allows (``--allow-fallback``);
    ``options`` (``npu``: the NPU description for ``npu-sim``) are passed when not None, and
    backends that do not use one ignore it."""
    options = {k: v for k, v in options.items() if v is not None}
    table: dict[str, Any] = _builtins()
    try:
        from importlib.metadata import entry_points

        for ep in entry_points(group="edgeq.backends"):
            table.setdefault(ep.name, ep.load())
    except Exception:  # a broken third-party plugin must not break the built-ins
        pass
    if name not in table:
        raise EdgeqError(f"unknown target {name!r}; available: {', '.join(sorted(table))}")
    return table[name](allow_fallback=allow_fallback, **options)


def available() -> list[str]:
    return sorted(_builtins())


__all__ = ["Artifact", "Backend", "Checks", "Refusal", "available", "get_backend"]
