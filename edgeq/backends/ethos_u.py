"""Arm Ethos-U NPU target: the TFLite artifact compiled by Arm's Vela (``ethos-u-vela``).

Vela rewrites supported operators into an NPU command stream inside a new .tflite
(``model_vela.tflite``) and prints SRAM, flash and cycle estimates, which go into the report.
Vela's arithmetic is meant to equal the TFLite reference kernels (``../shared/NOTES.md``); there
is no Ethos-U simulator on this host, so the artifact is not run here and the report says so.
"""

from __future__ import annotations

import csv
import glob
import os
import subprocess
import sys

from edgeq.backends.tflite import ARTIFACT
from edgeq.backends.tflite.lower import lower_graph, supports
from edgeq.ir.graph import EdgeqError, Graph

ACCELERATOR = "ethos-u55-128"
SYSTEM = "Ethos_U55_High_End_Embedded"
MEMORY_MODE = "Shared_Sram"
SUMMARY_KEYS = ("sram_memory_used", "off_chip_flash_memory_used", "on_chip_flash_memory_used",
                "cycles_npu", "cycles_total", "nn_macs", "inference_time", "inferences_per_second",
                "npu_operators", "cpu_operators")


class EthosUBackend:
    name = "ethos-u"
    artifact = "model_vela.tflite"
    runs_on_host = False

    def supports(self, graph: Graph) -> list[str]:
        return supports(graph)

    def lower(self, graph: Graph, out_dir: str) -> str:
        src = os.path.join(out_dir, ARTIFACT)
        if not os.path.exists(src):
            with open(src, "wb") as f:
                f.write(lower_graph(graph))
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
        self.summary = {"accelerator_config": ACCELERATOR, "system_config": SYSTEM,
                        "memory_mode": MEMORY_MODE}
        for k in SUMMARY_KEYS:
            if k in row:
                v = row[k]
                self.summary[k] = float(v) if "." in v else int(v) if v.isdigit() else v
        import re

        for kind in ("NPU", "CPU"):  # operator counts are printed, not in the CSV
            m = re.search(rf"{kind} operators = (\d+)", res.stdout)
            if m:
                self.summary[f"{kind.lower()}_operators"] = int(m.group(1))
        for f in os.listdir(work):
            os.unlink(os.path.join(work, f))
        os.rmdir(work)
        return out

    def session(self, *args, **kwargs):
        raise EdgeqError("ethos-u artifacts run on an Ethos-U NPU; there is no simulator on this "
                         "host (the export report carries Vela's SRAM and cycle estimates)")

    def run(self, *args, **kwargs):
        self.session()
