"""Bad calibration input gets one clear EdgeqError naming the problem."""

import numpy as np
import pytest
from onnx import helper

import edgeq
from edgeq.ir.graph import EdgeqError
from edgeq.quant.calibrate import load_calibration
from tests.passes.util import graph_of


@pytest.fixture
def conv_graph():
    w = np.random.default_rng(0).normal(size=(4, 3, 3, 3)).astype(np.float32)
    g = graph_of([helper.make_node("Conv", ["x", "w"], ["y"], name="conv")], {"x": (1, 3, 8, 8)},
                 ["y"], {"w": w})
    return edgeq.optimize(g)[0]


def test_wrong_shape(conv_graph, tmp_path):
    np.save(tmp_path / "c.npy", np.zeros((4, 3, 9, 9), np.float32))
    with pytest.raises(EdgeqError, match=r"c.npy: array of shape \[4, 3, 9, 9\] does not fit "
                                         r"input 'x' \[1, 3, 8, 8\]"):
        load_calibration(str(tmp_path / "c.npy"), conv_graph)


def test_wrong_dtype(conv_graph, tmp_path):
    np.save(tmp_path / "c.npy", np.array([["a"] * 3] * 2))
    with pytest.raises(EdgeqError, match="dtype <U1 is not numeric"):
        load_calibration(str(tmp_path / "c.npy"), conv_graph)


def test_empty_folder_and_unreadable_image(conv_graph, tmp_path):
    (tmp_path / "imgs").mkdir()
    with pytest.raises(EdgeqError, match="folder has no images"):
        load_calibration(str(tmp_path / "imgs"), conv_graph)
    (tmp_path / "imgs" / "broken.png").write_bytes(b"\x89PNG not really")
    data = load_calibration(str(tmp_path / "imgs"), conv_graph)
    with pytest.raises(EdgeqError, match="broken.png: cannot read image"):
        list(data)


def test_image_folder_is_resized_to_the_input(conv_graph, tmp_path):
    from PIL import Image

    (tmp_path / "imgs").mkdir()
    Image.fromarray(np.full((40, 60, 3), 200, np.uint8)).save(tmp_path / "imgs" / "a.jpg")
    Image.fromarray(np.full((30, 30), 7, np.uint8)).save(tmp_path / "imgs" / "b.png")
    samples = list(load_calibration(str(tmp_path / "imgs"), conv_graph))
    assert [s["x"].shape for s in samples] == [(1, 3, 8, 8)] * 2
    assert np.allclose(samples[0]["x"], 200, atol=2) and np.allclose(samples[1]["x"], 7)


def test_nan_in_data_names_sample_and_input(conv_graph, tmp_path):
    x = np.zeros((3, 3, 8, 8), np.float32)
    x[2, 0, 0, 0] = np.nan
    np.save(tmp_path / "c.npy", x)
    with pytest.raises(EdgeqError, match="sample 2 of input 'x' contains NaN or Inf"):
        edgeq.quantize(conv_graph, str(tmp_path / "c.npy"))


def test_nan_in_weights_names_the_tensor(conv_graph):
    g = conv_graph.copy()
    w = g.nodes[0].inputs[1]
    w.const[0, 0, 0, 0] = np.inf
    with pytest.raises(EdgeqError, match=f"weight tensor '{w.name}' contains NaN or Inf"):
        edgeq.quantize(g, np.zeros((2, 3, 8, 8), np.float32))


def test_fewer_samples_than_requested(conv_graph, tmp_path):
    np.save(tmp_path / "c.npy", np.zeros((5, 3, 8, 8), np.float32))
    with pytest.raises(EdgeqError, match="10 calibration samples requested but only 5"):
        load_calibration(str(tmp_path / "c.npy"), conv_graph, limit=10)


def test_missing_file_and_not_numpy(conv_graph, tmp_path):
    with pytest.raises(EdgeqError, match="no such file or folder"):
        load_calibration(str(tmp_path / "nope.npy"), conv_graph)
    (tmp_path / "t.npy").write_text("hello")
    with pytest.raises(EdgeqError, match="not a readable .npy/.npz"):
        load_calibration(str(tmp_path / "t.npy"), conv_graph)
