"""fuse_gelu: the erf GELU as torch.onnx (opset < 20) and BERT's own gelu write it."""

import math

import numpy as np
import pytest
from onnx import helper

import edgeq
from edgeq.passes.fuse_gelu import fuse_gelu
from tests.passes.util import apply, assert_same_outputs, graph_of, random_feeds

C = {"sqrt2": np.float32(math.sqrt(2)), "rsqrt2": np.float32(1 / math.sqrt(2)),
     "one": np.float32(1.0), "half": np.float32(0.5), "w": np.random.default_rng(3).normal(
         0, 0.4, (8, 8)).astype(np.float32)}


def _spelling(kind: str) -> list:
    mk = helper.make_node
    if kind == "torch":  # torch.onnx, opset 17: ((x * (1 + erf(x / sqrt2))) * 0.5
        return [mk("Div", ["x", "sqrt2"], ["d"], name="/act/Div"),
                mk("Erf", ["d"], ["e"], name="/act/Erf"),
                mk("Add", ["e", "one"], ["a"], name="/act/Add"),
                mk("Mul", ["x", "a"], ["m"], name="/act/Mul"),
                mk("Mul", ["m", "half"], ["y"], name="/act/Mul_1")]
    if kind == "bert":  # x * 0.5 * (1.0 + erf(x * rsqrt2)), constants on the left
        return [mk("Mul", ["x", "half"], ["h"], name="/act/Mul"),
                mk("Mul", ["rsqrt2", "x"], ["d"], name="/act/Mul_1"),
                mk("Erf", ["d"], ["e"], name="/act/Erf"),
                mk("Add", ["one", "e"], ["a"], name="/act/Add"),
                mk("Mul", ["h", "a"], ["y"], name="/act/Mul_2")]
    return [mk("Div", ["x", "sqrt2"], ["d"], name="/act/Div"),  # ((1 + erf) * 0.5) * x
            mk("Erf", ["d"], ["e"], name="/act/Erf"),
            mk("Add", ["e", "one"], ["a"], name="/act/Add"),
            mk("Mul", ["a", "half"], ["m"], name="/act/Mul"),
            mk("Mul", ["m", "x"], ["y"], name="/act/Mul_1")]


@pytest.mark.parametrize("kind", ["torch", "bert", "half_first"])
def test_before_after_the_erf_gelu_becomes_one_gelu(kind):
    before = graph_of(_spelling(kind), {"x": (2, 8)}, ["y"], C)
    after, changed, _ = apply(before, "fuse_gelu", fuse_gelu)
    assert changed and after.ops() == ["Gelu"], after.ops()
    g = after.nodes[0]
    assert g.name == "/act/Gelu" and g.attrs["approximate"] == "none"
    assert after.outputs[0].name == "y"
    assert_same_outputs(before, after, random_feeds(before, scale=3), rtol=1e-6, atol=1e-6)


def test_left_alone_when_a_part_is_read_elsewhere_or_a_constant_differs():
    nodes = _spelling("torch") + [helper.make_node("Add", ["e", "y"], ["z"], name="peek")]
    before = graph_of(nodes, {"x": (2, 8)}, ["z"], C)
    after, changed, _ = apply(before, "fuse_gelu", fuse_gelu)
    assert not changed and "Erf" in after.ops()
    wrong = dict(C, half=np.float32(0.25))  # not a GELU
    before = graph_of(_spelling("torch"), {"x": (2, 8)}, ["y"], wrong)
    after, changed, _ = apply(before, "fuse_gelu", fuse_gelu)
    assert not changed and len(after.nodes) == 5


def test_the_integer_graph_holds_one_table_closer_to_float():
    """A Linear then GELU: one QLookup instead of five requantized layers, and a smaller
    error against the float model than the five layers have."""
    from edgeq.passes.pipeline import FLOAT_PASSES, run_passes
    from edgeq.quant.pipeline import run_integer
    from edgeq.runtime.reference import run_graph

    nodes = [helper.make_node("MatMul", ["in", "w"], ["x"], name="/fc/MatMul")] + \
        _spelling("torch")
    g = graph_of(nodes, {"in": (1, 8)}, ["y"], C)
    x = np.random.default_rng(5).normal(0, 1.5, (64, 1, 8)).astype(np.float32)
    fused, _ = edgeq.optimize(g)
    unfused = g.copy()
    run_passes(unfused, [p for p in FLOAT_PASSES if p[0] != "fuse_gelu"])
    ref = np.concatenate([run_graph(g, {"in": s})["y"] for s in x])
    err = []
    for fg, ops in ((fused, ["QGemm", "QLookup"]),
                    (unfused, ["QGemm", "QMul", "QLookup", "QAdd", "QMul", "QMul"])):
        ig = edgeq.quantize(fg, x[:, 0]).graph
        assert ig.ops() == ops
        got = np.concatenate([run_integer(ig, {"in": s})["y"] for s in x])
        err.append(float(np.mean((got - ref) ** 2)))
    assert err[0] < err[1], err
