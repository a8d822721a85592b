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
from typing import Any, Sequence

import numpy as np

from edgeq.backends.base import (Artifact, Backend, Checks, Feeds, NodeRunner, Refusal,
                                 activation_inputs, second_of_two)
from edgeq.backends.ort_qdq.lower import (LOWER, SESSION_CONFIG, Builder, _stored,
                                         lower_graph, supports)
from edgeq.ir.graph import EdgeqError, Graph, Node
from edgeq.quant.pipeline import quantize_feeds


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

        What is timed is the artifact's integer graph (``integer_core``): its nodes as the file
        holds them, fed the integer inputs and read at the integer outputs, as the other
        targets are; the artifact's float edges (the input's QuantizeLinear, the outputs'
        DequantizeLinear), which are no edgeq layer, are cut off, and the whole artifact's
        time with them is reported beside (``float_edges``).

        Each run: the profiled session's "Node" kernel events, each mapped to the edgeq node
        whose lowering emitted the ONNX node ORT built it from (``ort_owners``), minus the
        profiler's own cost per event. ORT counts that cost inside the kernel span (the
        event's input and output shapes are formatted there, its arguments built, and the
        kernel runs after the profiler's bookkeeping: 2.5-5 us an event measured here, more
        than a small kernel). It is measured on chains of trivial ``Sum`` nodes with 1..9
        inputs run in between, profiled and not (``_cost_models``, ``_profiler_cost_us``), and
        subtracted per event (at least 0 left). The total of a run is the same inference
        without the profiler (a second session, runs interleaved with the profiled ones),
        timed around ``InferenceSession.run`` on the same clock, less the fixed cost of one
        ``run`` call (Python's binding, the feeds' and fetches' conversion, the executor's
        set-up: 7-18 us measured, a fifth of a small model's run), which is the intercept of
        the trivial chains' run time over their length and is reported as ``call_us``; the
        profiled ``model_run`` event also holds the profiler's bookkeeping between kernels
        (1.4-4x the real inference). Every session is timed warm, in the second of two runs
        back to back. ORT nodes of no edgeq node are reported as ``unattributed``."""
        with open(artifact.path, "rb") as f:
            full = f.read()
        graph = artifact.graph
        names = [n.name for n in graph.nodes]
        index = {n: i for i, n in enumerate(names)}
        model, int_feeds, edge_nodes = integer_core(graph, full, feeds)
        owners = ort_owners(graph, model)
        with tempfile.TemporaryDirectory(prefix="edgeq-ort-prof-") as d:
            whole = _session(full, 1)
            plain = _session(model, 1)
            prof = _session(model, 1, profile_dir=d)
            cost, cost_plain, cost_feeds = _cost_models(d)
            wanted = [o.name for o in whole.get_outputs() if o.name.endswith("_q")]
            totals, whole_totals = [], []
            cost_times: dict[tuple[int, int], list[float]] = defaultdict(list)
            for k in range(warmup + runs):  # interleaved: all see the same machine load
                # every session timed warm, in a second run right after a first (which
                # warms its caches after the others ran), profiled and not alike: cold runs
                # after the cost chains read digits_cnn 2x slower than back to back
                for _ in range(COST_REPEATS):
                    cost.run(None, cost_feeds)
                for key, sess in cost_plain.items():
                    sess.run(None, cost_feeds)
                    for _ in range(COST_REPEATS // 2):
                        t0 = time.perf_counter_ns()
                        sess.run(None, cost_feeds)
                        if k >= warmup:
                            cost_times[key].append((time.perf_counter_ns() - t0) / 1e3)
                dt = second_of_two(lambda: plain.run(None, int_feeds), time.perf_counter_ns) / 1e3
                second_of_two(lambda: prof.run(None, int_feeds), time.perf_counter_ns)
                dw = second_of_two(lambda: whole.run(wanted, feeds), time.perf_counter_ns) / 1e3
                if k >= warmup:
                    totals.append(dt)
                    whole_totals.append(dw)
            events = _run_events(prof.end_profiling(), 0)[2 * warmup + 1::2]
            cost_runs = [r for i, r in enumerate(_run_events(cost.end_profiling(), 0))
                         if i >= warmup * COST_REPEATS and i % COST_REPEATS]
            cost_a, cost_b, call = _profiler_cost_us(cost_runs,
                                                     {key: statistics.median(ts)
                                                      for key, ts in cost_times.items()})
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
            raise EdgeqError(f"ONNX Runtime's profile holds {2 * len(per_run) + 2 * warmup} "
                             f"runs, expected {2 * (runs + warmup)}")
        return {"layers": names, "unit": "wall_us", "source": "measured",
                "method": "ONNX Runtime profiler kernel events of the artifact's integer "
                          "graph (its float input quantize and output dequantize cut off) "
                          "mapped to edgeq nodes, minus the profiler's per-event cost "
                          "(measured on trivial nodes); total: the same session options "
                          "without the profiler, less one run call's fixed cost (call_us); "
                          "1 intra-op thread",
                "runs": per_run, "totals": [round(max(t - call, 0.0), 3) for t in totals],
                "unattributed": unattributed,
                "unattributed_nodes": sorted(others),
                "attribution": {k: v for k, v in sorted(inserted.items()) if v is not None},
                "float_edges": {"nodes": edge_nodes,
                                "artifact_total_us": statistics.median(whole_totals)},
                "profiler": {"cost_us_per_event": [round(cost_a, 3), round(cost_b, 3)],
                             "call_us": round(call, 3),
                             "kernel_events_us": statistics.median(raw_sums),
                             "events": len(events[0][1]) if events else 0,
                             "event_inputs": sum(len(ev["args"].get("input_type_shape", []))
                                                 for ev in events[0][1]) if events else 0,
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


COST_INPUTS = range(1, 10)  # input counts of the profiler-cost model's Sum nodes
COST_LENGTHS = (4, 16)  # its chain lengths: unprofiled both, profiled the longer
COST_SHAPE = (1, 1, 1, 1)  # its tensors
COST_REPEATS = 8  # cost-model runs per profiled run
_COUNTER = re.compile(r"__\d+$")  # Builder.name's "__N" suffix


def integer_core(graph: Graph, model: bytes, feeds: Feeds
                 ) -> tuple[bytes, dict[str, np.ndarray], list[str]]:
    """The artifact cut to its integer graph: the float inputs' ``QuantizeLinear`` and the
    outputs' ``DequantizeLinear`` (and their integer twins, ``name_q``) removed, every other
    node as the file holds it. Its inputs are the quantized inputs and its outputs the integer
    outputs, in the artifact's stored types (int8 as uint8, ``lower._stored``). Returns the model,
    ``feeds`` quantized and stored so, and the names of the nodes cut."""
    import onnx
    from onnx import helper

    m = onnx.load_from_string(model)
    g = m.graph
    by_name = {n.name: n for n in g.node}
    inits = {t.name: t for t in g.initializer}
    ints = quantize_feeds(graph, feeds)
    inputs, int_feeds, outputs = [], {}, []
    for v in graph.inputs:
        q = by_name.get(f"{v.name}/q")
        if q is None or q.op_type != "QuantizeLinear":
            raise EdgeqError(f"the ORT artifact has no QuantizeLinear '{v.name}/q' for input "
                             f"'{v.name}': re-export it")
        inputs.append(helper.make_tensor_value_info(q.output[0], inits[q.input[2]].data_type,
                                                    list(v.shape)))
        int_feeds[q.output[0]] = _stored(v, ints[v.name])
    for v in graph.outputs:
        dq = by_name.get(f"{v.name}/dq_out")
        if dq is None or dq.op_type != "DequantizeLinear":
            raise EdgeqError(f"the ORT artifact has no DequantizeLinear '{v.name}/dq_out' for "
                             f"output '{v.name}': re-export it")
        outputs.append(helper.make_tensor_value_info(dq.input[0], inits[dq.input[2]].data_type,
                                                     list(v.shape)))
    cut = {f"{v.name}/q" for v in graph.inputs} | {
        f"{v.name}/{s}" for v in graph.outputs for s in ("dq_out", "int_out")}
    kept = [n for n in g.node if n.name not in cut]
    used = {x for n in kept for x in n.input}
    del g.node[:]
    g.node.extend(kept)
    keep_inits = [t for t in g.initializer if t.name in used]
    del g.initializer[:]
    g.initializer.extend(keep_inits)
    del g.input[:]
    g.input.extend(inputs)
    del g.output[:]
    g.output.extend(outputs)
    return m.SerializeToString(), int_feeds, sorted(cut & set(by_name))


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


def _sum_chains(inputs: Sequence[int], length: int) -> bytes:
    """Chains of ``length`` ``Sum`` nodes over 1x1x1x1 tensors, one chain per input count."""
    from onnx import TensorProto, helper

    nodes, prev = [], "x"
    for k in inputs:
        for rep in range(length):
            out = f"s{k}_{rep}"
            nodes.append(helper.make_node("Sum", [prev] + ["c"] * (k - 1), [out], name=out))
            prev = out
    shape = list(COST_SHAPE)
    g = helper.make_graph(nodes, "cost", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, shape)], [helper.make_tensor_value_info(
            prev, TensorProto.FLOAT, shape)], [helper.make_tensor("c", TensorProto.FLOAT,
                                                                  shape, np.zeros(
                                                                      shape, np.float32))])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)])
    m.ir_version = 10
    return m.SerializeToString()


def _cost_models(folder: str):
    """What ORT's profiler itself costs inside a kernel event: the profiled session of
    ``_sum_chains`` with 1..9 inputs (what such a node's event reads), and unprofiled sessions
    of one input count each at two chain lengths (``COST_LENGTHS``), which give what one such
    node costs in a plain run without the run's fixed cost (``_profiler_cost_us``)."""
    os.makedirs(os.path.join(folder, "cost"), exist_ok=True)
    prof = _session(_sum_chains(COST_INPUTS, COST_LENGTHS[1]), 1, apply_metadata=False,
                    profile_dir=os.path.join(folder, "cost"))
    plain = {(k, n): _session(_sum_chains([k], n), 1, apply_metadata=False)
             for k in COST_INPUTS for n in COST_LENGTHS}
    return prof, plain, {"x": np.zeros(COST_SHAPE, np.float32)}


def _profiler_cost_us(runs: list[tuple[float, list[dict]]],
                      plain_us: dict[tuple[int, int], float]) -> tuple[float, float, float]:
    """(a, b, F): the profiler's cost inside the kernel event of a node with n inputs, a + b*n
    us:
    the line through what a ``Sum`` of n inputs' event reads (per input count, the mean of its
    events below their 80th percentile: preempted ones dropped; durations are whole
    microseconds, truncated as the model's are), less the line through what one such node
    costs unprofiled, fitted as run time = F + length * (p0 + p1 * n) over the plain chains
    (``plain_us``: median us per (n, length)), so the run's fixed cost F is not spread over
    its nodes, and F is returned as one run call's fixed cost."""
    by_inputs: dict[int, list[float]] = defaultdict(list)
    for _, evs in runs:
        for e in evs:
            by_inputs[len(e["args"].get("input_type_shape", []))].append(float(e["dur"]))
    ks = sorted(by_inputs)
    means = []
    for k in ks:
        xs = np.sort(np.asarray(by_inputs[k]))
        means.append(float(np.mean(xs[:max(1, int(0.8 * len(xs)))])))
    r1, r0 = np.polyfit(np.asarray(ks, float), np.asarray(means), 1)
    keys = sorted(plain_us)
    design = np.asarray([[1.0, n, n * k] for k, n in keys])
    (call, p0, p1), *_ = np.linalg.lstsq(design, np.asarray([plain_us[key] for key in keys]),
                                      rcond=None)
    return float(r0 - p0), float(max(r1 - p1, 0.0)), float(call)


__all__ = ["OrtQdqBackend", "SESSION_CONFIG"]
