"""Nothing edgeq reads is ever unpickled (issue 12, item 4): every numpy load passes
``allow_pickle=False``, and no unpickling module or call appears in the package. A static check
over the source, so a new load path cannot slip in without it."""

from __future__ import annotations

import ast
import os

import pytest

pytestmark = pytest.mark.unit

PKG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "edgeq")
NUMPY_LOADS = {"load", "read_array"}  # np.load, np.lib.format.read_array
FORBIDDEN_MODULES = {"pickle", "cPickle", "dill", "joblib", "marshal", "shelve", "cloudpickle"}


def sources():
    for root, _, files in os.walk(PKG):
        for f in sorted(files):
            if f.endswith(".py"):
                path = os.path.join(root, f)
                with open(path) as fh:
                    yield os.path.relpath(path, PKG), ast.parse(fh.read())


def _callee(node: ast.Call) -> str:
    f = node.func
    parts = []
    while isinstance(f, ast.Attribute):
        parts.append(f.attr)
        f = f.value
    if isinstance(f, ast.Name):
        parts.append(f.id)
    return ".".join(reversed(parts))


def test_every_numpy_load_refuses_pickles():
    seen = 0
    for rel, tree in sources():
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            name = _callee(node)
            if name.split(".")[-1] in NUMPY_LOADS and name.split(".")[0] in ("np", "numpy"):
                seen += 1
                kw = {k.arg: k.value for k in node.keywords}
                ok = isinstance(kw.get("allow_pickle"), ast.Constant) and \
                    kw["allow_pickle"].value is False
                assert ok, f"edgeq/{rel}:{node.lineno}: {name}(...) without allow_pickle=False"
            assert name not in ("torch.load", "pickle.load", "pickle.loads"), \
                f"edgeq/{rel}:{node.lineno}: {name} unpickles"
    assert seen >= 3, "expected the .eqm, calibration and --input loaders to be found"


def test_no_unpickling_module_is_imported():
    for rel, tree in sources():
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            for n in names:
                assert n.split(".")[0] not in FORBIDDEN_MODULES, f"edgeq/{rel} imports {n}"
