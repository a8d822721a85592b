"""``edgeq`` command line. Parses arguments and calls edgeq.api; user errors print one line on
stderr and exit 2, and nothing is written."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from typing import IO, Callable, Sequence

import numpy as np

from edgeq import __version__, api, budgets as budget_rules, config, present
from edgeq.backends.npu_sim.simulate import parse_size
from edgeq.ir.graph import EdgeqError
from edgeq.ir.limits import check_activation, check_tensor
from edgeq.passes.pipeline import PipelineResult
from edgeq.targets import builtin_targets, load_target

EXIT_USER_ERROR = 2
EXIT_INTERNAL = 1  # also: a target was refused (export --keep-going)
EXIT_BUDGET = 3    # a budget or regression gate failed (artifacts and reports are written)


def _parse_shapes(items: Sequence[str] | None) -> dict[str, list[int]] | None:
    """``1,3,96,96`` (first input) or ``name=1,3,96,96``; repeatable."""
    if not items:
        return None
    out: dict[str, list[int]] = {}
    for k, item in enumerate(items):
        name, _, dims = item.rpartition("=")
        try:
            shape = [int(d) for d in dims.replace("x", ",").split(",") if d.strip()]
        except ValueError:
            raise EdgeqError(f"--input-shape {item!r}: expected comma-separated integers") \
                from None
        if not shape or any(d <= 0 for d in shape):
            raise EdgeqError(f"--input-shape {item!r}: dimensions must be positive integers")
        check_activation(shape, 4, f"--input-shape {item!r}")
        out[name or f"#{k}"] = shape
    return out


def _floats(s: str | None, flag: str) -> list[float] | None:
    if s is None:
        return None
    try:
        return [float(x) for x in s.split(",")]
    except ValueError:
        raise EdgeqError(f"{flag} {s!r}: expected comma-separated numbers") from None


def _load(args):
    graph = api.load(args.model, torch=args.torch, input_shapes=_parse_shapes(args.input_shape))
    if api.is_integer(graph):
        if args.mean or args.std:
            raise EdgeqError("--mean/--std apply to float models; this model is already "
                             "quantized")
        return graph, PipelineResult(changed=False)
    return api.optimize(graph, mean=_floats(args.mean, "--mean"), std=_floats(args.std, "--std"))


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", nargs="?", help="an .onnx file, or an edgeq model (.eqm or the "
                   "folder `edgeq quantize` wrote)")
    p.add_argument("--torch", metavar="MODULE:FACTORY",
                   help="a PyTorch model: package.module:factory returning an nn.Module")
    p.add_argument("--input-shape", action="append", metavar="[NAME=]D0,D1,...",
                   help="static input shape (needed for dynamic dims and for --torch)")
    p.add_argument("--mean", help="per-channel input mean to fold into the first layer, e.g. "
                   "123.7,116.3,103.5 (the model then takes raw input)")
    p.add_argument("--std", help="per-channel input std to fold (with --mean)")


def cmd_inspect(args) -> int:
    graph, result = _load(args)
    info = api.inspect(graph)
    info["notes"] = result.notes
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print(present.format_inspect(info))
        for note in result.notes:
            print(f"note: {note}")
    return 0


def _read_npy(path: str) -> np.ndarray:
    """``--input``: one .npy array, memory-mapped first so its declared size is checked against
    the limit (``EDGEQ_MAX_TENSOR_BYTES``) before anything is read."""
    if not os.path.isfile(path):
        raise EdgeqError(f"{path}: no such file")
    try:
        a = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise EdgeqError(f"{path}: not a readable .npy array ({e})") from None
    if not isinstance(a, np.ndarray):
        a.close()
        raise EdgeqError(f"{path}: is an .npz archive; --input takes one .npy array (samples "
                         f"on the first axis)")
    if a.dtype.kind not in "fiub":
        raise EdgeqError(f"{path}: dtype {a.dtype} is not numeric")
    check_tensor(a.shape, a.dtype.itemsize, path)
    try:
        return np.array(a)
    except (ValueError, OSError) as e:
        raise EdgeqError(f"{path}: not a readable .npy array ({e})") from None


def _write_atomic(path: str, write: Callable[[IO[bytes]], None]) -> None:
    """Write ``path`` through a temp file beside it, so a failure leaves nothing."""
    d = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(d):
        raise EdgeqError(f"{path}: directory {d} does not exist")
    try:
        fd, tmp = tempfile.mkstemp(dir=d, prefix=".edgeq-", suffix=".tmp")
    except OSError as e:
        raise EdgeqError(f"{path}: cannot write in {d} ({e.strerror})") from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise EdgeqError(f"{path}: could not write ({e.strerror}); nothing was written") \
                from None
        raise


def write_atomic_npy(path: str, arrays: dict[str, np.ndarray]) -> None:
    """Write .npy (one array) or .npz (by name) atomically."""
    if not path.endswith(".npz") and len(arrays) != 1:
        raise EdgeqError(f"the model has {len(arrays)} outputs ({', '.join(arrays)}); write "
                         f"them to an .npz file")
    _write_atomic(path, lambda f: np.savez(f, **arrays) if path.endswith(".npz")
                  else np.save(f, next(iter(arrays.values()))))


def cmd_run(args) -> int:
    x = _read_npy(args.input)
    if args.target != "ref":
        if args.model is None:
            raise EdgeqError(f"--target {args.target} needs the folder `edgeq export` wrote")
        names, outs = api.run_exported(args.model, args.target, x, raw=args.raw)
        write_atomic_npy(args.output, dict(zip(names, outs)))
        print(f"ran {x.shape[0]} sample(s) on {args.target}; wrote {args.output}")
        return 0
    graph, _ = _load(args)
    outs = api.run(graph, x, raw=args.raw)
    write_atomic_npy(args.output, {v.name: o for v, o in zip(graph.outputs, outs)})
    print(f"ran {x.shape[0]} sample(s); wrote {args.output} "
          + ", ".join(f"{v.name}{list(o.shape)}" for v, o in zip(graph.outputs, outs)))
    return 0


def _int16(args) -> list[str] | str:
    return "auto" if args.int16 == "auto" else [n for n in (args.int16 or "").split(",") if n]


DEFAULTS = {"observer": "minmax", "weight_bits": 8, "target_sqnr": 40.0, "max_int16": 8,
            "weight_rounding": "gptq", "eval_samples": 32, "no_equalize": False,
            "no_bias_correction": False, "deterministic_report": False, "force": False,
            "target": "ort,tflite,tflm,tvm", "keep_going": False, "allow_fallback": False}


def _settings(args) -> list:
    """Merge ``--config`` (options given on the command line win) and the defaults; returns
    the file's budgets."""
    budgets: list = []
    if getattr(args, "config", None):
        cfg = config.load(args.config)
        budgets = cfg.pop("budgets")
        for key, value in cfg.items():
            if value is not None and getattr(args, key, None) in (None, [], False):
                setattr(args, key, value)
    for key, value in DEFAULTS.items():
        if hasattr(args, key) and getattr(args, key) is None:
            setattr(args, key, value)
    for key, flag in (("calib", "--calib"), ("output", "-o/--output")):
        if hasattr(args, key) and getattr(args, key) is None:
            raise EdgeqError(f"{flag} is required (on the command line or in --config)")
    if getattr(args, "model", None) is None and getattr(args, "torch", None) is None \
            and getattr(args, "config", None):
        raise EdgeqError(f"{args.config}: no [model] path (or give MODEL)")
    return budgets


def cmd_quantize(args) -> int:
    _settings(args)
    out = api.OutputDir(args.output, force=args.force)
    graph, _ = _load(args)
    res = api.quantize(graph, args.calib, observer=args.observer, weight_bits=args.weight_bits,
                       int16=_int16(args), target_sqnr_db=args.target_sqnr,
                       max_int16=args.max_int16, weight_rounding=args.weight_rounding,
                       rounding=args.rounding or "edgeq", equalize=not args.no_equalize,
                       bias_correction=not args.no_bias_correction,
                       calib_samples=args.calib_samples, eval_samples=args.eval_samples,
                       progress=None)
    api.save_quantized(res, out, deterministic_report=args.deterministic_report)
    print(present.format_report(res.report))
    print(f"wrote {os.path.join(args.output, 'model.eqm')} and report.json")
    return 0


def cmd_export(args) -> int:
    budgets = _settings(args)
    targets = [t.strip() for t in args.target.split(",") if t.strip()]
    baseline = _read_report(args.baseline) if args.baseline else None
    out = api.OutputDir(args.output, force=args.force)
    graph, _ = _load(args)
    report = api.export(graph, args.calib, out, targets, allow_fallback=args.allow_fallback,
                        keep_going=args.keep_going, calib_samples=args.calib_samples,
                        observer=args.observer,
                        weight_bits=args.weight_bits, int16=_int16(args),
                        target_sqnr_db=args.target_sqnr, max_int16=args.max_int16,
                        weight_rounding=args.weight_rounding, rounding=args.rounding,
                        equalize=not args.no_equalize,
                        bias_correction=not args.no_bias_correction,
                        eval_samples=args.eval_samples,
                        deterministic_report=args.deterministic_report, npu=args.npu,
                        budgets=budgets, baseline=baseline, labels=args.labels)
    print(present.format_export(report))
    files = ["model.eqm"] + [t["artifact"] for t in report["targets"].values()] + [
        "report.json", "report.html"]
    print(f"wrote {args.output}/: " + ", ".join(dict.fromkeys(files)))
    for t, reasons in report["refused_targets"].items():
        print(f"edgeq: refused target {t}: " + "; ".join(reasons), file=sys.stderr)
    code = _budget_outcome(report.get("budgets", {}).get("results", []), args.junit)
    return 1 if report["refused_targets"] else code


def _read_report(path: str) -> dict:
    p = os.path.join(path, "report.json") if os.path.isdir(path) else path
    if not os.path.isfile(p):
        raise EdgeqError(f"{path}: no report.json")
    try:
        with open(p) as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        raise EdgeqError(f"{p}: not a readable report ({e})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("targets"), dict):
        raise EdgeqError(f"{p}: not an edgeq export report (no targets)")
    return doc


def _budget_outcome(results: list, junit: str | None) -> int:
    """Print the budget lines, write the JUnit file; 3 when a budget failed, else 0."""
    if junit:
        write_atomic_text(junit, budget_rules.junit_xml(results))
    bad = budget_rules.failed(results)
    for r in results:
        if r["ok"] is True:
            print(f"budget ok: {r['message']}")
    for r in bad:
        print(f"edgeq: budget failed: {r['name']}: {r['message']}", file=sys.stderr)
    if results:
        print(f"budgets: {len(results) - len(bad) - sum(r['ok'] is None for r in results)} met, "
              f"{len(bad)} failed" + (f"; JUnit in {junit}" if junit else ""))
    return EXIT_BUDGET if bad else 0


def write_atomic_text(path: str, text: str) -> None:
    _write_atomic(path, lambda f: f.write(text.encode()))


def cmd_check(args) -> int:
    """Budgets (--config) and regression gates (--baseline) on an export's report.json."""
    budgets: list = []
    out = args.output
    if args.config:
        cfg = config.load(args.config)
        budgets = cfg["budgets"]
        out = out or cfg["output"]
        args.junit = args.junit or cfg["junit"]
    if out is None:
        raise EdgeqError("check needs the export folder (OUT, or [export] output in --config)")
    report = _read_report(out)
    baseline = _read_report(args.baseline) if args.baseline else None
    if baseline is not None and not budgets:
        budgets = budget_rules.DEFAULT_GATES
    if not budgets:
        raise EdgeqError("nothing to check: give --config with [budgets], or --baseline")
    results = budget_rules.evaluate(budgets, report, baseline)
    if baseline is not None:
        print(present.format_table(
            [[r["name"], r.get("baseline", "-"), r["value"] if r["value"] is not None else "-",
              "ok" if r["ok"] else "n/a" if r["ok"] is None else "FAILED"] for r in results],
            ["budget", "baseline", "new", "status"]))
    return _budget_outcome(results, args.junit)


def cmd_simulate(args) -> int:
    if args.model is None:
        raise EdgeqError("simulate needs an integer model: the folder `edgeq export` wrote, or "
                         "a model.eqm")
    sim = api.simulate(args.model, args.npu, sweep=args.sweep)
    print(json.dumps(sim, indent=1, sort_keys=True) if args.json
          else present.format_simulation(sim))
    return 0


def cmd_profile(args) -> int:
    targets = [t.strip() for t in args.target.split(",") if t.strip()]
    x = _read_npy(args.input) if args.input else None
    res = api.profile(args.model, targets, runs=args.runs, warmup=args.warmup, x=x,
                      device=args.device, benchmark_model=args.benchmark_model,
                      board=args.board, power_trace=args.power_trace)
    print(present.format_profile(res))
    print(f"wrote {os.path.join(args.model, 'profile.json')} and profile.trace.json "
          f"(Perfetto / chrome://tracing)")
    return 0


def cmd_targets(args) -> int:
    rows = [[n, (t := load_target(n)).kind, t.architecture, t.description]
            for n in builtin_targets()]
    print(present.format_table(rows, ["name", "kind", "architecture", "description"]))
    return 0


def _add_quant_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="edgeq.toml", help="settings and budgets from a file "
                   "(docs/config.md); options given here override it")
    p.add_argument("--calib", help=".npy (samples on axis 0), .npz (one array per input) or a "
                   "folder of PNG/JPEG images (required, here or in --config)")
    p.add_argument("-o", "--output", help="output folder (required, here or in --config)")
    p.add_argument("--observer", help="activation range: minmax (default), percentile, mse, "
                   "entropy")
    p.add_argument("--weight-bits", type=int, choices=(4, 8), help="8 (default) or 4")
    p.add_argument("--int16", metavar="VALUES|auto", help="comma-separated value names to "
                   "keep in int16 (see the report's layer names), or 'auto': the fewest that "
                   "reach --target-sqnr")
    p.add_argument("--target-sqnr", type=float, help="dB, for --int16 auto (default 40)")
    p.add_argument("--max-int16", type=int, help="at most this many int16 values with --int16 "
                   "auto (default 8)")
    p.add_argument("--rounding", choices=("edgeq", "tflite"),
                   help="requantization rule (docs/numerics.md): edgeq (default), or tflite "
                   "(TFLite's arithmetic; export picks it when a TFLite target is asked for)")
    p.add_argument("--weight-rounding", choices=("gptq", "nearest"),
                   help="gptq (default): error-compensated rounding using calibration data; "
                   "nearest: plain rounding")
    p.add_argument("--calib-samples", type=int, help="use the first N samples (error if fewer)")
    p.add_argument("--eval-samples", type=int, help="samples for the SQNR report (default 32)")
    p.add_argument("--no-equalize", action="store_true", default=None,
                   help="skip cross-layer equalization")
    p.add_argument("--no-bias-correction", action="store_true", default=None)
    p.add_argument("--deterministic-report", action="store_true", default=None,
                   help="leave timings out of report.json (byte-identical reruns)")
    p.add_argument("--force", action="store_true", default=None, help="replace the output "
                   "folder even if it is not an earlier edgeq output (everything in it is "
                   "deleted)")


def _bytes(text: str) -> int:
    try:
        return int(parse_size(text))
    except ValueError:
        raise EdgeqError(f"--sram {text!r}: expected a size like 64KB, 256K or 65536") from None


def cmd_plan_memory(args) -> int:
    graph, _ = _load(args)
    budget = _bytes(args.sram) if args.sram else None
    schedule = api.plan_memory(graph, max_overhead=args.max_overhead / 100)
    print(present.format_memory_schedule(graph.name, schedule, int8=not api.is_integer(graph),
                                         steps=args.steps))
    if budget is None:
        return 0
    fits = schedule.best_peak_bytes <= budget
    print(present.format_budget(schedule, budget, args.max_overhead),
          file=sys.stdout if fits else sys.stderr)
    return 0 if fits else 1


class _Parser(argparse.ArgumentParser):
    """Usage errors are one ``edgeq: error:`` line too (argparse prints the usage first)."""

    def error(self, message: str):  # type: ignore[override]
        sys.stderr.write(f"edgeq: error: {message} (see `{self.prog} --help`)\n")
        sys.exit(EXIT_USER_ERROR)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="edgeq", description="Deployment compiler: PyTorch/ONNX to "
                                "integer-only artifacts for phones, NPUs and microcontrollers.")
    p.add_argument("--version", action="version", version=f"edgeq {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    pi = sub.add_parser("inspect", help="per-layer op, shape, params, MACs, activation bytes")
    _add_model_args(pi)
    pi.add_argument("--json", action="store_true", help="machine-readable output")
    pi.set_defaults(fn=cmd_inspect)
    pr = sub.add_parser("run", help="run the float reference interpreter on a batch")
    _add_model_args(pr)
    pr.add_argument("--input", required=True, help=".npy with samples on the first axis")
    pr.add_argument("--output", required=True, help=".npy (one output) or .npz (by name)")
    pr.add_argument("--raw", action="store_true", help="integer models: write the integer "
                    "outputs instead of dequantized floats")
    pr.add_argument("--target", default="ref", help="ref: edgeq's interpreter (default); ort, "
                    "tflite, tflm, tvm, c (host gcc), cortex-m4, cortex-m7 (QEMU MPS2), aarch64 "
                    "(qemu-aarch64), npu-sim: the artifact `edgeq export` wrote for that target")
    pr.set_defaults(fn=cmd_run)
    pq = sub.add_parser("quantize", help="integer-only (dyadic) quantization with a report")
    _add_model_args(pq)
    _add_quant_args(pq)
    pq.set_defaults(fn=cmd_quantize)
    pe = sub.add_parser("export", help="quantize and lower to deployment targets, each "
                        "verified against the integer interpreter")
    _add_model_args(pe)
    _add_quant_args(pe)
    pe.add_argument("--target", help="comma-separated targets: "
                    "ort, tflite (LiteRT), tflm (TFLite Micro), tvm, ethos-u (Vela), c (C99 "
                    "library, run with the host gcc), cortex-m4, cortex-m7 (the C library on "
                    "QEMU MPS2 boards), aarch64 (the C library for a phone's CPU, under "
                    "qemu-aarch64), npu-sim (the NPU simulator, see --npu) (default: "
                    "ort,tflite,tflm,tvm)")
    pe.add_argument("--allow-fallback", action="store_true", default=None, help="run nodes a "
                    "target's "
                    "integer kernels lack in float where its runtime allows (TFLite: average "
                    "pooling that counts padding, per-channel constant multiplies), listed in "
                    "the report, instead of refusing the export")
    pe.add_argument("--keep-going", action="store_true", default=None, help="export every "
                    "target that takes "
                    "the model, list the refused ones with their reasons in the report, and "
                    "exit with code 1 (without it, any refusal stops the export before "
                    "calibration)")
    pe.add_argument("--junit", metavar="FILE", help="write the budgets as JUnit test cases")
    pe.add_argument("--labels", metavar="LABELS.npy", help="class index of every calibration "
                    "sample: the report gets top-1 accuracies on the held-out samples")
    pe.add_argument("--baseline", metavar="OLD/report.json", help="an earlier report, for "
                    "relative budgets (max-degradation, ...)")
    pe.add_argument("--npu", metavar="NAME|FILE.toml", help="the NPU --target npu-sim "
                    "simulates: a built-in description (edgeq targets) or your own .toml "
                    "(default ethos-u55-128)")
    pe.set_defaults(fn=cmd_export)
    ps = sub.add_parser("simulate", help="per-layer cycles, traffic and energy of an integer "
                        "model on an NPU (an estimate)")
    ps.add_argument("model", nargs="?", help="the folder `edgeq export` or `edgeq quantize` "
                    "wrote, or its model.eqm")
    ps.add_argument("--npu", default="ethos-u55-128", metavar="NAME|FILE.toml",
                    help="built-in NPU (edgeq targets) or a .toml description")
    ps.add_argument("--sweep", nargs="+", metavar="KEY=V1,V2",
                    help="what-if: one simulation per combination, e.g. macs=64,128,256 "
                    "sram=128KB,256KB (or any dotted key of the target file)")
    ps.add_argument("--json", action="store_true", help="the whole simulation as JSON")
    ps.set_defaults(fn=cmd_simulate)
    pp = sub.add_parser("profile", help="per-layer time, instruction counts or simulated "
                        "cycles of exported artifacts")
    pp.add_argument("model", help="the folder `edgeq export` wrote")
    pp.add_argument("--target", required=True, help="comma-separated: ort (wall time from "
                    "its profiler), tflite (per-layer sub-models, CPU time), tvm (Relax VM "
                    "instrument, CPU time), c (host CPU time), cortex-m4, cortex-m7 (QEMU "
                    "instruction counts), npu-sim (simulated cycles)")
    pp.add_argument("--device", metavar="serial:PORT[,BAUD]|adb[:SERIAL]", help="measure on "
                    "hardware: a Cortex-M board over its UART (flash OUT/profile-firmware-"
                    "TARGET.elf), or a phone over adb (--target tflite)")
    pp.add_argument("--benchmark-model", metavar="PATH", help="with --device adb: LiteRT's "
                    "benchmark_model binary for the phone")
    pp.add_argument("--board", metavar="NAME|FILE.toml", help="the MCU board (edgeq targets) "
                    "whose clock, supply and current estimate each layer's energy")
    pp.add_argument("--power-trace", metavar="trace.csv", help="seconds,watts recorded during "
                    "the inference: measured energy per layer")
    pp.add_argument("--runs", type=int, default=10, help="timed inferences (default 10)")
    pp.add_argument("--warmup", type=int, default=2, help="untimed first inferences")
    pp.add_argument("--input", help=".npy: the sample to profile on (default: a fixed "
                    "pseudo-random one)")
    pp.set_defaults(fn=cmd_profile)
    pc = sub.add_parser("check", help="budgets (--config) and regression gates (--baseline) "
                        "on an export's report; exit 3 when one fails")
    pc.add_argument("output", nargs="?", metavar="OUT", help="the folder `edgeq export` wrote")
    pc.add_argument("--config", metavar="edgeq.toml", help="the budgets to check")
    pc.add_argument("--baseline", metavar="OLD/report.json", help="an earlier export: without "
                    "--config, gates latency +10%%, SQNR -0.5 dB, arena and size not larger")
    pc.add_argument("--junit", metavar="FILE", help="write the results as JUnit test cases")
    pc.set_defaults(fn=cmd_check)
    pt = sub.add_parser("targets", help="the built-in hardware descriptions")
    pt.set_defaults(fn=cmd_targets)
    pm = sub.add_parser("plan-memory", help="activation arena plan (layer by layer)")
    _add_model_args(pm)
    pm.add_argument("--sram", help="SRAM budget, e.g. 64KB: exit 1 if no plan fits")
    pm.add_argument("--max-overhead", type=float, default=20.0,
                    help="patch-based plans may recompute at most this many percent more MACs")
    pm.add_argument("--steps", action="store_true", help="also print live bytes per step")
    pm.set_defaults(fn=cmd_plan_memory)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.fn(args)
    except EdgeqError as e:
        print(f"edgeq: error: {e}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("edgeq: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `edgeq ... | head`: the reader is gone, nothing to report
        return 141
    except OSError as e:  # the environment: a file the user named cannot be read or written
        if os.environ.get("EDGEQ_DEBUG"):
            raise
        where = f"{e.filename}: " if e.filename else ""
        print(f"edgeq: error: {where}{e.strerror or e}", file=sys.stderr)
        return EXIT_USER_ERROR
    except Exception as e:  # a bug in edgeq: one line, the traceback on request
        if os.environ.get("EDGEQ_DEBUG"):
            raise
        print(f"edgeq: internal error: {type(e).__name__}: {e} (please report it with the "
              f"model; EDGEQ_DEBUG=1 prints the traceback)", file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
