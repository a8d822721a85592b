"""LiteRT's reference kernels and TFLite Micro compute two ops differently from one .tflite
file (docs/numerics.md, "Per-runtime rules"); edgeq models each runtime exactly:

- MUL: LiteRT derives the multiplier from ``s_a * s_b / s_y`` in float32, TFLite Micro in float64;
- FULLY_CONNECTED: LiteRT requantizes in float64 (``round(acc * M)``), TFLite Micro with the
  fixed-point multiplier and two roundings.

Each test builds a one-node integer graph whose scales make the two rules disagree on some of
the inputs (asserted, so the test cannot pass vacuously), then checks that LiteRT equals
``TfliteBackend().reference_graph`` and TFLite Micro equals the integer model itself, 0 LSB.
"""

import numpy as np
import pytest

from edgeq import serialize
from edgeq.backends.tflite import TfliteBackend, TflmBackend
from edgeq.backends.tflite.lower import lower_graph
from edgeq.ir.graph import DType, Graph, QParams, TensorType
from edgeq.numerics.dyadic import (effective_scale, effective_scale_f32, quantize_multiplier,
                                   quantize_multipliers)
from edgeq.quant.pipeline import dequantize_array
from edgeq.runtime.reference import run_graph

pytest.importorskip("ai_edge_litert", reason="the TFLite backend needs ai-edge-litert")
pytest.importorskip("tflite_micro", reason="the TFLM target needs tflite-micro")

I8 = DType.INT8


def _input(g: Graph, name: str, shape, scale: float, zp: int):
    v = g.add_input(name, TensorType(I8, shape))
    v.qparams = QParams((scale,), (zp,))
    return v


def _finish(g: Graph, node, scale: float, zp: int) -> Graph:
    y = node.outputs[0]
    y.qparams = QParams((scale,), (zp,))
    g.outputs = [y]
    g.metadata["rounding"] = "tflite"
    return g


def _mul_graph(s_y: float) -> Graph:
    g = Graph("mul")
    a = _input(g, "a", (1, 256, 256), 0.053075, 28)
    b = _input(g, "b", (1, 256, 256), 0.0046993, -128)
    m, n = quantize_multiplier(effective_scale(0.053075, 0.0046993, denominator=s_y))
    node = g.add_node("QMul", [a, b], [TensorType(I8, (1, 256, 256))], dict(
        a_zp=28, b_zp=-128, y_zp=3, multiplier=m, shift=n, act_min=-128, act_max=127,
        dtype="int8", rounding="tflite"), name="mul")
    return _finish(g, node, s_y, 3)


def _fc_graph(rng: np.random.Generator) -> Graph:
    """Half the channels have power-of-two scales (exact float64 ties: rounding half away from
    zero shows), half have arbitrary ones (the two roundings of the fixed-point rule show)."""
    g = Graph("fc")
    x = _input(g, "x", (256, 8), 0.25, -5)
    w_scales = tuple([2.0 ** -8] * 8 + [float(np.float32(s)) for s in rng.uniform(2e-3, 8e-3, 8)])
    w = g.add_const("w", rng.integers(-20, 21, (16, 8)).astype(np.int8))
    w.qparams = QParams(w_scales, (0,) * 16, axis=0)
    b = g.add_const("b", rng.integers(-3000, 3000, 16).astype(np.int32))
    b.qparams = QParams(tuple(0.25 * s for s in w_scales), (0,) * 16, axis=0)
    m, n = quantize_multipliers(np.array([effective_scale(0.25, s, denominator=0.125)
                                          for s in w_scales]))
    node = g.add_node("QGemm", [x, w, b], [TensorType(I8, (256, 16))], dict(
        x_zp=-5, y_zp=0, multiplier=m, shift=n, act_min=-128, act_max=127, dtype="int8",
        rounding="tflite"), name="fc")
    return _finish(g, node, 0.125, 0)


def _both_runtimes(g: Graph, feeds_int: dict, tmp_path) -> tuple[dict, dict]:
    serialize.save(g, str(tmp_path / "model.eqm"))
    path = str(tmp_path / "model.tflite")
    with open(path, "wb") as f:
        f.write(lower_graph(g))
    feeds = {v.name: dequantize_array(feeds_int[v.name], v.qparams) for v in g.inputs}
    out = {}
    for be in (TfliteBackend(), TflmBackend()):
        art = be.open(str(tmp_path))
        out[be.name] = be.run(art, feeds, raw=True, session=be.session(art))
    return out["tflite"], out["tflm"]


def _first(scales, differs):
    return next(s for s in scales if differs(s))


def _mul_feeds() -> dict:
    grid = np.arange(-128, 128, dtype=np.int8)
    return {"a": np.broadcast_to(grid[:, None], (256, 256))[None].copy(),
            "b": np.broadcast_to(grid[None, :], (256, 256))[None].copy()}


def _disagreeing_mul_graph(feeds) -> Graph:
    """A MUL whose float32 and float64 multipliers differ and give different integers."""
    def differs(s_y):
        g = _mul_graph(s_y)
        m32 = quantize_multiplier(effective_scale_f32(0.053075, 0.0046993, s_y))
        return m32 != (g.nodes[0].attrs["multiplier"], g.nodes[0].attrs["shift"]) and (
            run_graph(g, feeds)["mul"] != run_graph(TfliteBackend().reference_graph(g),
                                                    feeds)["mul"]).any()

    return _mul_graph(_first((float(np.float32(0.0548 + k * 1e-6)) for k in range(200)),
                             differs))


def test_litert_mul_derives_its_multiplier_in_float32_tflm_in_float64(tmp_path):
    feeds = _mul_feeds()
    g = _disagreeing_mul_graph(feeds)
    litert, tflm = _both_runtimes(g, feeds, tmp_path)
    want_litert = run_graph(TfliteBackend().reference_graph(g), feeds)["mul"]
    want_tflm = run_graph(g, feeds)["mul"]
    assert (want_litert != want_tflm).any()  # the two rules disagree on these inputs
    np.testing.assert_array_equal(litert["mul"], want_litert)
    np.testing.assert_array_equal(tflm["mul"], want_tflm)


def test_litert_fully_connected_requantizes_in_float64_tflm_in_fixed_point(tmp_path):
    rng = np.random.default_rng(5)
    feeds = {"x": rng.integers(-128, 128, (256, 8)).astype(np.int8)}
    g = _fc_graph(np.random.default_rng(7))
    litert, tflm = _both_runtimes(g, feeds, tmp_path)
    want_litert = run_graph(TfliteBackend().reference_graph(g), feeds)["fc"]
    want_tflm = run_graph(g, feeds)["fc"]
    single = g.copy()
    single.nodes[0].attrs["rounding"] = "edgeq"
    # float64 differs from both fixed-point rules on these inputs (ties and double rounding)
    assert (want_litert != want_tflm).any()
    assert (want_litert != run_graph(single, feeds)["fc"]).any()
    np.testing.assert_array_equal(litert["fc"], want_litert)
    np.testing.assert_array_equal(tflm["fc"], want_tflm)


def test_export_reference_resumes_from_the_first_differing_output():
    """Export computes LiteRT's reference outputs from the integer model's own values: the MUL
    runs again and, where its output differs, the graph runs from there; same integers as a
    full run of the reference graph either way."""
    from edgeq.export import ReferenceRun

    differing = _mul_feeds()
    g = _disagreeing_mul_graph(differing)
    rg = TfliteBackend().reference_graph(g)
    agreeing = {"a": np.full((1, 256, 256), 28, np.int8),
                "b": np.full((1, 256, 256), -128, np.int8)}  # zero times zero
    assert (run_graph(g, differing)["mul"] != run_graph(rg, differing)["mul"]).any()
    for feeds in (differing, agreeing):
        got = ReferenceRun(g, rg).outputs(feeds, run_graph(g, feeds, keep=True))["mul"]
        np.testing.assert_array_equal(got, run_graph(rg, feeds)["mul"])
