"""External data (initializers stored beside the .onnx file) is read only from the model's own
folder, whatever the working directory: never from the working directory, an absolute path,
``..``, a symlink leaving the folder or a special file, and never more bytes than the tensor's
shape needs (checked against the file's size first)."""

import os

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import edgeq
from edgeq.ir.graph import EdgeqError
from tests.helpers import run_cli

W = np.arange(12, dtype=np.float32).reshape(3, 4) / 7


def _model(folder, location="w.bin", write=True, offset=0, length=None, dims=(3, 4)):
    """x (1, 4) @ W^T with W stored at ``location`` relative to ``folder``."""
    t = numpy_helper.from_array(W, "w")
    t.ClearField("raw_data")
    t.ClearField("float_data")
    del t.dims[:]
    t.dims.extend(dims)
    t.data_location = TensorProto.EXTERNAL
    for k, v in (("location", location), ("offset", str(offset)),
                 ("length", str(W.nbytes if length is None else length))):
        e = t.external_data.add()
        e.key, e.value = k, v
    g = helper.make_graph([helper.make_node("Gemm", ["x", "w"], ["y"], transB=1)], "ext",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])], [t])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    os.makedirs(folder, exist_ok=True)
    if write:
        with open(os.path.join(folder, "w.bin"), "wb") as f:
            f.write(W.tobytes())
    path = os.path.join(folder, "model.onnx")
    with open(path, "wb") as f:
        f.write(m.SerializeToString())
    return path


def test_external_data_loads_from_any_working_directory(tmp_path, monkeypatch):
    path = _model(tmp_path / "a")
    (tmp_path / "b").mkdir()
    monkeypatch.chdir(tmp_path / "b")
    g = edgeq.load(path)
    w = next(v.const for v in g.values.values() if v.is_const and v.shape == (3, 4))
    np.testing.assert_array_equal(w, W)
    x = np.ones((1, 1, 4), np.float32)
    np.testing.assert_allclose(edgeq.run(g, x)[0][0], x[0] @ W.T, rtol=1e-6)


def test_a_file_in_the_working_directory_is_never_read(tmp_path, monkeypatch):
    """The attack: a model in A names secret/key.txt; run from B, which holds that file."""
    path = _model(tmp_path / "a", location="secret/key.txt", write=False)
    (tmp_path / "b" / "secret").mkdir(parents=True)
    (tmp_path / "b" / "secret" / "key.txt").write_bytes(W.tobytes())
    monkeypatch.chdir(tmp_path / "b")
    with pytest.raises(EdgeqError, match="no such file in the model's folder"):
        edgeq.load(path)


@pytest.mark.parametrize("location", ["../w.bin", "sub/../../w.bin", "/etc/passwd"])
def test_locations_leaving_the_folder_are_refused(tmp_path, location):
    path = _model(tmp_path / "a", location=location)
    with pytest.raises(EdgeqError, match="must be a relative path inside the model's folder"):
        edgeq.load(path)


def test_a_symlink_leaving_the_folder_is_refused(tmp_path):
    (tmp_path / "outside.bin").write_bytes(W.tobytes())
    path = _model(tmp_path / "a", location="link.bin", write=False)
    os.symlink(tmp_path / "outside.bin", tmp_path / "a" / "link.bin")
    with pytest.raises(EdgeqError, match="leaves the model's folder"):
        edgeq.load(path)


def test_special_files_and_directories_are_refused(tmp_path):
    path = _model(tmp_path / "a", location="fifo", write=False)
    os.mkfifo(tmp_path / "a" / "fifo")
    with pytest.raises(EdgeqError, match="is not a regular file"):
        edgeq.load(path)
    path = _model(tmp_path / "c", location="d", write=False)
    (tmp_path / "c" / "d").mkdir()
    with pytest.raises(EdgeqError, match="is not a regular file"):
        edgeq.load(path)


def test_sizes_the_file_declares_are_checked_before_reading(tmp_path):
    # a shape of 10^12 elements over a 48-byte file: refused without allocating
    path = _model(tmp_path / "a", dims=(1_000_000, 1_000_000), length=4 * 10 ** 12)
    with pytest.raises(EdgeqError, match="past the end of the file"):
        edgeq.load(path)
    path = _model(tmp_path / "b", length=12)
    with pytest.raises(EdgeqError, match="length 12 bytes, but shape"):
        edgeq.load(path)
    path = _model(tmp_path / "c", offset=8)
    with pytest.raises(EdgeqError, match="past the end of the file"):
        edgeq.load(path)


def test_a_model_in_memory_with_external_data_is_refused(tmp_path, monkeypatch):
    m = onnx.ModelProto()
    with open(_model(tmp_path / "a"), "rb") as f:
        m.ParseFromString(f.read())
    monkeypatch.chdir(tmp_path / "a")  # even with the file right there
    with pytest.raises(EdgeqError, match="needs the model's folder"):
        edgeq.from_onnx(m)


def test_the_cli_gives_one_error_line_and_exit_2(tmp_path):
    path = _model(tmp_path / "a", location="../w.bin")
    r = run_cli("inspect", path)
    assert r.returncode == 2
    assert r.stderr.strip().startswith("edgeq: error: tensor 'w': external data location")
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
