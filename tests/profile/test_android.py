"""Phones over adb: LiteRT's benchmark_model per-operator table mapped to edgeq's layers. The
parser runs on a recorded-format output (tests/profile/data/: the stats table benchmark_model
prints with --enable_op_profiling=true); the adb path runs end to end against a stand-in adb
on PATH that answers as a phone would; without adb the command says so in one line."""

from __future__ import annotations

import os
import stat

import pytest

from edgeq.ir.graph import DType, EdgeqError, Graph, TensorType
from edgeq.profile.android import map_to_layers, parse_op_profile, run_on_phone

pytestmark = pytest.mark.unit

DATA = os.path.join(os.path.dirname(__file__), "data", "benchmark_model_op_profiling.txt")


def graph() -> Graph:
    """An integer graph whose values are named like the recorded model's tensors."""
    g = Graph("m")
    t = TensorType(DType.INT8, (1, 4))
    x = g.add_input("x", t)
    prev = x
    for op, name, out in (("QConv", "conv", "c"), ("QConv", "dw", "d"), ("QAdd", "add", "a"),
                          ("QReduceMean", "gap", "p"), ("Reshape", "flat", "f"),
                          ("QGemm", "fc", "y")):
        n = g.add_node(op, [prev], [t], name=name, output_names=[out])
        prev = n.outputs[0]
    g.outputs = [prev]
    return g


def test_the_run_order_table_is_parsed_and_mapped_by_output_tensor():
    rows = parse_op_profile(open(DATA).read())
    assert [r["type"] for r in rows][:2] == ["CONV_2D", "DEPTHWISE_CONV_2D"] and len(rows) == 7
    assert rows[0] == {"type": "CONV_2D", "avg_ms": 0.512, "times_called": 1, "name": "c"}
    raw = map_to_layers(graph(), rows)
    assert raw["layers"] == ["conv", "dw", "add", "gap", "flat", "fc"]
    assert raw["runs"][0] == [512000, 236000, 48000, 30000, 2000, 258000]
    assert raw["totals"] == [1096000]
    assert raw["unattributed"] == [{"type": "QUANTIZE", "name": "y_int16", "ns": 10000}]
    assert "note" not in raw


def test_a_delegate_node_is_reported_as_such():
    text = open(DATA).read().replace("CONV_2D\t", "TfLiteXNNPackDelegate\t", 1)
    text = text.replace("[c]:0", "[delegate_0]:0", 1)
    raw = map_to_layers(graph(), parse_op_profile(text))
    assert raw["runs"][0][0] == 0 and "--use_xnnpack=false" in raw["note"]


def test_output_without_a_table_is_one_error():
    with pytest.raises(EdgeqError, match="no per-operator table"):
        parse_op_profile("STARTING!\ncount=10 avg=1102.3\n")


def _fake_adb(tmp_path, state="device"):
    script = tmp_path / "bin" / "adb"
    script.parent.mkdir()
    log = tmp_path / "adb.log"
    script.write_text(f"""#!/bin/sh
echo "$@" >> {log}
[ "$1" = "-s" ] && shift 2
case "$1" in
  get-state) echo {state} ;;
  push|shell) case "$*" in *benchmark_model\\ --graph*) cat {DATA} ;; esac ;;
esac
""")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script.parent, log


def test_the_adb_path_end_to_end_with_a_stand_in_adb(tmp_path, monkeypatch):
    bindir, log = _fake_adb(tmp_path)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "model.tflite").write_bytes(b"TFL3")
    (tmp_path / "benchmark_model").write_bytes(b"\x7fELF")
    raw = run_on_phone(str(tmp_path / "out"), graph(), "adb:R58M12345", str(
        tmp_path / "benchmark_model"), runs=10, warmup=2)
    assert raw["runs"][0][-1] == 258000 and raw["source"] == "measured (device)"
    calls = log.read_text().splitlines()
    assert calls[0] == "-s R58M12345 get-state"
    assert any("push" in c and c.endswith("/data/local/tmp/edgeq/model.tflite") for c in calls)
    run = next(c for c in calls if "--graph=" in c)
    for flag in ("--enable_op_profiling=true", "--num_threads=1", "--num_runs=10",
                 "--warmup_runs=2"):
        assert flag in run


def test_no_adb_no_device_and_no_binary_are_one_line_each(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(EdgeqError, match="adb not found"):
        run_on_phone(str(tmp_path), graph(), "adb", "bm", 1, 0)
    bindir, _ = _fake_adb(tmp_path, state="unauthorized")
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ.get('PATH', '')}")
    with pytest.raises(EdgeqError, match="needs --benchmark-model"):
        run_on_phone(str(tmp_path), graph(), "adb", None, 1, 0)
    (tmp_path / "model.tflite").write_bytes(b"x")
    (tmp_path / "bm").write_bytes(b"x")
    with pytest.raises(EdgeqError, match="'unauthorized', not a ready device"):
        run_on_phone(str(tmp_path), graph(), "adb", str(tmp_path / "bm"), 1, 0)


