"""The edgeq model file (``.eqm``), format version 1. Specified in docs/format.md.

A zip archive (stored, fixed timestamps, so the same graph always gives the same bytes) with:

- ``graph.json``: ``{"format": "edgeq-model", "version": 1, "name", "metadata", "inputs",
  "outputs", "values", "nodes"}``. Values carry dtype, shape, optional quantization parameters
  and, for constants, the archive path of their data. Node attributes are JSON; numpy arrays in
  attributes are stored as tensors and referenced as ``{"tensor": path}``; non-finite floats as
  ``{"float": "inf"}``.
- ``tensors/N.npy``: numpy ``.npy`` files (no pickles), numbered in order of first use.
"""

from __future__ import annotations

import io
import json
import math
import os
import tokenize
import zipfile
import zlib
from typing import Any, Callable

import numpy as np

from edgeq.ir.graph import DType, EdgeqError, Graph, Node, QParams, TensorType, Value, contiguous
from edgeq.ir.limits import max_tensor_bytes

FORMAT, VERSION = "edgeq-model", 1
EPOCH = (1980, 1, 1, 0, 0, 0)


class _Writer:
    def __init__(self):
        self.tensors: list[tuple[str, np.ndarray]] = []

    def tensor(self, a: np.ndarray) -> str:
        path = f"tensors/{len(self.tensors)}.npy"
        self.tensors.append((path, contiguous(a)))
        return path

    def attr(self, a: Any) -> Any:
        if isinstance(a, np.ndarray):
            return {"tensor": self.tensor(a)}
        if isinstance(a, (np.integer,)):
            return int(a)
        if isinstance(a, (float, np.floating)):
            f = float(a)
            return f if math.isfinite(f) else {"float": str(f)}
        if isinstance(a, (list, tuple)):
            return [self.attr(x) for x in a]
        if a is None or isinstance(a, (bool, int, str)):
            return a
        raise TypeError(f"cannot serialize attribute of type {type(a).__name__}")


def _qp(qp: QParams | None) -> dict | None:
    if qp is None:
        return None
    return {"scale": [float(s) for s in qp.scale], "zero_point": [int(z) for z in qp.zero_point],
            "axis": qp.axis}


def to_bytes(graph: Graph) -> bytes:
    w = _Writer()
    values = []
    seen: set[str] = set()

    def add_value(v: Value) -> None:
        if v.name in seen:
            return
        seen.add(v.name)
        d: dict[str, Any] = {"name": v.name, "dtype": v.dtype.value, "shape": list(v.shape)}
        if v.qparams is not None:
            d["qparams"] = _qp(v.qparams)
        if v.is_const:
            d["const"] = w.tensor(v.const)
        values.append(d)

    for v in graph.inputs:
        add_value(v)
    nodes = []
    for n in graph.nodes:
        for v in n.inputs:
            if v is not None:
                add_value(v)
        for v in n.outputs:
            add_value(v)
        nodes.append({"op": n.op, "name": n.name,
                      "inputs": [None if v is None else v.name for v in n.inputs],
                      "outputs": [v.name for v in n.outputs],
                      "attrs": {k: w.attr(a) for k, a in sorted(n.attrs.items())}})
    for v in graph.outputs:
        add_value(v)
    doc = {"format": FORMAT, "version": VERSION, "name": graph.name,
           "metadata": dict(sorted(graph.metadata.items())),
           "inputs": [v.name for v in graph.inputs], "outputs": [v.name for v in graph.outputs],
           "values": values, "nodes": nodes}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        _put(z, "graph.json", json.dumps(doc, indent=1, sort_keys=True).encode())
        for path, arr in w.tensors:
            b = io.BytesIO()
            np.lib.format.write_array(b, arr, allow_pickle=False)
            _put(z, path, b.getvalue())
    return buf.getvalue()


def _put(z: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=EPOCH)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    z.writestr(info, data)


def save(graph: Graph, path: str | os.PathLike) -> None:
    data = to_bytes(graph)
    tmp = f"{os.fspath(path)}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _member_reader(z: zipfile.ZipFile, where: str) -> Callable[[str], np.ndarray]:
    """Reads one referenced ``.npy`` member, after checking its header against its declared
    (uncompressed) size and the cap: a member is never read whole on trust, an unreferenced
    one is never read at all."""
    cap = max_tensor_bytes()

    def read(p: str) -> np.ndarray:
        try:
            info = z.getinfo(p)
        except KeyError:
            raise EdgeqError(f"{where}: missing tensor {p}") from None
        if info.file_size > cap:
            raise EdgeqError(f"{where}: tensor {p} declares {info.file_size} bytes, above the "
                             f"limit of {cap} (EDGEQ_MAX_TENSOR_BYTES)")
        with z.open(info) as f:
            version = np.lib.format.read_magic(f)
            header = (np.lib.format.read_array_header_1_0 if version == (1, 0) else
                      np.lib.format.read_array_header_2_0)
            shape, fortran, dtype = header(f)
            if dtype.hasobject:
                raise EdgeqError(f"{where}: tensor {p} holds Python objects (never unpickled)")
            need = math.prod(shape) * dtype.itemsize
            if need + f.tell() != info.file_size:
                raise EdgeqError(f"{where}: tensor {p} declares shape {list(shape)} of {dtype} "
                                 f"({need} bytes) in a member of {info.file_size} bytes")
            data = f.read(need)
        if len(data) != need:
            raise EdgeqError(f"{where}: tensor {p} is truncated")
        return np.frombuffer(data, dtype).reshape(shape, order="F" if fortran else "C").copy()
    return read


def load(path: str | os.PathLike) -> Graph:
    path = os.fspath(path)
    if not os.path.exists(path):
        raise EdgeqError(f"{path}: no such file")
    try:
        with zipfile.ZipFile(path) as z:
            info = z.getinfo("graph.json")
            if info.file_size > max_tensor_bytes():
                raise EdgeqError(f"{path}: graph.json declares {info.file_size} bytes, above "
                                 f"the limit (EDGEQ_MAX_TENSOR_BYTES)")
            doc = json.loads(z.read(info))
            return from_doc(doc, _member_reader(z, path), path)
    except EdgeqError:
        raise
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError, OSError, zlib.error,
            EOFError, UnicodeDecodeError, NotImplementedError, RuntimeError,
            tokenize.TokenError, SyntaxError) as e:  # damaged zip headers, .npy headers
        raise EdgeqError(f"{path}: not an edgeq model file ({type(e).__name__}: {e})") from None
    except (TypeError, ValueError, AttributeError, IndexError) as e:
        raise EdgeqError(f"{path}: malformed edgeq model ({type(e).__name__}: {e})") from None


def from_doc(doc: dict, tensors: dict[str, bytes] | Callable[[str], np.ndarray],
             where: str = "model") -> Graph:
    """The graph of a parsed graph.json; ``tensors`` maps member paths to ``.npy`` bytes, or
    reads a member (``load``'s size-checked reader)."""
    if not isinstance(doc, dict):
        raise EdgeqError(f"{where}: graph.json is a {type(doc).__name__}, expected an object")
    if doc.get("format") != FORMAT:
        raise EdgeqError(f"{where}: not an edgeq model file (format {doc.get('format')!r})")
    if doc.get("version") != VERSION:
        raise EdgeqError(f"{where}: format version {doc.get('version')} is not supported by this "
                         f"edgeq (it reads version {VERSION})")

    def arr(p: str) -> np.ndarray:
        if callable(tensors):
            return tensors(p)
        if p not in tensors:
            raise EdgeqError(f"{where}: missing tensor {p}")
        return np.lib.format.read_array(io.BytesIO(tensors[p]), allow_pickle=False)

    def attr(a: Any) -> Any:
        if isinstance(a, dict):
            if "tensor" in a:
                return arr(a["tensor"])
            if "float" in a:
                return float(a["float"])
        if isinstance(a, list):
            return [attr(x) for x in a]
        return a

    g = Graph(doc["name"])
    g.metadata = dict(doc.get("metadata", {}))
    vals: dict[str, Value] = {}
    for d in doc["values"]:
        qp = d.get("qparams")
        const = arr(d["const"]) if "const" in d else None
        if const is not None and tuple(const.shape) != tuple(d["shape"]):
            raise EdgeqError(f"{where}: value '{d['name']}' is declared {list(d['shape'])} but "
                             f"its tensor {d['const']} is {list(const.shape)}")
        v = Value(d["name"], TensorType(DType(d["dtype"]), tuple(d["shape"])), const,
                  None if qp is None else QParams(tuple(qp["scale"]), tuple(qp["zero_point"]),
                                                  qp["axis"]))
        vals[v.name] = v
        g.values[v.name] = v
    g.inputs = [vals[n] for n in doc["inputs"]]
    for nd in doc["nodes"]:
        node = Node(nd["op"], nd["name"], [None if n is None else vals[n] for n in nd["inputs"]],
                    [vals[n] for n in nd["outputs"]], {k: attr(a) for k, a in
                                                       nd["attrs"].items()})
        for v in node.outputs:
            v.producer = node
        for i, v in enumerate(node.inputs):
            if v is not None:
                v.uses.append((node, i))
        g.nodes.append(node)
    g.outputs = [vals[n] for n in doc["outputs"]]
    return g
