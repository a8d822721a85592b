"""Per-node costs: parameters (elements of constant inputs), MACs and output bytes.

MACs are each op's own rule (``edgeq.ops``): Conv ``out_elems * Cin/g * kh*kw``, ConvTranspose
``in_elems * Cout/g * kh*kw``, Gemm/MatMul ``out_elems * K``; other ops count 0."""

from __future__ import annotations

from edgeq.ir.graph import Node
from edgeq.ops.base import macs


def node_params(node: Node) -> int:
    return sum(v.type.size for v in node.inputs if v is not None and v.is_const)


def node_param_bytes(node: Node) -> int:
    return sum(v.type.nbytes for v in node.inputs if v is not None and v.is_const)


def node_macs(node: Node) -> int:
    return macs(node)


def activation_bytes(node: Node) -> int:
    return sum(v.type.nbytes for v in node.outputs)
