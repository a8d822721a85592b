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
    return api.optimize(graph, mean=_floats(args.mean, "--mean"), std=_floats(args.std, "--std"))


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", nargs="?", help="an .onnx file")
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
    graph, _ = _load(args)
    outs = api.run(graph, x)
    write_atomic_npy(args.output, {v.name: o for v, o in zip(graph.outputs, outs)})
    print(f"ran {x.shape[0]} sample(s); wrote {args.output} "
          + ", ".join(f"{v.name}{list(o.shape)}" for v, o in zip(graph.outputs, outs)))
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
    pr.set_defaults(fn=cmd_run)
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
