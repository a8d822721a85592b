"""Calibration: stream samples through the float reference and collect one histogram per value.

Data comes as a ``.npy`` array (samples on axis 0; memory-mapped, so it is never loaded whole), an
``.npz`` (one array per model input, by name), or a folder of PNG/JPEG images (sorted by name,
center-cropped to the input's aspect ratio, resized, raw 0-255 pixels: fold the input
normalization into the model to use them). Every problem is reported as an ``EdgeqError`` that
names the file, tensor or sample.
"""

from __future__ import annotations

import io
import math
import os
import struct
import sys
import time
import tokenize
import warnings
import zipfile
import zlib
from typing import Iterator, Sequence

import numpy as np

from edgeq.ir.graph import EdgeqError, Graph
from edgeq.ir.limits import max_tensor_bytes
from edgeq.serialize import read_npy_header
from edgeq.ops import has
from edgeq.quant.gptq import second_moment
from edgeq.quant.observers import StreamingHistogram
from edgeq.runtime.reference import run_graph

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp")


class CalibrationData:
    """Samples for a graph's inputs: ``len()`` and iteration yield ``{input name: array}``."""

    def __init__(self, graph: Graph, arrays: dict[str, np.ndarray] | None = None,
                 images: Sequence[str] | None = None, limit: int | None = None,
                 source: str = "calibration data"):
        self.graph = graph
        self.arrays = arrays
        self.images = list(images) if images is not None else None
        self.source = source
        if not graph.inputs:
            raise EdgeqError(f"{source}: the model has no inputs to calibrate")
        if limit is not None and limit < 1:
            raise EdgeqError(f"{source}: {limit} calibration samples requested; at least 1 "
                             f"is needed")
        missing = [v.name for v in graph.inputs if arrays is not None and v.name not in arrays]
        if missing:
            raise EdgeqError(f"{source}: no array for input(s) {missing}")
        if arrays is not None and any(np.ndim(a) == 0 for a in arrays.values()):
            raise EdgeqError(f"{source}: expected samples on the first axis, got a scalar")
        available = len(self.images) if self.images is not None else \
            min(len(a) for a in arrays.values())  # type: ignore[union-attr]
        if available == 0:
            raise EdgeqError(f"{source}: contains no samples")
        if limit is not None and limit > available:
            raise EdgeqError(f"{source}: {limit} calibration samples requested but only "
                             f"{available} available")
        self.n = limit if limit is not None else available

    def __len__(self) -> int:
        return self.n

    def head(self, n: int) -> "CalibrationData":
        """The first ``n`` samples (same source, no copy)."""
        import copy

        sub = copy.copy(self)
        sub.n = min(n, self.n)
        return sub

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        for i in range(self.n):
            yield self.sample(i)

    def sample(self, i: int) -> dict[str, np.ndarray]:
        if self.images is not None:
            v = self.graph.inputs[0]
            arr = _read_image(self.images[i], v.shape)
            _check_finite(arr, f"{self.images[i]}")
            return {v.name: arr}
        out = {}
        for v in self.graph.inputs:
            a = np.asarray(self.arrays[v.name][i])  # type: ignore[index]
            a = a.reshape(v.shape) if v.shape and v.shape[0] == 1 and a.shape == v.shape[1:] \
                else a
            if a.shape != v.shape:
                raise EdgeqError(f"{self.source}: sample {i} of input '{v.name}' has shape "
                                 f"{list(a.shape)}, expected {list(v.shape)}")
            a = a.astype(v.dtype.numpy)
            _check_finite(a, f"{self.source}: sample {i} of input '{v.name}'")
            out[v.name] = a
        return out


def _check_finite(a: np.ndarray, what: str) -> None:
    if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
        raise EdgeqError(f"{what} contains NaN or Inf")


def _check_array(a: np.ndarray, v, source: str) -> np.ndarray:
    if a.dtype.kind not in "fiub":
        raise EdgeqError(f"{source}: dtype {a.dtype} is not numeric (input '{v.name}' is "
                         f"{v.dtype.value})")
    if v.shape and v.shape[0] == 1 and a.shape[1:] == v.shape[1:]:
        return a
    if a.shape[1:] == v.shape:
        return a
    raise EdgeqError(f"{source}: array of shape {list(a.shape)} does not fit input '{v.name}' "
                     f"{list(v.shape)}; expected (N, {', '.join(map(str, v.shape[1:]))})")


NPY_MAGIC, ZIP_MAGICS = b"\x93NUMPY", (b"PK\x03\x04", b"PK\x05\x06")
# errors a damaged .npy/.npz raises while being read: bad zip structure or CRC, bad deflate
# data, a short file, a garbled header (ValueError, SyntaxError from its literal)
_READ_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, SyntaxError,
                tokenize.TokenError, NotImplementedError, RuntimeError)


def _load_npy(path: str) -> np.ndarray:
    """An ``.npy`` file, memory-mapped (samples are read when used) after its header checks."""
    try:
        with open(path, "rb") as f:
            read_npy_header(f, os.fstat(f.fileno()).st_size, path)
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except EdgeqError:
        raise
    except _READ_ERRORS as e:
        raise EdgeqError(f"{path}: not a readable .npy file ({type(e).__name__}: {e})") from None


def _npz_reader(z: zipfile.ZipFile, path: str):
    """Reads one array of an ``.npz`` (its member ``NAME.npy``): declared size checked against
    EDGEQ_MAX_TENSOR_BYTES and the header against the declared size before reading; the
    member's CRC is checked by reading it to its end."""
    cap = max_tensor_bytes()

    def read(key: str) -> np.ndarray:
        what = f"{path}: array '{key}'"
        info = z.getinfo(key + ".npy")
        if info.file_size > cap:
            raise EdgeqError(f"{what} declares {info.file_size:,} bytes, above the limit of "
                             f"{cap:,} (EDGEQ_MAX_TENSOR_BYTES)")
        try:
            with z.open(info) as f:
                shape, fortran, dtype = read_npy_header(f, info.file_size, what)
                need = math.prod(shape) * dtype.itemsize
                data = f.read(need)
                if len(data) != need or f.read(1):  # reading to the end checks the CRC
                    raise EdgeqError(f"{what} is truncated")
        except EdgeqError:
            raise
        except _READ_ERRORS as e:
            raise EdgeqError(f"{what} cannot be read ({type(e).__name__}: {e})") from None
        return np.frombuffer(data, dtype).reshape(shape, order="F" if fortran else "C")
    return read


def _load_npz(path: str, graph: Graph) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` that ``graph``'s inputs need (no other member is read)."""
    try:
        z = zipfile.ZipFile(path)
    except _READ_ERRORS as e:
        raise EdgeqError(f"{path}: not a readable .npz file ({type(e).__name__}: {e})") from None
    with z:
        keys = sorted(i.filename[:-4] for i in z.infolist() if i.filename.endswith(".npy"))
        read = _npz_reader(z, path)
        if len(keys) == 1 and len(graph.inputs) == 1:
            return {graph.inputs[0].name: _check_array(read(keys[0]), graph.inputs[0], path)}
        missing = [v.name for v in graph.inputs if v.name not in keys]
        if missing:
            raise EdgeqError(f"{path}: no array for input(s) {missing} (has {keys})")
        return {v.name: _check_array(read(v.name), v, path) for v in graph.inputs}


def load_calibration(path: str, graph: Graph, limit: int | None = None) -> CalibrationData:
    if not os.path.exists(path):
        raise EdgeqError(f"{path}: no such file or folder")
    if not graph.inputs:
        raise EdgeqError(f"{path}: the model has no inputs to calibrate")
    if os.path.isdir(path):
        files = sorted(os.path.join(path, f) for f in os.listdir(path)
                       if f.lower().endswith(IMAGE_EXTS))
        if not files:
            raise EdgeqError(f"{path}: folder has no images ({', '.join(IMAGE_EXTS)})")
        if len(graph.inputs) != 1 or len(graph.inputs[0].shape) != 4 or \
                graph.inputs[0].shape[1] not in (1, 3):
            raise EdgeqError(f"{path}: an image folder needs a model with one NCHW input of "
                             f"1 or 3 channels; this model's inputs are "
                             f"{[(v.name, list(v.shape)) for v in graph.inputs]}")
        return CalibrationData(graph, images=files, limit=limit, source=path)
    try:
        with open(path, "rb") as f:
            magic = f.read(6)
    except OSError as e:
        raise EdgeqError(f"{path}: cannot be read ({e.strerror})") from None
    if magic.startswith(ZIP_MAGICS):
        arrays = _load_npz(path, graph)
    elif magic == NPY_MAGIC:
        if len(graph.inputs) != 1:
            raise EdgeqError(f"{path}: the model has {len(graph.inputs)} inputs; give an .npz "
                             f"with one array per input name")
        arrays = {graph.inputs[0].name: _check_array(_load_npy(path), graph.inputs[0], path)}
    else:
        raise EdgeqError(f"{path}: not a readable .npy/.npz file (no numpy or zip header)")
    if any(a.ndim == 0 for a in arrays.values()):
        raise EdgeqError(f"{path}: expected samples on the first axis, got a scalar")
    return CalibrationData(graph, arrays=arrays, limit=limit, source=path)


def max_image_pixels() -> int:
    """Pillow's decompression-bomb limit (``Image.MAX_IMAGE_PIXELS``); its default when a
    program has switched it off: the check is never disabled for calibration images."""
    from PIL import Image

    return int(Image.MAX_IMAGE_PIXELS or DEFAULT_MAX_IMAGE_PIXELS)


DEFAULT_MAX_IMAGE_PIXELS = 1024 * 1024 * 1024 // 4 // 3  # Pillow's default: 89,478,485


def _read_capped(path: str) -> bytes:
    size, cap = os.path.getsize(path), max_tensor_bytes()
    if size > cap:
        raise EdgeqError(f"{path}: image file of {size:,} bytes is above the limit of {cap:,} "
                         f"(EDGEQ_MAX_TENSOR_BYTES)")
    with open(path, "rb") as f:
        return f.read()


def _read_image(path: str, shape: tuple[int, ...]) -> np.ndarray:
    try:
        from PIL import Image
    except ImportError:
        raise EdgeqError("reading images needs Pillow (pip install 'edgeq[data]')") from None
    _, c, h, w = shape
    cap = max_image_pixels()
    try:
        with warnings.catch_warnings():
            # Pillow warns above MAX_IMAGE_PIXELS and refuses above twice that: both refuse
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            # from memory: Pillow reads a chunk of the length the file declares, and a read
            # from memory never allocates beyond the file
            with Image.open(io.BytesIO(_read_capped(path))) as f:  # parses the header only
                iw, ih = f.size
                if iw * ih > cap:
                    raise EdgeqError(f"{path}: image declares {iw}x{ih} pixels, above the "
                                     f"limit of {cap:,} (a decompression bomb?)")
                if iw < 1 or ih < 1:
                    raise EdgeqError(f"{path}: image has no pixels ({iw}x{ih})")
                im = f.convert("RGB" if c == 3 else "L")
            target = w / h
            if iw / ih > target:  # too wide: crop width
                nw = max(1, int(round(ih * target)))
                box = ((iw - nw) // 2, 0, (iw - nw) // 2 + nw, ih)
            else:
                nh = max(1, int(round(iw / target)))
                box = (0, (ih - nh) // 2, iw, (ih - nh) // 2 + nh)
            im = im.crop(box).resize((w, h), Image.Resampling.BILINEAR)
            arr = np.asarray(im, np.float32)
    except EdgeqError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise EdgeqError(f"{path}: image refused as a decompression bomb ({e})") from None
    except (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error,
            IndexError, TypeError, KeyError) as e:  # Pillow's errors for damaged files
        raise EdgeqError(f"{path}: cannot read image ({type(e).__name__}: {e})") from None
    arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
    return arr[None].astype(np.float32)


class Progress:
    """A one-line progress bar on stderr, shown only on a terminal (or when forced)."""

    def __init__(self, total: int, label: str, enabled: bool | None = None):
        self.total, self.label = total, label
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.t0 = time.perf_counter()

    def update(self, done: int) -> None:
        if not self.enabled:
            return
        frac = done / max(self.total, 1)
        bar = "#" * int(30 * frac)
        el = time.perf_counter() - self.t0
        sys.stderr.write(f"\r{self.label} [{bar:<30}] {done}/{self.total} {el:.1f}s")
        if done >= self.total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def check_weights(graph: Graph) -> None:
    for v in graph.consts():
        if v.const.dtype.kind == "f" and not np.all(np.isfinite(v.const)):
            raise EdgeqError(f"weight tensor '{v.name}' contains NaN or Inf")


def calibrate(graph: Graph, data: CalibrationData, progress: bool | None = None,
              moments: dict[str, np.ndarray] | None = None) -> dict[str, StreamingHistogram]:
    """One histogram per float value (graph inputs and node outputs), streamed sample by
    sample: memory is bounded by the histograms and one sample's activations. With a
    ``moments`` dict, also accumulates each weighted layer's input second moment ``E[x x^T]``
    (for error-compensated weight rounding), keyed by node name."""
    check_weights(graph)
    names = [v.name for v in graph.inputs] + [v.name for n in graph.nodes for v in n.outputs
                                              if v.dtype.is_float]
    hists = {name: StreamingHistogram() for name in names}
    bar = Progress(len(data), "calibrating", progress)
    for i, feeds in enumerate(data):
        env = run_graph(graph, feeds, keep=True)
        for name in names:
            a = env[name]
            if not np.all(np.isfinite(a)):
                raise EdgeqError(f"calibration sample {i}: value '{name}' became NaN or Inf in "
                                 f"the float model")
            hists[name].update(a)
        if moments is not None:
            for node in graph.nodes:
                if has(node.op, "compensated_weights"):
                    h = second_moment(node, env[node.inputs[0].name])
                    if h is not None:
                        moments[node.name] = moments.get(node.name, 0) + h
        bar.update(i + 1)
    return hists
