"""Cross-layer equalization (Nagel et al., "Data-Free Quantization", 2019).

For a producer layer P (Conv or Gemm whose activation is none or Relu) whose output reaches a
consumer layer C (Conv or Gemm) only through ops that commute with a positive per-channel scale
(Relu, MaxPool, AveragePool, GlobalAveragePool, a flattening Reshape), scaling P's output channel
``c`` by ``1/s[c]`` and C's matching input channel by ``s[c]`` changes nothing::

    relu(x / s) = relu(x) / s   for s > 0,    W2 (diag(s) diag(1/s) a) = W2 a

Choosing ``s[c] = sqrt(r1[c] / r2[c])`` (r1: range of P's output-channel weights, r2: range of
C's input-channel weights) makes both ranges ``sqrt(r1 * r2)``: per-channel weight ranges even out,
which per-tensor activations and depthwise filters need most. Refused (with a reason) when the
path has a fork, a fused Clip (Relu6 is not scale-invariant), or non-constant weights.
Dead channels (weight range below ``DEAD`` times the layer's largest, on either side) are not
scaled.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edgeq.ir.graph import Graph, Node, Value
from edgeq.ops import has
from edgeq.passes import refuse

NAME = "equalize"
S_MIN, S_MAX = 1e-2, 1e2
DEAD = 1e-6


@dataclass
class Equalize:
    rounds: int = 2
    pairs: list[tuple[str, str]] = field(default_factory=list)

    def __call__(self, graph: Graph) -> bool:
        changed = False
        for _ in range(self.rounds):
            for p in list(graph.nodes):
                pair = _find_pair(graph, p)
                if pair is None:
                    continue
                c, flat = pair
                if _equalize(graph, p, c, flat):
                    changed = True
                    if (p.name, c.name) not in self.pairs:
                        self.pairs.append((p.name, c.name))
        return changed


def _find_pair(graph: Graph, p: Node) -> tuple[Node, int] | None:
    if p.op not in ("Conv", "Gemm") or any(v is not None and not v.is_const
                                           for v in p.inputs[1:]):
        return None
    act = p.attrs.get("activation")
    v: Value = p.outputs[0]
    flat = 1  # features per channel after a flattening Reshape
    while True:
        users = v.users()
        if len(users) != 1 or v in graph.outputs:
            return None
        u = users[0]
        if u.op in ("Conv", "Gemm"):
            break
        if u.op == "Reshape" and not (len(u.outputs[0].shape) == 2 and v.shape[0] ==
                                      u.outputs[0].shape[0]):
            return None
        if not has(u.op, "channel_scale_commutes"):
            return None
        if u.op == "Reshape" and len(v.shape) == 4:
            flat = v.shape[2] * v.shape[3]
        v = u.outputs[0]
    if act not in (None, "Relu"):
        refuse(NAME, f"{p.op} '{p.name}' -> {u.op} '{u.name}': fused {act} is not invariant to "
               f"per-channel scaling; not equalized")
        return None
    if u.inputs[0] is not v or any(w is not None and not w.is_const for w in u.inputs[1:]):
        return None
    if u.op == "Gemm" and u.attrs.get("transA", 0):
        return None
    return u, flat


def _out_ranges(p: Node) -> np.ndarray:
    w = p.inputs[1].const
    if p.op == "Conv":
        return np.abs(w).reshape(w.shape[0], -1).max(axis=1)
    w = w if p.attrs.get("transB", 0) else w.T  # (N, K)
    return np.abs(w).max(axis=1)


def _in_ranges(c: Node, channels: int, flat: int) -> np.ndarray | None:
    w = c.inputs[1].const
    if c.op == "Conv":
        g = c.attrs["group"]
        m, cg = w.shape[0], w.shape[1]
        if cg * g != channels:
            return None
        r = np.zeros(channels)
        for gi in range(g):
            blk = np.abs(w[gi * (m // g):(gi + 1) * (m // g)])
            r[gi * cg:(gi + 1) * cg] = blk.max(axis=(0, 2, 3))
        return r
    wk = w if not c.attrs.get("transB", 0) else w.T  # (K, N)
    if wk.shape[0] != channels * flat:
        return None
    return np.abs(wk).reshape(channels, flat, -1).max(axis=(1, 2))


def _equalize(graph: Graph, p: Node, c: Node, flat: int) -> bool:
    r1 = _out_ranges(p).astype(np.float64)
    r2 = _in_ranges(c, len(r1), flat)
    if r2 is None:
        return False
    # dead channels (weights below DEAD x the layer's largest: trained checkpoints carry them)
    # keep s = 1: their ratio is meaningless, and clamped scales compounding through a
    # depthwise layer scaled from both sides would blow their activations up by S_MAX**4
    ok = (r1 > DEAD * r1.max()) & (r2 > DEAD * r2.max())
    s = np.ones_like(r1)
    s[ok] = np.clip(np.sqrt(r1[ok] / r2[ok]), S_MIN, S_MAX)
    if np.allclose(s, 1.0, rtol=1e-3):
        return False
    dt = p.inputs[1].const.dtype
    w1 = p.inputs[1].const.astype(np.float64)
    if p.op == "Conv":
        w1 = w1 / s.reshape(-1, 1, 1, 1)
    else:
        w1 = w1 / (s[:, None] if p.attrs.get("transB", 0) else s[None, :])
    graph.set_input(p, 1, graph.add_const(f"{p.name}/weight_eq", w1.astype(dt)))
    b1 = p.const_input(2)
    if b1 is not None:
        b1 = np.broadcast_to(b1.astype(np.float64), np.broadcast_shapes(b1.shape, s.shape))
        graph.set_input(p, 2, graph.add_const(f"{p.name}/bias_eq", (b1 / s).astype(dt)))
    w2 = c.inputs[1].const.astype(np.float64)
    if c.op == "Conv":
        g = c.attrs["group"]
        m, cg = w2.shape[0], w2.shape[1]
        idx = (np.arange(m)[:, None] // (m // g)) * cg + np.arange(cg)[None, :]
        w2 = w2 * s[idx][:, :, None, None]
    else:
        sk = np.repeat(s, flat)
        w2 = w2 * (sk[None, :] if c.attrs.get("transB", 0) else sk[:, None])
    graph.set_input(c, 1, graph.add_const(f"{c.name}/weight_eq", w2.astype(dt)))
    return True
