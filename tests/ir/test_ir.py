import numpy as np
import pytest
from onnx import helper

from edgeq.ir.graph import DType, Graph, TensorType
from edgeq.ir.printer import format_graph
from edgeq.ir.verify import VerifyError, verify
from tests.passes.util import graph_of

F = DType.FLOAT32


def _small():
    g = Graph("small")
    x = g.add_input("x", TensorType(F, (1, 4)))
    w = g.add_const("w", np.ones((4, 2), np.float32))
    y = g.add_node("MatMul", [x, w], [TensorType(F, (1, 2))], name="mm").outputs[0]
    z = g.add_node("Relu", [y], [TensorType(F, (1, 2))], name="relu").outputs[0]
    g.outputs.append(z)
    return g


def test_printer_golden():
    assert format_graph(_small()) == (
        "graph small(%x: float32[1,4]) -> (%relu: float32[1,2])\n"
        "  %mm = MatMul(%x, %w<float32[4,2]>) : float32[1,2]\n"
        "  %relu = Relu(%mm) : float32[1,2]\n")


def test_printer_is_stable_across_imports():
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["y"])]
    w = {"w": np.zeros((2, 3, 3, 3), np.float32)}
    a = format_graph(graph_of(nodes, {"x": (1, 3, 4, 4)}, ["y"], w))
    b = format_graph(graph_of(nodes, {"x": (1, 3, 4, 4)}, ["y"], w))
    assert a == b and "%y = Relu[relu_1](%c)" in a  # unnamed nodes get a stable op_index name


def test_verifier_accepts_valid_graph():
    verify(_small())


def test_verifier_rejects_use_before_definition():
    g = _small()
    g.nodes.reverse()
    with pytest.raises(VerifyError, match="reads 'mm' before it is defined"):
        verify(g)


def test_verifier_rejects_wrong_type():
    g = _small()
    g.nodes[0].outputs[0].type = TensorType(F, (1, 3))
    with pytest.raises(VerifyError, match="shape inference says float32\\[1,2\\]"):
        verify(g)


def test_verifier_rejects_broken_use_list():
    g = _small()
    g.values["mm"].uses.clear()
    with pytest.raises(VerifyError, match="use-list of 'mm' misses Relu 'relu'"):
        verify(g)


def test_verifier_rejects_const_dtype_mismatch():
    g = _small()
    g.values["w"].const = np.ones((4, 2), np.float64)
    with pytest.raises(VerifyError, match="constant 'w'"):
        verify(g)


def test_copy_is_deep():
    g = _small()
    c = g.copy()
    c.values["w"].const[:] = 5
    c.nodes[0].attrs["x"] = 1
    assert g.values["w"].const.max() == 1 and "x" not in g.nodes[0].attrs
    verify(c)


def test_replace_uses_keeps_public_output_name():
    g = _small()
    relu = g.nodes[1]
    g.replace_uses(relu.outputs[0], g.values["mm"])
    g.remove_node(relu)
    assert g.outputs[0].name == "relu" and g.outputs[0].producer.op == "MatMul"
    verify(g)
