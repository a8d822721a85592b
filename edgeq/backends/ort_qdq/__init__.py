"""ONNX Runtime backend: the integer graph as a QDQ ONNX model (opset 21).

Arithmetic ops become ``DequantizeLinear -> float op -> QuantizeLinear`` with the integer graph's
exact integers and scales (int8 weights per channel, int32 bias at ``s_x * s_w``), which ORT's
CPU provider fuses into integer kernels (QLinearConv, QGemm...). ORT requantizes with a float
scale, so results may differ from edgeq's dyadic rescale by 1 LSB per layer. Lookup tables
become an exact integer ``Gather``; data movement stays on int8.

The x86 trap (``../shared/NOTES.md``): without VNNI, ORT's u8s8 kernels can saturate 16-bit
intermediate sums and silently lose accuracy. The artifact records the session option that
avoids it (``session.x64quantprecision=1``) in its metadata; ``run`` applies every option so
recorded, and the export report says so.
"""

from __future__ import annotations

import os

import numpy as np

from edgeq.backends.ort_qdq.lower import SESSION_CONFIG, lower_graph, supports
from edgeq.ir.graph import Graph


class OrtQdqBackend:
    name = "ort"
    artifact = "model.qdq.onnx"

    def supports(self, graph: Graph) -> list[str]:
        return supports(graph)

    def lower(self, graph: Graph, out_dir: str) -> str:
        model = lower_graph(graph)
        path = os.path.join(out_dir, self.artifact)
        with open(path, "wb") as f:
            f.write(model.SerializeToString())
        return path

    def session(self, path_or_bytes, threads: int = 0, apply_metadata: bool = True):
        import onnx
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.log_severity_level = 3
        so.intra_op_num_threads = threads
        data = path_or_bytes if isinstance(path_or_bytes, bytes) else open(path_or_bytes,
                                                                           "rb").read()
        if apply_metadata:
            meta = {p.key: p.value for p in onnx.load_from_string(data).metadata_props}
            for entry in filter(None, meta.get("edgeq.ort_session_config", "").split(";")):
                key, _, value = entry.partition("=")
                so.add_session_config_entry(key, value)
        return ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])

    def run(self, path: str, feeds: dict[str, np.ndarray], raw: bool = False,
            session=None) -> dict[str, np.ndarray]:
        sess = session or self.session(path)
        names = [o.name for o in sess.get_outputs()]
        wanted = [n for n in names if n.endswith("_q") == raw]
        outs = sess.run(wanted, feeds)
        return {n[:-2] if raw else n: o for n, o in zip(wanted, outs)}


__all__ = ["OrtQdqBackend", "SESSION_CONFIG"]
