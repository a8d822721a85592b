import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import helper

from edgeq.ir.graph import DType, Graph, TensorType
from edgeq.schedule.arena import plan_memory
from tests.passes.util import graph_of


def _random_graph(sizes, reads):
    """A graph of Relu-like nodes: node i reads the outputs listed in reads[i]."""
    g = Graph("rand")
    x = g.add_input("x", TensorType(DType.INT8, (sizes[0],)))
    vals = [x]
    for i, (n, rd) in enumerate(zip(sizes[1:], reads)):
        ins = [vals[j % len(vals)] for j in rd] or [vals[-1]]
        node = g.add_node("Concat", ins, [TensorType(DType.INT8, (n,))], {"axis": 0},
                          name=f"n{i}")
        vals.append(node.outputs[0])
    g.outputs.append(vals[-1])
    return g


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(1, 5000), min_size=2, max_size=12),
       st.lists(st.lists(st.integers(0, 20), max_size=3), min_size=11, max_size=11))
def test_blocks_live_at_the_same_time_never_overlap(sizes, reads):
    plan = plan_memory(_random_graph(sizes, reads[:len(sizes) - 1]), inplace=False)
    for a in plan.blocks:
        for b in plan.blocks:
            if a is b or a.end < b.start or b.end < a.start:
                continue
            assert a.offset + a.size <= b.offset or b.offset + b.size <= a.offset
    assert plan.arena_bytes >= plan.peak_live_bytes


def test_inplace_reshape_and_elementwise_share_a_block():
    w = np.ones((4, 3, 1, 1), np.float32)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("Reshape", ["r", "s"], ["y"], name="flat")]
    g = graph_of(nodes, {"x": (1, 3, 8, 8)}, ["y"], {"w": w, "s": np.array([1, -1])})
    shared = plan_memory(g)
    separate = plan_memory(g, inplace=False)
    assert shared.offset_of("r") == shared.offset_of("y")  # the reshape aliases its input
    assert shared.arena_bytes < separate.arena_bytes


@pytest.mark.slow
def test_plan_beats_tflite_micro_arena_and_cli_reports_misfit(zoo_dir, tmp_path):
    pytest.importorskip("tflite_micro", reason="compares with the TFLite Micro arena")
    import edgeq
    from edgeq.backends.tflite import smallest_arena
    from edgeq.backends.tflite.lower import lower_graph
    from models import data

    fg, _ = edgeq.optimize(edgeq.load(os.path.join(zoo_dir, "mobilenet_v2.onnx")),
                           mean=data.IMAGENET_MEAN, std=data.IMAGENET_STD)
    ig = edgeq.quantize(fg, data.photo_crops(8, 96, seed=1), rounding="tflite",
                        eval_samples=1).graph
    plan = plan_memory(ig)
    assert plan.arena_bytes < smallest_arena(lower_graph(ig))
    res = subprocess.run([sys.executable, "-m", "edgeq.cli", "plan-memory",
                          os.path.join(zoo_dir, "mobilenet_v2.onnx"), "--sram", "64KB"],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr  # the patch-based schedule fits 64 KB
    assert "patch-based" in res.stdout and "fits 65,536 bytes" in res.stdout
    res = subprocess.run([sys.executable, "-m", "edgeq.cli", "plan-memory",
                          os.path.join(zoo_dir, "mobilenet_v2.onnx"), "--sram", "32KB"],
                         capture_output=True, text=True)
    assert res.returncode == 1 and "does not fit 32,768 bytes" in res.stderr
    assert "smallest achievable peak" in res.stderr and "Traceback" not in res.stderr
