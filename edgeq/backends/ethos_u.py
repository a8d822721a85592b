"""Arm Ethos-U NPU target: the TFLite artifact compiled by Arm's Vela (``ethos-u-vela``).

Vela rewrites supported operators into an NPU command stream inside a new .tflite
(``model_vela.tflite``) and prints SRAM, flash and cycle estimates, which go into the report.
Vela's arithmetic is meant to equal the TFLite reference kernels (``../shared/NOTES.md``); there
is no Ethos-U simulator on this host, so the artifact is not run here (``runs_on_host``) and the
report says so. The NPU configuration comes from ``--npu`` (an Ethos-U description in
``edgeq/targets/``, default ethos-u55-128: its ``vela_*`` fields are Vela's options), and the
report puts Vela's per-layer estimates (``--verbose-performance``) beside edgeq's simulator's
(``edgeq.backends.npu_sim``) on the same configuration, matched by layer name.
"""

from __future__ import annotations

import csv
import glob
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Any

from edgeq.backends.base import Artifact, Backend, Checks, Feeds, Refusal
from edgeq.backends.npu_sim import simulate
from edgeq.backends.tflite import write_tflite
from edgeq.backends.tflite.lower import supports
from edgeq.ir.graph import EdgeqError, Graph
from edgeq.targets import load_target

ACCELERATOR = "ethos-u55-128"
SYSTEM = "Ethos_U55_High_End_Embedded"
MEMORY_MODE = "Shared_Sram"
SUMMARY_KEYS = ("sram_memory_used", "off_chip_flash_memory_used", "on_chip_flash_memory_used",
                "cycles_npu", "cycles_total", "nn_macs", "inference_time", "inferences_per_second",
                "npu_operators", "cpu_operators")


@dataclass(frozen=True)
class VelaArtifact(Artifact):
    summary: dict[str, Any] = field(default_factory=dict)  # Vela's estimates (docs/report.md)
    layers: list[dict[str, Any]] = field(default_factory=list)  # Vela's and edgeq's per layer


def vela_per_layer(path: str) -> list[dict[str, Any]]:
    """Vela's ``--verbose-performance`` per-layer CSV: one row per NPU/CPU operation."""
    with open(path) as f:
        rows = list(csv.DictReader(f))
    out = []
    for r in rows:
        def num(key: str) -> float:
            try:
                return float(r.get(key) or 0)
            except ValueError:
                return 0.0
        out.append({"name": (r.get("Name") or "").strip(), "op": r.get("NNG Operator", ""),
                    "target": r.get("Target", ""), "cycles": num("Op Cycles"),
                    "macs": int(num("MAC Count")), "sram_access_cycles": num("SRAM AC"),
                    "offchip_flash_access_cycles": num("OffFlash AC"),
                    "dram_access_cycles": num("DRAM AC")})
    return out


def side_by_side(graph: Graph, target, vela: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Vela's per-layer cycles beside edgeq's simulated ones, matched by the layer's output
    name (Vela names an operation after its output tensor, which is edgeq's output value);
    Vela operations with no edgeq layer (and the reverse) are listed with the other side None."""
    sim = simulate(graph, target)
    ours = {}
    for node, r in zip(graph.nodes, sim["layers"]):
        if r["kind"] != "alias":
            ours[node.outputs[0].name] = r
    rows, seen = [], set()
    for v in vela:
        r = ours.get(v["name"])
        seen.add(v["name"])
        rows.append({"layer": r["name"] if r else None, "value": v["name"],
                     "vela_op": v["op"], "vela_cycles": v["cycles"],
                     "edgeq_cycles": r["cycles"] if r else None,
                     "ratio": round(r["cycles"] / v["cycles"], 3) if r and v["cycles"] else None})
    for name, r in ours.items():
        if name not in seen:
            rows.append({"layer": r["name"], "value": name, "vela_op": None,
                         "vela_cycles": None, "edgeq_cycles": r["cycles"], "ratio": None})
    return rows


class EthosUBackend(Backend):
    name = "ethos-u"
    artifact = "model_vela.tflite"
    runs_on_host = False
    rounding = "tflite"  # Vela takes the TFLite file
    int16_activations = "outputs"  # the TFLite file's: int16 only in data movement to outputs

    def supports(self, graph: Graph) -> list[Refusal]:
        return supports(graph)

    def __init__(self, allow_fallback: bool = False, npu: str | None = None, **options: Any):
        super().__init__(allow_fallback, **options)
        self.target = load_target(npu or ACCELERATOR)
        if self.target.architecture != "ethos-u":
            raise EdgeqError(f"--npu {npu}: --target ethos-u needs an Ethos-U description, "
                             f"not {self.target.architecture} ({self.target.name})")

    def lower(self, graph: Graph, out_dir: str) -> VelaArtifact:
        src = write_tflite(graph, out_dir)
        work = os.path.join(out_dir, ".vela")
        vela = os.path.join(os.path.dirname(sys.executable), "vela")
        p = self.target.params
        accel, system, mode = p["vela_accelerator"], p["vela_system_config"], \
            p["vela_memory_mode"]
        cmd = [vela if os.path.exists(vela) else "vela", src, "--accelerator-config",
               accel, "--system-config", system, "--memory-mode", mode,
               "--verbose-performance", "--output-dir", work]
        try:
            res = subprocess.run(cmd, capture_output=True, text=True)
        except FileNotFoundError:
            raise EdgeqError("--target ethos-u needs Arm Vela (pip install ethos-u-vela)") \
                from None
        if res.returncode != 0:
            raise EdgeqError(f"Vela failed: {(res.stderr or res.stdout).strip().splitlines()[-1]}")
        out = os.path.join(out_dir, self.artifact)
        os.replace(os.path.join(work, "model_vela.tflite"), out)
        summary_csv = [f for f in glob.glob(os.path.join(work, "*summary*.csv"))]
        with open(summary_csv[0]) as f:
            row = next(csv.DictReader(f))
        summary: dict[str, Any] = {"accelerator_config": accel, "system_config": system,
                                   "memory_mode": mode}
        for k in SUMMARY_KEYS:
            if k in row:
                v = row[k]
                summary[k] = float(v) if "." in v else int(v) if v.isdigit() else v
        for kind in ("NPU", "CPU"):  # operator counts are printed, not in the CSV
            m = re.search(rf"{kind} operators = (\d+)", res.stdout)
            if m:
                summary[f"{kind.lower()}_operators"] = int(m.group(1))
        layers = glob.glob(os.path.join(work, "*per-layer*.csv"))
        per_layer = vela_per_layer(layers[0]) if layers else []
        for f in os.listdir(work):
            os.unlink(os.path.join(work, f))
        os.rmdir(work)
        return VelaArtifact(out, graph, summary=summary,
                            layers=side_by_side(graph, self.target, per_layer))

    def open(self, out_dir: str) -> VelaArtifact:
        """The compiled model (Vela's estimates are in the export report, not re-derived)."""
        art = super().open(out_dir)
        return VelaArtifact(art.path, art.graph)

    def session(self, artifact: Artifact, threads: int = 0):
        raise EdgeqError("ethos-u artifacts run on an Ethos-U NPU; there is no simulator on this "
                         "host (the export report carries Vela's SRAM and cycle estimates)")

    def run(self, artifact: Artifact, feeds: Feeds, raw: bool = False, session=None) -> Feeds:
        return self.session(artifact)

    def latency_ms(self, artifact: Artifact, feeds: Feeds) -> None:
        return None

    def describe(self, artifact: VelaArtifact, checks: Checks  # type: ignore[override]
                 ) -> dict[str, Any]:
        return {"summary": artifact.summary, "per_layer": artifact.layers}
