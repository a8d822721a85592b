"""How an integer op maps onto an accelerator: its ``Layer`` (kind, operand shapes, kernel
window, MACs, bytes), the one description every cost model reads (``edgeq.backends.npu_sim``;
the profiler's MCU estimates). A cost model never asks for an op name: it asks for the kind.

Kinds:

- ``conv``: a convolution with constant weights, ``ifm`` NCHW -> ``ofm`` NCHW, ``kernel``
  (kh, kw), ``stride``, ``dilation``, ``groups`` (``ConvTranspose`` is costed as the
  convolution it computes, on its output);
- ``depthwise``: a grouped convolution with one input channel per group;
- ``matmul``: ``[..., M, K] x [K, N]`` with constant weights (``QGemm``) or two activations
  (``QMatMul``: ``weights_const`` False);
- ``pool``: a window reduction (max or average) over H, W; a global pool is a pool whose
  window is the whole input;
- ``elementwise``: one or two inputs, broadcast, one output element per step (add, mul,
  requantize, max/min, PReLU);
- ``lookup``: a 256- or 65536-entry table per element (activations);
- ``softmax``, ``norm`` (layer norm), ``resize``: their own pipelines, costed per element;
- ``movement``: moves or selects bytes only (concat, slice, transpose, pad, gather); ``alias``
  (reshape) costs nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from edgeq.ir.graph import Node
from edgeq.ops.base import has, macs

KINDS = ("conv", "depthwise", "matmul", "pool", "elementwise", "lookup", "softmax", "norm",
         "resize", "movement", "alias")

_BY_OP = {
    "QConv": "conv", "QConvTranspose": "conv", "QGemm": "matmul", "QMatMul": "matmul",
    "QAveragePool": "pool", "MaxPool": "pool", "QGlobalAveragePool": "pool",
    "QReduceMean": "pool", "QAdd": "elementwise", "QMul": "elementwise",
    "Requantize": "elementwise", "QMax": "elementwise", "QMin": "elementwise",
    "QPRelu": "elementwise", "QLookup": "lookup", "QSoftmax": "softmax", "QLayerNorm": "norm",
    "QResize": "resize", "Resize": "resize",
}


@dataclass(frozen=True)
class Layer:
    name: str
    op: str
    kind: str
    ifm: tuple[int, ...]                # first activation input
    ifm2: tuple[int, ...] | None        # second activation input (binary element-wise, QMatMul)
    ofm: tuple[int, ...]
    ifm_bits: int
    ofm_bits: int
    macs: int
    weight_bytes: int                   # constant inputs: weights, biases, tables
    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1
    weights_const: bool = True
    ifm_is_graph_input: bool = False    # the first activation input is the graph's input
    ofm_is_graph_output: bool = False   # the output is the graph's output (nothing reads it)

    @property
    def ifm_bytes(self) -> int:
        return math.prod(self.ifm) * self.ifm_bits // 8

    @property
    def ifm2_bytes(self) -> int:
        return math.prod(self.ifm2) * self.ifm_bits // 8 if self.ifm2 else 0

    @property
    def ofm_bytes(self) -> int:
        return math.prod(self.ofm) * self.ofm_bits // 8

    @property
    def ofm_elements(self) -> int:
        return math.prod(self.ofm)


def kind_of(node: Node) -> str | None:
    """The node's kind, or None when no cost model can place it (a float op)."""
    if node.op in _BY_OP:
        return _BY_OP[node.op]
    if has(node.op, "alias"):
        return "alias"
    if has(node.op, "moves_data"):
        return "movement"
    return None


def layer(node: Node) -> Layer:
    """The node as a cost model sees it. ``kind_of(node)`` must not be None."""
    kind = kind_of(node)
    if kind is None:
        raise ValueError(f"{node.op} '{node.name}' has no accelerator mapping")
    acts = [v for v in node.inputs if v is not None and not v.is_const]
    consts = [v for v in node.inputs if v is not None and v.is_const]
    out = node.outputs[0]
    ifm = acts[0].shape if acts else out.shape
    ifm2 = acts[1].shape if len(acts) > 1 else None
    bits = lambda v: v.dtype.numpy.itemsize * 8  # noqa: E731
    a = node.attrs
    extra: dict = {}
    if node.op in ("QConv", "QConvTranspose"):
        w = node.inputs[1].shape
        groups = int(a.get("group", 1))
        extra = dict(kernel=(w[2], w[3]), stride=tuple(a.get("strides", (1, 1))),
                     dilation=tuple(a.get("dilations", (1, 1))), groups=groups)
        cin = ifm[1]
        if groups > 1 and groups == cin and w[1] == 1 and node.op == "QConv":
            kind = "depthwise"
    elif kind == "pool":
        if node.op in ("QGlobalAveragePool", "QReduceMean"):
            extra = dict(kernel=(ifm[-2] if len(ifm) >= 2 else 1, ifm[-1]))
        else:
            k = a.get("kernel_shape", (1, 1))
            extra = dict(kernel=(k[0], k[1]), stride=tuple(a.get("strides", (1, 1))))
    elif node.op == "QMatMul":
        extra = dict(weights_const=False)
    return Layer(name=node.name, op=node.op, kind=kind, ifm=tuple(ifm),
                 ifm2=tuple(ifm2) if ifm2 is not None else None, ofm=tuple(out.shape),
                 ifm_bits=bits(acts[0]) if acts else bits(out), ofm_bits=bits(out),
                 macs=macs(node), weight_bytes=sum(v.type.nbytes for v in consts),
                 ifm_is_graph_input=bool(acts) and acts[0].producer is None,
                 ofm_is_graph_output=not out.uses, **extra)
