"""edgeq's systolic-array cost model against SCALE-Sim v3, layer by layer.

    .venv/bin/python -m tools.npu_scalesim [--models build/models] [--only NAME ...]
        [--eqm FILE.eqm ...] [--npu systolic-16x8-ws systolic-32x32-ws]
        [--scalesim-python build/scalesim-venv/bin/python] [--work build/scalesim] [--json OUT]

SCALE-Sim (the PyPI package ``scalesim``, 3.x) needs numpy < 2, so it runs in its own venv
(``make scalesim-venv``), as a subprocess: this file is also its driver there (``--driver``,
standard library and ``scalesim`` only). For each zoo model (quantized to int8 once, as
``tools/bench_mcu.py`` does) or each given ``.eqm``, and each systolic target:

- every convolution and fully connected layer becomes one SCALE-Sim conv-format topology row
  (layer name, IFMAP height, width, filter height, width, channels, filters, stride). SCALE-Sim
  takes the IFMAP size as given (it pads nothing) and sizes the output as ``ceil((H - kh + s) /
  s)``, so the row holds the padded size that gives edgeq's output size: ``(Oh - 1) s + kh``. A
  matmul ``[M, K] x [K, N]`` is an ``M x 1`` IFMAP of ``K`` channels and a 1 x 1 filter;
- the SCALE-Sim config is the target's: array rows x cols, dataflow, each of the three SCALE-Sim
  buffers a third of the target's SRAM, the DRAM's bytes per cycle as its bandwidth (USER
  mode);
- SCALE-Sim runs each layer alone (its own topology file, ``save_disk_space``: no traces); the
  driver times each run (wall and CPU); its COMPUTE_REPORT.csv gives the layer's cycles. Compute
  cycles = "Total Cycles" - "Stall Cycles" (the memory stalls, which edgeq's accounting models as
  memory terms instead) are compared; the stall-inclusive total is shown beside them;
- ``edgeq.backends.npu_sim.systolic.cost`` runs on the same ``Layer`` (timed over many calls).

Grouped layers (depthwise convolutions, batched matmuls of two activations) are ``g`` equal
products: SCALE-Sim's own depthwise mode (a layer name with "DP") runs one layer per channel,
all the same shape, so one group is simulated and its cycles multiplied by ``g``. They are
reported apart from the plain convolution and fully connected layers; their speedup is against
the one simulated group (conservative). Prints one table per target and the share of layers
within +-10%; returns 0 when every plain layer is within +-10% and at least 100x faster.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

TOLERANCE = 0.10
MIN_SPEEDUP = 100.0
DEFAULT_TARGETS = ("systolic-16x8-ws", "systolic-32x32-ws")
DEFAULT_MODELS = ("digits_cnn", "ds_cnn", "mobilenet_v2", "resnet8", "transformer_block")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEADER = ("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, "
          "Num Filter, Strides,")


@dataclass
class Row:
    """One layer of one model on one target."""

    model: str
    layer: str
    kind: str
    topology: tuple[int, ...] | None       # SCALE-Sim conv row (one group), None if skipped
    groups: int = 1
    reason: str = ""                       # why the layer is not compared
    dims: str = ""
    edgeq_cycles: float = 0.0
    edgeq_s: float = 0.0
    scalesim: dict[str, Any] = field(default_factory=dict)

    @property
    def grouped(self) -> bool:
        return self.groups > 1

    @property
    def scalesim_cycles(self) -> float:
        return self.groups * (self.scalesim["total"] - self.scalesim["stall"])

    @property
    def scalesim_total(self) -> float:
        """SCALE-Sim's cycles with its memory stalls."""
        return self.groups * self.scalesim["total"]

    @property
    def ratio(self) -> float:
        return self.edgeq_cycles / self.scalesim_cycles

    @property
    def speedup(self) -> float:
        return self.scalesim["wall_s"] / self.edgeq_s


def topology_row(lay: Any) -> tuple[tuple[int, ...] | None, int, str]:
    """(SCALE-Sim conv row of one group, groups, reason it cannot be one) of a MAC layer."""
    from edgeq.backends.npu_sim.systolic import gemm_dims

    g, m, k, n = gemm_dims(lay)
    if lay.kind == "matmul":
        return (m, 1, 1, 1, k, n, 1), g, ""
    if lay.op != "QConv":
        return None, g, f"{lay.op}: SCALE-Sim has no transposed convolution"
    if lay.ifm[0] != 1:
        return None, g, f"batch {lay.ifm[0]}: SCALE-Sim simulates batch 1"
    if lay.dilation != (1, 1):
        return None, g, f"dilation {lay.dilation}: SCALE-Sim has no dilation"
    if lay.stride[0] != lay.stride[1]:
        return None, g, f"stride {lay.stride}: SCALE-Sim's conv format has one stride"
    (kh, kw), s = lay.kernel, lay.stride[0]
    oh, ow = lay.ofm[2], lay.ofm[3]
    return ((oh - 1) * s + kh, (ow - 1) * s + kw, kh, kw, lay.ifm[1] // g, n, s), g, ""


def config_text(target: Any, run_name: str) -> str:
    """A SCALE-Sim config with the target's array, dataflow, buffers and bandwidth."""
    p = target.params
    sram_kb = max(1, target.memories[target.placement["activations"]].size_bytes // 3 // 1024)
    bw = max(1, int(round(target.memory("weights").bytes_per_cycle)))
    return f"""[general]
run_name = {run_name}

[architecture_presets]
ArrayHeight : {p["rows"]}
ArrayWidth : {p["cols"]}
IfmapSramSzkB : {sram_kb}
FilterSramSzkB : {sram_kb}
OfmapSramSzkB : {sram_kb}
IfmapOffset : 0
FilterOffset : 10000000
OfmapOffset : 20000000
Dataflow : {p["dataflow"]}
Bandwidth : {bw}
ReadRequestBuffer : 32
WriteRequestBuffer : 32

[layout]
IfmapCustomLayout : False
IfmapSRAMBankBandwidth : {bw}
IfmapSRAMBankNum : 1
IfmapSRAMBankPort : 2
FilterCustomLayout : False
FilterSRAMBankBandwidth : {bw}
FilterSRAMBankNum : 1
FilterSRAMBankPort : 2

[sparsity]
SparsitySupport : false
SparseRep : ellpack_block
OptimizedMapping : false
BlockSize : 8
RandomNumberGeneratorSeed : 40

[run_presets]
InterfaceBandwidth : USER
UseRamulatorTrace : False
"""


def read_compute_report(path: str) -> dict[str, float]:
    """The one layer of a COMPUTE_REPORT.csv: total (incl. prefetch), total, stall cycles."""
    with open(path, newline="") as f:
        rows = [[c.strip() for c in r] for r in csv.reader(f) if r]
    head, first = rows[0], rows[1]
    col = {name: i for i, name in enumerate(head)}
    return {"total_with_prefetch": float(first[col["Total Cycles (incl. prefetch)"]]),
            "total": float(first[col["Total Cycles"]]),
            "stall": float(first[col["Stall Cycles"]])}


def run_scalesim(python: str, jobs: list[dict[str, str]], work: str) -> list[dict[str, Any]]:
    """Runs the SCALE-Sim ``jobs`` in one subprocess of ``python``; each job's times + report."""
    jobs_path = os.path.join(work, "jobs.json")
    times_path = os.path.join(work, "times.json")
    with open(jobs_path, "w") as f:
        json.dump(jobs, f)
    cmd = [python, os.path.abspath(__file__), "--driver", jobs_path, times_path]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode:
        raise RuntimeError(f"SCALE-Sim failed ({' '.join(cmd)}):\n{res.stderr[-3000:]}")
    with open(times_path) as f:
        times = json.load(f)
    out = []
    for job, t in zip(jobs, times):
        rep = read_compute_report(os.path.join(job["out"], job["run_name"],
                                               "COMPUTE_REPORT.csv"))
        out.append({**t, **rep})
    return out


def drive(jobs_path: str, times_path: str) -> int:
    """Inside SCALE-Sim's venv: run each job, timing it (wall and CPU seconds)."""
    import contextlib
    import io

    from scalesim.scale_sim import scalesim

    with open(jobs_path) as f:
        jobs = json.load(f)
    times = []
    for job in jobs:
        os.makedirs(job["out"], exist_ok=True)
        with contextlib.redirect_stdout(io.StringIO()):
            t0, c0 = time.perf_counter(), time.process_time()
            sim = scalesim(save_disk_space=True, verbose=False, config=job["config"],
                           topology=job["topology"], layout=job["layout"])
            sim.run_scale(top_path=job["out"])
            times.append({"wall_s": time.perf_counter() - t0,
                          "cpu_s": time.process_time() - c0})
    with open(times_path, "w") as f:
        json.dump(times, f)
    return 0


def time_cost(fn: Any, *args: Any, min_s: float = 0.02) -> float:
    """Seconds per call of ``fn(*args)``: the best of 3 batches of at least ``min_s``."""
    n = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(n):
            fn(*args)
        dt = time.perf_counter() - t0
        if dt >= min_s:
            break
        n *= 4
    best = dt / n
    for _ in range(2):
        t0 = time.perf_counter()
        for _ in range(n):
            fn(*args)
        best = min(best, (time.perf_counter() - t0) / n)
    return best


def integer_models(a: argparse.Namespace) -> dict[str, Any]:
    import edgeq

    if a.eqm:
        return {os.path.splitext(os.path.basename(p))[0]: edgeq.load(p) for p in a.eqm}
    from models.build import build
    from tools.bench_quant import setup

    manifest = build(a.models)
    out = {}
    for name in a.only:
        _, calib, _, _, _, fg, _ = setup(name, manifest[name], a.models)
        out[name] = edgeq.quantize(fg, calib[:16], rounding="tflite", eval_samples=1).graph
    return out


def simulate_layers(layers: list[Any], target: Any, python: str, work: str
                    ) -> list[dict[str, Any] | None]:
    """SCALE-Sim's report and times of one group of each of ``layers`` (MAC ``Layer``s) on
    ``target``, in one subprocess; None for a layer it cannot simulate (``topology_row``)."""
    os.makedirs(work, exist_ok=True)
    cfg = os.path.join(work, "scalesim.cfg")
    with open(cfg, "w") as f:
        f.write(config_text(target, "run"))
    layout = os.path.join(work, "layout.csv")
    with open(layout, "w") as f:
        f.write("Layer name,\n")           # no custom layouts: SCALE-Sim still opens one
    jobs: list[dict[str, str]] = []
    for lay in layers:
        topo = topology_row(lay)[0]
        if topo is None:
            continue
        # names without "DP" (SCALE-Sim's depthwise marker) or commas
        tag = f"L{len(jobs)}"
        topo_path = os.path.join(work, f"{tag}.csv")
        with open(topo_path, "w") as f:
            f.write(HEADER + "\n" + ", ".join([tag, *map(str, topo)]) + ",\n")
        jobs.append({"config": cfg, "topology": topo_path, "layout": layout,
                     "out": os.path.join(work, tag), "run_name": "run"})
    results = iter(run_scalesim(python, jobs, work))
    return [next(results) if topology_row(lay)[0] is not None else None for lay in layers]


def compare(graphs: dict[str, Any], target_name: str, python: str, work: str) -> list[Row]:
    from edgeq.backends.npu_sim import systolic
    from edgeq.ops.mapping import kind_of, layer
    from edgeq.targets import load_target

    target = load_target(target_name)
    if target.architecture != "systolic":
        raise SystemExit(f"{target_name}: not a systolic target")
    rows: list[Row] = []
    layers = []
    for model, graph in graphs.items():
        for node in graph.nodes:
            if kind_of(node) not in systolic.MAC_KINDS:
                continue
            lay = layer(node)
            topo, g, reason = topology_row(lay)
            _, m, k, n = systolic.gemm_dims(lay)
            r = Row(model, lay.name, lay.kind, topo, g, reason,
                    dims=f"{m}x{k}x{n}" + (f" x{g}" if g > 1 else ""))
            r.edgeq_cycles = systolic.cost(lay, target).mac_cycles
            r.edgeq_s = time_cost(systolic.cost, lay, target)
            rows.append(r)
            layers.append(lay)
    for r, rep in zip(rows, simulate_layers(layers, target, python,
                                            os.path.join(work, target_name))):
        r.scalesim = rep or {}
    return rows


def fmt_table(target: str, rows: list[Row]) -> str:
    lines = [f"## {target}", "",
             "| model | layer | kind | M x K x N | SCALE-Sim cycles | SCALE-Sim incl. stalls | "
             "edgeq cycles | edgeq / SCALE-Sim | SCALE-Sim s (wall / CPU) | edgeq us | speedup |",
             "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        if r.topology is None:
            lines.append(f"| {r.model} | {r.layer} | {r.kind} | {r.dims} | not compared: "
                         f"{r.reason} | | {r.edgeq_cycles:,.0f} | | | | |")
            continue
        s = r.scalesim
        lines.append(
            f"| {r.model} | {r.layer} | {r.kind} | {r.dims} | {r.scalesim_cycles:,.0f} | "
            f"{r.scalesim_total:,.0f} | {r.edgeq_cycles:,.0f} | {r.ratio:.3f} | "
            f"{s['wall_s']:.3f} / {s['cpu_s']:.3f} | {r.edgeq_s * 1e6:.1f} | "
            f"{r.speedup:,.0f}x |")
    return "\n".join(lines)


def summary(rows: list[Row]) -> tuple[list[str], bool]:
    """Summary lines and whether the plain layers meet the tolerance and the speedup."""
    lines, ok = [], True
    for label, sel in (("convolution and fully connected", [r for r in rows if not r.grouped]),
                       ("grouped (depthwise per channel, batched matmul per batch; x groups)",
                        [r for r in rows if r.grouped])):
        done = [r for r in sel if r.topology is not None]
        if not done:
            continue
        within = [r for r in done if abs(r.ratio - 1) <= TOLERANCE]
        exact = [r for r in done if r.edgeq_cycles == r.scalesim_cycles]
        worst = sorted((r for r in done if r not in exact), key=lambda r: -abs(r.ratio - 1))
        speed = [r.speedup for r in done]
        stalled = [r for r in done if r.scalesim["stall"] > 0]
        lines.append(
            f"- {label}: {len(within)}/{len(done)} within +-{TOLERANCE:.0%} "
            f"({len(exact)} exact), {len(sel) - len(done)} not compared; speedup median "
            f"{statistics.median(speed):,.0f}x, min {min(speed):,.0f}x; worst: "
            + (", ".join(f"{r.model} {r.layer} {r.ratio:.3f}" for r in worst[:3])
               or "none (all exact)"))
        if stalled:
            top = max(stalled, key=lambda r: r.scalesim_total / r.scalesim_cycles)
            lines.append(
                f"  SCALE-Sim memory stalls in {len(stalled)}/{len(done)} (not compared: "
                f"edgeq's accounting adds memory terms instead); most: {top.model} {top.layer}, "
                f"total {top.scalesim_total:,.0f} = "
                f"{top.scalesim_total / top.scalesim_cycles:.1f}x compute")
        if not done[0].grouped:
            ok = len(within) == len(done) and min(speed) >= MIN_SPEEDUP
    return lines, ok


def main(args: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="build/models", help="zoo ONNX folder (built if missing)")
    p.add_argument("--only", nargs="*", default=list(DEFAULT_MODELS))
    p.add_argument("--eqm", nargs="*", default=[], help="integer models instead of the zoo")
    p.add_argument("--npu", nargs="*", default=list(DEFAULT_TARGETS), help="systolic targets")
    p.add_argument("--scalesim-python",
                   default=os.path.join(ROOT, "build", "scalesim-venv", "bin", "python"))
    p.add_argument("--work", default=os.path.join(ROOT, "build", "scalesim"),
                   help="topologies, configs and SCALE-Sim's reports")
    p.add_argument("--json", help="also write the rows here")
    p.add_argument("--driver", nargs=2, help=argparse.SUPPRESS)
    a = p.parse_args(args)
    if a.driver:
        return drive(*a.driver)
    if not os.access(a.scalesim_python, os.X_OK):
        print(f"no SCALE-Sim venv at {a.scalesim_python}: run `make scalesim-venv`",
              file=sys.stderr)
        return 2
    graphs = integer_models(a)
    ok, report, dump = True, [], []
    for target in a.npu:
        rows = compare(graphs, target, a.scalesim_python, os.path.abspath(a.work))
        lines, good = summary(rows)
        ok &= good
        report += [fmt_table(target, rows), "", *lines, ""]
        dump += [{"target": target, "model": r.model, "layer": r.layer, "kind": r.kind,
                  "groups": r.groups, "dims": r.dims, "topology": r.topology,
                  "reason": r.reason, "edgeq_cycles": r.edgeq_cycles, "edgeq_s": r.edgeq_s,
                  **({"scalesim_cycles": r.scalesim_cycles, "ratio": r.ratio,
                      "speedup": r.speedup, "scalesim": r.scalesim} if r.scalesim else {})}
                 for r in rows]
    print("\n".join(report))
    print("Depthwise layers: SCALE-Sim has no depthwise dataflow; its topology reader splits "
          "a layer named DP... into one layer per channel. Each channel has the same shape, so "
          "one is simulated and its cycles multiplied by the groups; these rows are reported "
          "apart and are not in the plain layers' share.")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(dump, f, indent=1)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
