"""The edgeq graph IR.

A ``Graph`` is a list of ``Node`` in topological order over ``Value`` edges. A ``Value`` has a
static ``TensorType`` and either one producer node, or is a graph input, or is a constant (it holds
a numpy array). Op names and attribute names follow ONNX spelling; integer ops added by
quantization get their own names (``QConv``, ``Requantize``...).

The graph is changed only through the methods below, which keep use-lists right:
``add_node``, ``remove_node``, ``replace_uses`` and ``set_input``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np


class EdgeqError(Exception):
    """A user-facing error: bad model, bad input, unsupported op. The CLI prints one line."""


class DType(enum.Enum):
    FLOAT32 = "float32"
    FLOAT64 = "float64"
    FLOAT16 = "float16"
    INT4 = "int4"
    INT8 = "int8"
    UINT8 = "uint8"
    INT16 = "int16"
    INT32 = "int32"
    INT64 = "int64"
    BOOL = "bool"

    @property
    def numpy(self) -> np.dtype:
        return np.dtype("int8" if self is DType.INT4 else self.value)

    @property
    def is_float(self) -> bool:
        return self in (DType.FLOAT32, DType.FLOAT64, DType.FLOAT16)

    @property
    def itemsize(self) -> int:
        return self.numpy.itemsize

    @staticmethod
    def from_numpy(dt: Any) -> "DType":
        name = np.dtype(dt).name
        for d in DType:
            if d.value == name:
                return d
        raise EdgeqError(f"unsupported tensor element type {name}")


@dataclass(frozen=True)
class TensorType:
    dtype: DType
    shape: tuple[int, ...]

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    def __str__(self) -> str:
        return f"{self.dtype.value}[{','.join(str(d) for d in self.shape)}]"


@dataclass(frozen=True)
class QParams:
    """Affine quantization: real = scale * (q - zero_point); per-channel along ``axis``."""

    scale: tuple[float, ...]
    zero_point: tuple[int, ...]
    axis: int | None = None


class Value:
    __slots__ = ("name", "type", "producer", "uses", "const", "qparams")

    def __init__(self, name: str, type: TensorType, const: np.ndarray | None = None,
                 qparams: "QParams | None" = None):
        self.name = name
        self.type = type
        self.producer: Node | None = None
        self.uses: list[tuple[Node, int]] = []
        self.const = const
        self.qparams = qparams  # how an integer value maps to reals; None for float values

    @property
    def is_const(self) -> bool:
        return self.const is not None

    @property
    def shape(self) -> tuple[int, ...]:
        return self.type.shape

    @property
    def dtype(self) -> DType:
        return self.type.dtype

    def users(self) -> list["Node"]:
        seen: list[Node] = []
        for n, _ in self.uses:
            if n not in seen:
                seen.append(n)
        return seen

    def __repr__(self) -> str:
        return f"Value({self.name!r}, {self.type})"


class Node:
    __slots__ = ("op", "name", "inputs", "outputs", "attrs")

    def __init__(self, op: str, name: str, inputs: list[Value | None], outputs: list[Value],
                 attrs: dict[str, Any] | None = None):
        self.op = op
        self.name = name
        self.inputs = inputs
        self.outputs = outputs
        self.attrs = dict(attrs or {})

    def input(self, i: int) -> Value | None:
        return self.inputs[i] if i < len(self.inputs) else None

    def const_input(self, i: int) -> np.ndarray | None:
        v = self.input(i)
        return v.const if v is not None else None

    def __repr__(self) -> str:
        return f"Node({self.op} {self.name!r})"


class Graph:
    """Nodes in topological order; values by unique name."""

    def __init__(self, name: str = "graph"):
        self.name = name
        self.nodes: list[Node] = []
        self.inputs: list[Value] = []
        self.outputs: list[Value] = []
        self.values: dict[str, Value] = {}
        self.metadata: dict[str, str] = {}
        self._counter = 0

    # --- naming -------------------------------------------------------------------------------
    def unique_name(self, base: str) -> str:
        """The one naming helper: ``base`` if free (as a value and a node name), else the first
        free of ``base_1``, ``base_2``... after the last suffix handed out for ``base``.
        Constant time per call (a 10,000-node import is linear; ``tools/bench_import.py``)."""
        taken = self._node_names()
        if base not in self.values and base not in taken:
            return base
        hints = self.__dict__.setdefault("_suffix_hint", {})
        i = hints.get(base, 1)
        while f"{base}_{i}" in self.values or f"{base}_{i}" in taken:
            i += 1
        hints[base] = i + 1
        return f"{base}_{i}"

    def _node_names(self) -> set[str]:
        """Node names, cached while ``self.nodes`` is the same list with the same length
        (``add_node`` and ``remove_node`` keep the cache; any other edit rebuilds it)."""
        key = (id(self.nodes), len(self.nodes))
        if self.__dict__.get("_names_key") != key:
            self._names = {n.name for n in self.nodes}
            self._names_key = key
        return self._names

    def _names_changed(self, before: tuple[int, int], add: str | None = None,
                       drop: str | None = None) -> None:
        """After ``add_node``/``remove_node``: update the node-name cache if it was current."""
        if self.__dict__.get("_names_key") != before:
            return
        if add is not None:
            self._names.add(add)
        if drop is not None:
            self._names.discard(drop)
        self._names_key = (id(self.nodes), len(self.nodes))

    # --- creation -----------------------------------------------------------------------------
    def add_value(self, name: str, type: TensorType, const: np.ndarray | None = None) -> Value:
        if name in self.values:
            raise ValueError(f"value name {name!r} already used")
        v = Value(name, type, const)
        self.values[name] = v
        return v

    def add_const(self, base: str, array: np.ndarray) -> Value:
        array = contiguous(array)
        return self.add_value(self.unique_name(base), TensorType(DType.from_numpy(array.dtype),
                                                                  tuple(array.shape)), array)

    def add_input(self, name: str, type: TensorType) -> Value:
        v = self.add_value(name, type)
        self.inputs.append(v)
        return v

    def add_node(self, op: str, inputs: Sequence[Value | None], output_types: Sequence[TensorType],
                 attrs: dict[str, Any] | None = None, name: str | None = None,
                 output_names: Sequence[str] | None = None, before: Node | None = None,
                 after: Node | None = None) -> Node:
        """Create a node. Placed at the end, or just before ``before`` / just after ``after``."""
        name = name or self.unique_name(op.lower())
        outs = []
        for i, t in enumerate(output_types):
            base = output_names[i] if output_names else f"{name}:{i}" if len(output_types) > 1 \
                else name
            outs.append(self.add_value(self.unique_name(base), t))
        node = Node(op, name, list(inputs), outs, attrs)
        for v in outs:
            v.producer = node
        for i, v in enumerate(node.inputs):
            if v is not None:
                v.uses.append((node, i))
        key = (id(self.nodes), len(self.nodes))
        if before is not None:
            self.nodes.insert(self.nodes.index(before), node)
        elif after is not None:
            self.nodes.insert(self.nodes.index(after) + 1, node)
        else:
            self.nodes.append(node)
        self._names_changed(key, add=node.name)
        return node

    # --- mutation -----------------------------------------------------------------------------
    def set_input(self, node: Node, i: int, value: Value | None) -> None:
        old = node.inputs[i] if i < len(node.inputs) else None
        if old is not None:
            old.uses.remove((node, i))
        while len(node.inputs) <= i:
            node.inputs.append(None)
        node.inputs[i] = value
        if value is not None:
            value.uses.append((node, i))

    def replace_uses(self, old: Value, new: Value) -> None:
        """Every use of ``old`` (node inputs and graph outputs) now reads ``new``."""
        for node, i in list(old.uses):
            self.set_input(node, i, new)
        if old in self.outputs:
            self.outputs = [new if v is old else v for v in self.outputs]
            # a graph output keeps its public name, so the model's interface stays stable
            if not new.is_const and new not in self.inputs and new.name != old.name:
                public = old.name
                self.rename(old, self.unique_name(public + "__replaced"))
                self.rename(new, public)

    def rename(self, value: Value, name: str) -> None:
        if value.name == name:
            return
        if name in self.values:
            raise ValueError(f"value name {name!r} already used")
        del self.values[value.name]
        value.name = name
        self.values[name] = value

    def remove_node(self, node: Node) -> None:
        for i, v in enumerate(node.inputs):
            if v is not None:
                v.uses.remove((node, i))
        key = (id(self.nodes), len(self.nodes))
        self.nodes.remove(node)
        self._names_changed(key, drop=node.name)
        for v in node.outputs:
            if not v.uses and v not in self.outputs:
                self.values.pop(v.name, None)

    def prune_values(self) -> None:
        """Drop constants and values nothing refers to any more."""
        live = {v.name for v in self.inputs} | {v.name for v in self.outputs}
        for n in self.nodes:
            live.update(v.name for v in n.inputs if v is not None)
            live.update(v.name for v in n.outputs)
        for name in [k for k in self.values if k not in live]:
            del self.values[name]

    # --- queries ------------------------------------------------------------------------------
    def consts(self) -> Iterator[Value]:
        return (v for v in self.values.values() if v.is_const)

    def find(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def ops(self) -> list[str]:
        return [n.op for n in self.nodes]

    def value_copier(self) -> Callable[[Value | None], Value | None]:
        """``get(v)``: this graph's copy of another graph's value ``v`` (made on first use, its
        constant copied too; None stays None)."""
        vmap: dict[int, Value] = {}

        def get(v: Value | None) -> Value | None:
            if v is None:
                return None
            if id(v) not in vmap:
                nv = Value(v.name, v.type, None if v.const is None else v.const.copy(),
                           v.qparams)
                self.values[v.name] = nv
                vmap[id(v)] = nv
            return vmap[id(v)]
        return get

    def append_copy(self, n: Node, get: Callable[[Value | None], Value | None]) -> Node:
        """Append a copy of another graph's node ``n`` reading and writing ``get``'s values."""
        ins = [get(v) for v in n.inputs]
        outs = [get(v) for v in n.outputs]
        nn = Node(n.op, n.name, ins, outs, {k: _copy_attr(a) for k, a in n.attrs.items()})
        for v in outs:
            v.producer = nn  # type: ignore[union-attr]
        for i, v in enumerate(ins):
            if v is not None:
                v.uses.append((nn, i))
        self.nodes.append(nn)
        return nn

    def copy(self) -> "Graph":
        """Deep copy (constants are copied too, so passes on the copy never touch this graph)."""
        g = Graph(self.name)
        g.metadata = dict(self.metadata)
        get = g.value_copier()
        for v in self.inputs:
            g.inputs.append(get(v))  # type: ignore[arg-type]
        for n in self.nodes:
            g.append_copy(n, get)
        g.outputs = [get(v) for v in self.outputs]  # type: ignore[misc]
        return g


def contiguous(a: Any) -> np.ndarray:
    """``a`` as a C-contiguous array of the same rank: ``np.ascontiguousarray`` would turn a
    rank-0 scalar into shape (1,), and shape arithmetic must keep scalars scalars."""
    a = np.asarray(a)
    return a if a.flags.c_contiguous else np.ascontiguousarray(a)


def _copy_attr(a: Any) -> Any:
    if isinstance(a, np.ndarray):
        return a.copy()
    if isinstance(a, list):
        return list(a)
    return a


def topo_sort(nodes: Iterable[Node]) -> list[Node]:
    """Stable topological order (keeps the given order where it is already legal)."""
    nodes = list(nodes)
    index = {id(n): i for i, n in enumerate(nodes)}
    indeg = {id(n): 0 for n in nodes}
    for n in nodes:
        for v in n.inputs:
            if v is not None and v.producer is not None and id(v.producer) in index:
                indeg[id(n)] += 1
    import heapq

    ready = [(index[id(n)], n) for n in nodes if indeg[id(n)] == 0]
    heapq.heapify(ready)
    out: list[Node] = []
    while ready:
        _, n = heapq.heappop(ready)
        out.append(n)
        for v in n.outputs:
            for u, _ in v.uses:
                if id(u) in indeg:
                    indeg[id(u)] -= 1
                    if indeg[id(u)] == 0:
                        heapq.heappush(ready, (index[id(u)], u))
    if len(out) != len(nodes):
        raise EdgeqError("graph has a cycle")
    return out
