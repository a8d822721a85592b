"""Microcontroller memory: TFLite Micro's arena vs edgeq's plans, per zoo model.

    .venv/bin/python -m tools.bench_mcu [--models build/models]

Each model is quantized (int8, TFLite arithmetic) once; the same integer model gives the .tflite
whose smallest allocating TFLite Micro arena is measured, edgeq's layer-by-layer arena plan, and
the best patch-based plan within 20% extra MACs. Weights bytes are the int8/int32 constants
(flash for the C backend will add code size once it exists).
"""

from __future__ import annotations

import argparse
import sys


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="build/models")
    p.add_argument("--only", nargs="*", default=["mobilenet_v2", "resnet8", "ds_cnn",
                                                  "digits_cnn"])
    a = p.parse_args(argv)
    import edgeq
    from edgeq.backends.tflite import smallest_arena
    from edgeq.backends.tflite.lower import lower_graph
    from edgeq.schedule.arena import plan_memory
    from edgeq.schedule.patch import search
    from models.build import build
    from tools.bench_quant import setup

    manifest = build(a.models)
    lines = ["| model | TFLite Micro arena | edgeq layer-by-layer | edgeq patch-based | "
             "patch vs TFLM | extra MACs | weights bytes |", "|---|---:|---:|---:|---:|---:|---:|"]
    for name in a.only:
        _, calib, _, _, _, fg, _ = setup(name, manifest[name], a.models)
        ig = edgeq.quantize(fg, calib[:16], rounding="tflite", eval_samples=1).graph
        arena = smallest_arena(lower_graph(ig))
        lbl = plan_memory(ig).arena_bytes
        patch = search(ig, max_overhead=0.20)
        weights = sum(v.type.nbytes for v in ig.consts())
        if patch is None:
            pp, ratio, over = "-", "-", "-"
        else:
            pp = f"{patch.peak_bytes:,}"
            ratio = f"{patch.peak_bytes / arena:.2f}x"
            over = f"{patch.overhead:+.1%}"
        lines.append(f"| {name} | {arena:,} | {lbl:,} | {pp} | {ratio} | {over} | "
                     f"{weights:,} |")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
