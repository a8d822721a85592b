"""Shared fixtures. Test models are built here or by models/ scripts; nothing is downloaded."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

# Every report.json the suite writes (in this process and in the CLI subprocesses it starts)
# is checked against docs/report.schema.json (edgeq.api.validate_report).
os.environ["EDGEQ_VALIDATE_REPORTS"] = "1"


# CPU features that change int8 and float kernels in the runtimes edgeq is checked against
# (ONNX Runtime's int8 GEMM saturates without VNNI; BLAS picks a kernel per CPU).
INT8_FLAGS = ("avx2", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "amx_int8", "amx_tile",
              "asimd", "asimddp", "i8mm", "sve")


def machine_description() -> list[str]:
    """CPU model, its int8-relevant flags and numpy's BLAS kernel: which machine kind ran."""
    import platform

    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, val = line.partition(":")
                key = key.strip().lower()
                if key in ("model name", "cpu model") and model in ("", platform.machine()):
                    model = val.strip()
                elif key in ("flags", "features"):
                    flags.update(val.split())
    except OSError:
        pass
    have = [f for f in INT8_FLAGS if f in flags]
    lines = [f"machine: {platform.machine()} {model}; int8-relevant CPU flags: "
             f"{' '.join(have) or 'none'}"]
    try:
        import threadpoolctl

        blas = [f"{i.get('internal_api')} {i.get('version')} ({i.get('architecture')})"
                for i in threadpoolctl.threadpool_info() if i.get("user_api") == "blas"]
        if blas:
            lines.append("numpy BLAS: " + ", ".join(blas))
    except ImportError:
        pass
    return lines


# Tests that need a peer runtime outside tests/backends (the runtime is their oracle).
BACKEND_MODULES = ("tests/frontend/test_onnx_ops.py",)


def pytest_collection_modifyitems(config, items):
    """One tier per test: the one its module declares, else e2e (slow, or needs the zoo built
    with torch), else backend (a peer runtime or toolchain), else unit."""
    for item in items:
        path = os.path.relpath(str(item.fspath), ROOT).replace(os.sep, "/")
        if any(item.get_closest_marker(t) for t in ("unit", "backend", "e2e")):
            continue  # the module says which tier it is
        if item.get_closest_marker("slow") or "zoo_dir" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.e2e)
        elif path.startswith("tests/backends/") or path in BACKEND_MODULES:
            item.add_marker(pytest.mark.backend)
        else:
            item.add_marker(pytest.mark.unit)


def pytest_report_header(config):
    return machine_description()


def pytest_terminal_summary(terminalreporter):
    """Also at the end: ``make test`` runs ``pytest -q``, which hides the header."""
    for line in machine_description():
        terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def zoo_dir() -> str:
    """The zoo built once per checkout into build/models (rebuilt only if a file is missing)."""
    pytest.importorskip("torch", reason="torch is needed to build the zoo models")
    import fcntl

    from models.build import build

    out = os.path.join(ROOT, "build", "models")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, ".lock"), "w") as lock:  # xdist workers build it once
        fcntl.flock(lock, fcntl.LOCK_EX)
        build(out)
    return out


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)
