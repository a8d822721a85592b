"""Budgets a build pipeline enforces on an export: each a metric of ``report.json`` (or of the
profile) and a goal, checked after the export, listed in the report (``budgets``), printed one
line per failure, written as JUnit test cases, and failing the command with exit code 3.

A goal is a number (a threshold) or a table in Olive's vocabulary: ``{type = "threshold" |
"max-degradation" | "percent-max-degradation" | "min-improvement" | "percent-min-improvement",
value = X}``; the relative types compare with a baseline report (``--baseline``). Metrics
(docs/config.md has each one's unit and source):

- ``max_lsb``: the largest |difference| in LSB against the integer interpreter (calibration
  and held-out samples);
- ``min_sqnr_db``: the target's output SQNR against the float model (held-out samples);
- ``min_layer_sqnr_db``: the smallest per-layer SQNR of the integer model;
- ``max_top1_drop``: with labels (``--labels``, ``[calibration] labels``), float top-1
  accuracy minus the integer model's on the held-out samples; without, 1 - top-1 agreement of
  the integer model with the float model (an upper bound of that drop);
- ``max_size_kb``: the artifact's size;
- ``max_arena_kb`` / ``max_sram_kb``: the activation arena (C: the static arena; TFLite Micro:
  the smallest arena it allocates in);
- ``max_flash_kb``: code + constants on a Cortex-M board (``arm-none-eabi-size``);
- ``max_latency_ms``: the measured single-thread latency; or ``{ratio_to = "ort", value = 2}``:
  at most that multiple of another target's latency in the same export;
- ``max_instructions``: QEMU instruction count of one inference (Cortex-M; profiled);
- ``max_cycles``, ``max_energy_uj``: the NPU simulator's totals.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable
from xml.sax.saxutils import escape, quoteattr

from edgeq.ir.graph import EdgeqError

GOAL_TYPES = ("threshold", "max-degradation", "percent-max-degradation", "min-improvement",
              "percent-min-improvement")
PROFILED = {"max_instructions"}  # metrics that need `edgeq profile` on the target


def _verification_lsb(t: dict[str, Any], r: dict[str, Any]) -> float | None:
    v = t.get("verification")
    if not isinstance(v, dict):
        return None
    parts = [p["max_abs_diff_lsb"] for p in v.values() if isinstance(p, dict)
             and "max_abs_diff_lsb" in p and p.get("samples", 1)]
    return max(parts) if parts else None


def _kb(x: Any) -> float | None:
    return None if x is None else x / 1024


def _arena(t: dict[str, Any], r: dict[str, Any]) -> float | None:
    mem = t.get("memory") or {}
    return _kb(mem.get("arena_bytes", t.get("arena_bytes")))


def _layer_sqnr(t: dict[str, Any], r: dict[str, Any]) -> float | None:
    vals = [la["sqnr_db"] for la in r.get("quantization", {}).get("layers", [])
            if la.get("sqnr_db") is not None]
    return min(vals) if vals else None


def _top1_drop(t: dict[str, Any], r: dict[str, Any]) -> float | None:
    if "accuracy" in r:  # labels given: the measured drop in top-1 accuracy
        return r["accuracy"]["top1_drop"]
    a = r.get("quantization", {}).get("top1_agreement")
    return None if a is None else round(1.0 - a, 6)


def _instructions(t: dict[str, Any], r: dict[str, Any]) -> float | None:
    p = t.get("profile")
    return p["total"]["median"] if p and p.get("unit") == "instructions" else None


# metric -> (direction: "max" means lower is better, unit, figure from (target entry, report))
METRICS: dict[str, tuple[str, str, Callable[[dict[str, Any], dict[str, Any]], Any]]] = {
    "max_lsb": ("max", "LSB", _verification_lsb),
    "min_sqnr_db": ("min", "dB", lambda t, r: t.get("sqnr_db_vs_float")),
    "min_layer_sqnr_db": ("min", "dB", _layer_sqnr),
    "max_top1_drop": ("max", "fraction", _top1_drop),
    "max_size_kb": ("max", "KiB", lambda t, r: _kb(t.get("size_bytes"))),
    "max_arena_kb": ("max", "KiB", _arena),
    "max_sram_kb": ("max", "KiB", _arena),
    "max_flash_kb": ("max", "KiB", lambda t, r: _kb(((t.get("memory") or {}).get(
        "arm_none_eabi_size") or {}).get("flash_bytes"))),
    "max_latency_ms": ("max", "ms", lambda t, r: t.get("latency_ms")),
    "max_instructions": ("max", "instructions", _instructions),
    "max_cycles": ("max", "cycles", lambda t, r: (t.get("simulated") or {}).get("cycles")),
    "max_energy_uj": ("max", "uJ", lambda t, r: (t.get("simulated") or {}).get("energy_uj")),
}


@dataclass(frozen=True)
class Budget:
    target: str            # a target name, or "*" (every exported target that has the figure)
    metric: str
    goal: str              # one of GOAL_TYPES
    value: float
    ratio_to: str | None = None  # max_latency_ms as a multiple of another target's latency

    @property
    def name(self) -> str:
        return f"{self.target}.{self.metric}" if self.target != "*" else self.metric


def parse(doc: Any, where: str = "[budgets]") -> list[Budget]:
    """``[budgets]`` of edgeq.toml: metric keys apply to every target; ``[budgets.TARGET]``
    tables to one. Unknown metrics, bad goal tables and wrong types are errors naming the
    key."""
    if not isinstance(doc, dict):
        raise EdgeqError(f"{where}: expected a table")
    out: list[Budget] = []
    for key, value in doc.items():
        if key in METRICS:
            out.append(_budget("*", key, value, f"{where} {key}"))
        elif isinstance(value, dict) and not set(value) & {"type", "value", "ratio_to"}:
            for metric, v in value.items():
                if metric not in METRICS:
                    raise EdgeqError(f"{where[:-1]}.{key}] {metric}: unknown budget (known: "
                                     f"{', '.join(METRICS)})")
                out.append(_budget(key, metric, v, f"{where[:-1]}.{key}] {metric}"))
        else:
            raise EdgeqError(f"{where} {key}: unknown budget (known: {', '.join(METRICS)}, "
                             f"or a [budgets.TARGET] table)")
    return out


def _number(v: Any, at: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise EdgeqError(f"{at}: expected a finite number, got {v!r}")
    return float(v)


def _budget(target: str, metric: str, value: Any, at: str) -> Budget:
    if isinstance(value, dict):
        unknown = sorted(set(value) - {"type", "value", "ratio_to"})
        if unknown:
            raise EdgeqError(f"{at}: unknown key {unknown[0]!r} (known: type, value, ratio_to)")
        goal = value.get("type", "threshold")
        if goal not in GOAL_TYPES:
            raise EdgeqError(f"{at}: type {goal!r}: expected one of {', '.join(GOAL_TYPES)}")
        if "value" not in value:
            raise EdgeqError(f"{at}: missing value")
        ratio_to = value.get("ratio_to")
        if ratio_to is not None:
            if metric != "max_latency_ms" or goal != "threshold":
                raise EdgeqError(f"{at}: ratio_to applies to max_latency_ms thresholds only")
            if not isinstance(ratio_to, str):
                raise EdgeqError(f"{at}: ratio_to: expected a target name")
        return Budget(target, metric, goal, _number(value["value"], at), ratio_to)
    return Budget(target, metric, "threshold", _number(value, at))


# `edgeq check --baseline OLD NEW` without budgets of its own: no target slower by more than 10%,
# no SQNR lower by more than 0.5 dB, no arena or artifact larger
DEFAULT_GATES = [Budget("*", "max_latency_ms", "percent-max-degradation", 10.0),
                 Budget("*", "min_sqnr_db", "max-degradation", 0.5),
                 Budget("*", "max_arena_kb", "percent-max-degradation", 0.0),
                 Budget("*", "max_size_kb", "percent-max-degradation", 0.0)]


def require_baseline(budgets: list[Budget], baseline: dict[str, Any] | None) -> None:
    """Relative goals need a baseline report: refuse them without one, naming them."""
    names = [b.name for b in budgets if b.goal != "threshold"]
    if names and baseline is None:
        raise EdgeqError(f"budgets {', '.join(names)} compare with a baseline: pass "
                         f"--baseline OLD/report.json")


def evaluate(budgets: list[Budget], report: dict[str, Any],
             baseline: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """One result per (budget, target): ``{name, target, metric, goal, limit, value, unit,
    ok, message}``; ``ok`` None when a ``*`` budget has no figure on that target (skipped)."""
    require_baseline(budgets, baseline)
    targets = report.get("targets", {})
    results = []
    for b in budgets:
        names = sorted(targets) if b.target == "*" else [b.target]
        for t in names:
            results.append(_one(b, t, targets.get(t), report, baseline))
    return results


def _one(b: Budget, t: str, entry: dict[str, Any] | None, report: dict[str, Any],
         baseline: dict[str, Any] | None) -> dict[str, Any]:
    direction, unit, figure = METRICS[b.metric]
    res: dict[str, Any] = {"name": f"{t}.{b.metric}", "target": t, "metric": b.metric,
                           "goal": b.goal, "limit": b.value, "unit": unit, "value": None}
    if entry is None:
        refused = t in report.get("refused_targets", {})
        return dict(res, ok=False, message=f"target {t} was refused" if refused
                    else f"target {t} was not exported")
    value = figure(entry, report)
    if value is None:
        if b.target == "*":
            return dict(res, ok=None, message=f"no {b.metric} figure for {t}: not applicable")
        return dict(res, ok=False, message=f"{t} has no {b.metric} figure (see docs/config.md "
                                           f"for what each target reports)")
    value = value if isinstance(value, int) and not isinstance(value, bool) else float(value)
    res["value"] = value
    if b.ratio_to is not None:
        ref = report.get("targets", {}).get(b.ratio_to, {}).get("latency_ms")
        if not ref:
            return dict(res, ok=False, message=f"no latency of {b.ratio_to} to compare with")
        ratio = value / ref
        ok = bool(ratio <= b.value)
        return dict(res, ok=ok, message=f"{t} latency {value:g} ms = {ratio:.3g} x "
                    f"{b.ratio_to}'s {ref:g} ms {'<=' if ok else '>'} {b.value:g} x")
    if b.goal == "threshold":
        ok = bool(value <= b.value if direction == "max" else value >= b.value)
        rel = ("<=" if ok else ">") if direction == "max" else (">=" if ok else "<")
        return dict(res, ok=ok, message=f"{t} {b.metric} {_fmt(value)} {rel} {_fmt(b.value)} "
                    f"{unit}")
    assert baseline is not None
    base_entry = baseline.get("targets", {}).get(t)
    base = figure(base_entry, baseline) if base_entry is not None else None
    if base is None:
        if b.target == "*":
            return dict(res, ok=None, message=f"the baseline has no {b.metric} for {t}: "
                                              f"not compared")
        return dict(res, ok=False, message=f"the baseline has no {b.metric} for {t}")
    res["baseline"] = base if isinstance(base, int) else float(base)
    worse = value - base if direction == "max" else base - value  # > 0: got worse
    if b.goal in ("max-degradation", "min-improvement"):
        change = worse if b.goal == "max-degradation" else -worse
        what = f"{_fmt(change)} {unit}"
    else:
        if base == 0:
            return dict(res, ok=False, message=f"baseline {b.metric} of {t} is 0: a percent "
                                               f"change is undefined")
        change = 100 * (worse if b.goal == "percent-max-degradation" else -worse) / abs(base)
        what = f"{change:.3g}%"
    ok = bool(change <= b.value if "degradation" in b.goal else change >= b.value)
    verb = "worse" if "degradation" in b.goal else "better"
    return dict(res, ok=ok, message=f"{t} {b.metric} {_fmt(value)} vs baseline {_fmt(base)}: "
                f"{what} {verb} ({'within' if ok else 'beyond'} {b.goal} {_fmt(b.value)})")


def _fmt(x: float) -> str:
    return f"{x:.4g}" if isinstance(x, float) else str(x)


def failed(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in results if r["ok"] is False]


def junit_xml(results: list[dict[str, Any]], suite: str = "edgeq budgets") -> str:
    """One test case per budget and target (GitLab and GitHub show them natively); skipped
    where a budget has no figure on a target."""
    fails = len(failed(results))
    skips = sum(r["ok"] is None for r in results)
    lines = ['<?xml version="1.0" encoding="UTF-8"?>',
             f'<testsuites name={quoteattr(suite)} tests="{len(results)}" '
             f'failures="{fails}" skipped="{skips}">',
             f'  <testsuite name={quoteattr(suite)} tests="{len(results)}" '
             f'failures="{fails}" skipped="{skips}">']
    for r in results:
        head = (f'    <testcase classname={quoteattr("edgeq." + r["target"])} '
                f'name={quoteattr(r["metric"])}')
        if r["ok"] is True:
            lines.append(head + "/>")
        elif r["ok"] is None:
            lines += [head + ">", f"      <skipped message={quoteattr(r['message'])}/>",
                      "    </testcase>"]
        else:
            lines += [head + ">", f"      <failure message={quoteattr(r['message'])}>"
                      f"{escape(r['message'])}</failure>", "    </testcase>"]
    lines += ["  </testsuite>", "</testsuites>", ""]
    return "\n".join(lines)
