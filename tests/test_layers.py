"""The package's structure, asserted by reading the source (no import needed):

- no import cycle between edgeq modules (imports executed at module load);
- the core (ir, numerics, ops, passes, quant, runtime, schedule) loads no heavy optional
  dependency (torch, onnx, onnxruntime, TVM, LiteRT, TFLite Micro, Vela, ...);
- no function-local import of an edgeq module, except one that defers a heavy dependency;
- no op-name set outside ``edgeq/ops`` (what edgeq knows about an op lives there).
"""

from __future__ import annotations

import ast
import pathlib

import pytest

import edgeq.ops

PKG = pathlib.Path(edgeq.ops.__file__).resolve().parent.parent
CORE = ("ir", "numerics", "ops", "passes", "quant", "runtime", "schedule")
HEAVY = {"torch", "onnx", "onnxruntime", "tvm", "ai_edge_litert", "tflite_micro", "ethosu",
         "flatbuffers", "PIL", "sklearn", "scipy"}



def _modules() -> dict[str, pathlib.Path]:
    out = {}
    for p in sorted(PKG.rglob("*.py")):
        parts = list(p.relative_to(PKG.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


MODULES = _modules()


def _targets(node: ast.AST) -> list[str]:
    """Module names an import statement loads (a ``from a import b`` of a submodule: a.b)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
        subs = [f"{node.module}.{a.name}" for a in node.names
                if f"{node.module}.{a.name}" in MODULES]
        return subs or [node.module]
    return []


def _imports(path: pathlib.Path) -> tuple[list[str], list[tuple[str, int]]]:
    """(modules imported at load, [(module, line) imported inside functions])."""
    tree = ast.parse(path.read_text())
    top: list[str] = []
    local: list[tuple[str, int]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue  # typing only: never executed
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                for t in _targets(child):
                    (local.append((t, child.lineno)) if in_function else top.append(t))
            visit(child, in_function or isinstance(child, (ast.FunctionDef,
                                                           ast.AsyncFunctionDef, ast.Lambda)))
    visit(tree, False)
    return top, local


IMPORTS = {m: _imports(p) for m, p in MODULES.items()}


def _edges(mod: str) -> set[str]:
    """edgeq modules ``mod`` needs loaded: its imports and their parent packages (except the
    root package, the API facade, and ``mod``'s own packages)."""
    out = set()
    for t in IMPORTS[mod][0]:
        if not t.startswith("edgeq"):
            continue
        parts = t.split(".")
        for i in range(2, len(parts) + 1):
            name = ".".join(parts[:i])
            if name in MODULES and not mod.startswith(name + ".") and name != mod:
                out.add(name)
    return out


def _heavy(mod: str, seen: set[str] | None = None) -> set[str]:
    seen = set() if seen is None else seen
    if mod in seen:
        return set()
    seen.add(mod)
    found = {t.split(".")[0] for t in IMPORTS[mod][0]} & HEAVY
    for dep in _edges(mod):
        found |= _heavy(dep, seen)
    return found


def test_no_import_cycle():
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def strong(v: str) -> None:  # Tarjan
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(_edges(v)):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for m in sorted(MODULES):
        if m not in index:
            strong(m)
    assert cycles == []


@pytest.mark.parametrize("package", CORE)
def test_core_loads_no_heavy_dependency(package):
    bad = {m: sorted(_heavy(m)) for m in MODULES if m.startswith(f"edgeq.{package}")
           and _heavy(m)}
    assert bad == {}


def test_local_imports_of_edgeq_modules_only_defer_heavy_dependencies():
    bad = [f"{MODULES[m].relative_to(PKG.parent)}:{line} imports {t}"
           for m, (_, local) in IMPORTS.items() for t, line in local
           if t.startswith("edgeq") and t in MODULES and not _heavy(t)]
    assert bad == []


def test_no_op_name_set_outside_ops():
    ops = set(edgeq.ops.all_ops())
    bad = []
    for m, p in MODULES.items():
        if m.startswith("edgeq.ops"):
            continue
        for node in ast.parse(p.read_text()).body:
            value = node.value if isinstance(node, (ast.Assign, ast.AnnAssign)) else None
            if isinstance(value, (ast.Set, ast.Tuple, ast.List, ast.Dict)):
                elts = value.keys if isinstance(value, ast.Dict) else value.elts
                names = [e.value for e in elts if isinstance(e, ast.Constant) and
                         isinstance(e.value, str) and e.value in ops]
                if len(names) >= 2:
                    bad.append(f"{p.relative_to(PKG.parent)}:{node.lineno} {names[:4]}")
    assert bad == []
