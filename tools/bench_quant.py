"""edgeq quantization vs ONNX Runtime's quantize_static, same models, same calibration data.

    .venv/bin/python -m tools.bench_quant [--models build/models] [--markdown]

For each model: ORT `quantize_static` (QDQ, per-channel int8 weights, int8 activations, MinMax
calibration) run in ORT with default session options (what a user gets) and with
`session.x64quantprecision=1`; edgeq int8 (all activations int8) on its integer interpreter;
and edgeq with `--int16 auto` (the fewest int16 activations for a 40 dB target). Metrics on
held-out inputs (not the calibration ones): output SQNR vs the float model, top-1 agreement,
accuracy where labels exist (digits), and quantization time. Calibration and evaluation sets:
digits: the first 256 training digits / the 360 held-out digits; image nets: 64 crops of the
sample photos (seed 1) / 64 other crops (seed 2); DS-CNN: speech-like maps (seeds 1 / 2).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np


def sqnr(ref: np.ndarray, got: np.ndarray) -> float:
    ref = ref.astype(np.float64)
    return float(10 * np.log10((ref ** 2).sum() / max(((ref - got) ** 2).sum(), 1e-30)))


def ort_quantize(model_path: str, calib_norm: np.ndarray, out_path: str) -> float:
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                          quantize_static)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter([{"input": calib_norm[i:i + 1]} for i in range(len(calib_norm))])

        def get_next(self):
            return next(self.it, None)

    t0 = time.perf_counter()
    quantize_static(model_path, out_path, Reader(), quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=QuantType.QInt8,
                    weight_type=QuantType.QInt8)
    return time.perf_counter() - t0


def ort_run(path: str, x: np.ndarray, x64: bool) -> np.ndarray:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    if x64:
        so.add_session_config_entry("session.x64quantprecision", "1")
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    return np.concatenate([sess.run(None, {"input": x[i:i + 1]})[0] for i in range(len(x))])


def datasets(name: str, info: dict):
    from models import data

    if name == "digits_cnn":
        xtr, _, xte, yte = data.digits()
        return xtr[:256], xte, yte
    if name == "ds_cnn":
        return data.speech_features(64, seed=1), data.speech_features(64, seed=2), None
    shape = info["input_shape"]
    if len(shape) != 4:  # token sequences (transformer block): unit-normal embeddings
        import numpy as np

        def draw(seed):
            return np.random.default_rng(seed).normal(size=(64,) + tuple(shape[1:])).astype(
                np.float32)
        return draw(1), draw(2), None
    size = shape[-1]
    return data.photo_crops(64, size, seed=1), data.photo_crops(64, size, seed=2), None


def setup(name: str, info: dict, models_dir: str):
    """Shared by the benchmarks: the model path, calibration / held-out data and labels, the
    normalization ORT's model needs, edgeq's optimized float graph and its held-out outputs."""
    import edgeq
    from models import data

    path = os.path.join(models_dir, info["file"])
    calib, held, labels = datasets(name, info)
    mean, std = info["mean"], info["std"]
    norm = (lambda x: data.normalize(x, mean, std)) if mean else (lambda x: x)
    fg, _ = edgeq.optimize(edgeq.load(path), mean=mean, std=std)
    return path, calib, held, labels, norm, fg, edgeq.run(fg, held)[0]


def bench_model(name: str, info: dict, models_dir: str) -> list[dict]:
    import edgeq

    path, calib, held, labels, norm, fg, ref = setup(name, info, models_dir)
    rows = []

    def row(tool, out, secs, note=""):
        r = {"model": name, "tool": tool, "sqnr_db": round(sqnr(ref, out), 2),
             "top1_agreement": round(float((out.argmax(1) == ref.argmax(1)).mean()), 4),
             "quant_time_s": round(secs, 2), "note": note}
        if labels is not None:
            r["accuracy"] = round(float((out.argmax(1) == labels).mean()), 4)
            r["float_accuracy"] = round(float((ref.argmax(1) == labels).mean()), 4)
        rows.append(r)

    with tempfile.TemporaryDirectory() as d:
        qpath = os.path.join(d, "q.onnx")
        secs = ort_quantize(path, norm(calib), qpath)
        row("ORT quantize_static", ort_run(qpath, norm(held), x64=False), secs,
            "default session options")
        row("ORT quantize_static", ort_run(qpath, norm(held), x64=True), secs,
            "session.x64quantprecision=1")
    t0 = time.perf_counter()
    res = edgeq.quantize(fg, calib, eval_samples=8)
    secs = time.perf_counter() - t0
    row("edgeq", edgeq.run(res.graph, held)[0], secs, "all int8")
    t0 = time.perf_counter()
    res = edgeq.quantize(fg, calib, int16="auto", target_sqnr_db=40, eval_samples=8)
    secs = time.perf_counter() - t0
    n16 = len(res.report["mixed_precision"]["steps"][-1]["int16"])
    row("edgeq", edgeq.run(res.graph, held)[0], secs, f"--int16 auto ({n16} int16 values)")
    return rows


def markdown(rows: list[dict]) -> str:
    head = "| model | tool | setting | SQNR dB | top-1 agree | accuracy | quant time s |"
    lines = [head, "|---|---|---|---:|---:|---:|---:|"]
    for r in rows:
        acc = f"{r['accuracy']:.2%} (float {r['float_accuracy']:.2%})" if "accuracy" in r \
            else "-"
        lines.append(f"| {r['model']} | {r['tool']} | {r['note']} | {r['sqnr_db']:.1f} | "
                     f"{r['top1_agreement']:.2%} | {acc} | {r['quant_time_s']:.1f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="build/models")
    p.add_argument("--only", nargs="*", default=["digits_cnn", "mobilenet_v2", "resnet8",
                                                  "ds_cnn"])
    p.add_argument("--json", help="also write the rows here")
    a = p.parse_args(argv)
    from models.build import build

    manifest = build(a.models)
    rows = []
    for name in a.only:
        rows += bench_model(name, manifest[name], a.models)
        print(markdown([r for r in rows if r["model"] == name]).split("\n", 2)[-1],
              file=sys.stderr)
    print(markdown(rows))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
