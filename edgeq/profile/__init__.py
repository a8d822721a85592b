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
- ``npu-sim``: ``simulated``: the simulator's per-layer cycles (``npu_sim.json``);
- ``ort``: ``measured``: ONNX Runtime's profiler (wall time, us: ``wall_us``) on the
  artifact's integer graph (its float input quantize and output dequantize cut off), its
  kernel events mapped back to edgeq nodes through ORT's fusions and inserted layout nodes,
  less the profiler's own per-event cost; total: the same session without the profiler, less
  one run call's fixed cost;
- ``tflite``: ``measured``: thread CPU time of each node alone as a sub-model on LiteRT's
  default kernels (XNNPACK, one thread) against the whole model's;
- ``tvm``: ``measured``: thread CPU time of each compiled call of the Relax VM (its
  instrument hook), each call owned by one edgeq node; total: the VM without the hook.

Host runtimes say how they measured (``method``); time of runtime nodes of no edgeq node is
``unattributed``, outside the coverage.

Per target: ``total`` (the whole inference, measured by the same clock), per layer ``median``,
``p90``, ``runs``, ``macs``, ``bytes`` (activation bytes written), ``share`` of the total, and
``coverage`` = the named layers' medians / the total's median (time outside any layer: the
call, the hooks).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
from typing import Any, Sequence

import numpy as np

from edgeq.backends import get_backend
from edgeq.backends.base import load_integer_model
from edgeq.ir.graph import EdgeqError, Graph
from edgeq.ops.cost import activation_bytes, node_macs
from edgeq.profile import android, energy
from edgeq.report_html import write_html
from edgeq.targets import load_target

PROFILED = ("c", "cortex-m4", "cortex-m7", "npu-sim", "ort", "tflite", "tvm")
CLOCKS = {"cpu_ns": "thread CPU time, ns", "instructions": "QEMU -icount instruction count",
          "cycles": "simulated NPU cycles",
          "wall_us": "wall time, us (ONNX Runtime's profiler: it measures no CPU time)",
          "wall_ns": "wall time, ns (a device's own profiler)"}
SECONDS_PER = {"cpu_ns": 1e-9, "wall_ns": 1e-9, "wall_us": 1e-6}  # the rest: per clock cycle
BOARDS = {"cortex-m4": "mps2-an386", "cortex-m7": "mps2-an500"}  # edgeq/targets/ (QEMU)
# raw entries a backend may add, carried into the summary as they are
EXTRAS = ("method", "attribution", "profiler", "unattributed_nodes", "not_timed", "float_edges",
          "invoke_cost_ns")


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
    out = {"unit": raw["unit"], "clock": CLOCKS[raw["unit"]], "source": raw["source"],
           "total": {"median": med_total, "p90": _p90(total), "runs": len(total)},
           "coverage": round(named / med_total, 4) if med_total else 0.0,
           "layers": layers}
    if "unattributed" in raw:  # time measured in no edgeq node (it lowers the coverage)
        xs = [float(x) for x in raw["unattributed"]]
        med = _num(statistics.median(xs))
        out["unattributed"] = {"median": med, "p90": _p90(xs),
                               "share": round(med / med_total, 4) if med_total else 0.0}
    out.update({k: raw[k] for k in EXTRAS if k in raw})
    return out


def _simulated(out_dir: str) -> dict[str, Any]:
    path = os.path.join(out_dir, "npu_sim.json")
    if not os.path.exists(path):
        raise EdgeqError(f"{out_dir} has no npu-sim artifact (npu_sim.json); export with "
                         f"--target npu-sim")
    with open(path) as f:
        sim = json.load(f)
    layers = [r for r in sim["layers"]]
    return {"layers": [r["name"] for r in layers], "unit": "cycles", "source": "simulated",
            "runs": [[r["cycles"] for r in layers]], "totals": [sim["total"]["cycles"]],
            "energy_uj": [round(r["energy_pj"]["total"] / 1e6, 6) for r in layers],
            "clock_hz": sim["clock_hz"]}


def profile(out_dir: str | os.PathLike, targets: Sequence[str], runs: int = 10,
            warmup: int = 2, x: np.ndarray | None = None, device: str | None = None,
            benchmark_model: str | None = None, board: str | None = None,
            power_trace: str | None = None) -> dict[str, Any]:
    """Profile the artifacts ``edgeq export`` wrote in ``out_dir`` for ``targets``; writes
    ``profile.json`` and ``profile.trace.json`` there and returns the profile. ``x``: one input
    sample (float, as the model takes it; default: a fixed pseudo-random one).

    ``device``: measure on hardware instead of here: ``serial:PORT[,BAUD]`` for a Cortex-M
    board running the profiling firmware (written to ``OUT/profile-firmware-TARGET.elf``; the
    counts arrive in the line protocol of docs/report.md), ``adb[:SERIAL]`` for a phone
    (``tflite``, with ``benchmark_model``: LiteRT's binary for the phone). ``board``: the board
    description (edgeq/targets/) whose clock and current turn counts into estimated energy
    (default: the QEMU board of the target). ``power_trace``: a CSV of (seconds, watts)
    recorded during the inference: measured energy per layer (``edgeq.profile.energy``)."""
    out_dir = os.fspath(out_dir)
    if (device or power_trace) and len(targets) != 1:
        raise EdgeqError("--device and --power-trace profile one target at a time")
    if device and not (device.startswith("serial:") or device == "adb"
                       or device.startswith("adb:")):
        raise EdgeqError(f"--device {device!r}: expected serial:PORT[,BAUD] or adb[:SERIAL]")
    if not os.path.isdir(out_dir) or not os.path.exists(os.path.join(out_dir, "model.eqm")):
        raise EdgeqError(f"{out_dir}: not a folder `edgeq export` wrote (no model.eqm)")
    if runs < 1 or warmup < 0:
        raise EdgeqError(f"--runs {runs} --warmup {warmup}: need runs >= 1, warmup >= 0")
    bad = [t for t in targets if t not in PROFILED]
    if bad:
        raise EdgeqError(f"per-layer profiling of {', '.join(bad)} is not available yet; "
                         f"profiled targets: {', '.join(PROFILED)}")
    for t in targets:
        written = "npu_sim.json" if t == "npu-sim" else get_backend(t).artifact
        if not os.path.exists(os.path.join(out_dir, written)):
            raise EdgeqError(f"profiling {t} is not available yet for {out_dir}: it has no {t} "
                             f"artifact ({written}); export with --target {t}")
    graph = load_integer_model(out_dir)
    feeds = _feeds(graph, x)
    result: dict[str, Any] = {"model": graph.name, "runs": runs, "warmup": warmup,
                              "targets": {}}
    trace = energy.read_trace(power_trace) if power_trace else None
    for t in targets:
        if t == "npu-sim":
            raw = _simulated(out_dir)
        elif device and device.startswith("adb"):
            if t != "tflite":
                raise EdgeqError(f"--device adb profiles the tflite target, not {t}")
            raw = android.run_on_phone(out_dir, graph, device, benchmark_model, runs, warmup)
        elif device:
            if not t.startswith("cortex-m"):
                raise EdgeqError(f"--device serial profiles a Cortex-M target, not {t}")
            be = get_backend(t)
            art = be.open(out_dir)
            fw = os.path.join(out_dir, f"profile-firmware-{t}.elf")
            be.firmware(art, feeds, runs, warmup, fw)  # type: ignore[attr-defined]
            print(f"wrote {fw}: flash it and reset the board; reading {device} ...",
                  file=sys.stderr, flush=True)
            raw = be.read_device(art, device, runs)  # type: ignore[attr-defined]
        else:
            be = get_backend(t)
            art = be.open(out_dir)
            raw = be.profile(art, feeds, runs=runs, warmup=warmup)  # type: ignore[attr-defined]
        summary = _summarize(graph, t, raw)
        _add_energy(summary, raw, t, board, trace)
        result["targets"][t] = summary
    with open(os.path.join(out_dir, "profile.json"), "w") as f:
        json.dump(result, f, indent=1, sort_keys=True)
        f.write("\n")
    with open(os.path.join(out_dir, "profile.trace.json"), "w") as f:
        json.dump(chrome_trace(result), f, indent=None, sort_keys=True)
        f.write("\n")
    if os.path.exists(os.path.join(out_dir, "report.json")):
        write_html(out_dir)  # report.html gains the per-layer latency plots
    return result


def _add_energy(summary: dict[str, Any], raw: dict[str, Any], target: str, board: str | None,
                trace: tuple[np.ndarray, np.ndarray] | None) -> None:
    """Per-layer ``energy_uj`` with its ``energy_source``: ``measured`` (a power trace over the
    layers' windows), ``simulated`` (the NPU simulator), ``estimated`` (counts x the board's
    supply and current; instructions counted as cycles); nothing when there is no basis."""
    layers = summary["layers"]
    clock_hz = raw.get("clock_hz")
    spec = board or BOARDS.get(target)
    b = load_target(spec) if spec else None
    if b is not None and b.kind == "mcu":
        clock_hz = b.clock_hz
    if trace is not None:
        per = SECONDS_PER.get(summary["unit"]) or (1.0 / clock_hz if clock_hz else None)
        if per is None:
            raise EdgeqError(f"--power-trace: {target}'s counts have no time base (give --board)")
        uj = energy.measured_uj(*trace, [r["median"] * per for r in layers])
        source = "measured (power trace)"
    elif "energy_uj" in raw:
        uj, source = list(raw["energy_uj"]), "simulated"
    elif b is not None and b.kind == "mcu" and summary["unit"] == "instructions":
        est = energy.estimate_uj([r["median"] for r in layers], b.params["supply_v"],
                                 b.params["run_current_ua_per_mhz"])
        if est is None:
            summary["energy"] = (f"not estimated: {b.name} gives no run current "
                                 f"(run_current_ua_per_mhz); pass --board with one")
            return
        uj, source = est, f"estimated ({b.name}, one instruction per cycle)"
    else:
        return
    for r, e in zip(layers, uj):
        r["energy_uj"] = e
    summary["energy"] = source
    summary["energy_uj"] = round(sum(uj), 6)


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
