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
from typing import IO, Any, Callable

import numpy as np

from edgeq import ops
from edgeq.ir.graph import (DType, EdgeqError, Graph, Node, QParams, TensorType, Value,
                            contiguous, topo_sort)
from edgeq.ir.limits import check_activation, max_tensor_bytes
from edgeq.ir.verify import VerifyError, verify
from edgeq.ops.validate import INT64, is_int, is_num, KIND_NAMES, shown, check_node

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


MAX_GRAPH_JSON_BYTES = 64 << 20  # graph.json holds names and small attributes, never weights
TOTAL_TENSORS_FACTOR = 4  # all tensors of one model: at most 4x EDGEQ_MAX_TENSOR_BYTES


MAX_NPY_HEADER_BYTES = 1 << 16
# what a damaged archive raises while it is opened or a member read: bad headers and CRCs,
# bad deflate data, a short file, unknown compression methods, encryption flags
_ZIP_ERRORS = (zipfile.BadZipFile, KeyError, OSError, zlib.error, EOFError, NotImplementedError,
               RuntimeError, ValueError)


def read_npy_header(f: IO[bytes], size: int, what: str) -> tuple[tuple[int, ...], bool,
                                                                  np.dtype]:
    """Parse the ``.npy`` header at the start of ``f`` (a stream of ``size`` bytes): its
    length is checked before it is read, object dtypes are refused (never unpickled), and the
    header's shape x itemsize must fill the rest of the ``size`` bytes exactly, so nothing of a
    size only the header claims is ever allocated. ``what`` names the array in errors."""
    head = f.read(8)
    if len(head) < 8 or head[:6] != b"\x93NUMPY":
        raise EdgeqError(f"{what}: not an .npy array (bad magic)")
    major = head[6]
    if major not in (1, 2, 3):
        raise EdgeqError(f"{what}: .npy format version {major}.{head[7]} is not supported")
    width = 2 if major == 1 else 4
    field = f.read(width)
    if len(field) < width:
        raise EdgeqError(f"{what}: .npy header is truncated")
    length = int.from_bytes(field, "little")
    if length > min(MAX_NPY_HEADER_BYTES, size):
        raise EdgeqError(f"{what}: .npy header declares {length} bytes")
    text = f.read(length)
    if len(text) < length:
        raise EdgeqError(f"{what}: .npy header is truncated")
    buf = io.BytesIO(head + field + text)
    np.lib.format.read_magic(buf)
    read = np.lib.format.read_array_header_1_0 if major == 1 else \
        np.lib.format.read_array_header_2_0
    try:
        shape, fortran, dtype = read(buf)
    except (ValueError, SyntaxError, TypeError, tokenize.TokenError) as e:
        raise EdgeqError(f"{what}: garbled .npy header ({type(e).__name__}: {e})") from None
    if dtype.hasobject:
        raise EdgeqError(f"{what} holds Python objects (never unpickled)")
    need = math.prod(shape) * dtype.itemsize
    if need + buf.tell() != size:
        raise EdgeqError(f"{what}: header declares shape {list(shape)} of {dtype} ({need} "
                         f"bytes) but {size - buf.tell()} bytes follow it")
    return shape, fortran, dtype


def _member_reader(z: zipfile.ZipFile, where: str) -> Callable[[str], np.ndarray]:
    """Reads one referenced ``.npy`` member, after checking its header against its declared
    (uncompressed) size and the cap: a member is never read whole on trust, an unreferenced
    one is never read at all, a referenced one is read once (a second reference is refused, as
    the writer never makes one) and the members read together stay below a total cap."""
    cap = max_tensor_bytes()
    total_cap = TOTAL_TENSORS_FACTOR * cap
    seen: set[str] = set()
    total = [0]

    def read(p: Any) -> np.ndarray:
        if not isinstance(p, str) or not p.startswith("tensors/"):
            raise EdgeqError(f"{where}: tensor reference {p!r} is not a tensors/ member")
        if p in seen:
            raise EdgeqError(f"{where}: tensor {p} is referenced twice")
        seen.add(p)
        try:
            info = z.getinfo(p)
        except KeyError:
            raise EdgeqError(f"{where}: missing tensor {p}") from None
        if info.file_size > cap:
            raise EdgeqError(f"{where}: tensor {p} declares {info.file_size} bytes, above the "
                             f"limit of {cap} (EDGEQ_MAX_TENSOR_BYTES)")
        total[0] += info.file_size
        if total[0] > total_cap:
            raise EdgeqError(f"{where}: the tensors declare more than {total_cap} bytes together "
                             f"({TOTAL_TENSORS_FACTOR} x EDGEQ_MAX_TENSOR_BYTES)")
        try:
            with z.open(info) as f:
                shape, fortran, dtype = read_npy_header(f, info.file_size,
                                                        f"{where}: tensor {p}")
                if dtype.kind not in "biuf" or dtype.fields is not None or dtype.subdtype:
                    raise EdgeqError(f"{where}: tensor {p} has element type {dtype}, not a "
                                     f"number")
                need = math.prod(shape) * dtype.itemsize
                data = f.read(need)
                if len(data) != need or f.read(1):  # reading to the end checks the CRC
                    raise EdgeqError(f"{where}: tensor {p} is truncated")
        except _ZIP_ERRORS as e:
            raise EdgeqError(f"{where}: tensor {p} cannot be read ({type(e).__name__}: {e})"
                             ) from None
        a = np.frombuffer(data, dtype).reshape(shape, order="F" if fortran else "C")
        return np.array(a, dtype.newbyteorder("="), order="C")  # a C-ordered native copy
    return read


def load(path: str | os.PathLike) -> Graph:
    """Read a model file, checking everything it says before trusting it (docs/format.md,
    "Reading untrusted files"): every problem is one ``EdgeqError`` naming the file and the
    value, node or tensor."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise EdgeqError(f"{path}: no such file")
    try:
        z = zipfile.ZipFile(path)
    except _ZIP_ERRORS as e:
        raise EdgeqError(f"{path}: not an edgeq model file ({type(e).__name__}: {e})") from None
    with z:
        try:
            info = z.getinfo("graph.json")
            if info.file_size > min(MAX_GRAPH_JSON_BYTES, max_tensor_bytes()):
                raise EdgeqError(f"{path}: graph.json declares {info.file_size} bytes, above "
                                 f"the limit of {MAX_GRAPH_JSON_BYTES}")
            doc = json.loads(z.read(info))
        except _ZIP_ERRORS as e:  # also graph.json's text: JSON and UTF-8 errors are ValueErrors
            raise EdgeqError(f"{path}: graph.json cannot be read ({type(e).__name__}: {e})"
                             ) from None
        return from_doc(doc, _member_reader(z, path), path)


def from_doc(doc: Any, tensors: dict[str, bytes] | Callable[[str], np.ndarray],
             where: str = "model") -> Graph:
    """The graph of a parsed graph.json; ``tensors`` maps member paths to ``.npy`` bytes, or
    reads a member (``load``'s size-checked reader). The document is checked field by field
    (``_Schema``), then every node against its op (``check_node``), then the whole graph by
    the IR verifier; each refusal is one ``EdgeqError`` naming what is wrong."""
    if not isinstance(doc, dict):
        raise EdgeqError(f"{where}: graph.json is a {type(doc).__name__}, expected an object")
    if doc.get("format") != FORMAT:
        raise EdgeqError(f"{where}: not an edgeq model file (format {doc.get('format')!r})")
    if doc.get("version") != VERSION:
        raise EdgeqError(f"{where}: format version {doc.get('version')} is not supported by this "
                         f"edgeq (it reads version {VERSION})")

    def arr(p: Any) -> np.ndarray:
        if callable(tensors):
            return tensors(p)
        if not isinstance(p, str) or p not in tensors:
            raise EdgeqError(f"{where}: missing tensor {p}")
        return np.lib.format.read_array(io.BytesIO(tensors[p]), allow_pickle=False)

    g = _Schema(where, arr).graph(doc)
    for node in g.nodes:
        check_node(node, f"{where}: {node.op} '{node.name}'")
    check_graph(g, where)
    return g


# --- the schema of graph.json -------------------------------------------------------------------

class _Schema:
    """Builds the graph of a graph.json, refusing any field of the wrong type or value."""

    def __init__(self, where: str, arr: Callable[[Any], np.ndarray]):
        self.where, self.arr = where, arr

    def fail(self, what: str) -> EdgeqError:
        return EdgeqError(f"{self.where}: {what}")

    def field(self, d: dict, key: str, kind: type, what: str) -> Any:
        if key not in d:
            raise self.fail(f"{what} has no '{key}'")
        a = d[key]
        if not isinstance(a, kind):
            raise self.fail(f"{what}: '{key}' is {shown(a)}, expected "
                            f"{KIND_NAMES.get(kind.__name__, kind.__name__)}")
        return a

    def names(self, d: dict, key: str, what: str, allow_null: bool = False) -> list:
        lst = self.field(d, key, list, what)
        for x in lst:
            if not (isinstance(x, str) and x) and not (allow_null and x is None):
                raise self.fail(f"{what}: '{key}' holds {shown(x)}, expected value names")
        return lst

    def graph(self, doc: dict) -> Graph:
        name = self.field(doc, "name", str, "graph.json")
        metadata = doc.get("metadata", {})
        if not isinstance(metadata, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
            raise self.fail("graph.json: 'metadata' must map strings to strings")
        g = Graph(name)
        g.metadata = dict(metadata)
        for d in self.field(doc, "values", list, "graph.json"):
            v = self.value(d)
            if v.name in g.values:
                raise self.fail(f"value '{v.name}' is declared twice")
            g.values[v.name] = v
        nodes = self.field(doc, "nodes", list, "graph.json")

        def get(n: str, what: str) -> Value:
            if n not in g.values:
                raise self.fail(f"{what} names '{n}', which is not a declared value")
            return g.values[n]
        inputs = self.names(doc, "inputs", "graph.json")
        if len(set(inputs)) != len(inputs):
            raise self.fail("graph.json: a graph input is listed twice")
        g.inputs = [get(n, "graph input") for n in inputs]
        for nd in nodes:
            g.nodes.append(self.node(nd, get))
        g.outputs = [get(n, "graph output") for n in self.names(doc, "outputs", "graph.json")]
        return g

    def value(self, d: Any) -> Value:
        if not isinstance(d, dict):
            raise self.fail(f"a value is {shown(d)}, expected an object")
        name = self.field(d, "name", str, "a value")
        what = f"value '{name}'"
        if not name:
            raise self.fail("a value has an empty name")
        dtype = self.dtype(self.field(d, "dtype", str, what), what)
        shape = self.field(d, "shape", list, what)
        if not all(is_int(s) for s in shape):
            raise self.fail(f"{what}: shape {shown(shape)} is not a list of integers")
        if any(s < 1 for s in shape):
            raise self.fail(f"{what}: shape {shape} has a dimension below 1")
        check_activation(shape, dtype.itemsize, what)
        qp = self.qparams(d["qparams"], dtype, tuple(shape), what) if d.get("qparams") is not None \
            else None
        const = None
        if "const" in d:
            const = self.arr(d["const"])
            if tuple(const.shape) != tuple(shape):
                raise self.fail(f"{what} is declared {list(shape)} but its tensor {d['const']} is "
                                f"{list(const.shape)}")
            if const.dtype != dtype.numpy:
                raise self.fail(f"{what} is declared {dtype.value} but its tensor {d['const']} "
                                f"holds {const.dtype}")
        return Value(name, TensorType(dtype, tuple(shape)), const, qp)

    def dtype(self, text: str, what: str) -> DType:
        try:
            return DType(text)
        except ValueError:
            raise self.fail(f"{what}: unknown dtype {text!r} (one of "
                            f"{', '.join(d.value for d in DType)})") from None

    def qparams(self, qp: Any, dtype: DType, shape: tuple[int, ...], what: str) -> QParams:
        what = f"{what}: qparams"
        if not isinstance(qp, dict):
            raise self.fail(f"{what} is {shown(qp)}, expected an object")
        scale = self.field(qp, "scale", list, what)
        zp = self.field(qp, "zero_point", list, what)
        axis = qp.get("axis")
        if not scale:
            raise self.fail(f"{what}: empty scale")
        if not all(is_num(s) and math.isfinite(s) and s > 0 for s in scale):
            raise self.fail(f"{what}: scale {shown(scale)} must hold finite numbers above 0")
        if len(zp) != len(scale) or not all(is_int(z) for z in zp):
            raise self.fail(f"{what}: zero_point {shown(zp)} must hold {len(scale)} integer(s), "
                            f"one per scale")
        if dtype.numpy.kind in "iu":
            info = np.iinfo(dtype.numpy)
            if any(not info.min <= z <= info.max for z in zp):
                raise self.fail(f"{what}: zero_point {zp} is outside the {dtype.value} range")
        if axis is not None and not (is_int(axis) and 0 <= axis < len(shape)):
            raise self.fail(f"{what}: axis {shown(axis)} is not an axis of shape {list(shape)}")
        if len(scale) > 1:  # per channel: one scale per index of an axis (ConvTranspose
            # weights keep axis 0 but hold one scale per output channel, their axis 1)
            if axis is None or len(scale) not in set(shape) | {math.prod(shape)}:
                raise self.fail(f"{what}: {len(scale)} scales do not match axis {axis} of shape "
                                f"{list(shape)}")
        return QParams(tuple(float(s) for s in scale), tuple(zp), axis)

    def attr(self, a: Any, what: str) -> Any:
        if isinstance(a, dict):
            if set(a) == {"tensor"}:
                return self.arr(a["tensor"])
            if set(a) == {"float"} and a["float"] in ("inf", "-inf", "nan"):
                return float(a["float"])
            raise self.fail(f"{what} is {shown(a)}, not an attribute value")
        if isinstance(a, list):
            return [self.attr(x, what) for x in a]
        if is_int(a) and not INT64[0] <= a <= INT64[1]:
            raise self.fail(f"{what} = {a} does not fit 64 bits")
        return a

    def node(self, nd: Any, get: Callable[[str, str], Value]) -> Node:
        if not isinstance(nd, dict):
            raise self.fail(f"a node is {shown(nd)}, expected an object")
        name = self.field(nd, "name", str, "a node")
        op = self.field(nd, "op", str, f"node '{name}'")
        what = f"{op} '{name}'"
        if not ops.known(op):
            raise self.fail(f"{what}: unknown op {op!r}")
        ins = self.names(nd, "inputs", what, allow_null=True)
        outs = self.names(nd, "outputs", what)
        if not outs:
            raise self.fail(f"{what} has no outputs")
        attrs = self.field(nd, "attrs", dict, what)
        node = Node(op, name, [None if n is None else get(n, f"{what}: input") for n in ins],
                    [get(n, f"{what}: output") for n in outs],
                    {k: self.attr(a, f"{what}: attribute '{k}'") for k, a in attrs.items()})
        for v in node.outputs:
            if v.producer is not None:
                raise self.fail(f"{what}: output '{v.name}' is also written by "
                                f"'{v.producer.name}'")
            v.producer = node
        for i, v in enumerate(node.inputs):
            if v is not None:
                v.uses.append((node, i))
        return node


def check_graph(g: Graph, where: str) -> None:
    """Order, names and types of a whole graph: the IR verifier (with a cycle told apart from
    mere misordering), plus what running an integer graph needs of its inputs and outputs."""
    try:
        verify(g)
    except VerifyError as e:
        msg = str(e)
        if "before it is defined" in msg:
            try:
                topo_sort(g.nodes)
                msg += " (nodes must be listed in execution order)"
            except EdgeqError:
                msg += " (the nodes form a cycle)"
        raise EdgeqError(f"{where}: {msg}") from None
    if g.metadata.get("quantized") == "int":
        for kind, vals in (("input", g.inputs), ("output", g.outputs)):
            for v in vals:
                if v.dtype.numpy.kind not in "iu" or v.qparams is None:
                    raise EdgeqError(f"{where}: integer model's {kind} '{v.name}' needs an "
                                     f"integer dtype and qparams (is {v.dtype.value}"
                                     f"{'' if v.qparams else ', no qparams'})")
    for v in g.inputs:
        if v.dtype.numpy.kind not in "iuf":
            raise EdgeqError(f"{where}: input '{v.name}' is {v.dtype.value}, expected numbers")
