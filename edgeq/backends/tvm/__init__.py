"""Apache TVM backend: the integer graph as a Relax module with explicit integer arithmetic.

TVM computes an imported QDQ graph in float (``../shared/NOTES.md``), so edgeq does not go
through QDQ: every integer op is spelled out in Relax with the semantics of docs/numerics.md --
convolutions and matrix products on zero-point-centered int32 (int64 where the sum could pass
2**31), requantization as an int64 multiply, a half-up add and a right shift, pooling sums as a
depthwise convolution with a kernel of ones, lookup tables and nearest resizing as ``take``.
The result is bit-exact with the integer interpreter (0 LSB, tested). Compiled for ``llvm``; the
artifact is the compiled library (``model.tvm.so``), run through the Relax VM with TVM's
default thread pool.
"""

from __future__ import annotations

import os
import statistics
import time
from typing import Any

import numpy as np

from edgeq.backends.base import Artifact, Backend, Feeds, Refusal
from edgeq.backends.tvm.lower import build_module, supports
from edgeq.ir.graph import EdgeqError, Graph
from edgeq.quant.pipeline import dequantize_array, quantize_feeds


def relax_op_counts(mod) -> dict[str, int]:
    from collections import Counter

    from tvm import relax

    counts: Counter = Counter()
    for block in mod["main"].body.blocks:
        for binding in block.bindings:
            value = binding.value
            if isinstance(value, relax.Call) and hasattr(value.op, "name"):
                counts[value.op.name.removeprefix("relax.")] += 1
    return dict(sorted(counts.items()))


class TvmBackend(Backend):
    name = "tvm"
    artifact = "model.tvm.so"

    def supports(self, graph: Graph) -> list[Refusal]:
        return supports(graph)

    def lower(self, graph: Graph, out_dir: str) -> Artifact:
        import tvm

        mod = build_module(graph)
        counts = relax_op_counts(mod)
        ex = tvm.compile(mod, target="llvm")
        path = os.path.join(out_dir, self.artifact)
        ex.export_library(path)
        return Artifact(path, graph, op_counts=counts)

    def session(self, artifact: Artifact, threads: int = 0):
        import tvm
        from tvm import relax

        return relax.VirtualMachine(tvm.runtime.load_module(artifact.path), tvm.cpu())

    def run(self, artifact: Artifact, feeds: Feeds, raw: bool = False, session=None) -> Feeds:
        import tvm

        graph = artifact.graph
        vm = session or self.session(artifact)
        q = quantize_feeds(graph, feeds)
        out = vm["main"](*[tvm.runtime.tensor(q[v.name]) for v in graph.inputs])
        outs = list(out) if len(graph.outputs) > 1 else [out]
        res = {}
        for v, o in zip(graph.outputs, outs):
            a = o.numpy()
            res[v.name] = a if raw else dequantize_array(a, v.qparams)
        return res

    def profile(self, artifact: Artifact, feeds: Feeds, runs: int = 10, warmup: int = 2
                ) -> dict[str, Any]:
        """Per-layer thread CPU time (ns) of the artifact on the Relax VM (``edgeq.profile``
        raw format).

        The VM has no profiler; its instrument hook (``set_instrument``) is called before and
        after every call it makes, with the callee's symbol. The default CPU pipeline fuses
        nothing: every Relax op the lowering emitted for an edgeq node is one compiled
        function call, so each call belongs to exactly one node (``tvm_call_owners``, checked
        against the calls the artifact really makes). The hook makes each such call itself
        between two ``time.thread_time_ns`` readings (less the readings' own cost) and tells
        the VM to skip it; the generated code is serial, so it runs in this thread. VM builtins
        (allocations, shape checks, reshape views) are not timed: VM overhead, in the total
        only. The total of a run is the whole inference on a second VM without the hook,
        timed the same way, runs interleaved."""
        import tvm
        from tvm import relax

        os.environ.setdefault("TVM_NUM_THREADS", "1")
        graph = artifact.graph
        names = [n.name for n in graph.nodes]
        index = {n: i for i, n in enumerate(names)}
        owners = tvm_call_owners(graph)
        prims = {callee for callee, _ in owners}
        lib = tvm.runtime.load_module(artifact.path)
        plain = relax.VirtualMachine(lib, tvm.cpu())["main"]
        vm = relax.VirtualMachine(lib, tvm.cpu())
        q = quantize_feeds(graph, feeds)
        args = [tvm.runtime.tensor(q[v.name]) for v in graph.inputs]
        clock = time.thread_time_ns
        reads = []
        for _ in range(200):
            t0 = clock()
            reads.append(clock() - t0)
        read_cost = statistics.median(reads)
        seen: list[tuple[str, int]] = []

        def hook(func, symbol, before, ret, *call_args):
            if not before or symbol not in prims:
                return 0
            t0 = clock()
            func(*call_args)
            seen.append((symbol, clock() - t0))
            return 1  # VMInstrumentReturnKind.SKIP_RUN: already run
        vm.set_instrument(hook)
        timed = vm["main"]
        ref = _numpy(plain(*args))
        got = _numpy(timed(*args))
        if [c for c, _ in seen] != [c for c, _ in owners]:
            raise EdgeqError("the TVM artifact's calls do not follow this edgeq model's "
                             "lowering: re-export it")
        if any(not np.array_equal(a, b) for a, b in zip(ref, got)):
            raise EdgeqError("TVM profiling changed the outputs")
        per_run, totals, cpu_ratio = [], [], []
        for k in range(warmup + runs):
            t0, p0 = clock(), time.process_time_ns()
            plain(*args)
            dt, dp = clock() - t0, time.process_time_ns() - p0
            seen.clear()
            timed(*args)
            row = [0.0] * len(names)
            for (_, node), (_, t) in zip(owners, seen):
                row[index[node]] += max(0.0, t - read_cost)
            if k >= warmup:
                per_run.append([int(round(x)) for x in row])
                totals.append(dt)
                cpu_ratio.append(dp / max(dt, 1))
        return {"layers": names, "unit": "cpu_ns", "source": "measured",
                "method": "Relax VM instrument hook: each compiled call (one per Relax op of a "
                          "node, nothing fused) timed around the call; VM builtins untimed; "
                          "total: the uninstrumented VM, same clock",
                "runs": per_run, "totals": totals,
                "profiler": {"calls_per_inference": len(owners),
                             "clock_read_ns": int(read_cost),
                             "process_over_thread_cpu": round(statistics.median(cpu_ratio), 3)}}


def _numpy(out) -> list[np.ndarray]:
    return [o.numpy() for o in out] if not hasattr(out, "numpy") else [out.numpy()]


def tvm_call_owners(graph: Graph) -> list[tuple[str, str]]:
    """(callee symbol, edgeq node) of every compiled-function call the VM makes per inference,
    in order. The module is ``build_module``'s, with each node's output variables noted: a
    node owns the Relax bindings after the previous node's outputs up to its
    own. The default pipeline's first passes up to legalization then turn each op into one
    ``call_tir``, whose bound variable is the original binding's (a binding legalization
    adds belongs to the next original one)."""
    import tvm
    from tvm import relax

    node_outs: list[tuple[str, list]] = []
    mod = build_module(graph, node_outs)
    bindings = [b for block in mod["main"].body.blocks for b in block.bindings]
    position = {b.var.name: i for i, b in enumerate(bindings)}
    if len(position) != len(bindings):
        raise EdgeqError("TVM profiling needs distinct Relax variable names")
    owner_of: dict[str, str] = {}
    start = 0
    for name, vars_ in node_outs:
        end = max([start - 1] + [position.get(v.name, -1) for v in vars_
                                 if isinstance(v, relax.Var)])
        for b in bindings[start:end + 1]:
            owner_of[b.var.name] = name
        start = max(start, end + 1)
    with tvm.target.Target("llvm"):
        low = tvm.transform.Sequential([
            relax.backend.DispatchSampling(), relax.backend.DispatchSortScan(),
            relax.transform.LegalizeOps(), relax.transform.RewriteDataflowReshape()])(mod)
    calls: list[tuple[str, str | None]] = []
    call_tir = tvm.ir.Op.get("relax.call_tir")
    for block in low["main"].body.blocks:
        for b in block.bindings:
            value = b.value
            if isinstance(value, relax.Call) and value.op.same_as(call_tir):
                calls.append((value.args[0].name_hint, owner_of.get(b.var.name)))
    resolved: list[tuple[str, str]] = []
    pending: list[str] = []
    for callee, node in calls:
        if node is None:
            pending.append(callee)
            continue
        resolved += [(c, node) for c in pending] + [(callee, node)]
        pending = []
    last = resolved[-1][1] if resolved else (graph.nodes[-1].name if graph.nodes else "")
    return resolved + [(c, last) for c in pending]
