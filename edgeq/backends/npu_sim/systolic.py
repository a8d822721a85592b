"""A generic systolic-array NPU (``architecture = "systolic"``), costed as SCALE-Sim v3 counts
compute cycles (``scalesim/compute/systolic_compute_{ws,os}.py``, which build each fold's demand
matrices; Samajdar et al., ISPASS 2020, section III):

A layer is ``g`` matrix products. A convolution of ``groups`` groups has, per group, ``M``
output pixels (N x Oh x Ow), ``K = kh x kw x Cin/groups`` reduction terms and ``N =
Cout/groups`` filters; a matmul ``[M, K] x [K, N]`` is one product, a batched product of two
activations (``QMatMul`` with ``[..., K, N]`` weights per batch) is one per batch. The dataflow
maps two of (M, K, N) onto the ``R x C`` array (``S_R`` on rows, ``S_C`` on columns) and
streams the third (``T``):

- weight stationary (``ws``): S_R = K, S_C = N, T = M; a fold loads its weights (``R`` cycles),
  streams ``T`` input rows through the array, skewed by one cycle per row and column (``R + C
  - 2``), and drains the last partial sums down the ``R`` rows: ``2R + C + T - 2`` cycles;
- output stationary (``os``): S_R = M, S_C = N, T = K; inputs and weights stream in, skewed,
  and the outputs drain: ``R + C + T - 2`` cycles per fold.

There are ``ceil(S_R / R) x ceil(S_C / C)`` folds, run one after another, and a partly used
fold costs as much as a full one (the data still crosses the whole array). SCALE-Sim reports
the index of a layer's last busy cycle, counting from 0, so a product takes ``folds x
per_fold - 1`` cycles; edgeq keeps that convention so its numbers are SCALE-Sim's exactly
(``tools/npu_scalesim.py`` checks them layer by layer). These are compute cycles: SCALE-Sim's
memory stalls are the accounting's memory terms here (``simulate.py``).

Utilization = MACs / (cycles x R x C). A depthwise convolution is ``groups`` products with
``K = kh x kw`` and ``N = 1``: one column of the array per fold, as SCALE-Sim's depthwise mode
(one layer per channel) maps it. Pooling, element-wise ops, lookups and data movement run on
the vector unit, ``vector_lanes`` elements per cycle (window elements for a pool). Traffic:
weights read once from their memory (again for each output fold beyond
``weight_buffer_bytes``), the input read once per column fold (the array re-reads it for each
group of ``C`` filters) and the output written once, in the activation memory.
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
    """(g, M, K, N): ``lay`` is ``g`` products ``[M, K] x [K, N]``."""
    if lay.kind in ("conv", "depthwise"):
        n, cin = lay.ifm[0], lay.ifm[1]
        cout, oh, ow = lay.ofm[1], lay.ofm[2], lay.ofm[3]
        g = lay.groups
        return g, n * oh * ow, lay.kernel[0] * lay.kernel[1] * cin // g, cout // g
    k = lay.ifm[-1]
    n_out = lay.ofm[-1]
    rows_out = math.prod(lay.ofm[:-1])
    # two activations: one product per batch of the second (a broadcast one is shared)
    g = math.prod(lay.ifm2[:-2]) if lay.ifm2 is not None and len(lay.ifm2) > 2 else 1
    return g, rows_out // g, k, n_out


def fold_cycles(s_r: int, s_c: int, t: int, rows: int, cols: int, dataflow: str
                ) -> tuple[int, int]:
    """(cycles, folds) of one product mapped ``S_R x S_C`` and streamed ``T`` on a ``rows x
    cols`` array, as SCALE-Sim counts them (the index of the last cycle)."""
    folds = math.ceil(s_r / rows) * math.ceil(s_c / cols)
    fill = 2 * rows if dataflow == "ws" else rows
    return folds * (fill + cols + t - 2) - 1, folds


def mac_cycles(lay: Layer, rows: int, cols: int, dataflow: str) -> tuple[int, int]:
    """(cycles, folds) of a MAC layer on a ``rows x cols`` array."""
    g, m, k, n = gemm_dims(lay)
    if dataflow == "ws":
        cyc, folds = fold_cycles(k, n, m, rows, cols, dataflow)
    else:
        cyc, folds = fold_cycles(m, n, k, rows, cols, dataflow)
    return g * cyc, g * folds


def cost(lay: Layer, target: Target) -> Compute:
    p = target.params
    rows, cols = p["rows"], p["cols"]
    act, wmem = target.placement["activations"], target.placement["weights"]
    if lay.kind in MAC_KINDS:
        g, m, k, n = gemm_dims(lay)
        cycles, folds = mac_cycles(lay, rows, cols, p["dataflow"])
        util = lay.macs / (cycles * rows * cols) if cycles else 0.0
        out_cyc = lay.ofm_elements * p["output_cycles_per_element"] / cols
        c = Compute(cycles, out_cyc, util, element_ops=lay.ofm_elements,
                    detail={"dataflow": p["dataflow"], "groups": g, "M": m, "K": k, "N": n,
                            "folds": folds})
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
