"""TFLite backend: one .tflite flatbuffer, run on LiteRT (reference kernels, or the default
XNNPACK path) and on TFLite Micro. See lower.py for the format and the arithmetic contract.

``tflite`` runs LiteRT's reference kernels (``OpResolverType.BUILTIN_REF``: bit-exact with the
integer model as LiteRT computes it, ``reference_graph``), checks each node alone on the default
XNNPACK path (within 1 LSB) and measures latency there; ``tflm`` runs the TFLite Micro
interpreter in the smallest arena that allocates. Inputs are NHWC inside the model; the runners
take and return edgeq's NCHW arrays.
"""

from __future__ import annotations

import os
import statistics
import time
from abc import abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgeq.backends.base import (Artifact, Backend, Checks, Feeds, NodeRunner, Refusal,
                                 load_integer_model, median_ms, second_of_two,
                                 single_node_graph)
from edgeq.backends.tflite.lower import fallback_nodes, lower_graph, nhwc_values, supports
from edgeq.ir.graph import DType, EdgeqError, Graph, Node, QParams, TensorType
from edgeq.numerics.dyadic import effective_scale_f32, quantize_multiplier
from edgeq.quant.pipeline import dequantize_array, quantize_feeds
from edgeq.runtime.reference import run_graph

ARTIFACT = "model.tflite"


@dataclass(frozen=True)
class TflmArtifact(Artifact):
    arena_bytes: int = 0  # the smallest TFLite Micro arena that allocates the model


def _f32_as_f64(s: float) -> float:
    return float(np.float32(s))


def _to_nhwc(a: np.ndarray, image: bool = True) -> np.ndarray:
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1)) if a.ndim == 4 and image else a


def _to_nchw(a: np.ndarray, image: bool = True) -> np.ndarray:
    return np.ascontiguousarray(a.transpose(0, 3, 1, 2)) if a.ndim == 4 and image else a


def write_tflite(graph: Graph, out_dir: str, fallback: bool = False) -> str:
    """``out_dir/model.tflite``, written once: tflite, tflm and ethos-u share the file."""
    path = os.path.join(out_dir, ARTIFACT)
    if not os.path.exists(path):
        with open(path, "wb") as f:
            f.write(lower_graph(graph, fallback))
    return path


class _TfliteFile(Backend):
    """What the LiteRT and TFLite Micro targets share: the support check and the file."""

    artifact = ARTIFACT
    rounding = "tflite"  # the integer model follows TFLite's arithmetic (docs/numerics.md)
    int16_activations = "outputs"  # int16 only where a lowering says int16=True

    def supports(self, graph: Graph) -> list[Refusal]:
        return supports(graph, self.allow_fallback)

    def lower(self, graph: Graph, out_dir: str) -> Artifact:
        path = write_tflite(graph, out_dir, self.allow_fallback)
        nodes = tuple(n.name for n in fallback_nodes(graph)) if self.allow_fallback else ()
        return Artifact(path, graph, float_nodes=nodes)

    def run(self, artifact: Artifact, feeds: Feeds, raw: bool = False, session=None) -> Feeds:
        graph = artifact.graph
        sess = session or self.session(artifact)
        nhwc = nhwc_values(graph)
        q = quantize_feeds(graph, feeds)
        outs = self._invoke(sess, graph, [_to_nhwc(q[v.name], v.name in nhwc)
                                          for v in graph.inputs])
        res = {}
        for v, o in zip(graph.outputs, outs):
            o = _to_nchw(o, v.name in nhwc)
            res[v.name] = o if raw else dequantize_array(o, v.qparams)
        return res

    @abstractmethod
    def _invoke(self, interp, graph: Graph, arrays: list[np.ndarray]) -> list[np.ndarray]:
        """The runtime's integer outputs for these (NHWC where the model is) inputs."""


def _litert(resolver: str, threads: int = 0, path: str | None = None,
            content: bytes | None = None):
    from ai_edge_litert import interpreter as li

    interp = li.Interpreter(model_path=path, model_content=content,
                            num_threads=threads or None,
                            experimental_op_resolver_type=getattr(li.OpResolverType, resolver))
    interp.allocate_tensors()
    return interp


def _invoke_cost_model(like: Graph):
    """LiteRT (default kernels, one thread) on a model holding one int8 RESHAPE of 4 bytes:
    what one ``invoke()`` costs beyond its kernels."""
    g = Graph("invoke_cost")
    g.metadata = dict(like.metadata)
    x = g.add_input("x", TensorType(DType.INT8, (1, 4)))
    x.qparams = QParams((1.0,), (0,))
    n = g.add_node("Reshape", [x], [TensorType(DType.INT8, (1, 2, 2))],
                   attrs={"shape": [1, 2, 2]}, name="reshape")
    n.outputs[0].qparams = QParams((1.0,), (0,))
    g.outputs = [n.outputs[0]]
    interp = _litert("AUTO", 1, content=lower_graph(g))
    _set_inputs(interp, [np.zeros((1, 4), np.int8)])
    return interp


def _set_inputs(interp, arrays: list[np.ndarray]) -> None:
    for d, a in zip(interp.get_input_details(), arrays):
        interp.set_tensor(d["index"], a)


def _invoke_litert(interp, arrays: list[np.ndarray]) -> list[np.ndarray]:
    _set_inputs(interp, arrays)
    interp.invoke()
    return [interp.get_tensor(d["index"]) for d in interp.get_output_details()]


class TfliteBackend(_TfliteFile):
    """LiteRT with its reference kernels (the bit-exact check); latency and a per-layer check
    on its default (XNNPACK) kernels."""

    name = "tflite"

    def session(self, artifact: Artifact, threads: int = 0):
        return _litert("BUILTIN_REF", threads, path=artifact.path)

    def _invoke(self, interp, graph: Graph, arrays: list[np.ndarray]) -> list[np.ndarray]:
        return _invoke_litert(interp, arrays)

    def reference_graph(self, graph: Graph) -> Graph:
        """The integer model as LiteRT's reference kernels compute it (docs/numerics.md,
        "Per-runtime rules"); TFLite Micro computes ``graph`` itself. Two kernels differ:

        - FULLY_CONNECTED (QGemm, and QReduceMean, which is lowered to one) requantizes in
          float64: ``round(float64(acc) * (s_x * s_w[c] / s_y))``, half away from zero;
        - MUL derives its multiplier from ``s_a * s_b / s_y`` evaluated in float32, where every
          other kernel (and TFLite Micro's MUL) evaluates it in float64; PRELU its two
          (``s_x / s_y``, ``s_x * s_a / s_y``) likewise.
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
            elif n.op == "QPRelu":
                s_x, s_a = n.inputs[0].qparams.scale[0], n.inputs[1].qparams.scale[0]
                s_y = n.outputs[0].qparams.scale[0]
                n.attrs["pos_mult"], n.attrs["pos_shift"] = quantize_multiplier(
                    float(np.float32(s_x) / np.float32(s_y)))
                n.attrs["neg_mult"], n.attrs["neg_shift"] = quantize_multiplier(
                    effective_scale_f32(s_x, s_a, s_y))
        return g

    def latency_ms(self, artifact: Artifact, feeds: Feeds) -> float:
        """On LiteRT's default kernels (XNNPACK), one thread: what a deployment runs."""
        sess = _litert("AUTO", 1, path=artifact.path)
        return median_ms(lambda: self.run(artifact, feeds, session=sess))

    def compile_node(self, graph: Graph, node: Node) -> NodeRunner:
        """``node`` alone on LiteRT's default (XNNPACK) path."""
        sub = single_node_graph(graph, node)
        nhwc = nhwc_values(sub)
        interp = _litert("AUTO", content=lower_graph(sub))

        def run(env: Feeds) -> list[np.ndarray]:
            outs = _invoke_litert(interp, [_to_nhwc(env[v.name], v.name in nhwc)
                                           for v in sub.inputs])
            return [_to_nchw(o, v.name in nhwc) for v, o in zip(sub.outputs, outs)]
        return run

    def profile(self, artifact: Artifact, feeds: Feeds, runs: int = 10, warmup: int = 2
                ) -> dict[str, Any]:
        """Per-layer thread CPU time (ns) on LiteRT's default kernels (XNNPACK delegate, one
        thread), the kernels ``latency_ms`` measures (``edgeq.profile`` raw format).

        LiteRT's Python interpreter has no per-op profiler, so each integer node is timed as
        a sub-model: the node alone (``single_node_graph``, lowered by the same writer in the
        layout its tensors have in the whole model: an input normalization's per-channel Mul
        on NHWC costs 13x the same Mul on NCHW, measured on the zoo MobileNetV2), fed that
        layer's inputs as the integer interpreter computes them, ``invoke()`` timed with
        ``time.thread_time_ns`` (XNNPACK runs in the calling thread with one thread). The
        total of a run is the whole model's ``invoke()`` on the same kernels, timed the same
        way; each run times the whole model, then every layer, so both see the same load,
        and every interpreter is timed warm, in the second of two invokes back to back
        (``second_of_two``: on digits_cnn the layers over the total read 0.90-0.96 over 8
        profiles so, and 0.92-1.42 timing first invokes). Each sub-model pays once what the
        whole model pays once per inference (the Python call, the interpreter's and the
        delegate's entry: ~0.9-1.7 us measured, the time of a small layer), so that cost,
        the median ``invoke()`` of a model holding one int8 RESHAPE of 4 bytes
        (``invoke_cost_ns``), timed the same way just before each sub-model, is subtracted
        from every layer (0 at least), and once from the whole model's time, as ORT's run
        call is (so a 10 us inference is not judged with the 1 us entry no layer holds). A
        node the writer cannot take alone is listed in ``not_timed`` (0 ns)."""
        graph = artifact.graph
        env = run_graph(graph, quantize_feeds(graph, feeds), keep=True)
        nhwc = nhwc_values(graph)
        whole = _litert("AUTO", 1, path=artifact.path)
        _set_inputs(whole, [_to_nhwc(env[v.name], v.name in nhwc) for v in graph.inputs])
        subs: list[Any] = []
        not_timed = []
        for node in graph.nodes:
            sub = single_node_graph(graph, node)
            try:  # in the model's layout (an NHWC per-channel Mul is not an NCHW one)
                interp = _litert("AUTO", 1, content=lower_graph(sub, layout=nhwc))
            except EdgeqError:
                subs.append(None)
                not_timed.append(node.name)
                continue
            _set_inputs(interp, [_to_nhwc(env[v.name], v.name in nhwc) for v in sub.inputs])
            subs.append(interp)
        floor = _invoke_cost_model(graph)
        per_run, totals, floors = [], [], []
        for k in range(warmup + runs):
            total = second_of_two(whole.invoke, time.thread_time_ns)
            row = []
            for interp in subs:
                if interp is None:
                    row.append(0)
                    continue
                # the invoke cost in the state each sub-model is timed in: warm, right after
                # a first invoke of the same interpreter
                floors.append(second_of_two(floor.invoke, time.thread_time_ns))
                row.append(second_of_two(interp.invoke, time.thread_time_ns))
            if k >= warmup:
                totals.append(total)
                per_run.append(row)
        cost = int(statistics.median(floors))
        per_run = [[max(0, t - cost) if t else 0 for t in row] for row in per_run]
        raw: dict[str, Any] = {
            "layers": [n.name for n in graph.nodes], "unit": "cpu_ns", "source": "measured",
            "method": "per-layer sub-models (each node alone, in its layout in the model, on "
                      "the integer interpreter's inputs), LiteRT default kernels (XNNPACK "
                      "delegate), 1 thread, less the cost of one invoke() of a one-RESHAPE "
                      "model; total: the whole model on the same kernels, less that cost "
                      "once",
            "invoke_cost_ns": cost, "runs": per_run,
            "totals": [max(0, t - cost) for t in totals]}
        if not_timed:
            raw["not_timed"] = not_timed
        return raw

    def describe(self, artifact: Artifact, checks: Checks) -> dict[str, Any]:
        return {"verification": {"reference_kernels": "BUILTIN_REF",
                                 "per_layer_default_delegate": checks.per_layer(
                                     self.compile_node)}}


class TflmBackend(_TfliteFile):
    """TFLite Micro's Python interpreter, in the smallest arena that allocates the model."""

    name = "tflm"

    def lower(self, graph: Graph, out_dir: str) -> TflmArtifact:
        art = super().lower(graph, out_dir)
        return TflmArtifact(art.path, graph, float_nodes=art.float_nodes,
                            arena_bytes=_arena_of(art.path))

    def open(self, out_dir: str) -> TflmArtifact:
        path = self._artifact_path(out_dir)
        return TflmArtifact(path, load_integer_model(out_dir), arena_bytes=_arena_of(path))

    def session(self, artifact: TflmArtifact, threads: int = 0  # type: ignore[override]
                ):
        from tflite_micro.python.tflite_micro import runtime

        with open(artifact.path, "rb") as f:
            return runtime.Interpreter.from_bytes(f.read(), arena_size=artifact.arena_bytes)

    def _invoke(self, interp, graph: Graph, arrays: list[np.ndarray]) -> list[np.ndarray]:
        for i, a in enumerate(arrays):
            interp.set_input(a, i)
        interp.invoke()
        outs = [interp.get_output(i) for i in range(len(graph.outputs))]
        interp.reset()
        return outs

    def describe(self, artifact: TflmArtifact, checks: Checks  # type: ignore[override]
                 ) -> dict[str, Any]:
        return {"arena_bytes": artifact.arena_bytes}


def _arena_of(path: str) -> int:
    with open(path, "rb") as f:
        return smallest_arena(f.read())


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
