"""Hostile and broken calibration data: every damaged ``.npz`` member, empty data set, member
declaring a huge size, decompression-bomb image or corrupt image is one EdgeqError naming the
file and the array (the CLI: one ``edgeq: error:`` line, exit 2, nothing written)."""

import io
import struct
import time
import zipfile
import zlib

import numpy as np
import onnx
import pytest
from onnx import helper

import edgeq
from edgeq import cli
from edgeq.ir.graph import EdgeqError
from edgeq.quant.calibrate import load_calibration
from tests.helpers import onnx_model

W = np.random.default_rng(0).normal(size=(4, 3, 3, 3)).astype(np.float32)
NODES = [helper.make_node("Conv", ["x", "w"], ["y"], name="conv")]


@pytest.fixture
def graph():
    return edgeq.optimize(edgeq.from_onnx(onnx_model(NODES, {"x": (1, 3, 8, 8)}, ["y"],
                                                     {"w": W})))[0]


def _samples(n=4):
    return np.full((n, 3, 8, 8), 7.25, np.float32)  # a byte pattern easy to find in the file


def _npz(tmp_path, name="c.npz", compressed=False, **arrays):
    path = tmp_path / name
    (np.savez_compressed if compressed else np.savez)(path, **arrays)
    return path


def _load_all(path, graph, limit=None):
    return list(load_calibration(str(path), graph, limit))


def test_a_crc_error_in_a_member_names_file_and_array(tmp_path, graph):
    path = _npz(tmp_path, x=_samples())
    data = bytearray(path.read_bytes())
    data[data.rfind(np.float32(7.25).tobytes())] ^= 0x01  # the member's data, not its header
    path.write_bytes(bytes(data))
    with pytest.raises(EdgeqError, match=r"c\.npz: array 'x' cannot be read \(BadZipFile.*CRC"):
        _load_all(path, graph)


def test_damaged_deflate_data_is_one_error(tmp_path, graph):
    path = _npz(tmp_path, compressed=True,
                x=np.random.default_rng(1).normal(size=(4, 3, 8, 8)).astype(np.float32))
    data = bytearray(path.read_bytes())
    for i in range(200, 400):
        data[i] ^= 0x5A
    path.write_bytes(bytes(data))
    with pytest.raises(EdgeqError, match=r"c\.npz: array 'x' "):
        _load_all(path, graph)


def _raw_npz(tmp_path, members, name="c.npz"):
    path = tmp_path / name
    with zipfile.ZipFile(path, "w") as z:
        for k, v in members.items():
            z.writestr(k, v)
    return path


def _header(descr, shape, length=None):
    b = io.BytesIO()
    np.lib.format.write_array_header_1_0(b, {"descr": descr, "fortran_order": False,
                                             "shape": shape})
    return b.getvalue()


def test_object_members_are_refused_never_unpickled(tmp_path, graph, monkeypatch):
    import pickle

    monkeypatch.setattr(pickle, "loads", lambda *a, **k: pytest.fail("unpickled"))
    path = _raw_npz(tmp_path, {"x.npy": _header("|O", (4,)) + pickle.dumps([1, 2, 3, 4])})
    with pytest.raises(EdgeqError, match="array 'x' holds Python objects"):
        _load_all(path, graph)


def test_a_member_declaring_a_huge_size_is_refused_before_reading(tmp_path, graph, monkeypatch):
    path = _npz(tmp_path, x=_samples())
    monkeypatch.setenv("EDGEQ_MAX_TENSOR_BYTES", "1024")
    with pytest.raises(EdgeqError, match=r"array 'x' declares 3,.* bytes, above the limit of "
                                         r"1,024 \(EDGEQ_MAX_TENSOR_BYTES\)"):
        _load_all(path, graph)


def test_a_header_declaring_more_than_the_member_holds(tmp_path, graph):
    path = _raw_npz(tmp_path, {"x.npy": _header("<f4", (10 ** 6, 3, 8, 8)) + b"\0" * 64})
    with pytest.raises(EdgeqError, match=r"array 'x': header declares shape "
                                         r"\[1000000, 3, 8, 8\]"):
        _load_all(path, graph)


def test_a_header_length_of_4_gib_is_refused_before_reading(tmp_path, graph):
    """Found by the calibration fuzzer: a version-2 header whose length field is 0xffffffff
    made numpy try to read 4 GiB (MemoryError)."""
    bad = b"\x93NUMPY\x02\x00" + b"\xff\xff\xff\xff" + b"{'descr': '<f4'"
    (tmp_path / "c.npy").write_bytes(bad)
    with pytest.raises(EdgeqError, match=r"c\.npy: \.npy header declares 4294967295 bytes"):
        _load_all(tmp_path / "c.npy", graph)
    path = _raw_npz(tmp_path, {"x.npy": bad})
    with pytest.raises(EdgeqError, match="array 'x': .npy header declares"):
        _load_all(path, graph)


def test_garbage_and_truncated_files(tmp_path, graph):
    (tmp_path / "c.npz").write_bytes(b"PK\x03\x04" + b"\0" * 20)
    with pytest.raises(EdgeqError, match=r"c\.npz: not a readable \.npz file"):
        _load_all(tmp_path / "c.npz", graph)
    np.save(tmp_path / "t.npy", _samples())
    data = (tmp_path / "t.npy").read_bytes()
    (tmp_path / "t.npy").write_bytes(data[:len(data) // 2])
    with pytest.raises(EdgeqError, match=r"t\.npy: header declares shape \[4, 3, 8, 8\] of "
                                         r"float32 \(3072 bytes\) but 1472 bytes follow"):
        _load_all(tmp_path / "t.npy", graph)


def test_zero_samples_and_a_zero_limit(tmp_path, graph):
    np.save(tmp_path / "e.npy", np.zeros((0, 3, 8, 8), np.float32))
    with pytest.raises(EdgeqError, match=r"e\.npy: contains no samples"):
        _load_all(tmp_path / "e.npy", graph)
    path = _npz(tmp_path, x=np.zeros((0, 3, 8, 8), np.float32))
    with pytest.raises(EdgeqError, match=r"c\.npz: contains no samples"):
        _load_all(path, graph)
    np.save(tmp_path / "c.npy", _samples())
    with pytest.raises(EdgeqError, match="0 calibration samples requested; at least 1"):
        _load_all(tmp_path / "c.npy", graph, limit=0)


def test_unreferenced_npz_members_are_never_read(tmp_path, graph):
    path = _raw_npz(tmp_path, {"x.npy": _npy_bytes(_samples()), "junk.npy": b"not an array"})
    assert len(_load_all(path, graph)) == 4  # one array per input: 'x'; 'junk' never parsed


def _npy_bytes(a):
    b = io.BytesIO()
    np.save(b, a)
    return b.getvalue()


# --- images -------------------------------------------------------------------------------------

def _png_declaring(width, height):
    """A PNG of a few bytes whose header declares ``width`` x ``height`` pixels."""
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(
            ">I", zlib.crc32(kind + body))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0,
                                                             0, 0, 0)) +
            chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


@pytest.mark.parametrize("side", [30000, 12000])  # above twice Pillow's limit, and above it
def test_a_decompression_bomb_is_refused_from_its_header(tmp_path, graph, side):
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "bomb.png").write_bytes(_png_declaring(side, side))
    data = load_calibration(str(tmp_path / "imgs"), graph)
    t = time.perf_counter()
    with pytest.raises(EdgeqError, match=r"bomb\.png: .*decompression bomb"):
        list(data)
    assert time.perf_counter() - t < 2.0  # the pixels were never decoded


def test_the_bomb_guard_holds_when_pillow_s_is_switched_off(tmp_path, graph, monkeypatch):
    from PIL import Image

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "bomb.png").write_bytes(_png_declaring(30000, 30000))
    with pytest.raises(EdgeqError, match=r"bomb\.png: image declares 30000x30000 pixels, above "
                                         r"the limit of 89,478,485"):
        _load_all(tmp_path / "imgs", graph)


def test_a_truncated_image_names_the_file(tmp_path, graph):
    from PIL import Image

    (tmp_path / "imgs").mkdir()
    b = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)).save(
        b, "PNG")
    (tmp_path / "imgs" / "cut.png").write_bytes(b.getvalue()[:300])
    with pytest.raises(EdgeqError, match=r"cut\.png: cannot read image"):
        _load_all(tmp_path / "imgs", graph)


# --- the CLI ------------------------------------------------------------------------------------

def test_the_cli_refuses_a_broken_npz_with_one_line_and_writes_nothing(tmp_path, capsys):
    model = tmp_path / "m.onnx"
    onnx.save(onnx_model(NODES, {"x": (1, 3, 8, 8)}, ["y"], {"w": W}), model)
    path = _npz(tmp_path, x=_samples())
    data = bytearray(path.read_bytes())
    data[data.rfind(np.float32(7.25).tobytes())] ^= 0x01
    path.write_bytes(bytes(data))
    out = tmp_path / "out"
    rc = cli.main(["quantize", str(model), "--calib", str(path), "-o", str(out)])
    err = capsys.readouterr().err
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edgeq: error:"), err
    assert "c.npz: array 'x'" in lines[0] and "Traceback" not in err
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["c.npz", "m.onnx"]


def test_a_png_chunk_declaring_4_gib_is_read_from_memory(tmp_path, graph):
    """Found by the calibration fuzzer: Pillow reads a PNG chunk of the length the file declares
    (a MemoryError from the file); the image is now decoded from memory, where a read never
    allocates beyond the file."""
    png = _png_declaring(8, 8)
    i = png.index(b"IDAT") - 4
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "chunk.png").write_bytes(png[:i] + b"\xff\xff\xff\xf0" + png[i + 4:])
    with pytest.raises(EdgeqError, match=r"chunk\.png: cannot read image"):
        _load_all(tmp_path / "imgs", graph)
