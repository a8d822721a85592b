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

import os
import contextvars
from typing import Any, Callable, Sequence

import numpy as np

from edgeq.frontend import recurrent
from edgeq.ir.graph import DType, EdgeqError, Graph, TensorType, Value
from edgeq.passes.constant_folding import fold_node
from edgeq.ops import infer_node
from edgeq.ir.registry import registrar

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
    name = os.path.splitext(os.path.basename(path))[0]
    return from_onnx(model, input_shapes, name=name,
                     base_dir=os.path.dirname(os.path.abspath(path)))


def from_onnx(model: Any, input_shapes: dict[str, Sequence[int]] | None = None,
              name: str | None = None, base_dir: str | None = None) -> Graph:
    """``base_dir``: the model's folder, the only place its external data may come from (None:
    a model in memory, whose external data is refused)."""
    return _Importer(model, input_shapes or {}, name, base_dir).run()


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

    # --- helpers ------------------------------------------------------------------------------
    def _to_array(self, t) -> np.ndarray:
        if t.data_location == self.onnx.TensorProto.EXTERNAL:
            return read_external(t, self.base_dir)
        try:
            return self.nh.to_array(t)
        except Exception as e:  # external data missing, bad raw data size...
            raise EdgeqError(f"tensor '{t.name}': cannot read its data ({e})") from None

    def _attrs(self, node) -> dict[str, Any]:
        out = {}
        for a in node.attribute:
            v = self.onnx.helper.get_attribute_value(a)
            if isinstance(v, bytes):
                v = v.decode()
            elif isinstance(v, self.onnx.TensorProto):
                v = self._to_array(v)
            elif isinstance(v, list):
                v = [x.decode() if isinstance(x, bytes) else x for x in v]
            out[a.name] = v
        return out

    def emit(self, op: str, inputs: list[Value | None], attrs: dict[str, Any], name: str,
             out_names: Sequence[str]) -> list[Value]:
        """Add one canonical node; fold it right away if every input is constant."""
        node = self.g.add_node(op, inputs, [TensorType(DType.FLOAT32, ())] * len(out_names),
                               attrs, name=self.g.unique_name(name),
                               output_names=[f"{n}__tmp" for n in out_names])
        folded = fold_node(self.g, node)
        if folded is None:
            for v, t in zip(node.outputs, infer_node(node)):
                v.type = t
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
            arr = self._to_array(t)
            self.env[t.name] = self.g.add_value(t.name, TensorType(DType.from_numpy(arr.dtype),
                                                                   tuple(arr.shape)), arr)
        real_inputs = [vi.name for vi in gp.input if vi.name not in inits]
        # "#k" keys (from a CLI shape given without a name) mean the k-th input
        self.input_shapes = {(real_inputs[int(k[1:])] if k.startswith("#") and k[1:].isdigit()
                              and int(k[1:]) < len(real_inputs) else k): v
                             for k, v in self.input_shapes.items()}
        for vi in gp.input:
            if vi.name in inits:
                continue
            self.env[vi.name] = self.g.add_input(vi.name, self._input_type(vi))
        unknown = set(self.input_shapes) - {v.name for v in self.g.inputs}
        if unknown:
            raise EdgeqError(f"--input-shape names {sorted(unknown)}, but the model's inputs are "
                             f"{[v.name for v in self.g.inputs]}")
        self.import_nodes(gp.node)
        for vi in gp.output:
            if vi.name not in self.env:
                raise EdgeqError(f"graph output '{vi.name}' is produced by no node")
            self.g.outputs.append(self.env[vi.name])
        self.g.prune_values()
        return self.g

    def import_nodes(self, nodes, prefix: str = "") -> None:
        """Convert ``nodes`` in order into ``self.env`` (names of a subgraph's nodes get
        ``prefix``)."""
        for k, node in enumerate(nodes):
            name = prefix + (node.name or f"{node.op_type.lower()}_{k}")
            ins = []
            for i in node.input:
                if not i:
                    ins.append(None)
                elif i not in self.env:
                    raise EdgeqError(f"{node.op_type} '{name}': input '{i}' is not produced by "
                                     f"any earlier node (graph not topologically sorted or "
                                     f"malformed)")
                else:
                    ins.append(self.env[i])
            try:
                outs = CONVERTERS[node.op_type](self, name, ins, self._attrs(node),
                                                list(node.output))
            except EdgeqError:
                raise
            except Exception as e:  # a malformed node must give one line, not a traceback
                raise EdgeqError(f"{node.op_type} '{name}': cannot import this node "
                                 f"({type(e).__name__}: {e})") from None
            for oname, v in zip(node.output, outs):
                if oname:
                    self.env[oname] = v

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
        dtype = DType.from_numpy(self.onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type))
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
        im.env[t.name] = im.g.add_const(t.name, im._to_array(t))
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
        lo = -np.inf if lo_a is None else float(lo_a.reshape(-1)[0])
        hi = np.inf if hi_a is None else float(hi_a.reshape(-1)[0])
    return im.emit("Clip", ins[:1], {"min": float(lo), "max": float(hi)}, name, outs[:1])


@converter("Softmax")
def _softmax(im, name, ins, attrs, outs):
    x = ins[0]
    r = len(x.shape)
    if im.opset >= 13:
        return im.emit("Softmax", [x], {"axis": attrs.get("axis", -1) % r}, name, outs[:1])
    ax = attrs.get("axis", 1) % r
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
    a = {"axis": attrs.get("axis", -1) % len(ins[0].shape), "epsilon": attrs.get("epsilon", 1e-5)}
    return im.emit("LayerNormalization", ins[:3], a, name, outs[:1])


def _axes(im, name, op, attrs, ins, idx, rank) -> list[int] | None:
    if "axes" in attrs:
        axes = attrs["axes"]
    elif len(ins) > idx and ins[idx] is not None:
        axes = im.const(ins[idx], "axes", name, op).tolist()
    else:
        return None
    return sorted(int(a) % rank for a in axes)


@converter("ReduceMean")
def _reduce_mean(im, name, ins, attrs, outs):
    axes = _axes(im, name, "ReduceMean", attrs, ins, 1, len(ins[0].shape))
    if axes is None and attrs.get("noop_with_empty_axes", 0):
        return im.emit("Identity", ins[:1], {}, name, outs[:1])
    return im.emit("ReduceMean", ins[:1], {"axes": axes, "keepdims": attrs.get("keepdims", 1)},
                   name, outs[:1])


@converter("Concat")
def _concat(im, name, ins, attrs, outs):
    ins = [v for v in ins if v is not None and v.type.size > 0 or len(ins) == 1]
    return im.emit("Concat", ins, {"axis": attrs["axis"] % len(ins[0].shape)}, name, outs[:1])


@converter("Split")
def _split(im, name, ins, attrs, outs):
    x = ins[0]
    ax = attrs.get("axis", 0) % len(x.shape)
    if "split" in attrs:
        sizes = list(attrs["split"])
    elif len(ins) > 1 and ins[1] is not None:
        sizes = im.const(ins[1], "split", name, "Split").tolist()
    else:
        n = attrs.get("num_outputs", len(outs))
        step = -(-x.shape[ax] // n)
        sizes = [min(step, x.shape[ax] - i * step) for i in range(n)]
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
        starts = im.const(ins[1], "starts", name, "Slice").tolist()
        ends = im.const(ins[2], "ends", name, "Slice").tolist()
        axes = im.const(ins[3], "axes", name, "Slice").tolist() if len(ins) > 3 and ins[3] \
            else list(range(len(starts)))
        steps = im.const(ins[4], "steps", name, "Slice").tolist() if len(ins) > 4 and ins[4] \
            else [1] * len(starts)
    c_starts, c_ends, c_axes, c_steps = [], [], [], []
    for st, en, ax, sp in zip(starts, ends, axes, steps):
        ax = int(ax) % len(x.shape)
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
        pads = im.const(ins[1], "pads", name, "Pad").tolist()
        cv = im.const(ins[2], "constant_value", name, "Pad") if len(ins) > 2 and ins[2] else None
        value = 0.0 if cv is None else cv.reshape(-1)[0].item()
        if len(ins) > 3 and ins[3] is not None:
            axes = [int(a) % r for a in im.const(ins[3], "axes", name, "Pad").tolist()]
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
    target = [int(d) for d in im.const(ins[1], "shape", name, "Reshape").tolist()]
    allowzero = attrs.get("allowzero", 0)
    shape = [x.shape[i] if d == 0 and not allowzero else d for i, d in enumerate(target)]
    if shape.count(-1) > 1:
        raise EdgeqError(f"Reshape '{name}': more than one -1 in target shape {target}")
    if -1 in shape:
        known = int(np.prod([d for d in shape if d != -1]))
        if known == 0 or x.type.size % known:
            raise EdgeqError(f"Reshape '{name}': cannot reshape {list(x.shape)} to {target}")
        shape[shape.index(-1)] = x.type.size // known
    return _reshape_to(im, name, x, shape, outs)


@converter("Flatten")
def _flatten(im, name, ins, attrs, outs):
    x = ins[0]
    ax = attrs.get("axis", 1) % (len(x.shape) + 1) if x.shape else 0
    return _reshape_to(im, name, x, [int(np.prod(x.shape[:ax])), int(np.prod(x.shape[ax:]))],
                       outs)


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
    n = len(attrs["axes"]) if "axes" in attrs else ins[1].type.size
    axes = _axes(im, name, "Unsqueeze", attrs, ins, 1, len(x.shape) + n)
    shape = list(x.shape)
    for a in axes:
        shape.insert(a, 1)
    return _reshape_to(im, name, x, shape, outs)


@converter("Transpose")
def _transpose(im, name, ins, attrs, outs):
    r = len(ins[0].shape)
    perm = [int(p) % r for p in attrs.get("perm", list(range(r))[::-1])]
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
        scales = attrs["scales"] if "scales" in attrs else \
            im.const(ins[1], "scales", name, op).tolist()
        ctm = "asymmetric"
    else:
        if len(ins) > 3 and ins[3] is not None and ins[3].type.size:
            sizes = [int(s) for s in im.const(ins[3], "sizes", name, op).tolist()]
        elif len(ins) > 2 and ins[2] is not None and ins[2].type.size:
            scales = im.const(ins[2], "scales", name, op).tolist()
        else:
            raise EdgeqError(f"Resize '{name}': neither scales nor sizes is given")
        ctm = attrs.get("coordinate_transformation_mode", "half_pixel")
        if ctm == "tf_crop_and_resize":
            raise EdgeqError(f"Resize '{name}': tf_crop_and_resize is not supported")
    if sizes is None:
        sizes = [int(np.floor(d * s)) for d, s in zip(x.shape, scales)]
    else:
        scales = [o / i for o, i in zip(sizes, x.shape)]
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
    to = np.dtype(im.onnx.helper.tensor_dtype_to_np_dtype(attrs["to"])).name
    DType.from_numpy(to)
    return im.emit("Cast", ins[:1], {"to": to}, name, outs[:1])
