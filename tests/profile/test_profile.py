"""``edgeq profile`` on the generated C library: per-layer CPU time on the host and instruction
counts on QEMU's Cortex-M4, keyed by edgeq's node names; hooks cost nothing when off."""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest

from edgeq import api
from edgeq.backends import get_backend
from edgeq.backends.c.lower import _c_string
from edgeq.targets import load_target
from tests.helpers import run_cli, small_cnn

pytestmark = pytest.mark.backend


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    d = tmp_path_factory.mktemp("prof")
    path, cal = small_cnn(d, stem_out="c")
    targets = "c,cortex-m4" if shutil.which("qemu-system-arm") and shutil.which(
        "arm-none-eabi-gcc") else "c"
    res = run_cli("export", path, "--calib", cal, "-o", d / "out", "--target",
                  targets + ",npu-sim", "--eval-samples", "2")
    assert res.returncode == 0, res.stderr
    return d / "out", targets.split(",")


def test_host_layers_add_up_to_the_inference_and_name_every_node(exported):
    out, _ = exported
    prof = api.profile(out, ["c"], runs=7, warmup=2)
    p = prof["targets"]["c"]
    names = [n.name for n in api.load_model(str(out / "model.eqm")).nodes]
    assert [r["name"] for r in p["layers"]] == names  # edgeq's own names, in order
    assert p["unit"] == "cpu_ns" and p["source"] == "measured"
    # the same clock around the whole call: in every run the layers are >= 95% of it and
    # never more (measured 99.7-100%); the medians (which a busy machine can make disagree a
    # little) add up to the median total within 15%
    be = get_backend("c")
    raw = be.profile(be.open(str(out)), {"x": np.load(out.parent / "cal.npy")[:1]}, runs=7,
                     warmup=2)
    ratios = sorted(sum(run) / total for run, total in zip(raw["runs"], raw["totals"]))
    assert all(r <= 1.0 for r in ratios) and ratios[len(ratios) // 2] >= 0.95, ratios
    s = sum(r["median"] for r in p["layers"])
    assert abs(s - p["total"]["median"]) <= 0.15 * p["total"]["median"]
    assert 0.85 <= p["coverage"] <= 1.15, p["coverage"]
    conv = next(r for r in p["layers"] if r["name"] == "conv2")
    assert conv["macs"] > 0 and conv["p90"] >= conv["median"] > 0 and conv["runs"] == 7
    assert json.loads((out / "profile.json").read_text())["targets"]["c"]["layers"][0][
        "name"] == "stem/conv"
    assert 'data-plot="latency-c"' in (out / "report.html").read_text()  # html refreshed
    trace = json.loads((out / "profile.trace.json").read_text())
    spans = [e for e in trace["traceEvents"] if e["ph"] == "X"]
    assert [e["name"] for e in spans] == names
    assert all(b["ts"] == pytest.approx(a["ts"] + a["dur"], abs=1e-2)
               for a, b in zip(spans, spans[1:]))


def test_cortex_m4_instruction_counts_repeat_exactly(exported):
    out, targets = exported
    if "cortex-m4" not in targets:
        pytest.skip("qemu-system-arm or arm-none-eabi-gcc missing (make installs them)")
    a = api.profile(out, ["cortex-m4"], runs=2, warmup=0)["targets"]["cortex-m4"]
    b = api.profile(out, ["cortex-m4"], runs=2, warmup=0)["targets"]["cortex-m4"]
    assert a["unit"] == "instructions" and a["source"] == "instructions"
    assert [r["median"] for r in a["layers"]] == [r["median"] for r in b["layers"]]
    assert a["total"] == b["total"] and a["coverage"] >= 0.99
    conv = {r["name"]: r["median"] for r in a["layers"]}
    assert conv["conv2"] > conv["stem/conv"] > conv["gap"] > 0  # 2x the MACs, then a pool


def test_npu_sim_profile_is_the_simulation(exported):
    out, _ = exported
    p = api.profile(out, ["npu-sim"])["targets"]["npu-sim"]
    sim = json.loads((out / "npu_sim.json").read_text())
    assert p["source"] == "simulated" and p["total"]["median"] == round(sim["total"]["cycles"])


def test_hooks_cost_nothing_when_off(exported):
    out, _ = exported
    be = get_backend("c")
    plain = be.build(out / "c")
    nm = subprocess.run(["nm", plain], capture_output=True, text=True).stdout
    assert "edgeq_profile" not in nm and "edgeq_layer_names" not in nm
    prof = be.build(out / "c", profile=(1, 0))
    assert "edgeq_profile_counts" in subprocess.run(["nm", prof], capture_output=True,
                                                    text=True).stdout


def test_layer_names_are_escaped_for_c():
    assert _c_string('odd "name" \\ ?') == '"odd \\042name\\042 \\134 \\077"'


def test_cli_profile_table_and_errors(exported):
    out, _ = exported
    res = run_cli("profile", out, "--target", "c", "--runs", "3")
    assert res.returncode == 0, res.stderr
    assert "c (cpu_ns)" in res.stdout and "in named layers" in res.stdout
    res = run_cli("profile", out, "--target", "tflm")
    assert res.returncode == 2 and "not available yet" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    res = run_cli("profile", out, "--target", "c", "--runs", "0")
    assert res.returncode == 2 and "--runs 0" in res.stderr


def test_serial_path_returns_the_semihosting_counts(exported, tmp_path):
    """The device path end to end: the UART firmware on QEMU's MPS2-AN386, its UART0 on a TCP
    socket, read by the same serial code a board on /dev/ttyACM0 uses (pyserial)."""
    import socket
    import time

    from edgeq.ir.graph import EdgeqError

    out, targets = exported
    if "cortex-m4" not in targets:
        pytest.skip("qemu-system-arm or arm-none-eabi-gcc missing (make installs them)")
    pytest.importorskip("serial", reason="pyserial is in the device extra (make installs it)")
    be = get_backend("cortex-m4")
    art = be.open(str(out))
    x = {art.graph.inputs[0].name: np.load(out.parent / "cal.npy")[:1]}
    fw = be.firmware(art, x, runs=2, warmup=0, out=str(tmp_path / "fw.elf"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    qemu = subprocess.Popen(["qemu-system-arm", "-machine", "mps2-an386", "-icount",
                             "shift=10,sleep=off", "-nographic", "-monitor", "none", "-serial",
                             f"tcp:127.0.0.1:{port},server=on,wait=on", "-kernel", fw],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    serial_counts = None
    try:
        for _ in range(100):  # QEMU waits for its one client: connect once it listens
            try:
                serial_counts = be.read_device(art, f"serial:socket://127.0.0.1:{port}", runs=2,
                                               timeout_s=120)
                break
            except EdgeqError as e:
                if "cannot read the serial port" not in str(e):
                    raise
                time.sleep(0.1)
    finally:
        qemu.kill()
        qemu.wait()
    assert serial_counts is not None
    semi = be.profile(art, x, runs=2, warmup=0)
    assert serial_counts["layers"] == semi["layers"]
    assert serial_counts["runs"] == semi["runs"] and serial_counts["totals"] == semi["totals"]
    assert semi["runs"][0] == semi["runs"][1]  # every run the same inference, same count
    assert serial_counts["source"] == "instructions (serial)"


def test_energy_per_layer_estimated_from_a_board_and_measured_from_a_trace(exported, tmp_path):
    out, targets = exported
    if "cortex-m4" not in targets:
        pytest.skip("qemu-system-arm or arm-none-eabi-gcc missing (make installs them)")
    (tmp_path / "board.toml").write_text(
        open(load_target("stm32f446re").path).read().replace(
            "run_current_ua_per_mhz = 0.0", "run_current_ua_per_mhz = 100.0"))
    p = api.profile(out, ["cortex-m4"], runs=1, warmup=0,
                    board=str(tmp_path / "board.toml"))["targets"]["cortex-m4"]
    assert p["energy"].startswith("estimated (stm32f446re")
    for r in p["layers"]:  # instructions x 3.3 V x 100 uA/MHz x 1e-12 J, in uJ
        assert r["energy_uj"] == pytest.approx(r["median"] * 3.3 * 100 * 1e-6, abs=1e-6)
    plain = api.profile(out, ["cortex-m4"], runs=1, warmup=0)["targets"]["cortex-m4"]
    assert plain["energy"].startswith("not estimated") and "energy_uj" not in plain["layers"][0]
    # a constant 2 W trace over the inference at the board's clock: energy = 2 W x time
    t = p["total"]["median"] / 180e6
    (tmp_path / "trace.csv").write_text("s,W\n0,2\n" + f"{t * 1.01},2\n")
    m = api.profile(out, ["cortex-m4"], runs=1, warmup=0, board=str(tmp_path / "board.toml"),
                    power_trace=str(tmp_path / "trace.csv"))["targets"]["cortex-m4"]
    assert m["energy"] == "measured (power trace)"
    for r in m["layers"]:
        assert r["energy_uj"] == pytest.approx(2 * r["median"] / 180e6 * 1e6, abs=2e-6)
    sim = api.profile(out, ["npu-sim"])["targets"]["npu-sim"]
    assert sim["energy"] == "simulated" and sim["energy_uj"] > 0
