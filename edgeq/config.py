"""``edgeq.toml``: an export described as a file a build pipeline keeps in its repository
(``edgeq export --config FILE``, ``edgeq check --config FILE``; every key in docs/config.md).

    [model]          path, input_shape, mean, std, torch
    [calibration]    data, samples
    [quantization]   observer, weight_bits, int16, target_sqnr_db, max_int16, rounding,
                     weight_rounding, equalize, bias_correction, eval_samples
    [export]         output, targets, npu, keep_going, allow_fallback, deterministic_report,
                     force, junit
    [budgets]        metric = goal (every target), [budgets.TARGET] metric = goal
                     (edgeq.budgets)

Paths are relative to the file's folder. Command-line options override the file. An unknown
table or key, a wrong type or a value out of range is one ``EdgeqError`` naming the file, the
table and the key (exit 2).
"""

from __future__ import annotations

import os
import tomllib
from typing import Any

from edgeq.budgets import Budget, parse
from edgeq.ir.graph import EdgeqError
from edgeq.targets.schema import Field, check

MAX_FILE_BYTES = 1 << 20

MODEL = {
    "path": Field("str", "the .onnx model (or an .eqm), relative to this file", default=None),
    "torch": Field("str", "a PyTorch factory package.module:factory (instead of path)",
                   default=None),
    "input_shape": Field("table", "not used directly: see _input_shapes", default=None),
    "mean": Field("floats", "per-channel input mean folded into the first layer", default=None),
    "std": Field("floats", "per-channel input std (with mean)", default=None),
}
CALIBRATION = {
    "data": Field("str", ".npy, .npz or a folder of images, relative to this file"),
    "samples": Field("int", "use the first N samples", minimum=1, default=None),
    "labels": Field("str", ".npy of class indices, one per sample (top-1 accuracy)",
                    default=None),
}
QUANTIZATION = {
    "observer": Field("str", "activation ranges", choices=("minmax", "percentile", "mse",
                                                           "entropy"), default=None),
    "weight_bits": Field("int", "4 or 8", minimum=4, maximum=8, default=None,
                         check=lambda v: None if v in (4, 8) else "expected 4 or 8"),
    "int16": Field("str", "not used directly: 'auto' or a list of value names", default=None),
    "target_sqnr_db": Field("float", "dB, for int16 = 'auto'", default=None),
    "max_int16": Field("int", "at most this many int16 values", minimum=0, default=None),
    "rounding": Field("str", "requantization rule", choices=("edgeq", "tflite"), default=None),
    "weight_rounding": Field("str", "gptq or nearest", choices=("gptq", "nearest"),
                             default=None),
    "equalize": Field("bool", "cross-layer equalization", default=None),
    "bias_correction": Field("bool", "bias correction", default=None),
    "eval_samples": Field("int", "samples for the SQNR report", minimum=1, default=None),
}
EXPORT = {
    "output": Field("str", "the output folder, relative to this file", default=None),
    "targets": Field("table", "not used directly: a list of target names", default=None),
    "npu": Field("str", "the NPU for npu-sim / ethos-u: a built-in name or a .toml path",
                 default=None),
    "keep_going": Field("bool", "export the targets that take the model", default=None),
    "allow_fallback": Field("bool", "run missing integer kernels in float", default=None),
    "deterministic_report": Field("bool", "no timings in report.json", default=None),
    "force": Field("bool", "replace a folder that is not an earlier edgeq output",
                   default=None),
    "junit": Field("str", "write the budgets as a JUnit file, relative to this file",
                   default=None),
}
TABLES = {"model": MODEL, "calibration": CALIBRATION, "quantization": QUANTIZATION,
          "export": EXPORT}


def _strings(v: Any, at: str) -> list[str]:
    if isinstance(v, str):
        return [v]
    if not isinstance(v, list) or not all(isinstance(x, str) and x for x in v):
        raise EdgeqError(f"{at}: expected a string or a list of strings, got {v!r}")
    return list(v)


def _input_shapes(v: Any, at: str) -> list[str]:
    """``[1, 3, 96, 96]``, ``{name = [1, 3, 96, 96]}`` or ``"name=1,3,96,96"`` strings ->
    the CLI's ``--input-shape`` items."""
    if isinstance(v, list) and v and all(isinstance(d, int) and not isinstance(d, bool)
                                         for d in v):
        return [",".join(map(str, v))]
    if isinstance(v, dict):
        out = []
        for name, dims in v.items():
            if not isinstance(dims, list) or not dims or not all(
                    isinstance(d, int) and not isinstance(d, bool) for d in dims):
                raise EdgeqError(f"{at}.{name}: expected a list of integers, got {dims!r}")
            out.append(f"{name}={','.join(map(str, dims))}")
        return out
    return _strings(v, at)


def load(path: str) -> dict[str, Any]:
    """The file's settings as the CLI's option names (``calib``, ``output``, ``target``, ...;
    paths made absolute) and ``budgets`` (a list of ``edgeq.budgets.Budget``)."""
    if not os.path.isfile(path):
        raise EdgeqError(f"{path}: no such config file")
    if os.path.getsize(path) > MAX_FILE_BYTES:
        raise EdgeqError(f"{path}: too large for a config file")
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise EdgeqError(f"{path}: not valid TOML ({e})") from None
    except (OSError, UnicodeDecodeError) as e:
        raise EdgeqError(f"{path}: cannot read ({e})") from None
    where = os.path.basename(path)
    base = os.path.dirname(os.path.abspath(path))
    unknown = sorted(set(doc) - set(TABLES) - {"budgets"})
    if unknown:
        raise EdgeqError(f"{where}: unknown table [{unknown[0]}] (known: "
                         f"{', '.join([*TABLES, 'budgets'])})")
    raw = {name: dict(doc.get(name, {})) if isinstance(doc.get(name, {}), dict)
           else doc[name] for name in TABLES}
    special = {("model", "input_shape"), ("quantization", "int16"), ("export", "targets")}
    kept: dict[tuple[str, str], Any] = {}
    for table, key in special:
        if isinstance(raw[table], dict) and key in raw[table]:
            kept[(table, key)] = raw[table].pop(key)
    t = {name: check(raw[name], {k: f for k, f in fields.items()
                                 if (name, k) not in special}, f"{where} [{name}]")
         for name, fields in TABLES.items()}

    def rel(p: str | None) -> str | None:
        return None if p is None else p if os.path.isabs(p) else os.path.join(base, p)

    out: dict[str, Any] = {
        "model": rel(t["model"]["path"]), "torch": t["model"]["torch"],
        "mean": ",".join(map(str, t["model"]["mean"])) if t["model"]["mean"] else None,
        "std": ",".join(map(str, t["model"]["std"])) if t["model"]["std"] else None,
        "calib": rel(t["calibration"]["data"]) if "calibration" in doc else None,
        "calib_samples": t["calibration"]["samples"],
        "labels": rel(t["calibration"]["labels"]),
        "output": rel(t["export"]["output"]), "npu": t["export"]["npu"],
        "junit": rel(t["export"]["junit"]),
    }
    for key in ("keep_going", "allow_fallback", "deterministic_report", "force"):
        out[key] = t["export"][key]
    q = t["quantization"]
    out.update(observer=q["observer"], weight_bits=q["weight_bits"],
               target_sqnr=q["target_sqnr_db"], max_int16=q["max_int16"],
               rounding=q["rounding"], weight_rounding=q["weight_rounding"],
               eval_samples=q["eval_samples"],
               no_equalize=None if q["equalize"] is None else not q["equalize"],
               no_bias_correction=None if q["bias_correction"] is None
               else not q["bias_correction"])
    if ("model", "input_shape") in kept:
        out["input_shape"] = _input_shapes(kept[("model", "input_shape")],
                                           f"{where} [model] input_shape")
    if ("quantization", "int16") in kept:
        v = kept[("quantization", "int16")]
        out["int16"] = v if v == "auto" else ",".join(
            _strings(v, f"{where} [quantization] int16"))
    if ("export", "targets") in kept:
        out["target"] = ",".join(_strings(kept[("export", "targets")],
                                          f"{where} [export] targets"))
    budgets: list[Budget] = parse(doc.get("budgets", {}), f"{where} [budgets]")
    out["budgets"] = budgets
    return out
