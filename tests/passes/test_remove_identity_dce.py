import numpy as np
from onnx import helper

from edgeq.passes.dead_code import eliminate_dead_code
from edgeq.passes.remove_identity import remove_identity
from tests.passes.util import apply, assert_same_outputs, graph_of, random_feeds


def test_before_after_identity_and_dropout_removed():
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu"),
             helper.make_node("Identity", ["r"], ["i"], name="id"),
             helper.make_node("Dropout", ["i"], ["d"], name="drop"),
             helper.make_node("Sigmoid", ["d"], ["y"], name="sig")]
    before = graph_of(nodes, {"x": (2, 3)}, ["y"])
    after, changed, _ = apply(before, "remove_identity", remove_identity)
    assert changed
    assert before.ops() == ["Relu", "Identity", "Dropout", "Sigmoid"]
    assert after.ops() == ["Relu", "Sigmoid"]
    assert_same_outputs(before, after, random_feeds(before), rtol=0, atol=0)


def test_identity_feeding_graph_output_keeps_output_name():
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu"),
             helper.make_node("Identity", ["r"], ["y"], name="id")]
    before = graph_of(nodes, {"x": (2, 3)}, ["y"])
    after, changed, _ = apply(before, "remove_identity", remove_identity)
    assert changed and after.ops() == ["Relu"] and after.outputs[0].name == "y"


def test_refuses_identity_between_graph_input_and_output():
    before = graph_of([helper.make_node("Identity", ["x"], ["y"], name="id")], {"x": (2,)},
                      ["y"])
    after, changed, notes = apply(before, "remove_identity", remove_identity)
    assert not changed and after.ops() == ["Identity"]
    assert any("'id'" in n and "kept" in n for n in notes), notes


def test_dead_code_removed_and_numerics_unchanged():
    nodes = [helper.make_node("Relu", ["x"], ["y"], name="relu"),
             helper.make_node("Sigmoid", ["x"], ["unused"], name="dead"),
             helper.make_node("Tanh", ["unused"], ["unused2"], name="dead2")]
    before = graph_of(nodes, {"x": (2, 3)}, ["y"])
    after, changed, _ = apply(before, "dce", eliminate_dead_code)
    assert changed and after.ops() == ["Relu"]
    assert "unused" not in after.values
    assert_same_outputs(before, after, random_feeds(before), rtol=0, atol=0)


def test_dead_code_keeps_everything_that_reaches_an_output():
    nodes = [helper.make_node("Relu", ["x"], ["y"], name="relu"),
             helper.make_node("Tanh", ["y"], ["z"], name="tanh")]
    before = graph_of(nodes, {"x": (2, 3)}, ["y", "z"])
    after, changed, _ = apply(before, "dce", eliminate_dead_code)
    assert not changed and after.ops() == ["Relu", "Tanh"]
    np.testing.assert_equal(len(after.outputs), 2)
