"""The model zoo as PyTorch modules, built offline from seeded initializers.

- ``mobilenet_v2``: a small MobileNetV2 (width 0.35, ReLU6, inverted residuals, 9 blocks),
  96x96 RGB, trained for a few hundred steps on a 10-class task built from the sample photos
  (``data.photo_position_task``): a trained net, since random BatchNorm nets are chaotic (60 dB of
  input noise came out as 17 dB at the logits) and no quantizer could be judged on one;
- ``resnet8``: the MLPerf Tiny image-classification ResNet-8, 32x32 RGB, 10 classes;
- ``ds_cnn``: the MLPerf Tiny keyword-spotting DS-CNN, 49x10 features, 12 classes;
- ``transformer_block``: one pre-LN encoder block (4 heads, GELU MLP), 16 tokens x 64;
- ``digits_cnn``: a small CNN trained in seconds on scikit-learn's digits.

Batch-norm statistics are not left at their defaults: every net is run in training mode over
representative inputs (photo crops, speech-like maps) so running mean/var are real, then gamma
and beta are perturbed, so batch-norm folding is tested on non-trivial values.

The same zoo on every machine: training and batch-norm statistics run float kernels whose
results depend on the CPU (BLAS and oneDNN pick different kernels on AVX2 and AVX-512 machines;
300 Adam steps amplify last-bit differences into a different net, 2 dB apart in int8 SQNR).
So the weights are made once by the factories below (``python -m models.build --retrain``) and
kept, versioned, in ``models/weights/NAME.npz``; ``models/weights/digests.json`` holds the
SHA-256 of each file's arrays, checked on every load. A build loads those weights into the
architecture (``pinned``) and exports it: the same ONNX bytes on every machine.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn

from models import data

WEIGHTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "weights")
DIGESTS = os.path.join(WEIGHTS_DIR, "digests.json")


def _make_divisible(v: float, d: int = 8) -> int:
    n = max(d, int(v + d / 2) // d * d)
    return n + d if n < 0.9 * v else n


class _ConvBN(nn.Sequential):
    def __init__(self, cin, cout, k=3, s=1, groups=1, act=True):
        layers = [nn.Conv2d(cin, cout, k, s, k // 2, groups=groups, bias=False),
                  nn.BatchNorm2d(cout)]
        if act:
            layers.append(nn.ReLU6())
        super().__init__(*layers)


class _InvertedResidual(nn.Module):
    def __init__(self, cin, cout, stride, expand):
        super().__init__()
        hidden = cin * expand
        layers = [] if expand == 1 else [_ConvBN(cin, hidden, 1)]
        layers += [_ConvBN(hidden, hidden, 3, stride, groups=hidden),
                   _ConvBN(hidden, cout, 1, act=False)]
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        y = self.block(x)
        return x + y if self.residual else y


class MobileNetV2(nn.Module):
    # (expansion, channels, repeats, stride): the first five stages of MobileNetV2
    CONFIG = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 2, 2), (6, 64, 2, 2), (6, 96, 1, 1)]

    def __init__(self, width=0.35, num_classes=10, last=320):
        super().__init__()
        cin = _make_divisible(32 * width)
        layers: list[nn.Module] = [_ConvBN(3, cin, 3, 2)]
        for t, c, n, s in self.CONFIG:
            cout = _make_divisible(c * width)
            for i in range(n):
                layers.append(_InvertedResidual(cin, cout, s if i == 0 else 1, t))
                cin = cout
        layers.append(_ConvBN(cin, last, 1))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(last, num_classes)

    def forward(self, x):
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


class _ResBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1)
        self.b1 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1)
        self.b2 = nn.BatchNorm2d(cout)
        self.short = None if stride == 1 and cin == cout else nn.Conv2d(cin, cout, 1, stride)

    def forward(self, x):
        y = self.b2(self.c2(torch.relu(self.b1(self.c1(x)))))
        return torch.relu(y + (x if self.short is None else self.short(x)))


class ResNet8(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 1, 1), nn.BatchNorm2d(16), nn.ReLU())
        self.stacks = nn.Sequential(_ResBlock(16, 16, 1), _ResBlock(16, 32, 2),
                                    _ResBlock(32, 64, 2))
        self.pool = nn.AvgPool2d(8)
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.stacks(self.stem(x))), 1))


class DSCNN(nn.Module):
    def __init__(self, num_classes=12, width=64):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(1, width, (10, 4), (2, 2), (5, 1)),
                                   nn.BatchNorm2d(width), nn.ReLU()]
        for _ in range(4):
            layers += [nn.Conv2d(width, width, 3, 1, 1, groups=width), nn.BatchNorm2d(width),
                       nn.ReLU(), nn.Conv2d(width, width, 1), nn.BatchNorm2d(width), nn.ReLU()]
        self.features = nn.Sequential(*layers)
        self.pool = nn.AvgPool2d((25, 5))
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.features(x)), 1))


class TransformerBlock(nn.Module):
    def __init__(self, dim=64, heads=4, tokens=16, mlp=128, num_classes=10):
        super().__init__()
        self.dim, self.heads, self.tokens = dim, heads, tokens
        self.ln1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.ln2 = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, mlp)
        self.fc2 = nn.Linear(mlp, dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x):
        b, t, d, h = 1, self.tokens, self.dim, self.heads
        q, k, v = self.qkv(self.ln1(x)).reshape(b, t, 3, h, d // h).permute(2, 0, 3, 1, 4)
        att = torch.softmax((q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(d // h)), dim=-1)
        y = (att @ v).transpose(1, 2).reshape(b, t, d)
        x = x + self.proj(y)
        x = x + self.fc2(nn.functional.gelu(self.fc1(self.ln2(x))))
        return self.head(x.mean(dim=1))


class DigitsCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, 1, 1), nn.BatchNorm2d(16), nn.ReLU(),
            nn.Conv2d(16, 32, 3, 1, 1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 32, 3, 1, 1), nn.BatchNorm2d(32), nn.ReLU(), nn.AdaptiveAvgPool2d(1))
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        return self.fc(torch.flatten(self.features(x), 1))


def _set_bn_stats(model: nn.Module, batches: list[np.ndarray], seed: int) -> nn.Module:
    """Real running statistics from representative data, then perturbed gamma/beta."""
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the batches
    model.train()
    with torch.no_grad():
        for b in batches:
            model(torch.from_numpy(b))
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(torch.empty_like(m.weight).uniform_(0.6, 1.4, generator=gen))
                m.bias.copy_(torch.empty_like(m.bias).normal_(0, 0.1, generator=gen))
    return model.eval()


def _seeded(cls, seed, *args, **kw):
    torch.manual_seed(seed)
    return cls(*args, **kw)


class _Deterministic:
    """Single-threaded, deterministic torch for training inside a build."""

    def __enter__(self):
        self.threads = torch.get_num_threads()
        torch.set_num_threads(1)
        torch.use_deterministic_algorithms(True)

    def __exit__(self, *exc):
        torch.set_num_threads(self.threads)
        torch.use_deterministic_algorithms(False)


def mobilenet_v2(size: int = 96, steps: int = 300) -> nn.Module:
    """Trained with Adam (lr 2e-3, batch 32) on fresh crops each step; about 1-2 minutes."""
    with _Deterministic():
        m = _seeded(MobileNetV2, 1)
        opt = torch.optim.Adam(m.parameters(), lr=2e-3)
        rng = np.random.default_rng(0)
        m.train()
        for _ in range(steps):
            x, y = data.photo_position_task(32, size, rng)
            x = data.normalize(x, data.IMAGENET_MEAN, data.IMAGENET_STD)
            opt.zero_grad()
            nn.functional.cross_entropy(m(torch.from_numpy(x)), torch.from_numpy(y)).backward()
            opt.step()
    return m.eval()


def resnet8() -> nn.Module:
    m = _seeded(ResNet8, 2)
    crops = data.normalize(data.photo_crops(64, 32, seed=12), data.IMAGENET_MEAN,
                           data.IMAGENET_STD)
    return _set_bn_stats(m, [crops[i:i + 16] for i in range(0, 64, 16)], seed=2)


def ds_cnn() -> nn.Module:
    m = _seeded(DSCNN, 3)
    feats = data.speech_features(64, seed=13)
    return _set_bn_stats(m, [feats[i:i + 16] for i in range(0, 64, 16)], seed=3)


def transformer_block() -> nn.Module:
    m = _seeded(TransformerBlock, 4)
    gen = torch.Generator().manual_seed(4)
    with torch.no_grad():  # non-trivial LayerNorm affines, with a few outlier channels
        for ln in (m.ln1, m.ln2):
            ln.weight.copy_(torch.empty(64).uniform_(0.5, 1.5, generator=gen))
            ln.weight[:3] *= 6
            ln.bias.copy_(torch.empty(64).normal_(0, 0.2, generator=gen))
    return m.eval()


def digits_cnn(epochs: int = 30) -> nn.Module:
    """Trained on the first 1,437 digits (normalized with DIGITS_MEAN/STD), deterministic."""
    torch.manual_seed(5)
    with _Deterministic():
        xtr, ytr, _, _ = data.digits()
        x = torch.from_numpy(data.normalize(xtr, data.DIGITS_MEAN, data.DIGITS_STD))
        y = torch.from_numpy(ytr)
        model = DigitsCNN()
        opt = torch.optim.Adam(model.parameters(), lr=3e-3)
        gen = torch.Generator().manual_seed(5)
        model.train()
        for _ in range(epochs):
            perm = torch.randperm(len(x), generator=gen)
            for i in range(0, len(x), 64):
                idx = perm[i:i + 64]
                opt.zero_grad()
                nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
                opt.step()
    return model.eval()


@dataclass(frozen=True)
class ZooModel:
    factory: Callable[[], nn.Module]  # trains / derives the weights (``--retrain`` only)
    architecture: Callable[[], nn.Module]  # the bare module the kept weights load into
    input_shape: tuple[int, ...]
    mean: tuple[float, ...] | None
    std: tuple[float, ...] | None
    description: str


ZOO = {
    "mobilenet_v2": ZooModel(mobilenet_v2, MobileNetV2, (1, 3, 96, 96), data.IMAGENET_MEAN,
                             data.IMAGENET_STD,
                             "MobileNetV2-0.35 (9 blocks), 96x96 RGB, trained on photo crops"),
    "resnet8": ZooModel(resnet8, ResNet8, (1, 3, 32, 32), data.IMAGENET_MEAN, data.IMAGENET_STD,
                        "MLPerf Tiny ResNet-8, 32x32 RGB"),
    "ds_cnn": ZooModel(ds_cnn, DSCNN, (1, 1, 49, 10), None, None,
                       "MLPerf Tiny DS-CNN keyword spotting"),
    "transformer_block": ZooModel(transformer_block, TransformerBlock, (1, 16, 64), None, None,
                                  "pre-LN transformer encoder block, 16 tokens x 64"),
    "digits_cnn": ZooModel(digits_cnn, DigitsCNN, (1, 1, 8, 8), data.DIGITS_MEAN,
                           data.DIGITS_STD, "CNN trained on scikit-learn digits"),
}


# --- kept weights ---------------------------------------------------------------------------

def weights_digest(arrays: dict[str, np.ndarray]) -> str:
    """SHA-256 over every array's name, dtype, shape and bytes, in name order."""
    h = hashlib.sha256()
    for k in sorted(arrays):
        a = np.ascontiguousarray(arrays[k])
        h.update(f"{k}|{a.dtype.str}|{a.shape}\n".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def recorded_digests() -> dict[str, str]:
    if not os.path.exists(DIGESTS):
        return {}
    with open(DIGESTS) as f:
        return json.load(f)


def save_weights(name: str, module: nn.Module) -> str:
    """Keep ``module``'s state as models/weights/NAME.npz and record its digest."""
    arrays = {k: v.detach().cpu().numpy() for k, v in module.state_dict().items()}
    os.makedirs(WEIGHTS_DIR, exist_ok=True)
    np.savez_compressed(os.path.join(WEIGHTS_DIR, f"{name}.npz"), **arrays)
    digests = recorded_digests()
    digests[name] = weights_digest(arrays)
    with open(DIGESTS, "w") as f:
        json.dump(dict(sorted(digests.items())), f, indent=2)
        f.write("\n")
    return digests[name]


def load_weights(name: str) -> dict[str, np.ndarray]:
    path = os.path.join(WEIGHTS_DIR, f"{name}.npz")
    want = recorded_digests().get(name)
    if want is None or not os.path.exists(path):
        raise RuntimeError(f"{path} or its digest is missing: run python -m models.build "
                           f"--retrain --only {name}")
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    got = weights_digest(arrays)
    if got != want:
        raise RuntimeError(f"{path}: weights digest {got[:16]}... does not match the recorded "
                           f"{want[:16]}... (models/weights/digests.json)")
    return arrays


def pinned(name: str) -> nn.Module:
    """The zoo model ``name`` with its kept weights: identical on every machine."""
    arrays = load_weights(name)
    torch.manual_seed(0)  # the initial values are all overwritten below
    m = ZOO[name].architecture()
    state = m.state_dict()
    if set(state) != set(arrays):
        raise RuntimeError(f"{name}: kept weights do not fit the architecture "
                           f"(missing {sorted(set(state) - set(arrays))[:3]}, extra "
                           f"{sorted(set(arrays) - set(state))[:3]})")
    m.load_state_dict({k: torch.from_numpy(arrays[k]) for k in state})
    return m.eval()
