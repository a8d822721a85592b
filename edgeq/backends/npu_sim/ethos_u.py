"""Arm Ethos-U55/U65 (``architecture = "ethos-u"``): a block model of the NPU as Arm's Vela 5.2
estimates it (its C++ core's Ethos-U55 performance model), with every hardware number read
from the target file's ``[ethos_u]`` section. ``tools/bench_npu.py`` compares it with Vela.

Shapes are H x W x C (batch folded into H). A MAC op (convolution, depthwise, fully connected,
pooling, reduce-sum) runs as follows.

- **OFM block.** The output is computed block by block. The block (h, w, c) is searched over
  multiples of the micro-block ``ofm_ublock`` up to ``ofm_block_max``; depth steps of
  ``ofm_split_depth`` once the output is split in depth. A block must fit the shared buffer:
  the IFM block it needs (``(h-1) stride + kernel``, rounded to the micro-block, depth
  ``min(Cin, 32)`` or 16 for part-kernel, double-buffered) and its accumulators (32-bit, double
  buffered) in ``shram_banks`` banks of ``shram_bank_bytes``, each rounded to its granule
  (``shram_granules``), the ``shram_reserved_*`` banks excluded. The block chosen minimises
  (IFM fetches + weight fetches) per output element.
- **Kernel traversal.** Depth-first takes 32 input channels per kernel step, part-kernel (Cin
  <= 8 or when it packs better) 4 kernel elements of 8 channels per step.
- **MAC cycles per block** (per sub-kernel of at most ``subkernel_max``):
  ``max(32 uc / 8, 4 x micro-blocks(H W)) x steps x micro-blocks(C)``, plus a pipeline delay
  of 2 cycles per step when a block is a single micro-block in H x W; depthwise takes
  ``ceil(k/4)`` steps of ``4 x micro-blocks(H W)``; pooling ``max(4, k) x micro-blocks x bits/2``.
  Convolutions repeat it per IFM block depth, ``ceil(Cin / ifm block depth)``.
- **Output stage (AO) cycles per block**: ``block elements x max(output_cycles_per_element
  [kind], activation_cycles_per_element[act])``, at least the scale/bias fetch
  (``10 x block depth x weight memory read latency / 256``).
- **Command issue**: ``(|OFM block write - IFM block read| + MAC + AO) / 4`` per block bounds
  both; the layer takes ``blocks x max(MAC, AO) + the other once + first IFM block read +
  last OFM block write`` (block transfers: latency + bytes / bandwidth).
- **Weights**: encoded as Vela's encoder lays them out (``encoded_weight_bytes``): per OFM
  depth slice the scales (``scale_bytes_per_channel`` each) and the compressed weights, each
  padded to 16 bytes; a weight costs ``weight_compression_ratio`` bytes, a zero of the NPU
  order's padding ``PAD_ZERO_BITS`` x the slice's share of real weights. When the weights are
  re-read for more than one OFM block in H x W, or read once by a layer whose compute
  outlasts reading them (``latency + bytes / bandwidth``), they are DMA'd from the weight
  memory into SRAM in two depth slices (the first at least 16 channels): the first is a
  prefetch under the previous layer (``simulate.Prefetch``: the NPU waits ``max(first DMA -
  slack, 0)``, and at least ``whole DMA - slack + last slice's compute``; a DMA is ``latency +
  bytes / bandwidth``), the weight memory moves the rest during the layer, the SRAM is read
  once per block position. Otherwise they stream straight from the weight memory, the scales
  at its latency.
- **Fully connected**: the rows (a batch) form a plane (``FC_ROW_SPLIT``, Vela's batching
  split) so that one OFM block can cover them; a mean over the last axis is a 1-column fully
  connected sum, over the second-last axis a transpose then that sum.
- **IFM re-reads**: the IFM block is fetched once per OFM block (so once per OFM depth slice)
  and per sub-kernel; feature maps move in bursts (brick format NHCWB16: 16 bytes x block
  width per burst), weaker bursts cost the memory's whole ``burst_bytes``.

Element-wise ops take ``max(elements x AO, command issue)``; an operand that is a constant
(a per-channel vector: Vela keeps it in the weight memory) is re-read per output element in
bursts of its channel bytes, twice for the rescaling add/sub. Lookups are an element-wise op
with the LUT activation plus the table's transfer; softmax runs Vela's int8 decomposition
(row max, exp LUT, sum, reciprocal by Newton-Raphson on the rows, scale). Data movement
(transpose, concat, slice) is an NPU copy on the output stage, bounded by the activation
memory; a pad is Vela's copy of the input into the output's interior plus one fill per padded
side, each a 1 x 1 pooling no-op whose IFM is the zero constant in the weight memory (bricks),
so each of its blocks waits for that memory's latency. The layer's bytes per memory are bus
bytes (burst padding included), so that ``simulate``'s ``max(compute, memory cycles)`` is the
bound Vela reports.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from edgeq.backends.npu_sim.simulate import Compute, Prefetch
from edgeq.ops.mapping import Layer
from edgeq.targets import Memory, Target

# indices of output_cycles_per_element (Vela's C++ core, EstimateAOCyclesPerElement)
EW32_UNARY, EW32_BINARY, MUL32, MUL_ACC40, ADD_SIMPLE, ADD_ADVANCED, MAXPOOL, OTHER = range(8)
ACT_LUT, ACT_CLAMP, ACT_NONE = range(3)
# shram_granules indices
IFM8, IFM16, IFM8_EW, IFM16_EW, IFM32, ACC16, ACC32, ACC40 = range(8)
CONV, DEPTHWISE, VECTOR, POOL, REDUCE_SUM, ELEMENTWISE = "conv", "dw", "fc", "pool", "sum", "ew"
CMD_ISSUE_PARALLELISM = 4  # the command stream keeps 4 blocks in flight (Vela: "per DPU")
LUT_BYTES = 256           # an int8 lookup table as Vela stores it
# bits a padding zero of the weight stream costs after Vela's mlw codec, times the stream's
# share of real weights (zeros between weights cost a zero-run code, long runs of padding
# little): ethosu.mlw_codec.reorder_encode on the zoo's 48 padded streams gives 4.5 x share
# within 25% for streams of 9% to 75% real weights (0.6 bits at 12%, 2.4 at 50%, 3.5 at 75%)
PAD_ZERO_BITS = 4.5


def peak_macs_per_cycle(target: Target) -> float:
    return float(target.params["macs_per_cycle"] * target.params["cores"])


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def _rup(a: int, b: int) -> int:
    return _cdiv(a, b) * b


HWC = tuple[int, int, int]


def _hwc(shape: tuple[int, ...], spatial: bool) -> HWC:
    """NCHW (spatial ops) or [..., rows, features] as H x W x C with the batch folded into H."""
    if spatial and len(shape) == 4:
        return shape[0] * shape[2], shape[3], shape[1]
    if len(shape) >= 2:
        return max(1, math.prod(shape[:-2])), shape[-2], shape[-1]
    return 1, 1, shape[0] if shape else 1


@dataclass(frozen=True)
class Arch:
    macs: int
    cores: int
    ublock: HWC
    ifm_ublock_depth: int
    banks: int
    bank_bytes: int
    reserved_output_banks: int
    reserved_end_banks: int
    granules: tuple[int, ...]
    block_max: HWC
    subkernel: tuple[int, int]
    split_depth: int
    out_cpe: tuple[float, ...]
    act_cpe: tuple[float, ...]
    ratio: float
    scale_bytes: int
    act: Memory
    wmem: Memory

    @classmethod
    def of(cls, t: Target) -> "Arch":
        p = t.params
        return cls(p["macs_per_cycle"], p["cores"], tuple(p["ofm_ublock"]),  # type: ignore
                   p["ifm_ublock"][2], p["shram_banks"], p["shram_bank_bytes"],
                   p["shram_reserved_output_banks"],
                   p["shram_reserved_end_banks"] if p["shram_banks"] > 16 else 0,
                   tuple(p["shram_granules"]), tuple(p["ofm_block_max"]),  # type: ignore
                   tuple(p["subkernel_max"]), p["ofm_split_depth"],  # type: ignore
                   tuple(p["output_cycles_per_element"]),
                   tuple(p["activation_cycles_per_element"]), p["weight_compression_ratio"],
                   p["scale_bytes_per_channel"], t.memory("activations"), t.memory("weights"))

    @property
    def mac_scale(self) -> float:
        """Cycle factor of a what-if ``macs_per_cycle`` against the micro-block's native MACs
        (``uh uw uc x ifm ublock depth``: 1.0 for every shipped configuration)."""
        native = math.prod(self.ublock) * self.ifm_ublock_depth
        return native / self.macs


@dataclass(frozen=True)
class Op:
    """One NPU operation: what Vela's performance query carries."""
    npu: str
    ifm: HWC
    ofm: HWC
    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    dilation: tuple[int, int] = (1, 1)
    ifm_bits: int = 8
    ofm_bits: int = 8
    ifm2: HWC | None = None
    ao_index: int = OTHER
    act_index: int = ACT_NONE
    # stored in NHCWB16 bricks (depth padded to 16); None: when 16 channels or deeper
    ifm_brick: bool | None = None
    ofm_brick: bool | None = None


def _part_kernel(op: Op) -> bool:
    cin = op.ifm[2]
    if cin <= 8:
        return True
    k = op.kernel[0] * op.kernel[1]
    depth_util = cin / _rup(cin, 32 if op.ifm_bits == 8 else 16)
    part_util = cin / _rup(cin, 8) * k / _rup(k, 4 if op.ifm_bits == 8 else 2)
    return part_util >= depth_util


def _ifm_block(a: Arch, op: Op, ofm_block: HWC) -> HWC:
    kh = min((op.kernel[0] - 1) * op.dilation[0] + 1, a.subkernel[0])
    kw = min((op.kernel[1] - 1) * op.dilation[1] + 1, a.subkernel[1])
    h = _rup((ofm_block[0] - 1) * op.stride[0] + kh, a.ublock[0])
    w = _rup((ofm_block[1] - 1) * op.stride[1] + kw, a.ublock[1])
    return h, w, ofm_block[2]


def _fits(a: Arch, op: Op, ofm_block: HWC, ifm_block: HWC) -> bool:
    """Does the block's IFM (and accumulators, or second IFM) fit the shared buffer?"""
    ew = op.npu == ELEMENTWISE
    wide = op.ifm_bits // 8
    granule = a.granules[(IFM8_EW if wide == 1 else IFM16_EW) if ew and wide < 4 else
                         IFM8 if wide == 1 else IFM16 if wide == 2 else IFM32]
    ifm_bytes = ifm_block[0] * ifm_block[1] * _rup(ifm_block[2] * wide, 8)
    ifm_banks = _rup(_cdiv(ifm_bytes, a.bank_bytes) * 2, granule)
    lut_start = a.banks - a.reserved_end_banks
    ifm_end = a.reserved_output_banks + ifm_banks
    if ew:
        scalar = op.ifm2 is not None and math.prod(op.ifm2) == 1
        return ifm_end + (0 if scalar or op.ifm2 is None else ifm_banks) <= lut_start
    acc_bytes = ofm_block[0] * ofm_block[1] * _rup(ofm_block[2], 8) * 32 // 8
    acc_banks = _rup(_cdiv(acc_bytes, a.bank_bytes) * 2, a.granules[ACC32])
    return ifm_end <= lut_start - acc_banks


def block_config(a: Arch, op: Op) -> tuple[HWC, HWC, bool]:
    """(OFM block, IFM block, part-kernel traversal) as Vela's block search picks them."""
    ifm = op.ifm2 if op.ifm2 and math.prod(op.ifm2) > math.prod(op.ifm) else op.ifm
    equal_depth = op.npu in (ELEMENTWISE, POOL, DEPTHWISE)
    part = op.npu == CONV and _part_kernel(op)
    ifm_depth = _rup(min(ifm[2], 16 if part else 32), a.ifm_ublock_depth) \
        if op.ifm_bits == 8 else _rup(min(ifm[2], 16), 4)
    uh, uw, uc = a.ublock
    space = tuple(_rup(min(o, m), u) for o, m, u in zip(op.ofm, a.block_max, a.ublock))
    repeats = _cdiv((op.kernel[0] - 1) * op.dilation[0] + 1, a.subkernel[0]) * \
        _cdiv((op.kernel[1] - 1) * op.dilation[1] + 1, a.subkernel[1])
    weights_wh = op.kernel[0] * op.kernel[1] if op.npu in (CONV, DEPTHWISE) else 0
    n_out = math.prod(op.ofm)
    best: tuple[float, float, HWC, HWC] | None = None
    depth = max(uc, min(space[2], a.split_depth))
    if depth < op.ofm[2]:
        depth = _rup(depth, a.split_depth)
    too_big: set[tuple[int, int]] = set()
    while depth <= space[2]:
        for h in range(uh, space[0] + 1, uh):
            for w in range(uw, space[1] + 1, uw):
                if (h, w) in too_big:
                    continue
                ob = (h, w, depth)
                ib = _ifm_block(a, op, ob)
                if not equal_depth:
                    ib = (ib[0], ib[1], ifm_depth)
                if not _fits(a, op, ob, ib):
                    too_big.add((h, w))
                    continue
                full = [_cdiv(o, b) for o, b in zip(op.ofm, ob)]
                frac = [o / b for o, b in zip(op.ofm, ob)]
                wfetch = float(weights_wh * ifm[2] * full[0] * full[1])
                if op.npu != DEPTHWISE:
                    wfetch *= frac[2] * depth
                ifetch = float(ib[0] * ib[1] * ifm[2] * repeats) * frac[0] * frac[1]
                if not equal_depth:
                    ifetch *= full[2]
                cost = n_out / (h * w * depth) if op.npu == ELEMENTWISE \
                    else (ifetch + wfetch) / n_out
                if math.prod(ifm) < math.prod(ib) * 2:
                    cost /= 2
                if best is None or cost < best[0]:
                    best = (cost, math.inf, ob, ib)
                elif cost == best[0] and h <= 4 and w <= 4:
                    cover = (ifm[0] * ifm[1]) / max(min(ifm[0], ib[0]) * min(ifm[1], ib[1]), 1)
                    if cover <= best[1]:
                        best = (cost, cover, ob, ib)
        depth += uc
        if depth < op.ofm[2]:
            depth = _rup(depth, a.split_depth)
    if best is None:  # nothing fits (not for int8 layers): the smallest block
        ob = (uh, uw, uc)
        return ob, _ifm_block(a, op, ob), part
    return best[2], best[3], part


def _ublock(a: Arch, op: Op) -> HWC:
    # 1-row outputs with a 1-row kernel use a 1 x 4 micro-block on 2-row engines
    if a.ublock[0] == 2 and op.npu in (CONV, VECTOR) and op.ofm[0] == 1 and \
            op.ofm[1] % 2 == 0 and op.kernel[0] == 1:
        return 1, 4, a.ublock[2]
    return a.ublock


def _mac_cycles_per_block(a: Arch, op: Op, ob: HWC, ib: HWC, part: bool) -> float:
    ob = tuple(min(x, y) for x, y in zip(op.ofm, ob))  # type: ignore[assignment]
    ib = tuple(min(x, y) for x, y in zip(op.ifm, ib))  # type: ignore[assignment]
    ub = _ublock(a, op)
    nh, nw, nc = (_cdiv(o, u) for o, u in zip(ob, ub))
    nwh = nh * nw
    wb = 32 * ub[2] // 8
    sub = (1, 1) if op.npu in (VECTOR, ELEMENTWISE) else a.subkernel
    total = 0
    for y in range(0, op.kernel[0], sub[0]):
        for x in range(0, op.kernel[1], sub[1]):
            k = min(op.kernel[0] - y, sub[0]) * min(op.kernel[1] - x, sub[1])
            if op.npu == POOL:
                steps, cyc = 1, max(4, k) * nwh * nc * (op.ifm_bits // 2)
            elif op.npu == DEPTHWISE:
                steps = _cdiv(k, 4)
                cyc = max(wb, 4 * nwh * (op.ifm_bits // 8)) * steps * nc
            elif part:
                steps = _cdiv(k, 2 if op.ifm_bits == 16 else 4)
                cyc = max(wb, 4 * nwh) * steps * nc * _cdiv(ib[2], 8)
            else:
                steps = k
                cyc = max(wb, 4 * nwh) * steps * nc
            delay = 0
            if nwh == 1:
                delay = 2 * steps if nc == 1 else 2 * (steps - 1) * nc if steps > 1 else 0
            if part:
                delay *= _cdiv(ib[2], 8)
            total += cyc + delay
    if op.npu in (CONV, VECTOR, REDUCE_SUM):
        total *= _cdiv(op.ifm[2], ib[2])
    return total * a.mac_scale / a.cores


def _depth(c: int, brick: bool | None = None) -> int:
    """Stored depth of a feature map: NHCWB16 bricks pad it to 16, NHWC does not. Vela keeps
    the graph's input and output NHWC and every map in between in bricks; ``None`` (a map
    whose place in the graph is not known): bricks from 16 channels up."""
    if brick is None:
        brick = c >= 16
    return _rup(c, 16) if brick else c


def _burst_bytes(mem: Memory, bits: int, block: HWC, shape: HWC, read: bool, brick: bool,
                 cores: int = 1) -> int:
    """Bytes per burst the NPU achieves moving ``block`` of a feature map of ``shape``."""
    if brick:  # NHCWB16: 16 channels x block width contiguous
        z_stride = shape[1] * bits * 16 // 8
        burst = bits * block[1] * block[2] if z_stride == block[2] else \
            16 * bits * block[1] * (1 if read else cores)
    else:      # NHWC
        x_stride = shape[2] * bits // 8
        if read:
            burst = bits * block[1] * block[2] if x_stride == block[2] else bits * block[2]
        elif block[2] <= 16 and x_stride == block[2]:
            burst = bits * block[1] * block[2]
        else:
            burst = min(64 * 8, 16 * bits * cores, block[2] * bits)
    return max(1, min(mem.burst_bytes, burst // 8))


def _bus_bytes(mem: Memory, bits: int, block: HWC, shape: HWC, elements: float, read: bool,
               brick: bool | None = None) -> float:
    """Bus bytes to move ``elements``: short bursts still occupy whole ``burst_bytes``."""
    if brick is None:
        brick = shape[2] >= 16
    burst = _burst_bytes(mem, bits, block, shape, read, brick)
    return float(math.ceil(elements * bits / 8 * mem.burst_bytes / burst))


def _block_transfer(mem: Memory, bits: int, block: HWC, shape: HWC, read: bool,
                    brick: bool | None = None) -> float:
    n = math.prod(min(x, y) for x, y in zip(shape, block))
    lat = mem.read_latency_cycles if read else mem.write_latency_cycles
    return lat + int(_bus_bytes(mem, bits, block, shape, n, read, brick) / mem.bytes_per_cycle)


def _ao_per_element(a: Arch, op: Op) -> float:
    return max(a.out_cpe[op.ao_index], a.act_cpe[op.act_index])


def _mac_op(a: Arch, op: Op, bias_latency: float, c: Compute, ifm_mem: Memory | None = None,
            ifm_brick: bool | None = None) -> tuple[float, int]:
    """Cycles of a MAC op (Vela's EstimateMacOpCycles) and its feature-map traffic into ``c``;
    the IFM is read from ``ifm_mem`` (default: the activation memory), in bricks when
    ``ifm_brick`` (default: when it is 16 channels or deeper)."""
    src = a.act if ifm_mem is None else ifm_mem
    ob, ib, part = block_config(a, op)
    obc = tuple(min(x, y) for x, y in zip(op.ofm, ob))
    ub = _ublock(a, op)
    per_block = math.prod(_cdiv(x, u) for x, u in zip(obc, ub))
    n_blocks = math.prod(_cdiv(x, u) for x, u in zip(op.ofm, ub)) / per_block
    ao = float(math.ceil(_ao_per_element(a, op) * math.prod(obc)))
    if op.npu in (CONV, DEPTHWISE, VECTOR) and bias_latency:  # scales: 256 B per latency
        ao = max(ao, a.scale_bytes * obc[2] * bias_latency / 256)
    mac = _mac_cycles_per_block(a, op, ob, ib, part)
    if ifm_brick is None:
        ifm_brick = op.ifm_brick
    ifm_cyc = _block_transfer(src, op.ifm_bits, ib, op.ifm, True, ifm_brick)
    ofm_cyc = _block_transfer(a.act, op.ofm_bits, ob, op.ofm, False, op.ofm_brick)
    issue = ((abs(ofm_cyc - ifm_cyc) if n_blocks > 1 else 0) + mac + ao) / CMD_ISSUE_PARALLELISM
    bmac, bao = max(mac, issue), max(ao, issue)
    cycles = (bmac * n_blocks + bao) if bmac > bao else (bao * n_blocks + bmac)
    cycles += ifm_cyc + ofm_cyc
    # feature-map traffic: the IFM block per OFM block (depth slices of dw/pool excluded)
    # and per sub-kernel; the OFM once
    grid = [_cdiv(o, b) for o, b in zip(op.ofm, ob)]
    if op.npu in (DEPTHWISE, POOL):
        grid[2] = 1
    subk = _cdiv(op.kernel[0], a.subkernel[0]) * _cdiv(op.kernel[1], a.subkernel[1])
    ibc = tuple(min(x, y) for x, y in zip(op.ifm, ib))
    fetch = ibc[0] * ibc[1] * _depth(op.ifm[2], ifm_brick) * subk * math.prod(grid)
    c.move(src.name, read=_bus_bytes(src, op.ifm_bits, ib, op.ifm, fetch, True, ifm_brick))
    c.move(a.act.name, write=_bus_bytes(a.act, op.ofm_bits, ob, op.ofm, op.ofm[0] * op.ofm[1]
                                        * _depth(op.ofm[2], op.ofm_brick), False, op.ofm_brick))
    c.detail.update(ofm_block=list(ob), ifm_block=list(ib),
                    traversal="part-kernel" if part else "depth-first"
                    if op.npu in (CONV, VECTOR) else op.npu,
                    ofm_blocks=round(n_blocks, 2), mac_cycles_per_block=round(mac, 1),
                    ao_cycles_per_block=round(ao, 1))
    c.output_cycles += bao * (n_blocks if bao >= bmac else 1)
    return float(cycles), grid[0] * grid[1]


def _conv_weights(a: Arch, lay: Layer, op: Op, c: Compute) -> float:
    """A convolution with its weights either streamed from the weight memory (scales fetched
    at its latency) or DMA'd into SRAM first, the way Vela's scheduler picks: buffered when the
    weights are re-read for several OFM block positions, or when the compute would hide the
    transfer."""
    direct = Compute(0.0, 0.0, 0.0, latency_included=True)
    comp, refetch = _mac_op(a, op, a.wmem.read_latency_cycles, direct)
    streamed = _weights(a, lay, op, comp, 1, direct, buffered=False)
    if a.wmem.name == a.act.name:
        c.__dict__.update(direct.__dict__)
        return streamed
    buf = Compute(0.0, 0.0, 0.0, latency_included=True)
    comp_b, _ = _mac_op(a, op, a.act.read_latency_cycles, buf)
    buffered = _weights(a, lay, op, comp_b, max(refetch, 1), buf, buffered=True)
    enc = buf.detail["encoded_weight_bytes"]
    # read once, the weights are DMA'd only when the layer's compute outlasts reading them
    # from the weight memory (latency + bytes / bandwidth), so that the DMA can hide; else
    # they stream (Vela 5.2's choices on the zoo: digits_cnn's part-kernel convolutions are
    # buffered, its 3 x 3 depth-first one and mobilenet_v2's single-block projections stream)
    unmoved = a.wmem.read_latency_cycles + enc / a.wmem.bytes_per_cycle
    if refetch > 1 or comp > unmoved:
        c.__dict__.update(buf.__dict__)
        return buffered
    c.__dict__.update(direct.__dict__)
    return streamed


def encoded_weight_bytes(a: Arch, op: Op, lay: Layer, part: bool, slice_depth: int) -> int:
    """Bytes of the weight stream as Vela's encoder lays it out (weight_compressor.py,
    encode_weight_and_scale_tensor, and the mlw codec's reorder): per OFM depth slice of
    ``slice_depth`` channels, the slice's scales (``scale_bytes_per_channel`` each) padded to
    16 bytes, then its compressed weights padded to 16 bytes. The codec compresses the weights
    in the order the NPU reads them, padded with zeros: output channels to the OFM micro-block
    depth; depth-first input channels to 32 (16 for 16-bit IFMs, one kernel step); part-kernel
    input channels to 8 and each sub-kernel's elements to 4 (2 for 16-bit); depthwise each
    sub-kernel's elements to 4. A weight costs ``weight_compression_ratio`` bytes, a padding
    zero ``PAD_ZERO_BITS`` times the slice's share of real weights."""
    cout, cin = op.ofm[2], op.ifm[2]
    sub_h, sub_w = a.subkernel
    step = 2 if op.ifm_bits == 16 else 4
    kh, kw = op.kernel
    k_pad = 0
    for y in range(0, kh, sub_h):
        for x in range(0, kw, sub_w):
            k = min(kh - y, sub_h) * min(kw - x, sub_w)
            k_pad += _rup(k, step) if part or op.npu == DEPTHWISE else k
    cin_pad = 1 if op.npu == DEPTHWISE else _rup(cin, 8) if part else \
        _rup(cin, 16 if op.ifm_bits == 16 else 32)
    real = lay.macs // max(1, op.ofm[0] * op.ofm[1])  # Cout x Cin/groups x kh x kw
    total = 0
    for first in range(0, cout, max(1, slice_depth)):
        ch = min(slice_depth, cout - first)
        n_real = real * ch // cout
        n_pad = _rup(ch, a.ublock[2]) * cin_pad * k_pad - n_real
        n_pad = max(0, n_pad)
        bits = n_real * 8 * a.ratio + n_pad * PAD_ZERO_BITS * n_real / (n_real + n_pad)
        total += _rup(a.scale_bytes * ch, 16) + _rup(math.ceil(bits / 8), 16)
    return total


def _weights(a: Arch, lay: Layer, op: Op, compute: float, refetch: int, c: Compute,
             buffered: bool = False) -> float:
    """Encoded weights and scales: streamed, or DMA'd into SRAM when re-read. Returns the
    layer's cycles with the weight transfer."""
    cout = op.ofm[2]
    encoded = encoded_weight_bytes(a, op, lay, c.detail["traversal"] == "part-kernel",
                                   c.detail["ofm_block"][2])
    c.detail["encoded_weight_bytes"] = int(encoded)
    if a.wmem is a.act or a.wmem.name == a.act.name:
        c.move(a.act.name, read=encoded * refetch)
        return compute
    if not buffered:
        c.move(a.wmem.name, read=encoded)
        return compute
    # double-buffered: the first slice (half the weights, at most one OFM block depth) is DMA'd
    # while the previous layer runs, the rest behind this layer's blocks; what the previous
    # layer does not hide, the NPU waits for (the accounting's prefetch, Compute.then). The
    # weight memory is charged the bytes not prefetched (Vela's per-layer access cycles)
    ob = c.detail["ofm_block"]
    # Vela slices weights in depth in steps of at least OFMSplitDepth (16) channels: 16 or
    # fewer output channels are one slice, single-buffered
    first_depth = min(cout, max(a.split_depth, min(ob[2], _cdiv(cout, 2))))
    first = encoded * first_depth // cout
    c.move(a.wmem.name, read=encoded - first)
    c.move(a.act.name, read=encoded * refetch, write=encoded)
    # two slices, [0, first) and [first, cout): the last one's compute needs all the weights
    tail = compute * ((cout - first_depth) if first_depth < cout else cout) / cout
    c.prefetch = Prefetch(_mem_to_mem(a.wmem, a.act, first), _mem_to_mem(a.wmem, a.act, encoded),
                          tail)
    c.detail["weights"] = "dma to sram"
    c.detail["prefetched_weight_bytes"] = int(first)
    return compute


def _mem_to_mem(src: Memory, dst: Memory, size_bytes: float) -> float:
    """A DMA's cycles (Vela's MemToMemCycles): the slower of reading ``src`` (latency +
    bytes / bandwidth) and writing ``dst`` (bytes / bandwidth + the source's write latency, as
    Vela's C++ core counts it)."""
    return max(src.read_latency_cycles + size_bytes / src.bytes_per_cycle,
               src.write_latency_cycles + size_bytes / dst.bytes_per_cycle)


def _elementwise(a: Arch, op: Op, c: Compute, const: HWC | None = None, passes: int = 1
                 ) -> float:
    """Cycles of an element-wise op (Vela's EstimateElementwiseCycles) and its traffic; a
    ``const`` operand lives in the weight memory and is broadcast from it."""
    ob, ib, _ = block_config(a, op)
    n = op.ofm[0] * op.ofm[1] * _depth(op.ofm[2], op.ofm_brick)
    ao_e = _ao_per_element(a, op)
    block = max(_block_transfer(a.act, op.ofm_bits, ob, op.ofm, False, op.ofm_brick),
                _block_transfer(a.act, op.ifm_bits, ib, op.ifm, True, op.ifm_brick))
    issue = math.ceil((block / math.prod(ob) + ao_e) / CMD_ISSUE_PARALLELISM * n)
    cycles = max(issue, math.ceil(ao_e * n))
    reads = 1 + (op.ifm2 is not None and math.prod(op.ifm2) > 1)
    n_in = op.ofm[0] * op.ofm[1] * _depth(op.ofm[2], op.ifm_brick)
    c.move(a.act.name, read=reads * _bus_bytes(a.act, op.ifm_bits, ib, op.ofm, n_in, True,
                                               op.ifm_brick),
           write=_bus_bytes(a.act, op.ofm_bits, ob, op.ofm, n, False, op.ofm_brick))
    if const is not None and math.prod(const) > 1:
        # Vela keeps a constant operand in its (NHWC) memory and re-reads it per element
        burst = _burst_bytes(a.wmem, op.ifm_bits, ib, const, True, brick=False)
        if op.ao_index == ADD_ADVANCED:
            burst = max(1, min(a.wmem.burst_bytes, const[2] * op.ifm_bits // 8))
            passes = 2
        elems = math.prod(op.ofm)
        c.move(a.wmem.name, read=math.ceil(passes * elems * op.ifm_bits / 8 * a.wmem.burst_bytes
                                           / burst))
    c.output_cycles += math.ceil(ao_e * n)
    c.detail.update(ofm_block=list(ob), ao_cycles_per_element=ao_e)
    return float(cycles)


def _copy(a: Arch, lay: Layer, c: Compute) -> float:
    """Data movement as an NPU copy (Vela: MemoryCopy / Transpose as a pooling no-op)."""
    n = lay.ofm_elements
    nb = lay.ofm_bits // 8
    per = _cdiv(n, math.prod(a.ublock)) * 4 * (lay.ifm_bits // 2) / 4  # 1x1 pooling no-op
    ifm = _hwc(lay.ifm, len(lay.ifm) == 4)
    read = _bus_bytes(a.act, lay.ifm_bits, a.ublock, ifm, math.prod(lay.ifm), True)
    c.move(a.act.name, read=read + lay.ifm2_bytes, write=n * nb)
    c.detail["dma_bytes"] = lay.ifm_bytes + lay.ifm2_bytes + n * nb
    cycles = max(per * a.mac_scale, read / a.act.bytes_per_cycle) + \
        a.act.read_latency_cycles + a.act.write_latency_cycles
    if lay.op == "Pad" and len(lay.ofm) == 4:
        # Vela: a copy of the input into the output's interior, then one fill per padded side
        # (top and bottom rows across the output's width, left and right columns down its
        # height), each a 1 x 1 pooling no-op on the NPU (MemoryCopy) whose IFM is the zero
        # constant, kept in the weight memory in bricks (NHCWB16): each block of a fill waits
        # for that memory's latency. Which sides are padded is not in the layer: the growth is
        # split evenly between the two sides of an axis
        ofm = _hwc(lay.ofm, True)
        c.traffic.clear()
        cycles, _ = _mac_op(a, Op(POOL, ifm, ifm, ifm_bits=lay.ifm_bits,
                                  ofm_bits=lay.ofm_bits), 0.0, c)
        grow_h, grow_w = ofm[0] - ifm[0], ofm[1] - ifm[1]
        sides = [(t, ofm[1]) for t in (_cdiv(grow_h, 2), grow_h // 2) if t > 0] + \
            [(ofm[0], t) for t in (_cdiv(grow_w, 2), grow_w // 2) if t > 0]
        for h, w in sides:
            side = (h, w, ofm[2])
            f = Compute(0.0, 0.0, 0.0)
            fill, _ = _mac_op(a, Op(POOL, side, side, ifm_bits=lay.ofm_bits,
                                    ofm_bits=lay.ofm_bits), 0.0, f, ifm_mem=a.wmem,
                              ifm_brick=True)
            cycles += fill
            c.slack_cycles = fill  # the next layer's weight DMA runs under the last fill
            # the constant's bricks as Vela counts them: 16 channels per IFM block element,
            # once per OFM block, without burst padding (its per-layer weight-memory cycles)
            ob, ib = f.detail["ofm_block"], f.detail["ifm_block"]
            blocks = _cdiv(h, ob[0]) * _cdiv(w, ob[1])
            c.move(a.wmem.name, read=min(h, ib[0]) * min(w, ib[1]) * _rup(ofm[2], 16) * blocks)
            c.move(a.act.name, write=f.traffic[a.act.name][1])
        c.detail = {"pad_fills": len(sides), "dma_bytes": lay.ifm_bytes + n * nb}
        if not sides:
            c.slack_cycles = None
    elif lay.op == "Transpose" and len(lay.ofm) > 4:
        # beyond 4-D Vela splits the transpose into one per leading slice, and their strided
        # writes move one element per burst
        bus = n * nb * a.act.burst_bytes / max(1, nb)
        c.traffic.clear()
        c.move(a.act.name, read=read, write=bus)
        slices = math.prod(lay.ofm[:-3])
        cycles = max(cycles, bus / a.act.bytes_per_cycle) + slices * (
            a.act.read_latency_cycles + a.act.write_latency_cycles)
        c.detail["transpose_slices"] = slices
    return cycles


# Vela lays a fully connected layer's rows (its batch) out as an H x W plane: this table
# (tflite_graph_optimiser.py, convert_batched_fc_shape), and 64 rows as 8 x 8 (the C++ core's
# schedule, vela --verbose-schedule, on the zoo's layer norms); other counts as 1 x rows
FC_ROW_SPLIT = {4: (2, 2), 6: (2, 3), 8: (2, 4), 9: (3, 3), 12: (3, 4), 16: (4, 4), 64: (8, 8)}


def _fc_rows(n: int) -> tuple[int, int]:
    return FC_ROW_SPLIT.get(n, (1, n))


def _formats(op: Op, lay: Layer) -> Op:
    """The op with its feature maps' formats: Vela keeps the graph's input and output NHWC,
    every map in between in NHCWB16 bricks (its depth padded to 16)."""
    return replace(op, ifm_brick=not lay.ifm_is_graph_input,
                   ofm_brick=not lay.ofm_is_graph_output)


def cost(lay: Layer, target: Target) -> Compute:
    a = Arch.of(target)
    c = Compute(0.0, 0.0, 0.0, latency_included=True)  # block transfers carry their latency
    if lay.kind == "alias":
        return c
    ib8, ob8 = lay.ifm_bits, lay.ofm_bits
    cycles = 0.0
    peak = peak_macs_per_cycle(target)
    if lay.kind in ("conv", "depthwise"):
        npu = DEPTHWISE if lay.kind == "depthwise" else CONV
        op = Op(npu, _hwc(lay.ifm, True), _hwc(lay.ofm, True), lay.kernel, lay.stride,
                lay.dilation, ifm_bits=ib8, ofm_bits=ob8)
        if lay.kind == "conv" and lay.groups > 1:
            op = Op(npu, op.ifm[:2] + (op.ifm[2] // lay.groups,), op.ofm, lay.kernel,
                    lay.stride, lay.dilation, ifm_bits=ib8, ofm_bits=ob8)
        op = _formats(op, lay)
        cycles = _conv_weights(a, lay, op, c)
    elif lay.kind == "matmul" and lay.weights_const:
        ifm, ofm = _hwc(lay.ifm, False), _hwc(lay.ofm, False)
        rows = _fc_rows(ifm[0] * ifm[1])
        op = Op(VECTOR, rows + (ifm[2],), rows + (ofm[2],), ifm_bits=ib8, ofm_bits=ob8)
        # Vela streams fully connected weights once, straight from the weight memory
        comp, _ = _mac_op(a, op, a.wmem.read_latency_cycles, c)
        cycles = _weights(a, lay, op, comp, 1, c)
    elif lay.kind == "matmul":
        # Vela on U55: per output column, an element-wise multiply into int32 and a reduce-sum
        ifm = _hwc(lay.ifm, False)
        cols = lay.ofm[-1]
        mul = Op(ELEMENTWISE, ifm, ifm, ifm2=ifm, ifm_bits=lay.ifm_bits, ofm_bits=32,
                 ao_index=MUL32)
        red = Op(REDUCE_SUM, ifm, (ifm[0], ifm[1], 1), ifm_bits=32, ofm_bits=lay.ofm_bits)
        per_col = _elementwise(a, mul, c) + _mac_op(a, red, 0.0, c)[0]
        cycles = per_col * cols
        c.traffic = {}
        c.move(a.act.name, read=(lay.ifm_bytes * cols + lay.ifm2_bytes) * 5, write=lay.ofm_bytes
               + lay.ifm_bytes * cols * 4)
    elif lay.kind == "pool":
        ifm, ofm = _hwc(lay.ifm, True), _hwc(lay.ofm, True)
        if lay.op == "QReduceMean":  # over the last axis: Vela sums with a 1-column FC
            ifm, ofm = _hwc(lay.ifm, False), _hwc(lay.ofm, False)
            if ofm[2] == 1:
                rows = _fc_rows(ifm[0] * ifm[1])
                op = Op(VECTOR, rows + (ifm[2],), rows + (1,), ifm_bits=ib8, ofm_bits=ob8)
                cycles, _ = _mac_op(a, op, a.wmem.read_latency_cycles, c)
                c.move(a.wmem.name, read=round(ifm[2] * a.ratio) + a.scale_bytes)
                return _done(c, cycles, lay, peak)
            if ofm[1] == 1 and ofm[2] == ifm[2] and ifm[1] > 1:
                # over the second-last axis: Vela transposes that axis last (an NPU
                # transpose), then sums it with the same 1-column fully connected layer
                moved = Layer(lay.name, "Transpose", "movement", lay.ifm, None,
                              lay.ifm[:-2] + (lay.ifm[-1], lay.ifm[-2]), ib8, ib8, 0, 0)
                cycles = _copy(a, moved, c)
                rows = _fc_rows(ifm[0] * ifm[2])
                op = Op(VECTOR, rows + (ifm[1],), rows + (1,), ifm_bits=ib8, ofm_bits=ob8)
                cycles += _mac_op(a, op, a.wmem.read_latency_cycles, c)[0]
                c.move(a.wmem.name, read=round(ifm[1] * a.ratio) + a.scale_bytes)
                c.detail["lowered"] = "transpose + fully connected sum"
                return _done(c, cycles, lay, peak)
            ifm, ofm = (1, ifm[1], ifm[2]), (1, 1, ifm[2])
            kernel = (1, ifm[1])
        else:
            kernel = lay.kernel
        op = _formats(Op(POOL, ifm, ofm, kernel, lay.stride, ifm_bits=ib8, ofm_bits=ob8,
                         ao_index=MAXPOOL if lay.op == "MaxPool" else OTHER), lay)
        cycles, _ = _mac_op(a, op, 0.0, c)
    elif lay.kind in ("elementwise", "lookup", "resize"):
        ofm = _hwc(lay.ofm, len(lay.ofm) == 4)
        ifm2 = _hwc(lay.ifm2, len(lay.ifm2) == 4) if lay.ifm2 else None
        const = None
        if lay.kind == "elementwise" and lay.weight_bytes and ifm2 is None:
            per_ch = lay.weight_bytes * 8 // lay.ifm_bits
            const = (1, 1, per_ch)
            ifm2 = const
        index = {"QAdd": ADD_ADVANCED, "QMul": MUL_ACC40}.get(lay.op, OTHER)
        act = ACT_NONE
        if lay.kind == "lookup":
            index, act = ADD_SIMPLE, ACT_LUT
        op = _formats(Op(ELEMENTWISE, ofm, ofm, ifm2=ifm2, ao_index=index, act_index=act,
                         ifm_bits=ib8, ofm_bits=ob8), lay)
        cycles = _elementwise(a, op, c, const, passes=2 if lay.kind == "resize" else 1)
        if lay.kind == "lookup":  # the table, copied into the shared buffer
            cycles += LUT_BYTES / a.wmem.bytes_per_cycle + a.wmem.read_latency_cycles
            c.move(a.wmem.name, read=LUT_BYTES)
    elif lay.kind in ("softmax", "norm"):
        cycles = _softmax(a, lay, c)
    else:  # movement
        cycles = _copy(a, lay, c)
    return _done(c, cycles, lay, peak)


def _softmax(a: Arch, lay: Layer, c: Compute) -> float:
    """Vela's int8 softmax: row max (pooling), x - max with the exp LUT, shift, row sum,
    ~20 Newton-Raphson ops on the row sums, scale and shift back; layer norm alike."""
    x = _hwc(lay.ofm, False)
    rows = (x[0], x[1], 1)
    ib8 = ob8 = 8
    cyc, _ = _mac_op(a, Op(POOL, (1, x[0] * x[1], x[2]), (1, x[0] * x[1], 1), (1, x[2]),
                           ao_index=MAXPOOL, ifm_bits=ib8, ofm_bits=ob8), 0.0, c)
    full = [Op(ELEMENTWISE, x, x, ifm2=rows, ao_index=ADD_ADVANCED, act_index=ACT_LUT,
               ifm_bits=8, ofm_bits=32),
            Op(ELEMENTWISE, x, x, ao_index=EW32_UNARY, ifm_bits=32, ofm_bits=32),
            Op(ELEMENTWISE, x, x, ifm2=rows, ao_index=MUL32, ifm_bits=32, ofm_bits=32),
            Op(ELEMENTWISE, x, x, ifm2=rows, ao_index=EW32_BINARY, ifm_bits=32, ofm_bits=32),
            Op(ELEMENTWISE, x, x, ao_index=EW32_UNARY, ifm_bits=32, ofm_bits=8)]
    for op in full:
        cyc += _elementwise(a, op, c)
    cyc += _mac_op(a, Op(REDUCE_SUM, x, rows, ifm_bits=32, ofm_bits=32), 0.0, c)[0]
    for _ in range(20):
        cyc += _elementwise(a, Op(ELEMENTWISE, rows, rows, ifm2=rows, ao_index=EW32_BINARY,
                                  ifm_bits=32, ofm_bits=32), c)
    c.detail["passes"] = 27
    return cyc


def _done(c: Compute, cycles: float, lay: Layer, peak: float) -> Compute:
    c.mac_cycles = cycles
    c.output_cycles = min(c.output_cycles, cycles)
    c.utilization = lay.macs / (cycles * peak) if cycles and lay.macs else 0.0
    c.element_ops = lay.ofm_elements if lay.kind != "alias" else 0
    return c
