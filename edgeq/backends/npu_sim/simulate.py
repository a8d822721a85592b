"""The NPU simulator's accounting, shared by every architecture.

An architecture's cost rule (``ethos_u.cost``, ``systolic.cost``) maps one integer layer
(``edgeq.ops.mapping.Layer``) onto the hardware and returns its ``Compute``: MAC-array cycles,
output-stage cycles, the MAC utilization of its mapping, the bytes it reads and writes in each
memory, and its non-MAC integer operations. This module turns that into the layer's cycles,
bound and energy, the same way for every architecture:

- memory cycles, per memory: ``(read + write) / bytes_per_cycle`` plus one read and one write
  latency (the first burst; later ones are pipelined behind it), unless the rule charged the
  latencies itself (``Compute.latency_included``: Ethos-U's block transfers);
- the layer's cycles: ``max(compute, memory cycles of each memory)`` (transfers are
  double-buffered against compute), where ``compute = max(MAC cycles, output cycles)``; the
  bound is the term that is largest;
- a prefetch (``Compute.prefetch``: Ethos-U weights DMA'd into SRAM) starts under the previous
  layer, whose cycles are the slack (``Compute.slack_cycles`` when only its last operation
  can hide it): ``compute = max(compute + max(first - slack, 0), total -
  slack + tail)`` (``first``: the transfer the first block needs, ``total``: all of it,
  ``tail``: the compute after the last part arrives);
- placement: activations live in ``placement.activations`` when the layer's input and output
  fit there, weights are read from ``placement.weights``; a layer whose activations do not fit
  on chip also moves them through the weights' (off-chip) memory once each way;
- energy (pJ): ``MACs x mac_int8_pj x (activation bits / 8)`` + ``element ops x add_int32_pj``
  + per memory ``bytes x pj_per_byte`` (``EnergyTable.pj_per_byte``), split into ``mac``,
  ``sram`` (on-chip) and ``offchip``;
- roofline: operational intensity = MACs per byte of off-chip traffic, against the machine
  balance = peak MACs per cycle / off-chip bytes per cycle.

Totals add the layers (they run one after another). Every number is an estimate from the model
in ``docs/npu_sim.md``: no silicon, no cycle-accurate simulator (the report says so).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from edgeq.ir.graph import EdgeqError, Graph
from edgeq.ops.mapping import Layer, kind_of, layer
from edgeq.targets import Target, load_target

ESTIMATE_NOTE = ("estimate: edgeq's analytical cost model (docs/npu_sim.md), not silicon or a "
                 "cycle-accurate simulator")


@dataclass(frozen=True)
class Prefetch:
    """A transfer the layer's compute waits for that may start when the previous layer starts
    (Ethos-U: weights DMA'd into SRAM; Vela's EstimateFullOpPerformance). The first block
    needs ``first_cycles`` of it, the last ``tail_cycles`` of compute need all of it
    (``total_cycles``); the previous layer's cycles (the slack) hide that much of both."""
    first_cycles: float
    total_cycles: float
    tail_cycles: float

    def compute_with(self, compute: float, slack: float) -> float:
        return max(compute + max(self.first_cycles - slack, 0.0),
                   self.total_cycles - slack + self.tail_cycles)


@dataclass
class Compute:
    mac_cycles: float
    output_cycles: float
    utilization: float                     # of the MAC array while it runs this layer
    traffic: dict[str, list[float]] = field(default_factory=dict)  # memory -> [read, write]
    element_ops: int = 0                   # integer adds/compares besides the MACs
    detail: dict[str, Any] = field(default_factory=dict)  # the mapping (blocks, folds, ...)
    # the rule already charged the memories' latencies (in its compute, block by block): the
    # accounting then counts memory cycles as bytes / bandwidth only
    latency_included: bool = False
    prefetch: Prefetch | None = None      # a transfer that can overlap the previous layer
    # cycles of this layer the next one's prefetch can run under (its last NPU operation;
    # None: all of it)
    slack_cycles: float | None = None

    def then(self, slack: float) -> None:
        """Run after a layer of ``slack`` cycles: wait for what the prefetch did not hide."""
        if self.prefetch is not None:
            waited = self.prefetch.compute_with(max(self.mac_cycles, self.output_cycles), slack)
            self.detail["prefetch_wait_cycles"] = round(
                waited - max(self.mac_cycles, self.output_cycles), 1)
            self.mac_cycles = waited

    def move(self, memory: str, read: float = 0.0, write: float = 0.0) -> None:
        r = self.traffic.setdefault(memory, [0.0, 0.0])
        r[0] += read
        r[1] += write


CostRule = Callable[[Layer, Target], Compute]
PeakRule = Callable[[Target], float]
# architecture -> (cost rule, peak MACs per cycle): filled by the package (``__init__``), which
# imports each architecture's module (they import ``Compute`` from here)
RULES: dict[str, tuple[CostRule, PeakRule]] = {}


def unsupported(graph: Graph) -> list[tuple[str, str, str]]:
    """(op, node, reason) for each node no cost model can place."""
    return [(n.op, n.name, "no accelerator mapping for this op (not an integer op)")
            for n in graph.nodes if kind_of(n) is None]


def place(lay: Layer, target: Target, c: Compute) -> bool:
    """Activation traffic of ``lay``: on chip when its input(s) and output fit in the
    activation memory, else also through the weights' memory. Returns whether it fit."""
    act = target.placement["activations"]
    need = lay.ifm_bytes + lay.ifm2_bytes + lay.ofm_bytes
    fits = need <= target.memories[act].size_bytes
    if lay.kind == "alias":
        return fits
    if not fits:
        off = target.placement["weights"]
        c.move(off, read=lay.ifm_bytes + lay.ifm2_bytes, write=lay.ofm_bytes)
    return fits


def layer_report(lay: Layer, c: Compute, target: Target, peak: float, fits: bool
                 ) -> dict[str, Any]:
    mem_cycles: dict[str, float] = {}
    by_mem: dict[str, dict[str, int]] = {}
    energy = {"mac": lay.macs * target.energy.mac_int8_pj * lay.ifm_bits / 8
              + c.element_ops * target.energy.add_int32_pj, "sram": 0.0, "offchip": 0.0}
    offchip_bytes = 0.0
    for name in sorted(c.traffic):
        read, write = c.traffic[name]
        m = target.memories[name]
        cyc = (read + write) / m.bytes_per_cycle
        if not c.latency_included:
            cyc += (m.read_latency_cycles if read else 0.0) + (m.write_latency_cycles if write
                                                                else 0.0)
        mem_cycles[name] = cyc
        by_mem[name] = {"read": int(round(read)), "write": int(round(write))}
        pj = (read + write) * target.energy.pj_per_byte(m)
        if m.kind == "sram":
            energy["sram"] += pj
        else:
            energy["offchip"] += pj
            offchip_bytes += read + write
    compute = max(c.mac_cycles, c.output_cycles)
    terms = {"compute": compute, **{f"memory:{k}": v for k, v in mem_cycles.items()}}
    bound = max(terms, key=lambda k: (terms[k], k == "compute"))
    cycles = terms[bound]
    energy = {k: round(v, 3) for k, v in energy.items()}
    energy["total"] = round(energy["mac"] + energy["sram"] + energy["offchip"], 3)
    return {
        "name": lay.name, "op": lay.op, "kind": lay.kind, "macs": lay.macs,
        "cycles": round(cycles, 1), "mac_cycles": round(c.mac_cycles, 1),
        "output_cycles": round(c.output_cycles, 1),
        "memory_cycles": {k: round(v, 1) for k, v in mem_cycles.items()},
        "bound": bound,
        "mac_utilization": round(lay.macs / (cycles * peak), 4) if cycles and lay.macs else 0.0,
        "mapping_utilization": round(c.utilization, 4),
        "bytes": by_mem, "activations_on_chip": fits,
        "energy_pj": energy,
        "intensity_macs_per_offchip_byte": round(lay.macs / offchip_bytes, 3)
        if offchip_bytes else None,
        "mapping": c.detail,
    }


def simulate(graph: Graph, target: Target | str) -> dict[str, Any]:
    """Per-layer cycles, traffic, bound and energy of the integer ``graph`` on ``target`` (a
    ``Target`` or a name / path for ``load_target``), and the network totals."""
    if isinstance(target, str):
        target = load_target(target)
    if target.kind != "npu":
        raise EdgeqError(f"target {target.name!r} is a {target.kind}, not an NPU")
    if graph.metadata.get("quantized") != "int":
        raise EdgeqError("the simulator runs integer models (edgeq quantize or export first)")
    bad = unsupported(graph)
    if bad:
        raise EdgeqError("cannot simulate: " + "; ".join(f"{op} '{n}': {r}" for op, n, r in bad))
    rule, peak_of = RULES[target.architecture]
    peak = peak_of(target)
    layers: list[dict[str, Any]] = []
    slack = 0.0  # the cycles of the layer before, under which a prefetch runs
    for node in graph.nodes:
        lay = layer(node)
        c = rule(lay, target)
        c.then(slack)
        fits = place(lay, target, c)
        layers.append(layer_report(lay, c, target, peak, fits))
        if lay.kind != "alias":
            slack = layers[-1]["cycles"] if c.slack_cycles is None else c.slack_cycles
    return {"target": target.name, "architecture": target.architecture,
            "clock_hz": target.clock_hz, "peak_macs_per_cycle": peak,
            "machine_balance_macs_per_offchip_byte": round(
                peak / target.memory("weights").bytes_per_cycle, 3),
            "energy_table": target.energy.name, "note": ESTIMATE_NOTE,
            "overrides": dict(target.overrides),
            "layers": layers, "total": totals(layers, target, peak)}


def totals(layers: Sequence[dict[str, Any]], target: Target, peak: float) -> dict[str, Any]:
    cycles = sum(r["cycles"] for r in layers)
    by_mem: dict[str, dict[str, int]] = {}
    for r in layers:
        for m, rw in r["bytes"].items():
            t = by_mem.setdefault(m, {"read": 0, "write": 0})
            t["read"] += rw["read"]
            t["write"] += rw["write"]
    energy = {k: round(sum(r["energy_pj"][k] for r in layers), 3)
              for k in ("mac", "sram", "offchip", "total")}
    bounds: dict[str, int] = {}
    for r in layers:
        bounds[r["bound"]] = bounds.get(r["bound"], 0) + 1
    macs = sum(r["macs"] for r in layers)
    return {"cycles": round(cycles, 1),
            "inference_us": round(cycles / target.clock_hz * 1e6, 3),
            "macs": macs, "bytes": by_mem, "energy_pj": energy,
            "energy_uj": round(energy["total"] / 1e6, 6), "bounds": bounds,
            "mac_utilization": round(macs / (cycles * peak), 4) if cycles else 0.0}


# --- what-if sweeps --------------------------------------------------------------------------
ALIASES = {
    "ethos-u": {"macs": "ethos_u.macs_per_cycle"},
    "systolic": {"rows": "systolic.rows", "cols": "systolic.cols"},
}
COMMON = {"sram": "memory.sram.size_bytes", "clock": "target.clock_hz"}


def parse_size(text: str) -> float:
    t = text.strip().upper().replace("IB", "B")
    for suffix, mult in (("KB", 1 << 10), ("MB", 1 << 20), ("GB", 1 << 30), ("K", 1 << 10),
                         ("M", 1 << 20), ("B", 1)):
        if t.endswith(suffix):
            return float(t[: -len(suffix)]) * mult
    return float(t)


def parse_sweep(items: Sequence[str], target: Target) -> list[tuple[str, list[Any]]]:
    """``["macs=64,128,256", "sram=128KB,256KB"]`` -> [(dotted key, values)]."""
    aliases = {**COMMON, **ALIASES.get(target.architecture, {})}
    out = []
    for item in items:
        key, sep, values = item.partition("=")
        if not sep or not values:
            raise EdgeqError(f"--sweep {item!r}: expected KEY=V1,V2,... (keys: "
                             f"{', '.join(sorted(aliases))}, or a dotted key of the target "
                             f"file such as memory.sram.bytes_per_cycle)")
        dotted = aliases.get(key.strip(), key.strip())
        parsed: list[Any] = []
        for v in values.split(","):
            try:
                x = parse_size(v)
            except ValueError:
                raise EdgeqError(f"--sweep {key}: {v!r} is not a number or a size like "
                                 f"256KB") from None
            parsed.append(int(x) if x == int(x) and not dotted.endswith("_hz") else x)
        out.append((dotted, parsed))
    return out


def sweep(graph: Graph, spec: str, items: Sequence[str]) -> list[dict[str, Any]]:
    """One simulation per combination of the swept values: [{settings, cycles, energy...}]."""
    base = load_target(spec)
    axes = parse_sweep(items, base)
    rows = []
    for combo in itertools.product(*(vals for _, vals in axes)):
        overrides = {k: v for (k, _), v in zip(axes, combo)}
        rep = simulate(graph, load_target(spec, overrides))
        t = rep["total"]
        rows.append({"settings": overrides, "cycles": t["cycles"],
                     "inference_us": t["inference_us"],
                     "energy_uj": t["energy_uj"], "mac_utilization": t["mac_utilization"],
                     "bounds": t["bounds"]})
    return rows


def ceil_div(a: float, b: float) -> int:
    return int(math.ceil(a / b))
