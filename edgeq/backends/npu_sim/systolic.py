"""A generic systolic-array NPU (``architecture = "systolic"``), costed with SCALE-Sim's
analytical model (Samajdar et al., ISPASS 2020, section III):

A layer is a matrix product: a convolution of ``groups`` groups has, per group, ``M`` output
pixels (N x Oh x Ow), ``K = kh x kw x Cin/groups`` reduction terms and ``N = Cout/groups``
filters; a matmul ``[M, K] x [K, N]``. With ``R x C`` processing elements and a dataflow that
maps two of (M, K, N) onto the array (``S_R`` on rows, ``S_C`` on columns) and streams the
third (``T``), one fold takes ``2 S_R' + S_C' + T - 2`` cycles (fill, stream, drain) where
``S_R' = min(S_R, R)`` and ``S_C' = min(S_C, C)``, and there are ``ceil(S_R / R) x
ceil(S_C / C)`` folds:

- weight stationary (``ws``): S_R = K, S_C = N, T = M;
- output stationary (``os``): S_R = M, S_C = N, T = K.

Utilization = MACs / (cycles x R x C). A depthwise convolution is ``groups`` products with
``N = 1``: SCALE-Sim has no depthwise mode, and a systolic array maps it this badly. Pooling,
element-wise ops, lookups and data movement run on the vector unit, ``vector_lanes`` elements
per cycle (window elements for a pool). Traffic: weights read once from their memory (again for
each output fold beyond ``weight_buffer_bytes``), the input read once per column fold (the
array re-reads it for each group of ``C`` filters) and the output written once, in the
activation memory.
"""

from __future__ import annotations

import math

from edgeq.backends.npu_sim.simulate import Compute
from edgeq.ops.mapping import Layer
from edgeq.targets import Target

MAC_KINDS = ("conv", "depthwise", "matmul")


def peak_macs_per_cycle(target: Target) -> float:
    return float(target.params["rows"] * target.params["cols"])


def gemm_dims(lay: Layer) -> tuple[int, int, int, int]:
    """(groups, M, K, N) of a MAC layer."""
    if lay.kind in ("conv", "depthwise"):
        n, cin = lay.ifm[0], lay.ifm[1]
        cout, oh, ow = lay.ofm[1], lay.ofm[2], lay.ofm[3]
        g = lay.groups
        return g, n * oh * ow, lay.kernel[0] * lay.kernel[1] * cin // g, cout // g
    k = lay.ifm[-1]
    n_out = lay.ofm[-1]
    m = math.prod(lay.ofm[:-1])
    return 1, m, k, n_out


def fold_cycles(s_r: int, s_c: int, t: int, rows: int, cols: int) -> tuple[int, int]:
    """(cycles, folds) of one mapped product on a rows x cols array."""
    folds = math.ceil(s_r / rows) * math.ceil(s_c / cols)
    per = 2 * min(s_r, rows) + min(s_c, cols) + t - 2
    return folds * per, folds


def cost(lay: Layer, target: Target) -> Compute:
    p = target.params
    rows, cols = p["rows"], p["cols"]
    act, wmem = target.placement["activations"], target.placement["weights"]
    if lay.kind in MAC_KINDS:
        g, m, k, n = gemm_dims(lay)
        if p["dataflow"] == "ws":
            cyc, folds = fold_cycles(k, n, m, rows, cols)
        else:
            cyc, folds = fold_cycles(m, n, k, rows, cols)
        cycles = g * cyc
        util = lay.macs / (cycles * rows * cols) if cycles else 0.0
        out_cyc = lay.ofm_elements * p["output_cycles_per_element"] / cols
        c = Compute(cycles, out_cyc, util, element_ops=lay.ofm_elements,
                    detail={"dataflow": p["dataflow"], "groups": g, "M": m, "K": k, "N": n,
                            "folds": g * folds})
        col_folds = math.ceil(n / cols)
        if lay.weights_const:
            reloads = 1
            if p["weight_buffer_bytes"] and lay.weight_bytes > p["weight_buffer_bytes"]:
                reloads = math.ceil(m / rows) if p["dataflow"] == "os" else 1
            c.move(wmem, read=lay.weight_bytes * reloads)
            c.move(act, read=lay.ifm_bytes * col_folds, write=lay.ofm_bytes)
        else:
            c.move(act, read=lay.ifm_bytes * col_folds + lay.ifm2_bytes, write=lay.ofm_bytes)
        return c
    lanes = p["vector_lanes"]
    if lay.kind == "alias":
        return Compute(0.0, 0.0, 0.0)
    if lay.kind == "movement":
        steps = lay.ofm_elements
        ops = 0
    elif lay.kind == "pool":
        steps = lay.ofm_elements * lay.kernel[0] * lay.kernel[1]
        ops = steps
    else:  # elementwise, lookup, softmax, norm, resize: a few vector steps per element
        per = {"elementwise": 1, "lookup": 1, "softmax": 4, "norm": 4, "resize": 2}[lay.kind]
        steps = lay.ofm_elements * per
        ops = steps
    c = Compute(0.0, steps / lanes, 0.0, element_ops=ops, detail={"vector_steps": steps})
    c.move(act, read=lay.ifm_bytes + lay.ifm2_bytes, write=lay.ofm_bytes)
    if lay.weight_bytes:
        c.move(wmem, read=lay.weight_bytes)
    return c
