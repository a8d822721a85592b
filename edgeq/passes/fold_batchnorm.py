"""Batch-norm folding.

Inference batch norm over channel axis 1 is a per-channel affine map::

    BN(x)[c] = (x[c] - mean[c]) * s[c] + beta[c],   s[c] = gamma[c] / sqrt(var[c] + eps)
             = x[c] * s[c] + t[c],                   t[c] = beta[c] - mean[c] * s[c]

Every BatchNormalization with constant statistics becomes ``Mul(x, s)`` then ``Add(., t)`` (the
"lone" form), and ``fold_channel_affine`` then folds that scale and shift into the producing
Conv / ConvTranspose / Gemm when the producer's output feeds nothing else::

    Conv:  W'[m, ...] = W[m, ...] * s[m],   b'[m] = b[m] * s[m] + t[m]

(ConvTranspose scales its output-channel axis 1 per group; Gemm scales the output-feature
column of B and folds ``beta * C`` into the new bias). Refused, with a reason: statistics that are
not constant; a producer with other users or a fused activation (the scale would apply to the
wrong values).
"""

from __future__ import annotations

import numpy as np

from edgeq.ir.graph import Graph, Node, TensorType
from edgeq.ops import has
from edgeq.passes import refuse

NAME = "fold_batchnorm"


def _channel_shape(rank: int, c: int) -> tuple[int, ...]:
    return (c,) + (1,) * (rank - 2) if rank > 2 else (c,)


def batchnorm_to_affine(graph: Graph, node: Node) -> bool:
    x = node.inputs[0]
    params = [v.const if v is not None else None for v in node.inputs[1:5]]
    if any(p is None for p in params):
        refuse(NAME, f"BatchNormalization '{node.name}': scale, bias, mean and variance must be "
               f"constants; kept as BatchNormalization")
        return False
    gamma, beta, mean, var = (p.astype(np.float64) for p in params)
    s = gamma / np.sqrt(var + node.attrs.get("epsilon", 1e-5))
    t = beta - mean * s
    shape = _channel_shape(len(x.shape), x.shape[1])
    dt = x.dtype.numpy
    sc = graph.add_const(f"{node.name}/scale", s.astype(dt).reshape(shape))
    sh = graph.add_const(f"{node.name}/shift", t.astype(dt).reshape(shape))
    mul = graph.add_node("Mul", [x, sc], [x.type], name=graph.unique_name(f"{node.name}/mul"),
                         before=node)
    add = graph.add_node("Add", [mul.outputs[0], sh], [x.type],
                         name=graph.unique_name(f"{node.name}/add"), before=node)
    graph.replace_uses(node.outputs[0], add.outputs[0])
    graph.remove_node(node)
    return True


def _per_channel(const: np.ndarray, out: TensorType) -> np.ndarray | None:
    """The constant as a length-C vector if it broadcasts along channel axis only (or is scalar)."""
    rank, c = len(out.shape), out.shape[1]
    if const.ndim > rank:
        return None
    full = (1,) * (rank - const.ndim) + const.shape
    if const.size == 1:
        return np.full(c, const.reshape(-1)[0], np.float64)
    if full[1] == c and all(d == 1 for i, d in enumerate(full) if i != 1):
        return const.reshape(c).astype(np.float64)
    return None


def fold_channel_affine(graph: Graph) -> bool:
    """Fold ``Mul(y, s)`` / ``Add(y, t)`` with per-channel constants into y's Conv/Gemm."""
    changed = False
    removed: set[int] = set()
    for node in list(graph.nodes):
        if node.op not in ("Mul", "Add") or id(node) in removed:
            continue
        y, k = node.inputs[0], node.inputs[1]
        if y.is_const and k is not None and not k.is_const:
            y, k = k, y
        if k is None or not k.is_const or y.producer is None:
            continue
        prod = y.producer
        if not has(prod.op, "folds_channel_affine"):
            continue
        vec = _per_channel(k.const, y.type)
        why = None
        if vec is None:
            why = f"constant of shape {list(k.shape)} is not per-channel"
        elif len(y.uses) > 1 or y in graph.outputs:
            why = f"output of {prod.op} '{prod.name}' also feeds other nodes"
        elif "activation" in prod.attrs:
            why = f"{prod.op} '{prod.name}' already applies a fused activation"
        elif any(v is not None and not v.is_const for v in prod.inputs[1:]):
            why = f"{prod.op} '{prod.name}' has non-constant weights"
        elif node.outputs[0].type != y.type:
            why = "the constant broadcasts the output to a larger shape"
        if why:
            refuse(NAME, f"{node.op} '{node.name}': not folded into {prod.op} '{prod.name}': {why}")
            continue
        _fold_into(graph, prod, vec, node.op == "Mul")
        graph.replace_uses(node.outputs[0], y)
        graph.remove_node(node)
        removed.add(id(node))
        changed = True
    return changed


def _fold_into(graph: Graph, prod: Node, vec: np.ndarray, is_scale: bool) -> None:
    w = prod.inputs[1].const.astype(np.float64)
    dt = prod.inputs[1].const.dtype
    cout = prod.outputs[0].shape[1]
    b = prod.const_input(2)
    if prod.op == "Gemm":
        beta = prod.attrs.get("beta", 1.0)
        b = np.zeros(cout) if b is None else np.broadcast_to(b.astype(np.float64) * beta,
                                                             np.broadcast_shapes(b.shape, (cout,)))
        prod.attrs["beta"] = 1.0
    else:
        b = np.zeros(cout) if b is None else b.astype(np.float64)
    if is_scale:
        if prod.op == "Conv":
            w = w * vec.reshape((-1,) + (1,) * (w.ndim - 1))
        elif prod.op == "ConvTranspose":
            g = prod.attrs["group"]
            cg, mg = w.shape[0] // g, w.shape[1]
            w = (w.reshape(g, cg, mg, *w.shape[2:]) *
                 vec.reshape(g, 1, mg, *([1] * (w.ndim - 2)))).reshape(w.shape)
        else:
            w = w * (vec[:, None] if prod.attrs.get("transB", 0) else vec[None, :])
        b = b * vec
    else:
        b = b + vec
    prod_w = graph.add_const(f"{prod.name}/weight_folded", w.astype(dt))
    prod_b = graph.add_const(f"{prod.name}/bias_folded", np.ascontiguousarray(b).astype(dt))
    graph.set_input(prod, 1, prod_w)
    graph.set_input(prod, 2, prod_b)


def fold_batchnorm(graph: Graph) -> bool:
    changed = False
    for node in list(graph.nodes):
        if node.op == "BatchNormalization":
            changed |= batchnorm_to_affine(graph, node)
    if changed:
        fold_channel_affine(graph)
    return changed
