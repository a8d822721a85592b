"""``edgeq export``: float model -> integer model -> one artifact per target, each verified
against the integer interpreter, plus ``report.json`` (keys documented in docs/report.md).

Calibration data is split: the first 75% calibrates, the last 25% (at least one sample) is held
out, and every artifact is checked on both parts. Artifacts are deterministic; only the keys
ending in ``_ms`` or ``_s`` (timings) differ between runs.
"""

from __future__ import annotations

import os
import statistics
import time
from collections import Counter
from typing import Any, Sequence

import numpy as np

from edgeq.ir.graph import EdgeqError, Graph
from edgeq.quant.calibrate import CalibrationData
from edgeq.quant.pipeline import dequantize_array, quantize_feeds
from edgeq.runtime.reference import run_graph

HOLD_OUT = 0.25


def split(data: CalibrationData) -> tuple[CalibrationData, list[int], list[int]]:
    n = len(data)
    held = max(1, int(round(n * HOLD_OUT))) if n >= 2 else 0
    calib_idx = list(range(n - held))
    held_idx = list(range(n - held, n))
    return data.head(len(calib_idx)), calib_idx, held_idx


def _lsb_stats(ig: Graph, backend, path: str, data: CalibrationData, idx: Sequence[int],
               session) -> dict[str, Any]:
    ig = getattr(backend, "reference_graph", lambda g: g)(ig)  # the runtime's exact rules
    max_d, total, count = 0, 0.0, 0
    all_theirs = _run_all(backend, path, [data.sample(i) for i in idx], session, raw=True)
    for i, theirs in zip(idx, all_theirs):
        feeds = data.sample(i)
        ours = run_graph(ig, quantize_feeds(ig, feeds))
        for v in ig.outputs:
            d = np.abs(ours[v.name].astype(np.int64) - theirs[v.name].astype(np.int64))
            max_d = max(max_d, int(d.max()))
            total += float(d.sum())
            count += d.size
    return {"samples": len(idx), "max_abs_diff_lsb": max_d,
            "mean_abs_diff_lsb": round(total / max(count, 1), 6)}


def _run_all(backend, path: str, feeds_list: list, session, raw: bool = False) -> list:
    """Every sample through the backend; in one call where the backend batches (an emulator
    boots once)."""
    many = getattr(backend, "run_many", None)
    if many is not None:
        return many(path, feeds_list, raw=raw, session=session) if feeds_list else []
    return [backend.run(path, f, raw=raw, session=session) for f in feeds_list]


def _sqnr(fg: Graph, ig: Graph, backend, path: str, data: CalibrationData, idx, session
          ) -> float | None:
    sig = noise = 0.0
    out = fg.outputs[0].name
    theirs = _run_all(backend, path, [data.sample(i) for i in idx], session)
    for i, t in zip(idx, theirs):
        feeds = data.sample(i)
        f = run_graph(fg, feeds)[out].astype(np.float64)
        q = t[out].astype(np.float64)
        sig += float((f * f).sum())
        noise += float(((f - q) ** 2).sum())
    if not idx:
        return None
    return round(10 * np.log10(sig / noise), 2) if noise > 0 else float("inf")


def per_layer_check(ig: Graph, data: CalibrationData, samples: Sequence[int]) -> dict[str, Any]:
    """ORT: each integer node alone, fed the interpreter's own integer inputs, against the
    interpreter's output: the per-layer bound on the same inputs."""
    from edgeq.backends.ort_qdq import OrtQdqBackend
    from edgeq.backends.ort_qdq.lower import lower_graph

    be = OrtQdqBackend()
    envs = [run_graph(ig, quantize_feeds(ig, data.sample(i)), keep=True) for i in samples]
    worst, worst_name = 0, None
    for node in ig.nodes:
        ins = list({v.name: v for v in node.inputs if v is not None and not v.is_const}.values())
        model = lower_graph(ig, nodes=[node], int_inputs=ins)
        sess = be.session(model.SerializeToString())
        for env in envs:
            outs = sess.run([v.name for v in node.outputs], {v.name: env[v.name] for v in ins})
            for v, o in zip(node.outputs, outs):
                d = int(np.abs(o.astype(np.int64) - env[v.name].astype(np.int64)).max())
                if d > worst:
                    worst, worst_name = d, node.name
    return {"max_abs_diff_lsb": worst, "worst_layer": worst_name, "samples": len(samples)}


LATENCY_BUDGET_S = 2.0


def _latency_ms(backend, path: str, feeds, repeats: int = 20) -> float | None:
    """Median of ``repeats`` runs after a warm-up, stopping early (at least 3 runs) once the
    runs have taken LATENCY_BUDGET_S: slow interpreters (TFLite Micro's Python interpreter on a
    224-pixel net) need no 20 samples for a median."""
    own = getattr(backend, "latency_ms", None)
    if own is not None:
        return own(path, feeds, repeats)
    fast = getattr(backend, "fast_session", None)
    sess = fast(path) if fast else backend.session(path, threads=1)
    backend.run(path, feeds, session=sess)
    times: list[float] = []
    while len(times) < repeats and (len(times) < 3 or sum(times) < LATENCY_BUDGET_S * 1e3):
        t0 = time.perf_counter()
        backend.run(path, feeds, session=sess)
        times.append((time.perf_counter() - t0) * 1e3)
    return round(statistics.median(times), 3)


def export(fg: Graph, data: CalibrationData, targets: Sequence[str], out_dir: str,
           quant_options: dict[str, Any] | None = None, progress: bool | None = None,
           allow_fallback: bool = False) -> dict[str, Any]:
    """``fg``: optimized float graph. Writes ``out_dir`` (which must exist and be empty).
    ``allow_fallback``: targets that can run a node their integer kernels lack in float do so
    (listed in the report under ``float_fallback``) instead of refusing the export."""
    from edgeq import serialize
    from edgeq.api import quantize
    from edgeq.backends import get_backend

    backends = {t: get_backend(t) for t in targets}
    for be in backends.values():
        if allow_fallback and hasattr(be, "fallback"):
            be.fallback = True
    calib, calib_idx, held_idx = split(data)
    opts = dict(quant_options or {})
    if {"tflite", "tflm", "ethos-u"} & set(targets):
        if opts.get("rounding") not in (None, "tflite"):
            raise EdgeqError("TFLite targets need --rounding tflite (their kernels' arithmetic)")
        opts["rounding"] = "tflite"
    elif opts.get("rounding") is None:
        opts.pop("rounding", None)
    res = quantize(fg, calib, progress=progress, **opts)
    ig = res.graph
    problems = [f"{t}: {r}" for t, be in backends.items() for r in be.supports(ig)]
    if problems:
        raise EdgeqError("cannot export: " + "; ".join(problems))
    serialize.save(ig, os.path.join(out_dir, "model.eqm"))
    report: dict[str, Any] = {
        "model": fg.name,
        "integer_model": "model.eqm",
        "calibration_samples": len(calib_idx), "held_out_samples": len(held_idx),
        "quantization": {k: v for k, v in res.report.items()},
        "targets": {},
    }
    for name, be in backends.items():
        t0 = time.perf_counter()
        path = be.lower(ig, out_dir)
        lower_s = time.perf_counter() - t0
        if not getattr(be, "runs_on_host", True):
            report["targets"][name] = {
                "artifact": os.path.basename(path), "size_bytes": os.path.getsize(path),
                "lower_time_s": round(lower_s, 3), "summary": be.summary,
                "verification": "not run: no simulator for this target on this host"}
            continue
        sess = be.session(path)
        entry: dict[str, Any] = {
            "artifact": os.path.basename(path),
            "size_bytes": _size(path),
            "op_counts": getattr(be, "op_counts", None) or _op_counts(path),
            "verification": {
                "calibration": _lsb_stats(ig, be, path, data, calib_idx, sess),
                "held_out": _lsb_stats(ig, be, path, data, held_idx, sess),
            },
            "sqnr_db_vs_float": _sqnr(fg, ig, be, path, data, held_idx or calib_idx, sess),
            "lower_time_s": round(lower_s, 3),
            "latency_ms": _latency_ms(be, path, data.sample(0)),
        }
        if name == "tflm":
            entry["arena_bytes"] = be.arena_bytes
        if getattr(be, "float_nodes", None):
            entry["float_fallback"] = {
                "nodes": be.float_nodes,
                "note": "run in float (DEQUANTIZE, float kernel, QUANTIZE): the LSB "
                        "differences include these nodes' float rounding"}
        if hasattr(be, "memory"):
            entry["memory"] = dict(be.memory)
        if hasattr(be, "size"):
            entry["memory"]["arm_none_eabi_size"] = be.size(path)
        if name == "tflite":
            from edgeq.backends.tflite import per_layer_xnnpack

            envs = [run_graph(ig, quantize_feeds(ig, data.sample(i)), keep=True)
                    for i in calib_idx[:2]]
            entry["verification"]["per_layer_default_delegate"] = per_layer_xnnpack(ig, envs)
            entry["verification"]["reference_kernels"] = "BUILTIN_REF"
        if name == "ort":
            from edgeq.backends.ort_qdq import SESSION_CONFIG

            entry["runtime_options"] = dict([SESSION_CONFIG.split("=")])
            entry["verification"]["per_layer"] = per_layer_check(ig, data, calib_idx[:2])
            plain = be.session(path, apply_metadata=False)
            entry["sqnr_db_without_runtime_options"] = _sqnr(
                fg, ig, be, path, data, held_idx or calib_idx, plain)
        report["targets"][name] = entry
    report["integer_interpreter"] = {
        "sqnr_db_vs_float": _ref_sqnr(fg, ig, data, held_idx or calib_idx)}
    return report


def _ref_sqnr(fg: Graph, ig: Graph, data: CalibrationData, idx) -> float:
    sig = noise = 0.0
    out = fg.outputs[0].name
    for i in idx:
        feeds = data.sample(i)
        f = run_graph(fg, feeds)[out].astype(np.float64)
        q = dequantize_array(run_graph(ig, quantize_feeds(ig, feeds))[out],
                             ig.values[out].qparams).astype(np.float64)
        sig += float((f * f).sum())
        noise += float(((f - q) ** 2).sum())
    return round(10 * np.log10(sig / noise), 2) if noise > 0 else float("inf")


def _size(path: str) -> int:
    if os.path.isdir(path):
        return sum(os.path.getsize(os.path.join(path, f)) for f in sorted(os.listdir(path)))
    return os.path.getsize(path)


def _op_counts(path: str) -> dict[str, int]:
    if path.endswith(".onnx"):
        import onnx

        return dict(sorted(Counter(n.op_type for n in onnx.load(path).graph.node).items()))
    return {}


def format_export(report: dict[str, Any]) -> str:
    from edgeq.api import format_table

    rows = []
    for name, t in report["targets"].items():
        v = t["verification"]
        if not isinstance(v, dict):
            continue
        rows.append([name, t["artifact"], t["size_bytes"], v["calibration"]["max_abs_diff_lsb"],
                     v["held_out"]["max_abs_diff_lsb"],
                     (v.get("per_layer") or v.get("per_layer_default_delegate") or
                      {}).get("max_abs_diff_lsb", "-"),
                     t["sqnr_db_vs_float"],
                     "-" if t["latency_ms"] is None else t["latency_ms"]])
    table = format_table(rows, ["target", "artifact", "bytes", "max LSB (calib)",
                                "max LSB (held-out)", "max LSB per layer", "SQNR dB",
                                "latency ms"])
    lines = [table, f"integer interpreter: SQNR {report['integer_interpreter']['sqnr_db_vs_float']}"
             f" dB vs float on held-out samples"]
    for name, t in report["targets"].items():
        if "memory" in t:
            m = t["memory"]
            pp = m["patch_plan"]
            line = (f"{name}: static arena {m['arena_bytes']:,} bytes"
                    + (f" (patch-based: {pp['grid']}x{pp['grid']} patches up to "
                       f"{pp['split_layer']}, +{pp['mac_overhead_percent']}% MACs)" if pp else
                       " (layer by layer)"))
            line += f", layer by layer {m['layer_by_layer_arena_bytes']:,}"
            tflm = report["targets"].get("tflm", {}).get("arena_bytes")
            if tflm:
                line += f", {m['arena_bytes'] / tflm:.2f}x TFLite Micro's arena"
            sz = m.get("arm_none_eabi_size")
            if sz:
                line += (f"; {name} build: text {sz['text']:,}, rodata {sz['rodata']:,}, bss "
                         f"{sz['bss']:,} bytes (flash {sz['flash_bytes']:,})")
            lines.append(line)
        if "arena_bytes" in t:
            lines.append(f"{name}: smallest TFLite Micro arena that allocates: "
                         f"{t['arena_bytes']:,} bytes")
        if "summary" in t:
            sm = t["summary"]
            lines.append(f"{name}: Vela ({sm['accelerator_config']}): SRAM "
                         f"{sm.get('sram_memory_used')} KiB, NPU cycles {sm.get('cycles_npu')}, "
                         f"{sm.get('npu_operators')} NPU / {sm.get('cpu_operators')} CPU "
                         f"operators; {t['verification']}")
        if "per_layer_default_delegate" in t.get("verification", {}):
            lines.append(f"{name}: bit-exactness is on LiteRT's reference kernels; the default "
                         f"XNNPACK path is within "
                         f"{t['verification']['per_layer_default_delegate']['max_abs_diff_lsb']}"
                         f" LSB per layer")
    ort = report["targets"].get("ort")
    if ort:
        lines.append(f"ort: runs with {ort['runtime_options']} (recorded in the model's metadata;"
                     f" without it: SQNR {ort['sqnr_db_without_runtime_options']} dB)")
    return "\n".join(lines)
