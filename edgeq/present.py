"""Text for people: aligned tables and the reports of ``inspect``, ``quantize``, ``export`` and
``plan-memory``. Pure formatting of data the API returns; nothing here computes a figure."""

from __future__ import annotations

from typing import Any

from edgeq.schedule.plan import Schedule


def format_table(rows: list[list[Any]], header: list[str]) -> str:
    """Plain aligned text table; numbers right-aligned."""
    cells = [header] + [[_fmt(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    numeric = [all(isinstance(r[i], (int, float)) for r in rows) for i in range(len(header))]
    lines = []
    for k, r in enumerate(cells):
        lines.append("  ".join(c.rjust(w) if numeric[i] else c.ljust(w)
                               for i, (c, w) in enumerate(zip(r, widths))).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _fmt(c: Any) -> str:
    if isinstance(c, int):
        return f"{c:,}"
    if isinstance(c, float):
        return f"{c:.4g}"
    return str(c)


def format_inspect(info: dict[str, Any]) -> str:
    """``edgeq inspect``: the per-layer table of ``api.inspect``."""
    rows = [[r["name"], r["op"], "x".join(map(str, r["output_shape"])), r["params"], r["macs"],
             r["activation_bytes"]] for r in info["layers"]]
    t = info["totals"]
    head = (f"model {info['model']}: inputs "
            + ", ".join(f"{i['name']} {i['dtype']}{i['shape']}" for i in info["inputs"])
            + "; outputs " + ", ".join(f"{o['name']} {o['dtype']}{o['shape']}"
                                        for o in info["outputs"]))
    table = format_table(rows, ["layer", "op", "output", "params", "MACs", "act bytes"])
    total = (f"total: {t['layers']} layers, {t['params']:,} params ({t['param_bytes']:,} bytes), "
             f"{t['macs']:,} MACs, largest activation {t['max_activation_bytes']:,} bytes")
    return f"{head}\n{table}\n{total}"


def format_export(report: dict[str, Any]) -> str:
    """``edgeq export``: one row per target, then what each backend reported of its own."""
    rows = []
    for name, t in report["targets"].items():
        v = t["verification"]
        if not isinstance(v, dict):
            continue
        rows.append([name, t["artifact"], t["size_bytes"], v["calibration"]["max_abs_diff_lsb"],
                     v["held_out"]["max_abs_diff_lsb"],
                     (v.get("per_layer") or v.get("per_layer_default_delegate") or
                      {}).get("max_abs_diff_lsb", "-"),
                     t["sqnr_db_vs_float"],
                     "-" if t["latency_ms"] is None else t["latency_ms"]])
    table = format_table(rows, ["target", "artifact", "bytes", "max LSB (calib)",
                                "max LSB (held-out)", "max LSB per layer", "SQNR dB",
                                "latency ms"])
    lines = [table, f"integer interpreter: SQNR {report['integer_interpreter']['sqnr_db_vs_float']}"
             f" dB vs float on held-out samples"]
    for name, t in report["targets"].items():
        if "memory" in t:
            m = t["memory"]
            pp = m["patch_plan"]
            line = (f"{name}: static arena {m['arena_bytes']:,} bytes"
                    + (f" (patch-based: {pp['grid']}x{pp['grid']} patches up to "
                       f"{pp['split_layer']}, +{pp['mac_overhead_percent']}% MACs)" if pp else
                       " (layer by layer)"))
            line += f", layer by layer {m['layer_by_layer_arena_bytes']:,}"
            tflm = report["targets"].get("tflm", {}).get("arena_bytes")
            if tflm:
                line += f", {m['arena_bytes'] / tflm:.2f}x TFLite Micro's arena"
            sz = m.get("arm_none_eabi_size")
            if sz:
                line += (f"; {name} build: text {sz['text']:,}, rodata {sz['rodata']:,}, bss "
                         f"{sz['bss']:,} bytes (flash {sz['flash_bytes']:,})")
            lines.append(line)
        if "arena_bytes" in t:
            lines.append(f"{name}: smallest TFLite Micro arena that allocates: "
                         f"{t['arena_bytes']:,} bytes")
        if "summary" in t:
            sm = t["summary"]
            lines.append(f"{name}: Vela ({sm['accelerator_config']}): SRAM "
                         f"{sm.get('sram_memory_used')} KiB, NPU cycles {sm.get('cycles_npu')}, "
                         f"{sm.get('npu_operators')} NPU / {sm.get('cpu_operators')} CPU "
                         f"operators; {t['verification']}")
        if "per_layer_default_delegate" in t.get("verification", {}):
            lines.append(f"{name}: bit-exactness is on LiteRT's reference kernels; the default "
                         f"XNNPACK path is within "
                         f"{t['verification']['per_layer_default_delegate']['max_abs_diff_lsb']}"
                         f" LSB per layer")
    for name, t in report["targets"].items():
        if "runtime_options" in t:
            lines.append(f"{name}: runs with {t['runtime_options']} (recorded in the model's "
                         f"metadata; without it: SQNR {t['sqnr_db_without_runtime_options']} dB)")
    return "\n".join(lines)


def format_memory_schedule(graph_name: str, schedule: Schedule, int8: bool,
                           steps: bool = False) -> str:
    """``edgeq plan-memory``: the peak of each schedule (``int8``: a float graph planned as its
    int8 model), and with ``steps`` the live bytes of each layer-by-layer step."""
    plan, ordered, patch = schedule.layer_by_layer, schedule.ordered, schedule.patch
    rows = [["layer-by-layer", plan.arena_bytes, "-", "0.0%"]]
    if ordered.arena_bytes < plan.arena_bytes:
        rows.append([f"layer-by-layer, best order{' (searched)' if schedule.searched else ''}"
                     f"{', exact placement' if ordered.optimal else ''}",
                     ordered.arena_bytes, "-", "0.0%"])
    if patch is not None:
        split_name = schedule.execution_order[patch.split].name
        rows.append([f"patch-based ({patch.n}x{patch.n} patches up to '{split_name}')",
                     patch.peak_bytes, patch.n * patch.n, f"{patch.overhead:+.1%}"])
    what = "int8 activations" if int8 else "the integer model's activations"
    lines = [f"activation memory of {graph_name} ({what}):",
             format_table(rows, ["schedule", "peak bytes", "patches", "extra MACs"])]
    if steps:
        lines.append(format_table([[s, b] for s, b in zip(plan.steps, plan.step_live_bytes)],
                                  ["step", "live bytes (layer by layer)"]))
    return "\n".join(lines)


def format_budget(schedule: Schedule, budget_bytes: int, max_overhead_percent: float) -> str:
    """Whether the best schedule fits ``budget_bytes`` of SRAM, and if not what limits it
    (``max_overhead_percent``: the MAC budget the patch search had)."""
    plan, patch, best = schedule.layer_by_layer, schedule.patch, schedule.best_peak_bytes
    if best > budget_bytes:
        worst = max(range(len(plan.step_live_bytes)), key=plan.step_live_bytes.__getitem__)
        why = (f"the layer-by-layer peak is set by step '{plan.steps[worst]}' "
               f"({plan.step_live_bytes[worst]:,} bytes live)")
        if patch is not None:
            why += (f"; patch-based execution within +{max_overhead_percent:g}% MACs gets "
                    f"down to {patch.peak_bytes:,} bytes")
        return (f"does not fit {budget_bytes:,} bytes of SRAM: the smallest achievable peak is "
                f"{best:,} bytes; {why}")
    return (f"fits {budget_bytes:,} bytes of SRAM with the "
            f"{'patch-based' if patch and best == patch.peak_bytes else 'layer-by-layer'} "
            f"schedule ({budget_bytes - best:,} bytes to spare)")


def format_report(report: dict[str, Any]) -> str:
    rows = [[r["name"], r["op"], r["dtype"], r["sqnr_db"]] for r in report["layers"]]
    out = [format_table(rows, ["layer", "integer op", "dtype", "SQNR dB"])]
    out.append("output SQNR: " + ", ".join(f"{k} {v} dB" for k, v in
                                           report["output_sqnr_db"].items()))
    if report.get("top1_agreement") is not None:
        out.append(f"top-1 agreement with float: {report['top1_agreement']:.2%} over "
                   f"{report['eval_samples']} samples")
    for v, m in report.get("mixed_range_concats", {}).items():
        if m["int16"]:
            out.append(f"Concat '{v}' joins ranges {m['ratio']}x apart: kept in int16")
    if report.get("weight_scale_floors"):
        out.append("dead or near-dead weight channels (scale raised so the bias fits): " +
                   ", ".join(f"{k} {v}" for k, v in report["weight_scale_floors"].items()))
    out += [f"WARNING: {w}" for w in report.get("warnings", [])]
    if "weight_bytes" in report:
        wb = report["weight_bytes"]
        out.append(f"weights: {wb['float']:,} bytes float -> {wb['integer']:,} bytes integer")
    if report.get("equalization", {}).get("pairs"):
        out.append(f"cross-layer equalization: {len(report['equalization']['pairs'])} layer "
                   f"pairs")
    if report.get("mixed_precision"):
        last = report["mixed_precision"]["steps"][-1]
        out.append(f"mixed precision: {len(last['int16'])} int16 value(s) for a "
                   f"{report['mixed_precision']['target_sqnr_db']:g} dB target "
                   f"({', '.join(last['int16']) or 'none needed'})")
    if report.get("error_compensated_rounding", {}).get("layers"):
        out.append(f"error-compensated weight rounding: "
                   f"{len(report['error_compensated_rounding']['layers'])} layers")
    if report.get("bias_correction", {}).get("layers"):
        out.append(f"bias correction: {len(report['bias_correction']['layers'])} layers")
    if "quantization_time_s" in report:
        out.append(f"quantized in {report['quantization_time_s']:.2f} s from "
                   f"{report['calibration_samples']} calibration samples")
    return "\n".join(out)


__all__ = ["format_budget", "format_export", "format_inspect", "format_memory_schedule",
           "format_report", "format_table"]


def format_simulation(sim: dict[str, Any]) -> str:
    """``edgeq simulate``: per layer cycles, utilization, bytes per memory, bound, energy."""
    mems = sorted({m for r in sim["layers"] for m in r["bytes"]})
    rows = []
    for r in sim["layers"]:
        if r["kind"] == "alias":
            continue
        rows.append([r["name"], r["kind"], r["macs"], int(round(r["cycles"])),
                     round(100 * r["mac_utilization"], 1),
                     *[r["bytes"].get(m, {}).get("read", 0) + r["bytes"].get(m, {}).get(
                         "write", 0) for m in mems],
                     r["bound"], round(r["energy_pj"]["total"] / 1e3, 3),
                     r["intensity_macs_per_offchip_byte"]
                     if r["intensity_macs_per_offchip_byte"] is not None else "-"])
    head = ["layer", "kind", "MACs", "cycles", "MAC util %", *[f"{m} bytes" for m in mems],
            "bound", "energy nJ", "MACs/off-chip B"]
    t = sim["total"]
    lines = [f"{sim['target']} ({sim['architecture']}, {sim['clock_hz'] / 1e6:g} MHz, "
             f"{sim['peak_macs_per_cycle']:g} MACs/cycle, energy table {sim['energy_table']})",
             format_table(rows, head),
             f"total: {int(round(t['cycles'])):,} cycles = {t['inference_us'] / 1e3:.4g} ms at "
             f"the target's clock, "
             f"{t['energy_uj']:.4g} uJ (MAC {t['energy_pj']['mac'] / 1e6:.3g}, SRAM "
             f"{t['energy_pj']['sram'] / 1e6:.3g}, off-chip {t['energy_pj']['offchip'] / 1e6:.3g}"
             f"), MAC utilization {100 * t['mac_utilization']:.1f}%; machine balance "
             f"{sim['machine_balance_macs_per_offchip_byte']:g} MACs per off-chip byte",
             f"({sim['note']})"]
    if sim.get("sweep"):
        keys = list(sim["sweep"][0]["settings"])
        rows = [[*[_fmt(s["settings"][k]) for k in keys], int(round(s["cycles"])),
                 s["inference_us"] / 1e3, s["energy_uj"],
                 round(100 * s["mac_utilization"], 1)]
                for s in sim["sweep"]]
        lines += ["", "sweep:", format_table(rows, [*keys, "cycles", "ms", "energy uJ",
                                                     "MAC util %"])]
    return "\n".join(lines)


def format_profile(result: dict[str, Any]) -> str:
    """Layers x targets: each target's median (its unit) and share of its total."""
    targets = sorted(result["targets"])
    names: list[str] = []
    for t in targets:
        for r in result["targets"][t]["layers"]:
            if r["name"] not in names:
                names.append(r["name"])
    by = {t: {r["name"]: r for r in result["targets"][t]["layers"]} for t in targets}
    rows = []
    for n in names:
        row: list[Any] = [n]
        for t in targets:
            r = by[t].get(n)
            row += [r["median"] if r else "-", f"{100 * r['share']:.1f}" if r else "-"]
        rows.append(row)
    head = ["layer"] + [h for t in targets for h in
                        (f"{t} ({result['targets'][t]['unit']})", "%")]
    lines = [format_table(rows, head)]
    for t in targets:
        p = result["targets"][t]
        lines.append(f"{t}: total {p['total']['median']:,.0f} {p['unit']} (median of "
                     f"{p['total']['runs']}, p90 {p['total']['p90']:,.0f}), {p['source']}; "
                     f"{100 * p['coverage']:.1f}% in named layers")
    return "\n".join(lines)
