"""The op layer is complete and consistent: every op has what its kind needs, traits are
declared by name, and what the rest of edgeq asks is answered (or refused with the reason)."""

import numpy as np
import pytest

import edgeq.ops as ops
from edgeq.ir.graph import DType, EdgeqError, Graph, TensorType
from edgeq.ops import base

FOLDED_AT_IMPORT = {"Shape", "ConstantOfShape", "Range"}  # shape arithmetic, never left in a graph


def test_every_op_has_a_kernel_and_a_shape_rule():
    for op in ops.all_ops():
        d = ops.get(op)
        assert d.kernel is not None, op
        assert d.shape is not None or op in FOLDED_AT_IMPORT, op


def test_integer_ops_have_no_quantize_rule_and_float_ops_do_or_say_why():
    for op in ops.all_ops():
        d = ops.get(op)
        if ops.has(op, "integer"):
            assert d.quantize is None, op
            assert op.startswith("Q") or op == "Requantize", op
    # every lookup-table op and every op that keeps its input's quantization quantizes
    for trait in ("lookup", "keeps_qparams", "compensated_weights"):
        for op in ops.with_trait(trait):
            assert ops.get(op).quantize is not None, (trait, op)


def test_traits_are_declared_by_known_names():
    with pytest.raises(ValueError, match="unknown trait"):
        base.traits("Relu", add="spatail")
    with pytest.raises(ValueError, match="unknown trait"):
        ops.has("Relu", "spatail")
    assert ops.has("QConv", "spatial") and not ops.has("QGemm", "spatial")
    assert not ops.has("NoSuchOp", "elementwise")
    with pytest.raises(EdgeqError, match="unknown op 'NoSuchOp'"):
        ops.get("NoSuchOp")


def _one_node(op, shapes, attrs=None, consts=None):
    g = Graph("t")
    ins = []
    for i, s in enumerate(shapes):
        if consts and i in consts:
            ins.append(g.add_const(f"c{i}", consts[i]))
        else:
            ins.append(g.add_input(f"x{i}", TensorType(DType.FLOAT32, s)))
    n = g.add_node(op, ins, [TensorType(DType.FLOAT32, shapes[0])], attrs or {})
    return n


def test_quantize_reason_names_the_form_that_has_no_integer_version():
    assert ops.quantize_reason(_one_node("Relu", [(1, 4)])) is None
    assert ops.quantize_reason(_one_node("Pow", [(1, 4), (1, 4)])) == \
        "no integer lowering for this op"
    assert "division by a tensor" in ops.quantize_reason(_one_node("Div", [(1, 4), (1, 4)]))
    assert ops.quantize_reason(
        _one_node("PRelu", [(1, 4), (4,)], consts={1: np.ones(4, np.float32)})) is None
    assert ops.quantize_reason(_one_node("PRelu", [(1, 4), (4,)])) == \
        "per-channel slopes must be constants"
    assert ops.quantize_reason(_one_node("LayerNormalization", [(2, 4)], {"axis": 0})) == \
        "only the last axis is supported"
    assert ops.quantize_reason(_one_node("Softmax", [(2, 4)], {"axis": 0})) is None  # moved last


def test_shape_rule_and_macs_of_a_convolution():
    g = Graph("t")
    x = g.add_input("x", TensorType(DType.FLOAT32, (1, 3, 8, 8)))
    w = g.add_const("w", np.zeros((4, 3, 3, 3), np.float32))
    n = g.add_node("Conv", [x, w], [TensorType(DType.FLOAT32, (1, 4, 8, 8))],
                   {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1],
                    "dilations": [1, 1], "group": 1})
    (t,) = ops.infer_node(n)
    assert t == TensorType(DType.FLOAT32, (1, 4, 4, 4))
    n.outputs[0].type = t
    assert ops.macs(n) == 4 * 4 * 4 * 3 * 3 * 3
    assert ops.macs(_one_node("Relu", [(1, 4)])) == 0
