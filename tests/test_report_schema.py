"""report.json has a published schema (docs/report.schema.json) and a golden key set: every
report the suite writes is validated (tests/conftest.py sets EDGEQ_VALIDATE_REPORTS), and the
keys of one zoo model's deterministic export are compared with tests/golden/report_keys.txt,
so a renamed or dropped key fails CI. Regenerate the golden file after an intended change with
EDGEQ_UPDATE_GOLDEN=1."""

from __future__ import annotations

import json
import os

import pytest

from edgeq import api
from tests.helpers import run_cli

GOLDEN = os.path.join(os.path.dirname(__file__), "golden", "report_keys.txt")
# dicts keyed by names from the model or the machine: their keys are data, not schema
DATA_KEYED = {"op_counts", "output_sqnr_db", "mixed_range_concats", "weight_scale_floors",
              "runtime_options", "bounds", "bytes"}


def key_paths(doc, path="") -> set[str]:
    out = set()
    if isinstance(doc, dict):
        for k, v in doc.items():
            name = "*" if path.rsplit(".", 1)[-1] in DATA_KEYED else k
            out.add(f"{path}.{name}")
            out |= key_paths(v, f"{path}.{name}")
    elif isinstance(doc, list):
        for v in doc:
            out |= key_paths(v, f"{path}[]")
    return out


@pytest.mark.unit
def test_the_schema_rejects_a_renamed_key_and_accepts_the_real_shapes():
    rep = {"model": "m", "integer_model": "model.eqm", "calibration_samples": 3,
           "held_out_samples": 1, "refused_targets": {},
           "integer_interpreter": {"sqnr_db_vs_float": 30.0},
           "quantization": {"model": "m", "layers": [], "output_sqnr_db": {"y": 30.0},
                            "top1_agreement": 1.0, "eval_samples": 1, "calibration_samples": 3,
                            "config": {"observer": "minmax", "weight_bits": 8,
                                       "int16_values": [], "rounding": "edgeq",
                                       "bias_correction": True, "equalization": True,
                                       "weight_rounding": "gptq"},
                            "equalization": {"pairs": [], "notes": []},
                            "bias_correction": {"layers": []},
                            "error_compensated_rounding": {"layers": []},
                            "weight_bytes": {"float": 4, "integer": 1}, "warnings": []},
           "targets": {"c": {"artifact": "c", "size_bytes": 10,
                             "verification": {"calibration": {
                                 "samples": 3, "max_abs_diff_lsb": 0, "mean_abs_diff_lsb": 0.0},
                                 "held_out": {"samples": 1, "max_abs_diff_lsb": 0,
                                              "mean_abs_diff_lsb": 0.0}},
                             "memory": {"arena_bytes": 64}}}}
    api.validate_report(rep)
    bad = json.loads(json.dumps(rep))
    bad["targets"]["c"]["size"] = bad["targets"]["c"].pop("size_bytes")
    with pytest.raises(AssertionError, match="targets/c"):
        api.validate_report(bad)
    bad = json.loads(json.dumps(rep))
    bad["integer_interpreter"]["sqnr_db"] = 1.0
    with pytest.raises(AssertionError, match="integer_interpreter"):
        api.validate_report(bad)


@pytest.mark.e2e
def test_golden_report_keys_of_a_zoo_export(zoo_dir, tmp_path):
    import numpy as np

    from models import data

    x = data.digits()[0][:12].astype(np.float32)
    np.save(tmp_path / "cal.npy", x)
    res = run_cli("export", os.path.join(zoo_dir, "digits_cnn.onnx"), "--calib",
                  tmp_path / "cal.npy", "-o", tmp_path / "out", "--mean", "8", "--std", "8",
                  "--target", "ort,tflite,tflm,tvm,c,npu-sim", "--eval-samples", "2",
                  "--deterministic-report")
    assert res.returncode == 0, res.stderr
    got = sorted(key_paths(json.loads((tmp_path / "out" / "report.json").read_text())))
    if os.environ.get("EDGEQ_UPDATE_GOLDEN"):
        with open(GOLDEN, "w") as f:
            f.write("\n".join(got) + "\n")
    with open(GOLDEN) as f:
        want = f.read().split()
    missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
    assert not missing and not extra, (
        f"report.json keys changed: missing {missing[:20]}, new {extra[:20]}; if intended, "
        f"update docs/report.md and the schema, then rerun with EDGEQ_UPDATE_GOLDEN=1")
