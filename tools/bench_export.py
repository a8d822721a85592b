"""edgeq's exported artifacts vs what a user gets today from ONNX Runtime's quantize_static;
and (``--stages``) where edgeq's export spends its CPU time.

    .venv/bin/python -m tools.bench_export [--models build/models]
    .venv/bin/python -m tools.bench_export --stages [--base /work/scratch/base] [--repeat N]

Per model, in one run: ORT `quantize_static` (QDQ, per-channel int8, MinMax) run with default
session options (what a user gets), and `edgeq export --target ort` run as edgeq runs it (its
recorded session option applied). Same calibration data; metrics on held-out inputs: output
SQNR vs the float model, accuracy on digits, artifact size, median single-thread latency, and
export time (quantization + lowering + verification for edgeq; quantization for ORT).

``--stages``: the CPU time (this process and the children it waited for: compilers, arena
probes; not wall time, the machine may be shared) of exporting the zoo MobileNetV2, calibrated
on 100 photo crops, to ``ort,tflite,tflm,tvm,c``, by stage: quantize, the shared references,
then lowering, verification and latency per target. With ``--base DIR`` (a checkout of another
revision, e.g. a git worktree of the previous main) the same export runs there too, in the same
run, and its total is compared. Each export runs in a fresh interpreter with the runtimes
(TVM, ONNX Runtime, LiteRT, TFLite Micro) imported before the clock starts, in both trees.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
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
        art = be.open(out_dir)
        sess = be.session(art, threads=1)
        out = np.concatenate([be.run(art, {"input": held[i:i + 1]}, session=sess)["output"]
                              for i in range(len(held))])
        row("edgeq export --target ort", out, os.path.getsize(art.path),
            _latency_ms(sess, held), secs)
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


STAGE_MODEL = "mobilenet_v2"
STAGE_TARGETS = "ort,tflite,tflm,tvm,c"
STAGE_SAMPLES = 100

# Runs in a fresh interpreter whose current folder is the tree to measure (so `edgeq`,
# `models` and `tools` resolve there); written against the export API both trees share:
# export(fg, data, targets, out_dir, quant_options), plus stage_cpu_s where the tree has it.
_STAGE_DRIVER = """
import inspect, json, os, resource, sys, tempfile
import onnxruntime, tvm  # noqa: F401  (imported before the clock starts, in both trees)
from ai_edge_litert import interpreter  # noqa: F401
from tflite_micro.python.tflite_micro import runtime  # noqa: F401
import edgeq
from edgeq.export import export
from edgeq.quant.calibrate import CalibrationData
from models import data
models_dir, name, targets, n = sys.argv[1], sys.argv[2], sys.argv[3].split(","), int(sys.argv[4])
with open(os.path.join(models_dir, "manifest.json")) as f:
    info = json.load(f)[name]
fg, _ = edgeq.optimize(edgeq.load(os.path.join(models_dir, info["file"])), mean=info["mean"],
                       std=info["std"])
cal = CalibrationData(fg, arrays={"input": data.photo_crops(n, info["input_shape"][-1], seed=1)})

def cpu_s():
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime

stages = {}
kw = {"stage_cpu_s": stages} if "stage_cpu_s" in inspect.signature(export).parameters else {}
with tempfile.TemporaryDirectory() as d:
    t0 = cpu_s()
    export(fg, cal, targets, d, {"eval_samples": 4}, **kw)
    total = cpu_s() - t0
print("EDGEQ_STAGES " + json.dumps({"total": total, "stages": stages, "edgeq": edgeq.__file__}))
"""


def _stage_run(tree: str, models_dir: str, targets: str) -> dict:
    """One export in ``tree``, with a fresh temporary folder: the C backend's build cache
    (keyed by the sources' hash) starts empty, so every run compiles as a first export does."""
    with tempfile.TemporaryDirectory(prefix="edgeq-bench-") as tmp:
        res = subprocess.run([sys.executable, "-c", _STAGE_DRIVER, os.path.abspath(models_dir),
                              STAGE_MODEL, targets, str(STAGE_SAMPLES)], cwd=tree,
                             capture_output=True, text=True, env={**os.environ, "TMPDIR": tmp})
    line = next((x for x in res.stdout.splitlines() if x.startswith("EDGEQ_STAGES ")), None)
    if res.returncode != 0 or line is None:
        raise SystemExit(f"export in {tree} failed:\n{res.stderr[-3000:]}")
    out = json.loads(line.split(" ", 1)[1])
    if not os.path.abspath(out["edgeq"]).startswith(os.path.abspath(tree)):
        raise SystemExit(f"`import edgeq` in {tree} resolved to {out['edgeq']}")
    return out


def stages_markdown(after: list[dict], before: list[dict], targets: list[str]) -> str:
    """Stage rows (CPU s of this tree's median run), then the totals of both trees."""
    best = sorted(after, key=lambda r: r["total"])[(len(after) - 1) // 2]
    st = best["stages"]
    rows = [("quantize", st.get("quantize", 0.0)),
            ("references (float + integer outputs, once)", st.get("references", 0.0))]
    for kind in ("lower", "verify", "latency"):
        rows += [(f"{kind} {t}", st.get(f"{kind} {t}", 0.0)) for t in targets]
    rows.append(("other (saving model.eqm, support checks)", best["total"] - sum(st.values())))
    lines = ["| stage | CPU s |", "|---|---:|"]
    lines += [f"| {name} | {secs:.1f} |" for name, secs in rows]
    lines += ["", "| tree | export CPU s (each run) | median | speed-up vs before (median) |",
              "|---|---|---:|---:|"]

    def median(runs):
        return statistics.median(r["total"] for r in runs)

    for label, runs in (("before (base)", before), ("after (this tree)", after)):
        if runs:
            each = ", ".join(f"{r['total']:.1f}" for r in runs)
            speed = f"{median(before) / median(runs):.2f}x" if before else "-"
            lines.append(f"| {label} | {each} | {median(runs):.1f} | {speed} |")
    return "\n".join(lines)


def stages_main(models_dir: str, base: str | None, repeat: int, targets: str) -> int:
    from models.build import build

    build(models_dir)
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    after, before = [], []
    for _ in range(repeat):  # alternate the trees, so both see the same machine load
        if base:
            before.append(_stage_run(base, models_dir, targets))
        after.append(_stage_run(here, models_dir, targets))
    print(f"export of {STAGE_MODEL} ({STAGE_SAMPLES} photo crops) to {targets}, CPU seconds "
          f"(process + finished children)\n")
    print(stages_markdown(after, before, targets.split(",")))
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="build/models")
    p.add_argument("--only", nargs="*", default=["digits_cnn", "mobilenet_v2", "ds_cnn"])
    p.add_argument("--stages", action="store_true", help="export CPU time by stage")
    p.add_argument("--base", help="with --stages: also time the export in this checkout")
    p.add_argument("--repeat", type=int, default=1, help="with --stages: runs per tree")
    p.add_argument("--targets", default=STAGE_TARGETS, help="with --stages")
    a = p.parse_args(argv)
    if a.stages:
        return stages_main(a.models, a.base, a.repeat, a.targets)
    from models.build import build

    manifest = build(a.models)
    rows = []
    for name in a.only:
        rows += bench(name, manifest[name], a.models)
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
