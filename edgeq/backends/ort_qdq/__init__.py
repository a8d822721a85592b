"""ONNX Runtime backend: the integer graph as a QDQ ONNX model (opset 21).

Arithmetic ops become ``DequantizeLinear -> float op -> QuantizeLinear`` with the integer graph's
exact integers and scales (int8 weights per channel, int32 bias at ``s_x * s_w``), which ORT's
CPU provider fuses into integer kernels (QLinearConv, QGemm...); int8 values are stored as
uint8 (+128, exact) so that every group fuses on x86, residual skips included (``lower.py``,
``U8_SHIFT``), int8 at the artifact's edges. ORT requantizes with a float
scale, so results may differ from edgeq's dyadic rescale by 1 LSB per layer: ``describe`` checks
that bound node by node on identical inputs. Lookup tables become an exact integer ``Gather``;
data movement stays on int8.

The x86 trap (``../shared/NOTES.md``): without VNNI, ORT's u8s8 kernels can saturate 16-bit
intermediate sums and silently lose accuracy. The artifact records the session option that
avoids it (``session.x64quantprecision=1``) in its metadata; ``run`` applies every option so
recorded, and the export report says so (with the SQNR it would have without).
"""

from __future__ import annotations

import json
import os
import re
import statistics
import tempfile
import time
from collections import Counter, defaultdict
from typing import Any

import numpy as np

from edgeq.backends.base import (Artifact, Backend, Checks, Feeds, NodeRunner, Refusal,
                                 activation_inputs)
from edgeq.backends.ort_qdq.lower import LOWER, SESSION_CONFIG, Builder, lower_graph, supports
from edgeq.ir.graph import EdgeqError, Graph, Node


class OrtQdqBackend(Backend):
    name = "ort"
    artifact = "model.qdq.onnx"

    def supports(self, graph: Graph) -> list[Refusal]:
        return supports(graph)

    def lower(self, graph: Graph, out_dir: str) -> Artifact:
        model = lower_graph(graph)
        path = os.path.join(out_dir, self.artifact)
        with open(path, "wb") as f:
            f.write(model.SerializeToString())
        counts = Counter(n.op_type for n in model.graph.node)
        return Artifact(path, graph, op_counts=dict(sorted(counts.items())))

    def session(self, artifact: Artifact, threads: int = 0, apply_metadata: bool = True):
        """``apply_metadata=False``: ORT's default options, not the ones the model records."""
        with open(artifact.path, "rb") as f:
            return _session(f.read(), threads, apply_metadata)

    def run(self, artifact: Artifact, feeds: Feeds, raw: bool = False, session=None) -> Feeds:
        sess = session or self.session(artifact)
        names = [o.name for o in sess.get_outputs()]
        wanted = [n for n in names if n.endswith("_q") == raw]
        outs = sess.run(wanted, feeds)
        return {n[:-2] if raw else n: o for n, o in zip(wanted, outs)}

    def compile_node(self, graph: Graph, node: Node) -> NodeRunner:
        """``node`` alone as a QDQ model reading the interpreter's integer inputs."""
        ins = activation_inputs(node)
        sess = _session(lower_graph(graph, nodes=[node], int_inputs=ins).SerializeToString())
        names = [v.name for v in node.outputs]
        return lambda env: sess.run(names, {v.name: env[v.name] for v in ins})

    def profile(self, artifact: Artifact, feeds: Feeds, runs: int = 10, warmup: int = 2
                ) -> dict[str, Any]:
        """Per-layer wall time (us) from ONNX Runtime's profiler, one intra-op thread, the
        artifact's recorded session options (``edgeq.profile`` raw format, docs/report.md).

        Each run: the profiled session's "Node" kernel events, each mapped to the edgeq node
        whose lowering emitted the ONNX node ORT built it from (``ort_owners``), minus the
        profiler's own cost per event, which ORT counts inside the kernel span (it formats the
        inputs' shapes there: ~3.5 us + 0.5 us per input measured, the size of a small
        layer's kernel). That cost is measured on a chain of trivial ``Sum`` nodes with
        1..9 inputs run in between, profiled and not (``_cost_model``), and subtracted per
        event (at least 0 left). The total of a run is the same inference without the profiler (a
        second session, runs interleaved with the profiled ones), timed around
        ``InferenceSession.run`` on the same clock: the profiled ``model_run`` event also
        holds the profiler's bookkeeping between kernels (~1.4x the real inference). ORT
        nodes of no edgeq node (the float input's QuantizeLinear, the output DequantizeLinear
        and Identity) are reported as ``unattributed``."""
        with open(artifact.path, "rb") as f:
            model = f.read()
        graph = artifact.graph
        names = [n.name for n in graph.nodes]
        index = {n: i for i, n in enumerate(names)}
        owners = ort_owners(graph, model)
        with tempfile.TemporaryDirectory(prefix="edgeq-ort-prof-") as d:
            plain = _session(model, 1)
            prof = _session(model, 1, profile_dir=d)
            cost, cost_plain, cost_feeds = _cost_model(d)
            wanted = [o.name for o in plain.get_outputs() if o.name.endswith("_q")]
            totals, cost_totals = [], []
            for k in range(warmup + runs):  # interleaved: all see the same machine load
                t0 = time.perf_counter_ns()
                plain.run(wanted, feeds)
                dt = time.perf_counter_ns() - t0
                prof.run(wanted, feeds)
                cost.run(None, cost_feeds)
                t0 = time.perf_counter_ns()
                cost_plain.run(None, cost_feeds)
                cost_totals.append((time.perf_counter_ns() - t0) / 1e3)
                if k >= warmup:
                    totals.append(dt / 1e3)
            events = _run_events(prof.end_profiling(), warmup)
            cost_a, cost_b = _profiler_cost_us(_run_events(cost.end_profiling(), warmup),
                                               statistics.median(cost_totals[warmup:]))
            inserted = _inserted_owners(os.path.join(d, "optimized.onnx"), owners)
        per_run, unattributed, raw_sums, model_runs = [], [], [], []
        others: set[str] = set()
        for run_total, nodes in events:
            row = [0.0] * len(names)
            rest = 0.0
            for ev in nodes:
                ort_name = ev["name"][:-len("_kernel_time")]
                t = max(0.0, ev["dur"] - cost_a - cost_b * len(ev["args"].get(
                    "input_type_shape", [])))
                owner = _owner(ort_name, owners, inserted)
                if owner is None:
                    rest += t
                    others.add(ort_name)
                else:
                    row[index[owner]] += t
            per_run.append([round(x, 3) for x in row])
            unattributed.append(round(rest, 3))
            raw_sums.append(sum(ev["dur"] for ev in nodes))
            model_runs.append(run_total)
        if len(per_run) != runs:
            raise EdgeqError(f"ONNX Runtime's profile holds {len(per_run) + warmup} runs, "
                             f"expected {runs + warmup}")
        return {"layers": names, "unit": "wall_us", "source": "measured",
                "method": "ONNX Runtime profiler kernel events mapped to edgeq nodes, minus "
                          "the profiler's per-event cost (measured on trivial nodes); total: "
                          "the same session options without the profiler; 1 intra-op thread",
                "runs": per_run, "totals": totals, "unattributed": unattributed,
                "unattributed_nodes": sorted(others),
                "attribution": {k: v for k, v in sorted(inserted.items()) if v is not None},
                "profiler": {"cost_us_per_event": [round(cost_a, 3), round(cost_b, 3)],
                             "kernel_events_us": statistics.median(raw_sums),
                             "model_run_us": statistics.median(model_runs)}}

    def describe(self, artifact: Artifact, checks: Checks) -> dict[str, Any]:
        plain = self.session(artifact, apply_metadata=False)
        without = self.run_many(artifact, checks.sqnr_feeds, raw=True, session=plain)
        return {"runtime_options": dict([SESSION_CONFIG.split("=")]),
                "sqnr_db_without_runtime_options": checks.sqnr_db_vs_float(without),
                "verification": {"per_layer": checks.per_layer(self.compile_node)}}


def _session(model: bytes, threads: int = 0, apply_metadata: bool = True,
             profile_dir: str | None = None):
    """``profile_dir``: profile every run into that folder, and save the optimized graph there
    (``optimized.onnx``: the nodes ORT runs, for mapping their names)."""
    import onnx
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.intra_op_num_threads = threads
    if profile_dir is not None:
        so.enable_profiling = True
        so.profile_file_prefix = os.path.join(profile_dir, "ort")
        so.optimized_model_filepath = os.path.join(profile_dir, "optimized.onnx")
    if apply_metadata:
        meta = {p.key: p.value for p in onnx.load_from_string(model).metadata_props}
        for entry in filter(None, meta.get("edgeq.ort_session_config", "").split(";")):
            key, _, value = entry.partition("=")
            so.add_session_config_entry(key, value)
    return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])


COST_CHAINS = 4  # 1..9-input Sum nodes in the profiler-cost model, 9 per chain
_COUNTER = re.compile(r"__\d+$")  # Builder.name's "__N" suffix


def ort_owners(graph: Graph, model: bytes) -> dict[str, str | None]:
    """The edgeq node each ONNX node of the artifact was emitted for (None: the float input's
    quantization and the outputs' dequantization, which are no edgeq node). The lowering is
    replayed node by node (``LOWER``) and aligned in order with the artifact's nodes; names are
    compared without the Builder's counter, which the whole-graph lowering starts elsewhere."""
    import onnx

    b = Builder(graph)
    trace: list[tuple[str, str]] = []
    for n in graph.nodes:
        start = len(b.nodes)
        LOWER[n.op].emit(b, n)
        trace += [(_COUNTER.sub("", o.name), n.name) for o in b.nodes[start:]]
    owners: dict[str, str | None] = {}
    j = 0
    for o in onnx.load_from_string(model).graph.node:
        if j < len(trace) and _COUNTER.sub("", o.name) == trace[j][0]:
            owners[o.name] = trace[j][1]
            j += 1
        else:
            owners[o.name] = None
    if j != len(trace):
        raise EdgeqError(f"the ORT artifact's nodes do not follow this edgeq model's lowering "
                         f"(matched {j} of {len(trace)}): re-export it")
    return owners


def _owner(ort_name: str, owners: dict[str, str | None], inserted: dict[str, str | None]
           ) -> str | None:
    """The edgeq node of one node ORT ran: an artifact node itself, a node ORT fused from one
    (its name plus "_token_N", "_nchwc", ...: the longest artifact name it starts with), or a
    layout node ORT inserted (``inserted``)."""
    if ort_name in owners:
        return owners[ort_name]
    if ort_name in inserted:
        return inserted[ort_name]
    base = ort_name
    while "_" in base:
        base = base.rsplit("_", 1)[0]
        if base in owners:
            return owners[base]
    return None


def _inserted_owners(optimized_path: str, owners: dict[str, str | None]
                     ) -> dict[str, str | None]:
    """Nodes ORT inserted (NHWC Transposes, NCHWc ReorderInput/ReorderOutput) named after no
    artifact node: each belongs to the edgeq node of the first node reading its output (the
    layout change is made for that consumer), else of the node writing its input; chains of
    inserted nodes are followed."""
    import onnx

    if not os.path.exists(optimized_path):
        return {}
    nodes = list(onnx.load(optimized_path, load_external_data=False).graph.node)
    direct = {n.name: _owner(n.name, owners, {}) for n in nodes}
    foreign = {n.name for n in nodes if n.name not in owners and direct[n.name] is None
               and not _derived(n.name, owners)}
    readers: dict[str, list] = defaultdict(list)
    writer = {}
    for n in nodes:
        for x in n.input:
            readers[x].append(n)
        for y in n.output:
            writer[y] = n

    def find(n, seen: set[str]) -> str | None:
        seen.add(n.name)
        for y in n.output:
            for r in readers[y]:
                if r.name in seen:
                    continue
                got = find(r, seen) if r.name in foreign else direct[r.name]
                if got is not None:
                    return got
        for x in n.input:
            w = writer.get(x)
            if w is not None and w.name not in seen:
                got = find(w, seen) if w.name in foreign else direct[w.name]
                if got is not None:
                    return got
        return None
    return {name: find(n, set()) for n in nodes if (name := n.name) in foreign}


def _derived(name: str, owners: dict[str, str | None]) -> bool:
    base = name
    while "_" in base:
        base = base.rsplit("_", 1)[0]
        if base in owners:
            return True
    return False


def _run_events(trace_path: str, warmup: int) -> list[tuple[float, list[dict]]]:
    """(model_run us, its "Node" kernel events) per run after ``warmup``, from the trace."""
    with open(trace_path) as f:
        events = json.load(f)
    os.remove(trace_path)
    runs = sorted((e for e in events if e.get("name") == "model_run"), key=lambda e: e["ts"])
    kernels = sorted((e for e in events if e.get("cat") == "Node" and
                      e["name"].endswith("_kernel_time")), key=lambda e: e["ts"])
    out, k = [], 0
    for r in runs:
        inside = []
        while k < len(kernels) and kernels[k]["ts"] <= r["ts"] + r["dur"]:
            if kernels[k]["ts"] >= r["ts"]:
                inside.append(kernels[k])
            k += 1
        out.append((float(r["dur"]), inside))
    return out[warmup:]


def _cost_model(folder: str):
    """Two sessions of a chain of ``Sum`` nodes over 1x1x1x1 tensors with 1..9 inputs, one
    profiled like the model, one not: what ORT's profiler itself costs inside a kernel
    event is what such a node's event reads minus what the node costs without profiler."""
    from onnx import TensorProto, helper

    nodes, prev = [], "x"
    for rep in range(COST_CHAINS):
        for k in range(1, 10):
            out = f"s{rep}_{k}"
            nodes.append(helper.make_node("Sum", [prev] + ["c"] * (k - 1), [out], name=out))
            prev = out
    shape = [1, 1, 1, 1]
    g = helper.make_graph(nodes, "cost", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, shape)], [helper.make_tensor_value_info(
            prev, TensorProto.FLOAT, shape)], [helper.make_tensor("c", TensorProto.FLOAT,
                                                                  shape, [0.0])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)])
    m.ir_version = 10
    os.makedirs(os.path.join(folder, "cost"), exist_ok=True)
    data = m.SerializeToString()
    return (_session(data, 1, apply_metadata=False, profile_dir=os.path.join(folder, "cost")),
            _session(data, 1, apply_metadata=False), {"x": np.zeros(shape, np.float32)})


def _profiler_cost_us(runs: list[tuple[float, list[dict]]], plain_us: float
                      ) -> tuple[float, float]:
    """(a, b): the profiler's cost inside one kernel event of a node with n inputs, a + b*n us,
    fitted on the profiled ``_cost_model`` runs (per input count the mean of the faster half
    of its events: preempted ones dropped; it also takes out the profiler's truncation of
    durations to whole microseconds), less the unprofiled run's time per node
    (``plain_us``)."""
    by_inputs: dict[int, list[float]] = defaultdict(list)
    for _, evs in runs:
        for e in evs:
            by_inputs[len(e["args"].get("input_type_shape", []))].append(float(e["dur"]))
    ks = sorted(by_inputs)
    means = [float(np.mean(sorted(by_inputs[k])[:max(1, len(by_inputs[k]) // 2)]))
             for k in ks]
    b, a = np.polyfit(np.asarray(ks, float), np.asarray(means), 1)
    return float(a) - plain_us / (9 * COST_CHAINS), float(max(b, 0.0))


__all__ = ["OrtQdqBackend", "SESSION_CONFIG"]
