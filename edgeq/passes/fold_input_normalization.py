"""Input-normalization folding: the model is given ``x_norm = (x - mean) / std`` per channel
(axis 1) by its training pipeline; after this pass it takes raw ``x`` (for example pixels 0-255).

When the only reader of the input is a Conv that does not pad, the normalization folds into it::

    W'[m, c, i, j] = W[m, c, i, j] / std[c]
    b'[m]          = b[m] - sum_{c,i,j} W[m, c, i, j] * mean[c] / std[c]

A padded Conv pads with zeros in the *normalized* domain, i.e. with the value ``mean[c]`` in the
raw domain. If every channel has the same mean, an explicit ``Pad`` with that value goes in front
and the fold stays exact. Otherwise (or if the input has other readers) an explicit per-channel
``Mul(x, 1/std)`` + ``Add(., -mean/std)`` is inserted at the input instead: still exact, still raw
input, one cheap element-wise op; the reason is logged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeq.ir.graph import EdgeqError, Graph
from edgeq.ops import infer_node
from edgeq.passes import refuse

NAME = "fold_input_normalization"


@dataclass(frozen=True)
class FoldInputNormalization:
    mean: tuple[float, ...]
    std: tuple[float, ...]
    input_name: str | None = None  # default: the first graph input

    def __call__(self, graph: Graph) -> bool:
        x = graph.inputs[0] if self.input_name is None else next(
            (v for v in graph.inputs if v.name == self.input_name), None)
        if x is None:
            raise EdgeqError(f"input normalization: the model has no input '{self.input_name}'")
        if graph.metadata.get("input_normalization_folded") == x.name:
            return False
        if len(x.shape) < 2:
            raise EdgeqError(f"input normalization: input '{x.name}' of shape {list(x.shape)} "
                             f"has no channel axis 1")
        c = x.shape[1]
        mean = np.broadcast_to(np.asarray(self.mean, np.float64), (c,)) if len(self.mean) in (
            1, c) else None
        std = np.broadcast_to(np.asarray(self.std, np.float64), (c,)) if len(self.std) in (
            1, c) else None
        if mean is None or std is None:
            raise EdgeqError(f"input normalization: input '{x.name}' has {c} channels but "
                             f"{len(self.mean)} means and {len(self.std)} stds were given")
        if np.any(std == 0):
            raise EdgeqError("input normalization: std must be non-zero")
        graph.metadata["input_normalization_folded"] = x.name
        graph.metadata["input_mean"] = ",".join(f"{m:g}" for m in mean)
        graph.metadata["input_std"] = ",".join(f"{s:g}" for s in std)
        users = x.users()
        conv = users[0] if len(users) == 1 and users[0].op == "Conv" else None
        why = None
        if conv is None:
            why = f"input '{x.name}' is not read by exactly one Conv"
        elif conv.inputs[0] is not x or any(v is not None and not v.is_const
                                            for v in conv.inputs[1:]):
            why = f"Conv '{conv.name}' has non-constant weights"
        elif any(conv.attrs["pads"]) and not np.all(mean == mean[0]):
            why = (f"Conv '{conv.name}' zero-pads in the normalized domain and the channel means "
                   f"differ, so a fold would change border outputs")
        if why:
            refuse(NAME, f"{why}; inserted an exact per-channel Mul+Add at the input instead")
            self._insert_affine(graph, x, mean, std)
            return True
        w = conv.inputs[1].const.astype(np.float64)
        g = conv.attrs["group"]
        m, cg = w.shape[0], w.shape[1]
        in_ch = (np.arange(m)[:, None] // (m // g)) * cg + np.arange(cg)[None, :]  # (M, Cg)
        inv = (1.0 / std)[in_ch][:, :, None, None]
        shift = (mean / std)[in_ch][:, :, None, None]
        b = conv.const_input(2)
        b = np.zeros(m) if b is None else b.astype(np.float64)
        b = b - (w * shift).sum(axis=(1, 2, 3))
        dt = conv.inputs[1].const.dtype
        graph.set_input(conv, 1, graph.add_const(f"{conv.name}/weight_rawinput",
                                                 (w * inv).astype(dt)))
        graph.set_input(conv, 2, graph.add_const(f"{conv.name}/bias_rawinput", b.astype(dt)))
        if any(conv.attrs["pads"]):
            p = conv.attrs["pads"]
            pad = graph.add_node("Pad", [x], [x.type], {"pads": [0, 0, p[0], p[1], 0, 0, p[2],
                                                                  p[3]], "mode": "constant",
                                                         "value": float(mean[0])},
                                 name=graph.unique_name(f"{conv.name}/pad_mean"), before=conv)
            pad.outputs[0].type = infer_node(pad)[0]
            graph.set_input(conv, 0, pad.outputs[0])
            conv.attrs["pads"] = [0, 0, 0, 0]
        return True

    @staticmethod
    def _insert_affine(graph: Graph, x, mean, std) -> None:
        shape = (x.shape[1],) + (1,) * (len(x.shape) - 2)
        dt = x.dtype.numpy
        first = graph.nodes[0] if graph.nodes else None
        users = list(x.uses)
        mul = graph.add_node("Mul", [x, graph.add_const("input_norm/scale",
                                                        (1 / std).reshape(shape).astype(dt))],
                             [x.type], name=graph.unique_name("input_norm/mul"), before=first)
        add = graph.add_node("Add", [mul.outputs[0], graph.add_const(
            "input_norm/shift", (-mean / std).reshape(shape).astype(dt))], [x.type],
            name=graph.unique_name("input_norm/add"), after=mul)
        for node, i in users:
            graph.set_input(node, i, add.outputs[0])
