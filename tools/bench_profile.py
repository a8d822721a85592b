"""Per-layer profiles of the zoo MobileNetV2 on every host runtime and the C library.

    .venv/bin/python -m tools.bench_profile [--models build/models] [--out build/bench_profile]
                                           [--runs 10] [--reuse]

Exports build/models/mobilenet_v2.onnx (calibrated on 64 photo crops, seed 1, as
tools/bench_quant.py does) to ort, tflite, tvm and c (and cortex-m4 when qemu-system-arm and
arm-none-eabi-gcc are installed), profiles every target (``edgeq profile``), and prints the
layers x targets table, per target the coverage (named layers / total) and the sum of layer
medians / median total, and per C layer the instructions per MAC on the Cortex-M4 (C thread
CPU ns per MAC without QEMU), flagging layers above twice the median.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time

import numpy as np



def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="build/models")
    ap.add_argument("--out", default="build/bench_profile")
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--reuse", action="store_true", help="profile the export already in --out")
    args = ap.parse_args(argv)

    import edgeq
    from edgeq import api
    from edgeq.outdir import OutputDir
    from edgeq.present import format_profile
    from models import data

    path = os.path.join(args.models, "mobilenet_v2.onnx")
    if not os.path.exists(path):
        print(f"{path} missing: .venv/bin/python -m models.build --out {args.models}",
              file=sys.stderr)
        return 2
    with open(os.path.join(args.models, "manifest.json")) as f:
        info = json.load(f)["mobilenet_v2"]
    mcu = shutil.which("qemu-system-arm") and shutil.which("arm-none-eabi-gcc")
    targets = ["ort", "tflite", "tvm", "c"] + (["cortex-m4"] if mcu else [])
    size = info["input_shape"][-1]
    # absolute: the C backend compiles with relative paths from another folder otherwise
    out = os.path.abspath(os.path.join(args.out, "mobilenet_v2"))
    os.makedirs(args.out, exist_ok=True)
    calib = os.path.join(args.out, "calib_mobilenet_v2.npy")
    np.save(calib, data.photo_crops(64, size, seed=1))
    t0 = time.perf_counter()
    if not (args.reuse and os.path.exists(os.path.join(out, "report.json"))):
        graph, _ = edgeq.optimize(edgeq.load(path), mean=info["mean"], std=info["std"])
        api.export(graph, calib, OutputDir(out, force=True), targets, progress=False)
        print(f"exported {path} to {', '.join(targets)} in {time.perf_counter() - t0:.0f} s")
    x = data.photo_crops(1, size, seed=2)
    prof, secs = {"targets": {}}, {}
    for t in targets:
        t0 = time.perf_counter()
        p = api.profile(out, [t], runs=args.runs, warmup=2, x=x)
        secs[t] = time.perf_counter() - t0
        prof.update({k: v for k, v in p.items() if k != "targets"})
        prof["targets"][t] = p["targets"][t]
    print(format_profile(prof))
    print()
    print(f"{'target':<10} {'unit':<12} {'total':>14} {'coverage':>9} {'sum/total':>9} "
          f"{'profile s':>9}  method")
    for t in targets:
        p = prof["targets"][t]
        s = sum(r["median"] for r in p["layers"])
        total = p["total"]["median"]
        print(f"{t:<10} {p['unit']:<12} {total:>14,.0f} {p['coverage']:>9.3f} "
              f"{s / total:>9.3f} {secs[t]:>9.1f}  {p.get('method', p['source'])}")
        if "unattributed" in p:
            print(f"{'':<10} unattributed {p['unattributed']['median']:,} {p['unit']} "
                  f"({100 * p['unattributed']['share']:.1f}%): "
                  f"{', '.join(p.get('unattributed_nodes', []))}")
    per_mac("cortex-m4" if mcu else "c", prof["targets"]["cortex-m4" if mcu else "c"])
    return 0


def per_mac(target: str, p: dict) -> None:
    """Count per MAC of each layer with MACs, flagged (!) above twice the median."""
    unit = "instructions" if target == "cortex-m4" else "C cpu ns"
    rows = [(r["name"], r["op"], r["macs"], r["median"] / r["macs"]) for r in p["layers"]
            if r["macs"]]
    if not rows:
        return
    med = statistics.median(r[3] for r in rows)
    print(f"\n{unit} per MAC ({target}), median {med:.3f}; ! = above twice the median")
    for name, op, macs, k in rows:
        print(f"  {'!' if k > 2 * med else ' '} {k:8.3f}  {macs:>11,}  {op:<12} {name}")


if __name__ == "__main__":
    raise SystemExit(main())
