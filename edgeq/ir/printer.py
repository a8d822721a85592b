"""Text form of a graph: stable (same graph, same text), one line per node.

    graph NAME(%x: float32[1,3,8,8]) -> (%y: float32[1,10])
      %y = Conv(%x, %w, %b) {group=1, kernel_shape=[3,3], ...} : float32[1,4,8,8]
      %z = Relu[relu_3](%y) : float32[1,4,8,8]      (node name shown when it differs)
"""

from __future__ import annotations

import numpy as np

from edgeq.ir.graph import Graph, Value


def _fmt_attr(a) -> str:
    if isinstance(a, np.ndarray):
        return f"tensor<{a.dtype}{list(a.shape)}>"
    if isinstance(a, float):
        return f"{a:g}"
    if isinstance(a, (list, tuple)):
        return "[" + ",".join(_fmt_attr(x) for x in a) + "]"
    return str(a)


def _ref(v: Value | None) -> str:
    if v is None:
        return "_"
    if v.is_const:
        if v.type.size == 1:
            return f"{v.const.reshape(-1)[0]!r}:{v.dtype.value}"
        return f"%{v.name}<{v.type}>"
    return f"%{v.name}"


def format_graph(graph: Graph) -> str:
    ins = ", ".join(f"%{v.name}: {v.type}" for v in graph.inputs)
    outs = ", ".join(f"%{v.name}: {v.type}" for v in graph.outputs)
    lines = [f"graph {graph.name}({ins}) -> ({outs})"]
    for n in graph.nodes:
        attrs = ", ".join(f"{k}={_fmt_attr(v)}" for k, v in sorted(n.attrs.items()))
        lhs = ", ".join(f"%{v.name}" for v in n.outputs)
        rhs = ", ".join(_ref(v) for v in n.inputs)
        types = ", ".join(str(v.type) for v in n.outputs)
        label = n.op if n.name == n.outputs[0].name else f"{n.op}[{n.name}]"
        lines.append(f"  {lhs} = {label}({rhs})" + (f" {{{attrs}}}" if attrs else "") +
                     f" : {types}")
    return "\n".join(lines) + "\n"
