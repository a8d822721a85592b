"""``edgeq export``: float model -> integer model -> one artifact per target, each verified
against the integer interpreter, plus ``report.json`` (keys documented in docs/report.md).

Calibration data is split: the first 75% calibrates, the last 25% (at least one sample) is held
out, and every artifact is checked on both parts. What the checks compare with is computed once,
before any target, and shared by all of them (``References``): the float model's output on the
SQNR samples, the integer interpreter's outputs on every sample (and all its values on the
per-layer samples), and the outputs of each runtime's own reference graph. Targets are reached
only through the backend protocol (``edgeq.backends.base``); each adds its own report entries
and checks through ``describe``. Artifacts are deterministic; only the keys ending in ``_ms`` or
``_s`` (timings) differ between runs.
"""

from __future__ import annotations

import os
import shutil
import resource
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import numpy as np

from edgeq import serialize
from edgeq.backends import get_backend
from edgeq.backends.base import CompileNode, Feeds, per_layer_check, single_node_graph
from edgeq.ir.graph import EdgeqError, Graph, Node
from edgeq.quant.calibrate import CalibrationData
from edgeq.quant.pipeline import (MIXED_RANGE_SCOPES, dequantize_array, quantize_feeds,
                                  quantize_model, structural_graph)
from edgeq.runtime.reference import run_graph

HOLD_OUT = 0.25
PER_LAYER_SAMPLES = 2  # the first calibration samples, for the per-layer checks
NOT_RUN = "not run: no simulator for this target on this host"
FALLBACK_NOTE = ("run in float (DEQUANTIZE, float kernel, QUANTIZE): the LSB differences "
                 "include these nodes' float rounding")


def split(data: CalibrationData) -> tuple[CalibrationData, list[int], list[int]]:
    n = len(data)
    held = max(1, int(round(n * HOLD_OUT))) if n >= 2 else 0
    calib_idx = list(range(n - held))
    held_idx = list(range(n - held, n))
    return data.head(len(calib_idx)), calib_idx, held_idx


@dataclass
class References:
    """The float and integer results every target's checks compare with, computed once
    (``compute_references``); implements ``edgeq.backends.base.Checks``."""

    graph: Graph                            # the integer model
    output: str                             # the output the SQNR figures use (the first)
    feeds: dict[int, Feeds]                 # sample index -> float inputs
    sqnr_idx: list[int]                     # the held-out samples (calibration ones if none)
    float_outputs: dict[int, np.ndarray]    # sample -> float model's output (float64)
    int_outputs: dict[int, dict[int, Feeds]]  # id(reference graph) -> sample -> outputs
    envs: list[Feeds]                       # every integer value, per-layer samples

    @property
    def sqnr_feeds(self) -> list[Feeds]:
        return [self.feeds[i] for i in self.sqnr_idx]

    def outputs(self, graph: Graph, idx: Sequence[int]) -> list[Feeds]:
        """Integer outputs of ``graph`` (the integer model or a reference graph given to
        ``compute_references``) on samples ``idx``."""
        return [self.int_outputs[id(graph)][i] for i in idx]

    def sqnr_db_vs_float(self, raw_outputs: Sequence[Feeds]) -> float | None:
        qp = self.graph.values[self.output].qparams
        sig = noise = 0.0
        for i, t in zip(self.sqnr_idx, raw_outputs):
            f = self.float_outputs[i]
            q = dequantize_array(t[self.output], qp).astype(np.float64)
            sig += float((f * f).sum())
            noise += float(((f - q) ** 2).sum())
        if not self.sqnr_idx:
            return None
        return round(10 * np.log10(sig / noise), 2) if noise > 0 else float("inf")

    def per_layer(self, compile_node: CompileNode) -> dict[str, Any]:
        return per_layer_check(self.graph, self.envs, compile_node)


def compute_references(fg: Graph, ig: Graph, data: CalibrationData, calib_idx: list[int],
                       held_idx: list[int], reference_graphs: Sequence[Graph]) -> References:
    """``reference_graphs``: the integer model as each target that runs here computes it
    (``Backend.reference_graph``; ``ig`` itself for most); empty when no target runs here, and
    then only what the integer interpreter's own SQNR needs is computed.

    Each sample runs through ``ig`` once. A reference graph differs from ``ig`` in a few nodes'
    arithmetic (TFLite: FULLY_CONNECTED, MUL), and those usually give the same integers: only
    they run again, each alone on ``ig``'s values, and the rest of the graph runs only from the
    first one whose output differs (``ReferenceRun``)."""
    sqnr_idx = held_idx or calib_idx
    layer_idx = calib_idx[:PER_LAYER_SAMPLES]
    samples = calib_idx + held_idx if reference_graphs else sorted(set(sqnr_idx + layer_idx))
    feeds = {i: data.sample(i) for i in samples}
    out = fg.outputs[0].name
    float_outputs = {i: run_graph(fg, feeds[i])[out].astype(np.float64) for i in sqnr_idx}
    distinct = {id(g): g for g in reference_graphs if g is not ig}
    others = [ReferenceRun(ig, g) for g in distinct.values()]
    int_outputs: dict[int, dict[int, Feeds]] = {id(ig): {}}
    int_outputs.update({id(r.graph): {} for r in others})
    envs = []
    for i in samples:
        q = quantize_feeds(ig, feeds[i])
        env = run_graph(ig, q, keep=bool(others) or i in layer_idx)
        int_outputs[id(ig)][i] = {v.name: env[v.name] for v in ig.outputs}
        for r in others:
            int_outputs[id(r.graph)][i] = r.outputs(q, env)
        if i in layer_idx:
            envs.append(env)
    return References(ig, out, feeds, sqnr_idx, float_outputs, int_outputs, envs)


class ReferenceRun:
    """The outputs of ``graph``, a copy of the integer model ``base`` in which some nodes
    compute differently, from ``base``'s values on the same input: the nodes that differ run
    alone in order while their outputs equal ``base``'s (every value before them then does
    too), and ``graph`` runs from the first node whose outputs differ."""

    def __init__(self, base: Graph, graph: Graph):
        self.graph = graph
        aligned = len(base.nodes) == len(graph.nodes) and \
            [v.name for v in base.inputs] == [v.name for v in graph.inputs]
        self.changed = [(i, single_node_graph(graph, b)) for i, (a, b) in
                        enumerate(zip(base.nodes, graph.nodes)) if not _same_node(a, b)] \
            if aligned else None

    def outputs(self, feeds: Feeds, base_env: Feeds) -> Feeds:
        """``feeds``: the integer inputs; ``base_env``: every value of ``base`` on them."""
        if self.changed is None:
            return run_graph(self.graph, feeds)
        start = len(self.graph.nodes)
        for i, node in self.changed:
            outs = run_graph(node, {v.name: base_env[v.name] for v in node.inputs})
            if not all(_same(outs[v.name], base_env[v.name]) for v in node.outputs):
                start = i
                break
        return run_graph(self.graph, feeds, computed=base_env, start=start)


def _same_node(a: Node, b: Node) -> bool:
    def same_value(x, y) -> bool:
        if x is None or y is None:
            return x is y
        return x.name == y.name and x.type == y.type and x.qparams == y.qparams and \
            _same(x.const, y.const)

    return a.op == b.op and a.name == b.name and len(a.inputs) == len(b.inputs) and \
        len(a.outputs) == len(b.outputs) and \
        all(same_value(x, y) for x, y in zip(a.inputs + a.outputs, b.inputs + b.outputs)) and \
        a.attrs.keys() == b.attrs.keys() and all(_same(a.attrs[k], b.attrs[k]) for k in a.attrs)


def _same(x: Any, y: Any) -> bool:
    if isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
        return isinstance(x, np.ndarray) and isinstance(y, np.ndarray) and \
            x.dtype == y.dtype and x.shape == y.shape and bool(np.array_equal(x, y))
    if isinstance(x, (list, tuple)) or isinstance(y, (list, tuple)):
        return type(x) is type(y) and len(x) == len(y) and all(map(_same, x, y))
    return type(x) is type(y) and bool(x == y)


def lsb_stats(ours: Sequence[Feeds], theirs: Sequence[Feeds], graph: Graph) -> dict[str, Any]:
    """Differences in LSB between two runs' integer outputs, sample by sample."""
    max_d, total, count = 0, 0.0, 0
    for a, b in zip(ours, theirs):
        for v in graph.outputs:
            d = np.abs(a[v.name].astype(np.int64) - b[v.name].astype(np.int64))
            max_d = max(max_d, int(d.max()))
            total += float(d.sum())
            count += d.size
    return {"samples": len(ours), "max_abs_diff_lsb": max_d,
            "mean_abs_diff_lsb": round(total / max(count, 1), 6)}


def _cpu_s() -> float:
    """CPU seconds of this process and of its children that have finished."""
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def export(fg: Graph, data: CalibrationData, targets: Sequence[str], out_dir: str,
           quant_options: dict[str, Any] | None = None, progress: bool | None = None,
           allow_fallback: bool = False, stage_cpu_s: dict[str, float] | None = None,
           keep_going: bool = False, backend_options: dict[str, Any] | None = None,
           labels: np.ndarray | None = None) -> dict[str, Any]:
    """``fg``: optimized float graph. Writes ``out_dir`` (which must exist and be empty).
    ``allow_fallback``: targets that can run a node their integer kernels lack in float do so
    (listed in the report under ``float_fallback``) instead of refusing the export.
    Every target's support check runs first on the integer graph's structure
    (``structural_graph``), before calibration: a refusal is known in seconds. Without
    ``keep_going`` any refusal stops the export, listing every refused node of every target;
    with it, the refused targets are left out (``refused_targets`` in the report) and the others
    exported.
    ``stage_cpu_s``: when given, filled with the CPU seconds of each stage (``quantize``,
    ``references``, then ``lower``, ``verify`` and ``latency`` of each target, as
    ``"lower NAME"``...). ``backend_options``: passed to every backend (``npu``).
    ``labels``: the class index of every calibration sample (one-output classifiers): the
    report then has the float and integer models' top-1 accuracy on the held-out samples."""
    @contextmanager
    def stage(name: str) -> Iterator[None]:
        t0 = _cpu_s()
        try:
            yield
        finally:
            if stage_cpu_s is not None:
                stage_cpu_s[name] = stage_cpu_s.get(name, 0.0) + _cpu_s() - t0

    backends = {t: get_backend(t, allow_fallback=allow_fallback, **(backend_options or {}))
                for t in targets}
    calib, calib_idx, held_idx = split(data)
    opts = dict(quant_options or {})
    rules = {be.rounding: t for t, be in backends.items() if be.rounding}
    if len(rules) > 1:
        raise EdgeqError(f"targets {', '.join(sorted(rules.values()))} need different "
                         f"requantization rules ({', '.join(sorted(rules))})")
    if rules:
        rule = next(iter(rules))
        if opts.get("rounding") not in (None, rule):
            needing = [t for t, be in backends.items() if be.rounding == rule]
            raise EdgeqError(f"{'/'.join(needing)} targets need --rounding {rule} (their "
                             f"kernels' arithmetic)")
        opts["rounding"] = rule
    elif opts.get("rounding") is None:
        opts.pop("rounding", None)
    scopes = [be.int16_activations for be in backends.values()]
    opts.setdefault("mixed_range_int16", min(scopes, key=MIXED_RANGE_SCOPES[::-1].index)
                    if scopes else "any")
    refused: dict[str, list[str]] = {}

    def check(graph: Graph, when: str) -> None:
        found = {t: [str(r) for r in be.supports(graph)] for t, be in backends.items()}
        found = {t: r for t, r in found.items() if r}
        if found and not keep_going:
            raise EdgeqError(f"cannot export ({when}): " + "; ".join(
                f"{t}: {r}" for t, rs in found.items() for r in rs))
        for t, rs in found.items():
            refused[t] = rs
            del backends[t]
        if not backends:
            raise EdgeqError("cannot export: every target refuses the model: " + "; ".join(
                f"{t}: {r}" for t, rs in refused.items() for r in rs))

    with stage("support checks"):
        check(structural_graph(fg, opts.get("rounding", "edgeq")), "found before calibration")
    with stage("quantize"):
        res = quantize_model(fg, calib, progress=progress, **opts)
    ig = res.graph
    check(ig, "after calibration")
    serialize.save(ig, os.path.join(out_dir, "model.eqm"))
    report: dict[str, Any] = {
        "model": fg.name,
        "integer_model": "model.eqm",
        "calibration_samples": len(calib_idx), "held_out_samples": len(held_idx),
        "quantization": {k: v for k, v in res.report.items()},
        "targets": {},
        "refused_targets": refused,
    }
    reference = {t: be.reference_graph(ig) for t, be in backends.items() if be.runs_on_host}
    with stage("references"):
        refs = compute_references(fg, ig, data, calib_idx, held_idx, list(reference.values()))
    for name, be in list(backends.items()):
        before = set(os.listdir(out_dir))
        try:
            report["targets"][name] = _target_entry(name, be, ig, out_dir, refs,
                                                    reference.get(name), calib_idx, held_idx,
                                                    data, stage)
        except Exception as e:  # noqa: BLE001 - a runtime that fails on the artifact is a refusal
            why = str(e) if isinstance(e, EdgeqError) else \
                f"the runtime failed on the lowered model ({type(e).__name__}: " \
                f"{(str(e).strip().splitlines() or [''])[-1][:300]})"
            if not keep_going:
                raise EdgeqError(f"cannot export: {name}: {why}") from None
            refused[name] = [why]
            for f in set(os.listdir(out_dir)) - before:  # nothing half-written of this target
                p = os.path.join(out_dir, f)
                shutil.rmtree(p) if os.path.isdir(p) else os.unlink(p)
    report["integer_interpreter"] = {
        "sqnr_db_vs_float": refs.sqnr_db_vs_float(refs.outputs(ig, refs.sqnr_idx))}
    if labels is not None:
        report["accuracy"] = top1_accuracy(refs, labels)
    return report


def top1_accuracy(refs: "References", labels: np.ndarray) -> dict[str, Any]:
    """Top-1 accuracy of the float and the integer model on the held-out samples (the
    integer model's raw outputs: dequantizing with one positive scale keeps the argmax)."""
    idx = refs.sqnr_idx
    if len(labels) < max(idx) + 1:
        raise EdgeqError(f"--labels has {len(labels)} labels, the calibration data "
                         f"{max(idx) + 1} samples")
    ints = refs.outputs(refs.graph, idx)
    f_hits = i_hits = 0
    for i, q in zip(idx, ints):
        f, y = refs.float_outputs[i].reshape(-1), q[refs.output].reshape(-1)
        if f.size != y.size or f.size < 2:
            raise EdgeqError(f"--labels needs a classifier's output (scores per class); "
                             f"'{refs.output}' has {f.size} value(s)")
        if not 0 <= int(labels[i]) < f.size:
            raise EdgeqError(f"--labels: label {int(labels[i])} of sample {i} is not one of "
                             f"the {f.size} classes")
        f_hits += int(np.argmax(f) == labels[i])
        i_hits += int(np.argmax(y) == labels[i])
    n = len(idx)
    return {"samples": n, "float_top1": round(f_hits / n, 6),
            "integer_top1": round(i_hits / n, 6),
            "top1_drop": round((f_hits - i_hits) / n, 6)}


def _target_entry(name: str, be, ig: Graph, out_dir: str, refs, rg: Graph | None,
                  calib_idx: list[int], held_idx: list[int], data, stage) -> dict[str, Any]:
    """Lower ``ig`` for one target, and on a host runtime run it on every sample against the
    shared references: LSB statistics, SQNR, the backend's own checks, latency."""
    with stage(f"lower {name}"):
        t0 = time.perf_counter()
        art = be.lower(ig, out_dir)
        lower_s = time.perf_counter() - t0
    entry: dict[str, Any] = {"artifact": os.path.basename(art.path),
                             "size_bytes": _size(art.path), "lower_time_s": round(lower_s, 3)}
    if not be.runs_on_host:
        entry["verification"] = NOT_RUN
        _merge(entry, be.describe(art, refs))
        return entry
    with stage(f"verify {name}"):
        assert rg is not None
        idx = calib_idx + held_idx
        theirs = dict(zip(idx, be.run_many(art, [refs.feeds[i] for i in idx], raw=True,
                                           session=be.session(art))))
        entry["op_counts"] = art.op_counts
        entry["verification"] = {
            part: lsb_stats(refs.outputs(rg, part_idx), [theirs[i] for i in part_idx], rg)
            for part, part_idx in (("calibration", calib_idx), ("held_out", held_idx))}
        entry["sqnr_db_vs_float"] = refs.sqnr_db_vs_float([theirs[i]
                                                           for i in refs.sqnr_idx])
        if art.float_nodes:
            entry["float_fallback"] = {"nodes": list(art.float_nodes),
                                       "note": FALLBACK_NOTE}
        _merge(entry, be.describe(art, refs))
    with stage(f"latency {name}"):
        entry["latency_ms"] = be.latency_ms(art, data.sample(0))
    return entry


def _merge(entry: dict[str, Any], extra: dict[str, Any]) -> None:
    """A backend's report entries into the common ones (nested dicts merged one level)."""
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(entry.get(k), dict):
            entry[k].update(v)
        else:
            entry[k] = v


def _size(path: str) -> int:
    if os.path.isdir(path):
        return sum(os.path.getsize(os.path.join(path, f)) for f in sorted(os.listdir(path)))
    return os.path.getsize(path)
