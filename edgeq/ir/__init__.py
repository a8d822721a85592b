"""The graph IR: typed values, nodes, graphs (``graph``), the printer, and the verifier
(``edgeq.ir.verify``, which sits above ``edgeq.ops``: it re-derives types with the ops' shape
rules, so it is imported from its module, not from here)."""

from edgeq.ir.graph import DType, EdgeqError, Graph, Node, QParams, TensorType, Value
from edgeq.ir.printer import format_graph

__all__ = ["DType", "EdgeqError", "Graph", "Node", "QParams", "TensorType", "Value",
           "format_graph"]
