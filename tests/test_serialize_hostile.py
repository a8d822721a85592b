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
     "malformed edgeq model|not an edgeq model file"),
    (lambda m: m.pop(_weight_member(m)), "missing tensor"),
])
def test_malformed_files_are_one_error(tmp_path, edit, message):
    with pytest.raises(EdgeqError, match=message):
        serialize.load(_eqm(tmp_path, edit))


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
    with pytest.raises(EdgeqError, match="not an edgeq model file"):
        serialize.load(path)

    def edit(m):
        p = _weight_member(m)
        m[p] = m[p].replace(b"'shape': (", b"'shape': ((", 1)
    with pytest.raises(EdgeqError):
        serialize.load(_eqm(tmp_path, edit, name="n.eqm"))
