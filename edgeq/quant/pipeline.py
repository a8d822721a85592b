"""Quantization driver: equalize -> calibrate -> observe -> convert -> report.

``quantize`` takes an optimized float graph and calibration data and returns the integer graph
and a report: per-layer SQNR (float vs dequantized integer output, same inputs), output SQNR,
top-1 agreement, weight bytes before/after, and what equalization and bias correction did.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, replace
from typing import Any, Iterable, Sequence

import numpy as np

from edgeq.ir.graph import DType, EdgeqError, Graph, QParams, Value
from edgeq.ops import has
from edgeq.passes.decompose_layernorm import decompose_layernorm
from edgeq.passes.equalize import Equalize
from edgeq.passes.pipeline import run_passes
from edgeq.quant.calibrate import CalibrationData, Progress, calibrate, load_calibration
from edgeq.quant.convert import QuantConfig, check_graph, convert
from edgeq.quant.observers import OBSERVERS, observe
from edgeq.runtime.reference import run_graph


@dataclass
class QuantResult:
    graph: Graph
    float_graph: Graph
    report: dict[str, Any]


def quantize_array(x: np.ndarray, qp: QParams, dtype: DType) -> np.ndarray:
    info = np.iinfo(dtype.numpy)
    lo = -info.max if dtype == DType.INT16 else info.min
    q = np.round(np.asarray(x, np.float64) / qp.scale[0]) + qp.zero_point[0]
    return np.clip(q, lo, info.max).astype(dtype.numpy)


def dequantize_array(q: np.ndarray, qp: QParams) -> np.ndarray:
    return ((q.astype(np.float64) - qp.zero_point[0]) * qp.scale[0]).astype(np.float32)


def quantize_feeds(graph: Graph, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {v.name: quantize_array(feeds[v.name], v.qparams, v.dtype) for v in graph.inputs}


def run_integer(graph: Graph, feeds: dict[str, np.ndarray], raw: bool = False,
                keep: bool = False) -> dict[str, np.ndarray]:
    """Float inputs -> quantized with the model's input parameters -> integer interpreter ->
    dequantized outputs (integer outputs with ``raw``)."""
    env = run_graph(graph, quantize_feeds(graph, feeds), keep=keep)
    if raw or keep:
        return env
    return {v.name: dequantize_array(env[v.name], v.qparams) for v in graph.outputs}


def sqnr_db(signal_power: float, noise_power: float) -> float:
    if noise_power <= 0:
        return math.inf
    if signal_power <= 0:
        return -math.inf
    return 10.0 * math.log10(signal_power / noise_power)




def int16_candidates(fg: Graph) -> list[str]:
    """Values that may be int16: every reader (through data-movement ops) accepts int16."""
    def ok(v) -> bool:
        for u in v.users():
            if not has(u.op, "int16_input"):
                return False
            if has(u.op, "keeps_qparams") and u.inputs[0] is v and \
                    not all(ok(o) for o in u.outputs):
                return False
        return True

    vals = list(fg.inputs) + [n.outputs[0] for n in fg.nodes
                              if not has(n.op, "keeps_qparams") and n.op != "Softmax"]
    return [v.name for v in vals if ok(v)]


MIXED_RANGE_RATIO = 32.0  # an input this many times narrower keeps under 8 of int8's 256 levels
LOW_OUTPUT_SQNR_DB = 10.0


MIXED_RANGE_SCOPES = ("any", "outputs", "none")


def _feeds_outputs_only(fg: Graph, v: Value) -> bool:
    """Every path from ``v`` ends at a graph output through data movement only (a detector's
    final Concat, then Reshape / Transpose)."""
    outputs = {o.name for o in fg.outputs}
    stack, seen = [v], set()
    while stack:
        x = stack.pop()
        if x.name in seen:
            continue
        seen.add(x.name)
        users = x.users()
        if not users and x.name not in outputs:
            return False
        for u in users:
            if not has(u.op, "moves_data"):
                return False
            stack += u.outputs
    return True


def mixed_range_concats(fg: Graph, ranges: dict[str, tuple[float, float]],
                        scope: str = "any") -> dict[str, dict[str, Any]]:
    """Concats whose inputs' ranges differ by more than MIXED_RANGE_RATIO: one int8 scale
    flattens the narrow ones (a detector's final Concat of box coordinates, 0..320, with
    scores, 0..1, loses the scores). Each gets ``ratio`` and whether its output becomes int16,
    which ``quantize`` then applies: with ``scope`` "any" when every reader takes int16, with
    "outputs" (targets that take int16 only in data movement: TFLite, C) when it feeds only
    graph outputs through data movement, with "none" never; ``why`` says why not."""
    if scope not in MIXED_RANGE_SCOPES:
        raise EdgeqError(f"mixed-range scope must be one of {', '.join(MIXED_RANGE_SCOPES)}, "
                         f"got {scope!r}")
    candidates = set(int16_candidates(fg))
    out = {}
    for n in fg.nodes:
        if n.op != "Concat":
            continue
        widths = [max(abs(ranges[v.name][0]), abs(ranges[v.name][1])) for v in n.inputs
                  if v.name in ranges]
        if len(widths) < 2 or min(widths) <= 0:
            continue
        ratio = max(widths) / min(widths)
        if ratio <= MIXED_RANGE_RATIO:
            continue
        v = n.outputs[0]
        why = None
        if v.name not in candidates:
            why = "its readers do not all take int16"
        elif scope == "none":
            why = "a target takes no int16 activations"
        elif scope == "outputs" and not _feeds_outputs_only(fg, v):
            why = "a target takes int16 only in data movement to the outputs, and it feeds " \
                  "computation"
        entry: dict[str, Any] = {"ratio": round(ratio, 1), "int16": why is None}
        if why:
            entry["why"] = why
        out[v.name] = entry
    return out


def choose_int16(fg: Graph, convert_with, samples: list[dict[str, np.ndarray]],
                 target_db: float, max_values: int) -> tuple[list[str], list[dict[str, Any]]]:
    """Greedy mixed precision: rank each candidate by the output SQNR it gains alone as int16,
    then try them in that order, keeping one only if it raises the output SQNR of the values
    kept so far, until the SQNR reaches ``target_db`` or ``max_values`` are kept (at most
    ``2 * max_values`` tries). Gains alone do not add up: promoting a value can lower the
    SQNR once others are int16, and near-equal gains swap places when float rounding of the
    calibration differs (another CPU's BLAS); keeping only improving steps makes the result
    monotone and less sensitive to that order."""
    refs = [run_graph(fg, f) for f in samples]
    out = fg.outputs[0].name

    def score(int16: tuple[str, ...]) -> float:
        ig, _ = convert_with(int16)
        sig = noise = 0.0
        for feeds, ref in zip(samples, refs):
            y = run_integer(ig, feeds)[out].astype(np.float64)
            sig += float((ref[out].astype(np.float64) ** 2).sum())
            noise += float(((ref[out] - y) ** 2).sum())
        return sqnr_db(sig, noise)

    base = score(())
    steps = [{"int16": [], "output_sqnr_db": round(base, 2)}]
    if base >= target_db:
        return [], steps
    gains = sorted(((score((c,)) - base, c) for c in int16_candidates(fg)), reverse=True)
    chosen: list[str] = []
    best = base
    for gain, c in gains[:2 * max_values]:
        if gain <= 0 or len(chosen) >= max_values:
            break
        db = score(tuple(chosen) + (c,))
        if db <= best:
            continue
        chosen.append(c)
        best = db
        steps.append({"int16": list(chosen), "output_sqnr_db": round(db, 2)})
        if db >= target_db:
            break
    return chosen, steps


def quantize(graph: Graph, data: CalibrationData, cfg: QuantConfig = QuantConfig(),
             equalize: bool = True, eval_samples: int = 32, progress: bool | None = None,
             int16_auto: bool = False, target_sqnr_db: float = 40.0, max_int16: int = 8,
             mixed_range_int16: str = "any") -> QuantResult:
    """``graph`` must be an optimized float graph (``edgeq.optimize``). With ``int16_auto``,
    the fewest activations (greedy, at most ``max_int16``) become int16 so that the output
    SQNR reaches ``target_sqnr_db`` on the calibration data."""
    check_graph(graph)  # fail before calibrating, with every reason at once
    t0 = time.perf_counter()
    fg = graph.copy()
    decomposed: list[str] = []
    if cfg.rounding == "tflite":  # TFLite has no LayerNorm kernel: its int8 builtins instead
        decomposed = [n.name for n in fg.nodes if n.op == "LayerNormalization"]
        run_passes(fg, [("decompose_layernorm", decompose_layernorm)])
        decomposed = [n for n in decomposed if n not in {m.name for m in fg.nodes}]
    eq = Equalize()
    eq_notes: list[str] = []
    if equalize:
        eq_notes = run_passes(fg, [("equalize", eq)]).notes
    moments: dict[str, np.ndarray] | None = {} if cfg.weight_rounding == "gptq" else None
    hists = calibrate(fg, data, progress, moments)
    ranges = {k: observe(h, cfg.observer, cfg.percentile) for k, h in hists.items()}
    means = {k: h.channel_mean for k, h in hists.items() if h.channel_mean is not None}
    mixed_ranges = mixed_range_concats(fg, ranges, mixed_range_int16)
    wide = tuple(v for v, m in mixed_ranges.items() if m["int16"] and v not in cfg.int16)
    cfg = replace(cfg, int16=cfg.int16 + wide)
    mixed: list[dict[str, Any]] = []
    if int16_auto:
        picks, mixed = choose_int16(
            fg, lambda int16: convert(fg, ranges, replace(cfg, int16=cfg.int16 + int16), means,
                                          moments),
            [data.sample(i) for i in range(min(16, len(data)))], target_sqnr_db, max_int16)
        cfg = replace(cfg, int16=cfg.int16 + tuple(picks))
    ig, info = convert(fg, ranges, cfg, means, moments)
    quant_s = time.perf_counter() - t0
    report = build_report(fg, ig, (data.sample(i) for i in range(min(eval_samples, len(data)))),
                          progress=progress)
    report.update(
        quantization_time_s=round(quant_s, 3),
        calibration_samples=len(data),
        config={"observer": cfg.observer, "weight_bits": cfg.weight_bits,
                "int16_values": list(cfg.int16), "rounding": cfg.rounding,
                "bias_correction": cfg.bias_correction, "equalization": equalize,
                "weight_rounding": cfg.weight_rounding},
        equalization={"pairs": [list(p) for p in eq.pairs], "notes": eq_notes},
        mixed_range_concats=mixed_ranges,
        bias_correction={"layers": info.bias_corrected},
        weight_scale_floors=info.weight_scale_floors,
        error_compensated_rounding={"layers": info.gptq},
        weight_bytes=weight_bytes(graph, ig),
    )
    if decomposed:
        report["decomposed_layernorms"] = decomposed
    if int16_auto:
        report["mixed_precision"] = {"target_sqnr_db": target_sqnr_db, "steps": mixed}
    report["warnings"] = quality_warnings(report)
    return QuantResult(ig, fg, report)


def quality_warnings(report: dict[str, Any]) -> list[str]:
    """What a user must not miss in the quantization report."""
    out = [f"output '{o}' has an SQNR of {db} dB (below {LOW_OUTPUT_SQNR_DB:g} dB): the integer "
           f"model has lost it" for o, db in report["output_sqnr_db"].items()
           if db < LOW_OUTPUT_SQNR_DB]
    out += [f"Concat '{v}' joins inputs whose ranges differ {m['ratio']}x and stays int8 "
            f"({m.get('why', 'not int16')}): the narrow inputs keep few int8 levels"
            for v, m in report.get("mixed_range_concats", {}).items() if not m["int16"]]
    return out


def structural_graph(graph: Graph, rounding: str = "edgeq") -> Graph:
    """The integer graph ``quantize`` would build, with placeholder ranges ([-1, 1] for every
    value) instead of calibration: the same nodes, attributes and shapes, in milliseconds. What
    backends refuse is almost always a matter of structure, so their support checks run on this
    before calibration starts (the few scale-dependent limits are checked again after it)."""
    check_graph(graph)
    fg = graph.copy()
    if rounding == "tflite":
        run_passes(fg, [("decompose_layernorm", decompose_layernorm)])
    ranges = {v.name: (-1.0, 1.0) for v in fg.values.values() if not v.is_const}
    cfg = QuantConfig(rounding=rounding, bias_correction=False, weight_rounding="nearest")
    return convert(fg, ranges, cfg)[0]


def weight_bytes(fg: Graph, ig: Graph) -> dict[str, int]:
    before = sum(v.type.nbytes for v in fg.consts() if v.dtype.is_float)
    after = 0
    four_bit = ig.metadata.get("weight_bits") == "4"
    for v in ig.consts():
        if four_bit and v.dtype == DType.INT8 and v.qparams is not None and \
                v.qparams.axis is not None:
            after += (v.type.size + 1) // 2  # two 4-bit weights a byte
        else:
            after += v.type.nbytes
    return {"float": int(before), "integer": int(after)}


def build_report(fg: Graph, ig: Graph, samples: Iterable[dict[str, np.ndarray]],
                 progress: bool | None = None) -> dict[str, Any]:
    """SQNR of every integer value that has a float twin (same name), summed over samples."""
    names = [n.outputs[0].name for n in fg.nodes if n.outputs[0].name in ig.values]
    sig = dict.fromkeys(names, 0.0)
    noise = dict.fromkeys(names, 0.0)
    out_names = [v.name for v in fg.outputs]
    agree = total = 0
    samples = list(samples)
    if not samples:
        raise EdgeqError("no samples to evaluate the quantized model on")
    bar = Progress(len(samples), "evaluating", progress)
    for i, feeds in enumerate(samples):
        fenv = run_graph(fg, feeds, keep=True)
        ienv = run_integer(ig, feeds, keep=True)
        for name in names:
            f = fenv[name].astype(np.float64)
            q = dequantize_array(ienv[name], ig.values[name].qparams).astype(np.float64)
            sig[name] += float((f * f).sum())
            noise[name] += float(((f - q) ** 2).sum())
        o = out_names[0]
        f = fenv[o]
        q = ienv[o]
        if f.ndim >= 2 and f.shape[-1] > 1:
            agree += int((f.reshape(-1, f.shape[-1]).argmax(-1) ==
                          q.reshape(-1, q.shape[-1]).argmax(-1)).sum())
            total += f.reshape(-1, f.shape[-1]).shape[0]
        bar.update(i + 1)
    ops = {n.outputs[0].name: n for n in ig.nodes}
    layers = [{"name": name, "op": ops[name].op if name in ops else "?",
               "dtype": ig.values[name].dtype.value,
               "sqnr_db": round(sqnr_db(sig[name], noise[name]), 2)} for name in names]
    return {
        "model": fg.name,
        "layers": layers,
        "output_sqnr_db": {o: round(sqnr_db(sig[o], noise[o]), 2) for o in out_names
                           if o in sig},
        "top1_agreement": None if total == 0 else round(agree / total, 4),
        "eval_samples": len(samples),
    }


def is_integer(graph: Graph) -> bool:
    return graph.metadata.get("quantized") == "int"


def check_options(*, observer: str = "minmax", weight_bits: int = 8, rounding: str | None = None,
                  calib_samples: int | None = None, eval_samples: int = 32,
                  target_sqnr_db: float = 40.0, max_int16: int = 8,
                  weight_rounding: str = "gptq", **_: Any) -> None:
    """Refuse option values quantization cannot use, each named as its command-line flag (the
    Python API takes the same names with underscores)."""
    if observer not in OBSERVERS:
        raise EdgeqError(f"unknown observer {observer!r}; choose one of {', '.join(OBSERVERS)}")

    def whole(value: Any, flag: str, least: int) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
            raise EdgeqError(f"{flag} {value!r}: expected a whole number >= {least}")

    if calib_samples is not None:
        whole(calib_samples, "--calib-samples", 1)
    whole(eval_samples, "--eval-samples", 1)
    whole(max_int16, "--max-int16", 0)
    if weight_bits not in (4, 8):
        raise EdgeqError(f"--weight-bits {weight_bits!r}: expected 4 or 8")
    if rounding not in (None, "edgeq", "tflite"):
        raise EdgeqError(f"--rounding {rounding!r}: expected edgeq or tflite")
    if weight_rounding not in ("gptq", "nearest"):
        raise EdgeqError(f"--weight-rounding {weight_rounding!r}: expected gptq or nearest")
    if not isinstance(target_sqnr_db, (int, float)) or not math.isfinite(target_sqnr_db):
        raise EdgeqError(f"--target-sqnr {target_sqnr_db!r}: expected a finite number of dB")


def quantize_model(graph: Graph, calib: Any, *, observer: str = "minmax", weight_bits: int = 8,
             int16: Sequence[str] | str = (), rounding: str = "edgeq", equalize: bool = True,
             bias_correction: bool = True, calib_samples: int | None = None,
             eval_samples: int = 32, progress: bool | None = None,
             target_sqnr_db: float = 40.0, max_int16: int = 8,
             weight_rounding: str = "gptq", mixed_range_int16: str = "any"):
    """An optimized float graph + calibration data (a path to .npy/.npz/an image folder, an
    array with samples on axis 0, or a CalibrationData) -> QuantResult(graph, float_graph,
    report). ``int16`` names values to keep in int16, or is ``"auto"``: the fewest values
    (at most ``max_int16``) that bring the output SQNR to ``target_sqnr_db``.
    ``mixed_range_int16`` ("any", "outputs", "none"): which Concats of mixed ranges may become
    int16 (``mixed_range_concats``); export picks it from its targets."""
    check_options(observer=observer, weight_bits=weight_bits, rounding=rounding,
                  calib_samples=calib_samples, eval_samples=eval_samples,
                  target_sqnr_db=target_sqnr_db, max_int16=max_int16,
                  weight_rounding=weight_rounding)
    if is_integer(graph):
        raise EdgeqError("the model is already quantized")
    if isinstance(calib, CalibrationData):
        data = calib
    elif isinstance(calib, (str, os.PathLike)):
        data = load_calibration(os.fspath(calib), graph, calib_samples)
    else:
        if not isinstance(calib, dict) and len(graph.inputs) != 1:
            raise EdgeqError("pass calibration data for several inputs as a dict or .npz")
        arrays = calib if isinstance(calib, dict) else {graph.inputs[0].name: np.asarray(calib)}
        data = CalibrationData(graph, arrays=arrays, limit=calib_samples)
    auto = int16 == "auto"
    int16 = () if auto else tuple(int16)
    known = {v.name for n in graph.nodes for v in n.outputs} | {v.name for v in graph.inputs}
    unknown = [n for n in int16 if n not in known]
    if unknown:
        raise EdgeqError(f"--int16 names unknown values {unknown}")
    cfg = QuantConfig(observer=observer, weight_bits=weight_bits, int16=tuple(int16),
                      rounding=rounding, bias_correction=bias_correction,
                      weight_rounding=weight_rounding)
    return quantize(graph, data, cfg, equalize=equalize, eval_samples=eval_samples,
                     progress=progress, int16_auto=auto, target_sqnr_db=target_sqnr_db,
                     max_int16=max_int16, mixed_range_int16=mixed_range_int16)
