import numpy as np
import pytest
from onnx import helper

import edgeq
from edgeq import serialize
from edgeq.ir.graph import EdgeqError
from edgeq.ir.printer import format_graph
from edgeq.runtime.reference import run_graph
from tests.passes.util import graph_of


def _graphs():
    w = np.random.default_rng(0).normal(size=(4, 3, 3, 3)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("Clip", ["c"], ["y"], name="relu6", min=0.0, max=6.0)]
    fg, _ = edgeq.optimize(graph_of(nodes, {"x": (1, 3, 6, 6)}, ["y"], {"w": w}, opset=9))
    x = np.random.default_rng(1).normal(size=(8, 3, 6, 6)).astype(np.float32)
    return fg, edgeq.quantize(fg, x).graph, x


def test_round_trip_float_and_integer(tmp_path):
    for g in _graphs()[:2]:
        serialize.save(g, tmp_path / "m.eqm")
        back = serialize.load(tmp_path / "m.eqm")
        assert format_graph(back) == format_graph(g)
        assert back.metadata == g.metadata
        feeds = {"x": np.zeros(g.inputs[0].shape, g.inputs[0].dtype.numpy)}
        a, b = run_graph(g, feeds), run_graph(back, feeds)
        assert all(np.array_equal(a[k], b[k]) for k in a)
        assert [v.qparams for v in back.inputs] == [v.qparams for v in g.inputs]


def test_same_graph_same_bytes():
    fg, ig, x = _graphs()
    assert serialize.to_bytes(ig) == serialize.to_bytes(ig.copy())
    again = edgeq.quantize(fg, x).graph
    assert serialize.to_bytes(again) == serialize.to_bytes(ig)  # quantization is deterministic


def test_bad_files_are_refused(tmp_path):
    (tmp_path / "junk.eqm").write_bytes(b"not a zip")
    with pytest.raises(EdgeqError, match="not an edgeq model file"):
        serialize.load(tmp_path / "junk.eqm")
    import json
    import zipfile

    with zipfile.ZipFile(tmp_path / "v9.eqm", "w") as z:
        z.writestr("graph.json", json.dumps({"format": "edgeq-model", "version": 9}))
    with pytest.raises(EdgeqError, match="format version 9 is not supported"):
        serialize.load(tmp_path / "v9.eqm")
