import numpy as np
from onnx import helper

from edgeq.passes.fold_input_normalization import FoldInputNormalization
from tests.passes.util import apply, graph_of, outputs

R = np.random.default_rng(6)
MEAN, STD = (120.0, 110.0, 100.0), (60.0, 55.0, 50.0)


def _conv_net(pads, group=1):
    w = R.normal(0, 0.3, (6, 3 // group, 3, 3)).astype(np.float32)
    return graph_of([helper.make_node("Conv", ["x", "w", "b"], ["y"], name="stem", pads=pads,
                                      group=group)],
                    {"x": (1, 3, 8, 8)}, ["y"], {"w": w, "b": R.normal(size=6).astype(
                        np.float32)})


def _check(before, after, mean, std):
    raw = R.uniform(0, 255, (1, 3, 8, 8)).astype(np.float32)
    norm = ((raw - np.reshape(mean, (1, -1, 1, 1))) / np.reshape(std, (1, -1, 1, 1))).astype(
        np.float32)
    np.testing.assert_allclose(outputs(after, {"x": raw})[0], outputs(before, {"x": norm})[0],
                               rtol=1e-4, atol=1e-4)


def test_before_after_unpadded_conv_absorbs_normalization():
    before = _conv_net([0, 0, 0, 0])
    p = FoldInputNormalization(MEAN, STD)
    after, changed, notes = apply(before, "fold_input_normalization", p)
    assert changed and not notes and after.ops() == ["Conv"]
    _check(before, after, MEAN, STD)
    assert not p(after)  # idempotent: the model already takes raw input


def test_padded_conv_with_equal_means_gets_explicit_pad():
    before = _conv_net([1, 1, 1, 1])
    after, changed, notes = apply(before, "fold", FoldInputNormalization((127.5,), (64.0,)))
    assert changed and after.ops() == ["Pad", "Conv"] and not notes
    _check(before, after, (127.5,) * 3, (64.0,) * 3)


def test_grouped_conv_fold_is_exact():
    before = _conv_net([0, 0, 0, 0], group=3)
    after, _, _ = apply(before, "fold", FoldInputNormalization(MEAN, STD))
    assert after.ops() == ["Conv"]
    _check(before, after, MEAN, STD)


def test_refuses_padded_conv_with_different_means_and_stays_exact():
    before = _conv_net([1, 1, 1, 1])
    after, changed, notes = apply(before, "fold", FoldInputNormalization(MEAN, STD))
    assert changed and after.ops() == ["Mul", "Add", "Conv"]
    assert any("Conv 'stem' zero-pads" in n and "border" in n for n in notes), notes
    _check(before, after, MEAN, STD)
