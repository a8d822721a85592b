"""Profiling the ``.tflite`` artifact on an Android phone over adb, with the user's LiteRT
``benchmark_model`` binary (edgeq ships no binaries and downloads nothing):

    edgeq profile OUT --target tflite --device adb[:SERIAL] --benchmark-model PATH

pushes ``OUT/model.tflite`` and the binary to ``/data/local/tmp/edgeq/``, runs it with
``--enable_op_profiling=true`` on one thread, and maps its per-operator table ("Run Order")
back to edgeq's layers by the name it prints for each operator: the operator's output tensor,
which edgeq's TFLite writer names after edgeq's output value. A delegate that swallows the
graph (XNNPACK, GPU, NNAPI) shows as one node: the report says so and suggests
``--use_xnnpack=false`` for per-operator figures.

The table format is LiteRT's stats summary: ``[node type] [start] [first] [avg ms] [%] [cdf%]
[mem KB] [times called] [Name]``, one row per operator.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from typing import Any

from edgeq.ir.graph import EdgeqError, Graph

REMOTE = "/data/local/tmp/edgeq"
DELEGATE_NODE = re.compile(r"delegate", re.IGNORECASE)


def parse_op_profile(text: str) -> list[dict[str, Any]]:
    """The rows of the "Run Order" table of ``benchmark_model``'s regular runs: node type, avg
    ms, times called, name (brackets and the ``:index`` suffix removed)."""
    lines = text.splitlines()
    regular = next((i for i, ln in enumerate(lines) if "Regular Benchmark Runs" in ln), 0)
    try:  # the regular runs' table (the first one printed may be the initialization's)
        start = next(i for i, ln in enumerate(lines) if i >= regular and "Run Order" in ln)
    except StopIteration:
        raise EdgeqError("benchmark_model printed no per-operator table (was "
                         "--enable_op_profiling=true accepted?)") from None
    rows: list[dict[str, Any]] = []
    for ln in lines[start + 1:]:
        s = ln.strip()
        if not s or s.startswith("[node type]"):
            if rows and not s:
                break
            continue
        if s.startswith("==="):
            break
        parts = s.split()
        if len(parts) < 9:
            continue
        try:
            avg_ms = float(parts[3])
            called = int(parts[7])
        except ValueError:
            continue
        name = " ".join(parts[8:])
        m = re.fullmatch(r"\[(.*)\](?::\d+)?", name)
        rows.append({"type": parts[0], "avg_ms": avg_ms, "times_called": called,
                     "name": m.group(1) if m else name})
    if not rows:
        raise EdgeqError("benchmark_model's per-operator table is empty")
    return rows


def map_to_layers(graph: Graph, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The raw profile dict of ``edgeq.profile`` (one run: the tool's averages) from the rows:
    each row is attributed to the edgeq node producing the tensor it names; rows naming no
    edgeq value (a delegate node, an op TFLite inserted) are kept as unattributed."""
    producer = {v.name: n.name for n in graph.nodes for v in n.outputs}
    names = [n.name for n in graph.nodes]
    per_layer = {n: 0.0 for n in names}
    unattributed: list[dict[str, Any]] = []
    delegated = False
    for r in rows:
        node = producer.get(r["name"])
        if node is None:
            unattributed.append(r)
            delegated |= bool(DELEGATE_NODE.search(r["type"]))
        else:
            per_layer[node] += r["avg_ms"]
    total_ms = sum(r["avg_ms"] for r in rows)
    raw = {"layers": names, "unit": "wall_ns", "source": "measured (device)",
           "runs": [[round(per_layer[n] * 1e6) for n in names]],
           "totals": [round(total_ms * 1e6)],
           "unattributed": [{"type": r["type"], "name": r["name"],
                             "ns": round(r["avg_ms"] * 1e6)} for r in unattributed],
           "method": "LiteRT benchmark_model --enable_op_profiling=true (averages)"}
    if delegated:
        raw["note"] = ("a delegate ran the graph as one node: rerun with "
                       "--use_xnnpack=false (or without the delegate) for per-operator times")
    return raw


def run_on_phone(out_dir: str, graph: Graph, device: str, binary: str | None, runs: int,
                 warmup: int) -> dict[str, Any]:
    """``device`` = ``adb`` or ``adb:SERIAL``."""
    adb = shutil.which("adb")
    if adb is None:
        raise EdgeqError("--device adb: adb not found (install Android platform-tools and "
                         "connect a phone with USB debugging on)")
    if not binary:
        raise EdgeqError("--device adb needs --benchmark-model PATH: LiteRT's benchmark_model "
                         "binary for the phone (edgeq downloads nothing)")
    if not os.path.isfile(binary):
        raise EdgeqError(f"--benchmark-model {binary}: no such file")
    model = os.path.join(out_dir, "model.tflite")
    if not os.path.exists(model):
        raise EdgeqError(f"{out_dir} has no model.tflite; export with --target tflite")
    serial = device.partition(":")[2]
    base = [adb] + (["-s", serial] if serial else [])

    def call(*args: str, timeout: float = 600) -> str:
        try:
            r = subprocess.run(base + list(args), capture_output=True, text=True,
                               timeout=timeout)
        except subprocess.TimeoutExpired:
            raise EdgeqError(f"adb {args[0]} timed out after {timeout:g} s") from None
        if r.returncode != 0:
            raise EdgeqError(f"adb {' '.join(args[:2])} failed: "
                             f"{(r.stderr or r.stdout).strip().splitlines()[-1:] or ['']}")
        return r.stdout

    state = call("get-state", timeout=30).strip()
    if state != "device":
        raise EdgeqError(f"--device {device}: adb reports {state!r}, not a ready device")
    call("shell", "mkdir", "-p", REMOTE)
    call("push", model, f"{REMOTE}/model.tflite")
    call("push", binary, f"{REMOTE}/benchmark_model")
    call("shell", "chmod", "755", f"{REMOTE}/benchmark_model")
    out = call("shell", f"{REMOTE}/benchmark_model", f"--graph={REMOTE}/model.tflite",
               "--enable_op_profiling=true", "--num_threads=1", f"--num_runs={runs}",
               f"--warmup_runs={warmup}")
    return map_to_layers(graph, parse_op_profile(out))
