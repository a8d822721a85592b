"""Fuzz the calibration-data loader: ``.npy`` / ``.npz`` bytes -> ``load_calibration`` -> every
sample, for a one-input and a two-input model. See ``tests/fuzz/harness.py``."""

from __future__ import annotations

import io
import os
import tempfile

import atheris
import numpy as np

with atheris.instrument_imports(include=["edgeq"]):
    from edgeq.ir.graph import DType, Graph, TensorType
    from edgeq.quant.calibrate import load_calibration

from tests.fuzz import harness

TMP = tempfile.mkdtemp(prefix="edgeq-fuzz-calib-")


def _graph(names: list[str]) -> Graph:
    g = Graph("fuzz")
    for n in names:
        g.add_input(n, TensorType(DType.FLOAT32, (1, 3, 4, 4)))
    return g


GRAPHS = [_graph(["x"]), _graph(["a", "b"])]


def one_input(data: bytes) -> None:
    if not data:
        return
    graph = GRAPHS[data[0] & 1]
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
    }


if __name__ == "__main__":
    harness.main(one_input, seeds)
