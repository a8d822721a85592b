from edgeq.ir.graph import DType, EdgeqError, Graph, Node, QParams, TensorType, Value
from edgeq.ir.printer import format_graph
from edgeq.ir.verify import VerifyError, verify

__all__ = ["DType", "EdgeqError", "Graph", "Node", "QParams", "TensorType", "Value",
           "format_graph", "verify", "VerifyError"]
