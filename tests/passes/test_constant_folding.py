import numpy as np

from edgeq.ir.graph import DType, Graph, TensorType
from edgeq.passes.constant_folding import fold_constants
from edgeq.passes.pipeline import run_passes
from tests.passes.util import apply, assert_same_outputs, random_feeds


def _graph(extra_op="Mul"):
    g = Graph("cf")
    x = g.add_input("x", TensorType(DType.FLOAT32, (2, 3)))
    a = g.add_const("a", np.arange(3, dtype=np.float32))
    b = g.add_const("b", np.full(3, 2, np.float32))
    c = g.add_node(extra_op, [a, b], [TensorType(DType.FLOAT32, (3,))], name="ab").outputs[0]
    y = g.add_node("Add", [x, c], [TensorType(DType.FLOAT32, (2, 3))], name="y").outputs[0]
    g.outputs.append(y)
    return g


def test_before_after_const_subgraph_becomes_constant():
    before = _graph()
    after, changed, _ = apply(before, "constant_folding", fold_constants)
    assert changed
    assert before.ops() == ["Mul", "Add"] and after.ops() == ["Add"]
    folded = after.values["ab"]
    assert folded.is_const and folded.const.tolist() == [0.0, 2.0, 4.0]


def test_numeric_same_as_interpreter():
    before = _graph()
    after, _, _ = apply(before, "constant_folding", fold_constants)
    assert_same_outputs(before, after, random_feeds(before), rtol=0, atol=0)


def test_refuses_op_without_reference_kernel():
    before = _graph(extra_op="MysteryOp")
    g = before.copy()
    res = run_passes(g, [("constant_folding", fold_constants)], verify_each=False, max_rounds=1)
    assert not res.changed
    assert g.ops() == ["MysteryOp", "Add"]
    assert any("MysteryOp 'ab'" in n and "no kernel" in n for n in res.notes), res.notes
