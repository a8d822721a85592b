"""Build every zoo model to ONNX (opset 17) plus ``manifest.json``; offline and deterministic.

    python -m models.build --out build/models [--only NAME ...]

An existing file is rebuilt only when missing (pass --force to rebuild)."""

from __future__ import annotations

import argparse
import warnings
import json
import os
import sys


def export_onnx(module, shape, path: str) -> None:
    import torch

    tmp = path + ".tmp"
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(module, (torch.zeros(shape),), tmp, dynamo=False, opset_version=17,
                          input_names=["input"], output_names=["output"])
    os.replace(tmp, path)


def build(out: str, only: list[str] | None = None, force: bool = False) -> dict:
    from models.zoo import ZOO

    os.makedirs(out, exist_ok=True)
    manifest = {}
    for name, (factory, shape, mean, std, desc) in ZOO.items():
        if only and name not in only:
            continue
        path = os.path.join(out, f"{name}.onnx")
        if force or not os.path.exists(path):
            export_onnx(factory(), shape, path)
        manifest[name] = {"file": f"{name}.onnx", "input_shape": list(shape),
                          "mean": None if mean is None else list(mean),
                          "std": None if std is None else list(std), "description": desc}
    if not only:
        with open(os.path.join(out, "manifest.json"), "w") as f:
            json.dump(manifest, f, indent=2, sort_keys=True)
    return manifest


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", default="build/models")
    p.add_argument("--only", nargs="*")
    p.add_argument("--force", action="store_true")
    a = p.parse_args(argv)
    for name, info in build(a.out, a.only, a.force).items():
        print(f"{name:18s} {os.path.join(a.out, info['file'])}  {info['description']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
