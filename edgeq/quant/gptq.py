"""Error-compensated weight rounding (OBQ / GPTQ: Frantar et al., 2022).

A layer computes ``y = W x`` with ``x`` its (im2col'd) input. Rounding ``W`` to ``Q`` costs
``E||(W - Q) x||^2 = tr((W - Q) H (W - Q)^T)`` with ``H = E[x x^T]``. Quantizing the columns of
``W`` one at a time, the error of column ``i`` is pushed onto the columns not yet quantized so
that the layer's output, not each weight, stays close::

    U = chol(H^-1)^T                        (upper triangular)
    q_i = clamp(round(w_i / s), -qmax, qmax) * s          (per-row scales s stay fixed)
    W[:, i+1:] -= ((w_i - q_i) / U[i, i]) U[i, i+1:]

``H`` is accumulated over the calibration samples (a K x K matrix per group, so memory is bounded
by the layer, not the data) and damped by 1% of its mean diagonal. The integers are still plain
int8 weights with the same per-channel scales: only which way each weight rounds changes.
"""

from __future__ import annotations

import numpy as np

from edgeq.ir.graph import Node
from edgeq.ops.conv import pad_nchw, windows

DAMP = 0.01
BLOCK = 128  # columns per lazy update (GPTQ's batching; same arithmetic, BLAS speed)


def layer_inputs(node: Node, x: np.ndarray) -> np.ndarray | None:
    """The layer's input as rows of its weight's columns: (groups, positions, K)."""
    if node.op == "Conv":
        a = node.attrs
        kh, kw = a["kernel_shape"]
        xp = np.ascontiguousarray(pad_nchw(x.astype(np.float64), a["pads"]))
        oh, ow = node.outputs[0].shape[2:]
        cols = windows(xp, (kh, kw), a["strides"], a["dilations"], (oh, ow))
        n, c = x.shape[:2]
        g = a["group"]
        cg = c // g
        return cols.reshape(n, g, cg, oh, ow, kh, kw).transpose(1, 0, 3, 4, 2, 5, 6).reshape(
            g, n * oh * ow, cg * kh * kw)
    if node.op == "Gemm":
        xa = x.T if node.attrs.get("transA", 0) else x
        return xa.astype(np.float64)[None]
    if node.op == "MatMul" and node.inputs[1].is_const and node.inputs[1].const.ndim == 2:
        return x.astype(np.float64).reshape(1, -1, x.shape[-1])
    return None


def second_moment(node: Node, x: np.ndarray) -> np.ndarray | None:
    cols = layer_inputs(node, x)
    if cols is None:
        return None
    cols = np.ascontiguousarray(cols)
    return np.matmul(cols.transpose(0, 2, 1), cols)  # batched BLAS, (groups, K, K)


def gptq_round(w: np.ndarray, scale: np.ndarray, h: np.ndarray, qmax: int) -> np.ndarray | None:
    """``w`` (M, K) float, per-row ``scale`` (M,), ``h`` (K, K) -> integer weights (M, K), or
    None if ``h`` is not positive definite after damping."""
    wk = w.astype(np.float64).copy()
    k = wk.shape[1]
    h = h.astype(np.float64)
    dead = np.diag(h) <= 0
    h = h.copy()
    h[dead, dead] = 1.0
    wk[:, dead] = 0.0
    h += DAMP * float(np.mean(np.diag(h))) * np.eye(k)
    try:
        u = np.linalg.cholesky(np.linalg.inv(h)).T
    except np.linalg.LinAlgError:
        return None
    s = scale.astype(np.float64)
    q = np.zeros(wk.shape, np.int64)
    for b0 in range(0, k, BLOCK):  # lazy batch updates: one matrix product per block
        b1 = min(b0 + BLOCK, k)
        errs = np.zeros((wk.shape[0], b1 - b0))
        for i in range(b0, b1):
            qi = np.clip(np.round(wk[:, i] / s), -qmax, qmax)
            q[:, i] = qi
            err = (wk[:, i] - qi * s) / u[i, i]
            wk[:, i + 1:b1] -= np.outer(err, u[i, i + 1:b1])
            errs[:, i - b0] = err
        if b1 < k:
            wk[:, b1:] -= errs @ u[b0:b1, b1:]
    return q
