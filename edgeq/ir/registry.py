"""The one registry pattern: a dict from op name to function, filled by a decorator."""

from __future__ import annotations

from typing import Any, Callable


def registrar(table: dict[str, Any]) -> Callable[..., Callable[[Callable], Callable]]:
    """``register = registrar(TABLE)``; then ``@register("Relu", "Clip")`` adds the function."""
    def register(*names: str):
        def deco(fn):
            for name in names:
                table[name] = fn
            return fn
        return deco
    return register
