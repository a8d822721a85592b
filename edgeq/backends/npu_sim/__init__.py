"""``--target npu-sim``: an NPU simulator. The integer model runs on edgeq's own integer kernels
(so its outputs are the reference, bit for bit), and each layer is accounted on the NPU that
``--npu NAME|FILE.toml`` describes (``edgeq/targets/``): MAC-array and output-stage cycles from
the architecture's mapping (``ethos_u``, ``systolic``), memory cycles and bytes per memory
level, the bound, MAC utilization, energy split into MAC, on-chip SRAM and off-chip traffic,
and the roofline (``simulate``). The artifact is ``npu_sim.json``: the whole simulation,
deterministic; ``edgeq simulate OUT --npu ...`` re-runs it on another NPU or a sweep."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

from edgeq.backends.base import Artifact, Backend, Checks, Feeds, Refusal
from edgeq.backends.npu_sim import ethos_u, systolic
from edgeq.backends.npu_sim.simulate import RULES, simulate, sweep, unsupported
from edgeq.ir.graph import EdgeqError, Graph
from edgeq.quant.pipeline import dequantize_array, quantize_feeds
from edgeq.runtime.reference import run_graph
from edgeq.targets import load_target

DEFAULT_NPU = "ethos-u55-128"
RULES.update({"ethos-u": (ethos_u.cost, ethos_u.peak_macs_per_cycle),
              "systolic": (systolic.cost, systolic.peak_macs_per_cycle)})


@dataclass(frozen=True)
class SimArtifact(Artifact):
    simulation: dict[str, Any] = field(default_factory=dict)


class NpuSimBackend(Backend):
    name = "npu-sim"
    artifact = "npu_sim.json"

    def __init__(self, allow_fallback: bool = False, npu: str | None = None, **_: Any):
        super().__init__(allow_fallback)
        self.npu = npu or DEFAULT_NPU
        self.target = load_target(self.npu)  # a bad --npu fails before calibration
        if self.target.kind != "npu":
            raise EdgeqError(f"--npu {self.npu}: {self.target.name} is a {self.target.kind} "
                             f"description, not an NPU")

    def supports(self, graph: Graph) -> list[Refusal]:
        return [Refusal(op, name, why) for op, name, why in unsupported(graph)]

    def lower(self, graph: Graph, out_dir: str) -> SimArtifact:
        sim = simulate(graph, self.target)
        path = os.path.join(out_dir, self.artifact)
        with open(path, "w") as f:
            json.dump(sim, f, indent=1, sort_keys=True)
            f.write("\n")
        return SimArtifact(path, graph, simulation=sim)

    def open(self, out_dir: str) -> SimArtifact:
        art = super().open(out_dir)
        try:
            with open(art.path) as f:
                sim = json.load(f)
        except (OSError, ValueError) as e:
            raise EdgeqError(f"{art.path}: not a readable simulation ({e})") from None
        return SimArtifact(art.path, art.graph, simulation=sim)

    def session(self, artifact: Artifact, threads: int = 0) -> None:
        return None

    def run(self, artifact: Artifact, feeds: Feeds, raw: bool = False, session=None) -> Feeds:
        g = artifact.graph
        env = run_graph(g, quantize_feeds(g, feeds))
        return {v.name: env[v.name] if raw else dequantize_array(env[v.name], v.qparams)
                for v in g.outputs}

    def latency_ms(self, artifact: Artifact, feeds: Feeds) -> None:
        return None  # the simulated time is in the report's simulation entry, not a host time

    def describe(self, artifact: SimArtifact, checks: Checks  # type: ignore[override]
                 ) -> dict[str, Any]:
        sim = artifact.simulation
        return {"npu": sim["target"], "simulated": dict(sim["total"], note=sim["note"])}


__all__ = ["NpuSimBackend", "SimArtifact", "simulate", "sweep"]
