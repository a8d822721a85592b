"""Arm Ethos-U (``architecture = "ethos-u"``): a first-order block model of the MAC engine and
output stage, with the hardware numbers of the target file (Vela's ``ArchitectureConfig`` and
output tables). ``tools/bench_npu.py`` compares it with Vela 5.2 layer by layer.

- Convolution and fully connected: the output is computed in micro-blocks of ``ofm_ublock``
  (H x W x C) and the reduction in steps of ``ifm_ublock`` depth; the MAC array runs
  ``macs_per_cycle`` MACs per cycle on whole micro-blocks, so a layer whose output or input
  depth does not fill them wastes the rest: utilization =
  ``(Oh Ow Cout) / (ceil(Oh/uh) uh ceil(Ow/uw) uw ceil(Cout/uc) uc) x Cin' / ceil(Cin'/ud) ud``
  (``Cin' = Cin / groups``), and ``MAC cycles = MACs / (macs_per_cycle x utilization)``.
- Depthwise convolution and pooling: one MAC (or compare) per output element of a micro-block
  per cycle, per kernel element: ``ceil(Oh/uh) ceil(Ow/uw) ceil(C/uc) x kh kw`` cycles.
- Output stage: ``output elements x output_cycles_per_element[kind]`` (int8/int16 convolution,
  element-wise, multiply) plus the activation's cycles per element (lookups).
- Element-wise ops, lookups: the output stage only; softmax and layer norm are decomposed by
  Vela into about ten element-wise passes: ten times an element-wise op.
- Data movement (concat, slice, transpose, pad): DMA at the activation memory's bandwidth.
- Traffic: weights (and biases, tables) read once from ``placement.weights``; input read once,
  output written once, in ``placement.activations``.
"""

from __future__ import annotations

import math

from edgeq.backends.npu_sim.simulate import Compute
from edgeq.ops.mapping import Layer
from edgeq.targets import Target

CONV8, CONV16, CONV32, ELEM8, ELEM16, ELEM32, MUL8, MUL16 = range(8)
SIGMOID_TANH, CLAMP, NONE = range(3)
DECOMPOSED_PASSES = 10  # softmax / layer norm as Vela lowers them: ~10 element-wise passes


def peak_macs_per_cycle(target: Target) -> float:
    return float(target.params["macs_per_cycle"] * target.params["cores"])


def _round_up(x: int, m: int) -> int:
    return -(-x // m) * m


def _ofm_hwc(lay: Layer) -> tuple[int, int, int]:
    s = lay.ofm
    if len(s) == 4:
        return s[0] * s[2], s[3], s[1]
    if len(s) >= 2:
        return math.prod(s[:-1]), 1, s[-1]
    return 1, 1, s[0] if s else 1


def cost(lay: Layer, target: Target) -> Compute:
    p = target.params
    uh, uw, uc = p["ofm_ublock"]
    ud = p["ifm_ublock"][2]
    peak = peak_macs_per_cycle(target)
    ocpe = p["output_cycles_per_element"]
    act_cpe = p["activation_cycles_per_element"]
    act, wmem = target.placement["activations"], target.placement["weights"]
    wide = lay.ofm_bits > 8
    h, w, ch = _ofm_hwc(lay)
    blocks = math.ceil(h / uh) * math.ceil(w / uw) * math.ceil(ch / uc)
    if lay.kind in ("conv", "matmul"):
        cin = (lay.ifm[1] // lay.groups) if lay.kind == "conv" else lay.ifm[-1]
        util_out = (h * w * ch) / (_round_up(h, uh) * _round_up(w, uw) * _round_up(ch, uc))
        util_in = cin / _round_up(cin, ud)
        util = util_out * util_in
        mac_cyc = lay.macs / (peak * util) if lay.macs else 0.0
        out_cyc = lay.ofm_elements * ocpe[CONV16 if wide else CONV8]
        c = Compute(mac_cyc, out_cyc, util, element_ops=lay.ofm_elements,
                    detail={"ofm_ublocks": blocks, "ifm_depth_steps": math.ceil(cin / ud)})
    elif lay.kind in ("depthwise", "pool"):
        k = lay.kernel[0] * lay.kernel[1]
        mac_cyc = blocks * k
        util = lay.macs / (mac_cyc * peak) if lay.macs else 0.0
        out_cyc = lay.ofm_elements * ocpe[CONV16 if wide else CONV8]
        c = Compute(mac_cyc, out_cyc, util, element_ops=lay.ofm_elements * k,
                    detail={"ofm_ublocks": blocks, "kernel_elements": k})
    elif lay.kind == "alias":
        return Compute(0.0, 0.0, 0.0)
    elif lay.kind == "movement":
        bw = target.memories[act].bytes_per_cycle
        c = Compute(0.0, (lay.ifm_bytes + lay.ofm_bytes) / bw, 0.0,
                    detail={"dma_bytes": lay.ifm_bytes + lay.ofm_bytes})
    else:
        per = ocpe[MUL16 if wide else MUL8] if lay.op == "QMul" else \
            ocpe[ELEM16 if wide else ELEM8]
        if lay.kind == "lookup":
            per += act_cpe[SIGMOID_TANH]
        passes = DECOMPOSED_PASSES if lay.kind in ("softmax", "norm") else 1
        if lay.kind == "resize":
            passes = 2
        c = Compute(0.0, lay.ofm_elements * per * passes, 0.0,
                    element_ops=lay.ofm_elements * passes, detail={"passes": passes})
    c.move(act, read=lay.ifm_bytes + lay.ifm2_bytes, write=lay.ofm_bytes)
    if lay.weight_bytes:
        c.move(wmem, read=lay.weight_bytes)
    return c
