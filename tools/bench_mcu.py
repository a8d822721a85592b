"""Microcontroller memory: TFLite Micro's arena vs edgeq's plans, per zoo model.

    .venv/bin/python -m tools.bench_mcu [--models build/models]

Each model is quantized (int8, TFLite arithmetic) once; the same integer model gives the .tflite
whose smallest allocating TFLite Micro arena is measured, edgeq's layer-by-layer arena plan, and
the best patch-based plan within 20% extra MACs, and the C backend's build for a Cortex-M4:
its one static arena (execution order searched, tiles included, placement searched exactly when
the graph is small), flash (``arm-none-eabi-size``: code + constants) and whether the build runs
bit-exact with the integer interpreter under QEMU (mps2-an386) on held-out samples.
"""

from __future__ import annotations

import argparse
import sys


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="build/models")
    p.add_argument("--only", nargs="*", default=["mobilenet_v2", "resnet8", "ds_cnn",
                                                  "digits_cnn", "transformer_block"])
    a = p.parse_args(argv)
    import edgeq
    from edgeq.backends.tflite import TfliteBackend, smallest_arena
    from edgeq.backends.tflite.lower import lower_graph
    from edgeq.schedule.arena import plan_memory
    from edgeq.schedule.patch import search
    from models.build import build
    from tools.bench_quant import setup

    manifest = build(a.models)
    import shutil
    import tempfile

    import numpy as np

    from edgeq.backends.c import CortexMBackend
    from edgeq.quant.pipeline import quantize_feeds
    from edgeq.runtime.reference import run_graph

    have_arm = all(shutil.which(t) for t in ("arm-none-eabi-gcc", "qemu-system-arm"))
    lines = ["| model | TFLite Micro arena | edgeq layer-by-layer | edgeq patch-based | "
             "patch vs TFLM | extra MACs | C static arena | flash (code + weights) | "
             "QEMU Cortex-M4 |", "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for name in a.only:
        _, calib, held, _, _, fg, _ = setup(name, manifest[name], a.models)
        ig = edgeq.quantize(fg, calib[:16], rounding="tflite", eval_samples=1).graph
        # no TFLite lowering yet for some ops (LayerNorm, Softmax): no TFLM figure then
        arena = None if TfliteBackend().supports(ig) else smallest_arena(lower_graph(ig))
        lbl = plan_memory(ig).arena_bytes
        patch = search(ig, max_overhead=0.20)
        be = CortexMBackend("cortex-m4")
        with tempfile.TemporaryDirectory() as d:
            art = be.lower(ig, d)
            c_arena = f"{art.memory['arena_bytes']:,}"
            if have_arm:
                flash = f"{be.size(art.path)['flash_bytes']:,}"
                feeds = [{ig.inputs[0].name: held[i:i + 1]} for i in range(4)]
                outs = be.run_many(art, feeds, raw=True, session=be.session(art))
                exact = all(np.array_equal(o[v.name], run_graph(ig, quantize_feeds(ig, f))[
                    v.name]) for f, o in zip(feeds, outs) for v in ig.outputs)
                qemu = "bit-exact (4 samples)" if exact else "MISMATCH"
            else:
                flash = qemu = "no arm-none-eabi-gcc / qemu"
        if patch is None:
            pp, ratio, over = "-", "-", "-"
        else:
            pp = f"{patch.peak_bytes:,}"
            ratio = f"{patch.peak_bytes / arena:.2f}x" if arena else "-"
            over = f"{patch.overhead:+.1%}"
        tflm = f"{arena:,}" if arena else "- (no TFLite lowering)"
        lines.append(f"| {name} | {tflm} | {lbl:,} | {pp} | {ratio} | {over} | "
                     f"{c_arena} | {flash} | {qemu} |")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
