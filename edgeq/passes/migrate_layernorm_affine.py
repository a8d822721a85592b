"""LayerNorm affine migration: ``LN(x) * gamma + beta`` followed only by linear layers moves its
gamma and beta into those layers, leaving a plain normalization (whose output range is bounded
and free of gamma's outlier channels, which is what quantization wants; cf. Outlier
Suppression). For each reader ``y = n' @ W + c`` with ``n' = n * gamma + beta``::

    y = n @ (diag(gamma) W) + (beta @ W + c)

Readers are MatMul with a constant 2-D weight, or Gemm (transA = 0) with a constant weight. A
MatMul's new bias is added to its own (a bias ``fold_matmul_bias`` folded into it), else folded
into a following ``Add`` of a constant, or a new ``Add``. Exact in real arithmetic. Refused (and
logged) when any reader is not such a linear layer, e.g. a residual Add, since it would then see
un-scaled values.
"""

from __future__ import annotations

import numpy as np

from edgeq.ir.graph import Graph, Node
from edgeq.passes import refuse

NAME = "migrate_layernorm_affine"


def _linear_weight(node: Node, ln_out) -> np.ndarray | None:
    """W as (K, N) if ``node`` is a linear layer reading ``ln_out`` as its data input."""
    if node.inputs[0] is not ln_out or any(v is ln_out for v in node.inputs[1:]):
        return None
    w = node.const_input(1)
    if w is None or w.ndim != 2:
        return None
    if node.op == "MatMul" and "activation" not in node.attrs:
        return w
    if node.op == "Gemm" and not node.attrs.get("transA", 0):
        return w.T if node.attrs.get("transB", 0) else w
    return None


def migrate_layernorm_affine(graph: Graph) -> bool:
    changed = False
    for ln in list(graph.nodes):
        if ln.op != "LayerNormalization":
            continue
        gamma, beta = ln.const_input(1), ln.const_input(2)
        if gamma is None and beta is None:
            continue
        out = ln.outputs[0]
        k = out.shape[-1]
        if ln.attrs["axis"] != len(out.shape) - 1:
            refuse(NAME, f"LayerNormalization '{ln.name}': normalizes over several axes; gamma "
                   f"and beta kept")
            continue
        g = np.ones(k) if gamma is None else np.broadcast_to(gamma.astype(np.float64), (k,))
        b = np.zeros(k) if beta is None else np.broadcast_to(beta.astype(np.float64), (k,))
        if np.all(g == 1) and np.all(b == 0):
            continue
        readers = out.users()
        bad = [r for r in readers if _linear_weight(r, out) is None]
        if bad or out in graph.outputs or not readers:
            who = ", ".join(f"{r.op} '{r.name}'" for r in bad) or "the graph output"
            refuse(NAME, f"LayerNormalization '{ln.name}': output feeds {who}, not only linear "
                   f"layers; gamma and beta kept")
            continue
        for r in readers:
            _rewrite_reader(graph, r, _linear_weight(r, out).astype(np.float64), g, b)
        dt = out.dtype.numpy
        graph.set_input(ln, 1, graph.add_const(f"{ln.name}/gamma_one", np.ones(k, dt)))
        if len(ln.inputs) > 2:
            graph.set_input(ln, 2, None)
            ln.inputs.pop()
        changed = True
    return changed


def _rewrite_reader(graph: Graph, r: Node, w: np.ndarray, g: np.ndarray, b: np.ndarray) -> None:
    dt = r.inputs[1].const.dtype
    new_w = w * g[:, None]
    extra = b @ w  # (N,)
    if r.op == "Gemm":
        new_w = new_w.T if r.attrs.get("transB", 0) else new_w
        alpha, beta = r.attrs.get("alpha", 1.0), r.attrs.get("beta", 1.0)
        c = r.const_input(2)
        c = np.zeros(new_w.shape[0 if r.attrs.get("transB", 0) else 1]) if c is None else \
            c.astype(np.float64) * beta
        r.attrs["beta"] = 1.0
        graph.set_input(r, 2, graph.add_const(f"{r.name}/bias_ln", (c + alpha * extra).astype(dt)))
        graph.set_input(r, 1, graph.add_const(f"{r.name}/weight_ln", new_w.astype(dt)))
        return
    graph.set_input(r, 1, graph.add_const(f"{r.name}/weight_ln", new_w.astype(dt)))
    own = r.const_input(2)  # a bias already folded into the MatMul
    if own is not None:
        graph.set_input(r, 2, graph.add_const(f"{r.name}/bias_ln",
                                              (own.astype(np.float64) + extra).astype(dt)))
        return
    y = r.outputs[0]
    users = y.users()
    add = users[0] if len(users) == 1 and users[0].op == "Add" and y not in graph.outputs else None
    if add is not None:
        ci = 1 if add.inputs[0] is y else 0
        c = add.inputs[ci].const
        if c is not None and c.shape[-1:] == extra.shape and c.ndim <= 1:
            graph.set_input(add, ci, graph.add_const(f"{add.name}/bias_ln",
                                                     (c.astype(np.float64) + extra).astype(dt)))
            return
    bias = graph.add_const(f"{r.name}/bias_ln", extra.astype(dt))
    new = graph.add_node("Add", [y, bias], [y.type], name=graph.unique_name(f"{r.name}/bias"),
                         after=r)
    for node, i in list(y.uses):
        if node is not new:
            graph.set_input(node, i, new.outputs[0])
    if y in graph.outputs:
        graph.replace_uses(y, new.outputs[0])
        graph.set_input(new, 0, y)
