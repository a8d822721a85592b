"""Export every zoo model to every host target and compare two such snapshots file by file.

    .venv/bin/python -m tools.snapshot_artifacts OUT [--models build/models] [--targets ...]
    .venv/bin/python -m tools.snapshot_artifacts --compare OLD NEW

A refactoring that must not change behaviour is checked by taking a snapshot before and after
it: every artifact (``model.eqm``, ``model.qdq.onnx``, ``model.tflite``, ``model.tvm.so``,
``model_vela.tflite``, ``c/``) must be byte-identical, and ``report.json`` identical once its
timings (keys ending in ``_ms`` or ``_s``) are dropped.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys

TARGETS = "ort,tflite,tflm,tvm,c,ethos-u"
SAMPLES = 16


def _strip_timings(x):
    if isinstance(x, dict):
        return {k: _strip_timings(v) for k, v in x.items()
                if not (k.endswith("_ms") or k.endswith("_s"))}
    if isinstance(x, list):
        return [_strip_timings(v) for v in x]
    return x


def snapshot(out: str, models_dir: str, targets: list[str]) -> None:
    from edgeq.export import export
    from edgeq.quant.calibrate import CalibrationData
    from models.build import build
    from tools.bench_quant import setup

    manifest = build(models_dir)
    for name, info in sorted(manifest.items()):
        _, calib, _, _, _, fg, _ = setup(name, info, models_dir)
        d = os.path.join(out, name)
        os.makedirs(d, exist_ok=True)
        data = CalibrationData(fg, arrays={fg.inputs[0].name: calib[:SAMPLES]})
        report = export(fg, data, targets, d, {"eval_samples": 4})
        with open(os.path.join(d, "report.json"), "w") as f:
            json.dump(_strip_timings(report), f, indent=1, sort_keys=True, default=str)
        print(f"{name}: {', '.join(sorted(os.listdir(d)))}", flush=True)


def _digests(root: str) -> dict[str, str]:
    out = {}
    for base, _, files in os.walk(root):
        for f in files:
            p = os.path.join(base, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, root)] = hashlib.sha256(fh.read()).hexdigest()
    return out


def compare(old: str, new: str) -> int:
    a, b = _digests(old), _digests(new)
    bad = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
    for k in bad:
        print(f"differs: {k}" if k in a and k in b else f"only in {'old' if k in a else 'new'}: "
              f"{k}")
    print(f"{len(a.keys() & b.keys()) - len([k for k in bad if k in a and k in b])} of "
          f"{len(a.keys() | b.keys())} files identical")
    return 1 if bad else 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("out", nargs="?")
    p.add_argument("--models", default="build/models")
    p.add_argument("--targets", default=TARGETS)
    p.add_argument("--compare", nargs=2, metavar=("OLD", "NEW"))
    a = p.parse_args(argv)
    if a.compare:
        return compare(*a.compare)
    if not a.out:
        p.error("give OUT or --compare OLD NEW")
    snapshot(a.out, a.models, a.targets.split(","))
    return 0


if __name__ == "__main__":
    sys.exit(main())
