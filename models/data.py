"""Offline data: scikit-learn's digits (1,797 labelled 8x8 images) and crops of its two sample
photos. Nothing is downloaded; both ship inside the scikit-learn wheel."""

from __future__ import annotations

import numpy as np

IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)
DIGITS_MEAN, DIGITS_STD = (8.0,), (8.0,)
DIGITS_TRAIN = 1437  # first 80% train, the rest is held out (sklearn's fixed order)


def digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Raw pixels 0..16 as float32 (N, 1, 8, 8); labels int64. Train / held-out split."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = d.images.astype(np.float32)[:, None]
    y = d.target.astype(np.int64)
    return x[:DIGITS_TRAIN], y[:DIGITS_TRAIN], x[DIGITS_TRAIN:], y[DIGITS_TRAIN:]


def photo_crops(n: int, size: int, seed: int = 0) -> np.ndarray:
    """``n`` random square crops of the two sample photos, resized to ``size``, raw RGB 0..255,
    float32 NCHW. Crop sides are drawn between 1/4 and the whole short side of the photo."""
    from PIL import Image
    from sklearn.datasets import load_sample_images

    photos = load_sample_images().images
    rng = np.random.default_rng(seed)
    out = np.empty((n, 3, size, size), np.float32)
    for i in range(n):
        img = photos[i % len(photos)]
        h, w = img.shape[:2]
        side = int(rng.integers(min(h, w) // 4, min(h, w) + 1))
        top = int(rng.integers(0, h - side + 1))
        left = int(rng.integers(0, w - side + 1))
        crop = Image.fromarray(img[top:top + side, left:left + side])
        crop = crop.resize((size, size), Image.BILINEAR)
        out[i] = np.asarray(crop, np.float32).transpose(2, 0, 1)
    return out


def photo_position_task(n: int, size: int, rng: np.random.Generator
                        ) -> tuple[np.ndarray, np.ndarray]:
    """A real 10-class vision task on the sample photos: a random crop (1/4 to 1/2 of the short
    side) resized to ``size``; label = photo index * 5 + which fifth of the photo's width the
    crop's center lies in. Raw RGB float32 NCHW and int64 labels."""
    from PIL import Image
    from sklearn.datasets import load_sample_images

    photos = load_sample_images().images
    x = np.empty((n, 3, size, size), np.float32)
    y = np.empty(n, np.int64)
    for i in range(n):
        p = int(rng.integers(0, len(photos)))
        img = photos[p]
        h, w = img.shape[:2]
        side = int(rng.integers(min(h, w) // 4, min(h, w) // 2 + 1))
        top = int(rng.integers(0, h - side + 1))
        left = int(rng.integers(0, w - side + 1))
        y[i] = p * 5 + min(int((left + side / 2) / w * 5), 4)
        crop = Image.fromarray(img[top:top + side, left:left + side])
        x[i] = np.asarray(crop.resize((size, size), Image.BILINEAR), np.float32).transpose(2, 0, 1)
    return x, y


def normalize(x: np.ndarray, mean, std) -> np.ndarray:
    m = np.asarray(mean, np.float32).reshape(1, -1, 1, 1)
    s = np.asarray(std, np.float32).reshape(1, -1, 1, 1)
    return ((x - m) / s).astype(np.float32)


def speech_features(n: int, seed: int = 0) -> np.ndarray:
    """Stand-in keyword-spotting input (N, 1, 49, 10): smooth random MFCC-like maps (no audio data
    ships in our packages); used only to set batch-norm statistics and as test inputs."""
    rng = np.random.default_rng(seed)
    base = rng.normal(0, 1, (n, 1, 49, 10)).astype(np.float32)
    kernel = np.array([0.25, 0.5, 0.25], np.float32)
    for ax in (2, 3):
        base = np.apply_along_axis(lambda r: np.convolve(r, kernel, mode="same"), ax, base)
    return (base * 2).astype(np.float32)
