"""ONNX ``LSTM`` and ``GRU`` with a static sequence length, unrolled at import into the float ops
edgeq quantizes (MatMul / Gemm with constant weights, Add, Mul, Sub, Sigmoid, Tanh, Relu, Slice,
Reshape, Concat). The integer graph then holds only integer ops every backend lowers.

Unrolled form, per direction (gates of ONNX order: LSTM ``i o f c``, GRU ``z r h``)::

    Xg      = MatMul(X, W_g^T) + (Wb_g + Rb_g)        one product over every time step, per gate
    LSTM:   i, f, o = f(Xg_t + H_{t-1} R^T), c~ = g(Xc_t + H_{t-1} R_c^T)
            C_t = f * C_{t-1} + i * c~,      H_t = o * h(C_t)
    GRU:    z, r = f(Xg_t + H_{t-1} R^T)
            h~ = g(Xh_t + (r * H_{t-1}) R_h^T)      linear_before_reset = 0 (Rb_h is in Xh)
            h~ = g(Xh_t + r * (H_{t-1} R_h^T + Rb_h))           linear_before_reset = 1
            H_t = h~ + z * (H_{t-1} - h~)

(with ``linear_before_reset = 1`` GRU's ``Rb_h`` is inside the reset product, so it is not
merged into ``Xh``). Terms of a zero initial state are left out (not multiplied by zero). The
cell state is quantized like every other activation (int8 unless mixed precision widens it).

Refused with the node's name and the reason: ``clip``, ``input_forget``, non-zero peepholes,
activations that are not table ops (``lookup``) or take alpha / beta, and ``sequence_lens``
that is not constant and equal to the sequence length for every batch item.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from edgeq.ir.limits import max_unroll_steps
from edgeq.ir.graph import EdgeqError, Value
from edgeq.ops import with_trait



def _canonical_activation(op: str, name: str, node_op: str) -> str:
    """An ONNX RNN activation name that is an edgeq op of one input quantized as a table
    (trait ``lookup``: Sigmoid, Tanh, Relu, HardSigmoid, LeakyRelu... with ONNX's defaults)."""
    table = sorted(with_trait("lookup"))
    for a in table:
        if op.lower() == a.lower():
            return a
    raise EdgeqError(f"{node_op} '{name}': activation {op!r} is not supported (edgeq unrolls "
                     f"{node_op} with {', '.join(table)})")


class _Unroller:
    def __init__(self, im: Any, name: str, op: str, ins: list[Value | None], attrs: dict,
                 gates: int):
        self.im, self.name, self.op = im, name, op
        x = ins[0]
        if x is None or len(x.shape) != 3:
            raise EdgeqError(f"{op} '{name}': input X must be 3-D, got "
                             f"{None if x is None else list(x.shape)}")
        self.layout = int(attrs.get("layout", 0))
        if self.layout not in (0, 1):
            raise EdgeqError(f"{op} '{name}': layout {self.layout} is not 0 or 1")
        self.x = x
        self.seq, self.batch = (x.shape[0], x.shape[1]) if self.layout == 0 else \
            (x.shape[1], x.shape[0])
        direction = attrs.get("direction", "forward")
        if direction not in ("forward", "reverse", "bidirectional"):
            raise EdgeqError(f"{op} '{name}': direction {direction!r} is not an ONNX direction")
        self.directions = ["forward", "reverse"] if direction == "bidirectional" else [direction]
        nd = len(self.directions)
        steps = max_unroll_steps()
        if not 1 <= self.seq * nd <= steps or self.batch < 1:
            raise EdgeqError(f"{op} '{name}': input X {list(x.shape)} has sequence length "
                             f"{self.seq} and batch {self.batch}; edgeq unrolls 1 to "
                             f"{steps} time steps (over all directions) of a non-empty "
                             f"batch (EDGEQ_MAX_UNROLL_STEPS)")
        self.w = im.const(ins[1], "W", name, op)
        self.r = im.const(ins[2], "R", name, op)
        if self.w.ndim != 3 or self.r.ndim != 3:
            raise EdgeqError(f"{op} '{name}': W {list(self.w.shape)} and R "
                             f"{list(self.r.shape)} must be 3-D")
        self.hidden = int(attrs.get("hidden_size", self.r.shape[-1]))
        if self.hidden < 1:
            raise EdgeqError(f"{op} '{name}': hidden_size {self.hidden} must be positive")
        if self.w.shape[:2] != (nd, gates * self.hidden) or \
                self.r.shape != (nd, gates * self.hidden, self.hidden) or \
                self.w.shape[2] != x.shape[2]:
            raise EdgeqError(f"{op} '{name}': W {list(self.w.shape)} and R {list(self.r.shape)} do "
                             f"not match {nd} direction(s), hidden size {self.hidden}, "
                             f"{x.shape[2]} input features")
        b = im.const(ins[3] if len(ins) > 3 else None, "B", name, op)
        self.b = np.zeros((nd, 2 * gates * self.hidden), np.float32) if b is None else b
        if self.b.shape != (nd, 2 * gates * self.hidden):
            raise EdgeqError(f"{op} '{name}': B has shape {list(self.b.shape)}, expected "
                             f"{[nd, 2 * gates * self.hidden]}")
        lens = im.const(ins[4] if len(ins) > 4 else None, "sequence_lens", name, op)
        if lens is not None and np.any(lens != self.seq):
            raise EdgeqError(f"{op} '{name}': sequence_lens {lens.tolist()} differ from the "
                             f"sequence length {self.seq}; edgeq unrolls full sequences only")
        if attrs.get("clip") is not None:
            raise EdgeqError(f"{op} '{name}': cell clipping (clip) is not supported")
        if attrs.get("activation_alpha") or attrs.get("activation_beta"):
            raise EdgeqError(f"{op} '{name}': activation_alpha / activation_beta are not "
                             f"supported")
        self.state_shape = (nd, self.batch, self.hidden)
        self.k = 0

    # -- emitting ---------------------------------------------------------------------------
    def fresh(self, what: str) -> str:
        self.k += 1
        return f"{self.name}/{what}_{self.k}"

    def emit(self, op: str, ins: Sequence[Value], attrs: dict | None = None,
             what: str = "") -> Value:
        n = self.fresh(what or op.lower())
        return self.im.emit(op, list(ins), attrs or {}, n, [n])[0]

    def const(self, what: str, a: np.ndarray) -> Value:
        return self.im.g.add_const(f"{self.name}/{what}", np.ascontiguousarray(a, np.float32))

    def reshape(self, v: Value, shape: Sequence[int]) -> Value:
        return self.emit("Reshape", [v], {"shape": [int(d) for d in shape]})

    def steps(self, v: Value) -> list[Value]:
        """The time steps of a ``[seq, batch, H]`` tensor, each ``[batch, H]`` (one Split)."""
        n = self.fresh("steps")
        parts = self.im.emit("Split", [v], {"axis": 0, "split": [1] * self.seq}, n,
                             [f"{n}:{t}" for t in range(self.seq)])
        return [self.reshape(p, v.shape[1:]) for p in parts]

    def initial(self, ins: list[Value | None], k: int, what: str) -> list[Value | None]:
        """Per direction, the initial state ``[batch, H]``, or None where it is all zero."""
        v = ins[k] if len(ins) > k else None
        if v is None:
            return [None] * len(self.directions)
        if tuple(v.shape) != self.state_shape:
            raise EdgeqError(f"{self.op} '{self.name}': {what} has shape {list(v.shape)}, "
                             f"expected {list(self.state_shape)}")
        if v.const is not None and not np.any(v.const):
            return [None] * len(self.directions)
        out: list[Value | None] = []
        for d in range(len(self.directions)):
            s = self.emit("Slice", [v], {"starts": [d], "ends": [d + 1], "axes": [0],
                                          "steps": [1]})
            out.append(self.reshape(s, self.state_shape[1:]))
        return out

    def time_major(self) -> Value:
        return self.x if self.layout == 0 else self.emit("Transpose", [self.x],
                                                         {"perm": [1, 0, 2]})

    def projection(self, x: Value, w: np.ndarray, bias: np.ndarray, what: str) -> Value:
        """``x [seq, batch, I] @ w.T + bias`` as one MatMul with a constant weight."""
        y = self.emit("MatMul", [x, self.const(f"{what}_weight", w.T)])
        return self.emit("Add", [y, self.const(f"{what}_bias", bias)])

    def recurrent(self, h: Value, r: np.ndarray, what: str) -> Value:
        return self.emit("MatMul", [h, self.const(f"{what}_weight", r.T)])

    def add(self, a: Value | None, b: Value | None) -> Value | None:
        if a is None or b is None:
            return a if b is None else b
        return self.emit("Add", [a, b])

    def outputs(self, per_dir: list[list[Value]], last: list[list[Value]],
                used: Sequence[bool]) -> list[Value | None]:
        """``Y [seq, dirs, batch, H]`` (layout 1: ``[batch, seq, dirs, H]``) and each final
        state ``[dirs, batch, H]`` (layout 1: ``[batch, dirs, H]``)."""
        nd, b, hd = self.state_shape
        res: list[Value | None] = []
        if used[0]:
            ys = []
            for hs in per_dir:
                steps = [self.reshape(h, [1, 1, b, hd]) for h in hs]
                ys.append(steps[0] if len(steps) == 1 else self.emit("Concat", steps,
                                                                      {"axis": 0}))
            y = ys[0] if nd == 1 else self.emit("Concat", ys, {"axis": 1})
            if self.layout == 1:
                y = self.emit("Transpose", [y], {"perm": [2, 0, 1, 3]})
            res.append(y)
        else:
            res.append(None)
        for k, states in enumerate(last, 1):
            if not used[k]:
                res.append(None)
                continue
            parts = [self.reshape(s, [1, b, hd]) for s in states]
            v = parts[0] if nd == 1 else self.emit("Concat", parts, {"axis": 0})
            if self.layout == 1:
                v = self.emit("Transpose", [v], {"perm": [1, 0, 2]})
            res.append(v)
        return res


def _activations(u: _Unroller, attrs: dict, per_dir: int) -> list[list[str]]:
    names = attrs.get("activations")
    defaults = ["Sigmoid", "Tanh", "Tanh"][:per_dir]
    if not names:
        return [defaults] * len(u.directions)
    if len(names) != per_dir * len(u.directions):
        raise EdgeqError(f"{u.op} '{u.name}': {len(names)} activations given, expected "
                         f"{per_dir * len(u.directions)}")
    acts = [_canonical_activation(a, u.name, u.op) for a in names]
    return [acts[d * per_dir:(d + 1) * per_dir] for d in range(len(u.directions))]


def _time_order(u: _Unroller, d: int) -> list[int]:
    return list(range(u.seq)) if u.directions[d] == "forward" else list(range(u.seq))[::-1]


def lstm(im: Any, name: str, ins: list[Value | None], attrs: dict, outs: list[str],
         used: Callable[[int], bool]) -> list[Value | None]:
    """Unrolled over its static sequence length into MatMul, Add, Mul, Sigmoid, Tanh, Split,
    Reshape and Concat (every direction and layout; clip, input_forget and peepholes
    refused)."""
    u = _Unroller(im, name, "LSTM", ins, attrs, gates=4)
    if not any(used(k) for k in range(3)):
        return [None, None, None]  # nothing reads it: checked, not unrolled
    if int(attrs.get("input_forget", 0)):
        raise EdgeqError(f"LSTM '{name}': input_forget (coupled input and forget gates) is not "
                         f"supported")
    p = im.const(ins[7] if len(ins) > 7 else None, "P", name, "LSTM")
    if p is not None and np.any(p):
        raise EdgeqError(f"LSTM '{name}': peephole weights (P) are not supported")
    acts = _activations(u, attrs, 3)
    h0 = u.initial(ins, 5, "initial_h")
    c0 = u.initial(ins, 6, "initial_c")
    x = u.time_major()
    hd = u.hidden
    per_dir, last_h, last_c = [], [], []
    for d in range(len(u.directions)):
        f, g, h_act = acts[d]
        w, r, b = u.w[d], u.r[d], u.b[d]
        xg = {gate: u.steps(u.projection(x, w[k * hd:(k + 1) * hd],
                                         b[k * hd:(k + 1) * hd] + b[(4 + k) * hd:(5 + k) * hd],
                                         f"{gate}{d}"))
              for k, gate in enumerate("iofc")}
        rg = {gate: r[k * hd:(k + 1) * hd] for k, gate in enumerate("iofc")}
        h, c = h0[d], c0[d]
        hs = []
        for t in _time_order(u, d):
            pre = {gate: u.add(xg[gate][t],
                               None if h is None else u.recurrent(h, rg[gate], f"r{gate}{d}"))
                   for gate in "iofc"}
            i_t = u.emit(f, [pre["i"]])
            o_t = u.emit(f, [pre["o"]])
            c_new = u.emit(g, [pre["c"]])
            ic = u.emit("Mul", [i_t, c_new])
            if c is not None:
                f_t = u.emit(f, [pre["f"]])
                c = u.emit("Add", [u.emit("Mul", [f_t, c]), ic], what="cell")
            else:
                c = ic
            h = u.emit("Mul", [o_t, u.emit(h_act, [c])], what="hidden")
            hs.append(h)
        if u.directions[d] == "reverse":
            hs = hs[::-1]
        per_dir.append(hs)
        last_h.append(h)  # the state after the last step processed
        last_c.append(c)
    return u.outputs(per_dir, [last_h, last_c], [used(0), used(1), used(2)])


def gru(im: Any, name: str, ins: list[Value | None], attrs: dict, outs: list[str],
        used: Callable[[int], bool]) -> list[Value | None]:
    """Unrolled over its static sequence length into MatMul, Add, Sub, Mul, Sigmoid, Tanh,
    Split, Reshape and Concat (every direction and layout, both linear_before_reset)."""
    u = _Unroller(im, name, "GRU", ins, attrs, gates=3)
    if not any(used(k) for k in range(2)):
        return [None, None]  # nothing reads it: checked, not unrolled
    acts = _activations(u, attrs, 2)
    before_reset = int(attrs.get("linear_before_reset", 0))
    h0 = u.initial(ins, 5, "initial_h")
    x = u.time_major()
    hd = u.hidden
    per_dir, last_h = [], []
    for d in range(len(u.directions)):
        f, g = acts[d]
        w, r, b = u.w[d], u.r[d], u.b[d]
        wb = {gate: b[k * hd:(k + 1) * hd] for k, gate in enumerate("zrh")}
        rb = {gate: b[(3 + k) * hd:(4 + k) * hd] for k, gate in enumerate("zrh")}
        merged = {gate: wb[gate] + (rb[gate] if gate != "h" or not before_reset else 0)
                  for gate in "zrh"}
        xg = {gate: u.steps(u.projection(x, w[k * hd:(k + 1) * hd], merged[gate], f"{gate}{d}"))
              for k, gate in enumerate("zrh")}
        rg = {gate: r[k * hd:(k + 1) * hd] for k, gate in enumerate("zrh")}
        rbh = u.const(f"rb_h{d}", rb["h"]) if before_reset and np.any(rb["h"]) else None
        h = h0[d]
        hs = []
        for t in _time_order(u, d):
            xh = xg["h"][t]
            rec = {gate: None if h is None else u.recurrent(h, rg[gate], f"r{gate}{d}")
                   for gate in "zr"}
            z = u.emit(f, [u.add(xg["z"][t], rec["z"])])
            if before_reset:
                hr = u.add(None if h is None else u.recurrent(h, rg["h"], f"rh{d}"), rbh)
                inner = None
                if hr is not None:
                    rr = u.emit(f, [u.add(xg["r"][t], rec["r"])])
                    inner = u.emit("Mul", [rr, hr])
            elif h is not None:
                rr = u.emit(f, [u.add(xg["r"][t], rec["r"])])
                inner = u.recurrent(u.emit("Mul", [rr, h]), rg["h"], f"rh{d}")
            else:  # zero state: the reset gate multiplies zero
                inner = None
            cand = u.emit(g, [u.add(xh, inner)])
            if h is None:
                h = u.emit("Sub", [cand, u.emit("Mul", [z, cand])], what="hidden")
            else:
                h = u.emit("Add", [cand, u.emit("Mul", [z, u.emit("Sub", [h, cand])])],
                           what="hidden")
            hs.append(h)
        if u.directions[d] == "reverse":
            hs = hs[::-1]
        per_dir.append(hs)
        last_h.append(h)  # the state after the last step processed
    return u.outputs(per_dir, [last_h], [used(0), used(1)])
