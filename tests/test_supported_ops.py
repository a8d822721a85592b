"""docs/supported_ops.md is generated from the code (``tools/supported_ops.py``): it must match
what the code says today, and its conditions are the support checks' docstrings."""

from __future__ import annotations

import difflib

from edgeq.backends.ort_qdq import lower as ort_lower
from edgeq.backends.tflite import lower as tflite_lower
from edgeq.backends.tvm import lower as tvm_lower
from tools import supported_ops


def test_supported_ops_doc_is_current():
    want = supported_ops.render()
    have = supported_ops.OUT.read_text() if supported_ops.OUT.exists() else ""
    diff = "".join(list(difflib.unified_diff(have.splitlines(True), want.splitlines(True),
                                             "docs/supported_ops.md (on disk)",
                                             "docs/supported_ops.md (from the code)"))[:40])
    assert have == want, (f"docs/supported_ops.md is stale: regenerate it with "
                          f"`{supported_ops.COMMAND}`\n{diff}")


def test_render_is_deterministic():
    assert supported_ops.render() == supported_ops.render()


def test_every_support_check_states_its_limit():
    """A check's docstring is the user-facing condition in the table: none may be missing."""
    checks = [c for mod in (ort_lower, tflite_lower, tvm_lower)
              for lw in mod.LOWER.values() for c in lw.checks]
    checks += [c for mod in (ort_lower, tflite_lower, tvm_lower) for c in mod.GRAPH_CHECKS]
    checks += list(tflite_lower.NODE_CHECKS) + list(tflite_lower.FALLBACK_OK.values())
    assert [c.__name__ for c in checks if not (c.__doc__ or "").strip()] == []


def test_check_mode_flags_a_stale_file(tmp_path, monkeypatch):
    stale = tmp_path / "supported_ops.md"
    stale.write_text("# Supported ops\n")
    monkeypatch.setattr(supported_ops, "OUT", stale)
    monkeypatch.setattr(supported_ops, "ROOT", tmp_path)
    assert supported_ops.main(["--check"]) == 1
    assert supported_ops.main([]) == 0
    assert supported_ops.main(["--check"]) == 0
