"""Patch-based execution: bit-exact with whole-layer execution on every zoo model with a
spatial stage, and the MobileNetV2 goal (peak <= 1/4 of TFLite Micro's arena, <= 20% MACs)."""

import json
import os

import numpy as np
import pytest

import edgeq
from edgeq.quant.pipeline import quantize_feeds
from edgeq.runtime.reference import run_graph
from edgeq.schedule.arena import plan_memory
from edgeq.schedule.patch import chain_prefix, regions, run_stage_patched, search
from models import data

pytestmark = pytest.mark.slow


def _integer(name, zoo_dir):
    with open(os.path.join(zoo_dir, "manifest.json")) as f:
        info = json.load(f)[name]
    fg, _ = edgeq.optimize(edgeq.load(os.path.join(zoo_dir, info["file"])), mean=info["mean"],
                           std=info["std"])
    shape = info["input_shape"]
    x = data.speech_features(6, seed=1) if name == "ds_cnn" else \
        data.photo_crops(6, shape[-1], seed=1)
    return edgeq.quantize(fg, x, rounding="tflite", eval_samples=1).graph, x


@pytest.mark.parametrize("name", ["mobilenet_v2", "ds_cnn", "resnet8"])
def test_patches_are_bit_exact_with_whole_layers(name, zoo_dir):
    ig, x = _integer(name, zoo_dir)
    prefix = chain_prefix(ig)
    assert any(n.op == "QConv" for n in prefix)
    for i in range(2):
        env = run_graph(ig, quantize_feeds(ig, {"input": x[i:i + 1]}), keep=True)
        for k in range(len(prefix)):
            for n in (2, 3, 5):
                got = run_stage_patched(prefix[:k + 1], env[prefix[0].inputs[0].name], n)
                assert np.array_equal(got, env[prefix[k].outputs[0].name]), (name, k, n)


def test_whole_model_under_the_best_plan_is_bit_exact(zoo_dir):
    from edgeq.schedule.patch import run_with_plan

    ig, x = _integer("mobilenet_v2", zoo_dir)
    plan = search(ig)
    for i in range(3):
        q = quantize_feeds(ig, {"input": x[i:i + 1]})
        a = run_graph(ig, q)["output"]
        b = run_with_plan(ig, q, plan)["output"]
        assert np.array_equal(a, b)


def test_receptive_field_of_a_strided_padded_conv():
    from onnx import helper

    from tests.passes.util import graph_of

    w = np.zeros((2, 2, 3, 3), np.float32)
    g = graph_of([helper.make_node("Conv", ["x", "w"], ["y"], name="c", strides=[2, 2],
                                   pads=[1, 1, 1, 1])], {"x": (1, 2, 8, 8)}, ["y"], {"w": w})
    (node, rows, cols, in_r, in_c, pads), = regions(g.nodes, (0, 2), (2, 4))
    assert in_r == (0, 4) and pads[0] == 1 and pads[2] == 0  # top border: pad 1 row
    assert in_c == (3, 8) and pads[1] == 0 and pads[3] == 0  # inner cols: no padding


def test_mobilenet_patch_peak_is_a_quarter_of_tflite_micro(zoo_dir):
    pytest.importorskip("tflite_micro", reason="compares with TFLite Micro's arena")
    from edgeq.backends.tflite import smallest_arena
    from edgeq.backends.tflite.lower import lower_graph

    ig, _ = _integer("mobilenet_v2", zoo_dir)
    plan = search(ig, max_overhead=0.20)
    arena = smallest_arena(lower_graph(ig))
    assert plan is not None and plan.overhead <= 0.20
    assert plan.peak_bytes * 4 <= arena, (plan.peak_bytes, arena)


@pytest.mark.slow
def test_patched_arena_plan_reaches_the_patch_peak_on_mobilenet(zoo_dir):
    """The C backend's arena (one static block, tiles included) is exactly the searched peak."""
    from edgeq.schedule.plan import plan_schedule
    from tests.helpers import float_and_data as _float_and_data

    fg, cal = _float_and_data("mobilenet_v2", zoo_dir, n=4)
    ig = edgeq.quantize(fg, cal).graph
    s = plan_schedule(ig)
    pp, plan = s.patch, s.plan
    assert pp is not None
    assert plan.arena_bytes == pp.peak_bytes
    full = plan_memory(ig)
    assert plan.arena_bytes < full.arena_bytes
