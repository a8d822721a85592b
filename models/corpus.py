"""The real-model corpus: architectures people ship, exported the way real exporters export them,
with weights drawn so the nets are not chaotic. Nothing is downloaded (``weights=None``,
``pretrained=False``).

- torchvision classifiers under ~600 M MACs, exported by ``torch.onnx.export`` (TorchScript,
  opset 17), and a segmentation head (LR-ASPP MobileNetV3);
- a sample of ``timm`` mobile architectures;
- hand-written ONNX in the idioms of paddle2onnx, tf2onnx, YOLO heads and torch
  (``models/idioms.py``);
- every torch net gets real batch-norm statistics from photo crops (``data.photo_crops``), its
  batch-norm gains set at the edge of chaos (``_real_bn_stats``), and a few dead channels (max
  |w| of 1e-34 and 7e-10), as trained checkpoints carry.

``python -m models.corpus --out build/corpus [--only NAME ...]`` writes ``NAME.onnx`` and
``manifest.json`` (input shape, ImageNet normalization, source). Building needs the ``corpus``
extra (torchvision, timm).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from typing import Any, Callable

import numpy as np

from models import data, idioms

SIZE = 224
# name -> (package, constructor, input size, note)
CORPUS: dict[str, tuple[str, str, int, str]] = {
    "tv_mobilenet_v2": ("torchvision", "mobilenet_v2", 224, "torchvision classifier"),
    "tv_mobilenet_v3_small": ("torchvision", "mobilenet_v3_small", 224, "hard-swish, SE blocks"),
    "tv_mobilenet_v3_large": ("torchvision", "mobilenet_v3_large", 224, "hard-swish, SE blocks"),
    "tv_mnasnet0_5": ("torchvision", "mnasnet0_5", 224, "torchvision classifier"),
    "tv_shufflenet_v2_x0_5": ("torchvision", "shufflenet_v2_x0_5", 224, "channel shuffle"),
    "tv_squeezenet1_1": ("torchvision", "squeezenet1_1", 224, "ceil-mode max pooling"),
    "tv_efficientnet_b0": ("torchvision", "efficientnet_b0", 224, "SiLU, SE blocks"),
    "tv_regnet_x_400mf": ("torchvision", "regnet_x_400mf", 224, "grouped convolutions"),
    "tv_regnet_y_400mf": ("torchvision", "regnet_y_400mf", 224, "grouped convolutions, SE"),
    "tv_resnet18": ("torchvision", "resnet18", 224, "torchvision classifier"),
    "tv_lraspp_mobilenet_v3": ("torchvision.segmentation", "lraspp_mobilenet_v3_large", 224,
                               "segmentation head: bilinear Resize, sigmoid gate"),
    # the same architectures through torch.export (the dynamo exporter, onnxscript)
    "tv_mobilenet_v3_small_dynamo": ("torchvision", "mobilenet_v3_small", 224, "torch.export"),
    "tv_resnet18_dynamo": ("torchvision", "resnet18", 224, "torch.export"),
    "tv_shufflenet_v2_x0_5_dynamo": ("torchvision", "shufflenet_v2_x0_5", 224, "torch.export"),
    "timm_mobilenetv3_small_100": ("timm", "mobilenetv3_small_100", 224, "timm classifier"),
    "timm_efficientnet_lite0": ("timm", "efficientnet_lite0", 224, "ReLU6, no SE"),
    "timm_ghostnet_100": ("timm", "ghostnet_100", 224, "ghost modules: Slice, Concat"),
    "timm_fbnetc_100": ("timm", "fbnetc_100", 224, "timm classifier"),
    "timm_repvgg_a0": ("timm", "repvgg_a0", 224, "re-parameterizable blocks"),
    "timm_mobilevit_xxs": ("timm", "mobilevit_xxs", 256, "attention, unfold via Reshape"),
}

NAMES = list(CORPUS) + list(idioms.IDIOMS)  # + hand-written ONNX in exporters' idioms


def inputs(info: dict[str, Any], n: int, seed: int) -> np.ndarray:
    """``n`` raw inputs for a manifest entry: photo crops (0..255; the manifest's mean and std
    normalize them), normalized NHWC crops, or MFCC-like speech maps."""
    shape = info["input_shape"]
    kind = info.get("input", "photo")
    if kind == "photo":
        return data.photo_crops(n, shape[-1], seed=seed)
    if kind == "photo_nhwc":
        x = data.normalize(data.photo_crops(n, shape[1], seed=seed), data.IMAGENET_MEAN,
                           data.IMAGENET_STD)
        return np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    if kind == "speech":
        return np.ascontiguousarray(data.speech_features(n, seed=seed)[:, :, :shape[2],
                                                                       :shape[3]])
    raise ValueError(f"unknown input kind {kind!r}")


def _torchvision():
    """torchvision's registry wheel is a CUDA build whose compiled ops do not load beside the
    CPU torch; the architectures need only the two op schemas its meta registrations name."""
    import torch

    try:
        import torchvision
        return torchvision
    except RuntimeError:
        pass
    lib = torch.library.Library("torchvision", "DEF")
    lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _torchvision.lib = lib  # keep the definitions alive
    import torchvision
    return torchvision


def _construct(package: str, ctor: str):
    import torch

    torch.manual_seed(0)
    if package == "timm":
        _torchvision()
        import timm
        return timm.create_model(ctor, pretrained=False)
    tv = _torchvision()
    if package == "torchvision.segmentation":
        m = getattr(tv.models.segmentation, ctor)(weights=None, weights_backbone=None,
                                                   num_classes=4)
        return _OutOnly(m)
    return getattr(tv.models, ctor)(weights=None)


def _OutOnly(m):
    """Segmentation models return a dict: export its ``out`` tensor."""
    import torch

    class OutOnly(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return self.inner(x)["out"]
    return OutOnly(m)


def _bn_layers(module):
    import torch

    return [m for m in module.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]


def _estimate_bn(module, crops) -> None:
    """Running statistics from ``crops`` (train-mode passes, cumulative average)."""
    import torch

    for m in _bn_layers(module):
        m.reset_running_stats()
        m.momentum = None
    module.train()
    with torch.no_grad():
        for i in range(0, len(crops), 8):
            module(torch.from_numpy(crops[i:i + 8]))
    module.eval()


def perturbation_gain(module, crops) -> float:
    """How much a small input perturbation grows through the net (relative output change over
    relative input change): > 1 chaotic (quantization noise grows layer by layer), << 1
    ordered (the output forgets its input)."""
    import torch

    x = torch.from_numpy(crops[:8])
    gen = torch.Generator().manual_seed(0)
    eps = 1e-3
    with torch.no_grad():
        y = module(x)
        y2 = module(x + eps * x.std() * torch.randn(x.shape, generator=gen))
    return float((y2 - y).std() / y.std() / eps)


def _real_bn_stats(module, size: int, seed: int) -> float:
    """Batch-norm gamma drawn near 1 and beta near a shift b, then running statistics estimated
    from photo crops (normalized as ImageNet nets expect). A random net whose batch norms
    normalize every layer is chaotic (a 1e-3 input perturbation grows 30-70x through MNASNet:
    quantization noise would too); a positive shift keeps more units in their linear range, so b
    is bisected until ``perturbation_gain`` is about 1: the edge of chaos, where noise neither
    grows nor is forgotten, as in a trained net. Returns the gain reached."""
    import torch

    crops = data.normalize(data.photo_crops(32, size, seed=seed), data.IMAGENET_MEAN,
                           data.IMAGENET_STD)
    gen = torch.Generator().manual_seed(seed)
    bns = [m for m in _bn_layers(module) if m.affine]
    gammas = [torch.empty_like(m.weight).uniform_(0.6, 1.4, generator=gen) for m in bns]
    betas = [torch.empty_like(m.bias).normal_(0, 0.1, generator=gen) for m in bns]

    def at(shift: float) -> float:
        with torch.no_grad():
            for m, g, b in zip(bns, gammas, betas):
                m.weight.copy_(g)
                m.bias.copy_(b + shift)
        _estimate_bn(module, crops)
        return perturbation_gain(module, crops)

    lo, hi = 0.0, 3.0
    gain = at(lo)
    if not bns or gain <= 1.5:
        return gain
    for _ in range(8):
        mid = (lo + hi) / 2
        gain = at(mid)
        if 0.7 <= gain <= 1.5:
            return gain
        lo, hi = (mid, hi) if gain > 1.5 else (lo, mid)
    return at(hi)


def _dead_channels(module) -> list[str]:
    """Two channels of the first convolution with more than 8 outputs go (nearly) dead: max |w|
    of 1e-34 and 7e-10, as found in trained checkpoints."""
    import torch

    for name, m in module.named_modules():
        if isinstance(m, torch.nn.Conv2d) and m.out_channels > 8:
            with torch.no_grad():
                m.weight[1].mul_(1e-34 / m.weight[1].abs().max().clamp_min(1e-30))
                m.weight[2].mul_(7e-10 / m.weight[2].abs().max().clamp_min(1e-30))
            return [f"{name}[1]", f"{name}[2]"]
    return []


def build_one(name: str, out: str) -> dict[str, Any]:
    import torch

    package, ctor, size, note = CORPUS[name]
    module = _construct(package, ctor)
    gain = _real_bn_stats(module, size, seed=3)
    dead = _dead_channels(module)
    path = os.path.join(out, f"{name}.onnx")
    dynamo = name.endswith("_dynamo")
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:  # torch.export; its own opset, weights inline
            prog = torch.onnx.export(module, (torch.zeros(1, 3, size, size),), dynamo=True,
                                     input_names=["input"], output_names=["output"],
                                     external_data=False, verbose=False)
            prog.save(path + ".tmp")
        else:
            torch.onnx.export(module, (torch.zeros(1, 3, size, size),), path + ".tmp",
                              dynamo=False, opset_version=17, input_names=["input"],
                              output_names=["output"])
    os.replace(path + ".tmp", path)
    return {"file": f"{name}.onnx", "input_shape": [1, 3, size, size],
            "mean": list(data.IMAGENET_MEAN), "std": list(data.IMAGENET_STD),
            "source": f"{package}.{ctor}",
            "exporter": "torch.onnx.export(dynamo=True) (torch.export)" if dynamo else
                        "torch.onnx.export (TorchScript, opset 17)",
            "dead_channels": dead, "perturbation_gain": round(gain, 2), "note": note}


def build(out: str, only: list[str] | None = None, force: bool = False,
          on_error: Callable[[str, Exception], None] | None = None) -> dict[str, Any]:
    os.makedirs(out, exist_ok=True)
    manifest_path = os.path.join(out, "manifest.json")
    manifest = {}
    if os.path.exists(manifest_path):
        with open(manifest_path) as f:
            manifest = json.load(f)
    for name in NAMES:
        if only and name not in only:
            continue
        if not force and name in manifest and os.path.exists(os.path.join(out, f"{name}.onnx")):
            continue
        try:
            manifest[name] = build_one(name, out) if name in CORPUS else \
                idioms.build_one(name, out)
        except Exception as e:  # a model the exporter cannot take is a finding, not a crash
            if on_error is None:
                raise
            on_error(name, e)
    with open(manifest_path, "w") as f:
        json.dump(dict(sorted(manifest.items())), f, indent=2)
    return manifest


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="build/corpus")
    p.add_argument("--only", nargs="*")
    p.add_argument("--force", action="store_true")
    a = p.parse_args(argv)
    np.seterr(all="ignore")
    manifest = build(a.out, a.only, a.force,
                     on_error=lambda n, e: print(f"{n}: export failed: {type(e).__name__}: {e}"))
    for name, info in manifest.items():
        print(f"{name:28s} {os.path.join(a.out, info['file'])}  {info['source']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
