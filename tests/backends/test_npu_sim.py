"""The NPU simulator's shared accounting (edgeq/backends/npu_sim/simulate.py), its export
target and its CLI: energy is exactly counts x table, invariants hold, outputs are the
integer interpreter's, reports are deterministic, bad input is one error line."""

from __future__ import annotations

import json

import numpy as np
import pytest
from onnx import helper

from edgeq import api
from edgeq.backends.npu_sim import simulate
from edgeq.ir.graph import EdgeqError
from edgeq.targets import load_target
from tests.helpers import onnx_model, run_cli

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    d = tmp_path_factory.mktemp("npu")
    rng = np.random.default_rng(0)
    m = onnx_model([
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("Conv", ["r", "dw"], ["d"], name="dw", pads=[1, 1, 1, 1], group=16),
        helper.make_node("Add", ["d", "r"], ["a"], name="add"),
        helper.make_node("GlobalAveragePool", ["a"], ["p"], name="gap"),
        helper.make_node("Flatten", ["p"], ["f"], name="flat"),
        helper.make_node("Gemm", ["f", "fc"], ["y"], name="fc")],
        {"x": (1, 3, 12, 12)}, ["y"],
        {"w": rng.normal(size=(16, 3, 3, 3)).astype(np.float32) * 0.3,
         "dw": rng.normal(size=(16, 1, 3, 3)).astype(np.float32) * 0.3,
         "fc": rng.normal(size=(16, 10)).astype(np.float32) * 0.3})
    path = d / "m.onnx"
    path.write_bytes(m.SerializeToString())
    fg, _ = api.optimize(api.load(str(path)))
    cal = rng.normal(size=(8, 3, 12, 12)).astype(np.float32)
    res = api.quantize(fg, cal, eval_samples=2, rounding="tflite")
    api.save(res.graph, str(d / "m.eqm"))
    np.save(d / "cal.npy", cal)
    return {"graph": res.graph, "eqm": d / "m.eqm", "onnx": path, "cal": d / "cal.npy"}


@pytest.mark.parametrize("npu", ["ethos-u55-128", "systolic-32x32-ws"])
def test_energy_is_exactly_counts_times_the_table(model, npu):
    t = load_target(npu)
    sim = simulate(model["graph"], t)
    for r in sim["layers"]:
        e = r["energy_pj"]
        mac = r["macs"] * t.energy.mac_int8_pj  # int8 activations
        sram = off = 0.0
        for mem, rw in r["bytes"].items():
            pj = (rw["read"] + rw["write"]) * t.energy.pj_per_byte(t.memories[mem])
            if t.memories[mem].kind == "sram":
                sram += pj
            else:
                off += pj
        assert e["sram"] == pytest.approx(sram, abs=1e-3, rel=1e-6), r["name"]
        assert e["offchip"] == pytest.approx(off, abs=1e-3, rel=1e-6), r["name"]
        assert e["mac"] >= mac - 1e-3  # plus element ops x add_int32_pj
        assert e["total"] == pytest.approx(e["mac"] + e["sram"] + e["offchip"], abs=2e-3)
    tot = sim["total"]
    assert tot["cycles"] == pytest.approx(sum(r["cycles"] for r in sim["layers"]), abs=0.5)
    assert tot["energy_pj"]["total"] == pytest.approx(
        sum(r["energy_pj"]["total"] for r in sim["layers"]), abs=0.01)
    assert tot["macs"] == sum(r["macs"] for r in sim["layers"]) > 0
    assert "estimate" in sim["note"]


def test_per_byte_energy_follows_horowitz():
    t = load_target("ethos-u55-128")
    assert t.energy.pj_per_byte(t.memories["flash"]) == 1300 / 8
    assert t.energy.pj_per_byte(t.memories["sram"]) == 100 / 8  # 2 MiB: the 1 MB row
    small = load_target("ethos-u55-128", {"memory.sram.size_bytes": 8192})
    assert small.energy.pj_per_byte(small.memories["sram"]) == 10 / 8


def test_weights_in_sram_cost_less_energy_than_in_flash_and_dram_high_costs_more(model,
                                                                                 tmp_path):
    base = simulate(model["graph"], "ethos-u55-128")["total"]["energy_pj"]
    on_chip = simulate(model["graph"], load_target("ethos-u55-128", {
        "placement.weights": "sram"}))["total"]["energy_pj"]
    assert on_chip["total"] < base["total"] and on_chip["offchip"] < base["offchip"]
    text = open(load_target("ethos-u55-128").path).read().replace(
        'energy = "horowitz-45nm"', 'energy = "horowitz-45nm-dram-high"')
    (tmp_path / "hi.toml").write_text(text)
    high = simulate(model["graph"], str(tmp_path / "hi.toml"))["total"]["energy_pj"]
    assert high["offchip"] == pytest.approx(2 * base["offchip"], rel=1e-6)
    assert high["mac"] == base["mac"]


def test_more_macs_per_cycle_never_slower_and_the_sweep_is_the_product(model):
    rows = api.simulate(model["graph"], "ethos-u55-128",
                        sweep=["macs=64,128,256", "sram=64KB,256KB"])["sweep"]
    assert [r["settings"]["ethos_u.macs_per_cycle"] for r in rows] == [64, 64, 128, 128, 256,
                                                                         256]
    assert rows[1]["settings"]["memory.sram.size_bytes"] == 256 * 1024
    by_macs = [r["cycles"] for r in rows[::2]]
    assert by_macs == sorted(by_macs, reverse=True)


def test_roofline_fields(model):
    sim = simulate(model["graph"], "systolic-32x32-ws")
    assert sim["machine_balance_macs_per_offchip_byte"] == 1024 / 10
    conv = next(r for r in sim["layers"] if r["name"] == "conv")
    assert conv["intensity_macs_per_offchip_byte"] == pytest.approx(
        conv["macs"] / sum(v["read"] + v["write"] for k, v in conv["bytes"].items()
                           if k == "dram"), rel=1e-3)
    assert 0 < conv["mac_utilization"] <= 1 and conv["bound"] in ("compute", "memory:dram",
                                                                   "memory:sram")


def test_float_models_and_mcu_targets_are_refused(model):
    fg, _ = api.optimize(api.load(str(model["onnx"])))
    with pytest.raises(EdgeqError, match="integer models"):
        simulate(fg, "ethos-u55-128")
    with pytest.raises(EdgeqError, match="is a mcu, not an NPU"):
        simulate(model["graph"], "stm32f446re")


def test_cli_simulate_table_json_and_errors(model, tmp_path):
    res = run_cli("simulate", model["eqm"], "--npu", "ethos-u55-128")
    assert res.returncode == 0, res.stderr
    assert "total:" in res.stdout and "MAC util %" in res.stdout and "estimate" in res.stdout
    res = run_cli("simulate", model["eqm"], "--npu", "systolic-16x8-ws", "--json")
    assert json.loads(res.stdout)["target"] == "systolic-16x8-ws"
    (tmp_path / "bad.toml").write_text(open(load_target("ethos-u55-128").path).read().replace(
        "macs_per_cycle = 128", "macs_per_cycle = -5"))
    res = run_cli("simulate", model["eqm"], "--npu", tmp_path / "bad.toml")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    line = res.stderr.strip()
    assert line.startswith("edgeq: error: bad.toml [ethos_u] macs_per_cycle") and \
        len(line.splitlines()) == 1, line
    res = run_cli("simulate", model["eqm"], "--sweep", "macs=abc")
    assert res.returncode == 2 and "--sweep macs" in res.stderr


@pytest.mark.backend
def test_export_npu_sim_is_bit_exact_and_deterministic(model, tmp_path):
    outs = []
    for name in ("a", "b"):
        res = run_cli("export", model["onnx"], "--calib", model["cal"], "-o", tmp_path / name,
                      "--target", "npu-sim", "--npu", "ethos-u55-256", "--eval-samples", "2",
                      "--deterministic-report")
        assert res.returncode == 0, res.stderr
        outs.append(((tmp_path / name / "npu_sim.json").read_bytes(),
                     (tmp_path / name / "report.json").read_bytes()))
    assert outs[0] == outs[1]
    rep = json.loads(outs[0][1])["targets"]["npu-sim"]
    assert rep["npu"] == "ethos-u55-256"
    for part in ("calibration", "held_out"):
        assert rep["verification"][part]["max_abs_diff_lsb"] == 0, rep["verification"]
    assert rep["simulated"]["cycles"] > 0
    res = run_cli("run", tmp_path / "a", "--target", "npu-sim", "--input", model["cal"],
                  "--output", tmp_path / "y.npy", "--raw")
    assert res.returncode == 0, res.stderr
    ref = api.run(api.load_model(str(tmp_path / "a" / "model.eqm")), np.load(model["cal"]),
                  raw=True)[0]
    assert np.array_equal(np.load(tmp_path / "y.npy"), ref)
    res = run_cli("export", model["onnx"], "--calib", model["cal"], "-o", tmp_path / "c",
                  "--target", "npu-sim", "--npu", "nope")
    assert res.returncode == 2 and "unknown target 'nope'" in res.stderr
