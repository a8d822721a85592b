"""Identity removal: ``Identity(x)``, inference-time ``Dropout(x)`` and ``Cast`` to the dtype
``x`` already has all compute ``y = x``; every use of ``y`` reads ``x`` instead.

Refused when ``x`` is a graph input and ``y`` a graph output: both names are part of the model's
interface, so the node must stay to connect them."""

from __future__ import annotations

from edgeq.ir.graph import Graph
from edgeq.passes import refuse


def remove_identity(graph: Graph) -> bool:
    changed = False
    for node in list(graph.nodes):
        is_noop_cast = node.op == "Cast" and node.inputs[0].dtype == node.outputs[0].dtype
        if node.op not in ("Identity", "Dropout") and not is_noop_cast:
            continue
        x, y = node.inputs[0], node.outputs[0]
        if y in graph.outputs and (x in graph.inputs or x in graph.outputs):
            refuse("remove_identity", f"{node.op} '{node.name}': connects graph input/output "
                   f"'{x.name}' to graph output '{y.name}'; kept so both names stay")
            continue
        graph.replace_uses(y, x)
        graph.remove_node(node)
        changed = True
    return changed
