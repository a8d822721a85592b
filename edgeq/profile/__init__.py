"""``edgeq profile``: per-layer counts of an exported model on its targets, keyed by edgeq's own
node names (the same in every backend), as ``OUT/profile.json`` (docs/report.md, "profile")
and a Chrome trace (``OUT/profile.trace.json``, opened by Perfetto or chrome://tracing).

What each target measures (``source``):

- ``c``: ``measured``: this thread's CPU time per layer (``clock_gettime(
  CLOCK_THREAD_CPUTIME_ID)`` around each layer, compiled in with ``-DEDGEQ_PROFILE``), median and
  p90 over ``runs`` inferences after ``warmup``;
- ``cortex-m4`` / ``cortex-m7``: ``instructions``: per-layer instruction counts of the same
  hooks on QEMU's MPS2 boards, from SysTick under ``-icount`` (exact and identical from run to
  run; QEMU is not cycle-accurate, so no time is claimed);
- ``npu-sim``: ``simulated``: the simulator's per-layer cycles (``npu_sim.json``).

Per target: ``total`` (the whole inference, measured by the same clock), per layer ``median``,
``p90``, ``runs``, ``macs``, ``bytes`` (activation bytes written), ``share`` of the total, and
``coverage`` = the named layers' medians / the total's median (time outside any layer: the
call, the hooks).
"""

from __future__ import annotations

import json
import os
import statistics
from typing import Any, Sequence

import numpy as np

from edgeq.backends import get_backend
from edgeq.backends.base import load_integer_model
from edgeq.ir.graph import EdgeqError, Graph
from edgeq.ops.cost import activation_bytes, node_macs

PROFILED = ("c", "cortex-m4", "cortex-m7", "npu-sim")
CLOCKS = {"cpu_ns": "thread CPU time, ns", "instructions": "QEMU -icount instruction count",
          "cycles": "simulated NPU cycles"}


def _num(x: float) -> float | int:
    """Counts stay integers in the report (a median of two may end in .5: rounded)."""
    return int(round(x)) if abs(x) >= 100 or float(x).is_integer() else round(x, 3)


def _p90(xs: Sequence[float]) -> float | int:
    s = sorted(xs)
    return _num(s[min(len(s) - 1, int(np.ceil(0.9 * len(s))) - 1)])


def _summarize(graph: Graph, name: str, raw: dict[str, Any]) -> dict[str, Any]:
    nodes = {n.name: n for n in graph.nodes}
    total = [float(t) for t in raw["totals"]]
    med_total = _num(statistics.median(total))
    layers = []
    for k, layer in enumerate(raw["layers"]):
        xs = [float(run[k]) for run in raw["runs"]]
        node = nodes.get(layer)
        med = _num(statistics.median(xs))
        layers.append({"name": layer, "op": node.op if node else None,
                       "macs": node_macs(node) if node else 0,
                       "bytes": activation_bytes(node) if node else 0,
                       "median": med, "p90": _p90(xs), "runs": len(xs),
                       "share": round(med / med_total, 4) if med_total else 0.0})
    named = sum(r["median"] for r in layers)
    return {"unit": raw["unit"], "clock": CLOCKS[raw["unit"]], "source": raw["source"],
            "total": {"median": med_total, "p90": _p90(total), "runs": len(total)},
            "coverage": round(named / med_total, 4) if med_total else 0.0,
            "layers": layers}


def _simulated(out_dir: str) -> dict[str, Any]:
    path = os.path.join(out_dir, "npu_sim.json")
    if not os.path.exists(path):
        raise EdgeqError(f"{out_dir} has no npu-sim artifact (npu_sim.json); export with "
                         f"--target npu-sim")
    with open(path) as f:
        sim = json.load(f)
    layers = [r for r in sim["layers"]]
    return {"layers": [r["name"] for r in layers], "unit": "cycles", "source": "simulated",
            "runs": [[r["cycles"] for r in layers]], "totals": [sim["total"]["cycles"]]}


def profile(out_dir: str | os.PathLike, targets: Sequence[str], runs: int = 10,
            warmup: int = 2, x: np.ndarray | None = None) -> dict[str, Any]:
    """Profile the artifacts ``edgeq export`` wrote in ``out_dir`` for ``targets``; writes
    ``profile.json`` and ``profile.trace.json`` there and returns the profile. ``x``: one input
    sample (float, as the model takes it; default: a fixed pseudo-random one)."""
    out_dir = os.fspath(out_dir)
    if not os.path.isdir(out_dir) or not os.path.exists(os.path.join(out_dir, "model.eqm")):
        raise EdgeqError(f"{out_dir}: not a folder `edgeq export` wrote (no model.eqm)")
    if runs < 1 or warmup < 0:
        raise EdgeqError(f"--runs {runs} --warmup {warmup}: need runs >= 1, warmup >= 0")
    bad = [t for t in targets if t not in PROFILED]
    if bad:
        raise EdgeqError(f"per-layer profiling of {', '.join(bad)} is not available yet; "
                         f"profiled targets: {', '.join(PROFILED)}")
    graph = load_integer_model(out_dir)
    feeds = _feeds(graph, x)
    result: dict[str, Any] = {"model": graph.name, "runs": runs, "warmup": warmup,
                              "targets": {}}
    for t in targets:
        if t == "npu-sim":
            raw = _simulated(out_dir)
        else:
            be = get_backend(t)
            art = be.open(out_dir)
            raw = be.profile(art, feeds, runs=runs, warmup=warmup)  # type: ignore[attr-defined]
        result["targets"][t] = _summarize(graph, t, raw)
    with open(os.path.join(out_dir, "profile.json"), "w") as f:
        json.dump(result, f, indent=1, sort_keys=True)
        f.write("\n")
    with open(os.path.join(out_dir, "profile.trace.json"), "w") as f:
        json.dump(chrome_trace(result), f, indent=None, sort_keys=True)
        f.write("\n")
    return result


def _feeds(graph: Graph, x: np.ndarray | None) -> dict[str, np.ndarray]:
    if x is not None:
        if len(graph.inputs) != 1:
            raise EdgeqError("--input for profiling takes one-input models")
        v = graph.inputs[0]
        a = np.asarray(x, np.float32)
        a = a[:1] if a.shape[1:] == v.shape[1:] else a
        if a.shape != v.shape:
            raise EdgeqError(f"--input has shape {list(a.shape)}, the model takes "
                             f"{list(v.shape)}")
        return {v.name: a}
    rng = np.random.default_rng(0)
    out = {}
    for v in graph.inputs:
        qp = v.qparams
        lo = (-128 - float(np.asarray(qp.zero_point).reshape(-1)[0])) * float(
            np.asarray(qp.scale).reshape(-1)[0])
        hi = (127 - float(np.asarray(qp.zero_point).reshape(-1)[0])) * float(
            np.asarray(qp.scale).reshape(-1)[0])
        out[v.name] = rng.uniform(lo, hi, size=v.shape).astype(np.float32)
    return out


def chrome_trace(result: dict[str, Any]) -> dict[str, Any]:
    """One process per target, its layers laid end to end by median (Chrome trace format, the
    JSON Perfetto reads). Durations are in the target's unit: ns of CPU time are shown as ns;
    instruction counts and cycles are shown one per ns."""
    events: list[dict[str, Any]] = []
    for pid, (t, prof) in enumerate(sorted(result["targets"].items()), start=1):
        events.append({"name": "process_name", "ph": "M", "pid": pid, "tid": 0,
                       "args": {"name": f"{t} ({prof['clock']})"}})
        ts = 0.0
        for r in prof["layers"]:
            dur = r["median"] / 1e3  # trace time is in microseconds
            events.append({"name": r["name"], "cat": r["op"] or "layer", "ph": "X", "pid": pid,
                           "tid": 0, "ts": round(ts, 3), "dur": round(dur, 3),
                           "args": {"median": r["median"], "p90": r["p90"], "macs": r["macs"],
                                    "unit": prof["unit"]}})
            ts += dur
    return {"traceEvents": events, "displayTimeUnit": "ns",
            "otherData": {"model": result["model"], "runs": result["runs"]}}
