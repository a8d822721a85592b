"""Per-node costs: parameters (elements of constant inputs), MACs and output bytes.

MACs count multiply-accumulates of the layers that do them: Conv ``out_elems * Cin/g * kh*kw``,
ConvTranspose ``in_elems * Cout/g * kh*kw``, Gemm/MatMul ``out_elems * K``. Other ops count 0."""

from __future__ import annotations

from edgeq.ir.graph import Node


def node_params(node: Node) -> int:
    return sum(v.type.size for v in node.inputs if v is not None and v.is_const)


def node_param_bytes(node: Node) -> int:
    return sum(v.type.nbytes for v in node.inputs if v is not None and v.is_const)


def node_macs(node: Node) -> int:
    out = node.outputs[0].type
    if node.op in ("Conv", "QConv"):
        w = node.inputs[1].shape
        return out.size * w[1] * w[2] * w[3]
    if node.op == "ConvTranspose":
        w = node.inputs[1].shape
        return node.inputs[0].type.size * w[1] * w[2] * w[3]
    if node.op in ("Gemm", "QGemm"):
        a = node.inputs[0].shape
        k = a[0] if node.attrs.get("transA", 0) else a[1]
        return out.size * k
    if node.op in ("MatMul", "QMatMul"):
        return out.size * node.inputs[0].shape[-1]
    return 0


def activation_bytes(node: Node) -> int:
    return sum(v.type.nbytes for v in node.outputs)
