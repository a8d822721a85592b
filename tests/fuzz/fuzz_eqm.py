"""Fuzz the model-file loader: ``.eqm`` bytes -> ``serialize.load`` -> ``api.inspect`` -> the
reference interpreter (integer or float) on one zero or random input when the model is small.

Byte mutation of a zip mostly breaks its CRCs, so a structure-aware mutator (``mutate``) does
most of the work: it unzips the input, edits ``graph.json`` as JSON (numbers to 0 / -1 / huge,
types swapped, keys dropped, nodes duplicated, reordered or cycled, names made to collide or
dangle, dtypes, shapes, quantization parameters and op names changed) or replaces one tensor
member (wrong shape or dtype, truncated, object header), and re-zips it with valid CRCs; one
input in ten gets libFuzzer's byte mutation instead. Seeds: every integer-op case of
``tests/helpers.CASES`` (float, integer and TFLite-rounding forms) and the quantized zoo models
(``build/models``), cached in ``build/fuzz/eqm_seeds``. See ``tests/fuzz/harness.py``."""

from __future__ import annotations

import copy
import io
import json
import math
import os
import random
import warnings
import zipfile
import zlib
from typing import Any

import atheris
import numpy as np

# the caps stay honoured at any size: smaller ones keep each input fast (EdgeqError past them)
os.environ.setdefault("EDGEQ_MAX_TENSOR_BYTES", str(64 << 20))
os.environ.setdefault("EDGEQ_MAX_ACTIVATION_BYTES", str(16 << 20))

with atheris.instrument_imports(include=["edgeq"]):
    from edgeq import api, serialize
    from edgeq.ir.graph import DType, Graph
    from edgeq.ops import all_ops, macs
    from edgeq.quant.pipeline import is_integer, run_integer
    from edgeq.runtime.reference import run_graph

from tests.fuzz import harness

TMP = harness.scratch("eqm")
PATH = os.path.join(TMP, "model.eqm")
SEED_DIR = os.path.join(harness.ROOT, "build", "fuzz", "eqm_seeds")
MAX_RUN_ELEMENTS = 100_000  # run the interpreter only on models this small ...
MAX_RUN_COST = 20_000_000  # ... whose MACs plus pooled window elements stay below this


def _run_cost(g: Graph) -> int:
    cost = 0
    for n in g.nodes:
        window = n.attrs.get("kernel_shape")
        k = math.prod(window) if isinstance(window, list) else 1
        cost += macs(n) + sum(v.type.size for v in n.outputs) * max(k, 1)
    return cost


def one_input(data: bytes) -> None:
    with open(PATH, "wb") as f:
        f.write(data)
    g = serialize.load(PATH)
    api.inspect(g)
    if sum(v.type.size for v in g.inputs) > MAX_RUN_ELEMENTS or _run_cost(g) > MAX_RUN_COST:
        return
    rng = np.random.default_rng(zlib.crc32(data))
    zero = rng.random() < 0.5

    def sample(shape: tuple[int, ...]) -> np.ndarray:
        return np.zeros(shape, np.float32) if zero else rng.normal(0, 2, shape).astype(
            np.float32)
    if len(g.inputs) == 1:
        api.run(g, sample((1,) + g.inputs[0].shape))
        return
    feeds = {v.name: sample(v.shape) for v in g.inputs}
    run_integer(g, feeds) if is_integer(g) else run_graph(g, feeds)


# --- the structure-aware mutator ------------------------------------------------------------

OPS = all_ops()
DTYPES = [d.value for d in DType] + ["object", "complex64", "float128", "", "int"]
INTS = [0, -1, 1, 2, 3, 7, 8, 31, 32, 63, 64, 127, 128, -128, -129, 255, 256, 65535,
        2 ** 31 - 1, 2 ** 31, 2 ** 32, 2 ** 62, 2 ** 63, -2 ** 63, 10 ** 9, 10 ** 20]
FLOATS = [0.0, -0.0, -1.0, 1e-45, 1e-300, 1e300, float("nan"), float("inf"), float("-inf"),
          0.5, 3.0]
OTHERS: list[Any] = [None, True, False, "", "x", [], {}, [0], [[1]], {"tensor": "tensors/0.npy"},
                     {"float": "nan"}, {"float": "bogus"}, {"tensor": 3}, 1.5, "NaN"]


def _slots(obj: Any, out: list[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    """Every (container, key) pair in a JSON tree."""
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) \
        if isinstance(obj, list) else ()
    for k, v in items:
        out.append((obj, k))
        _slots(v, out)
    return out


def _mutate_value(v: Any, rng: random.Random, names: list[str]) -> Any:
    r = rng.random()
    if isinstance(v, bool) or r < 0.15:
        return rng.choice(OTHERS + INTS[:4] + FLOATS[:3])
    if isinstance(v, int):
        return rng.choice(INTS + [v + 1, v - 1, -v, v * 1000, float(v)])
    if isinstance(v, float):
        return rng.choice(FLOATS + [v * 2, -v, v * 1e20, int(v) if math.isfinite(v) else 0])
    if isinstance(v, str):
        return rng.choice(names + OPS + DTYPES + [v + "_", v[:-1], v * 2]) if names else v + "_"
    if isinstance(v, list):
        v = list(v)
        if not v or r < 0.3:
            v.append(copy.deepcopy(rng.choice(v)) if v else rng.choice(INTS + OTHERS))
        elif r < 0.5:
            v.pop(rng.randrange(len(v)))
        elif r < 0.6:
            v.reverse()
        elif r < 0.7:
            rng.shuffle(v)
        elif r < 0.8:
            v = []
        else:
            i = rng.randrange(len(v))
            v[i] = _mutate_value(v[i], rng, names)
        return v
    if isinstance(v, dict):
        v = dict(v)
        if v and r < 0.6:
            v.pop(rng.choice(sorted(v)))
        else:
            v[rng.choice(["tensor", "float", "scale", "axis", "x", "dtype"])] = rng.choice(
                OTHERS + INTS[:4])
        return v
    return rng.choice(OTHERS)


def _mutate_doc(doc: Any, rng: random.Random, members: list[str]) -> Any:
    """One edit of a parsed graph.json (returns the new document)."""
    if not isinstance(doc, dict):
        return _mutate_value(doc, rng, [])
    values = [v for v in doc.get("values", []) if isinstance(v, dict)] \
        if isinstance(doc.get("values"), list) else []
    nodes = [n for n in doc.get("nodes", []) if isinstance(n, dict)] \
        if isinstance(doc.get("nodes"), list) else []
    names = [v["name"] for v in values if isinstance(v.get("name"), str)]
    which = rng.randrange(16)
    if which == 0 or not (values and nodes):  # anywhere in the tree
        slots = _slots(doc, [])
        if slots:
            obj, k = rng.choice(slots)
            if isinstance(obj, dict) and rng.random() < 0.2:
                del obj[k]
            else:
                obj[k] = _mutate_value(obj[k], rng, names)
        return doc
    node = rng.choice(nodes)
    value = rng.choice(values)
    if which == 1:  # reorder / duplicate / drop nodes
        lst = doc["nodes"]
        r = rng.random()
        if r < 0.3 and len(lst) > 1:
            i, j = rng.sample(range(len(lst)), 2)
            lst[i], lst[j] = lst[j], lst[i]
        elif r < 0.5:
            lst.reverse()
        elif r < 0.8:
            lst.insert(rng.randrange(len(lst) + 1), copy.deepcopy(node))
        else:
            lst.remove(node)
    elif which == 2:  # an input dangles, reads a later output (a cycle), or is null
        if node.get("inputs"):
            r = rng.random()
            i = rng.randrange(len(node["inputs"]))
            later = [o for n in nodes[nodes.index(node):] for o in n.get("outputs", [])
                     if isinstance(o, str)]
            node["inputs"][i] = "missing" if r < 0.3 else None if r < 0.45 else \
                rng.choice(later) if later and r < 0.8 else rng.choice(names)
        else:
            node["inputs"] = [rng.choice(names)]
    elif which == 3:  # outputs: collide, vanish, multiply
        outs = node.get("outputs")
        r = rng.random()
        if isinstance(outs, list) and outs and r < 0.5:
            outs[rng.randrange(len(outs))] = rng.choice(names)
        elif r < 0.7:
            node["outputs"] = []
        else:
            node["outputs"] = list(outs or []) + [rng.choice(names)]
    elif which == 4:  # another op (perhaps with another op's attributes)
        node["op"] = rng.choice(OPS)
        if rng.random() < 0.5:
            node["attrs"] = copy.deepcopy(rng.choice(nodes).get("attrs", {}))
    elif which == 5:  # node names collide
        node["name"] = rng.choice(nodes).get("name")
    elif which == 6:  # value names collide
        value["name"] = rng.choice(names)
    elif which == 7:  # dtype
        value["dtype"] = rng.choice(DTYPES)
    elif which == 8:  # shape
        shape = value.get("shape")
        shape = list(shape) if isinstance(shape, list) else []
        r = rng.random()
        if shape and r < 0.4:
            i = rng.randrange(len(shape))
            shape[i] = rng.choice([0, 1, 2, -1, 3, 1000, 2 ** 31, 10 ** 9]) if r < 0.3 else \
                shape[i] * 2
        elif shape and r < 0.6:
            shape.pop(rng.randrange(len(shape)))
        elif r < 0.8:
            shape.insert(rng.randrange(len(shape) + 1), rng.choice([1, 2, 0]))
        else:
            shape = []
        value["shape"] = shape
    elif which == 9:  # quantization parameters
        qp = value.get("qparams")
        qp = dict(qp) if isinstance(qp, dict) else {"scale": [0.1], "zero_point": [0],
                                                     "axis": None}
        r = rng.random()
        if r < 0.15:
            qp["scale"] = []
        elif r < 0.3:
            qp["scale"] = [rng.choice([0.0, -1.0, float("nan"), float("inf"), 1e-40, 1e38])]
        elif r < 0.45:
            qp["zero_point"] = list(qp.get("zero_point") or []) + [0]
        elif r < 0.6:
            qp["zero_point"] = [rng.choice([-129, 128, 300, 2 ** 40, 1.5])]
        elif r < 0.75:
            qp["axis"] = rng.choice([None, 0, 1, 3, 7, -1, -9, "0"])
        elif r < 0.85:
            qp["scale"] = list(qp.get("scale") or [1.0]) * 3
        elif r < 0.93:
            value.pop("qparams", None)
            return doc
        else:
            qp.pop(rng.choice(["scale", "zero_point", "axis"]))
        value["qparams"] = qp
    elif which == 10:  # an attribute (perhaps one another node has)
        attrs = node.get("attrs")
        if isinstance(attrs, dict):
            donors = [(k, v) for n in nodes if isinstance(n.get("attrs"), dict)
                      for k, v in n["attrs"].items()]
            r = rng.random()
            if attrs and r < 0.25:
                attrs.pop(rng.choice(sorted(attrs)))
            elif donors and r < 0.5:
                k, v = rng.choice(donors)
                attrs[k] = copy.deepcopy(v)
            elif attrs:
                k = rng.choice(sorted(attrs))
                attrs[k] = _mutate_value(attrs[k], rng, names)
    elif which == 11:  # graph inputs and outputs
        key = rng.choice(["inputs", "outputs"])
        r = rng.random()
        lst = doc.get(key) if isinstance(doc.get(key), list) else []
        if r < 0.3:
            doc[key] = []
        elif r < 0.6:
            doc[key] = lst + [rng.choice(names + ["missing"])]
        elif lst:
            lst[rng.randrange(len(lst))] = rng.choice(names + ["missing"])
    elif which == 12:  # a constant's data: another member, a missing one, none
        r = rng.random()
        if r < 0.5 and members:
            value["const"] = rng.choice(members)
        elif r < 0.7:
            value["const"] = "tensors/missing.npy"
        elif "const" in value:
            del value["const"]
        else:
            value["const"] = rng.choice(members) if members else "graph.json"
    elif which == 13:  # the integer flag
        md = doc.get("metadata")
        if isinstance(md, dict):
            md["quantized"] = rng.choice(["int", "float", None, 1])
    elif which == 14:  # the whole document: top-level keys dropped or swapped
        k = rng.choice(sorted(doc))
        if rng.random() < 0.5:
            del doc[k]
        else:
            doc[k] = _mutate_value(doc[k], rng, names)
    else:  # node inputs swapped, added or removed (arity)
        ins = node.get("inputs")
        if isinstance(ins, list):
            r = rng.random()
            if ins and r < 0.35:
                ins.pop(rng.randrange(len(ins)))
            elif r < 0.7:
                ins.append(rng.choice(names + [None]))
            elif len(ins) > 1:
                i, j = rng.sample(range(len(ins)), 2)
                ins[i], ins[j] = ins[j], ins[i]
    return doc


def _npy(shape: tuple[int, ...], descr: str, body: bytes | None = None,
         fortran: bool = False) -> bytes:
    b = io.BytesIO()
    np.lib.format.write_array_header_1_0(b, {"descr": descr, "fortran_order": fortran,
                                             "shape": shape})
    if body is None:
        body = bytes(math.prod(shape) * max(np.dtype(descr).itemsize if descr != "|O" else 8,
                                            1))
    return b.getvalue() + body


def _mutate_tensor(members: dict[str, bytes], rng: random.Random) -> None:
    paths = sorted(p for p in members if p != "graph.json")
    if not paths:
        return
    p = rng.choice(paths)
    data = members[p]
    r = rng.random()
    try:
        a = np.lib.format.read_array(io.BytesIO(data), allow_pickle=False)
    except Exception:
        a = None
    if r < 0.15:
        members[p] = data[:rng.randrange(len(data) + 1)]
    elif r < 0.25:
        del members[p]
    elif r < 0.35:
        members[p] = _npy((1,), "|O", b"\x80\x04N.")
    elif r < 0.45:
        members[p] = _npy((10 ** 6, 10 ** 6), "<f4", b"\0" * 16)
    elif a is not None and r < 0.6:  # same data, another dtype
        dt = rng.choice(["<f4", "<f8", "|i1", "|u1", "<i2", "<i4", "<i8", "|b1", "<f2", "<c8"])
        b = io.BytesIO()
        np.save(b, a.astype(dt) if rng.random() < 0.7 else a.reshape(-1).view(np.uint8))
        members[p] = b.getvalue()
    elif a is not None and r < 0.8:  # another shape
        flat = a.reshape(-1)
        shapes = [(flat.size,), (1,) + a.shape, a.shape[::-1], (), (0,), a.shape[:-1]]
        shape = rng.choice(shapes)
        b = io.BytesIO()
        np.save(b, np.resize(flat, shape) if math.prod(shape) else np.zeros(shape, a.dtype))
        members[p] = b.getvalue()
    elif a is not None and r < 0.88:  # extreme values
        b = io.BytesIO()
        if a.dtype.kind == "f":
            bad = rng.choice([np.nan, np.inf, -np.inf, 1e38, 0.0])
        elif a.dtype.kind in "iu":
            bad = rng.choice([np.iinfo(a.dtype).min, np.iinfo(a.dtype).max, 0])
        else:
            bad = 0
        np.save(b, np.full_like(a, bad))
        members[p] = b.getvalue()
    elif r < 0.93:
        members[p] = data.replace(b"False", b"True", 1)  # fortran order
    else:
        members[p] = atheris.Mutate(data, max(len(data) * 2, 64))


def _unzip(data: bytes) -> dict[str, bytes] | None:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            infos = z.infolist()
            if sum(i.file_size for i in infos) > 16 << 20:
                return None
            return {i.filename: z.read(i) for i in infos}
    except Exception:  # a damaged archive: libFuzzer's byte mutation takes it from here
        return None


def _zip(members: dict[str, bytes], rng: random.Random) -> bytes:
    buf = io.BytesIO()
    method = zipfile.ZIP_STORED if rng.random() < 0.5 else zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(buf, "w", method) as z:
        for k, v in members.items():
            z.writestr(k, v)
    return buf.getvalue()


def mutate(data: bytes, max_size: int, seed: int) -> bytes:
    """libFuzzer's custom mutator: one structured edit of the archive's members."""
    rng = random.Random(seed)
    members = _unzip(data)
    if members is None or rng.random() < 0.1:
        return atheris.Mutate(data, max_size)
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")  # casts of the mutated arrays
            out = _mutate_members(members, rng)
    except Exception:  # an edit this mutator cannot make on this input: mutate bytes instead
        return atheris.Mutate(data, max_size)
    return out if len(out) <= max_size else atheris.Mutate(data, max_size)


def _mutate_members(members: dict[str, bytes], rng: random.Random) -> bytes:
    if "graph.json" in members and rng.random() < 0.8:
        try:
            doc = json.loads(members["graph.json"])
        except ValueError:
            doc = None
        if doc is None or rng.random() < 0.03:
            text = members["graph.json"]
            members["graph.json"] = atheris.Mutate(text, len(text) + 64)
        else:
            tensors = sorted(p for p in members if p != "graph.json")
            for _ in range(1 + int(rng.random() < 0.3) + int(rng.random() < 0.1)):
                doc = _mutate_doc(doc, rng, tensors)
            members["graph.json"] = json.dumps(doc).encode()
    else:
        _mutate_tensor(members, rng)
    return _zip(members, rng)


# --- seeds ----------------------------------------------------------------------------------

def _build_seeds() -> dict[str, bytes]:
    import edgeq
    from tests.helpers import CASES, ZOO, float_and_data, quantized_case

    out: dict[str, bytes] = {}
    for case in CASES:
        fg, res, x = quantized_case(case, samples=8)
        out[f"{case}_float"] = serialize.to_bytes(fg)
        out[f"{case}_int"] = serialize.to_bytes(res.graph)
        try:
            tfl = edgeq.quantize(fg, x, equalize=False, rounding="tflite").graph
            out[f"{case}_tflite"] = serialize.to_bytes(tfl)
        except Exception:  # a case TFLite's rounding does not take: its edgeq form is a seed
            pass
    zoo = os.path.join(harness.ROOT, "build", "models")
    if os.path.exists(os.path.join(zoo, "manifest.json")):
        for name in ZOO:
            fg, data = float_and_data(name, zoo, n=8)
            res = edgeq.quantize(fg, data, equalize=False, weight_rounding="nearest",
                                 eval_samples=4)
            out[f"zoo_{name}_int"] = serialize.to_bytes(res.graph)
    return out


def seeds() -> dict[str, bytes]:
    """The seed models, built once into ``build/fuzz/eqm_seeds`` (delete it to rebuild)."""
    if not os.path.isdir(SEED_DIR) or not os.listdir(SEED_DIR):
        built = _build_seeds()
        os.makedirs(SEED_DIR + ".tmp", exist_ok=True)
        for k, v in built.items():
            with open(os.path.join(SEED_DIR + ".tmp", k + ".eqm"), "wb") as f:
                f.write(v)
        os.replace(SEED_DIR + ".tmp", SEED_DIR)
    out = {}
    for fname in sorted(os.listdir(SEED_DIR)):
        with open(os.path.join(SEED_DIR, fname), "rb") as f:
            out[os.path.splitext(fname)[0]] = f.read()
    return out


if __name__ == "__main__":
    harness.main(one_input, seeds, custom_mutator=mutate)
