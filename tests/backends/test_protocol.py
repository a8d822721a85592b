"""The backend protocol: a third-party backend plugged in through the ``edgeq.backends`` entry
points gets the whole export (checks, describe, options at construction) with nothing but the
protocol; the shared per-layer check and one-node subgraphs."""

import importlib.metadata

import numpy as np

from edgeq import quantize, serialize
from edgeq.backends import get_backend
from edgeq.backends.base import (Artifact, Backend, Refusal, activation_inputs,
                                 per_layer_check, single_node_graph)
from edgeq.export import export
from edgeq.quant.calibrate import CalibrationData
from edgeq.quant.pipeline import dequantize_array, quantize_feeds
from edgeq.runtime.reference import run_graph
from tests.helpers import quantized_case as _quantized


class EchoBackend(Backend):
    """A plugin whose runtime is edgeq's own integer interpreter (exact by construction)."""

    name = "echo"
    artifact = "model.echo.eqm"

    def supports(self, graph):
        if graph.metadata.get("quantized") != "int":
            return [Refusal("", "", "the graph is not quantized")]
        return [Refusal(n.op, n.name, "no echo kernel") for n in graph.nodes if n.op == "QMul"]

    def lower(self, graph, out_dir):
        path = f"{out_dir}/{self.artifact}"
        serialize.save(graph, path)
        return Artifact(path, graph, op_counts={"nodes": len(graph.nodes)})

    def session(self, artifact, threads=0):
        return serialize.load(artifact.path)

    def run(self, artifact, feeds, raw=False, session=None):
        g = session or self.session(artifact)
        out = run_graph(g, quantize_feeds(g, feeds))
        return out if raw else {v.name: dequantize_array(out[v.name], v.qparams)
                                for v in g.outputs}

    def describe(self, artifact, checks):
        return {"allow_fallback": self.allow_fallback,
                "verification": {"per_layer": checks.per_layer(_interpreter_node)}}


def _interpreter_node(graph, node):
    sub = single_node_graph(graph, node)
    ins = activation_inputs(node)

    def run(env):
        out = run_graph(sub, {v.name: env[v.name] for v in ins})
        return [out[v.name] for v in node.outputs]
    return run


def _plug_in(monkeypatch):
    ep = importlib.metadata.EntryPoint(name="echo", group="edgeq.backends",
                                       value="tests.backends.test_protocol:EchoBackend")
    real = importlib.metadata.entry_points
    monkeypatch.setattr(importlib.metadata, "entry_points",
                        lambda **kw: [ep] if kw.get("group") == "edgeq.backends" else real(**kw))


def test_a_plugin_backend_is_exported_to_verified_and_described(monkeypatch, tmp_path):
    _plug_in(monkeypatch)
    g, _, x = _quantized("conv_relu_pad")
    report = export(g, CalibrationData(g, arrays={"x": x}), ["echo"], str(tmp_path),
                    {"eval_samples": 2, "equalize": False}, allow_fallback=True)
    t = report["targets"]["echo"]
    for part in ("calibration", "held_out"):
        assert t["verification"][part]["max_abs_diff_lsb"] == 0
    assert t["verification"]["per_layer"]["max_abs_diff_lsb"] == 0
    assert t["sqnr_db_vs_float"] == report["integer_interpreter"]["sqnr_db_vs_float"]
    assert t["allow_fallback"] is True and t["op_counts"]["nodes"] > 0
    assert t["latency_ms"] > 0 and t["size_bytes"] == (tmp_path / "model.echo.eqm").stat().st_size
    be = get_backend("echo")
    assert be.allow_fallback is False
    art = be.open(str(tmp_path))  # the default open: the artifact and model.eqm
    theirs = be.run_many(art, [{"x": x[i:i + 1]} for i in range(3)], raw=True)
    assert len(theirs) == 3


def test_refusals_name_op_and_node(monkeypatch):
    _plug_in(monkeypatch)
    g, _, x = _quantized("mul_per_channel_and_scalar")
    reasons = get_backend("echo").supports(quantize(g, x, equalize=False).graph)
    assert reasons and all(str(r) == f"QMul '{r.node}': no echo kernel" for r in reasons)
    assert [str(r) for r in get_backend("echo").supports(g)] == ["the graph is not quantized"]


def test_single_node_graph_copies_only_that_node():
    _, res, x = _quantized("add_sub_residual")
    ig = res.graph
    node = ig.nodes[len(ig.nodes) // 2]
    sub = single_node_graph(ig, node)
    names = {v.name for v in node.inputs + node.outputs if v is not None}
    assert set(sub.values) == names and [n.name for n in sub.nodes] == [node.name]
    assert all(sub.values[k] is not ig.values[k] for k in names)  # copies, not the originals
    assert all(u in ig.nodes for v in node.outputs for u, _ in v.uses)  # the graph is untouched
    env = run_graph(ig, quantize_feeds(ig, {"x": x[:1]}), keep=True)
    out = run_graph(sub, {v.name: env[v.name] for v in sub.inputs})
    for v in node.outputs:
        np.testing.assert_array_equal(out[v.name], env[v.name])
    check = per_layer_check(ig, [env], _interpreter_node)
    assert check == {"max_abs_diff_lsb": 0, "worst_layer": None, "samples": 1}
