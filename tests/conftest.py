"""Shared fixtures. Test models are built here or by models/ scripts; nothing is downloaded."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


@pytest.fixture(scope="session")
def zoo_dir() -> str:
    """The zoo built once per checkout into build/models (rebuilt only if a file is missing)."""
    pytest.importorskip("torch", reason="torch is needed to build the zoo models")
    from models.build import build

    out = os.path.join(ROOT, "build", "models")
    build(out)
    return out


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)
