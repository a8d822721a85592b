"""Build every zoo model to ONNX (opset 17) plus ``manifest.json``; offline and deterministic.

    python -m models.build --out build/models [--only NAME ...] [--force] [--retrain]

The weights come from ``models/weights`` (kept, digest-checked: the same zoo on every machine,
see models/zoo.py). A file is rebuilt when missing or when its weights changed (pass --force to
rebuild anyway). ``--retrain`` runs the training / statistics factories again and replaces the
kept weights (their digests change: commit both)."""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import warnings

# --retrain runs with the CPU kernels of torch (ATen, oneDNN, MKL) and numpy's OpenBLAS held at
# the AVX2 level, so an AVX2 machine and an AVX-512 machine train the same net (x86-64 only).
RETRAIN_KERNELS = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2",
                   "MKL_ENABLE_INSTRUCTIONS": "AVX2", "OPENBLAS_CORETYPE": "Haswell"}


def export_onnx(module, shape, path: str) -> None:
    import torch

    tmp = path + ".tmp"
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        # PRESERVE (the module is in eval mode): BatchNormalization stays a node. The default
        # (EVAL) fuses it into the convolutions with torch's CPU-dependent float kernels, so the
        # same weights gave different ONNX bytes on AVX2 and AVX-512 machines.
        torch.onnx.export(module.eval(), (torch.zeros(shape),), tmp, dynamo=False,
                          opset_version=17, input_names=["input"], output_names=["output"],
                          training=torch.onnx.TrainingMode.PRESERVE)
    os.replace(tmp, path)


ONNX_DIGESTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "weights",
                            "onnx_sha256.json")


def file_sha256(path: str) -> str:
    import hashlib

    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def exporter_versions() -> dict[str, str]:
    import onnx
    import torch

    return {"torch": torch.__version__, "onnx": onnx.__version__}


def recorded_onnx() -> dict:
    """What ``--retrain`` exported: the exporter versions and each file's SHA-256."""
    if not os.path.exists(ONNX_DIGESTS):
        return {}
    with open(ONNX_DIGESTS) as f:
        return json.load(f)


def build(out: str, only: list[str] | None = None, force: bool = False,
          retrain: bool = False) -> dict:
    from models.zoo import ZOO, pinned, recorded_digests, save_weights

    os.makedirs(out, exist_ok=True)
    manifest_path = os.path.join(out, "manifest.json")
    old = {}
    if os.path.exists(manifest_path):
        with open(manifest_path) as f:
            old = json.load(f)
    manifest = {}
    for name, z in ZOO.items():
        if only and name not in only:
            if name in old:
                manifest[name] = old[name]
            continue
        if retrain:
            save_weights(name, z.factory())
        digest = recorded_digests().get(name)
        path = os.path.join(out, f"{name}.onnx")
        stale = old.get(name, {}).get("weights_sha256") != digest
        if force or retrain or stale or not os.path.exists(path):
            export_onnx(pinned(name), z.input_shape, path)
        manifest[name] = {"file": f"{name}.onnx", "input_shape": list(z.input_shape),
                          "mean": None if z.mean is None else list(z.mean),
                          "std": None if z.std is None else list(z.std),
                          "description": z.description, "weights_sha256": digest,
                          "onnx_sha256": file_sha256(path)}
    if retrain:
        rec = recorded_onnx()
        files = dict(rec.get("files", {}), **{k: v["onnx_sha256"] for k, v in manifest.items()
                                              if not only or k in only})
        with open(ONNX_DIGESTS, "w") as f:
            json.dump({**exporter_versions(), "files": dict(sorted(files.items()))}, f,
                      indent=2)
            f.write("\n")
    with open(manifest_path + ".tmp", "w") as f:
        json.dump(manifest, f, indent=2, sort_keys=True)
    os.replace(manifest_path + ".tmp", manifest_path)
    return {k: manifest[k] for k in manifest if not only or k in only}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", default="build/models")
    p.add_argument("--only", nargs="*")
    p.add_argument("--force", action="store_true")
    p.add_argument("--retrain", action="store_true",
                   help="train again and replace the kept weights in models/weights")
    a = p.parse_args(argv)
    if a.retrain and platform.machine() in ("x86_64", "AMD64") and any(
            os.environ.get(k) != v for k, v in RETRAIN_KERNELS.items()):
        # the variables are read when the libraries load: retrain in a child that has them
        args = sys.argv[1:] if argv is None else list(argv)
        return subprocess.call([sys.executable, "-m", "models.build"] + args,
                               env=dict(os.environ, **RETRAIN_KERNELS))
    for name, info in build(a.out, a.only, a.force, a.retrain).items():
        print(f"{name:18s} {os.path.join(a.out, info['file'])}  {info['description']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
