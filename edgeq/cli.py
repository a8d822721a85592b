"""``edgeq`` command line. Parses arguments and calls edgeq.api; user errors print one line on
stderr and exit 2, and nothing is written."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from typing import Sequence

import numpy as np

from edgeq import __version__
from edgeq.ir.graph import EdgeqError

EXIT_USER_ERROR = 2


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
    from edgeq import api

    graph = api.load(args.model, torch=args.torch, input_shapes=_parse_shapes(args.input_shape))
    if api.is_integer(graph):
        if args.mean or args.std:
            raise EdgeqError("--mean/--std apply to float models; this model is already "
                             "quantized")
        from edgeq.passes.pipeline import PipelineResult

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
    from edgeq import api

    graph, result = _load(args)
    info = api.inspect(graph)
    info["notes"] = result.notes
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print(api.format_inspect(info))
        for note in result.notes:
            print(f"note: {note}")
    return 0


def _read_npy(path: str) -> np.ndarray:
    if not os.path.exists(path):
        raise EdgeqError(f"{path}: no such file")
    try:
        return np.load(path, allow_pickle=False)
    except Exception as e:
        raise EdgeqError(f"{path}: not a readable .npy array ({e})") from None


def write_atomic_npy(path: str, arrays: dict[str, np.ndarray]) -> None:
    """Write .npy (one array) or .npz (by name) via a temp file, so a failure leaves nothing."""
    d = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(d):
        raise EdgeqError(f"{path}: directory {d} does not exist")
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".edgeq-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            if path.endswith(".npz"):
                np.savez(f, **arrays)
            else:
                if len(arrays) != 1:
                    raise EdgeqError(f"the model has {len(arrays)} outputs "
                                     f"({', '.join(arrays)}); write them to an .npz file")
                np.save(f, next(iter(arrays.values())))
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def cmd_run(args) -> int:
    from edgeq import api

    x = _read_npy(args.input)
    if args.target != "ref":
        names, outs = _run_target(args, x)
        write_atomic_npy(args.output, dict(zip(names, outs)))
        print(f"ran {x.shape[0]} sample(s) on {args.target}; wrote {args.output}")
        return 0
    graph, _ = _load(args)
    outs = api.run(graph, x, raw=args.raw)
    write_atomic_npy(args.output, {v.name: o for v, o in zip(graph.outputs, outs)})
    print(f"ran {x.shape[0]} sample(s); wrote {args.output} "
          + ", ".join(f"{v.name}{list(o.shape)}" for v, o in zip(graph.outputs, outs)))
    return 0


def _run_target(args, x):
    """Run an exported artifact: OUT is the folder `edgeq export` wrote."""
    from edgeq import api
    from edgeq.backends import get_backend
    from edgeq.runtime.reference import run_batch

    if args.model is None or not os.path.isdir(args.model):
        raise EdgeqError(f"--target {args.target} needs the folder `edgeq export` wrote")
    be = get_backend(args.target)
    path = os.path.join(args.model, be.artifact)
    if not os.path.exists(path):
        raise EdgeqError(f"{args.model} has no {args.target} artifact ({be.artifact}); export "
                         f"with --target {args.target}")
    graph = api.load_model(args.model)
    sess = be.session(path)
    many = getattr(be, "run_many", None)
    outs = run_batch(graph, x, runner=lambda g, feeds: be.run(path, feeds, raw=args.raw,
                                                              session=sess),
                     many=many and (lambda g, fl: many(path, fl, raw=args.raw, session=sess)))
    return [v.name for v in graph.outputs], outs


class OutputDir:
    """Build an output folder in a temporary sibling and move it into place only on success,
    so a failure never leaves a half-written folder."""

    def __init__(self, path: str):
        self.path = os.path.abspath(path)
        parent = os.path.dirname(self.path)
        if not os.path.isdir(parent):
            raise EdgeqError(f"{path}: parent folder {parent} does not exist")
        if os.path.exists(self.path) and not os.path.isdir(self.path):
            raise EdgeqError(f"{path}: exists and is not a folder")

    def __enter__(self) -> str:
        self.tmp = tempfile.mkdtemp(prefix=".edgeq-", dir=os.path.dirname(self.path))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(self.tmp, 0o777 & ~umask)  # mkdtemp makes it private; the result should not be
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        import shutil

        if exc_type is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            return
        if os.path.isdir(self.path):
            for name in sorted(os.listdir(self.tmp)):
                os.replace(os.path.join(self.tmp, name), os.path.join(self.path, name))
            shutil.rmtree(self.tmp, ignore_errors=True)
        else:
            os.replace(self.tmp, self.path)


def cmd_quantize(args) -> int:
    from edgeq import api
    from edgeq.quant.pipeline import format_report

    out = OutputDir(args.output)
    graph, _ = _load(args)
    res = api.quantize(graph, args.calib, observer=args.observer, weight_bits=args.weight_bits,
                       int16="auto" if args.int16 == "auto" else
                       [n for n in (args.int16 or "").split(",") if n],
                       target_sqnr_db=args.target_sqnr, max_int16=args.max_int16,
                       weight_rounding=args.weight_rounding,
                       rounding=args.rounding or "edgeq", equalize=not args.no_equalize,
                       bias_correction=not args.no_bias_correction,
                       calib_samples=args.calib_samples, eval_samples=args.eval_samples,
                       progress=None)
    with out as tmp:
        api.save(res.graph, os.path.join(tmp, "model.eqm"))
        report = dict(res.report)
        if args.deterministic_report:
            report.pop("quantization_time_s", None)
        with open(os.path.join(tmp, "report.json"), "w") as f:
            json.dump(report, f, indent=2, sort_keys=True)
            f.write("\n")
    print(format_report(res.report))
    print(f"wrote {os.path.join(args.output, 'model.eqm')} and report.json")
    return 0


def cmd_export(args) -> int:
    from edgeq import api
    from edgeq.export import export, format_export
    from edgeq.quant.calibrate import load_calibration

    targets = [t.strip() for t in args.target.split(",") if t.strip()]
    if not targets:
        from edgeq.backends import available

        raise EdgeqError(f"--target needs at least one of: {', '.join(available())}")
    out = OutputDir(args.output)
    graph, _ = _load(args)
    if api.is_integer(graph):
        raise EdgeqError("export takes the float model (it quantizes it)")
    data = load_calibration(args.calib, graph, args.calib_samples)
    opts = dict(observer=args.observer, weight_bits=args.weight_bits,
                int16="auto" if args.int16 == "auto" else
                [n for n in (args.int16 or "").split(",") if n],
                target_sqnr_db=args.target_sqnr, max_int16=args.max_int16,
                weight_rounding=args.weight_rounding, rounding=args.rounding,
                equalize=not args.no_equalize, bias_correction=not args.no_bias_correction,
                eval_samples=args.eval_samples)
    with out as tmp:
        report = export(graph, data, targets, tmp, opts, allow_fallback=args.allow_fallback)
        with open(os.path.join(tmp, "report.json"), "w") as f:
            json.dump(report, f, indent=2, sort_keys=True)
            f.write("\n")
    print(format_export(report))
    files = ["model.eqm"] + [t["artifact"] for t in report["targets"].values()] + ["report.json"]
    print(f"wrote {args.output}/: " + ", ".join(dict.fromkeys(files)))
    return 0


def _add_quant_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--calib", required=True, help=".npy (samples on axis 0), .npz (one array "
                   "per input) or a folder of PNG/JPEG images")
    p.add_argument("-o", "--output", required=True, help="output folder")
    p.add_argument("--observer", default="minmax", help="activation range: minmax "
                   "(default), percentile, mse, entropy")
    p.add_argument("--weight-bits", type=int, default=8, choices=(4, 8))
    p.add_argument("--int16", metavar="VALUES|auto", help="comma-separated value names to "
                   "keep in int16 (see the report's layer names), or 'auto': the fewest that "
                   "reach --target-sqnr")
    p.add_argument("--target-sqnr", type=float, default=40.0, help="dB, for --int16 auto")
    p.add_argument("--max-int16", type=int, default=8, help="at most this many int16 values "
                   "with --int16 auto")
    p.add_argument("--rounding", choices=("edgeq", "tflite"),
                   help="requantization rule (docs/numerics.md): edgeq (default), or tflite "
                   "(TFLite's arithmetic; export picks it when a TFLite target is asked for)")
    p.add_argument("--weight-rounding", default="gptq", choices=("gptq", "nearest"),
                   help="gptq (default): error-compensated rounding using calibration data; "
                   "nearest: plain rounding")
    p.add_argument("--calib-samples", type=int, help="use the first N samples (error if fewer)")
    p.add_argument("--eval-samples", type=int, default=32, help="samples for the SQNR report")
    p.add_argument("--no-equalize", action="store_true", help="skip cross-layer equalization")
    p.add_argument("--no-bias-correction", action="store_true")


def _bytes(text: str) -> int:
    t = text.strip().upper().replace("IB", "B")
    for suffix, mult in (("KB", 1024), ("MB", 1 << 20), ("K", 1024), ("M", 1 << 20), ("B", 1)):
        if t.endswith(suffix):
            t, m = t[: -len(suffix)], mult
            break
    else:
        m = 1
    try:
        return int(float(t) * m)
    except ValueError:
        raise EdgeqError(f"--sram {text!r}: expected a size like 64KB, 256K or 65536") from None


def cmd_plan_memory(args) -> int:
    from edgeq import api
    from edgeq.schedule.arena import plan_memory
    from edgeq.schedule.patch import search

    graph, _ = _load(args)
    bpe = None if api.is_integer(graph) else 1
    from edgeq.schedule.order import search_order

    plan = plan_memory(graph, bytes_per_element=bpe)
    order, searched = search_order(graph, bytes_per_element=bpe)
    ordered = plan_memory(graph, bytes_per_element=bpe, order=order, exact=True)
    patch = search(graph, max_overhead=args.max_overhead / 100, bytes_per_element=bpe)
    budget = _bytes(args.sram) if args.sram else None
    rows = [["layer-by-layer", plan.arena_bytes, "-", "0.0%"]]
    if ordered.arena_bytes < plan.arena_bytes:
        rows.append([f"layer-by-layer, best order{' (searched)' if searched else ''}"
                     f"{', exact placement' if ordered.optimal else ''}",
                     ordered.arena_bytes, "-", "0.0%"])
    if patch is not None:
        split_name = graph.nodes[patch.split].name
        rows.append([f"patch-based ({patch.n}x{patch.n} patches up to '{split_name}')",
                     patch.peak_bytes, patch.n * patch.n, f"{patch.overhead:+.1%}"])
    what = "int8 activations" if bpe else "the integer model's activations"
    print(f"activation memory of {graph.name} ({what}):")
    print(api.format_table(rows, ["schedule", "peak bytes", "patches", "extra MACs"]))
    if args.steps:
        print(api.format_table([[s, b] for s, b in zip(plan.steps, plan.step_live_bytes)],
                               ["step", "live bytes (layer by layer)"]))
    best = min([plan.arena_bytes, ordered.arena_bytes] + ([patch.peak_bytes] if patch else []))
    if budget is not None:
        if best > budget:
            worst = max(range(len(plan.step_live_bytes)), key=plan.step_live_bytes.__getitem__)
            why = (f"the layer-by-layer peak is set by step '{plan.steps[worst]}' "
                   f"({plan.step_live_bytes[worst]:,} bytes live)")
            if patch is not None:
                why += (f"; patch-based execution within +{args.max_overhead:g}% MACs gets "
                        f"down to {patch.peak_bytes:,} bytes")
            print(f"does not fit {budget:,} bytes of SRAM: the smallest achievable peak is "
                  f"{best:,} bytes; {why}", file=sys.stderr)
            return 1
        print(f"fits {budget:,} bytes of SRAM with the "
              f"{'patch-based' if patch and best == patch.peak_bytes else 'layer-by-layer'} "
              f"schedule ({budget - best:,} bytes to spare)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edgeq", description="Deployment compiler: PyTorch/ONNX to "
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
                    "tflite, tflm, tvm, c (host gcc), cortex-m4, cortex-m7 (QEMU MPS2): the "
                    "artifact `edgeq export` wrote for that target")
    pr.set_defaults(fn=cmd_run)
    pq = sub.add_parser("quantize", help="integer-only (dyadic) quantization with a report")
    _add_model_args(pq)
    _add_quant_args(pq)
    pq.add_argument("--deterministic-report", action="store_true",
                    help="leave timings out of report.json (byte-identical reruns)")
    pq.set_defaults(fn=cmd_quantize)
    pe = sub.add_parser("export", help="quantize and lower to deployment targets, each "
                        "verified against the integer interpreter")
    _add_model_args(pe)
    _add_quant_args(pe)
    pe.add_argument("--target", default="ort,tflite,tflm,tvm", help="comma-separated targets: "
                    "ort, tflite (LiteRT), tflm (TFLite Micro), tvm, ethos-u (Vela), c (C99 "
                    "library, run with the host gcc), cortex-m4, cortex-m7 (the C library on "
                    "QEMU MPS2 boards) (default: ort,tflite,tflm,tvm)")
    pe.add_argument("--allow-fallback", action="store_true", help="run nodes a target's "
                    "integer kernels lack in float where its runtime allows (TFLite: average "
                    "pooling that counts padding, per-channel constant multiplies), listed in "
                    "the report, instead of refusing the export")
    pe.set_defaults(fn=cmd_export)
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


if __name__ == "__main__":
    sys.exit(main())
