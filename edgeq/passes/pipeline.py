"""Named pass lists and the driver that runs them.

The driver runs each pass of a list in order, repeats the list until nothing changes (at most
``max_rounds``), runs the IR verifier after every pass when ``verify`` is on (tests, and the
``EDGEQ_VERIFY=1`` environment switch), and collects every refusal a pass logged into ``notes``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Callable, Sequence

from edgeq.ir.graph import Graph
from edgeq.ir.verify import verify
from edgeq.passes import log as pass_log
from edgeq.passes.constant_folding import fold_constants
from edgeq.passes.dead_code import eliminate_dead_code
from edgeq.passes.fold_batchnorm import fold_batchnorm, fold_channel_affine
from edgeq.passes.fold_matmul_bias import fold_matmul_bias
from edgeq.passes.fuse_activation import fuse_activation
from edgeq.passes.fuse_gelu import fuse_gelu
from edgeq.passes.migrate_layernorm_affine import migrate_layernorm_affine
from edgeq.passes.remove_identity import remove_identity
from edgeq.passes.shape_inference import infer_shapes

Pass = Callable[[Graph], bool]

FLOAT_PASSES: list[tuple[str, Pass]] = [
    ("constant_folding", fold_constants),
    ("shape_inference", infer_shapes),
    ("remove_identity", remove_identity),
    ("fuse_gelu", fuse_gelu),
    ("fold_batchnorm", fold_batchnorm),
    ("fold_channel_affine", fold_channel_affine),
    ("migrate_layernorm_affine", migrate_layernorm_affine),
    ("fold_matmul_bias", fold_matmul_bias),
    ("fuse_activation", fuse_activation),
    ("dead_code_elimination", eliminate_dead_code),
]


class PassError(Exception):
    """A pass left the graph invalid: a bug in edgeq, named by pass."""


@dataclass
class PipelineResult:
    changed: bool
    applied: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.notes: list[str] = []

    def emit(self, record):
        if getattr(record, "edgeq_refusal", None):
            msg = record.getMessage()
            if msg not in self.notes:
                self.notes.append(msg)


def run_passes(graph: Graph, passes: Sequence[tuple[str, Pass]] = FLOAT_PASSES,
               verify_each: bool | None = None, max_rounds: int = 4) -> PipelineResult:
    if verify_each is None:
        verify_each = os.environ.get("EDGEQ_VERIFY", "") not in ("", "0")
    handler = _Collect()
    old_level = pass_log.level
    pass_log.addHandler(handler)
    if pass_log.getEffectiveLevel() > logging.INFO:
        pass_log.setLevel(logging.INFO)
    result = PipelineResult(changed=False)
    try:
        for _ in range(max_rounds):
            round_changed = False
            for name, p in passes:
                if p(graph):
                    round_changed = True
                    if name not in result.applied:
                        result.applied.append(name)
                if verify_each:
                    try:
                        verify(graph)
                    except Exception as e:
                        raise PassError(f"pass '{name}' left an invalid graph: {e}") from e
            result.changed |= round_changed
            if not round_changed:
                break
    finally:
        pass_log.removeHandler(handler)
        pass_log.setLevel(old_level)
    result.notes = handler.notes
    return result
