"""edgeq's exported artifacts vs what a user gets today from ONNX Runtime's quantize_static.

    .venv/bin/python -m tools.bench_export [--models build/models]

Per model, in one run: ORT `quantize_static` (QDQ, per-channel int8, MinMax) run with default
session options (what a user gets), and `edgeq export --target ort` run as edgeq runs it (its
recorded session option applied). Same calibration data; metrics on held-out inputs: output
SQNR vs the float model, accuracy on digits, artifact size, median single-thread latency, and
export time (quantization + lowering + verification for edgeq; quantization for ORT).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

import numpy as np

from tools.bench_quant import ort_quantize, setup, sqnr


def _latency_ms(sess, x: np.ndarray, repeats: int = 30) -> float:
    feeds = {sess.get_inputs()[0].name: x[:1]}
    sess.run(None, feeds)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        sess.run(None, feeds)
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def bench(name: str, info: dict, models_dir: str) -> list[dict]:
    import onnxruntime as ort

    from edgeq.backends.ort_qdq import OrtQdqBackend
    from edgeq.export import export
    from edgeq.quant.calibrate import CalibrationData

    path, calib, held, labels, norm, fg, ref = setup(name, info, models_dir)
    rows = []

    def row(tool, out, size, lat, secs):
        r = {"model": name, "tool": tool, "sqnr_db": sqnr(ref, out), "size_bytes": size,
             "latency_ms": lat, "export_s": secs}
        if labels is not None:
            r["accuracy"] = float((out.argmax(1) == labels).mean())
            r["float_accuracy"] = float((ref.argmax(1) == labels).mean())
        rows.append(r)

    with tempfile.TemporaryDirectory() as d:
        q = os.path.join(d, "ort.onnx")
        secs = ort_quantize(path, norm(calib), q)
        so = ort.SessionOptions()
        so.log_severity_level = 3
        so.intra_op_num_threads = 1
        sess = ort.InferenceSession(q, so, providers=["CPUExecutionProvider"])
        xs = norm(held)
        out = np.concatenate([sess.run(None, {"input": xs[i:i + 1]})[0] for i in range(len(xs))])
        row("ORT quantize_static (default session)", out, os.path.getsize(q),
            _latency_ms(sess, xs), secs)
        so.add_session_config_entry("session.x64quantprecision", "1")
        sess = ort.InferenceSession(q, so, providers=["CPUExecutionProvider"])
        out = np.concatenate([sess.run(None, {"input": xs[i:i + 1]})[0] for i in range(len(xs))])
        row("ORT quantize_static (x64quantprecision=1)", out, os.path.getsize(q),
            _latency_ms(sess, xs), secs)
        out_dir = os.path.join(d, "edgeq")
        os.makedirs(out_dir)
        t0 = time.perf_counter()
        export(fg, CalibrationData(fg, arrays={"input": calib}), ["ort"], out_dir,
               {"eval_samples": 4})
        secs = time.perf_counter() - t0
        be = OrtQdqBackend()
        art = os.path.join(out_dir, be.artifact)
        sess = be.session(art, threads=1)
        out = np.concatenate([be.run(art, {"input": held[i:i + 1]}, session=sess)["output"]
                              for i in range(len(held))])
        row("edgeq export --target ort", out, os.path.getsize(art), _latency_ms(sess, held),
            secs)
    return rows


def markdown(rows: list[dict]) -> str:
    lines = ["| model | artifact | SQNR dB | digits accuracy | size bytes | latency ms (1 thread) "
             "| export s |", "|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        acc = f"{r['accuracy']:.2%} (float {r['float_accuracy']:.2%})" if "accuracy" in r \
            else "-"
        lines.append(f"| {r['model']} | {r['tool']} | {r['sqnr_db']:.1f} | {acc} | "
                     f"{r['size_bytes']:,} | {r['latency_ms']:.3f} | {r['export_s']:.1f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="build/models")
    p.add_argument("--only", nargs="*", default=["digits_cnn", "mobilenet_v2", "ds_cnn"])
    a = p.parse_args(argv)
    from models.build import build

    manifest = build(a.models)
    rows = []
    for name in a.only:
        rows += bench(name, manifest[name], a.models)
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
