"""Hostile and broken ``.eqm`` files: only referenced members are read, each member's ``.npy``
header is checked against its declared size and a cap before anything is allocated, and every
malformed file is one EdgeqError (the CLI: one ``edgeq: error:`` line, exit 2)."""

import io
import json
import zipfile

import numpy as np
import pytest

from edgeq import serialize
from edgeq.ir.graph import EdgeqError
from tests.helpers import graph_of, n, run_cli


def _eqm(tmp_path, edit=None, extra=None, name="m.eqm"):
    """A valid model file (a Conv with constant weights), its members rewritten by ``edit``
    (name -> bytes, may change them) and ``extra`` members added."""
    g = graph_of([n("Conv", ["x", "w"])], {"x": (1, 2, 4, 4)}, ["y"],
                 {"w": np.ones((3, 2, 1, 1), np.float32)})
    src = io.BytesIO(serialize.to_bytes(g))
    with zipfile.ZipFile(src) as z:
        members = {i.filename: z.read(i) for i in z.infolist()}
    if edit:
        edit(members)
    members.update(extra or {})
    path = tmp_path / name
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for k, v in members.items():
            z.writestr(k, v)
    return path


def _weight_member(members):
    doc = json.loads(members["graph.json"])
    return next(v["const"] for v in doc["values"] if "const" in v)


def test_a_valid_file_still_loads(tmp_path):
    g = serialize.load(_eqm(tmp_path))
    assert [nd.op for nd in g.nodes] == ["Conv"]


def test_unreferenced_members_are_never_read(tmp_path, monkeypatch):
    bomb = b"\0" * (64 << 20)  # 64 MB of zeros: a few tens of KB compressed
    path = _eqm(tmp_path, extra={"tensors/999.npy": bomb})
    opened = []
    real_open = zipfile.ZipFile.open

    def spy(self, name, *a, **k):
        opened.append(getattr(name, "filename", name))
        return real_open(self, name, *a, **k)

    monkeypatch.setattr(zipfile.ZipFile, "open", spy)
    serialize.load(path)
    assert "tensors/999.npy" not in opened


def test_a_header_declaring_a_huge_shape_is_refused_before_allocating(tmp_path):
    def edit(m):
        buf = io.BytesIO()
        np.lib.format.write_array_header_1_0(buf, {"descr": "<f4", "fortran_order": False,
                                                   "shape": (10 ** 6, 10 ** 6)})
        m[_weight_member(m)] = buf.getvalue() + b"\0" * 24
    with pytest.raises(EdgeqError, match=r"declares shape \[1000000, 1000000\]"):
        serialize.load(_eqm(tmp_path, edit))


def test_members_above_the_cap_are_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEQ_MAX_TENSOR_BYTES", "64")
    with pytest.raises(EdgeqError, match="above the limit"):
        serialize.load(_eqm(tmp_path))


def test_object_arrays_are_refused_never_unpickled(tmp_path):
    def edit(m):
        buf = io.BytesIO()
        np.lib.format.write_array_header_1_0(buf, {"descr": "|O", "fortran_order": False,
                                                   "shape": (1,)})
        m[_weight_member(m)] = buf.getvalue() + b"\x80\x04N."
    with pytest.raises(EdgeqError, match="Python objects"):
        serialize.load(_eqm(tmp_path, edit))


@pytest.mark.parametrize("edit,message", [
    (lambda m: m.update({"graph.json": b"[1, 2]"}), "graph.json is a list"),
    (lambda m: m.update({"graph.json": json.dumps(
        {k: v for k, v in json.loads(m["graph.json"]).items() if k != "nodes"}).encode()}),
     "graph.json has no 'nodes'"),
    (lambda m: m.pop(_weight_member(m)), "missing tensor"),
])
def test_malformed_files_are_one_error(tmp_path, edit, message):
    with pytest.raises(EdgeqError, match=message):
        serialize.load(_eqm(tmp_path, edit))


def test_a_crc_error_in_a_tensor_names_the_tensor(tmp_path):
    path = _eqm(tmp_path)
    with zipfile.ZipFile(path) as z:
        members = {i.filename: z.read(i) for i in z.infolist()}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:  # stored: the data is findable
        for k, v in members.items():
            z.writestr(k, v)
    data = bytearray(path.read_bytes())
    data[data.rfind(np.ones(1, np.float32).tobytes())] ^= 0x01  # a weight of the Conv
    path.write_bytes(bytes(data))
    with pytest.raises(EdgeqError, match=r"tensor tensors/0\.npy cannot be read \(BadZipFile: "
                                         r"Bad CRC-32"):
        serialize.load(path)


def test_a_bit_flip_is_one_error(tmp_path):
    path = _eqm(tmp_path)
    data = bytearray(path.read_bytes())
    data[60] ^= 0xFF  # inside the first member's compressed bytes
    path.write_bytes(bytes(data))
    with pytest.raises(EdgeqError):
        serialize.load(path)


def test_the_cli_gives_one_line_and_exit_2(tmp_path):
    path = _eqm(tmp_path, lambda m: m.update({"graph.json": b"[1, 2]"}))
    r = run_cli("inspect", str(path))
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edgeq: error:"), r.stderr


def test_damaged_zip_and_npy_headers_are_one_error(tmp_path):
    """Found by a mutation fuzz run of the loader: an unknown compression method in the central
    directory (NotImplementedError) and a garbled .npy header dict (TokenError)."""
    path = _eqm(tmp_path)
    data = bytearray(path.read_bytes())
    cd = data.rfind(b"PK\x01\x02")  # the last central-directory entry: its method at +10
    data[cd + 10] = 99
    path.write_bytes(bytes(data))
    with pytest.raises(EdgeqError, match=r"tensor tensors/\d+\.npy cannot be read "
                                         r"\(NotImplementedError"):
        serialize.load(path)

    def edit(m):
        p = _weight_member(m)
        m[p] = m[p].replace(b"'shape': (", b"'shape': ((", 1)
    with pytest.raises(EdgeqError):
        serialize.load(_eqm(tmp_path, edit, name="n.eqm"))


# --- graph.json against the schema, the ops and the verifier (found by tests/fuzz/fuzz_eqm) --

def _int_model(tmp_path, edit_doc=None, edit_members=None, case="add_sub_residual",
               name="q.eqm"):
    """An integer model (``CASES[case]`` quantized) with its graph.json edited in place by
    ``edit_doc(doc)`` and its members by ``edit_members(members)``."""
    from tests.helpers import quantized_case

    _, res, _ = quantized_case(case, samples=4)
    with zipfile.ZipFile(io.BytesIO(serialize.to_bytes(res.graph))) as z:
        members = {i.filename: z.read(i) for i in z.infolist()}
    if edit_doc:
        doc = json.loads(members["graph.json"])
        edit_doc(doc)
        members["graph.json"] = json.dumps(doc).encode()
    if edit_members:
        edit_members(members)
    path = tmp_path / name
    with zipfile.ZipFile(path, "w") as z:
        for k, v in members.items():
            z.writestr(k, v)
    return path


def _value(doc, name):
    return next(v for v in doc["values"] if v["name"] == name)


def _node(doc, name):
    return next(n for n in doc["nodes"] if n["name"] == name)


def _set(obj, key, val):
    obj[key] = val


def _swap_nodes(doc):
    doc["nodes"].reverse()


def _cycle(doc):
    _node(doc, "relu_r")["inputs"] = ["a"]  # relu reads add's output, add reads relu's


def _dup_value(doc):
    doc["values"].append(dict(_value(doc, "r")))


def _dup_node_name(doc):
    _node(doc, "sub_y")["name"] = "add_a"


def _qp(**kw):
    def edit(doc):
        _value(doc, "x")["qparams"].update(kw)
    return edit


def test_the_integer_model_loads_and_runs(tmp_path):
    g = serialize.load(_int_model(tmp_path))
    from edgeq.quant.pipeline import run_integer

    out = run_integer(g, {"x": np.zeros((1, 6, 8, 8), np.float32)})
    assert out["y"].shape == (1, 6, 8, 8)


@pytest.mark.parametrize("edit,message", [
    (lambda d: _set(_value(d, "r"), "dtype", "float7"), r"value 'r': unknown dtype 'float7'"),
    (lambda d: _set(_value(d, "r"), "shape", [1, 6, "8", 8]), "value 'r': shape .* is not a "
                                                              "list of integers"),
    (lambda d: _set(_value(d, "r"), "shape", [1, 6, 0, 8]), "dimension below 1"),
    (lambda d: _set(_value(d, "r"), "shape", [1, 6, 8, 9]), r"QLookup 'relu_r': output 'r' has "
                                                            r"type int8\[1,6,8,9\], shape "
                                                            r"inference says"),
    (_qp(scale=[]), "value 'x': qparams: empty scale"),
    (_qp(scale=[0.0]), r"value 'x': qparams: scale \[0.0\] must hold finite numbers above 0"),
    (_qp(scale=[-1.0]), "must hold finite numbers above 0"),
    (_qp(scale=[float("nan")]), "must hold finite numbers above 0"),
    (_qp(zero_point=[0, 0]), r"zero_point \[0, 0\] must hold 1 integer"),
    (_qp(zero_point=[300]), "zero_point .300. is outside the int8 range"),
    (_qp(scale=[0.1, 0.2], zero_point=[0, 0], axis=None), "2 scales do not match axis None"),
    (_qp(axis=4), "axis 4 is not an axis of shape"),
    (lambda d: _set(_node(d, "add_a"), "inputs", ["x", "nowhere"]),
     "QAdd 'add_a': input names 'nowhere', which is not a declared value"),
    (lambda d: _set(d, "outputs", ["nowhere"]), "graph output names 'nowhere'"),
    (_swap_nodes, r"reads 'a' before it is defined \(nodes must be listed in execution order"),
    (_cycle, r"before it is defined \(the nodes form a cycle\)"),
    (_dup_value, "value 'r' is declared twice"),
    (_dup_node_name, "node name 'add_a' is used twice"),
    (lambda d: _set(_node(d, "add_a"), "outputs", ["r"]), "output 'r' is also written by"),
    (lambda d: _set(_node(d, "add_a"), "op", "QFrobnicate"), "unknown op 'QFrobnicate'"),
    (lambda d: _node(d, "add_a")["attrs"].pop("a_zp"), "QAdd 'add_a': missing attribute 'a_zp'"),
    (lambda d: _node(d, "add_a")["attrs"].update(a_zp="0"), "attribute 'a_zp' is \"0\", "
                                                           "expected a 32-bit integer"),
    (lambda d: _node(d, "add_a")["attrs"].update(dtype="float32"), "attribute 'dtype'"),
    (lambda d: _node(d, "add_a")["attrs"].update(act_min=100, act_max=-100),
     "act_min 100 / act_max -100 do not bound int8"),
    (lambda d: _node(d, "add_a")["attrs"].update(shift=2 ** 70), "does not fit 64 bits"),
    (lambda d: _node(d, "add_a")["attrs"].update(b_mult={"tensor": 3}), "not a tensors/ member"),
    (lambda d: _node(d, "add_a")["attrs"].update(b_mult={"pickle": "x"}), "not an attribute "
                                                                          "value"),
    (lambda d: _set(_node(d, "add_a"), "inputs", ["x"]), r"QAdd 'add_a': takes 2 input\(s\), "
                                                         r"has 1"),
    (lambda d: _set(_node(d, "add_a"), "inputs", [None, "r"]), "input 0 is empty"),
    (lambda d: _set(_node(d, "relu_r"), "outputs", ["r", "a"]), "output"),
    (lambda d: _value(d, "x").pop("qparams"), "integer model's input 'x' needs an integer dtype "
                                              "and qparams"),
    (lambda d: _set(_node(d, "relu_r")["attrs"], "table", [1, 2, 3]),
     "table has 3 entries; a int8 input needs 256"),
    (lambda d: _set(_value(d, "c/q"), "shape", [9]), r"value 'c/q' is declared \[9\] but its "
                                                     r"tensor"),
    (lambda d: _set(_value(d, "c/q"), "dtype", "int16"), "value 'c/q' is declared int16 but its "
                                                         "tensor .* holds int8"),
    (lambda d: _set(_value(d, "y"), "const", _value(d, "c/q")["const"]), "referenced twice"),
    (lambda d: _set(d, "values", {}), "'values' is {}, expected a list"),
    (lambda d: _set(d, "metadata", {"quantized": 1}), "'metadata' must map strings to strings"),
])
def test_a_broken_graph_json_is_one_error_naming_the_field(tmp_path, edit, message):
    with pytest.raises(EdgeqError, match=message):
        serialize.load(_int_model(tmp_path, edit))


def test_per_channel_parameters_must_match_the_channels(tmp_path):
    def edit(doc):
        _node(doc, "conv_c")["attrs"]["multiplier"] = [1 << 30] * 3
    with pytest.raises(EdgeqError, match="QConv 'conv_c': 'multiplier' has 3 values for 5 "
                                         "channels"):
        serialize.load(_int_model(tmp_path, edit, case="conv_relu_pad"))

    def kernel(doc):
        _node(doc, "conv_c")["attrs"]["kernel_shape"] = [2, 2]
    with pytest.raises(EdgeqError, match=r"kernel_shape \[2, 2\] differs from the weight's"):
        serialize.load(_int_model(tmp_path, kernel, case="conv_relu_pad", name="k.eqm"))


def test_a_npy_header_of_4_gib_is_refused_before_reading(tmp_path):
    def edit(members):
        p = next(k for k in members if k.startswith("tensors/"))
        members[p] = b"\x93NUMPY\x02\x00\xff\xff\xff\xff{'descr'"
    with pytest.raises(EdgeqError, match="header declares 4294967295 bytes"):
        serialize.load(_int_model(tmp_path, edit_members=edit))


def _cli(capsys, *args):
    from edgeq import cli

    rc = cli.main([str(a) for a in args])
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert rc == 2 and len(lines) == 1 and lines[0].startswith("edgeq: error:"), err
    assert "Traceback" not in err
    return lines[0]


def test_cli_inspect_and_run_refuse_a_broken_model_and_write_nothing(tmp_path, capsys):
    path = _int_model(tmp_path, _cycle)
    assert "the nodes form a cycle" in _cli(capsys, "inspect", path)
    np.save(tmp_path / "x.npy", np.zeros((2, 6, 8, 8), np.float32))
    line = _cli(capsys, "run", path, "--input", tmp_path / "x.npy", "--output",
                tmp_path / "y.npy")
    assert "q.eqm" in line and "cycle" in line
    assert not (tmp_path / "y.npy").exists()
    bad = _int_model(tmp_path, lambda d: _qp(scale=[])(d), name="s.eqm")
    assert "value 'x': qparams: empty scale" in _cli(capsys, "run", bad, "--input",
                                                      tmp_path / "x.npy", "--output",
                                                      tmp_path / "y.npy")
    assert not (tmp_path / "y.npy").exists()


def test_a_huge_resize_is_refused_without_allocating(tmp_path):
    """Found by the model-file fuzzer: checking a QResize's taps built arrays of the length its
    ``sizes`` declares (2**31 - 1: a 16 GiB MemoryError); the check is now arithmetic."""
    def edit(doc):
        node = next(n for n in doc["nodes"] if n["op"] == "QResize")
        node["attrs"]["sizes"][2] = 2 ** 31 - 1
    with pytest.raises(EdgeqError, match=r"QResize .*shape inference says int8\[1,6,2147483647"):
        serialize.load(_int_model(tmp_path, edit, case="resize_linear"))
