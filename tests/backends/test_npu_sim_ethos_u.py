"""The Ethos-U cost model (``edgeq.backends.npu_sim.ethos_u``): its formulas on hand-made
layers, and one comparison with Arm Vela on a tiny conv model (``backend`` tier)."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from edgeq.backends.npu_sim import ethos_u
from edgeq.backends.npu_sim.simulate import simulate
from edgeq.ops.mapping import Layer
from edgeq.targets import load_target


def conv(cin: int, cout: int, hw: int = 16, k: int = 1, groups: int = 1) -> Layer:
    kind = "depthwise" if groups > 1 and groups == cin else "conv"
    macs = hw * hw * cout * (cin // groups) * k * k
    return Layer(f"c{cin}x{cout}", "QConv", kind, (1, cin, hw, hw), None, (1, cout, hw, hw),
                 8, 8, macs, cout * (cin // groups) * k * k + 4 * cout, (k, k), groups=groups)


def fc(k: int, n: int) -> Layer:
    return Layer("fc", "QGemm", "matmul", (1, k), None, (1, n), 8, 8, k * n, k * n + 4 * n)


def simulate_layer(lay: Layer, t) -> str:
    from edgeq.backends.npu_sim.simulate import layer_report

    c = ethos_u.cost(lay, t)
    return layer_report(lay, c, t, ethos_u.peak_macs_per_cycle(t), True)["bound"]


def cycles(lay: Layer, npu: str = "ethos-u55-128", **over) -> float:
    return ethos_u.cost(lay, load_target(npu, over)).mac_cycles


def test_output_depth_that_misses_the_micro_block_wastes_its_lanes():
    # 20 channels run on three 8-deep micro-blocks, like 24: more cycles than 20/24 of it
    t = load_target("ethos-u55-128")
    c20, c24 = ethos_u.cost(conv(32, 20), t), ethos_u.cost(conv(32, 24), t)
    assert c20.mac_cycles > c24.mac_cycles * 20 / 24 * 1.02
    assert c20.utilization < c24.utilization


def test_depthwise_is_slower_per_mac_than_convolution():
    dw, cv = conv(64, 64, k=3, groups=64), conv(64, 64, k=3)
    assert cycles(dw) / dw.macs > 4 * cycles(cv) / cv.macs


def test_more_macs_per_cycle_is_never_slower():
    lay = conv(64, 64, k=3)
    by_macs = [cycles(lay, **{"ethos_u.macs_per_cycle": m}) for m in (64, 128, 256, 512)]
    assert by_macs == sorted(by_macs, reverse=True) and by_macs[0] > by_macs[-1]


def test_a_big_fully_connected_layer_is_bound_by_its_weight_stream():
    lay = fc(1024, 256)
    t = load_target("ethos-u55-128")
    c = ethos_u.cost(lay, t)
    flash = c.traffic["flash"][0]
    assert flash == pytest.approx(1024 * 256 * t.params["weight_compression_ratio"]
                                  + 10 * 256, rel=0.01)
    assert flash / t.memories["flash"].bytes_per_cycle > 3 * c.mac_cycles
    layer = simulate_layer(lay, t)
    assert layer == "memory:flash"


def test_the_weight_stream_counts_padding_and_16_byte_alignment():
    a = ethos_u.Arch.of(load_target("ethos-u55-128"))
    # depth-first, nothing to pad: the weights at 1 byte each, the scales 10 bytes a channel
    op = ethos_u.Op(ethos_u.CONV, (8, 8, 64), (8, 8, 64), (3, 3))
    dense = ethos_u.encoded_weight_bytes(a, op, conv(64, 64, hw=8, k=3), False, 64)
    assert dense == 64 * 64 * 9 + 640
    # Cin 1 padded to 8 and 9 kernel elements to 12 (part-kernel): the padding costs little,
    # and less per zero the more of the stream it is (Vela's codec: runs of zeros)
    op1 = ethos_u.Op(ethos_u.CONV, (10, 10, 1), (8, 8, 16), (3, 3))
    thin = ethos_u.encoded_weight_bytes(a, op1, conv(1, 16, hw=8, k=3), True, 16)
    assert 16 * 9 + 160 < thin < 16 * 12 * 8 + 160
    # one slice per OFM depth step, each padded to 16 bytes
    sliced = ethos_u.encoded_weight_bytes(a, op, conv(64, 64, hw=8, k=3), False, 16)
    assert sliced == dense and sliced % 16 == 0


def test_the_weight_stream_estimate_follows_vela_s_codec():
    mlw = pytest.importorskip("ethosu.mlw_codec", reason="Arm Vela's weight codec not installed")
    a = ethos_u.Arch.of(load_target("ethos-u55-128"))
    rng = np.random.default_rng(0)
    # full-range int8 weights (per-channel quantized), as the model zoo's
    for cin, cout, k, part in ((32, 64, 3, False), (16, 32, 3, True), (3, 16, 3, True),
                               (64, 10, 1, False)):
        w = np.clip(np.round(rng.normal(0, 60, (cout, k, k, cin))), -127, 127).astype(np.int16)
        stream, _ = mlw.reorder_encode(8, 8, w, cout, False, part, 8, 8, 8)
        vela = len(stream) + -(-10 * cout // 16) * 16
        op = ethos_u.Op(ethos_u.CONV, (8, 8, cin), (8, 8, cout), (k, k))
        ours = ethos_u.encoded_weight_bytes(a, op, conv(cin, cout, hw=8, k=k), part, cout)
        assert abs(ours / vela - 1) < 0.15, (cin, cout, k, ours, vela)


def test_a_batched_fully_connected_layer_takes_its_rows_as_a_plane():
    # 16 rows as 4 x 4 (Vela's batching split): one OFM block, one scale fetch
    lay = Layer("fc", "QGemm", "matmul", (1, 16, 128), None, (1, 16, 64), 8, 8,
                16 * 128 * 64, 128 * 64 + 4 * 64)
    c = ethos_u.cost(lay, load_target("ethos-u65-256"))
    assert c.detail["ofm_blocks"] == 1.0 and c.detail["ofm_block"][:2] == [4, 4]


def test_weights_dmad_into_sram_hide_behind_the_previous_layer():
    from edgeq.backends.npu_sim.simulate import Prefetch

    p = Prefetch(first_cycles=600.0, total_cycles=1000.0, tail_cycles=300.0)
    assert p.compute_with(2000.0, slack=0.0) == 2600.0          # nothing to hide behind
    assert p.compute_with(2000.0, slack=400.0) == 2200.0        # partly hidden
    assert p.compute_with(2000.0, slack=5000.0) == 2000.0       # wholly hidden
    assert p.compute_with(100.0, slack=600.0) == 700.0          # the transfer's tail shows


def test_pad_fills_wait_for_the_weight_memory_latency():
    lay = Layer("pad", "Pad", "movement", (1, 1, 8, 8), None, (1, 1, 10, 10), 8, 8, 0, 0)
    near = ethos_u.cost(lay, load_target("ethos-u65-256", {"memory.dram.read_latency_cycles": 100}))
    far = ethos_u.cost(lay, load_target("ethos-u65-256", {"memory.dram.read_latency_cycles": 600}))
    assert near.detail["pad_fills"] == 4
    # four fills, each: the first IFM block read plus 2.5 blocks of command issue paced by it
    # (Vela: 1.875 cycles per latency cycle per fill, measured with a custom vela.ini)
    per_fill = (far.mac_cycles - near.mac_cycles) / 500 / 4
    assert 1.7 < per_fill < 2.0


def test_the_block_search_respects_the_shared_buffer():
    a = ethos_u.Arch.of(load_target("ethos-u55-64"))
    op = ethos_u.Op(ethos_u.CONV, (64, 64, 256), (64, 64, 256), (3, 3))
    ob, ib, _ = ethos_u.block_config(a, op)
    assert all(o % u == 0 for o, u in zip(ob, a.ublock))
    assert ethos_u._fits(a, op, ob, ib)


# --- against Vela ------------------------------------------------------------------------------
def _tiny_model(path: str) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array(rng.normal(0, 0.2, (32, 8, 3, 3)).astype(np.float32), "w1")
    w2 = numpy_helper.from_array(rng.normal(0, 0.2, (64, 32, 1, 1)).astype(np.float32), "w2")
    b1 = numpy_helper.from_array(np.zeros(32, np.float32), "b1")
    b2 = numpy_helper.from_array(np.zeros(64, np.float32), "b2")
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["y1"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["y1"], ["r1"]),
             helper.make_node("Conv", ["r1", "w2", "b2"], ["y"])]
    g = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [1, 8, 24, 24])], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, [1, 64, 24, 24])], [w1, b1, w2, b2])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), path)


@pytest.mark.backend
def test_conv_layers_within_20_percent_of_vela(tmp_path):
    vela = os.path.join(os.path.dirname(sys.executable), "vela")
    vela = vela if os.path.exists(vela) else shutil.which("vela")
    if not vela:
        pytest.skip("Arm Vela is not installed (pip install ethos-u-vela)")
    from edgeq import api
    from edgeq.backends.tflite import write_tflite

    _tiny_model(str(tmp_path / "m.onnx"))
    fg, _ = api.optimize(api.load(str(tmp_path / "m.onnx")))
    cal = np.random.default_rng(1).normal(size=(8, 8, 24, 24)).astype(np.float32)
    g = api.quantize(fg, cal, eval_samples=2, rounding="tflite").graph
    tfl = write_tflite(g, str(tmp_path))
    t = load_target("ethos-u55-128")
    p = t.params
    res = subprocess.run([vela, tfl, "--accelerator-config", p["vela_accelerator"],
                          "--system-config", p["vela_system_config"], "--memory-mode",
                          p["vela_memory_mode"], "--verbose-performance", "--output-dir",
                          str(tmp_path / "out")], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    with open(tmp_path / "out" / "model_per-layer.csv") as f:
        vela_cycles = {r["Name"]: float(r["Op Cycles"]) for r in csv.DictReader(f)}
    out_name = {n.name: n.outputs[0].name for n in g.nodes}
    checked = 0
    for r in simulate(g, t)["layers"]:
        if r["kind"] != "conv":
            continue
        v = vela_cycles[out_name[r["name"]]]
        assert abs(r["cycles"] / v - 1) <= 0.20, (r["name"], r["cycles"], v)
        checked += 1
    assert checked == 2


def test_maps_between_layers_are_bricks_and_the_graph_input_is_not():
    def add(**flags) -> Layer:
        return Layer("add", "QAdd", "elementwise", (1, 8, 24, 24), (1, 8, 24, 24),
                     (1, 8, 24, 24), 8, 8, 0, 0, **flags)

    t = load_target("ethos-u55-128")
    inner = ethos_u.cost(add(), t).mac_cycles
    edge = ethos_u.cost(add(ifm_is_graph_input=True, ofm_is_graph_output=True), t).mac_cycles
    # Vela stores the 8 channels between layers in NHCWB16 bricks: 16 deep, twice the work
    assert inner == pytest.approx(2 * edge, rel=0.05)
