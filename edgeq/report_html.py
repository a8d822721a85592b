"""``OUT/report.html``: one self-contained page of what ``edgeq export`` (and ``edgeq profile``)
left in an output folder (docs/report_html.md). Inline SVG and CSS only: no script, no font or
style sheet to fetch, so it opens offline and every plot is visible without JavaScript.

``write_html(out_dir)`` reads the folder (``collect``) and writes the page; ``render_html(report,
extras)`` is the pure formatting step: the same inputs give the same bytes (no timestamps, fixed
number formatting, the inputs' own order). Each plot is an ``<svg data-plot="NAME">`` with a
``<title>``, drawn only when its data is in the folder:

- ``sqnr``: per-layer SQNR of the integer model (``report.json`` ``quantization.layers``);
- ``memory``: bytes live at each step of the layer-by-layer schedule (``model.eqm`` planned by
  ``edgeq.schedule.plan``), with each C target's arena (``targets.T.memory.arena_bytes``) as a
  line; ``memory-run`` the same for the schedule the C library runs, when it differs;
- ``latency-T``: per-layer median (bar) and p90 (tick) of target ``T`` (``profile.json``), in
  the target's own unit;
- ``npu-cycles``, ``npu-energy``: the NPU simulator's cycles and energy (MAC, SRAM, off-chip
  stacked) per layer (``npu_sim.json``);
- ``roofline``: per layer MACs per off-chip byte against MACs per cycle, log-log, under the
  machine's peak and its bandwidth roof (``npu_sim.json``).

Each plot's background is its own shade of near-white (``_background``): invisible, but it lets
a screenshot be cut into plots without knowing the layout (tests/test_report_html.py).
"""

from __future__ import annotations

import html
import json
import math
import os
from typing import Any, Sequence

from edgeq import serialize
from edgeq.ir.graph import EdgeqError
from edgeq.schedule.plan import plan_schedule

REPORT = "report.json"
PROFILE = "profile.json"
NPU_SIM = "npu_sim.json"
MODEL = "model.eqm"
HTML = "report.html"

FULL_W, HALF_W = 1100, 540      # plot widths, px (two half plots and their gap fill one row)
BAR_H, ROOF_H = 320, 400        # plot heights, px
HALF_MAX_BARS = 24              # a latency plot of more layers takes the full width
MARGIN = {"left": 80, "right": 16, "top": 34, "bottom": 104}
LABEL_PITCH = 12  # px between two x labels, at least
LABEL_CHARS = 20  # x labels longer than this lose their start (the bar's tooltip has it all)
COLORS = {"int8": "#3468b0", "int16": "#d0792b", "other": "#7a7a7a", "bar": "#3468b0",
          "run": "#2f9e6e", "mac": "#3468b0", "sram": "#2f9e6e", "offchip": "#c2453d",
          "line": "#c2453d", "p90": "#222222", "point": "#3468b0", "roof": "#555555",
          "axis": "#333333", "grid": "#dcdcdc"}
ARENA_COLORS = ("#c2453d", "#8e44ad", "#b8860b")
ALIAS_KINDS = ("alias",)  # npu-sim layers that move no data (Reshape): no cycles to draw

CSS = """
body { margin: 0; padding: 16px 24px; font: 13px/1.4 sans-serif; color: #222; background: #fff;
  width: 1100px; }
h1 { font-size: 20px; margin: 0 0 8px; } h2 { font-size: 16px; margin: 20px 0 6px; }
table { border-collapse: collapse; margin: 6px 0; }
th, td { border: 1px solid #ccc; padding: 2px 8px; text-align: left; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.plots { display: flex; flex-wrap: wrap; gap: 12px 20px; width: 1100px; }
figure { margin: 0; } figcaption { color: #555; font-size: 12px; max-width: 1100px; }
svg { display: block; } svg text { font-family: sans-serif; font-size: 11px; fill: #333; }
svg .ttl { font-size: 13px; font-weight: bold; }
p.note { color: #555; margin: 2px 0; }
""".strip()


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _n(x: float) -> str:
    """A coordinate: one decimal, no '-0.0' (deterministic, short)."""
    s = f"{x:.1f}"
    return "0.0" if s == "-0.0" else s


def _si(x: float) -> str:
    """An axis or table number: 3 significant digits with k/M/G."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "inf" if x == math.inf else "-inf" if x == -math.inf else "-"
    a = abs(x)
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if a >= div:
            return f"{x / div:.3g}{suffix}"
    return f"{x:.3g}"


def _num(x: Any) -> str:
    """A table cell: integers with thousands separators, floats as given, None as '-'."""
    if x is None:
        return "-"
    if isinstance(x, bool):
        return str(x).lower()
    if isinstance(x, int):
        return f"{x:,}"
    if isinstance(x, float):
        return _si(x) if not math.isfinite(x) else f"{x:g}"
    return str(x)


def _background(k: int) -> str:
    """Plot ``k``'s background: a bluish near-white that differs from every other plot's (and
    from any grey, which antialiased text is made of)."""
    return f"#{0xee + 3 * (k % 4):02x}{0xf1 + 3 * (k // 4 % 4):02x}fd"  # 16 shades


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """Round tick values covering [lo, hi] (steps of 1, 2 or 5 times a power of ten)."""
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    k = math.floor(lo / step + 1e-9)
    out = [round(k * step, 12)]
    while out[-1] < hi - 1e-9 * step:
        k += 1
        out.append(round(k * step, 12))
    return out


def _short(label: str) -> str:
    return label if len(label) <= LABEL_CHARS else "\u2026" + label[1 - LABEL_CHARS:]


class _Svg:
    """One plot: ``<svg data-plot=...>`` with its title, background and parts appended."""

    def __init__(self, name: str, title: str, width: int, height: int, index: int):
        self.name, self.title, self.w, self.h = name, title, width, height
        self.parts = [f'<rect class="bg" x="0" y="0" width="{width}" height="{height}" '
                      f'fill="{_background(index)}"/>',
                      f'<text class="ttl" x="{MARGIN["left"]}" y="20">{_e(title)}</text>']

    def add(self, part: str) -> None:
        self.parts.append(part)

    def text(self, x: float, y: float, s: str, anchor: str = "start", extra: str = "") -> None:
        self.add(f'<text x="{_n(x)}" y="{_n(y)}" text-anchor="{anchor}"{extra}>{_e(s)}</text>')

    def line(self, x1: float, y1: float, x2: float, y2: float, color: str, width: float = 1,
             dash: str = "") -> None:
        d = f' stroke-dasharray="{dash}"' if dash else ""
        self.add(f'<line x1="{_n(x1)}" y1="{_n(y1)}" x2="{_n(x2)}" y2="{_n(y2)}" '
                 f'stroke="{color}" stroke-width="{width:g}"{d}/>')

    def legend(self, items: Sequence[tuple[str, str]]) -> None:
        x = self.w - MARGIN["right"]
        for label, color in reversed(items):
            x -= 8 * len(label) + 26
            self.add(f'<rect x="{_n(x)}" y="10" width="12" height="12" fill="{color}"/>')
            self.text(x + 16, 20, label)

    def render(self) -> str:
        return (f'<svg data-plot="{_e(self.name)}" '
                f'width="{self.w}" height="{self.h}" viewBox="0 0 {self.w} {self.h}" '
                f'role="img"><title>{_e(self.title)}</title>' + "".join(self.parts) + "</svg>")


def _bar_chart(svg: _Svg, labels: Sequence[str], series: Sequence[tuple[str, Sequence[float],
               str]], y_label: str, *, tips: Sequence[str], lines: Sequence[tuple[float, str,
               str]] = (), whiskers: Sequence[float | None] | None = None) -> None:
    """Vertical bars, one per label, ``series`` (name, values, color) stacked (a non-finite
    value is drawn at the top of the axis and marked); ``lines``: (value, label, color)
    horizontal reference lines; ``whiskers``: a tick at that value on each bar."""
    x0, x1 = MARGIN["left"], svg.w - MARGIN["right"]
    y0, y1 = svg.h - MARGIN["bottom"], MARGIN["top"]
    finite = [v for _, vs, _ in series for v in vs if math.isfinite(v)]
    tops = [sum(max(0.0, vs[i]) for _, vs, _ in series if math.isfinite(vs[i]))
            for i in range(len(labels))]
    hi = max(tops + [v for v, _, _ in lines] + [w for w in whiskers or [] if w is not None]
             + [0.0])
    lo = min(finite + [0.0])
    ticks = _ticks(lo, hi * 1.05 if hi > 0 else 1.0)
    lo, hi = ticks[0], ticks[-1]

    def y(v: float) -> float:
        return y0 - (v - lo) / (hi - lo) * (y0 - y1)

    for t in ticks:
        svg.line(x0, y(t), x1, y(t), COLORS["grid"])
        svg.text(x0 - 6, y(t) + 4, _si(t), "end")
    svg.text(16, (y0 + y1) / 2, y_label, "middle",
             f' transform="rotate(-90 16 {_n((y0 + y1) / 2)})"')
    n = max(1, len(labels))
    slot = (x1 - x0) / n
    bar_w = max(1.0, slot * 0.8)
    every = max(1, math.ceil(LABEL_PITCH / slot))  # labels closer than this would overlap
    for i, label in enumerate(labels):
        bx = x0 + i * slot + (slot - bar_w) / 2
        pos = neg = 0.0
        parts = []
        for _, vs, color in series:
            v = vs[i]
            if not math.isfinite(v):
                v, marked = (hi - pos if v > 0 else lo - neg), True
            else:
                marked = False
            if v >= 0:
                top, bottom, pos = pos + v, pos, pos + v
            else:
                top, bottom, neg = neg, neg + v, neg + v
            if top == bottom:
                continue
            parts.append(f'<rect x="{_n(bx)}" y="{_n(y(top))}" width="{_n(bar_w)}" '
                         f'height="{_n(y(bottom) - y(top))}" fill="{color}"/>')
            if marked:
                svg.text(bx + bar_w / 2, y(hi) - 3, "inf", "middle")
        if whiskers is not None and whiskers[i] is not None:
            wy = y(whiskers[i])  # type: ignore[arg-type]
            parts.append(f'<line x1="{_n(bx)}" y1="{_n(wy)}" x2="{_n(bx + bar_w)}" '
                         f'y2="{_n(wy)}" stroke="{COLORS["p90"]}" stroke-width="2"/>')
        svg.add(f'<g><title>{_e(tips[i])}</title>' + "".join(parts) + "</g>")
        if i % every == 0:
            lx, ly = x0 + (i + 0.5) * slot + 4, y0 + 10
            svg.text(lx, ly, _short(label), "end",
                     f' transform="rotate(-45 {_n(lx)} {_n(ly)})"')
    for v, label, color in lines:
        svg.line(x0, y(v), x1, y(v), color, 2, "6 4")
        svg.text(x1 - 4, y(v) - 5, label, "end", f' fill="{color}"')
    svg.line(x0, y(max(lo, 0.0)), x1, y(max(lo, 0.0)), COLORS["axis"])
    svg.line(x0, y0, x0, y1, COLORS["axis"])


def _log_ticks(lo: float, hi: float) -> list[float]:
    return [10.0 ** k for k in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)]


def _roofline(svg: _Svg, sim: dict[str, Any]) -> int:
    """Layers as points (MACs per off-chip byte, MACs per cycle), log-log, under the peak and
    the bandwidth roof (MACs/cycle = intensity * peak / balance); returns the points drawn."""
    peak = float(sim["peak_macs_per_cycle"])
    balance = float(sim["machine_balance_macs_per_offchip_byte"])
    pts = [(float(r["intensity_macs_per_offchip_byte"]), r["macs"] / r["cycles"], r)
           for r in sim["layers"] if r.get("intensity_macs_per_offchip_byte")
           and r.get("cycles") and r.get("macs")]
    xs = [p[0] for p in pts] + [balance]
    ys = [p[1] for p in pts] + [peak]
    xt = _log_ticks(min(xs) / 2, max(xs) * 2)
    yt = _log_ticks(min(ys) / 2, max(ys) * 2)
    x0, x1 = MARGIN["left"], svg.w - MARGIN["right"]
    y0, y1 = svg.h - 56, MARGIN["top"]

    def px(v: float) -> float:
        return x0 + (math.log10(v) - math.log10(xt[0])) / (
            math.log10(xt[-1]) - math.log10(xt[0])) * (x1 - x0)

    def py(v: float) -> float:
        return y0 - (math.log10(v) - math.log10(yt[0])) / (
            math.log10(yt[-1]) - math.log10(yt[0])) * (y0 - y1)

    for t in xt:
        svg.line(px(t), y0, px(t), y1, COLORS["grid"])
        svg.text(px(t), y0 + 16, _si(t), "middle")
    for t in yt:
        svg.line(x0, py(t), x1, py(t), COLORS["grid"])
        svg.text(x0 - 6, py(t) + 4, _si(t), "end")
    svg.text((x0 + x1) / 2, y0 + 36, "operational intensity, MACs per off-chip byte", "middle")
    svg.text(16, (y0 + y1) / 2, "achieved MACs per cycle", "middle",
             f' transform="rotate(-90 16 {_n((y0 + y1) / 2)})"')
    # the roof: bandwidth-bound left of the balance point, compute-bound right of it
    xa = max(xt[0], yt[0] * balance / peak)
    svg.add(f'<polyline points="{_n(px(xa))},{_n(py(xa * peak / balance))} '
            f'{_n(px(balance))},{_n(py(peak))} {_n(px(xt[-1]))},{_n(py(peak))}" fill="none" '
            f'stroke="{COLORS["roof"]}" stroke-width="2"/>')
    svg.text(x1 - 4, py(peak) - 6, f"peak {peak:g} MACs/cycle", "end")
    svg.line(px(balance), y0, px(balance), y1, COLORS["line"], 1.5, "6 4")
    svg.text(px(balance) + 4, y1 + 12, f"balance {balance:g} MACs/B", "start",
             f' fill="{COLORS["line"]}"')
    for x, yv, r in pts:
        tip = (f"{r['name']} ({r.get('op')}): {x:g} MACs/B, {yv:.3g} MACs/cycle, "
               f"bound: {r.get('bound')}")
        svg.add(f'<g><title>{_e(tip)}</title><circle cx="{_n(px(x))}" cy="{_n(py(yv))}" '
                f'r="5" fill="{COLORS["point"]}" stroke="#fff" stroke-width="1"/></g>')
    svg.line(x0, y0, x1, y0, COLORS["axis"])
    svg.line(x0, y0, x0, y1, COLORS["axis"])
    return len(pts)


def _float_or_nan(x: Any) -> float:
    return float(x) if x is not None else math.nan


def _plot_sqnr(layers: list[dict[str, Any]], k: int) -> tuple[str, str]:
    svg = _Svg("sqnr", "Per-layer SQNR of the integer model", FULL_W, BAR_H, k)
    dtypes = [r.get("dtype") if r.get("dtype") in ("int8", "int16") else "other"
              for r in layers]
    used = [d for d in ("int8", "int16", "other") if d in dtypes]
    values = [_float_or_nan(r.get("sqnr_db")) for r in layers]
    values = [0.0 if math.isnan(v) else v for v in values]
    series = [(d, [v if dt == d else 0.0 for v, dt in zip(values, dtypes)], COLORS[d])
              for d in used]
    tips = [f"{r.get('name')} ({r.get('op')}, {r.get('dtype')}): {_num(r.get('sqnr_db'))} dB"
            for r in layers]
    _bar_chart(svg, [str(r.get("name")) for r in layers], series, "SQNR, dB", tips=tips)
    svg.legend([(d, COLORS[d]) for d in used])
    cap = ("10 log10(sum f^2 / sum (f - dequant(q))^2) of each integer value against its float "
           "twin over the evaluation samples (report.json quantization.layers).")
    return svg.render(), cap


def _arena_lines(report: dict[str, Any]) -> list[tuple[float, str, str]]:
    """One line per distinct C arena size, labelled with the targets that have it."""
    by: dict[int, list[str]] = {}
    for name, t in report.get("targets", {}).items():
        m = t.get("memory") if isinstance(t, dict) else None
        if isinstance(m, dict) and isinstance(m.get("arena_bytes"), int):
            by.setdefault(m["arena_bytes"], []).append(name)
    return [(float(b), f"arena {', '.join(ts)}: {b:,} B", ARENA_COLORS[i % len(ARENA_COLORS)])
            for i, (b, ts) in enumerate(by.items())]


def _plot_memory(name: str, title: str, steps: Sequence[str], live: Sequence[int],
                 lines: list[tuple[float, str, str]], color: str, k: int) -> str:
    svg = _Svg(name, title, FULL_W, BAR_H, k)
    tips = [f"step {i}: {s}: {b:,} bytes live" for i, (s, b) in enumerate(zip(steps, live))]
    _bar_chart(svg, list(steps), [("live bytes", [float(b) for b in live], color)],
               "bytes live", tips=tips, lines=lines)
    return svg.render()


UNITS = {"cpu_ns": (1e-3, "us"), "wall_us": (1.0, "us"), "instructions": (1.0, "instructions"),
         "cycles": (1.0, "cycles")}


def _plot_latency(target: str, p: dict[str, Any], k: int) -> str:
    scale, unit = UNITS.get(p.get("unit", ""), (1.0, str(p.get("unit"))))
    layers = p.get("layers", [])
    width = HALF_W if len(layers) <= HALF_MAX_BARS else FULL_W
    svg = _Svg(f"latency-{target}", f"Latency per layer: {target}", width, BAR_H, k)
    med = [float(r["median"]) * scale for r in layers]
    p90 = [float(r["p90"]) * scale if r.get("p90") is not None else None for r in layers]
    tips = [f"{r['name']} ({r.get('op')}): median {_si(m)} {unit}, p90 {_si(q or m)} {unit}, "
            f"{100 * float(r.get('share', 0)):.1f}% of the total" for r, m, q in
            zip(layers, med, p90)]
    _bar_chart(svg, [str(r["name"]) for r in layers], [("median", med, COLORS["bar"])],
               f"median, {unit}", tips=tips, whiskers=p90)
    svg.legend([("median", COLORS["bar"]), ("p90", COLORS["p90"])])
    return svg.render()


def _npu_layers(sim: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in sim.get("layers", []) if r.get("kind") not in ALIAS_KINDS]


def _plot_npu_cycles(sim: dict[str, Any], k: int) -> str:
    layers = _npu_layers(sim)
    svg = _Svg("npu-cycles", f"NPU cycles per layer ({sim.get('target')})", FULL_W, BAR_H, k)
    bounds = sorted({str(r.get("bound")) for r in layers})
    palette = ("#3468b0", "#c2453d", "#2f9e6e", "#d0792b", "#8e44ad", "#7a7a7a")
    color = {b: palette[i % len(palette)] for i, b in enumerate(bounds)}
    series = [(b, [float(r["cycles"]) if str(r.get("bound")) == b else 0.0 for r in layers],
               color[b]) for b in bounds]
    tips = [f"{r['name']} ({r.get('op')}): {float(r['cycles']):,.0f} cycles, "
            f"{100 * float(r.get('mac_utilization', 0)):.1f}% MAC utilization, "
            f"{r.get('bound')}-bound" for r in layers]
    _bar_chart(svg, [str(r["name"]) for r in layers], series, "cycles", tips=tips)
    svg.legend([(f"{b}-bound", color[b]) for b in bounds])
    return svg.render()


def _plot_npu_energy(sim: dict[str, Any], k: int) -> str:
    layers = _npu_layers(sim)
    svg = _Svg("npu-energy", f"NPU energy per layer ({sim.get('target')}, "
               f"{sim.get('energy_table')})", FULL_W, BAR_H, k)
    parts = ("mac", "sram", "offchip")
    series = [(p, [float(r.get("energy_pj", {}).get(p, 0.0)) / 1e3 for r in layers],
               COLORS[p]) for p in parts]
    tips = [f"{r['name']}: " + ", ".join(
        f"{p} {float(r.get('energy_pj', {}).get(p, 0.0)) / 1e3:.4g} nJ" for p in parts)
        for r in layers]
    _bar_chart(svg, [str(r["name"]) for r in layers], series, "energy, nJ", tips=tips)
    svg.legend([("MAC", COLORS["mac"]), ("SRAM", COLORS["sram"]),
                ("off-chip", COLORS["offchip"])])
    return svg.render()


def _figure(svg: str, caption: str) -> str:
    return f"<figure>{svg}<figcaption>{_e(caption)}</figcaption></figure>"


def _max_lsb(v: Any) -> str:
    if not isinstance(v, dict):
        return "-"
    vals = [v[k]["max_abs_diff_lsb"] for k in ("calibration", "held_out")
            if isinstance(v.get(k), dict) and "max_abs_diff_lsb" in v[k]]
    return _num(max(vals)) if vals else "-"


def _quantization(report: dict[str, Any]) -> dict[str, Any]:
    """The quantization report: inside an export's, or the whole of ``edgeq quantize``'s."""
    return report.get("quantization") or (report if "layers" in report else {})


def _header(report: dict[str, Any]) -> str:
    q = _quantization(report)
    facts = [("model", report.get("model")),
             ("integer interpreter SQNR vs float, dB",
              report.get("integer_interpreter", {}).get("sqnr_db_vs_float")),
             ("output SQNR, dB", ", ".join(f"{k} {_num(v)}" for k, v in
                                           q.get("output_sqnr_db", {}).items()) or None),
             ("top-1 agreement with float", None if q.get("top1_agreement") is None else
              f"{100 * float(q['top1_agreement']):.1f}%"),
             ("calibration / held-out samples",
              f"{_num(report.get('calibration_samples'))} / "
              f"{_num(report.get('held_out_samples'))}")]
    rows = "".join(f"<tr><th>{_e(k)}</th><td>{_e(_num(v))}</td></tr>" for k, v in facts
                   if v is not None)
    out = [f"<h1>edgeq report: {_e(report.get('model'))}</h1>", f"<table>{rows}</table>"]
    head = ["target", "artifact", "size, bytes", "max LSB vs interpreter", "SQNR vs float, dB",
            "latency, ms"]
    trs = []
    for name, t in report.get("targets", {}).items():
        t = t if isinstance(t, dict) else {}
        cells = [name, t.get("artifact"), t.get("size_bytes"), _max_lsb(t.get("verification")),
                 t.get("sqnr_db_vs_float"), t.get("latency_ms")]
        trs.append("<tr>" + "".join(
            f'<td class="num">{_e(_num(c))}</td>' if isinstance(c, (int, float)) and not
            isinstance(c, bool) else f"<td>{_e(_num(c))}</td>" for c in cells) + "</tr>")
    out.append("<h2>Targets</h2><table><tr>" + "".join(f"<th>{_e(h)}</th>" for h in head)
               + "</tr>" + "".join(trs) + "</table>")
    refused = report.get("refused_targets") or {}
    if refused:
        out.append("<h2>Refused targets</h2><table><tr><th>target</th><th>why</th></tr>" + "".join(
            f"<tr><td>{_e(t)}</td><td>" + "<br>".join(_e(r) for r in rs) + "</td></tr>"
            for t, rs in refused.items()) + "</table>")
    return "\n".join(out)


def render_html(report: dict[str, Any], extras: dict[str, Any]) -> str:
    """The page for ``report`` (``report.json``) and ``extras``: ``memory`` (``{"layer_by_layer":
    {"steps", "live_bytes"}, "run": {...} or None}``), ``profile`` (``profile.json``),
    ``npu_sim`` (``npu_sim.json``); a missing key leaves its plots out. Pure: no I/O."""
    figs: list[str] = []
    notes: list[str] = []

    def k() -> int:
        return len(figs)

    layers = _quantization(report).get("layers") or []
    if layers:
        figs.append(_figure(*_plot_sqnr(layers, k())))
    mem = extras.get("memory")
    if mem:
        lines = _arena_lines(report)
        lbl = mem["layer_by_layer"]
        figs.append(_figure(_plot_memory(
            "memory", "Activation memory per step, layer by layer", lbl["steps"],
            lbl["live_bytes"], lines, COLORS["bar"], k()),
            "Bytes live in the arena at each step of the layer-by-layer schedule (the graph's "
            "order; model.eqm planned as edgeq plan-memory --steps does)" + (
                "; dashed: the static arena of each C target (report.json "
                "targets.T.memory.arena_bytes)." if lines else ".")))
        run = mem.get("run")
        if run:
            figs.append(_figure(_plot_memory(
                "memory-run", "Activation memory per step, the schedule the C library runs",
                run["steps"], run["live_bytes"], lines, COLORS["run"], k()),
                "The same for the searched order (and the patch-based stage, when there is "
                "one) that the C backend generates."))
    prof = extras.get("profile")
    if prof and prof.get("targets"):
        for target, p in prof["targets"].items():
            if p.get("layers"):
                figs.append(_figure(_plot_latency(target, p, k()),
                                    f"{target} ({p.get('source')}): "
                                    f"{p.get('clock', p.get('unit'))}; bars: median, ticks: "
                                    f"p90 over {_num(p.get('total', {}).get('runs'))} run(s) "
                                    f"(profile.json)."))
    sim = extras.get("npu_sim")
    if sim and _npu_layers(sim):
        t = sim.get("total", {})
        figs.append(_figure(_plot_npu_cycles(sim, k()),
                            f"npu_sim.json: {_num(t.get('cycles'))} cycles in all, "
                            f"{_num(t.get('inference_us'))} us at "
                            f"{_si(float(sim.get('clock_hz', 0)))}Hz. {sim.get('note', '')}"))
        figs.append(_figure(_plot_npu_energy(sim, k()),
                            f"npu_sim.json energy_pj per layer: {_num(t.get('energy_uj'))} uJ "
                            f"in all."))
        if sim.get("peak_macs_per_cycle") and sim.get("machine_balance_macs_per_offchip_byte"):
            svg = _Svg("roofline", f"Roofline ({sim.get('target')})", HALF_W, ROOF_H, k())
            drawn = _roofline(svg, sim)
            left = len(_npu_layers(sim)) - drawn
            figs.append(_figure(svg.render(), "Each layer's MACs per off-chip byte against its "
                                "MACs per cycle (npu_sim.json)" + (
                                    f"; {left} layer(s) with no off-chip traffic or no MACs "
                                    f"not shown." if left else ".")))
    if not figs:
        notes.append("No per-layer data in this folder.")
    body = [_header(report), "<h2>Plots</h2>",
            *[f'<p class="note">{_e(n)}</p>' for n in notes],
            '<div class="plots">' + "\n".join(figs) + "</div>"]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>edgeq report: {_e(report.get('model'))}</title>"
            f"<style>\n{CSS}\n</style></head>\n<body>\n" + "\n".join(body)
            + "\n</body></html>\n")


def _memory(out_dir: str) -> dict[str, Any] | None:
    """The layer-by-layer steps of ``model.eqm`` (and the schedule that runs, when it
    differs), as ``edgeq plan-memory --steps`` lists them."""
    path = os.path.join(out_dir, MODEL)
    if not os.path.exists(path):
        return None
    schedule = plan_schedule(serialize.load(path))
    lbl, run = schedule.layer_by_layer, schedule.plan
    out: dict[str, Any] = {"layer_by_layer": {"steps": list(lbl.steps),
                                              "live_bytes": list(lbl.step_live_bytes)},
                           "run": None}
    if (run.steps, run.step_live_bytes) != (lbl.steps, lbl.step_live_bytes):
        out["run"] = {"steps": list(run.steps), "live_bytes": list(run.step_live_bytes)}
    return out


def _load_json(path: str) -> Any:
    with open(path) as f:
        return json.load(f)


def collect(out_dir: str | os.PathLike) -> tuple[dict[str, Any], dict[str, Any]]:
    """(report, extras) of a folder ``edgeq export`` wrote, as ``render_html`` takes them."""
    out_dir = os.fspath(out_dir)
    path = os.path.join(out_dir, REPORT)
    if not os.path.exists(path):
        raise EdgeqError(f"{out_dir}: no {REPORT} (not a folder `edgeq export` wrote)")
    report = _load_json(path)
    extras: dict[str, Any] = {}
    memory = _memory(out_dir)
    if memory is not None:
        extras["memory"] = memory
    for key, name in (("profile", PROFILE), ("npu_sim", NPU_SIM)):
        p = os.path.join(out_dir, name)
        if os.path.exists(p):
            extras[key] = _load_json(p)
    return report, extras


def write_html(out_dir: str | os.PathLike) -> str:
    """Write ``report.html`` from what is in ``out_dir``; returns its path."""
    report, extras = collect(out_dir)
    path = os.path.join(os.fspath(out_dir), HTML)
    with open(path, "w", encoding="utf-8") as f:
        f.write(render_html(report, extras))
    return path


__all__ = ["collect", "render_html", "write_html"]
