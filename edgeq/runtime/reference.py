"""The reference interpreter: runs a Graph node by node with the ops' numpy kernels
(``edgeq.ops``: float kernels for float ops, exact integer kernels for integer ops).

It is the source of truth every pass and backend is checked against. Values are freed after
their last reader, so memory follows the live set, not the whole graph.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from edgeq.ir.graph import EdgeqError, Graph
from edgeq.ops.base import KERNEL


def check_feeds(graph: Graph, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Inputs by name, with exact shapes; floats are converted to the input's float type."""
    out = {}
    missing = [v.name for v in graph.inputs if v.name not in feeds]
    if missing:
        raise EdgeqError(f"missing input(s) {missing}; the model's inputs are "
                         f"{[v.name for v in graph.inputs]}")
    for v in graph.inputs:
        a = np.asarray(feeds[v.name])
        if tuple(a.shape) != v.shape:
            raise EdgeqError(f"input '{v.name}': expected shape {list(v.shape)}, got "
                             f"{list(a.shape)}")
        want = v.dtype.numpy
        if a.dtype != want:
            if a.dtype.kind in "fiub" and (want.kind == "f" or np.can_cast(a.dtype, want)):
                a = a.astype(want)
            else:
                raise EdgeqError(f"input '{v.name}': expected {want}, got {a.dtype}")
        if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
            raise EdgeqError(f"input '{v.name}': contains NaN or Inf")
        out[v.name] = a
    return out


def run_graph(graph: Graph, feeds: Mapping[str, np.ndarray], keep: bool = False,
              computed: Mapping[str, np.ndarray] | None = None, start: int = 0
              ) -> dict[str, np.ndarray]:
    """Run once; returns the graph outputs by name (every value when ``keep``). ``computed``
    and ``start`` resume a run: values already computed (e.g. by a patch-based stage) and the
    index of the first node still to run."""
    env: dict[str, np.ndarray] = dict(check_feeds(graph, feeds))
    env.update(computed or {})
    for v in graph.values.values():
        if v.is_const:
            env[v.name] = v.const
    last_use: dict[str, int] = {}
    for i, n in enumerate(graph.nodes):
        for v in n.inputs:
            if v is not None:
                last_use[v.name] = i
    outputs = {v.name for v in graph.outputs}
    for i, n in enumerate(graph.nodes[start:], start):
        fn = KERNEL.get(n.op)
        if fn is None:
            raise EdgeqError(f"the reference interpreter has no kernel for {n.op} ('{n.name}')")
        args = [None if v is None else env[v.name] for v in n.inputs]
        while args and args[-1] is None:
            args.pop()
        results = fn(n.attrs, *args)
        for v, r in zip(n.outputs, results):
            env[v.name] = r
        if not keep:
            for v in n.inputs:
                if v is not None and last_use.get(v.name) == i and v.name not in outputs \
                        and not v.is_const:
                    env.pop(v.name, None)
    if keep:
        return env
    return {v.name: env[v.name] for v in graph.outputs}


def run_batch(graph: Graph, x: np.ndarray, input_name: str | None = None,
              runner=None, many=None) -> list[np.ndarray]:
    """Run every sample of ``x`` (first axis = samples) through a single-input graph.

    ``x`` is either ``(N, *input_shape[1:])`` when the input's batch dimension is 1 (samples
    replace the batch axis; outputs are concatenated on axis 0), or ``(N, *input_shape)``
    (outputs are stacked on a new axis 0). ``runner(graph, feeds)`` defaults to ``run_graph``;
    ``many(graph, feeds_list)`` (one call for every sample) replaces it when given.
    """
    runner = runner or run_graph
    if len(graph.inputs) != 1 and input_name is None:
        raise EdgeqError(f"the model has {len(graph.inputs)} inputs; run takes one input array")
    inp = graph.inputs[0] if input_name is None else next(v for v in graph.inputs
                                                          if v.name == input_name)
    shape = inp.shape
    x = np.asarray(x)
    if shape and shape[0] == 1 and x.shape[1:] == shape[1:]:
        mode = "concat"
    elif x.shape[1:] == shape:
        mode = "stack"
    else:
        raise EdgeqError(f"input array has shape {list(x.shape)}; expected (N, "
                         f"{', '.join(map(str, shape[1:]))}) or (N, "
                         f"{', '.join(map(str, shape))}) for input '{inp.name}' "
                         f"{list(shape)}")
    if x.shape[0] == 0:
        raise EdgeqError("input array has no samples (first axis is 0)")
    per_out: list[list[np.ndarray]] = [[] for _ in graph.outputs]
    feeds = [{inp.name: x[i:i + 1] if mode == "concat" else x[i]} for i in range(x.shape[0])]
    results = many(graph, feeds) if many else (runner(graph, f) for f in feeds)
    for res in results:
        for k, v in enumerate(graph.outputs):
            per_out[k].append(res[v.name])
    join = np.concatenate if mode == "concat" else np.stack
    return [join(outs, axis=0) for outs in per_out]
