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


def _brute_force_arena(blocks):
    import itertools

    from edgeq.schedule.arena import place

    best = None
    for perm in itertools.permutations(blocks):
        place(list(perm))
        top = max(b.offset + b.size for b in blocks)
        best = top if best is None else min(best, top)
    return best


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 9), st.integers(0, 5), st.integers(0, 4)),
                min_size=2, max_size=6))
def test_exact_placement_matches_exhaustive_search(spec):
    from edgeq.schedule.arena import Block, place_exact

    def blocks():
        return [Block([f"v{i}"], 16 * s, a, a + d) for i, (s, a, d) in enumerate(spec)]

    bs = blocks()
    lower = max(sum(b.size for b in bs if b.start <= t <= b.end) for t in range(10))
    arena, proven = place_exact(bs, lower)
    assert proven
    assert arena == _brute_force_arena(blocks())
    for a in bs:  # the returned offsets are a valid packing of that size
        assert a.offset + a.size <= arena
        for b in bs:
            if a is not b and a.start <= b.end and b.start <= a.end:
                assert a.offset + a.size <= b.offset or b.offset + b.size <= a.offset


def test_exact_placement_beats_greedy_where_greedy_fragments():
    from edgeq.schedule.arena import Block, place, place_exact

    # largest first: D (32) at 0, C (24) at 0, A (16) above both at 32, B (16) above A and C:
    # 64 bytes. Placing C above A instead packs everything in 56 bytes (= peak live).
    spec = [("A", 16, 0, 2), ("B", 16, 2, 4), ("C", 24, 2, 4), ("D", 32, 0, 0)]
    bs = [Block([n], s, a, b) for n, s, a, b in spec]
    place(sorted(bs, key=lambda b: (-b.size, b.start, b.values[0])))
    greedy = max(b.offset + b.size for b in bs)
    lower = max(sum(b.size for b in bs if b.start <= t <= b.end) for t in range(5))
    arena, proven = place_exact(bs, lower)
    assert proven and arena == lower < greedy, (arena, lower, greedy)


def test_order_search_lowers_the_peak_of_a_badly_ordered_branched_graph():
    from edgeq.schedule.order import peak_live, search_order

    # two branches from x: a big one (x -> big -> small1) and another (x -> s2); the given order
    # runs `big` then `s2` while big is live; the best order finishes the big branch first
    g = Graph("branches")
    x = g.add_input("x", TensorType(DType.INT8, (100,)))
    big = g.add_node("Relu", [x], [TensorType(DType.INT8, (1000,))], {}, name="big")
    s2 = g.add_node("Relu", [x], [TensorType(DType.INT8, (900,))], {}, name="s2")
    small1 = g.add_node("Relu", [big.outputs[0]], [TensorType(DType.INT8, (10,))], {},
                        name="small1")
    cat = g.add_node("Concat", [small1.outputs[0], s2.outputs[0]],
                     [TensorType(DType.INT8, (910,))], {"axis": 0}, name="cat")
    g.outputs.append(cat.outputs[0])
    order, searched = search_order(g)
    assert searched
    assert [n.name for n in order][:2] == ["big", "small1"]
    assert peak_live(g, order) < peak_live(g, list(g.nodes))
    assert plan_memory(g, order=order, inplace=False).arena_bytes < \
        plan_memory(g, inplace=False).arena_bytes


def test_order_search_gives_up_past_its_state_budget():
    from edgeq.schedule.order import search_order

    g = _random_graph([10] * 12, [[0]] * 11)  # 11 independent readers of x: 2**11 states
    order, searched = search_order(g, max_states=100)
    assert not searched and order == list(g.nodes)


def test_depthwise_convolution_writes_over_its_input_with_a_one_plane_scratch():
    from edgeq.schedule.arena import dw_scratch

    r = np.random.default_rng(0)
    nodes = [helper.make_node("Conv", ["x", "w1"], ["e"]),
             helper.make_node("Conv", ["e", "w2"], ["d"], group=8, pads=[1, 1, 1, 1]),
             helper.make_node("Conv", ["d", "w3"], ["y"])]
    g = graph_of(nodes, {"x": (1, 2, 16, 16)}, ["y"],
                 {"w1": r.normal(size=(8, 2, 1, 1)).astype(np.float32),
                  "w2": r.normal(size=(8, 1, 3, 3)).astype(np.float32),
                  "w3": r.normal(size=(4, 8, 1, 1)).astype(np.float32)})
    inplace = plan_memory(g, bytes_per_element=1)
    separate = plan_memory(g, bytes_per_element=1, inplace=False)
    assert inplace.offset_of("d") == inplace.offset_of("e")
    dw = g.nodes[1]
    scratch = next(b for b in inplace.blocks if dw_scratch(dw) in b.values)
    assert scratch.size == 16 * 16  # one 16x16 output plane
    assert inplace.step_live_bytes[1] == 8 * 16 * 16 + 16 * 16  # not input + output
    assert separate.step_live_bytes[1] == 2 * 8 * 16 * 16
    assert scratch.start == scratch.end == 1
    assert inplace.arena_bytes < separate.arena_bytes
