"""Execution-order search for branched graphs: the topological order with the lowest peak of
live activation bytes.

A schedule's state is the set of nodes already run; the bytes live in a state are fixed by the
set (values produced and still awaited by an unrun node, or graph outputs, plus graph inputs
still awaited), so the lowest peak to reach a state is a dynamic programme over states, level by
level (states with k nodes run, then k + 1). Running node n from state S costs
``live(S) + bytes(outputs of n)`` (its inputs are still held while it runs). For a chain there is
one state per level; branches multiply them, so the search gives up past ``max_states`` and keeps
the graph's own order (reported by ``searched=False``).
"""

from __future__ import annotations

from edgeq.ir.graph import Graph, Node


def best_order(graph: Graph, max_states: int = 200_000, bytes_per_element: int | None = None
               ) -> list[Node]:
    order, _ = search_order(graph, max_states, bytes_per_element)
    return order


def search_order(graph: Graph, max_states: int = 200_000,
                 bytes_per_element: int | None = None) -> tuple[list[Node], bool]:
    nodes = list(graph.nodes)
    index = {id(n): i for i, n in enumerate(nodes)}

    def nbytes(v) -> int:
        return v.type.size * bytes_per_element if bytes_per_element else v.type.nbytes

    producer: dict[str, int] = {}
    for i, n in enumerate(nodes):
        for v in n.outputs:
            producer[v.name] = i
    preds = [0] * len(nodes)
    reads: list[list] = []
    for i, n in enumerate(nodes):
        acts = [v for v in n.inputs if v is not None and not v.is_const]
        reads.append(acts)
        for v in acts:
            if v.name in producer:
                preds[i] |= 1 << producer[v.name]
    readers: dict[str, int] = {}
    for i, acts in enumerate(reads):
        for v in acts:
            readers[v.name] = readers.get(v.name, 0) | (1 << i)
    unique = [list({v.name: v for v in acts}.values()) for acts in reads]
    kept = {v.name for v in graph.outputs}
    out_bytes = [sum(nbytes(v) for v in n.outputs) for n in nodes]
    start_live = sum(nbytes(v) for v in graph.inputs)
    full = (1 << len(nodes)) - 1

    # state -> (peak, live, parent state, node index)
    level: dict[int, tuple[int, int, int, int]] = {0: (start_live, start_live, -1, -1)}
    history: list[dict[int, tuple[int, int, int, int]]] = [level]
    count = 1
    for _ in range(len(nodes)):
        nxt: dict[int, tuple[int, int, int, int]] = {}
        for s, (peak, live, _, _) in level.items():
            for i in range(len(nodes)):
                bit = 1 << i
                if s & bit or preds[i] & ~s:
                    continue
                t = s | bit
                step = live + out_bytes[i]
                freed = sum(nbytes(v) for v in unique[i]
                            if v.name not in kept and readers[v.name] & ~t == 0)
                new = (max(peak, step), step - freed, s, i)
                if t not in nxt or new[0] < nxt[t][0]:
                    nxt[t] = new
        count += len(nxt)
        if count > max_states:
            return nodes, False
        history.append(nxt)
        level = nxt
    order: list[Node] = []
    s = full
    for lvl in reversed(history[1:]):
        _, _, parent, i = lvl[s]
        order.append(nodes[i])
        s = parent
    order.reverse()
    assert sorted(index[id(n)] for n in order) == list(range(len(nodes)))
    return order, True


def peak_live(graph: Graph, order: list[Node], bytes_per_element: int | None = None) -> int:
    """Peak live bytes of ``order`` under the model of ``search_order`` (for comparisons)."""
    def nbytes(v) -> int:
        return v.type.size * bytes_per_element if bytes_per_element else v.type.nbytes

    remaining: dict[str, int] = {}
    for n in order:
        for v in n.inputs:
            if v is not None and not v.is_const:
                remaining[v.name] = remaining.get(v.name, 0) + 1
    kept = {v.name for v in graph.outputs}
    live = sum(nbytes(v) for v in graph.inputs)
    peak = live
    for n in order:
        live += sum(nbytes(v) for v in n.outputs)
        peak = max(peak, live)
        for v in n.inputs:
            if v is None or v.is_const:
                continue
            remaining[v.name] -= 1
            if remaining[v.name] == 0 and v.name not in kept:
                live -= nbytes(v)
    return peak
