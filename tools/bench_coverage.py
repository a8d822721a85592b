"""Coverage of real models: the corpus (``models/corpus.py``: torchvision and timm architectures
exported by ``torch.onnx.export``, real batch-norm statistics, dead channels) through
``edgeq export --target ort,tflite,tflm,tvm,c --keep-going``.

    .venv/bin/python -m tools.bench_coverage [--corpus build/corpus] [--only NAME ...]
        [--targets ort,tflite,tflm,tvm,c] [--samples 12] [--timeout 1200]

Each model runs in its own process (a crash or a hang is a finding, not the end of the run).
One table: model, MACs, import, quantize, per target (exact: 0 LSB against the integer
interpreter on calibration and held-out samples; "<= N LSB" within ORT's per-layer bound;
refused with the first reason), SQNR of the integer interpreter vs float, export seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

TARGETS = "ort,tflite,tflm,tvm,c"


def _one(name: str, corpus: str, targets: list[str], samples: int) -> dict:
    """Run one model in this process; every failure is caught and reported by stage."""
    import edgeq
    from edgeq.export import export
    from edgeq.ir.graph import EdgeqError
    from edgeq.quant.calibrate import CalibrationData
    from models.corpus import inputs as corpus_inputs

    with open(os.path.join(corpus, "manifest.json")) as f:
        info = json.load(f)[name]
    row: dict = {"model": name, "source": info["source"]}
    t0 = time.perf_counter()
    try:
        g = edgeq.load(os.path.join(corpus, info["file"]),
                       input_shapes={"#0": info["input_shape"]})
        fg, _ = edgeq.optimize(g, mean=info["mean"], std=info["std"])
        row["macs"] = edgeq.inspect(fg)["totals"]["macs"]
        row["import"] = "ok"
    except EdgeqError as e:
        row["import"] = f"refused: {e}"
        return row
    except Exception as e:  # noqa: BLE001 - a crash is a finding
        row["import"] = f"CRASH {type(e).__name__}: {e}"
        return row
    x = corpus_inputs(info, samples, seed=5)
    with tempfile.TemporaryDirectory() as d:
        try:
            report = export(fg, CalibrationData(fg, arrays={fg.inputs[0].name: x}), targets, d,
                            {"eval_samples": 2}, keep_going=True)
        except EdgeqError as e:
            row["quantize"] = f"refused: {e}"
            return row
        except Exception as e:  # noqa: BLE001
            row["quantize"] = f"CRASH {type(e).__name__}: {e}"
            return row
    row["quantize"] = "ok"
    row["weight_scale_floors"] = report["quantization"].get("weight_scale_floors", {})
    row["sqnr_db"] = report["integer_interpreter"]["sqnr_db_vs_float"]
    row["export_s"] = round(time.perf_counter() - t0, 1)
    row["targets"] = {}
    for t in targets:
        if t in report["refused_targets"]:
            row["targets"][t] = "refused: " + report["refused_targets"][t][0]
            continue
        v = report["targets"][t]["verification"]
        worst = max(v["calibration"]["max_abs_diff_lsb"], v["held_out"]["max_abs_diff_lsb"])
        per_layer = v.get("per_layer", {}).get("max_abs_diff_lsb")
        if worst == 0:
            row["targets"][t] = "exact"
        elif per_layer is not None:
            row["targets"][t] = f"<= {per_layer} LSB per layer ({worst} end to end)"
        else:
            row["targets"][t] = f"{worst} LSB"
    return row


def _cell(s: str, width: int = 60) -> str:
    s = s.replace("|", "/").replace("\n", " ")
    return s if len(s) <= width else s[:width - 3] + "..."


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", default="build/corpus")
    p.add_argument("--only", nargs="*")
    p.add_argument("--targets", default=TARGETS)
    p.add_argument("--samples", type=int, default=12)
    p.add_argument("--timeout", type=int, default=1200)
    p.add_argument("--one", help=argparse.SUPPRESS)
    p.add_argument("--json", help="also write the rows to this file")
    a = p.parse_args(argv)
    targets = a.targets.split(",")
    if a.one:
        print("ROW " + json.dumps(_one(a.one, a.corpus, targets, a.samples)), flush=True)
        return 0
    from models.corpus import NAMES, build

    build(a.corpus, a.only, on_error=lambda n, e: print(f"{n}: not built: {e}"))
    rows = []
    for name in NAMES:
        if a.only and name not in a.only:
            continue
        cmd = [sys.executable, "-m", "tools.bench_coverage", "--one", name, "--corpus", a.corpus,
               "--targets", a.targets, "--samples", str(a.samples)]
        t0 = time.perf_counter()
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=a.timeout)
            line = next((ln for ln in r.stdout.splitlines() if ln.startswith("ROW ")), None)
            row = json.loads(line[4:]) if line else {
                "model": name, "import": f"CRASH (exit {r.returncode}): "
                                         f"{(r.stderr.strip().splitlines() or [''])[-1]}"}
        except subprocess.TimeoutExpired:
            row = {"model": name, "import": f"TIMEOUT after {a.timeout} s"}
        row.setdefault("export_s", round(time.perf_counter() - t0, 1))
        rows.append(row)
        print(f"{name}: {json.dumps(row)}", file=sys.stderr, flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)
    head = ["model", "MACs (M)", "import", "quantize"] + targets + ["SQNR dB", "export s"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        cells = [r["model"], f"{r['macs'] / 1e6:.0f}" if "macs" in r else "-",
                 _cell(r.get("import", "-")), _cell(r.get("quantize", "-"))]
        cells += [_cell(r.get("targets", {}).get(t, "-"), 48) for t in targets]
        cells += [str(r.get("sqnr_db", "-")), str(r.get("export_s", "-"))]
        print("| " + " | ".join(cells) + " |")
    full = [r for r in rows if all(r.get("targets", {}).get(t, "").startswith(("exact", "<="))
                                   for t in targets)]
    print(f"\n{len(full)} of {len(rows)} models export to all of {', '.join(targets)} "
          f"(exact, or within ORT's per-layer bound)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
