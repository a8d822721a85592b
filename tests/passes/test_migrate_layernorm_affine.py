import numpy as np
from onnx import helper

from edgeq.passes.migrate_layernorm_affine import migrate_layernorm_affine
from tests.passes.util import apply, assert_same_outputs, graph_of, random_feeds

R = np.random.default_rng(8)


def _inits(extra=None):
    d = {"g": R.uniform(0.5, 3, 8).astype(np.float32), "b": R.normal(0, 0.5, 8).astype(
        np.float32), "w1": R.normal(0, 0.3, (8, 5)).astype(np.float32),
         "w2": R.normal(0, 0.3, (4, 8)).astype(np.float32),
         "c2": R.normal(0, 0.1, 4).astype(np.float32), "c1": R.normal(0, 0.1, 5).astype(
             np.float32)}
    d.update(extra or {})
    return d


def ln():
    return helper.make_node("LayerNormalization", ["x", "g", "b"], ["n"], name="ln", axis=-1)


def test_before_after_affine_moves_into_matmul_and_gemm():
    nodes = [ln(), helper.make_node("MatMul", ["n", "w1"], ["m"], name="fc1"),
             helper.make_node("Add", ["m", "c1"], ["y1"], name="fc1_bias")]
    before = graph_of(nodes, {"x": (2, 3, 8)}, ["y1"], _inits())
    after, changed, notes = apply(before, "ln", migrate_layernorm_affine)
    assert changed and not notes
    ln_node = after.nodes[0]
    assert np.all(ln_node.inputs[1].const == 1) and len(ln_node.inputs) == 2
    assert after.ops() == ["LayerNormalization", "MatMul", "Add"]
    assert_same_outputs(before, after, random_feeds(before), rtol=1e-5, atol=1e-5)


def test_gemm_reader_and_matmul_without_bias():
    nodes = [helper.make_node("LayerNormalization", ["x", "g", "b"], ["n"], name="ln"),
             helper.make_node("Gemm", ["n", "w2", "c2"], ["y2"], name="fc2", transB=1,
                              beta=0.5),
             helper.make_node("MatMul", ["n", "w1"], ["y1"], name="fc1")]
    before = graph_of(nodes, {"x": (3, 8)}, ["y2", "y1"], _inits())
    after, changed, notes = apply(before, "ln", migrate_layernorm_affine)
    assert changed and not notes
    assert after.ops() == ["LayerNormalization", "Gemm", "MatMul", "Add"]
    assert [v.name for v in after.outputs] == ["y2", "y1"]
    assert_same_outputs(before, after, random_feeds(before), rtol=1e-5, atol=1e-5)


def test_refuses_when_a_reader_is_not_linear():
    nodes = [ln(), helper.make_node("MatMul", ["n", "w1"], ["m"], name="fc1"),
             helper.make_node("Add", ["n", "x"], ["r"], name="residual")]
    before = graph_of(nodes, {"x": (2, 8)}, ["m", "r"], _inits())
    after, changed, notes = apply(before, "ln", migrate_layernorm_affine)
    assert not changed
    assert any("Add 'residual'" in n and "gamma and beta kept" in n for n in notes), notes
