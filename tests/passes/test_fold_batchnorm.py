import numpy as np
from onnx import helper

from edgeq.passes.fold_batchnorm import fold_batchnorm
from tests.passes.util import apply, assert_same_outputs, graph_of, random_feeds

R = np.random.default_rng(3)


def bn_inits(c, prefix="bn"):
    return {f"{prefix}_s": R.uniform(0.5, 1.5, c).astype(np.float32),
            f"{prefix}_b": R.normal(0, 0.2, c).astype(np.float32),
            f"{prefix}_m": R.normal(0, 0.2, c).astype(np.float32),
            f"{prefix}_v": R.uniform(0.5, 1.5, c).astype(np.float32)}


def bn(x, y, prefix="bn"):
    return helper.make_node("BatchNormalization", [x] + [f"{prefix}_{k}" for k in "sbmv"], [y],
                            name=prefix)


def conv_bn(producer="Conv"):
    inits = bn_inits(6)
    if producer == "Conv":
        inits.update(w=R.normal(0, 0.3, (6, 4, 3, 3)).astype(np.float32),
                     b=R.normal(0, 0.1, 6).astype(np.float32))
        p = helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", pads=[1, 1, 1, 1])
        inputs = {"x": (1, 4, 7, 7)}
    elif producer == "ConvTranspose":
        inits.update(w=R.normal(0, 0.3, (4, 3, 3, 3)).astype(np.float32))
        p = helper.make_node("ConvTranspose", ["x", "w"], ["c"], name="conv", group=2,
                             strides=[2, 2])
        inputs = {"x": (1, 4, 5, 5)}
    else:
        inits.update(w=R.normal(0, 0.3, (6, 5)).astype(np.float32),
                     b=R.normal(0, 0.1, 6).astype(np.float32))
        p = helper.make_node("Gemm", ["x", "w", "b"], ["c"], name="conv", transB=1, beta=0.5)
        inputs = {"x": (2, 5)}
    return graph_of([p, bn("c", "y")], inputs, ["y"], inits)


def test_before_after_conv_bn_becomes_conv():
    for producer in ("Conv", "ConvTranspose", "Gemm"):
        before = conv_bn(producer)
        after, changed, notes = apply(before, "fold_batchnorm", fold_batchnorm)
        assert changed and not notes
        assert before.ops() == [producer, "BatchNormalization"]
        assert after.ops() == [producer], producer


def test_numeric_fold_matches_interpreter():
    for producer in ("Conv", "ConvTranspose", "Gemm"):
        before = conv_bn(producer)
        after, _, _ = apply(before, "fold_batchnorm", fold_batchnorm)
        assert_same_outputs(before, after, random_feeds(before), rtol=1e-5, atol=1e-5)


def test_lone_batchnorm_becomes_scale_and_shift():
    before = graph_of([helper.make_node("Relu", ["x"], ["r"], name="relu"), bn("r", "y")],
                      {"x": (1, 6, 4, 4)}, ["y"], bn_inits(6))
    after, changed, notes = apply(before, "fold_batchnorm", fold_batchnorm)
    assert changed
    assert after.ops() == ["Relu", "Mul", "Add"]
    assert any("Relu" in n or "not folded" in n for n in notes) or notes == []
    assert_same_outputs(before, after, random_feeds(before))


def test_refuses_to_fold_into_a_conv_whose_output_is_shared():
    inits = bn_inits(6)
    inits.update(w=R.normal(0, 0.3, (6, 4, 1, 1)).astype(np.float32))
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"), bn("c", "y"),
             helper.make_node("Relu", ["c"], ["z"], name="other_reader")]
    before = graph_of(nodes, {"x": (1, 4, 3, 3)}, ["y", "z"], inits)
    after, changed, notes = apply(before, "fold_batchnorm", fold_batchnorm)
    assert changed  # it still became a per-channel scale and shift
    assert "BatchNormalization" not in after.ops() and "Mul" in after.ops()
    assert any("conv" in n and "also feeds other nodes" in n for n in notes), notes
    assert_same_outputs(before, after, random_feeds(before))


def test_refuses_non_constant_statistics():
    inits = bn_inits(3)
    del inits["bn_m"]
    nodes = [bn("x", "y")]
    before = graph_of(nodes, {"x": (1, 3, 2, 2), "bn_m": (3,)}, ["y"], inits)
    after, changed, notes = apply(before, "fold_batchnorm", fold_batchnorm)
    assert not changed and after.ops() == ["BatchNormalization"]
    assert any("must be constants" in n for n in notes), notes
