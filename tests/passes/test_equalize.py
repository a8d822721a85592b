"""Cross-layer equalization: outputs unchanged, per-channel weight ranges evened out, and dead
channels (as trained checkpoints carry) left unscaled: their ratio is meaningless, and clamped
scales compounding through a depthwise layer blew one corpus model's activations up to 1e8."""

import numpy as np
import pytest
from onnx import helper

from edgeq.passes import equalize
from edgeq.passes.equalize import DEAD, Equalize
from edgeq.runtime.reference import run_graph
from edgeq.passes.fuse_activation import fuse_activation
from tests.passes.util import apply, assert_same_outputs, graph_of, random_feeds

R = np.random.default_rng(5)


def _chain(dead: bool):
    """conv -> relu -> depthwise conv -> relu -> 1x1 conv, channel 1 of the first conv dead."""
    w1 = R.normal(size=(4, 3, 3, 3)).astype(np.float32)
    w1[0] *= 20  # uneven ranges: equalization has work to do
    if dead:
        w1[1] *= 1e-34
        w1[2] *= 7e-10
    nodes = [helper.make_node("Conv", ["x", "w1"], ["a"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["a"], ["ra"]),
             helper.make_node("Conv", ["ra", "w2"], ["b"], pads=[1, 1, 1, 1], group=4),
             helper.make_node("Relu", ["b"], ["rb"]),
             helper.make_node("Conv", ["rb", "w3"], ["y"])]
    g = graph_of(nodes, {"x": (1, 3, 8, 8)}, ["y"],
                 {"w1": w1, "w2": R.normal(size=(4, 1, 3, 3)).astype(np.float32),
                  "w3": R.normal(size=(6, 4, 1, 1)).astype(np.float32)})
    return apply(g, "fuse_activation", fuse_activation)[0]  # equalization pairs fused layers


def _weights(g):
    return [n.inputs[1].const for n in g.nodes if n.op == "Conv"]


def test_equalization_evens_ranges_and_keeps_outputs():
    before = _chain(dead=False)
    after, changed, _ = apply(before, "equalize", Equalize())
    assert changed
    r = lambda w: np.abs(w).reshape(w.shape[0], -1).max(1)  # noqa: E731
    spread = lambda w: r(w).max() / r(w).min()  # noqa: E731
    assert spread(_weights(after)[0]) < spread(_weights(before)[0]) / 2
    assert_same_outputs(before, after, random_feeds(before), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dead_threshold", [DEAD, 0.0])
def test_dead_channels_are_not_scaled(dead_threshold, monkeypatch):
    monkeypatch.setattr(equalize, "DEAD", dead_threshold)  # 0.0: the rule switched off
    before = _chain(dead=True)
    after, changed, _ = apply(before, "equalize", Equalize())
    assert changed
    w1b, w1a = _weights(before)[0], _weights(after)[0]
    feeds = random_feeds(before)
    peak = lambda g: max(float(np.abs(a).max()) for a in  # noqa: E731
                         run_graph(g, feeds, keep=True).values())
    if dead_threshold:
        for c in (1, 2):
            np.testing.assert_array_equal(w1a[c], w1b[c])
        assert peak(after) < 10 * peak(before)
    else:  # what the rule prevents: a dead channel scaled up by S_MAX per side and round
        assert np.abs(w1a[1]).max() > 1e3 * np.abs(w1b[1]).max()
    assert_same_outputs(before, after, feeds, rtol=1e-4, atol=1e-4)
