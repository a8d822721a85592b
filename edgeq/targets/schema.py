"""A small schema checker for hardware description files (TOML): every key known, every value
of its type and range, every error one ``EdgeqError`` naming the file, the table and the key.

A ``Table`` maps key -> ``Field``; ``check(doc, table, where)`` returns the document with
defaults filled in. Units are part of the key names (``clock_hz``, ``size_bytes``,
``read_latency_cycles``, ``pj_per_64bit``) so a value never needs a unit string."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

from edgeq.ir.graph import EdgeqError

_NO_DEFAULT = object()


@dataclass(frozen=True)
class Field:
    kind: str                     # "int", "float", "str", "bool", "ints", "floats", "table"
    doc: str                      # what it is, with its unit (docs and error messages)
    default: Any = _NO_DEFAULT    # absent: required
    minimum: float | None = None  # inclusive
    maximum: float | None = None  # inclusive
    choices: tuple[str, ...] = ()
    length: int | None = None     # for "ints"/"floats": exact length
    table: "dict[str, Field] | None" = None  # for "table": its fields
    check: Callable[[Any], str | None] | None = None  # extra rule: an error text or None

    @property
    def required(self) -> bool:
        return self.default is _NO_DEFAULT


def _number(v: Any, integer: bool) -> bool:
    if isinstance(v, bool):
        return False
    if integer:
        return isinstance(v, int)
    return isinstance(v, (int, float)) and math.isfinite(v)


def _check_value(v: Any, f: Field, at: str) -> Any:
    def bad(expected: str) -> EdgeqError:
        return EdgeqError(f"{at}: expected {expected}, got {v!r}")

    if f.kind in ("int", "float"):
        if not _number(v, f.kind == "int"):
            raise bad("an integer" if f.kind == "int" else "a finite number")
        if f.minimum is not None and v < f.minimum or f.maximum is not None and v > f.maximum:
            lo = "" if f.minimum is None else f">= {f.minimum:g}"
            hi = "" if f.maximum is None else f"<= {f.maximum:g}"
            raise bad(f"a value {' and '.join(x for x in (lo, hi) if x)}")
        v = float(v) if f.kind == "float" else v
    elif f.kind == "str":
        if not isinstance(v, str) or not v:
            raise bad("a non-empty string")
        if f.choices and v not in f.choices:
            raise bad(f"one of {', '.join(f.choices)}")
    elif f.kind == "bool":
        if not isinstance(v, bool):
            raise bad("true or false")
    elif f.kind in ("ints", "floats"):
        integer = f.kind == "ints"
        if not isinstance(v, list) or not all(_number(x, integer) for x in v):
            raise bad("a list of integers" if integer else "a list of numbers")
        if f.length is not None and len(v) != f.length:
            raise bad(f"a list of {f.length}")
        if f.minimum is not None and any(x < f.minimum for x in v):
            raise bad(f"values >= {f.minimum:g}")
        v = [float(x) for x in v] if not integer else list(v)
    elif f.kind == "table":
        if not isinstance(v, dict):
            raise bad("a table")
        assert f.table is not None
        v = check(v, f.table, at)
    if f.check is not None:
        why = f.check(v)
        if why:
            raise EdgeqError(f"{at}: {why}")
    return v


def check(doc: Any, table: dict[str, Field], where: str) -> dict[str, Any]:
    """``doc`` checked against ``table``; ``where`` names it (``file.toml [memory.sram]``)."""
    if not isinstance(doc, dict):
        raise EdgeqError(f"{where}: expected a table, got {type(doc).__name__}")
    unknown = sorted(set(doc) - set(table))
    if unknown:
        raise EdgeqError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(table)})")
    out: dict[str, Any] = {}
    for key, f in table.items():
        at = f"{where} {key}"
        if key not in doc:
            if f.required:
                raise EdgeqError(f"{at}: missing (required: {f.doc})")
            out[key] = f.default
            continue
        out[key] = _check_value(doc[key], f, at)
    return out
