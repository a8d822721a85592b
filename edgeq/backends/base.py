"""The backend protocol: what every target implements, and all that export and ``edgeq run``
call.

A backend is built with its options (``get_backend(name, allow_fallback=...)``) and keeps no
per-call state: one lowering's facts live in the ``Artifact`` it returns, one runtime instance in
the session object ``session`` returns. The methods, in the order export calls them:

- ``rounding``: the requantization rule (docs/numerics.md) its kernels compute, when it needs
  one: export quantizes with it;
- ``supports(graph) -> list[Refusal]``: one refusal per node it cannot take (empty: all of it);
- ``lower(graph, out_dir) -> Artifact``: writes the artifact; ``open(out_dir)`` reopens it from
  a folder export wrote (for ``edgeq run --target``);
- ``reference_graph(graph)``: the integer model as this runtime computes it (default: the model
  itself), what its outputs are checked against, 0 LSB where exact;
- ``session(artifact, threads)``, ``run(artifact, feeds, raw, session)`` and
  ``run_many(artifact, feeds_list, raw, session)``: outputs by name, dequantized or (``raw``)
  integer; ``run_many`` loops over ``run`` unless the backend batches (an emulator boots once);
- ``latency_ms(artifact, feeds)``: one inference on this host (None where no figure is honest);
- ``describe(artifact, checks) -> dict``: the backend's own report entries and checks, given the
  shared references of ``Checks``;
- ``runs_on_host``: False where nothing here can run the artifact (an NPU without simulator):
  export then reports the lowering only;
- ``int16_activations``: where its kernels take int16 activations: "any", "outputs" (only in
  data movement to the graph outputs) or "none"; export keeps mixed-range Concats int16 only
  where every target takes them (``quant.pipeline.mixed_range_concats``).
"""

from __future__ import annotations

import os
import statistics
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence

import numpy as np

from edgeq import serialize
from edgeq.ir.graph import EdgeqError, Graph, Node, Value
from edgeq.ir.registry import registrar

Feeds = dict[str, np.ndarray]
# one node compiled alone: the interpreter's values by name in, the node's outputs out (in order)
NodeRunner = Callable[[Feeds], Sequence[np.ndarray]]
CompileNode = Callable[[Graph, Node], NodeRunner]

LATENCY_REPEATS = 20
LATENCY_BUDGET_S = 2.0


@dataclass(frozen=True)
class Refusal:
    """Why a backend cannot take one node (``node`` empty for a graph-wide reason)."""

    op: str
    node: str
    reason: str

    def __str__(self) -> str:
        return f"{self.op} '{self.node}': {self.reason}" if self.node else self.reason


def integer_graph(graph: Graph) -> str | None:
    """The graph is an integer model (``edgeq quantize``)."""
    if graph.metadata.get("quantized") != "int":
        return "the graph is not quantized (run edgeq quantize first)"
    return None


@dataclass(frozen=True)
class Lowering:
    """One op's lowering in a backend's registry: ``emit(writer, node)`` writes it; ``checks``
    return a user-readable refusal reason or None (their docstrings are the conditions of
    docs/supported_ops.md), first failure wins. A check takes the node, plus whatever context
    the backend's ``refusal`` call passes (TFLite: its NHWC values). ``int16``: the lowering
    also takes int16 activations (int8 otherwise)."""

    emit: Callable[..., Any]
    checks: tuple[Callable[..., "str | None"], ...] = ()
    int16: bool = False

    def refusal(self, node: Node, *context: Any) -> str | None:
        """The reason of the first check that fails on ``node``, or None."""
        for check in self.checks:
            reason = check(node, *context)
            if reason:
                return reason
        return None


def lowering_registry(table: dict[str, Lowering]) -> Callable[..., Callable[[Callable],
                                                                          Callable]]:
    """The ``@lowering(*ops, checks=(...))`` decorator filling ``table``: the decorated function
    is the lowering of ``ops``; decorators stack when ops share a function but not checks."""
    register = registrar(table)

    def lowering(*ops: str, checks: tuple[Callable[..., "str | None"], ...] = (),
                 int16: bool = False) -> Callable[[Callable], Callable]:
        def deco(fn: Callable) -> Callable:
            register(*ops)(Lowering(fn, checks, int16))
            return fn
        return deco
    return lowering


@dataclass(frozen=True)
class Artifact:
    """What one lowering wrote, and the facts about it the report needs. ``path`` is the file or
    folder in the output folder; ``graph`` the integer model it computes (its inputs' and
    outputs' quantization); ``float_nodes`` the nodes it runs in float (``--allow-fallback``).
    Backends subclass it for their own facts (memory plan, Vela summary, arena)."""

    path: str
    graph: Graph
    op_counts: dict[str, int] = field(default_factory=dict)
    float_nodes: tuple[str, ...] = ()

    def __fspath__(self) -> str:
        return self.path


class Checks(Protocol):
    """The references export computed once, offered to a backend's ``describe``."""

    @property
    def sqnr_feeds(self) -> list[Feeds]:
        """The samples the SQNR against float is measured on (the held-out ones)."""

    def sqnr_db_vs_float(self, raw_outputs: Sequence[Feeds]) -> float | None:
        """SQNR of these integer outputs (one dict per ``sqnr_feeds`` sample), dequantized,
        against the float model's."""

    def per_layer(self, compile_node: CompileNode) -> dict[str, Any]:
        """``per_layer_check`` on the interpreter's values of the per-layer samples."""


class Backend(ABC):
    """Base of the built-in backends; a third-party backend may subclass it or implement the
    same methods."""

    name: str
    artifact: str  # the file or folder ``lower`` writes in the output folder
    runs_on_host: bool = True
    rounding: str | None = None  # the requantization rule its kernels need, if any
    int16_activations: str = "any"  # "any", "outputs" (data movement to outputs) or "none"

    def __init__(self, allow_fallback: bool = False, **options: Any):
        # --allow-fallback: nodes the integer kernels lack may run in float where the runtime
        # allows it (listed in Artifact.float_nodes); ignored by backends that cannot.
        # ``options``: the other backend options (``npu``), each used by the backends that
        # know it and ignored by the rest
        self.allow_fallback = allow_fallback
        self.options = options

    @abstractmethod
    def supports(self, graph: Graph) -> list[Refusal]: ...

    @abstractmethod
    def lower(self, graph: Graph, out_dir: str) -> Artifact: ...

    def open(self, out_dir: str) -> Artifact:
        """The artifact an export wrote in ``out_dir`` (with its ``model.eqm``)."""
        return Artifact(self._artifact_path(out_dir), load_integer_model(out_dir))

    def _artifact_path(self, out_dir: str) -> str:
        path = os.path.join(out_dir, self.artifact)
        if not os.path.exists(path):
            raise EdgeqError(f"{out_dir} has no {self.name} artifact ({self.artifact}); export "
                             f"with --target {self.name}")
        return path

    @abstractmethod
    def session(self, artifact: Artifact, threads: int = 0) -> Any:
        """The loaded runtime ``run`` uses (``threads``: 0 for the runtime's default)."""

    @abstractmethod
    def run(self, artifact: Artifact, feeds: Feeds, raw: bool = False, session: Any = None
            ) -> Feeds: ...

    def run_many(self, artifact: Artifact, feeds_list: Sequence[Feeds], raw: bool = False,
                 session: Any = None) -> list[Feeds]:
        if not feeds_list:
            return []
        session = session or self.session(artifact)
        return [self.run(artifact, f, raw=raw, session=session) for f in feeds_list]

    def reference_graph(self, graph: Graph) -> Graph:
        """The integer model as this runtime computes it: ``graph`` itself unless a kernel is
        known to compute differently (docs/numerics.md, "Per-runtime rules")."""
        return graph

    def latency_ms(self, artifact: Artifact, feeds: Feeds) -> float | None:
        """Median single-thread latency of one inference (``median_ms``)."""
        sess = self.session(artifact, threads=1)
        return median_ms(lambda: self.run(artifact, feeds, session=sess))

    def describe(self, artifact: Artifact, checks: Checks) -> dict[str, Any]:
        """Report entries of this backend beyond the common ones (a ``verification`` dict is
        merged into the common verification)."""
        return {}


def median_ms(call: Callable[[], Any], repeats: int = LATENCY_REPEATS) -> float:
    """Median of ``repeats`` calls after a warm-up, stopping early (at least 3 calls) once they
    have taken LATENCY_BUDGET_S: slow interpreters (TFLite Micro's Python interpreter on a
    224-pixel net) need no 20 samples for a median."""
    call()
    times: list[float] = []
    while len(times) < repeats and (len(times) < 3 or sum(times) < LATENCY_BUDGET_S * 1e3):
        t0 = time.perf_counter()
        call()
        times.append((time.perf_counter() - t0) * 1e3)
    return round(statistics.median(times), 3)


def second_of_two(call: Callable[[], Any], clock: Callable[[], int]) -> int:
    """``call()`` twice; the second's duration on ``clock`` (its units, ns for ``time``'s
    ``*_ns`` clocks). The first warms the callee's own data after other work ran: how the
    profiles time every session (per-layer sums over the total read 0.92-1.42 on LiteRT's
    digits_cnn timing first calls)."""
    call()
    t0 = clock()
    call()
    return clock() - t0


def load_integer_model(out_dir: str) -> Graph:
    """The ``model.eqm`` an export wrote beside its artifacts (it holds the inputs' and outputs'
    quantization every runner needs)."""
    return serialize.load(os.path.join(out_dir, "model.eqm"))


def activation_inputs(node: Node) -> list[Value]:
    """The node's non-constant inputs, each once, in order."""
    return list({v.name: v for v in node.inputs if v is not None and not v.is_const}.values())


def single_node_graph(graph: Graph, node: Node) -> Graph:
    """A graph holding a copy of ``node`` alone: its activation inputs become graph inputs, its
    outputs the graph outputs. Only this node's values are copied."""
    g = Graph(f"{graph.name}/{node.name}")
    g.metadata = dict(graph.metadata)
    n = g.append_copy(node, g.value_copier())
    g.inputs = [v for v in n.inputs if v is not None and not v.is_const]
    g.outputs = list(n.outputs)
    return g


def per_layer_check(graph: Graph, envs: Sequence[Feeds], compile_node: CompileNode
                    ) -> dict[str, Any]:
    """Each integer node alone on a runtime, fed the integer interpreter's own inputs, against
    the interpreter's outputs: the per-layer bound on identical inputs. ``envs``: every value of
    ``run_graph(graph, ..., keep=True)`` for each sample; ``compile_node(graph, node)``: the
    node alone on the runtime."""
    worst, worst_name = 0, None
    for node in graph.nodes:
        run = compile_node(graph, node)
        for env in envs:
            for v, o in zip(node.outputs, run(env)):
                d = int(np.abs(np.asarray(o).astype(np.int64) -
                               env[v.name].astype(np.int64)).max())
                if d > worst:
                    worst, worst_name = d, node.name
    return {"max_abs_diff_lsb": worst, "worst_layer": worst_name, "samples": len(envs)}
