"""ONNX Runtime backend: the integer graph as a QDQ ONNX model (opset 21).

Arithmetic ops become ``DequantizeLinear -> float op -> QuantizeLinear`` with the integer graph's
exact integers and scales (int8 weights per channel, int32 bias at ``s_x * s_w``), which ORT's
CPU provider fuses into integer kernels (QLinearConv, QGemm...). ORT requantizes with a float
scale, so results may differ from edgeq's dyadic rescale by 1 LSB per layer: ``describe`` checks
that bound node by node on identical inputs. Lookup tables become an exact integer ``Gather``;
data movement stays on int8.

The x86 trap (``../shared/NOTES.md``): without VNNI, ORT's u8s8 kernels can saturate 16-bit
intermediate sums and silently lose accuracy. The artifact records the session option that
avoids it (``session.x64quantprecision=1``) in its metadata; ``run`` applies every option so
recorded, and the export report says so (with the SQNR it would have without).
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

from edgeq.backends.base import (Artifact, Backend, Checks, Feeds, NodeRunner, Refusal,
                                 activation_inputs)
from edgeq.backends.ort_qdq.lower import SESSION_CONFIG, lower_graph, supports
from edgeq.ir.graph import Graph, Node


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

    def describe(self, artifact: Artifact, checks: Checks) -> dict[str, Any]:
        plain = self.session(artifact, apply_metadata=False)
        without = self.run_many(artifact, checks.sqnr_feeds, raw=True, session=plain)
        return {"runtime_options": dict([SESSION_CONFIG.split("=")]),
                "sqnr_db_without_runtime_options": checks.sqnr_db_vs_float(without),
                "verification": {"per_layer": checks.per_layer(self.compile_node)}}


def _session(model: bytes, threads: int = 0, apply_metadata: bool = True):
    import onnx
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.intra_op_num_threads = threads
    if apply_metadata:
        meta = {p.key: p.value for p in onnx.load_from_string(model).metadata_props}
        for entry in filter(None, meta.get("edgeq.ort_session_config", "").split(";")):
            key, _, value = entry.partition("=")
            so.add_session_config_entry(key, value)
    return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])


__all__ = ["OrtQdqBackend", "SESSION_CONFIG"]
