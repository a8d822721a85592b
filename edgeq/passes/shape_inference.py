"""Shape inference: every value gets a static ``TensorType`` from its producer's inputs.

The rules are the ops' own (``edgeq.ops``: ONNX semantics, numpy broadcasting for element-wise
ops, the conv/pool output-size formulas); attributes are in the canonical form the frontend
produces. The pass recomputes every node's output types in order and reports whether any
changed.
"""

from __future__ import annotations

from edgeq.ir.graph import Graph
from edgeq.ops import infer_node


def infer_shapes(graph: Graph) -> bool:
    """Recompute output types of every node in order; True if any type changed."""
    changed = False
    for node in graph.nodes:
        new = infer_node(node)
        for v, t in zip(node.outputs, new):
            if v.type != t:
                v.type = t
                changed = True
    return changed
