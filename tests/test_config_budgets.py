"""edgeq.toml and budgets (issue 15, items 1-2, 5, 7): the file is checked key by key, command-line
options override it, budgets pass or fail with exit code 3 while every artifact is still written,
JUnit has one test case per budget, and `edgeq check --baseline` gates regressions."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from onnx import helper

from edgeq import budgets as B
from edgeq import config
from edgeq.ir.graph import EdgeqError
from tests.helpers import onnx_model, run_cli

pytestmark = pytest.mark.unit


def report(**targets):
    return {"targets": targets, "refused_targets": {},
            "quantization": {"top1_agreement": 0.97, "layers": [
                {"name": "a", "sqnr_db": 31.0}, {"name": "b", "sqnr_db": 27.5}]}}


C = {"size_bytes": 204800, "latency_ms": 2.0, "sqnr_db_vs_float": 35.0,
     "memory": {"arena_bytes": 65536},
     "verification": {"calibration": {"max_abs_diff_lsb": 0, "samples": 4},
                      "held_out": {"max_abs_diff_lsb": 1, "samples": 2}}}
ORT = {"size_bytes": 102400, "latency_ms": 1.0, "sqnr_db_vs_float": 34.0}
SIM = {"size_bytes": 1000, "simulated": {"cycles": 123456.0, "energy_uj": 4.5}}


def test_thresholds_pass_and_fail_with_value_and_limit():
    bs = B.parse({"min_sqnr_db": 34.5, "max_top1_drop": 0.05, "min_layer_sqnr_db": 28,
                  "c": {"max_lsb": 0, "max_arena_kb": 64, "max_latency_ms": {
                      "ratio_to": "ort", "value": 2.5}},
                  "npu-sim": {"max_cycles": 1e5, "max_energy_uj": 5}})
    res = {r["name"]: r for r in B.evaluate(bs, report(c=C, ort=ORT, **{"npu-sim": SIM}))}
    assert res["c.min_sqnr_db"]["ok"] and not res["ort.min_sqnr_db"]["ok"]
    assert res["npu-sim.min_sqnr_db"]["ok"] is None  # no figure on that target: skipped
    assert res["c.max_lsb"]["ok"] is False and res["c.max_lsb"]["value"] == 1
    assert res["c.max_arena_kb"]["ok"] and res["c.max_arena_kb"]["value"] == 64.0
    assert res["c.max_latency_ms"]["ok"] and "2 x ort" in res["c.max_latency_ms"]["message"]
    assert res["c.max_top1_drop"]["value"] == pytest.approx(0.03)
    assert res["c.min_layer_sqnr_db"]["ok"] is False  # 27.5 < 28
    assert not res["npu-sim.max_cycles"]["ok"] and res["npu-sim.max_energy_uj"]["ok"]
    assert "1.235e+05 > 1e+05 cycles" in res["npu-sim.max_cycles"]["message"]


@pytest.mark.parametrize("goal, value, ok", [
    ("max-degradation", 0.5, False),            # latency 2.0 vs 1.4: 0.6 ms worse
    ("max-degradation", 0.7, True),
    ("percent-max-degradation", 50, True),      # 42.9% worse
    ("percent-max-degradation", 40, False),
    ("min-improvement", 0.0, False),            # it got worse: no improvement
    ("percent-min-improvement", -50, True),
])
def test_relative_goals_against_a_baseline(goal, value, ok):
    bs = B.parse({"c": {"max_latency_ms": {"type": goal, "value": value}}})
    base = report(c=dict(C, latency_ms=1.4))
    [r] = B.evaluate(bs, report(c=C), base)
    assert r["ok"] is ok and r["baseline"] == 1.4, r["message"]


def test_sqnr_degradation_is_measured_downwards():
    bs = B.parse({"min_sqnr_db": {"type": "max-degradation", "value": 0.5}})
    [r] = B.evaluate(bs, report(c=C), report(c=dict(C, sqnr_db_vs_float=35.7)))
    assert r["ok"] is False and "0.7 dB worse" in r["message"]


def test_missing_figures_refused_targets_and_baselines():
    bs = B.parse({"ort": {"max_flash_kb": 10}, "tflite": {"max_size_kb": 1}})
    r = {x["name"]: x for x in B.evaluate(bs, dict(report(ort=ORT), refused_targets={
        "tflite": ["no"]}))}
    assert r["ort.max_flash_kb"]["ok"] is False and "no max_flash_kb figure" in \
        r["ort.max_flash_kb"]["message"]
    assert r["tflite.max_size_kb"]["message"] == "target tflite was refused"
    with pytest.raises(EdgeqError, match="--baseline"):
        B.evaluate(B.parse({"max_size_kb": {"type": "max-degradation", "value": 1}}),
                   report(c=C))


@pytest.mark.parametrize("doc, needle", [
    ({"max_sizes_kb": 3}, "max_sizes_kb: unknown budget"),
    ({"c": {"max_bytes": 3}}, "[budgets.c] max_bytes: unknown budget"),
    ({"c": {"max_lsb": "zero"}}, "expected a finite number"),
    ({"c": {"max_lsb": {"type": "at-most", "value": 1}}}, "type 'at-most'"),
    ({"c": {"max_lsb": {"type": "threshold"}}}, "missing value"),
    ({"c": {"max_size_kb": {"ratio_to": "ort", "value": 1}}}, "ratio_to applies to"),
])
def test_budget_errors_name_the_key(doc, needle):
    with pytest.raises(EdgeqError) as e:
        B.parse(doc, "edgeq.toml [budgets]")
    assert needle in str(e.value), str(e.value)


def test_junit_has_one_case_per_budget_and_target():
    bs = B.parse({"min_sqnr_db": 34.5, "c": {"max_lsb": 0}})
    xml = B.junit_xml(B.evaluate(bs, report(c=C, **{"npu-sim": SIM})))
    root = ET.fromstring(xml)
    suite = root.find("testsuite")
    assert suite.get("tests") == "3" and suite.get("failures") == "1" and \
        suite.get("skipped") == "1"
    cases = {(c.get("classname"), c.get("name")): c for c in suite.iter("testcase")}
    assert cases[("edgeq.c", "max_lsb")].find("failure").get("message") == \
        "c max_lsb 1 > 0 LSB"
    assert cases[("edgeq.npu-sim", "min_sqnr_db")].find("skipped") is not None


GOOD = """
[model]
path = "m.onnx"
input_shape = {x = [1, 3, 8, 8]}

[calibration]
data = "cal.npy"
samples = 8

[quantization]
observer = "minmax"
eval_samples = 2
int16 = []

[export]
output = "out"
targets = ["c", "npu-sim"]
npu = "ethos-u55-256"
deterministic_report = true
junit = "budgets.xml"

[budgets]
min_sqnr_db = 20

[budgets.c]
max_lsb = 0
max_arena_kb = 1024

[budgets.npu-sim]
max_cycles = 1e9
"""


def test_config_maps_to_the_cli_options_with_paths_relative_to_the_file(tmp_path):
    (tmp_path / "edgeq.toml").write_text(GOOD)
    cfg = config.load(str(tmp_path / "edgeq.toml"))
    assert cfg["model"] == str(tmp_path / "m.onnx") and cfg["calib"] == str(tmp_path / "cal.npy")
    assert cfg["input_shape"] == ["x=1,3,8,8"] and cfg["target"] == "c,npu-sim"
    assert cfg["calib_samples"] == 8 and cfg["eval_samples"] == 2 and cfg["observer"] == "minmax"
    assert cfg["deterministic_report"] is True and cfg["npu"] == "ethos-u55-256"
    assert [b.name for b in cfg["budgets"]] == ["min_sqnr_db", "c.max_lsb", "c.max_arena_kb",
                                                "npu-sim.max_cycles"]


@pytest.mark.parametrize("edit, needle", [
    (lambda s: s + "\n[deploy]\nx = 1\n", "unknown table [deploy]"),
    (lambda s: s.replace("samples = 8", "sample = 8"), "[calibration]: unknown key 'sample'"),
    (lambda s: s.replace("samples = 8", "samples = 0"), "[calibration] samples"),
    (lambda s: s.replace('observer = "minmax"', 'observer = "max"'), "[quantization] observer"),
    (lambda s: s.replace('targets = ["c", "npu-sim"]', "targets = 3"), "[export] targets"),
    (lambda s: s.replace("deterministic_report = true", 'deterministic_report = "yes"'),
     "[export] deterministic_report: expected true or false"),
    (lambda s: s.replace("max_lsb = 0", "max_lsbs = 0"), "[budgets.c] max_lsbs"),
    (lambda s: s.replace("[model]", "[model"), "not valid TOML"),
])
def test_config_errors_name_the_key(tmp_path, edit, needle):
    (tmp_path / "edgeq.toml").write_text(edit(GOOD))
    with pytest.raises(EdgeqError) as e:
        config.load(str(tmp_path / "edgeq.toml"))
    assert "edgeq.toml" in str(e.value) and needle in str(e.value), str(e.value)


@pytest.fixture
def project(tmp_path):
    rng = np.random.default_rng(0)
    m = onnx_model([helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
                    helper.make_node("Relu", ["c"], ["y"], name="relu")],
                   {"x": ("N", 3, 8, 8)}, ["y"],
                   {"w": rng.normal(size=(4, 3, 3, 3)).astype(np.float32) * 0.3})
    (tmp_path / "m.onnx").write_bytes(m.SerializeToString())
    np.save(tmp_path / "cal.npy", rng.normal(size=(8, 3, 8, 8)).astype(np.float32))
    (tmp_path / "edgeq.toml").write_text(GOOD)
    return tmp_path


@pytest.mark.backend
def test_the_ci_example_commands_pass_then_fail_a_budget(project):
    """What examples/ci/*.yml run: export --config, then a deliberately failing budget."""
    res = run_cli("export", "--config", project / "edgeq.toml")
    assert res.returncode == 0, res.stderr
    root = ET.parse(project / "budgets.xml").getroot()
    assert root.get("failures") == "0" and root.get("tests") == "5"
    rep = json.loads((project / "out" / "report.json").read_text())
    assert rep["budgets"]["failed"] == [] and len(rep["budgets"]["results"]) == 5
    (project / "strict.toml").write_text(GOOD.replace("max_arena_kb = 1024",
                                                      "max_arena_kb = 0.01"))
    res = run_cli("export", "--config", project / "strict.toml", "--junit",
                  project / "strict.xml")  # the command line overrides [export] junit
    assert res.returncode == 3, res.stderr
    line = [ln for ln in res.stderr.splitlines() if "budget failed" in ln]
    assert len(line) == 1 and "c.max_arena_kb" in line[0] and "> 0.01 KiB" in line[0]
    assert (project / "out" / "c" / "model.c").exists()  # everything still written
    root = ET.parse(project / "strict.xml").getroot()
    assert root.get("failures") == "1"
    assert json.loads((project / "out" / "report.json").read_text())["budgets"]["failed"] == [
        "c.max_arena_kb"]
    # check re-evaluates the same budgets on the written report
    assert run_cli("check", "--config", project / "strict.toml").returncode == 3
    assert run_cli("check", "--config", project / "edgeq.toml").returncode == 0


@pytest.mark.backend
def test_command_line_overrides_the_file_and_bad_files_exit_2(project):
    res = run_cli("export", "--config", project / "edgeq.toml", "--target", "c",
                  "-o", project / "other")
    assert res.returncode == 2 and "budget npu-sim.max_cycles: target npu-sim is not " \
        "exported" in res.stderr  # the file's budgets still apply: a clear error
    (project / "bad.toml").write_text(GOOD.replace("max_lsb = 0", "max_lsb = []"))
    res = run_cli("export", "--config", project / "bad.toml")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.strip().startswith("edgeq: error: bad.toml [budgets.c] max_lsb")
    assert not (project / "out").exists()


@pytest.mark.backend
def test_check_baseline_gates_regressions(project):
    assert run_cli("export", "--config", project / "edgeq.toml").returncode == 0
    old = json.loads((project / "out" / "report.json").read_text())
    new = json.loads(json.dumps(old))
    new["targets"]["c"]["memory"]["arena_bytes"] += 64
    new["targets"]["c"]["sqnr_db_vs_float"] -= 1.0
    (project / "new").mkdir()
    (project / "new" / "report.json").write_text(json.dumps(new))
    res = run_cli("check", project / "out", "--baseline", project / "out" / "report.json")
    assert res.returncode == 0, res.stdout + res.stderr
    res = run_cli("check", project / "new", "--baseline", project / "out" / "report.json",
                  "--junit", project / "gates.xml")
    assert res.returncode == 3
    assert "c.max_arena_kb" in res.stderr and "c.min_sqnr_db" in res.stderr
    assert "FAILED" in res.stdout and "baseline" in res.stdout
    assert ET.parse(project / "gates.xml").getroot().get("failures") == "2"


def test_the_ci_examples_parse_and_run_the_tested_commands():
    import os

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    cfg = config.load(os.path.join(root, "examples", "ci", "edgeq.toml"))
    assert {b.name for b in cfg["budgets"]} >= {"tflite.max_lsb", "cortex-m4.max_instructions",
                                                "npu-sim.max_energy_uj"}
    for name in ("github-actions.yml", "gitlab-ci.yml"):
        text = open(os.path.join(root, "examples", "ci", name)).read()
        assert "edgeq export --config examples/ci/edgeq.toml" in text
        assert "edgeq check build/edgeq --baseline baseline/report.json --junit" in text


@pytest.mark.backend
def test_labels_give_top1_accuracies_and_the_top1_budget_uses_them(project):
    """A 4-class classifier with given labels: the report has the float and the integer
    model's top-1 accuracy on the held-out samples, and max_top1_drop is their difference."""
    rng = np.random.default_rng(1)
    m = onnx_model([helper.make_node("Flatten", ["x"], ["f"], name="flat"),
                    helper.make_node("Gemm", ["f", "w"], ["y"], name="fc")],
                   {"x": ("N", 3, 8, 8)}, ["y"],
                   {"w": rng.normal(size=(192, 4)).astype(np.float32) * 0.1})
    (project / "cls.onnx").write_bytes(m.SerializeToString())
    x = np.load(project / "cal.npy")
    labels = (x.reshape(8, -1) @ rng.normal(size=(192, 4))).argmax(1)
    np.save(project / "labels.npy", labels.astype(np.int64))
    res = run_cli("export", project / "cls.onnx", "--calib", project / "cal.npy", "--labels",
                  project / "labels.npy", "-o", project / "acc", "--target", "c",
                  "--eval-samples", "2")
    assert res.returncode == 0, res.stderr
    rep = json.loads((project / "acc" / "report.json").read_text())
    acc = rep["accuracy"]
    assert acc["samples"] == 2 and acc["top1_drop"] == pytest.approx(
        acc["float_top1"] - acc["integer_top1"])
    [r] = B.evaluate(B.parse({"max_top1_drop": 1.0}), {**rep, "targets": {
        "c": rep["targets"]["c"]}})
    assert r["value"] == acc["top1_drop"]
    np.save(project / "bad.npy", np.array([0.5, 1.5]))
    res = run_cli("export", project / "cls.onnx", "--calib", project / "cal.npy", "--labels",
                  project / "bad.npy", "-o", project / "acc2", "--target", "c")
    assert res.returncode == 2 and "one integer class index per sample" in res.stderr
