"""Helpers for pass tests: build a graph from ONNX nodes, run before/after on the interpreter."""

from __future__ import annotations

import numpy as np

from edgeq.ir.graph import Graph
from edgeq.ir.verify import verify
from edgeq.passes.pipeline import run_passes
from edgeq.runtime.reference import run_graph
from tests.helpers import graph_of  # noqa: F401  (the pass tests' builder)


def random_feeds(graph: Graph, seed: int = 0, scale: float = 1.0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {v.name: (rng.normal(0, scale, v.shape)).astype(v.dtype.numpy) for v in graph.inputs}


def apply(graph: Graph, name: str, fn) -> tuple[Graph, bool, list[str]]:
    """Run one pass on a copy, verified; returns (after, changed, refusal notes)."""
    after = graph.copy()
    res = run_passes(after, [(name, fn)], verify_each=True, max_rounds=1)
    verify(after)
    return after, res.changed, res.notes


def outputs(graph: Graph, feeds) -> list[np.ndarray]:
    res = run_graph(graph, feeds)
    return [res[v.name] for v in graph.outputs]


def assert_same_outputs(before: Graph, after: Graph, feeds, rtol=1e-5, atol=1e-5) -> None:
    for a, b in zip(outputs(before, feeds), outputs(after, feeds)):
        np.testing.assert_allclose(b, a, rtol=rtol, atol=atol)
