"""TFLite backend: one .tflite flatbuffer, run on LiteRT (reference kernels, or the default
XNNPACK path) and on TFLite Micro. See lower.py for the format and the arithmetic contract.

``tflite`` runs LiteRT's reference kernels (``OpResolverType.BUILTIN_REF``: bit-exact with the
integer interpreter); ``tflm`` runs the TFLite Micro interpreter. Inputs are NHWC inside the
model; the runners take and return edgeq's NCHW arrays.
"""

from __future__ import annotations

import os

import numpy as np

from edgeq.backends.tflite.lower import fallback_nodes, lower_graph, nhwc_values, supports
from edgeq.ir.graph import EdgeqError, Graph
from edgeq.quant.dyadic import effective_scale_f32, quantize_multiplier

ARTIFACT = "model.tflite"


def _load_graph(path: str):
    from edgeq import serialize

    eqm = os.path.join(os.path.dirname(path), "model.eqm")
    if not os.path.exists(eqm):
        raise EdgeqError(f"{path}: model.eqm must sit beside the .tflite file (it holds the "
                         f"input and output quantization)")
    return serialize.load(eqm)


def _f32_as_f64(s: float) -> float:
    return float(np.float32(s))


def _to_nhwc(a: np.ndarray, image: bool = True) -> np.ndarray:
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1)) if a.ndim == 4 and image else a


def _to_nchw(a: np.ndarray, image: bool = True) -> np.ndarray:
    return np.ascontiguousarray(a.transpose(0, 3, 1, 2)) if a.ndim == 4 and image else a


class _Base:
    artifact = ARTIFACT
    fallback = False  # --allow-fallback: float islands for what the integer kernels lack

    def supports(self, graph: Graph) -> list[str]:
        return supports(graph, self.fallback)

    def lower(self, graph: Graph, out_dir: str) -> str:
        self.float_nodes = [n.name for n in fallback_nodes(graph)] if self.fallback else []
        path = os.path.join(out_dir, self.artifact)
        if not os.path.exists(path):  # tflite and tflm share one artifact
            with open(path, "wb") as f:
                f.write(lower_graph(graph, self.fallback))
        return path

    def run(self, path: str, feeds, raw: bool = False, session=None):
        from edgeq.quant.pipeline import dequantize_array, quantize_feeds

        sess, graph = session or self.session(path)
        nhwc = nhwc_values(graph)
        q = quantize_feeds(graph, feeds)
        outs = self._invoke(sess, [_to_nhwc(q[v.name], v.name in nhwc) for v in graph.inputs])
        res = {}
        for v, o in zip(graph.outputs, outs):
            o = _to_nchw(o, v.name in nhwc)
            res[v.name] = o if raw else dequantize_array(o, v.qparams)
        return res


class TfliteBackend(_Base):
    """LiteRT with its reference kernels (the bit-exact check)."""

    name = "tflite"

    def __init__(self, resolver: str = "BUILTIN_REF"):
        self.resolver = resolver

    def fast_session(self, path: str):
        """LiteRT's default kernels (XNNPACK), one thread: what latency is measured on."""
        return TfliteBackend("AUTO").session(path, threads=1)

    @staticmethod
    def reference_graph(graph: Graph) -> Graph:
        """The integer model as LiteRT's reference kernels compute it (docs/numerics.md,
        "Per-runtime rules"); TFLite Micro computes ``graph`` itself. Two kernels differ:

        - FULLY_CONNECTED (QGemm, and QReduceMean, which is lowered to one) requantizes in
          float64: ``round(float64(acc) * (s_x * s_w[c] / s_y))``, half away from zero;
        - MUL derives its multiplier from ``s_a * s_b / s_y`` evaluated in float32, where every
          other kernel (and TFLite Micro's MUL) evaluates it in float64.
        """
        g = graph.copy()
        f64 = _f32_as_f64
        for n in g.nodes:
            if n.op in ("QGemm", "QReduceMean"):
                x, y = n.inputs[0], n.outputs[0]
                w_scales = ([n.attrs["fc_weight_scale"]] if n.op == "QReduceMean"
                            else n.inputs[1].qparams.scale)
                n.attrs["rounding"] = "float64"
                n.attrs["real_scale"] = [f64(x.qparams.scale[0]) * f64(s) / f64(y.qparams.scale[0])
                                         for s in w_scales]
            elif n.op == "QMul" and len(n.inputs[1].qparams.scale) == 1:
                m, s = quantize_multiplier(effective_scale_f32(
                    n.inputs[0].qparams.scale[0], n.inputs[1].qparams.scale[0],
                    n.outputs[0].qparams.scale[0]))
                n.attrs["multiplier"], n.attrs["shift"] = m, s
        return g

    def session(self, path: str, threads: int = 0, apply_metadata: bool = True):
        from ai_edge_litert import interpreter as li

        interp = li.Interpreter(model_path=path, num_threads=threads or None,
                                experimental_op_resolver_type=getattr(li.OpResolverType,
                                                                      self.resolver))
        interp.allocate_tensors()
        return interp, _load_graph(path)

    def _invoke(self, interp, arrays):
        for d, a in zip(interp.get_input_details(), arrays):
            interp.set_tensor(d["index"], a)
        interp.invoke()
        return [interp.get_tensor(d["index"]) for d in interp.get_output_details()]


class TflmBackend(_Base):
    """TFLite Micro's Python interpreter, with the smallest arena that allocates."""

    name = "tflm"

    def session(self, path: str, threads: int = 0, apply_metadata: bool = True):
        from tflite_micro.python.tflite_micro import runtime

        with open(path, "rb") as f:
            data = f.read()
        self.arena_bytes = smallest_arena(data)
        return runtime.Interpreter.from_bytes(data, arena_size=self.arena_bytes), \
            _load_graph(path)

    def run(self, path: str, feeds, raw: bool = False, session=None):
        self._n_out = len((session or self.session(path))[1].outputs) if session is None \
            else len(session[1].outputs)
        return super().run(path, feeds, raw, session)

    def _invoke(self, interp, arrays):
        for i, a in enumerate(arrays):
            interp.set_input(a, i)
        interp.invoke()
        outs = [interp.get_output(i) for i in range(self._n_out)]
        interp.reset()
        return outs


def single_node_graph(graph: Graph, node) -> Graph:
    """A graph holding just ``node`` (its activation inputs become graph inputs)."""
    g = Graph(f"{graph.name}/{node.name}")
    g.metadata = dict(graph.metadata)
    sub = graph.copy()
    n = next(x for x in sub.nodes if x.name == node.name)
    g.nodes = [n]
    g.inputs = [v for v in n.inputs if v is not None and not v.is_const]
    g.outputs = list(n.outputs)
    for v in g.inputs:
        v.producer = None
    for v in g.inputs + g.outputs + [v for v in n.inputs if v is not None]:
        g.values[v.name] = v
    return g


def per_layer_xnnpack(graph: Graph, envs: list[dict]) -> dict:
    """Each node alone on LiteRT's default (XNNPACK) path, fed the integer interpreter's own
    inputs, against its outputs: the per-layer bound on that path."""
    from ai_edge_litert import interpreter as li

    worst, worst_name = 0, None
    for node in graph.nodes:
        sub = single_node_graph(graph, node)
        nhwc = nhwc_values(sub)
        interp = li.Interpreter(model_content=lower_graph(sub))
        interp.allocate_tensors()
        for env in envs:
            outs = TfliteBackend._invoke(None, interp, [_to_nhwc(env[v.name], v.name in nhwc)
                                                        for v in sub.inputs])
            for v, o in zip(sub.outputs, outs):
                d = int(np.abs(_to_nchw(o, v.name in nhwc).astype(np.int64) -
                               env[v.name].astype(np.int64)).max())
                if d > worst:
                    worst, worst_name = d, node.name
    return {"max_abs_diff_lsb": worst, "worst_layer": worst_name, "samples": len(envs)}


_PROBE = """
import os, sys
from tflite_micro.python.tflite_micro import runtime
data = open(sys.argv[1], "rb").read()
lo, hi = int(sys.argv[2]), int(sys.argv[3])
os.dup2(os.open(os.devnull, os.O_WRONLY), 2)  # TFLM prints every failed allocation
def ok(n):
    print("probe", n, flush=True)
    try:
        runtime.Interpreter.from_bytes(data, arena_size=n)
        good = True
    except Exception:
        good = False
    print("ok" if good else "fail", n, flush=True)
    return good
if not ok(hi):
    sys.exit(3)
while hi - lo > 16:
    mid = (lo + hi) // 2
    lo, hi = (lo, mid) if ok(mid) else (mid, hi)
"""


def smallest_arena(data: bytes, hi: int = 1 << 24) -> int:
    """Binary search (to 16 bytes) for the smallest TFLM arena that allocates the model.

    The probes run in a child process: TFLite Micro's allocator crashes (SIGSEGV) on some arena
    sizes just below what a model needs, instead of failing. A crashed probe counts as a failed
    one and the search resumes in a fresh child."""
    import subprocess
    import sys
    import tempfile

    lo = 0
    with tempfile.NamedTemporaryFile(suffix=".tflite") as f:
        f.write(data)
        f.flush()
        for _ in range(64):
            r = subprocess.run([sys.executable, "-c", _PROBE, f.name, str(lo), str(hi)],
                               capture_output=True, text=True, timeout=600)
            last = None
            words = r.stdout.split()
            for kind, n in zip(words[::2], words[1::2]):
                n = int(n)
                if kind == "probe":
                    last = n
                elif kind == "ok":
                    hi, last = n, None
                else:
                    lo, last = n, None
            if r.returncode == 3:
                raise EdgeqError(f"TFLite Micro cannot allocate this model even with {hi} "
                                 f"bytes")
            if r.returncode == 0:
                return hi
            if last is None:
                raise EdgeqError(f"TFLite Micro arena probe failed: {r.stderr.strip()[-500:]}")
            lo = last  # the probe at `last` crashed: treat as too small
            if hi - lo <= 16:
                return hi
    raise EdgeqError("TFLite Micro arena search did not converge")
