import numpy as np

from edgeq.ir.graph import Graph
from edgeq.ops import has


def assert_integer_only(g: Graph) -> None:
    """Every tensor integer, every attribute integer/string/bool (no float anywhere)."""
    for v in g.values.values():
        assert not v.dtype.is_float, f"float value {v.name} ({v.type})"
        if v.is_const:
            assert v.const.dtype.kind in "iu", f"float constant {v.name}"
    for n in g.nodes:
        assert has(n.op, "integer") or has(n.op, "moves_data"), \
            f"non-integer op {n.op} ({n.name})"
        for k, a in n.attrs.items():
            _check_attr(n, k, a)


def _check_attr(n, k, a):
    if isinstance(a, np.ndarray):
        assert a.dtype.kind in "iu", f"{n.name}.{k} is a {a.dtype} array"
    elif isinstance(a, (list, tuple)):
        for x in a:
            _check_attr(n, k, x)
    elif isinstance(a, float):
        # Resize keeps its (exact, compile-time) scales only to describe the shape
        assert n.op == "Resize" and k == "scales", f"{n.name}.{k} = {a} is a float"
