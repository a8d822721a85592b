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

from edgeq.backends.base import Artifact, Backend, Feeds, Refusal
from edgeq.backends.tvm.lower import build_module, supports
from edgeq.ir.graph import Graph
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
