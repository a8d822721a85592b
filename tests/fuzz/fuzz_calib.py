"""Fuzz the calibration-data loader: ``.npy`` / ``.npz`` bytes -> ``load_calibration`` -> every
sample, for a one-input and a two-input model; and image bytes (PNG, JPEG, BMP) in a folder ->
``load_calibration`` -> Pillow -> every sample. The first byte picks the model (bit 0), ``.npz``
over ``.npy`` (bit 1) and an image (bit 2). A structure-aware mutator (``mutate``) edits one
``.npz`` member (its header or its data) and re-zips it with valid CRCs, so inputs get past the
zip layer; the rest is libFuzzer's byte mutation. See ``tests/fuzz/harness.py``."""

from __future__ import annotations

import io
import os
import random
import shutil
import zipfile

import atheris
import numpy as np

with atheris.instrument_imports(include=["edgeq"]):
    from edgeq.ir.graph import DType, Graph, TensorType
    from edgeq.quant.calibrate import load_calibration

from tests.fuzz import harness

TMP = harness.scratch("calib")


def _graph(names: list[str]) -> Graph:
    g = Graph("fuzz")
    for n in names:
        g.add_input(n, TensorType(DType.FLOAT32, (1, 3, 4, 4)))
    return g


GRAPHS = [_graph(["x"]), _graph(["a", "b"])]


IMAGES = os.path.join(TMP, "images")
IMAGE_NAMES = ("a.png", "a.jpg", "a.bmp")


def one_input(data: bytes) -> None:
    if not data:
        return
    graph = GRAPHS[data[0] & 1]
    if data[0] & 4:
        shutil.rmtree(IMAGES, ignore_errors=True)
        os.makedirs(IMAGES)
        path = IMAGES
        with open(os.path.join(IMAGES, IMAGE_NAMES[(data[0] >> 3) % 3]), "wb") as f:
            f.write(data[1:])
        graph = GRAPHS[0]
    else:
        path = os.path.join(TMP, "calib.npz" if data[0] & 2 else "calib.npy")
        with open(path, "wb") as f:
            f.write(data[1:])
    calib = load_calibration(path, graph, limit=None)
    for _ in calib:
        pass


def _npy(a: np.ndarray) -> bytes:
    b = io.BytesIO()
    np.save(b, a)
    return b.getvalue()


def _npz(compressed: bool = False, **arrays: np.ndarray) -> bytes:
    b = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(b, **arrays)
    return b.getvalue()


def _image(fmt: str, mode: str = "RGB", size: tuple[int, int] = (6, 5)) -> bytes:
    from PIL import Image

    b = io.BytesIO()
    px = np.random.default_rng(0).integers(0, 255, (size[1], size[0], 3), np.uint8)
    Image.fromarray(px).convert(mode).save(b, fmt)
    return b.getvalue()


def _png_declaring(width: int, height: int) -> bytes:
    """A PNG whose header declares ``width`` x ``height`` pixels over a few bytes of data."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(
            ">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(
        b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def mutate(data: bytes, max_size: int, seed: int) -> bytes:
    """libFuzzer's custom mutator: for an ``.npz`` input, one member's bytes mutated and the
    archive re-zipped with valid CRCs (half the time); otherwise byte mutation."""
    rng = random.Random(seed)
    if not data or not data[0] & 2 or data[0] & 4 or rng.random() < 0.5:
        return atheris.Mutate(data, max_size)
    try:
        with zipfile.ZipFile(io.BytesIO(data[1:])) as z:
            infos = z.infolist()
            if not infos or sum(i.file_size for i in infos) > 8 << 20:
                return atheris.Mutate(data, max_size)
            members = {i.filename: z.read(i) for i in infos}
    except Exception:  # a damaged archive: byte mutation takes it from here
        return atheris.Mutate(data, max_size)
    name = rng.choice(sorted(members))
    body = members[name]
    cut = min(len(body), 128)  # the .npy header, or the data after it
    if rng.random() < 0.5:
        members[name] = atheris.Mutate(body[:cut], cut + 32) + body[cut:]
    else:
        members[name] = body[:cut] + atheris.Mutate(body[cut:], max(len(body) - cut, 1) * 2)
    if rng.random() < 0.1:
        members[name.replace(".npy", "_x.npy")] = members[name]
    b = io.BytesIO()
    with zipfile.ZipFile(b, "w", rng.choice([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])) as z:
        for k, v in members.items():
            z.writestr(k, v)
    out = data[:1] + b.getvalue()
    return out if len(out) <= max_size else atheris.Mutate(data, max_size)


def seeds() -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 4, 4)).astype(np.float32)
    return {
        "npy_one": b"\x00" + _npy(x),
        "npy_int": b"\x00" + _npy((x * 10).astype(np.int16)),
        "npy_unbatched": b"\x00" + _npy(x[0]),
        "npz_one": b"\x02" + _npz(x=x),
        "npz_two": b"\x03" + _npz(a=x, b=x[:1]),
        "npz_two_compressed": b"\x03" + _npz(True, a=x, b=x),
        "png": b"\x04" + _image("PNG"),
        "png_gray": b"\x04" + _image("PNG", "L"),
        "jpeg": bytes([4 | 8]) + _image("JPEG"),
        "bmp": bytes([4 | 16]) + _image("BMP"),
        "png_bomb": b"\x04" + _png_declaring(30000, 30000),
    }


if __name__ == "__main__":
    harness.main(one_input, seeds, custom_mutator=mutate)
