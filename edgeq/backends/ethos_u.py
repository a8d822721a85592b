"""Arm Ethos-U NPU target: the TFLite artifact compiled by Arm's Vela (``ethos-u-vela``).

Vela rewrites supported operators into an NPU command stream inside a new .tflite
(``model_vela.tflite``) and prints SRAM, flash and cycle estimates, which go into the report.
Vela's arithmetic is meant to equal the TFLite reference kernels (``../shared/NOTES.md``); there
is no Ethos-U simulator on this host, so the artifact is not run here (``runs_on_host``) and the
report says so.
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
from edgeq.backends.tflite import write_tflite
from edgeq.backends.tflite.lower import supports
from edgeq.ir.graph import EdgeqError, Graph

ACCELERATOR = "ethos-u55-128"
SYSTEM = "Ethos_U55_High_End_Embedded"
MEMORY_MODE = "Shared_Sram"
SUMMARY_KEYS = ("sram_memory_used", "off_chip_flash_memory_used", "on_chip_flash_memory_used",
                "cycles_npu", "cycles_total", "nn_macs", "inference_time", "inferences_per_second",
                "npu_operators", "cpu_operators")


@dataclass(frozen=True)
class VelaArtifact(Artifact):
    summary: dict[str, Any] = field(default_factory=dict)  # Vela's estimates (docs/report.md)


class EthosUBackend(Backend):
    name = "ethos-u"
    artifact = "model_vela.tflite"
    runs_on_host = False
    rounding = "tflite"  # Vela takes the TFLite file
    int16_activations = "outputs"  # the TFLite file's: int16 only in data movement to outputs

    def supports(self, graph: Graph) -> list[Refusal]:
        return supports(graph)

    def lower(self, graph: Graph, out_dir: str) -> VelaArtifact:
        src = write_tflite(graph, out_dir)
        work = os.path.join(out_dir, ".vela")
        vela = os.path.join(os.path.dirname(sys.executable), "vela")
        cmd = [vela if os.path.exists(vela) else "vela", src, "--accelerator-config",
               ACCELERATOR, "--system-config", SYSTEM, "--memory-mode", MEMORY_MODE,
               "--output-dir", work]
        try:
            res = subprocess.run(cmd, capture_output=True, text=True)
        except FileNotFoundError:
            raise EdgeqError("--target ethos-u needs Arm Vela (pip install ethos-u-vela)") \
                from None
        if res.returncode != 0:
            raise EdgeqError(f"Vela failed: {(res.stderr or res.stdout).strip().splitlines()[-1]}")
        out = os.path.join(out_dir, self.artifact)
        os.replace(os.path.join(work, "model_vela.tflite"), out)
        with open(glob.glob(os.path.join(work, "*.csv"))[0]) as f:
            row = next(csv.DictReader(f))
        summary: dict[str, Any] = {"accelerator_config": ACCELERATOR, "system_config": SYSTEM,
                                   "memory_mode": MEMORY_MODE}
        for k in SUMMARY_KEYS:
            if k in row:
                v = row[k]
                summary[k] = float(v) if "." in v else int(v) if v.isdigit() else v
        for kind in ("NPU", "CPU"):  # operator counts are printed, not in the CSV
            m = re.search(rf"{kind} operators = (\d+)", res.stdout)
            if m:
                summary[f"{kind.lower()}_operators"] = int(m.group(1))
        for f in os.listdir(work):
            os.unlink(os.path.join(work, f))
        os.rmdir(work)
        return VelaArtifact(out, graph, summary=summary)

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
        return {"summary": artifact.summary}
