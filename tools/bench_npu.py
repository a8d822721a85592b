"""edgeq's Ethos-U simulator against Arm Vela 5.2, layer by layer, on the model zoo.

    .venv/bin/python -m tools.bench_npu [--models digits_cnn,...] [--npu ethos-u55-128,...]
                                        [--work build/bench_npu] [--reuse] [--json OUT]
                                        [--layers] [--scalesim]

For each zoo model (built with ``models.build`` when ``build/models`` lacks it, quantized with
``rounding="tflite"`` the way the Ethos-U backend does, 16 calibration inputs) and each
Ethos-U target file: ``write_tflite`` -> Vela (its default C++ core, the target's
``vela_accelerator`` / ``vela_system_config`` / ``vela_memory_mode``, ``--verbose-performance``)
-> ``model_per-layer.csv``; and ``simulate(graph, target)``. Layers match by name: Vela's
``Name`` is the TFLite tensor name, which is the edgeq layer's output value name.

Where the two graphs differ the bench groups, and says so under each table: Vela ops with no
edgeq counterpart (a softmax or pad decomposed into several NPU ops, an extra transpose, a
reduction lowered to a fully connected op) are charged to the next matched edgeq layer; edgeq
layers with no Vela op (fused or folded away by Vela) are merged into the next matched one.
A group's ratio is edgeq cycles / Vela "Op Cycles". Conv, depthwise and fully connected
(``QGemm``) groups count towards the share within +-20%. Traffic: Vela's summary bytes of SRAM
and of the weight memory against the simulator's, per model.

``--scalesim`` hands over to ``tools.npu_scalesim.main(args)`` when that module exists.
"""

from __future__ import annotations

import argparse
import csv
import glob
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = ("digits_cnn", "ds_cnn", "mobilenet_v2", "resnet8", "transformer_block")
NPUS = ("ethos-u55-128", "ethos-u55-256", "ethos-u65-256")
COUNTED = ("conv", "depthwise", "fc")  # the kinds the +-20% share is over
LAYER_TOL, TOTAL_TOL = 0.20, 0.10


@dataclass
class Group:
    """One comparison row: edgeq layers and Vela ops that compute the same thing."""
    name: str
    kind: str
    edgeq: list[str] = field(default_factory=list)
    vela: list[str] = field(default_factory=list)
    edgeq_cycles: float = 0.0
    vela_cycles: float = 0.0

    @property
    def ratio(self) -> float | None:
        return self.edgeq_cycles / self.vela_cycles if self.vela_cycles else None


def vela_path() -> str:
    cand = os.path.join(os.path.dirname(sys.executable), "vela")
    return cand if os.path.exists(cand) else shutil.which("vela") or ""


def quantized(name: str, info: dict, models_dir: str, work: str, reuse: bool):
    """The zoo model quantized as the Ethos-U backend does (saved in ``work``; read back from
    there with ``--reuse`` only, since it changes whenever edgeq's passes do)."""
    from edgeq import api

    path = os.path.join(work, f"{name}.eqm")
    if reuse and os.path.exists(path):
        return api.load(path)
    from tools.bench_quant import setup

    _, calib, *_, fg, _ = setup(name, info, models_dir)
    g = api.quantize(fg, calib[:16], eval_samples=2, rounding="tflite").graph
    api.save(g, path)
    return g


def run_vela(tflite: str, target, out: str, reuse: bool) -> tuple[list[dict], dict]:
    p = target.params
    csv_path = os.path.join(out, "model_per-layer.csv")
    if not (reuse and os.path.exists(csv_path)):
        cmd = [vela_path(), tflite, "--accelerator-config", p["vela_accelerator"],
               "--system-config", p["vela_system_config"], "--memory-mode",
               p["vela_memory_mode"], "--verbose-performance", "--output-dir", out]
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0:
            raise RuntimeError(f"vela failed on {tflite}: {(res.stderr or res.stdout)[-400:]}")
    with open(csv_path) as f:
        rows = list(csv.DictReader(f))
    with open(glob.glob(os.path.join(out, "model_summary_*.csv"))[0]) as f:
        summary = next(csv.DictReader(f))
    return rows, summary


def edgeq_kind(r: dict[str, Any], op: str) -> str:
    if r["kind"] == "matmul" and op == "QGemm":
        return "fc"
    return r["kind"]


def match(graph, sim: dict, vela_rows: list[dict]) -> tuple[list[Group], list[str]]:
    """Group edgeq layers and Vela ops by output name (see the module docstring)."""
    out_name = {n.name: n.outputs[0].name for n in graph.nodes}
    layers = [r for r in sim["layers"]]
    index = {out_name[r["name"]]: i for i, r in enumerate(layers)}
    vela_at: dict[int, list[dict]] = {}
    pending: list[dict] = []
    notes: list[str] = []
    orphans: list[dict] = []
    for row in vela_rows:
        i = index.get(row["Name"])
        if i is None:
            pending.append(row)
            continue
        vela_at.setdefault(i, []).extend(pending + [row])
        pending = []
    orphans = pending
    groups: list[Group] = []
    carry: list[dict] = []
    for i, r in enumerate(layers):
        if i not in vela_at:
            carry.append(r)
            continue
        members = carry + [r]
        carry = []
        g = Group(out_name[r["name"]], edgeq_kind(r, _op_of(graph, r["name"])))
        g.edgeq = [m["name"] for m in members]
        g.edgeq_cycles = sum(m["cycles"] for m in members)
        vrows = vela_at[i]
        g.vela = [f'{v["NNG Operator"]}:{v["Name"]}' for v in vrows]
        g.vela_cycles = sum(float(v["Op Cycles"]) for v in vrows)
        extra = [v for v in vrows if v["Name"] != g.name]
        if extra:
            ops = sorted({v["NNG Operator"] for v in extra})
            notes.append(f"{g.name}: {len(extra)} Vela op(s) without an edgeq layer charged "
                         f"here ({', '.join(ops)})")
        same = [v for v in vrows if v["Name"] == g.name]
        if len(same) > 1:
            notes.append(f"{g.name}: Vela runs it as {len(same)} NPU ops "
                         f"({', '.join(v['NNG Operator'] for v in same)})")
        folded = [m["name"] for m in members[:-1] if m["kind"] != "alias"]
        if folded:
            notes.append(f"{g.name}: edgeq layer(s) {', '.join(folded)} have no Vela op "
                         f"(fused or lowered differently): merged here")
        groups.append(g)
    for r in carry:
        if r["kind"] != "alias" and r["cycles"]:
            notes.append(f"edgeq layer {r['name']} has no Vela op after it: left out")
    for v in orphans:
        notes.append(f"Vela op {v['NNG Operator']}:{v['Name']} matches no edgeq layer: left out")
    return groups, notes


def _op_of(graph, node_name: str) -> str:
    for n in graph.nodes:
        if n.name == node_name:
            return n.op
    return ""


def traffic(sim: dict, summary: dict, target) -> dict[str, tuple[float, float]]:
    """(edgeq bytes, Vela bytes) per memory level Vela reports."""
    act, wmem = target.placement["activations"], target.placement["weights"]
    tot = sim["total"]["bytes"]
    names = {"sram": "sram", "flash": "off_chip_flash", "dram": "dram"}
    out = {}
    for mem in sorted({act, wmem}):
        key = names.get(target.memories[mem].kind)
        if key is None:
            continue
        vela = float(summary.get(f"{key}_total_bytes", 0.0))
        ours = sum(tot.get(mem, {"read": 0, "write": 0}).values())
        out[mem] = (float(ours), vela)
    return out


def fmt_ratio(r: float | None) -> str:
    return "-" if r is None else f"{r:.2f}"


def bench(args) -> dict[str, Any]:
    from edgeq.backends.npu_sim import simulate
    from edgeq.backends.tflite import write_tflite
    from edgeq.targets import load_target

    models_dir = os.path.join(ROOT, "build", "models")
    if not os.path.exists(os.path.join(models_dir, "manifest.json")):
        subprocess.run([sys.executable, "-m", "models.build", "--out", models_dir], check=True,
                       cwd=ROOT)
    with open(os.path.join(models_dir, "manifest.json")) as f:
        info = json.load(f)
    os.makedirs(args.work, exist_ok=True)
    results: dict[str, Any] = {"models": {}}
    share_in = share_all = 0
    worst: list[tuple[float, str, str, Group]] = []
    for name in args.models:
        g = quantized(name, info[name], models_dir, args.work, args.reuse)
        mdir = os.path.join(args.work, name)
        os.makedirs(mdir, exist_ok=True)
        if not args.reuse and os.path.exists(os.path.join(mdir, "model.tflite")):
            os.remove(os.path.join(mdir, "model.tflite"))  # write_tflite keeps an existing one
        tfl = write_tflite(g, mdir)
        for npu in args.npu:
            target = load_target(npu)
            rows, summary = run_vela(tfl, target, os.path.join(mdir, npu), args.reuse)
            sim = simulate(g, target)
            groups, notes = match(g, sim, rows)
            e_tot = sim["total"]["cycles"]
            v_tot = sum(float(r["Op Cycles"]) for r in rows)
            ratio = e_tot / v_tot if v_tot else float("nan")
            counted = [x for x in groups if x.kind in COUNTED and x.ratio is not None]
            inside = [x for x in counted if abs(x.ratio - 1) <= LAYER_TOL]  # type: ignore
            share_in += len(inside)
            share_all += len(counted)
            for x in counted:
                worst.append((abs(x.ratio - 1), name, npu, x))  # type: ignore
            mem = traffic(sim, summary, target)
            print(f"\n== {name} on {npu} (Vela {target.params['vela_accelerator']}, "
                  f"{target.params['vela_system_config']}, {target.params['vela_memory_mode']})")
            if args.layers:
                w = max([len(x.name) for x in groups] + [5])
                print(f"{'layer':<{w}}  {'kind':<11} {'edgeq':>9} {'vela':>9} {'ratio':>6}")
                for x in groups:
                    flag = "" if x.ratio is None or abs(x.ratio - 1) <= LAYER_TOL else "  *"
                    print(f"{x.name:<{w}}  {x.kind:<11} {x.edgeq_cycles:>9.0f} "
                          f"{x.vela_cycles:>9.0f} {fmt_ratio(x.ratio):>6}{flag}")
                for n in notes:
                    print(f"  note: {n}")
            print(f"total cycles: edgeq {e_tot:,.0f}  vela {v_tot:,.0f}  ratio {ratio:.3f}"
                  f"{'' if abs(ratio - 1) <= TOTAL_TOL else '  (outside +-10%)'};  "
                  f"conv/dw/FC within +-20%: {len(inside)}/{len(counted)}")
            print("traffic bytes: " + ";  ".join(
                f"{m} edgeq {a:,.0f} vela {b:,.0f} ratio {fmt_ratio(a / b if b else None)}"
                for m, (a, b) in mem.items()))
            results["models"].setdefault(name, {})[npu] = {
                "edgeq_cycles": e_tot, "vela_cycles": v_tot, "ratio": round(ratio, 4),
                "counted_layers": len(counted), "within_20pct": len(inside),
                "traffic": {m: {"edgeq": a, "vela": b} for m, (a, b) in mem.items()},
                "groups": [{"name": x.name, "kind": x.kind, "edgeq": x.edgeq, "vela": x.vela,
                            "edgeq_cycles": x.edgeq_cycles, "vela_cycles": x.vela_cycles,
                            "ratio": x.ratio} for x in groups],
                "notes": notes}
    results["share_within_20pct"] = share_in / share_all if share_all else 0.0
    results["counted_layers"] = share_all
    worst.sort(key=lambda t: -t[0])
    results["worst"] = [{"model": m, "npu": n, "layer": x.name, "kind": x.kind,
                         "ratio": x.ratio} for _, m, n, x in worst[:10]]
    return results


def summary_table(res: dict[str, Any], npus: list[str]) -> None:
    print("\n== total cycles, edgeq / Vela")
    print(f"{'model':<18} " + " ".join(f"{n:>14}" for n in npus))
    for m, by in res["models"].items():
        print(f"{m:<18} " + " ".join(f"{by[n]['ratio']:>14.3f}" if n in by else f"{'-':>14}"
                                     for n in npus))
    print(f"conv / depthwise / FC layers within +-20%: "
          f"{res['share_within_20pct'] * 100:.1f}% of {res['counted_layers']}")
    print("worst layers: " + "; ".join(f"{w['model']}/{w['npu']} {w['layer']} ({w['kind']}) "
                                       f"{w['ratio']:.2f}" for w in res["worst"][:5]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--npu", default=",".join(NPUS))
    ap.add_argument("--work", default=os.path.join(ROOT, "build", "bench_npu"))
    ap.add_argument("--reuse", action="store_true", help="reuse Vela's CSVs in --work")
    ap.add_argument("--layers", action="store_true", help="print the per-layer tables")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--scalesim", action="store_true",
                    help="also run tools.npu_scalesim (the systolic comparison), if present")
    args = ap.parse_args(argv)
    args.models = [m for m in args.models.split(",") if m]
    args.npu = [n for n in args.npu.split(",") if n]
    t0 = time.perf_counter()
    if not vela_path():
        print("vela not found (pip install ethos-u-vela): nothing to compare against")
        return 1
    res = bench(args)
    summary_table(res, args.npu)
    if args.scalesim:
        try:
            from tools import npu_scalesim
        except ImportError:
            print("--scalesim: tools/npu_scalesim.py is not there; skipped")
        else:
            npu_scalesim.main(args)  # type: ignore[attr-defined]
    secs = time.perf_counter() - t0
    res["bench_seconds"] = round(secs, 1)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1, sort_keys=True)
    print(f"bench time: {secs:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
