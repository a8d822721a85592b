"""Shape inference: every value gets a static ``TensorType`` from its producer's inputs.

Rules are per op and follow ONNX (numpy broadcasting for element-wise ops; the conv/pool output
size ``floor((in + pad_begin + pad_end - dilation*(k-1) - 1) / stride) + 1``, with ceil for
``ceil_mode``). Attributes are in the canonical form the frontend produces.
The pass recomputes every node's output types in order and reports whether any changed.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from edgeq.ir.graph import DType, EdgeqError, Graph, Node, TensorType
from edgeq.runtime.kernels import pool_output_hw
from edgeq.ir.registry import registrar

Rule = Callable[[Node, list[TensorType]], list[TensorType]]
RULES: dict[str, Rule] = {}


rule = registrar(RULES)


def broadcast(node: Node, shapes: list[tuple[int, ...]]) -> tuple[int, ...]:
    try:
        return tuple(int(d) for d in np.broadcast_shapes(*shapes))
    except ValueError:
        raise EdgeqError(f"{node.op} '{node.name}': input shapes "
                         f"{', '.join(str(list(s)) for s in shapes)} do not broadcast") from None


@rule("Relu", "Sigmoid", "Tanh", "Erf", "Exp", "Sqrt", "Neg", "Abs", "Reciprocal", "HardSwish",
      "Identity", "Clip", "LeakyRelu", "HardSigmoid", "Gelu", "Softmax", "LRN",
      "LayerNormalization", "BatchNormalization", "Dropout", "PRelu", "Rsqrt")
def _same(node, ts):
    return [ts[0]]


@rule("Add", "Sub", "Mul", "Div", "Pow", "Max", "Min")
def _elementwise(node, ts):
    return [TensorType(ts[0].dtype, broadcast(node, [t.shape for t in ts]))]


@rule("Equal")
def _compare(node, ts):
    return [TensorType(DType.BOOL, broadcast(node, [t.shape for t in ts]))]


@rule("Expand")
def _expand(node, ts):
    shape = node.inputs[1].const
    if shape is None:
        raise EdgeqError(f"Expand '{node.name}': the target shape must be constant")
    return [TensorType(ts[0].dtype, broadcast(node, [ts[0].shape, tuple(int(d) for d in shape)]))]


@rule("Where")
def _where(node, ts):
    return [TensorType(ts[1].dtype, broadcast(node, [t.shape for t in ts]))]


def conv_out_hw(node: Node, in_hw, k, s, p, d) -> tuple[int, int]:
    out = []
    for i in range(2):
        span = in_hw[i] + p[i] + p[i + 2] - (d[i] * (k[i] - 1) + 1)
        if span < 0:
            raise EdgeqError(f"{node.op} '{node.name}': kernel {list(k)} (dilation {list(d)}) is "
                             f"larger than the padded input {list(in_hw)}")
        out.append(span // s[i] + 1)
    return out[0], out[1]


@rule("Conv")
def _conv(node, ts):
    x, w = ts[0], ts[1]
    a = node.attrs
    if len(x.shape) != 4:
        raise EdgeqError(f"Conv '{node.name}': only 2-D convolution (4-D NCHW input) is "
                         f"supported, got input shape {list(x.shape)}")
    c, g = x.shape[1], a["group"]
    if c % g or w.shape[0] % g or w.shape[1] * g != c:
        raise EdgeqError(f"Conv '{node.name}': group={g} with {c} input channels and weight "
                         f"shape {list(w.shape)} is not a valid grouping")
    oh, ow = conv_out_hw(node, x.shape[2:], a["kernel_shape"], a["strides"], a["pads"],
                         a["dilations"])
    return [TensorType(x.dtype, (x.shape[0], w.shape[0], oh, ow))]


@rule("ConvTranspose")
def _conv_transpose(node, ts):
    x, w = ts[0], ts[1]
    a = node.attrs
    if len(x.shape) != 4:
        raise EdgeqError(f"ConvTranspose '{node.name}': only 2-D is supported, got input shape "
                         f"{list(x.shape)}")
    k, s, d, p, op = a["kernel_shape"], a["strides"], a["dilations"], a["pads"], \
        a["output_padding"]
    hw = [s[i] * (x.shape[2 + i] - 1) + op[i] + (k[i] - 1) * d[i] + 1 - p[i] - p[i + 2]
          for i in range(2)]
    return [TensorType(x.dtype, (x.shape[0], w.shape[1] * a["group"], hw[0], hw[1]))]


@rule("Gemm")
def _gemm(node, ts):
    a, b = ts[0].shape, ts[1].shape
    m = a[1] if node.attrs.get("transA", 0) else a[0]
    ka = a[0] if node.attrs.get("transA", 0) else a[1]
    kb, n = (b[1], b[0]) if node.attrs.get("transB", 0) else (b[0], b[1])
    if ka != kb:
        raise EdgeqError(f"Gemm '{node.name}': inner dimensions differ ({ka} vs {kb})")
    return [TensorType(ts[0].dtype, (m, n))]


@rule("MatMul")
def _matmul(node, ts):
    a, b = ts[0].shape, ts[1].shape
    if len(a) < 1 or len(b) < 1 or (a[-1] != (b[-2] if len(b) > 1 else b[0])):
        raise EdgeqError(f"MatMul '{node.name}': shapes {list(a)} and {list(b)} do not multiply")
    if len(b) == 1:
        shape = a[:-1]
    elif len(a) == 1:
        shape = b[:-2] + b[-1:]
    else:
        shape = broadcast(node, [a[:-2], b[:-2]]) + (a[-2], b[-1])
    return [TensorType(ts[0].dtype, tuple(shape))]


@rule("MaxPool", "AveragePool")
def _pool(node, ts):
    x = ts[0]
    a = node.attrs
    if len(x.shape) != 4:
        raise EdgeqError(f"{node.op} '{node.name}': only 2-D pooling is supported, got input "
                         f"shape {list(x.shape)}")
    oh, ow = pool_output_hw(x.shape[2:], a["kernel_shape"], a["strides"], a["pads"],
                            a.get("dilations", [1, 1]), a.get("ceil_mode", 0))
    return [TensorType(x.dtype, (x.shape[0], x.shape[1], oh, ow))]


@rule("GlobalAveragePool")
def _gap(node, ts):
    s = ts[0].shape
    return [TensorType(ts[0].dtype, s[:2] + (1,) * (len(s) - 2))]


@rule("ReduceMean")
def _reduce(node, ts):
    s = ts[0].shape
    axes = node.attrs.get("axes")
    axes = range(len(s)) if axes is None else axes
    keep = node.attrs.get("keepdims", 1)
    out = tuple((1 if i in axes else d) for i, d in enumerate(s) if keep or i not in axes)
    return [TensorType(ts[0].dtype, out)]


@rule("Concat")
def _concat(node, ts):
    ax = node.attrs["axis"]
    base = list(ts[0].shape)
    for t in ts[1:]:
        if len(t.shape) != len(base) or any(a != b for i, (a, b) in
                                             enumerate(zip(t.shape, base)) if i != ax):
            raise EdgeqError(f"Concat '{node.name}': input shapes "
                             f"{[list(t.shape) for t in ts]} differ outside axis {ax}")
    base[ax] = sum(t.shape[ax] for t in ts)
    return [TensorType(ts[0].dtype, tuple(base))]


@rule("Split")
def _split(node, ts):
    ax, sizes = node.attrs["axis"], node.attrs["split"]
    if sum(sizes) != ts[0].shape[ax]:
        raise EdgeqError(f"Split '{node.name}': split sizes {sizes} do not add up to "
                         f"{ts[0].shape[ax]}")
    out = []
    for n in sizes:
        s = list(ts[0].shape)
        s[ax] = n
        out.append(TensorType(ts[0].dtype, tuple(s)))
    return out


def _meta_eval(node: Node, ts: list[TensorType]) -> list[TensorType]:
    """Shape of ops whose output shape is cheapest to get by indexing an empty-strided array."""
    from edgeq.runtime.kernels import KERNELS

    dummies = [np.lib.stride_tricks.as_strided(np.zeros(1, t.dtype.numpy), t.shape,
                                               [0] * len(t.shape)) for t in ts]
    outs = KERNELS[node.op](node.attrs, *dummies)
    return [TensorType(ts[0].dtype, tuple(o.shape)) for o in outs]


RULES["Slice"] = _meta_eval
RULES["Transpose"] = _meta_eval


@rule("Reshape")
def _reshape(node, ts):
    shape = tuple(node.attrs["shape"])
    if int(np.prod(shape)) != ts[0].size:
        raise EdgeqError(f"Reshape '{node.name}': cannot reshape {list(ts[0].shape)} "
                         f"({ts[0].size} elements) to {list(shape)}")
    return [TensorType(ts[0].dtype, shape)]


@rule("Pad")
def _pad(node, ts):
    p = node.attrs["pads"]
    r = len(ts[0].shape)
    return [TensorType(ts[0].dtype, tuple(d + p[i] + p[i + r] for i, d in
                                          enumerate(ts[0].shape)))]


@rule("Gather")
def _gather(node, ts):
    ax = node.attrs.get("axis", 0)
    s = ts[0].shape
    return [TensorType(ts[0].dtype, s[:ax] + ts[1].shape + s[ax + 1:])]


@rule("Cast")
def _cast(node, ts):
    return [TensorType(DType.from_numpy(node.attrs["to"]), ts[0].shape)]


@rule("Resize")
def _resize(node, ts):
    return [TensorType(ts[0].dtype, tuple(node.attrs["sizes"]))]


def _integer(base: str) -> Rule:
    """An integer op has its float counterpart's shape and the dtype in its ``dtype`` attr."""
    def r(node, ts):
        return [TensorType(DType(node.attrs["dtype"]), t.shape) for t in RULES[base](node, ts)]
    return r


@rule("QGemm")
def _qgemm(node, ts):
    x, w = ts[0].shape, ts[1].shape
    if x[-1] != w[1]:
        raise EdgeqError(f"QGemm '{node.name}': input has {x[-1]} features, weight expects "
                         f"{w[1]}")
    return [TensorType(DType(node.attrs["dtype"]), x[:-1] + (w[0],))]


for _q, _base in (("QConv", "Conv"), ("QConvTranspose", "ConvTranspose"),
                  ("QMatMul", "MatMul"), ("QAdd", "Add"), ("QMul", "Mul"),
                  ("Requantize", "Relu"), ("QLookup", "Relu"), ("QSoftmax", "Relu"),
                  ("QLayerNorm", "Relu"), ("QAveragePool", "AveragePool"),
                  ("QGlobalAveragePool", "GlobalAveragePool"), ("QReduceMean", "ReduceMean")):
    RULES[_q] = _integer(_base)


def infer_node(node: Node) -> list[TensorType]:
    if node.op not in RULES:
        raise EdgeqError(f"no shape rule for op {node.op} (node '{node.name}')")
    ts = [v.type for v in node.inputs if v is not None]
    return RULES[node.op](node, ts)


def infer_shapes(graph: Graph) -> bool:
    """Recompute output types of every node in order; True if any type changed."""
    changed = False
    for node in graph.nodes:
        new = infer_node(node)
        for v, t in zip(node.outputs, new):
            if v.type != t:
                v.type = t
                changed = True
    return changed
