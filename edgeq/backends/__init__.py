"""Backends: one interface, one registry.

A backend is an object with ``name``, ``supports(graph) -> list[str]`` (one reason per node it
cannot take; empty when it takes the whole graph), ``lower(graph, out_dir) -> path`` (writes
its artifact) and ``run(path, feeds, raw) -> {output name: array}`` (dequantized outputs, or the
integer ones with ``raw``). Built-ins are listed here; third parties register through the
``edgeq.backends`` entry-point group (name -> a zero-argument factory).
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from edgeq.ir.graph import EdgeqError, Graph


class Backend(Protocol):
    name: str
    artifact: str

    def supports(self, graph: Graph) -> list[str]: ...

    def lower(self, graph: Graph, out_dir: str) -> str: ...

    def run(self, path: str, feeds: dict[str, np.ndarray], raw: bool = False
            ) -> dict[str, np.ndarray]: ...


def _builtins() -> dict[str, Any]:
    from edgeq.backends.c import CBackend, CortexMBackend
    from edgeq.backends.ethos_u import EthosUBackend
    from edgeq.backends.ort_qdq import OrtQdqBackend
    from edgeq.backends.tflite import TflmBackend, TfliteBackend
    from edgeq.backends.tvm import TvmBackend

    return {"ort": OrtQdqBackend, "tflite": TfliteBackend, "tflm": TflmBackend,
            "tvm": TvmBackend, "ethos-u": EthosUBackend, "c": CBackend,
            "cortex-m4": lambda: CortexMBackend("cortex-m4"),
            "cortex-m7": lambda: CortexMBackend("cortex-m7")}


def get_backend(name: str) -> Backend:
    table = _builtins()
    try:
        from importlib.metadata import entry_points

        for ep in entry_points(group="edgeq.backends"):
            table.setdefault(ep.name, ep.load())
    except Exception:  # a broken third-party plugin must not break the built-ins
        pass
    if name not in table:
        raise EdgeqError(f"unknown target {name!r}; available: {', '.join(sorted(table))}")
    return table[name]()


def available() -> list[str]:
    return sorted(_builtins())
