"""Write docs/supported_ops.md from the code: what edgeq does with each op, end to end.

    .venv/bin/python -m tools.supported_ops            # (re)write docs/supported_ops.md
    .venv/bin/python -m tools.supported_ops --check    # exit 1 if the file on disk is stale

Nothing here is typed by hand. For every op ``edgeq.ops.all_ops()`` knows it reads:

- ONNX import: the keys of ``edgeq.frontend.onnx.CONVERTERS``, and which edgeq ops each
  converter emits (its ``im.emit(...)`` calls, read from its source and the module functions it
  calls; ``Flatten`` -> ``Reshape``, ``Sum`` -> ``Add``...);
- the integer form: a float op's quantize rule and its ``quantize_check`` (the check's docstring,
  or, without one, the reasons it returns, read from its source); integer ops and ops that only
  move data (trait ``moves_data``) are listed with the backends that lower them;
- each backend's lowering registry (``LOWER``), whose entries carry their support checks: the
  conditions are the checks' docstrings, in the order the backend tries them; the graph-wide
  checks and the checks every node passes likewise; TFLite's float islands (``FALLBACK``);
- the traits (``edgeq.ops.TRAITS``).

The output is deterministic: ops sorted by name, checks in registration order.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import pathlib
import sys
import textwrap
from dataclasses import dataclass
from types import ModuleType
from typing import Callable

import edgeq.ops as ops
from edgeq.backends.c import lower as c_lower
from edgeq.backends.ort_qdq import lower as ort_lower
from edgeq.backends.tflite import lower as tflite_lower
from edgeq.backends.tvm import lower as tvm_lower
from edgeq.frontend import onnx as onnx_frontend
from edgeq.ir.graph import Node

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "supported_ops.md"
COMMAND = ".venv/bin/python -m tools.supported_ops"


@dataclass(frozen=True)
class BackendInfo:
    """One column of the table: a backend's lowering module and what applies beyond each op's
    own checks."""

    column: str  # the --target names it serves
    module: ModuleType
    graph_rules: tuple[str, ...]  # graph-wide conditions, each labelled ("graph: ...")
    node_checks: tuple[Callable, ...]  # checks every node passes before its op's own


def _backends() -> list[BackendInfo]:
    def graph_rules(mod: ModuleType) -> tuple[str, ...]:
        return tuple(f"graph: {c}" for check in mod.GRAPH_CHECKS for c in _conditions(check))

    return [
        BackendInfo("ort", ort_lower, graph_rules(ort_lower), ()),
        BackendInfo("tflite, tflm", tflite_lower,
                    graph_rules(tflite_lower) + (
                        "layout (`nhwc_values`, the values the file stores NHWC): "
                        + _doc(tflite_lower.nhwc_values),),
                    tflite_lower.NODE_CHECKS),
        BackendInfo("tvm", tvm_lower, graph_rules(tvm_lower), ()),
        # the C backend's graph rule is inline in supports() and its int8 rule a private check
        BackendInfo("c", c_lower, (f"graph (`supports`): {_doc(c_lower.supports)}",),
                    (c_lower._int8_reason,)),
    ]


# --- reading the code ---------------------------------------------------------------------------
def _doc(fn: Callable) -> str:
    """A function's docstring on one line (its name if it has none)."""
    doc = inspect.getdoc(fn)
    return " ".join(doc.split()) if doc else f"`{fn.__name__}`"


def _conditions(check: Callable) -> list[str]:
    """What a check requires: its docstring; without one, the reasons it returns."""
    if inspect.getdoc(check):
        return [_doc(check)]
    return [f'refused: "{r}"' for r in _returned_strings(check)] or [_doc(check)]


def _string_of(node: ast.AST) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else
                       "{" + ast.unparse(v.value) + "}"  # type: ignore[attr-defined]
                       for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        a, b = _string_of(node.left), _string_of(node.right)
        return a + b if a is not None and b is not None else None
    return None


def _tree(fn: Callable) -> ast.AST:
    return ast.parse(textwrap.dedent(inspect.getsource(fn)))


def _returned_strings(fn: Callable) -> list[str]:
    out = []
    for node in ast.walk(_tree(fn)):
        if isinstance(node, ast.Return) and node.value is not None:
            s = _string_of(node.value)
            if s is not None:
                out.append(s)
    return out


def _emitted_ops(fn: Callable, seen: set | None = None) -> set[str]:
    """The edgeq ops an ONNX converter emits: the first argument of its ``.emit(...)`` calls
    (a literal or a closure variable), through the frontend module's functions it calls."""
    seen = set() if seen is None else seen
    if fn in seen:
        return set()
    seen.add(fn)
    closure = dict(zip(fn.__code__.co_freevars,
                       (c.cell_contents for c in fn.__closure__ or ())))
    found: set[str] = set()
    for node in ast.walk(_tree(fn)):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        if isinstance(f, ast.Attribute) and f.attr == "emit" and node.args:
            arg = node.args[0]
            op = _string_of(arg)
            if op is None and isinstance(arg, ast.Name):
                op = closure.get(arg.id) if isinstance(closure.get(arg.id), str) else None
            if op is not None:
                found.add(op)
        elif isinstance(f, ast.Name):
            target = fn.__globals__.get(f.id)
            if inspect.isfunction(target) and target.__module__ == fn.__module__:
                found |= _emitted_ops(target, seen)
    return found


def _docline(fn: Callable) -> str:
    """The converter's docstring (or the docstring of the frontend function it delegates to), as
    one table cell; "folded into a constant" for converters that emit nothing."""
    doc = inspect.getdoc(fn)
    if doc is None:
        for node in ast.walk(_tree(fn)):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                    isinstance(node.func.value, ast.Name):
                mod = fn.__globals__.get(node.func.value.id)
                target = getattr(mod, node.func.attr, None) if inspect.ismodule(mod) else None
                if inspect.isfunction(target):
                    doc = inspect.getdoc(target) or inspect.getdoc(mod)
                    break
    if doc is None:
        return "becomes a constant value"
    return " ".join(doc.split("\n\n")[0].split()).replace("|", "/")


def onnx_imports() -> dict[str, list[str]]:
    """ONNX op -> the edgeq ops its import emits (sorted; empty: folded into a constant)."""
    return {name: sorted(_emitted_ops(conv)) for name, conv in
            sorted(onnx_frontend.CONVERTERS.items())}


# --- rendering ----------------------------------------------------------------------------------
def _anchor(op: str) -> str:
    return f"#{op.lower()}"


def _lowerings(b: BackendInfo, op: str) -> tuple[bool, list[str]]:
    """(lowered at all, its own conditions)."""
    lw = b.module.LOWER.get(op)
    if lw is None:
        return False, []
    return True, [c for check in lw.checks for c in _conditions(check)]


def _fallback(b: BackendInfo, op: str) -> str | None:
    fb = getattr(b.module, "FALLBACK_OK", {})
    return _doc(fb[op]) if op in fb else None


def _integer_form(op: str, lowered_by: list[str]) -> tuple[str, list[str]]:
    """(summary cell, conditions) of the op's place in the integer graph."""
    d = ops.get(op)
    backends = ", ".join(lowered_by) if lowered_by else "no backend"
    if "integer" in d.traits:
        return f"integer op: {backends}", []
    conditions = _conditions(d.quantize_check) if d.quantize_check is not None else []
    if d.quantize is None:
        return "no: " + (ops.quantize_reason(Node(op, op, [], [])) or ""), []
    if "moves_data" in d.traits:
        return f"moves data, stays: {backends}", conditions
    return "quantizable", conditions


def render() -> str:
    backends = _backends()
    imports = onnx_imports()
    imported_as: dict[str, list[str]] = {}
    for onnx_op, emitted in imports.items():
        for op in emitted:
            imported_as.setdefault(op, []).append(onnx_op)

    lines = [
        "# Supported ops",
        "",
        f"Generated from the code by `{COMMAND}`: do not edit (`tests/test_supported_ops.py` "
        "fails when this file is stale).",
        "",
        "A model's float ops are imported (ONNX), quantized into integer ops (`edgeq quantize`), "
        "and each backend lowers the integer graph: integer ops, and the ops that only move "
        "data, which stay in it as they are. A condition is the docstring of the check that "
        "refuses a node; `edgeq export` names each refused node with the check's reason. "
        "Conditions are listed in the order they are tried. The backend columns are the "
        "lowerings of integer-graph ops: a float op reaches a backend through the integer ops "
        "its quantize rule emits, so its own backend cells are empty.",
        "",
        "- **tflite, tflm**: LiteRT and TFLite Micro run the same `.tflite` file, one lowering.",
        "- **ethos-u**: Arm Vela compiles that `.tflite` file (`--target ethos-u`): edgeq's "
        "support is the tflite column; Vela places each operator on the NPU or leaves it to "
        "the CPU by its own constraints (Vela's SUPPORTED_OPS.md).",
        "- **cortex-m4, cortex-m7**: the C library (column c), built with arm-none-eabi-gcc.",
        "- ONNX import folds every node whose inputs are all constant.",
        "",
        "## Summary",
        "",
        "| op | ONNX import | integer form | " + " | ".join(b.column for b in backends) + " |",
        "|---|---|---|" + "---|" * len(backends),
    ]
    sections = []
    for op in ops.all_ops():
        cells = []
        per_backend = []
        for b in backends:
            lowered, conds = _lowerings(b, op)
            fb = _fallback(b, op)
            per_backend.append((b, lowered, conds, fb))
        lowered_by = [b.column.split(",")[0] for b, lowered, _, _ in per_backend if lowered]
        form, form_conds = _integer_form(op, lowered_by)
        has_section = bool(form_conds) or any(c or fb for _, _, c, fb in per_backend)
        link = f" ([conditions]({_anchor(op)}))"
        sources = [op] if op in imports else []
        sources += [s for s in imported_as.get(op, []) if s != op]
        cells.append(", ".join(f"`{s}`" for s in sources) or "-")
        cells.append(form + (link if form_conds else ""))
        for b, lowered, conds, fb in per_backend:
            cells.append("-" if not lowered else "yes" + (link if conds or fb else ""))
        lines.append(f"| {op} | " + " | ".join(cells) + " |")
        if not has_section:
            continue
        sec = [f"### {op}", ""]
        if form_conds:
            sec.append(f"- integer form ({form}):")
            sec += [f"  - {c}" for c in form_conds]
        for b, lowered, conds, fb in per_backend:
            if not (conds or fb):
                continue
            sec.append(f"- {b.column}:")
            sec += [f"  - {c}" for c in conds]
            if fb:
                sec.append(f"  - with `--allow-fallback`, a node these refuse runs in float "
                           f"(DEQUANTIZE, float builtin, QUANTIZE) when: {fb}")
        sections += sec + [""]

    decomposed = {name: _docline(conv) for name, conv in sorted(
        onnx_frontend.CONVERTERS.items()) if name not in ops.all_ops() and not imports[name]}
    if decomposed:
        lines += ["", "## Imported by decomposition", "",
                  "ONNX ops with no edgeq op of their own: import rewrites each into the ops "
                  "above (the converter's docstring).", "",
                  "| ONNX op | import |", "|---|---|"]
        lines += [f"| {name} | {why} |" for name, why in decomposed.items()]
    lines += ["", "## Conditions on every graph and node", ""]
    for b in backends:
        lines.append(f"- {b.column} (an op without a lowering: "
                     f"\"{_no_lowering(b)}\"):")
        lines += [f"  - {r}" for r in b.graph_rules]
        lines += [f"  - every node: {c}" for check in b.node_checks for c in _conditions(check)]
    lines += ["", "## Conditions per op", ""] + sections

    lines += ["## ONNX import", "",
              "Each ONNX op the importer takes and the edgeq ops it becomes (canonical forms: "
              "static inputs become attributes).", "",
              "| ONNX op | edgeq ops |", "|---|---|"]
    for onnx_op, emitted in imports.items():
        lines.append(f"| `{onnx_op}` | "
                     + (", ".join(emitted) if emitted else "a constant (folded at import)")
                     + " |")

    lines += ["", "## Traits", "", "| op | traits |", "|---|---|"]
    for op in ops.all_ops():
        lines.append(f"| {op} | {', '.join(sorted(ops.get(op).traits)) or '-'} |")
    lines += ["", "| trait | meaning |", "|---|---|"]
    lines += [f"| {t} | {meaning} |" for t, meaning in sorted(ops.TRAITS.items())]
    return "\n".join(lines) + "\n"


def _no_lowering(b: BackendInfo) -> str:
    reason = getattr(b.module, "NO_LOWERING", None)
    if reason is None:  # the C backend spells it inline in supports()
        reason = next((s for s in _string_constants(b.module.supports)
                       if s.startswith("no ")), "")
    return reason


def _string_constants(fn: Callable) -> list[str]:
    return [n.value for n in ast.walk(_tree(fn))
            if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true",
                    help="exit 1 if docs/supported_ops.md differs from the code")
    args = ap.parse_args(argv)
    text = render()
    if args.check:
        if not OUT.exists() or OUT.read_text() != text:
            print(f"{OUT.relative_to(ROOT)} is stale: run {COMMAND}", file=sys.stderr)
            return 1
        print(f"{OUT.relative_to(ROOT)} is up to date")
        return 0
    OUT.write_text(text)
    print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
