"""ONNX frontend: an ``onnx.ModelProto`` (opset 9 up to the installed ``onnx`` package's newest)
becomes an edgeq ``Graph``.

Opsets: the converters implement every op's versions up to opset 21 (``VERIFIED_OPSET``). A
model with a newer opset is accepted node by node: a node whose op has a newer version is taken
when that version's signature (inputs, outputs, attributes and their defaults) equals the last
verified version's, or when the only differences are attributes the node leaves unset (opsets
22-28 mostly widened type lists: bfloat16, float8, int4); otherwise it is refused, naming the node,
the op version and what changed.

Import canonicalizes as it goes, so passes and backends see one form per op:
- static parameters are attributes, never tensor inputs (Reshape ``shape``, Slice ``starts``...,
  Pad ``pads``, Clip ``min``/``max``, Squeeze/Unsqueeze/Flatten become Reshape);
- Conv/pool padding is explicit (``auto_pad`` resolved into ``pads``);
- nodes whose inputs are all constant are evaluated (constant folding), so shape arithmetic
  (``Shape``, ``Gather``, ``Concat`` of dims...) disappears;
- ``Sum`` becomes a chain of ``Add``; opset < 13 ``Softmax`` becomes Reshape/Softmax/Reshape.
"""

from __future__ import annotations

import contextvars
import functools
import os
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from edgeq.frontend import recurrent
from edgeq.ir.graph import DType, EdgeqError, Graph, TensorType, Value
from edgeq.ir.limits import (check_activation, check_tensor, max_activation_bytes,
                             max_tensor_bytes, nbytes)
from edgeq.ir.registry import registrar
from edgeq.ops import infer_node
from edgeq.ops.base import KERNEL
from edgeq.ops.conv import check_window
from edgeq.passes.constant_folding import fold_node

MIN_OPSET, VERIFIED_OPSET = 9, 21
# names some node or the graph output reads, for the model being imported
_CONSUMED: contextvars.ContextVar[frozenset[str]] = contextvars.ContextVar("consumed",
                                                                           default=frozenset())


def load_onnx(path: str | os.PathLike, input_shapes: dict[str, Sequence[int]] | None = None
              ) -> Graph:
    """Read an .onnx file into a Graph. Raises EdgeqError with one clear message on bad input."""
    import onnx
    from google.protobuf.message import DecodeError

    path = os.fspath(path)
    if not os.path.exists(path):
        raise EdgeqError(f"{path}: no such file")
    if os.path.isdir(path):
        raise EdgeqError(f"{path}: is a directory, expected an .onnx file")
    with open(path, "rb") as f:
        data = f.read()
    if not data:
        raise EdgeqError(f"{path}: file is empty, expected an ONNX model")
    try:
        model = onnx.ModelProto()
        model.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError) as e:
        raise EdgeqError(f"{path}: not a valid ONNX model (protobuf parse failed: "
                         f"{str(e).strip() or type(e).__name__}); is the file truncated?") from None
    if not model.graph.node and not model.graph.output:
        raise EdgeqError(f"{path}: not an ONNX model (no graph found in the file)")
    _check_text(model)
    name = os.path.splitext(os.path.basename(path))[0]
    return from_onnx(model, input_shapes, name=name,
                     base_dir=os.path.dirname(os.path.abspath(path)))


def from_onnx(model: Any, input_shapes: dict[str, Sequence[int]] | None = None,
              name: str | None = None, base_dir: str | None = None) -> Graph:
    """``base_dir``: the model's folder, the only place its external data may come from (None:
    a model in memory, whose external data is refused)."""
    _check_text(model)
    return _Importer(model, input_shapes or {}, name, base_dir).run()


def _check_text(model: Any) -> None:
    """Every name in the model is text: protobuf hands a string field holding bytes that are not
    UTF-8 back as ``bytes``, which no later comparison expects."""
    def bad(x: Any) -> bool:
        return not isinstance(x, str)

    for imp in model.opset_import:
        if bad(imp.domain):
            raise EdgeqError("an opset_import domain is not valid UTF-8 text")

    def graph(gp: Any, where: str) -> None:
        if bad(gp.name):
            raise EdgeqError(f"{where}: graph name is not valid UTF-8 text")
        for kind, vis in (("input", gp.input), ("output", gp.output),
                          ("value_info", gp.value_info)):
            for k, vi in enumerate(vis):
                if bad(vi.name):
                    raise EdgeqError(f"{where}: {kind} {k}: name is not valid UTF-8 text")
        for k, t in enumerate(gp.initializer):
            tensor(t, f"{where}: initializer {k}")
        for k, node in enumerate(gp.node):
            if bad(node.name) or bad(node.op_type) or bad(node.domain):
                raise EdgeqError(f"{where}: node {k}: name, op_type or domain is not valid "
                                 f"UTF-8 text")
            nwhere = f"{node.op_type} '{node.name or f'{node.op_type.lower()}_{k}'}'"
            if any(bad(x) for x in node.input) or any(bad(x) for x in node.output):
                raise EdgeqError(f"{nwhere}: an input or output name is not valid UTF-8 text")
            for a in node.attribute:
                if bad(a.name) or bad(a.ref_attr_name):
                    raise EdgeqError(f"{nwhere}: an attribute name is not valid UTF-8 text")
                if a.HasField("t"):
                    tensor(a.t, f"{nwhere}: attribute '{a.name}'")
                for t in a.tensors:
                    tensor(t, f"{nwhere}: attribute '{a.name}'")
                if a.HasField("g"):
                    graph(a.g, f"{nwhere}: attribute '{a.name}'")
                for g in a.graphs:
                    graph(g, f"{nwhere}: attribute '{a.name}'")

    def tensor(t: Any, where: str) -> None:
        if bad(t.name) or any(bad(e.key) or bad(e.value) for e in t.external_data):
            raise EdgeqError(f"{where}: tensor name or external data is not valid UTF-8 text")

    graph(model.graph, "graph")


# float attributes that may be infinite (Clip bounds, a Pad value of -inf before a max)
_INF_OK = frozenset({"min", "max", "value"})

# ONNX element types edgeq holds, by the ONNX type-constraint spelling of each DType
_ONNX_TYPE = {DType.FLOAT32: "tensor(float)", DType.FLOAT64: "tensor(double)",
              DType.FLOAT16: "tensor(float16)", DType.INT4: "tensor(int4)",
              DType.INT8: "tensor(int8)", DType.UINT8: "tensor(uint8)",
              DType.INT16: "tensor(int16)", DType.INT32: "tensor(int32)",
              DType.INT64: "tensor(int64)", DType.BOOL: "tensor(bool)"}


_NP_DTYPES: dict[int, np.dtype] = {}


def _np_dtype(elem_type: int, where: str) -> np.dtype:
    """The numpy type of an ONNX element type edgeq holds (refused, naming ``where``, if none)."""
    from onnx import TensorProto, helper

    if elem_type in _NP_DTYPES:
        return _NP_DTYPES[elem_type]
    try:
        dt = np.dtype(helper.tensor_dtype_to_np_dtype(elem_type))
        DType.from_numpy(dt)
    except (KeyError, TypeError, ValueError, EdgeqError):
        names = {v: k for k, v in TensorProto.DataType.items()}
        raise EdgeqError(f"{where}: element type {names.get(elem_type, elem_type)} is not "
                         f"supported (float, double, float16, int8/16/32/64, uint8, bool)"
                         ) from None
    _NP_DTYPES[elem_type] = dt
    return dt


def read_external(t: Any, base_dir: str | None) -> np.ndarray:
    """The data of an initializer stored outside the model file, read only from a regular file
    inside ``base_dir`` (the model's folder: never the working directory, an absolute path,
    ``..``, a symlink leaving the folder or a special file), and only the bytes its shape and
    type need, checked against the file's size before anything is allocated."""
    import stat

    from onnx import helper

    info = {e.key: e.value for e in t.external_data}
    where = f"tensor '{t.name}': external data"
    loc = info.get("location", "")
    if base_dir is None:
        raise EdgeqError(f"{where} '{loc}' needs the model's folder: load the model from its "
                         f"file")
    if not loc or os.path.isabs(loc) or os.path.splitdrive(loc)[0] or \
            ".." in loc.replace("\\", "/").split("/"):
        raise EdgeqError(f"{where} location {loc!r} must be a relative path inside the model's "
                         f"folder")
    root = os.path.realpath(base_dir)
    full = os.path.realpath(os.path.join(root, loc))
    if os.path.commonpath([root, full]) != root:
        raise EdgeqError(f"{where} '{loc}' leaves the model's folder (through a symlink)")
    try:
        st = os.stat(full)
    except OSError:
        raise EdgeqError(f"{where} '{loc}': no such file in the model's folder "
                         f"{base_dir}") from None
    if not stat.S_ISREG(st.st_mode):
        raise EdgeqError(f"{where} '{loc}' is not a regular file")
    try:
        dtype = np.dtype(helper.tensor_dtype_to_np_dtype(t.data_type))
    except (KeyError, TypeError, ValueError):
        raise EdgeqError(f"{where}: data type {t.data_type} cannot be read from external "
                         f"data") from None
    if dtype.kind not in "biuf" or t.data_type == 16:  # numbers only (bfloat16: no numpy type)
        raise EdgeqError(f"{where}: {dtype} tensors cannot be read from external data")
    dims = [int(d) for d in t.dims]
    if any(d < 0 for d in dims):
        raise EdgeqError(f"{where}: negative dimension in {dims}")
    need = int(np.prod(dims, dtype=object)) * dtype.itemsize
    try:
        offset = int(info.get("offset", 0))
        length = int(info["length"]) if "length" in info else need
    except ValueError:
        raise EdgeqError(f"{where}: offset / length are not integers") from None
    if length != need:
        raise EdgeqError(f"{where} '{loc}': length {length} bytes, but shape {dims} of "
                         f"{dtype} needs {need}")
    if offset < 0 or offset + need > st.st_size:
        raise EdgeqError(f"{where} '{loc}': bytes {offset}..{offset + need} are past the end "
                         f"of the file ({st.st_size} bytes)")
    check_tensor(dims, dtype.itemsize, f"tensor '{t.name}'")
    with open(full, "rb") as f:
        f.seek(offset)
        raw = f.read(need)
    return np.frombuffer(raw, dtype.newbyteorder("<")).astype(dtype).reshape(dims)


class _Importer:
    def __init__(self, model, input_shapes, name, base_dir=None):
        import onnx
        from onnx import numpy_helper

        self.onnx = onnx
        self.nh = numpy_helper
        self.model = model
        self.input_shapes = {k: tuple(int(d) for d in v) for k, v in input_shapes.items()}
        self.opset = None
        for imp in model.opset_import:
            if imp.domain in ("", "ai.onnx"):
                self.opset = imp.version
        if self.opset is None:
            raise EdgeqError("model imports no default-domain (ai.onnx) opset")
        newest = onnx.defs.onnx_opset_version()
        if not MIN_OPSET <= self.opset <= newest:
            raise EdgeqError(f"model uses opset {self.opset}; edgeq supports opsets "
                             f"{MIN_OPSET}-{newest} (the installed onnx {onnx.__version__})")
        self.base_dir = base_dir
        self.g = Graph(name or model.graph.name or "model")
        self.env: dict[str, Value] = {}
        self.origin: dict[str, str] = {}  # ONNX value name -> what defines it, for messages
        self.max_bytes = {True: max_tensor_bytes(), False: max_activation_bytes()}

    def check_size(self, shape: Sequence[int], itemsize: int, what: str, const: bool) -> None:
        """``edgeq.ir.limits``' check of a constant (``const``) or an activation, read once per
        import (the limits are the environment's when the import starts)."""
        if any(d < 0 for d in shape) or nbytes(shape, itemsize) > self.max_bytes[const]:
            (check_tensor if const else check_activation)(shape, itemsize, what)
            raise EdgeqError(f"{what}: negative dimension in shape {list(shape)}")

    # --- helpers ------------------------------------------------------------------------------
    def _to_array(self, t) -> np.ndarray:
        """A tensor's data, its declared shape and size checked before anything is allocated:
        ``raw_data`` must hold exactly ``dims x itemsize`` bytes, a typed field exactly
        ``dims`` elements."""
        where = f"tensor '{t.name}'"
        if t.data_location == self.onnx.TensorProto.EXTERNAL:
            return read_external(t, self.base_dir)
        dims = [int(d) for d in t.dims]
        dtype = _np_dtype(t.data_type, where)
        self.check_size(dims, dtype.itemsize, where, const=True)
        count = int(np.prod(dims, dtype=object))
        TP = self.onnx.TensorProto
        packed = t.data_type in (TP.INT4, TP.UINT4)  # two values a byte (an int32 each)
        if t.HasField("raw_data"):
            need = (count + 1) // 2 if packed else count * dtype.itemsize
            if len(t.raw_data) != need:
                raise EdgeqError(f"{where}: raw_data has {len(t.raw_data)} bytes, but shape "
                                 f"{dims} of {dtype} needs {need}")
        else:
            field = {TP.FLOAT: "float_data", TP.DOUBLE: "double_data", TP.INT64: "int64_data",
                     TP.UINT64: "uint64_data"}.get(t.data_type, "int32_data")
            have = len(getattr(t, field))
            if have != ((count + 1) // 2 if packed else count):
                raise EdgeqError(f"{where}: {field} has {have} values, but shape {dims} needs "
                                 f"{count}")
        try:
            arr = self.nh.to_array(t)
        except Exception as e:  # onnx's own checks of the data fields
            raise EdgeqError(f"{where}: cannot read its data ({e})") from None
        if arr.dtype != dtype or list(arr.shape) != dims:
            raise EdgeqError(f"{where}: data reads as {arr.dtype}{list(arr.shape)}, declared "
                             f"{dtype}{dims}")
        return arr

    def _attrs(self, node, name: str) -> dict[str, Any]:
        out = {}
        for a in node.attribute:
            try:
                v = self.onnx.helper.get_attribute_value(a)
                if isinstance(v, bytes):
                    v = v.decode()
                elif isinstance(v, list):
                    v = [x.decode() if isinstance(x, bytes) else x for x in v]
            except UnicodeDecodeError:
                raise EdgeqError(f"{node.op_type} '{name}': attribute '{a.name}' is not valid "
                                 f"UTF-8 text") from None
            except ValueError:  # an attribute whose type field names no value
                raise EdgeqError(f"{node.op_type} '{name}': attribute '{a.name}' has no value "
                                 f"of its declared type") from None
            if isinstance(v, self.onnx.TensorProto):
                v = self._to_array(v)
            elif isinstance(v, float) and (np.isnan(v) or (np.isinf(v) and
                                                             a.name not in _INF_OK)):
                raise EdgeqError(f"{node.op_type} '{name}': attribute '{a.name}' is {v}")
            out[a.name] = v
        return out

    def emit(self, op: str, inputs: list[Value | None], attrs: dict[str, Any], name: str,
             out_names: Sequence[str]) -> list[Value]:
        """Add one canonical node; fold it right away if every input is constant."""
        node = self.g.add_node(op, inputs, [TensorType(DType.FLOAT32, ())] * len(out_names),
                               attrs, name=self.g.unique_name(name),
                               output_names=[f"{n}__tmp" for n in out_names])
        types = infer_node(node)
        if len(types) != len(node.outputs):
            raise EdgeqError(f"{op} '{name}': the op makes {len(types)} outputs, the node "
                             f"names {len(node.outputs)}")
        # sizes are checked before the fold allocates them (a folded value is a constant)
        folds = op in KERNEL and all(v is None or v.is_const for v in node.inputs) and \
            any(v is not None for v in node.inputs)
        for k, (v, t) in enumerate(zip(node.outputs, types)):
            what = f"{op} '{name}' output" + (f" {k}" if len(types) > 1 else "")
            if any(d < 0 for d in t.shape):
                raise EdgeqError(f"{what}: negative dimension in the inferred shape "
                                 f"{list(t.shape)}")
            self.check_size(t.shape, t.dtype.itemsize, what, const=folds)
            v.type = t
        folded = fold_node(self.g, node)
        outs = folded if folded is not None else node.outputs
        for v, want in zip(outs, out_names):
            self.g.rename(v, self.g.unique_name(want))
        return outs

    def const(self, v: Value | None, what: str, node_name: str, op: str) -> np.ndarray | None:
        if v is None:
            return None
        if v.const is None:
            raise EdgeqError(f"{op} '{node_name}': {what} must be constant (it is computed at run "
                             f"time from '{v.name}'); edgeq needs static shapes and parameters")
        return v.const

    # --- main ---------------------------------------------------------------------------------
    def run(self) -> Graph:
        gp = self.model.graph
        self._check_ops(gp)
        _CONSUMED.set(frozenset([x for n in _all_nodes(gp) for x in n.input] +
                                [o.name for o in gp.output]))
        inits = {t.name for t in gp.initializer}
        for t in gp.initializer:
            if t.name in self.env:
                raise EdgeqError(f"initializer '{t.name}' is defined twice")
            arr = self._to_array(t)
            self.env[t.name] = self.g.add_value(t.name, TensorType(DType.from_numpy(arr.dtype),
                                                                   tuple(arr.shape)), arr)
            self.origin[t.name] = "an initializer"
        real_inputs = [vi.name for vi in gp.input if vi.name not in inits]
        if len(set(real_inputs)) != len(real_inputs):
            dup = sorted({n for n in real_inputs if real_inputs.count(n) > 1})
            raise EdgeqError(f"graph input {dup[0]!r} is listed twice")
        # "#k" keys (from a CLI shape given without a name) mean the k-th input
        self.input_shapes = {(real_inputs[int(k[1:])] if k.startswith("#") and k[1:].isdigit()
                              and int(k[1:]) < len(real_inputs) else k): v
                             for k, v in self.input_shapes.items()}
        for vi in gp.input:
            if vi.name in inits:
                continue
            t = self._input_type(vi)
            self.check_size(t.shape, t.dtype.itemsize, f"input '{vi.name}'", const=False)
            self.env[vi.name] = self.g.add_input(vi.name, t)
            self.origin[vi.name] = "a graph input"
        unknown = set(self.input_shapes) - {v.name for v in self.g.inputs}
        if unknown:
            raise EdgeqError(f"--input-shape names {sorted(unknown)}, but the model's inputs are "
                             f"{[v.name for v in self.g.inputs]}")
        self.import_nodes(gp.node)
        seen: set[str] = set()
        for vi in gp.output:
            if vi.name not in self.env:
                raise EdgeqError(f"graph output '{vi.name}' is produced by no node")
            if vi.name in seen:
                raise EdgeqError(f"graph output '{vi.name}' is listed twice")
            seen.add(vi.name)
            self.g.outputs.append(self.env[vi.name])
        self.g.prune_values()
        return self.g

    def import_nodes(self, nodes, prefix: str = "") -> None:
        """Convert ``nodes`` in order into ``self.env`` (names of a subgraph's nodes get
        ``prefix``)."""
        later: dict[str, str] = {}
        for k, node in enumerate(nodes):
            for o in node.output:
                later.setdefault(o, prefix + (node.name or f"{node.op_type.lower()}_{k}"))
        for k, node in enumerate(nodes):
            name = prefix + (node.name or f"{node.op_type.lower()}_{k}")
            ins = []
            for i in node.input:
                if not i:
                    ins.append(None)
                elif i not in self.env:
                    if i in later:
                        raise EdgeqError(
                            f"{node.op_type} '{name}': input '{i}' is produced by node "
                            f"'{later[i]}', which comes later: the graph is not in topological "
                            f"order (or has a cycle), as ONNX requires")
                    raise EdgeqError(f"{node.op_type} '{name}': input '{i}' names no value (no "
                                     f"graph input, initializer or node output)")
                else:
                    ins.append(self.env[i])
            for j, o in enumerate(node.output):
                if not o:
                    continue
                if o in self.origin or o in node.output[:j]:
                    what = self.origin.get(o, f"node '{name}'")
                    raise EdgeqError(f"{node.op_type} '{name}': output '{o}' is already defined "
                                     f"by {what}; ONNX values are assigned once")
            self._check_signature(node, name, ins)
            try:
                outs = CONVERTERS[node.op_type](self, name, ins, self._attrs(node, name),
                                                list(node.output))
            except EdgeqError:
                raise
            except Exception as e:  # a malformed node must give one line, not a traceback
                raise EdgeqError(f"{node.op_type} '{name}': cannot import this node "
                                 f"({type(e).__name__}: {e})") from None
            for oname, v in zip(node.output, outs):
                if oname:
                    self.origin[oname] = f"node '{name}'"
                    if v is not None:  # None: an output nothing reads (not computed)
                        self.env[oname] = v

    def _check_signature(self, node, name: str, ins: list[Value | None]) -> None:
        """The node against its op's ONNX schema (``_Signature``): input and output counts,
        required inputs present, input element types in the op's type constraints, attributes
        known and of their declared type, required attributes given."""
        sig = _signature(node.op_type, self.opset)
        if sig is None:
            return
        where = f"{node.op_type} '{name}'"

        def span(lo: int, hi: int) -> str:
            return str(lo) if lo == hi else f"{lo} or more" if hi > 1 << 20 else f"{lo} to {hi}"
        if not sig.inputs[0] <= len(node.input) <= sig.inputs[1]:
            raise EdgeqError(f"{where}: has {len(node.input)} inputs, {sig.version} takes "
                             f"{span(*sig.inputs)}")
        if not sig.outputs[0] <= len(node.output) <= sig.outputs[1]:
            raise EdgeqError(f"{where}: has {len(node.output)} outputs, {sig.version} makes "
                             f"{span(*sig.outputs)}")
        bound: dict[str, tuple[int, Value]] = {}  # type parameter -> the input that fixed it
        for k, v in enumerate(ins):
            if not sig.formals:
                break
            formal, optional, types, param = sig.formals[min(k, len(sig.formals) - 1)]
            if v is None:
                if not optional:
                    raise EdgeqError(f"{where}: input {k} ({formal}) is required but empty")
            elif _ONNX_TYPE[v.dtype] not in types:
                shown = ", ".join(sorted(t[7:-1] for t in types if t.startswith("tensor(")))
                raise EdgeqError(f"{where}: input {k} ({formal}) '{v.name}' is "
                                 f"{v.dtype.value}; {sig.version} takes {shown}")
            elif param:
                j, first = bound.setdefault(param, (k, v))
                if first.dtype != v.dtype:
                    raise EdgeqError(f"{where}: input {k} '{v.name}' is {v.dtype.value} but "
                                     f"input {j} '{first.name}' is {first.dtype.value}; "
                                     f"{sig.version} takes one type {param} for both")
        given = set()
        for a in node.attribute:
            want = sig.attributes.get(a.name)
            if want is None:
                raise EdgeqError(f"{where}: unknown attribute '{a.name}' ({sig.version} has "
                                 f"{', '.join(sorted(sig.current)) or 'none'})")
            if a.name in given:
                raise EdgeqError(f"{where}: attribute '{a.name}' is given twice")
            given.add(a.name)
            if a.type != want:
                kinds = self.onnx.AttributeProto.AttributeType
                got = kinds.Name(a.type) if a.type in kinds.values() else a.type
                raise EdgeqError(f"{where}: attribute '{a.name}' is of type {got}, "
                                 f"{sig.version} expects {kinds.Name(want)}")
        missing = sorted(sig.required - given)
        if missing:
            raise EdgeqError(f"{where}: required attribute '{missing[0]}' is missing")

    def _check_ops(self, gp) -> None:
        bad: dict[str, list[str]] = {}
        for k, node in enumerate(_all_nodes(gp)):
            if node.domain not in ("", "ai.onnx") or node.op_type not in CONVERTERS:
                op = node.op_type if node.domain in ("", "ai.onnx") else \
                    f"{node.domain}.{node.op_type}"
                bad.setdefault(op, []).append(node.name or f"{node.op_type.lower()}_{k}")
        if bad:
            parts = [f"{op} (nodes: {', '.join(repr(n) for n in names[:5])}"
                     f"{', ...' if len(names) > 5 else ''})" for op, names in sorted(bad.items())]
            raise EdgeqError(f"unsupported op{'s' if len(bad) > 1 else ''}: " + "; ".join(parts))
        newer = [f"{node.op_type} '{node.name or f'{node.op_type.lower()}_{k}'}': {why}"
                 for k, node in enumerate(gp.node) if (why := self._version_problem(node))]
        if newer:
            raise EdgeqError("op versions edgeq does not implement: " + "; ".join(newer))

    def _version_problem(self, node) -> str | None:
        """Why this node's op version (from the model's opset) is not one edgeq implements."""
        if self.opset <= VERIFIED_OPSET:
            return None
        defs = self.onnx.defs
        new = defs.get_schema(node.op_type, self.opset)
        if new.since_version <= VERIFIED_OPSET:
            return None
        old = defs.get_schema(node.op_type, VERIFIED_OPSET)
        where = f"{node.op_type}-{new.since_version} (opset {self.opset})"
        known = f"edgeq implements {node.op_type}-{old.since_version}"
        io = (lambda s: ([(p.name, p.option) for p in s.inputs], [(p.name, p.option)
                                                                  for p in s.outputs]))
        if io(new) != io(old):
            return f"{where} changes the op's inputs or outputs; {known}"
        given = {a.name for a in node.attribute}
        for name, attr in sorted(new.attributes.items()):
            prev = old.attributes.get(name)
            if prev is None and name in given:
                return f"sets attribute '{name}', added in {where}; {known}"
            if prev is not None and name not in given and \
                    prev.default_value.SerializeToString() != \
                    attr.default_value.SerializeToString():
                return f"{where} changes the default of attribute '{name}'; {known}"
        return None

    def _input_type(self, vi) -> TensorType:
        tt = vi.type.tensor_type
        if not vi.type.HasField("tensor_type"):
            raise EdgeqError(f"input '{vi.name}' is not a tensor")
        dtype = DType.from_numpy(_np_dtype(tt.elem_type, f"input '{vi.name}'"))
        dims = _model_dims(tt)
        if vi.name in self.input_shapes:
            given = self.input_shapes[vi.name]
            if any(g <= 0 for g in given):
                raise EdgeqError(f"input '{vi.name}': given shape {list(given)} has a dimension "
                                 f"that is not positive; give the static size to use")
            if tt.HasField("shape") and (len(given) != len(dims) or any(
                    d is not None and d != g for d, g in zip(dims, given))):
                raise EdgeqError(f"input '{vi.name}': given shape {list(given)} does not match "
                                 f"the model's {_shown(tt)} (only its dynamic dimensions, "
                                 f"shown as names or '?', can take any size)")
            return TensorType(dtype, given)
        if not tt.HasField("shape"):
            raise EdgeqError(f"input '{vi.name}' has no shape in the model; give one with "
                             f"--input-shape {vi.name}=...")
        if None in dims[1:]:
            raise EdgeqError(f"input '{vi.name}' has a dynamic shape {_shown(tt)}; give a static "
                             f"one with --input-shape{self._suggestion(vi.name)}")
        if dims and dims[0] is None:
            dims[0] = 1  # the default batch size
        return TensorType(dtype, tuple(dims))

    def _suggestion(self, name: str) -> str:
        """`` (e.g. --input-shape NAME=...)`` with static sizes that import, or ''."""
        gp = self.model.graph
        inits = {t.name for t in gp.initializer}
        dynamic = {vi.name: vi.type.tensor_type for vi in gp.input
                   if vi.name not in inits and vi.name not in self.input_shapes
                   and vi.type.HasField("tensor_type") and vi.type.tensor_type.HasField("shape")
                   and None in _model_dims(vi.type.tensor_type)}
        for spatial, other in ((224, 1), (320, 16), (640, 64)):
            shapes = dict(self.input_shapes)
            for n, tt in dynamic.items():
                dims = _model_dims(tt)
                shapes[n] = tuple(d if d is not None else 1 if i == 0 else
                                  spatial if len(dims) == 4 and i >= 2 else other
                                  for i, d in enumerate(dims))
            try:
                _Importer(self.model, shapes, "probe").run()
            except EdgeqError:
                continue
            return f" (e.g. --input-shape {name}={','.join(map(str, shapes[name]))})"
        return ""


@dataclass(frozen=True)
class _Signature:
    """What an op's ONNX schema allows, as plain data: ``inputs`` / ``outputs`` (min, max)
    counts, ``formals`` (name, optional, allowed element types, type parameter or None) per
    formal input (the last one repeats when variadic; inputs of one type parameter must have
    one type), ``attributes`` name -> AttributeProto type over every version of
    the op (the converters read both spellings, e.g. Split's ``split``), ``current`` the
    attribute names of this version, ``required`` those it requires."""

    version: str
    inputs: tuple[int, int]
    outputs: tuple[int, int]
    formals: tuple[tuple[str, bool, frozenset[str], str | None], ...]
    attributes: dict[str, int]
    current: frozenset[str]
    required: frozenset[str]


@functools.lru_cache(maxsize=None)
def _signature(op: str, opset: int) -> _Signature | None:
    """``op``'s schema at ``opset`` (a deprecated op: its last version; an op newer than the
    opset, such as Gelu before 20: its newest)."""
    from onnx import defs

    try:
        try:
            s = defs.get_schema(op, opset, "")
        except defs.SchemaError:
            s = defs.get_schema(op, defs.onnx_opset_version(), "")
        if s.deprecated and s.since_version > 1:
            s = defs.get_schema(op, s.since_version - 1, "")
    except defs.SchemaError:
        return None
    allowed = {c.type_param_str: frozenset(c.allowed_type_strs) for c in s.type_constraints}
    optional = defs.OpSchema.FormalParameterOption.Optional
    attributes: dict[str, int] = {}
    for old in sorted((h for h in defs.get_all_schemas_with_history()
                       if h.name == op and h.domain == ""), key=lambda h: h.since_version):
        attributes.update({k: a.type.value for k, a in old.attributes.items()})
    attributes.update({k: a.type.value for k, a in s.attributes.items()})
    return _Signature(
        f"{op}-{s.since_version}", (s.min_input, s.max_input), (s.min_output, s.max_output),
        tuple((p.name, p.option == optional, allowed.get(p.type_str, frozenset([p.type_str])),
               p.type_str if p.type_str in allowed else None) for p in s.inputs),
        attributes, frozenset(s.attributes),
        frozenset(k for k, a in s.attributes.items() if a.required))


def _model_dims(tt) -> list[int | None]:
    """The model's dimensions; None for a dynamic one (a name, '?', -1 or 0: exporters write all
    of them)."""
    return [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
            for d in tt.shape.dim]


def _shown(tt) -> str:
    return "[" + ", ".join(str(d.dim_value) if d.HasField("dim_value") and d.dim_value > 0 else
                           (d.dim_param or "?") for d in tt.shape.dim) + "]"


# --- converters: one per ONNX op -------------------------------------------------------------

Converter = Callable[[_Importer, str, list, dict, list], list[Value]]
CONVERTERS: dict[str, Converter] = {}


converter = registrar(CONVERTERS)


def _simple(op: str, keep: Sequence[str] = ()):
    def conv(im: _Importer, name, ins, attrs, outs):
        return im.emit(op, ins, {k: attrs[k] for k in keep if k in attrs}, name, outs[:1])
    return conv


for _op in ("Relu", "Sigmoid", "Tanh", "Erf", "Exp", "Sqrt", "Neg", "Abs", "Reciprocal",
            "HardSwish", "Add", "Sub", "Mul", "Div", "Pow", "PRelu", "Identity", "Equal",
            "Where", "Expand", "Range"):
    CONVERTERS[_op] = _simple(_op)
CONVERTERS["LeakyRelu"] = _simple("LeakyRelu", ["alpha"])
CONVERTERS["HardSigmoid"] = _simple("HardSigmoid", ["alpha", "beta"])
CONVERTERS["Gelu"] = _simple("Gelu", ["approximate"])
CONVERTERS["Gather"] = _simple("Gather", ["axis"])
CONVERTERS["LRN"] = _simple("LRN", ["alpha", "beta", "bias", "size"])


def _used(outs: list[str], k: int) -> bool:
    return len(outs) > k and outs[k] in _CONSUMED.get()


def _chain(op: str):
    def conv(im: _Importer, name, ins, attrs, outs):
        acc = ins[0]
        if len(ins) == 1:
            return im.emit("Identity", [acc], {}, name, outs[:1])
        for k, v in enumerate(ins[1:], 1):
            last = k == len(ins) - 1
            acc = im.emit(op, [acc, v], {}, name if last else f"{name}/{k}",
                          outs[:1] if last else [f"{outs[0]}/{k}"])[0]
        return [acc]
    return conv


CONVERTERS["Sum"] = _chain("Add")
CONVERTERS["Max"] = _chain("Max")
CONVERTERS["Min"] = _chain("Min")


def _all_nodes(gp):
    """The nodes of ``gp`` and of every subgraph (If branches) below it."""
    for node in gp.node:
        yield node
        for a in node.attribute:
            if a.type == a.GRAPH:
                yield from _all_nodes(a.g)
            for g in a.graphs:
                yield from _all_nodes(g)


@converter("If")
def _if(im, name, ins, attrs, outs):
    """An ``If`` whose condition folds to a constant (exporters write them for shape checks):
    the taken branch is imported in its place, its initializers as constants."""
    cond = im.const(ins[0], "the condition", name, "If")
    if cond.size != 1:
        raise EdgeqError(f"If '{name}': the condition has {cond.size} elements, expected 1")
    branch = attrs["then_branch"] if bool(cond.reshape(-1)[0]) else attrs["else_branch"]
    if len(branch.output) != len(outs):
        raise EdgeqError(f"If '{name}': the branch has {len(branch.output)} outputs, the node "
                         f"{len(outs)}")
    for t in branch.initializer:
        if t.name in im.origin:
            raise EdgeqError(f"If '{name}': branch initializer '{t.name}' is already defined by "
                             f"{im.origin[t.name]}")
        im.env[t.name] = im.g.add_const(t.name, im._to_array(t))
        im.origin[t.name] = f"an initializer of If '{name}'"
    im.import_nodes(branch.node, prefix=f"{name}/")
    missing = [o.name for o in branch.output if o.name not in im.env]
    if missing:
        raise EdgeqError(f"If '{name}': branch output(s) {missing} are produced by no node")
    return [im.env[o.name] for o in branch.output]


@converter("LSTM")
def _lstm(im, name, ins, attrs, outs):
    return recurrent.lstm(im, name, ins, attrs, outs, lambda k: _used(outs, k))


@converter("GRU")
def _gru(im, name, ins, attrs, outs):
    return recurrent.gru(im, name, ins, attrs, outs, lambda k: _used(outs, k))


@converter("Dropout")
def _dropout(im, name, ins, attrs, outs):
    if _used(outs, 1):
        raise EdgeqError(f"Dropout '{name}': its mask output '{outs[1]}' is used; edgeq compiles "
                         f"inference graphs, where Dropout has no mask")
    return im.emit("Dropout", ins[:1], {}, name, outs[:1])


def _spatial_attrs(im, name, op, attrs, in_hw, kernel, with_dilation=True) -> dict[str, Any]:
    if len(in_hw) != 2:
        raise EdgeqError(f"{op} '{name}': only 2-D (NCHW) is supported, got "
                         f"{len(in_hw)} spatial dims")
    k = list(attrs.get("kernel_shape", kernel))
    s = list(attrs.get("strides", [1, 1]))
    d = list(attrs.get("dilations", [1, 1])) if with_dilation else [1, 1]
    auto = attrs.get("auto_pad", "NOTSET")
    check_window(f"{op} '{name}'", k, s, attrs.get("pads", [0, 0, 0, 0]), d)
    if auto in ("NOTSET", ""):
        p = list(attrs.get("pads", [0, 0, 0, 0]))
    elif auto == "VALID":
        p = [0, 0, 0, 0]
    elif auto in ("SAME_UPPER", "SAME_LOWER"):
        p = [0, 0, 0, 0]
        for i in range(2):
            out = -(-in_hw[i] // s[i])
            total = max(0, (out - 1) * s[i] + (k[i] - 1) * d[i] + 1 - in_hw[i])
            small = total // 2
            p[i], p[i + 2] = (small, total - small) if auto == "SAME_UPPER" else \
                (total - small, small)
    else:
        raise EdgeqError(f"{op} '{name}': unknown auto_pad {auto!r}")
    out = {"kernel_shape": k, "strides": s, "pads": p}
    if with_dilation:
        out["dilations"] = d
    return out


@converter("Conv")
def _conv(im, name, ins, attrs, outs):
    x, w = ins[0], ins[1]
    a = _spatial_attrs(im, name, "Conv", attrs, x.shape[2:], w.shape[2:])
    a["group"] = attrs.get("group", 1)
    return im.emit("Conv", ins[:3], a, name, outs[:1])


@converter("ConvTranspose")
def _conv_transpose(im, name, ins, attrs, outs):
    x, w = ins[0], ins[1]
    a = _spatial_attrs(im, name, "ConvTranspose", {k: v for k, v in attrs.items()
                                                   if k != "auto_pad"}, x.shape[2:], w.shape[2:])
    a["group"] = attrs.get("group", 1)
    a["output_padding"] = list(attrs.get("output_padding", [0, 0]))
    if len(a["output_padding"]) != 2 or len(attrs.get("output_shape", [0, 0])) < 2:
        raise EdgeqError(f"ConvTranspose '{name}': output_padding "
                         f"{a['output_padding']} / output_shape {attrs.get('output_shape')} "
                         f"need 2 spatial values")
    if "output_shape" in attrs or attrs.get("auto_pad", "NOTSET") not in ("NOTSET", "", "VALID"):
        k, s, d = a["kernel_shape"], a["strides"], a["dilations"]
        want = list(attrs.get("output_shape", [x.shape[2 + i] * s[i] for i in range(2)]))[-2:]
        p = [0, 0, 0, 0]
        for i in range(2):
            total = s[i] * (x.shape[2 + i] - 1) + a["output_padding"][i] + (k[i] - 1) * d[i] + 1 \
                - want[i]
            if total < 0:
                raise EdgeqError(f"ConvTranspose '{name}': output_shape {want} is larger than "
                                 f"the full output; output_padding is needed")
            small = total // 2
            # ONNX: SAME_UPPER puts the smaller half first; otherwise the larger half goes first
            p[i], p[i + 2] = (small, total - small) if attrs.get("auto_pad") == "SAME_UPPER" \
                else (total - small, small)
        a["pads"] = p
    return im.emit("ConvTranspose", ins[:3], a, name, outs[:1])


def _pool_conv(op: str):
    def conv(im: _Importer, name, ins, attrs, outs):
        if op == "MaxPool" and _used(outs, 1):
            raise EdgeqError(f"MaxPool '{name}': its indices output is used; not supported")
        if "kernel_shape" not in attrs:
            raise EdgeqError(f"{op} '{name}': kernel_shape attribute is missing")
        a = _spatial_attrs(im, name, op, attrs, ins[0].shape[2:], attrs["kernel_shape"],
                           with_dilation=op == "MaxPool")
        a["ceil_mode"] = attrs.get("ceil_mode", 0)
        if op == "AveragePool":
            a["count_include_pad"] = attrs.get("count_include_pad", 0)
            if attrs.get("dilations", [1, 1]) != [1, 1]:
                raise EdgeqError(f"AveragePool '{name}': dilations are not supported")
        return im.emit(op, ins[:1], a, name, outs[:1])
    return conv


CONVERTERS["MaxPool"] = _pool_conv("MaxPool")
CONVERTERS["AveragePool"] = _pool_conv("AveragePool")


@converter("GlobalAveragePool")
def _gap(im, name, ins, attrs, outs):
    return im.emit("GlobalAveragePool", ins[:1], {}, name, outs[:1])


@converter("Gemm")
def _gemm(im, name, ins, attrs, outs):
    a = {k: attrs[k] for k in ("alpha", "beta", "transA", "transB") if k in attrs}
    return im.emit("Gemm", ins[:3], a, name, outs[:1])


@converter("MatMul")
def _matmul(im, name, ins, attrs, outs):
    return im.emit("MatMul", ins, {}, name, outs[:1])


@converter("Clip")
def _clip(im, name, ins, attrs, outs):
    if im.opset < 11:
        lo, hi = attrs.get("min", -np.inf), attrs.get("max", np.inf)
    else:
        lo_a = im.const(ins[1] if len(ins) > 1 else None, "min", name, "Clip")
        hi_a = im.const(ins[2] if len(ins) > 2 else None, "max", name, "Clip")
        for what, c in (("min", lo_a), ("max", hi_a)):
            if c is not None and c.size != 1:
                raise EdgeqError(f"Clip '{name}': {what} has {c.size} values, expected a scalar")
        lo = -np.inf if lo_a is None else float(lo_a.reshape(-1)[0])
        hi = np.inf if hi_a is None else float(hi_a.reshape(-1)[0])
    if np.isnan(lo) or np.isnan(hi):
        raise EdgeqError(f"Clip '{name}': min {lo} / max {hi} is NaN")
    return im.emit("Clip", ins[:1], {"min": float(lo), "max": float(hi)}, name, outs[:1])


@converter("Softmax")
def _softmax(im, name, ins, attrs, outs):
    x = ins[0]
    r = len(x.shape)
    if im.opset >= 13:
        return im.emit("Softmax", [x], {"axis": _axis(name, "Softmax", attrs.get("axis", -1), r)},
                       name, outs[:1])
    ax = _axis(name, "Softmax", attrs.get("axis", 1), r)
    if ax == r - 1:
        return im.emit("Softmax", [x], {"axis": ax}, name, outs[:1])
    # opset < 13: softmax over the flattened trailing dims [axis, rank)
    flat = (int(np.prod(x.shape[:ax])), int(np.prod(x.shape[ax:])))
    y = im.emit("Reshape", [x], {"shape": list(flat)}, f"{name}/flatten", [f"{outs[0]}/flat"])
    y = im.emit("Softmax", y, {"axis": 1}, f"{name}/softmax", [f"{outs[0]}/soft"])
    return im.emit("Reshape", y, {"shape": list(x.shape)}, name, outs[:1])


@converter("BatchNormalization")
def _bn(im, name, ins, attrs, outs):
    if any(_used(outs, k) for k in range(1, 5)) or attrs.get("training_mode", 0):
        raise EdgeqError(f"BatchNormalization '{name}': training mode (running statistics "
                         f"outputs) is not supported; export the model in eval mode")
    return im.emit("BatchNormalization", ins[:5], {"epsilon": attrs.get("epsilon", 1e-5)},
                   name, outs[:1])


@converter("LayerNormalization")
def _ln(im, name, ins, attrs, outs):
    if _used(outs, 1) or _used(outs, 2):
        raise EdgeqError(f"LayerNormalization '{name}': its mean/inv-std outputs are used; "
                         f"not supported")
    a = {"axis": _axis(name, "LayerNormalization", attrs.get("axis", -1), len(ins[0].shape)),
         "epsilon": attrs.get("epsilon", 1e-5)}
    return im.emit("LayerNormalization", ins[:3], a, name, outs[:1])


def _axis(name: str, op: str, axis: int, rank: int, what: str = "axis") -> int:
    """An ONNX axis (``-rank <= axis < rank``) as ``0 <= axis < rank``."""
    if not -rank <= axis < rank:
        raise EdgeqError(f"{op} '{name}': {what} {axis} is out of range for a rank-{rank} input")
    return axis % rank


def _axes(im, name, op, attrs, ins, idx, rank) -> list[int] | None:
    if "axes" in attrs:
        axes = attrs["axes"]
    elif len(ins) > idx and ins[idx] is not None:
        axes = im.const(ins[idx], "axes", name, op).reshape(-1).tolist()
    else:
        return None
    out = sorted(_axis(name, op, int(a), rank, "axes entry") for a in axes)
    if len(set(out)) != len(out):
        raise EdgeqError(f"{op} '{name}': axes {list(axes)} repeat an axis")
    return out


@converter("ReduceMean")
def _reduce_mean(im, name, ins, attrs, outs):
    axes = _axes(im, name, "ReduceMean", attrs, ins, 1, len(ins[0].shape))
    if axes is None and attrs.get("noop_with_empty_axes", 0):
        return im.emit("Identity", ins[:1], {}, name, outs[:1])
    return im.emit("ReduceMean", ins[:1], {"axes": axes, "keepdims": attrs.get("keepdims", 1)},
                   name, outs[:1])


@converter("Concat")
def _concat(im, name, ins, attrs, outs):
    ins = [v for v in ins if v is not None]
    if not ins:
        raise EdgeqError(f"Concat '{name}': no inputs")
    rank = len(ins[0].shape)
    ax = _axis(name, "Concat", attrs["axis"], rank)
    if any(len(v.shape) != rank for v in ins):
        raise EdgeqError(f"Concat '{name}': inputs of ranks {[len(v.shape) for v in ins]}")
    # empty inputs add nothing (exporters write them); at least one input stays
    ins = [v for v in ins if v.type.size > 0] or ins[:1]
    return im.emit("Concat", ins, {"axis": ax}, name, outs[:1])


@converter("Split")
def _split(im, name, ins, attrs, outs):
    x = ins[0]
    ax = _axis(name, "Split", attrs.get("axis", 0), len(x.shape))
    if "split" in attrs:
        sizes = list(attrs["split"])
    elif len(ins) > 1 and ins[1] is not None:
        sizes = im.const(ins[1], "split", name, "Split").reshape(-1).tolist()
    else:
        n = attrs.get("num_outputs", len(outs))
        if n != len(outs) or not 1 <= n <= max(x.shape[ax], 1):
            raise EdgeqError(f"Split '{name}': num_outputs {n} with {len(outs)} outputs and "
                             f"axis {ax} of size {x.shape[ax]}")
        step = -(-x.shape[ax] // n)
        sizes = [max(min(step, x.shape[ax] - i * step), 0) for i in range(n)]
    if len(sizes) != len(outs):
        raise EdgeqError(f"Split '{name}': {len(sizes)} split sizes for {len(outs)} outputs")
    return im.emit("Split", [x], {"axis": ax, "split": [int(s) for s in sizes]}, name,
                   [o or f"{name}:unused{k}" for k, o in enumerate(outs)])


@converter("Slice")
def _slice(im, name, ins, attrs, outs):
    x = ins[0]
    if im.opset < 10:
        starts, ends = attrs["starts"], attrs["ends"]
        axes = attrs.get("axes", list(range(len(starts))))
        steps = [1] * len(starts)
    else:
        starts = im.const(ins[1], "starts", name, "Slice").reshape(-1).tolist()
        ends = im.const(ins[2], "ends", name, "Slice").reshape(-1).tolist()
        axes = im.const(ins[3], "axes", name, "Slice").reshape(-1).tolist() \
            if len(ins) > 3 and ins[3] else list(range(len(starts)))
        steps = im.const(ins[4], "steps", name, "Slice").reshape(-1).tolist() \
            if len(ins) > 4 and ins[4] else [1] * len(starts)
    starts, ends, axes, steps = (list(np.ravel(v)) for v in (starts, ends, axes, steps))
    if not len(starts) == len(ends) == len(axes) == len(steps):
        raise EdgeqError(f"Slice '{name}': starts {starts}, ends {ends}, axes {axes} and "
                         f"steps {steps} differ in length")
    c_starts, c_ends, c_axes, c_steps = [], [], [], []
    for st, en, ax, sp in zip(starts, ends, axes, steps):
        ax = _axis(name, "Slice", int(ax), len(x.shape), "axes entry")
        st, en, sp = int(st), int(en), int(sp)
        dim = x.shape[ax]
        if sp == 0:
            raise EdgeqError(f"Slice '{name}': step 0 on axis {ax}")
        st = st + dim if st < 0 else st
        en = en + dim if en < 0 else en
        if sp > 0:
            st, en = min(max(st, 0), dim), min(max(en, 0), dim)
        else:
            st, en = min(max(st, 0), dim - 1), min(max(en, -1), dim - 1)
        c_starts.append(int(st))
        c_ends.append(None if en < 0 else int(en))
        c_axes.append(ax)
        c_steps.append(int(sp))
    a = {"starts": c_starts, "ends": c_ends, "axes": c_axes, "steps": c_steps}
    return im.emit("Slice", [x], a, name, outs[:1])


@converter("Pad")
def _pad(im, name, ins, attrs, outs):
    x = ins[0]
    r = len(x.shape)
    if im.opset < 11:
        pads, value = list(attrs["pads"]), attrs.get("value", 0.0)
    else:
        pads = im.const(ins[1], "pads", name, "Pad").reshape(-1).tolist()
        cv = im.const(ins[2], "constant_value", name, "Pad") if len(ins) > 2 and ins[2] else None
        if cv is not None and cv.size != 1:
            raise EdgeqError(f"Pad '{name}': constant_value has {cv.size} values, expected one")
        value = 0.0 if cv is None else cv.reshape(-1)[0].item()
        if len(ins) > 3 and ins[3] is not None:
            axes = _axes(im, name, "Pad", {}, ins, 3, r) or []
            if len(pads) != 2 * len(axes):
                raise EdgeqError(f"Pad '{name}': {len(pads)} pads for {len(axes)} axes")
            full = [0] * (2 * r)
            for k, ax in enumerate(axes):
                full[ax], full[ax + r] = pads[k], pads[k + len(axes)]
            pads = full
    mode = attrs.get("mode", "constant")
    if mode not in ("constant", "reflect", "edge"):
        raise EdgeqError(f"Pad '{name}': mode {mode!r} is not supported")
    return im.emit("Pad", [x], {"pads": [int(p) for p in pads], "mode": mode, "value": value},
                   name, outs[:1])


def _reshape_to(im, name, x, shape, outs):
    return im.emit("Reshape", [x], {"shape": [int(d) for d in shape]}, name, outs[:1])


@converter("Reshape")
def _reshape(im, name, ins, attrs, outs):
    x = ins[0]
    target = [int(d) for d in im.const(ins[1], "shape", name, "Reshape").reshape(-1).tolist()]
    allowzero = attrs.get("allowzero", 0)
    if any(d < -1 for d in target):
        raise EdgeqError(f"Reshape '{name}': target shape {target} has a negative dimension "
                         f"other than -1")
    if not allowzero and any(d == 0 and i >= len(x.shape) for i, d in enumerate(target)):
        raise EdgeqError(f"Reshape '{name}': target shape {target} copies (0) a dimension the "
                         f"rank-{len(x.shape)} input does not have")
    if allowzero and 0 in target and -1 in target:
        raise EdgeqError(f"Reshape '{name}': allowzero with both 0 and -1 in {target}")
    shape = [x.shape[i] if d == 0 and not allowzero else d for i, d in enumerate(target)]
    if shape.count(-1) > 1:
        raise EdgeqError(f"Reshape '{name}': more than one -1 in target shape {target}")
    if -1 in shape:
        known = int(np.prod([d for d in shape if d != -1], dtype=object))
        if known == 0 or x.type.size % known:
            raise EdgeqError(f"Reshape '{name}': cannot reshape {list(x.shape)} to {target}")
        shape[shape.index(-1)] = x.type.size // known
    return _reshape_to(im, name, x, shape, outs)


@converter("Flatten")
def _flatten(im, name, ins, attrs, outs):
    x = ins[0]
    r = len(x.shape)
    ax = attrs.get("axis", 1)
    if not -r <= ax <= r:
        raise EdgeqError(f"Flatten '{name}': axis {ax} is out of range for a rank-{r} input")
    ax = ax % (r + 1) if r else 0
    return _reshape_to(im, name, x, [int(np.prod(x.shape[:ax], dtype=object)),
                                     int(np.prod(x.shape[ax:], dtype=object))], outs)


@converter("Squeeze")
def _squeeze(im, name, ins, attrs, outs):
    x = ins[0]
    axes = _axes(im, name, "Squeeze", attrs, ins, 1, len(x.shape))
    if axes is None:
        axes = [i for i, d in enumerate(x.shape) if d == 1]
    for a in axes:
        if x.shape[a] != 1:
            raise EdgeqError(f"Squeeze '{name}': axis {a} has size {x.shape[a]}, not 1")
    return _reshape_to(im, name, x, [d for i, d in enumerate(x.shape) if i not in axes], outs)


@converter("Unsqueeze")
def _unsqueeze(im, name, ins, attrs, outs):
    x = ins[0]
    n = len(attrs["axes"]) if "axes" in attrs else ins[1].type.size if len(ins) > 1 and \
        ins[1] is not None else 0
    axes = _axes(im, name, "Unsqueeze", attrs, ins, 1, len(x.shape) + n)
    if not axes:
        raise EdgeqError(f"Unsqueeze '{name}': no axes given")
    shape = list(x.shape)
    for a in axes:
        shape.insert(a, 1)
    return _reshape_to(im, name, x, shape, outs)


@converter("Transpose")
def _transpose(im, name, ins, attrs, outs):
    r = len(ins[0].shape)
    perm = [_axis(name, "Transpose", int(p), r, "perm entry")
            for p in attrs.get("perm", list(range(r))[::-1])]
    return im.emit("Transpose", ins[:1], {"perm": perm}, name, outs[:1])


@converter("Resize", "Upsample")
def _resize(im, name, ins, attrs, outs):
    x = ins[0]
    op = "Upsample" if im.opset < 10 or (len(ins) == 2 and im.opset == 10) else "Resize"
    mode = attrs.get("mode", "nearest")
    if mode not in ("nearest", "linear", "bilinear"):
        raise EdgeqError(f"{op} '{name}': mode {mode!r} is not supported (nearest, linear)")
    mode = "linear" if mode == "bilinear" else mode
    if attrs.get("antialias", 0):
        raise EdgeqError(f"Resize '{name}': antialias=1 is not supported")
    if "axes" in attrs:
        raise EdgeqError(f"Resize '{name}': the axes attribute is not supported")
    scales = sizes = None
    if op == "Upsample" or im.opset == 10:
        if "scales" not in attrs and (len(ins) < 2 or ins[1] is None):
            raise EdgeqError(f"{op} '{name}': scales is missing")
        scales = attrs["scales"] if "scales" in attrs else \
            im.const(ins[1], "scales", name, op).reshape(-1).tolist()
        ctm = "asymmetric"
    else:
        if len(ins) > 3 and ins[3] is not None and ins[3].type.size:
            sizes = [int(s) for s in im.const(ins[3], "sizes", name, op).reshape(-1).tolist()]
        elif len(ins) > 2 and ins[2] is not None and ins[2].type.size:
            scales = im.const(ins[2], "scales", name, op).reshape(-1).tolist()
        else:
            raise EdgeqError(f"Resize '{name}': neither scales nor sizes is given")
        ctm = attrs.get("coordinate_transformation_mode", "half_pixel")
        if ctm == "tf_crop_and_resize":
            raise EdgeqError(f"Resize '{name}': tf_crop_and_resize is not supported")
    given = sizes if sizes is not None else scales
    if len(given) != len(x.shape):
        raise EdgeqError(f"{op} '{name}': {len(given)} {'sizes' if sizes else 'scales'} for a "
                         f"rank-{len(x.shape)} input")
    if sizes is None:
        if not all(np.isfinite(s) and s > 0 for s in scales):
            raise EdgeqError(f"{op} '{name}': scales {scales} must be finite and positive")
        sizes = [int(np.floor(d * s)) for d, s in zip(x.shape, scales)]
    else:
        if any(s <= 0 for s in sizes) or 0 in x.shape:
            raise EdgeqError(f"{op} '{name}': sizes {sizes} of input {list(x.shape)}: every "
                             f"size must be positive")
        scales = [o / i for o, i in zip(sizes, x.shape)]
    nearest = attrs.get("nearest_mode", "round_prefer_floor")
    if nearest not in ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil"):
        raise EdgeqError(f"{op} '{name}': nearest_mode {nearest!r} is not an ONNX mode")
    if ctm not in ("half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric",
                   "tf_half_pixel_for_nn"):
        raise EdgeqError(f"{op} '{name}': coordinate_transformation_mode {ctm!r} is not "
                         f"supported")
    if any(s != 1 for s in list(scales)[:2]):
        raise EdgeqError(f"{op} '{name}': only spatial axes may be resized, scales {scales}")
    a = {"mode": mode, "coordinate_transformation_mode": ctm, "sizes": sizes,
         "scales": [float(s) for s in scales],
         "nearest_mode": attrs.get("nearest_mode", "round_prefer_floor" if op == "Resize"
                                   and im.opset >= 11 else "floor")}
    return im.emit("Resize", [x], a, name, outs[:1])


@converter("Constant")
def _constant(im, name, ins, attrs, outs):
    if "value" in attrs:
        arr = np.asarray(attrs["value"])
    elif "value_float" in attrs:
        arr = np.array(attrs["value_float"], np.float32)
    elif "value_floats" in attrs:
        arr = np.array(attrs["value_floats"], np.float32)
    elif "value_int" in attrs:
        arr = np.array(attrs["value_int"], np.int64)
    elif "value_ints" in attrs:
        arr = np.array(attrs["value_ints"], np.int64)
    else:
        raise EdgeqError(f"Constant '{name}': unsupported value kind {sorted(attrs)}")
    if len(attrs) != 1:
        raise EdgeqError(f"Constant '{name}': exactly one value attribute expected, got "
                         f"{sorted(attrs)}")
    if arr.dtype == object or arr.dtype.kind not in "biuf":
        raise EdgeqError(f"Constant '{name}': value of type {arr.dtype} is not supported")
    return [im.g.add_const(outs[0], arr)]


@converter("ConstantOfShape")
def _const_of_shape(im, name, ins, attrs, outs):
    im.const(ins[0], "shape", name, "ConstantOfShape")
    return im.emit("ConstantOfShape", ins[:1],
                   {"value": attrs.get("value", np.zeros(1, np.float32))}, name, outs[:1])


@converter("Shape")
def _shape(im, name, ins, attrs, outs):
    a = {"start": attrs.get("start", 0)}
    if "end" in attrs:
        a["end"] = attrs["end"]
    dims = np.array(ins[0].shape, np.int64)[a["start"]: a.get("end")]
    return [im.g.add_const(outs[0], dims)]


@converter("Cast")
def _cast(im, name, ins, attrs, outs):
    to = _np_dtype(attrs["to"], f"Cast '{name}': to").name
    return im.emit("Cast", ins[:1], {"to": to}, name, outs[:1])
