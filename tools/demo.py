"""`make demo`: the main job on the bundled MobileNetV2 (built by models/build.py).

Import -> float passes (with ImageNet input normalization folded, so the model takes raw pixels)
-> verify against ONNX Runtime on crops of scikit-learn's sample photos -> per-layer table ->
integer-only quantization (calibrated on photo crops) -> export to every available target, each
verified against the integer interpreter -> the export report."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--models", default="build/models")
    p.add_argument("--model", default="mobilenet_v2")
    p.add_argument("--out", default="build/demo", help="the export folder (report.html in it)")
    a = p.parse_args(argv)
    import onnxruntime as ort

    import edgeq
    from edgeq import present
    from models import data

    with open(os.path.join(a.models, "manifest.json")) as f:
        info = json.load(f)[a.model]
    path = os.path.join(a.models, info["file"])
    t0 = time.perf_counter()
    graph, result = edgeq.optimize(edgeq.load(path), mean=info["mean"], std=info["std"])
    compile_s = time.perf_counter() - t0
    print(present.format_inspect(edgeq.inspect(graph)))
    for note in result.notes:
        print(f"note: {note}")
    size = info["input_shape"][-1]
    raw = data.photo_crops(8, size, seed=99)
    ours = edgeq.run(graph, raw)[0]
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    norm = data.normalize(raw, info["mean"], info["std"])
    theirs = np.concatenate([sess.run(None, {"input": norm[i:i + 1]})[0] for i in range(8)])
    rel = float(np.abs(ours - theirs).max() / np.abs(theirs).max())
    print(f"\n{a.model}: passes applied: {', '.join(result.applied)}")
    print(f"verify vs ONNX Runtime on 8 photo crops (raw pixels in, normalization folded): "
          f"max relative error {rel:.2e} ({'OK' if rel < 1e-4 else 'MISMATCH'}); "
          f"top-1 agreement {float((ours.argmax(1) == theirs.argmax(1)).mean()):.0%}; "
          f"compile {compile_s:.2f} s")
    import shutil

    from edgeq import api
    from edgeq.backends import available
    from edgeq.quant.calibrate import CalibrationData

    targets = available()
    if not all(shutil.which(t) for t in ("arm-none-eabi-gcc", "qemu-system-arm")):
        targets = [t for t in targets if not t.startswith("cortex-m")]
        print("cortex-m4/m7 left out: arm-none-eabi-gcc or qemu-system-arm is not installed")
    if not all(shutil.which(t) for t in ("aarch64-linux-gnu-gcc", "qemu-aarch64")):
        targets = [t for t in targets if t != "aarch64"]
        print("aarch64 left out: aarch64-linux-gnu-gcc or qemu-aarch64 is not installed")
    calib = CalibrationData(graph, arrays={"input": data.photo_crops(64, size, seed=1)})
    out = os.path.join(a.out, a.model)
    os.makedirs(a.out, exist_ok=True)
    report = api.export(graph, calib, out, targets, progress=False)
    print("\nquantized (all int8), calibrated on 48 photo crops:")
    print(present.format_report(report["quantization"]))
    print(f"\nexported to {', '.join(targets)} (16 held-out crops):")
    print(present.format_export(report))
    print(f"\nreport: {os.path.join(out, 'report.html')} (and report.json, the artifacts)")
    return 0 if rel < 1e-4 else 1


if __name__ == "__main__":
    sys.exit(main())
