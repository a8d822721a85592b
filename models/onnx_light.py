"""The nine model-zoo topologies that ship in the ``onnx`` wheel (``backend/test/data/light``),
with their constant-filled weights (``ConstantOfShape`` -> 0.02) re-drawn from a seeded generator so
numeric tests mean something. Each weight's role comes from the node that reads it:

- Conv / Gemm weight: He-normal, ``std = sqrt(2 / fan_in)``; biases: N(0, 0.05);
- BatchNormalization: gamma U(0.5, 1.5), beta N(0, 0.1), mean N(0, 0.1), var U(0.5, 1.5);
- anything else (Caffe2 per-channel Mul/Add scales): U(0.8, 1.2) for Mul, N(0, 0.1) for Add.

No download: the graphs come from the installed wheel. ``load_light(name)`` returns a ModelProto.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

NAMES = ("bvlc_alexnet", "densenet121", "inception_v1", "inception_v2", "resnet50", "shufflenet",
         "squeezenet", "vgg19", "zfnet512")


def light_dir() -> str:
    import onnx

    return os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light")


def _role_values(consumer, index: int, shape: tuple[int, ...], rng: np.random.Generator
                 ) -> np.ndarray:
    op = consumer.op_type if consumer is not None else ""
    if op in ("Conv", "Gemm") and index == 1:
        fan_in = int(np.prod(shape[1:])) if op == "Conv" else shape[-1]
        return rng.standard_normal(shape, dtype=np.float32) * np.float32(np.sqrt(2.0 / fan_in))
    if op in ("Conv", "Gemm") and index == 2:
        return rng.normal(0, 0.05, shape)
    if op == "BatchNormalization":
        return {1: lambda: rng.uniform(0.5, 1.5, shape), 2: lambda: rng.normal(0, 0.1, shape),
                3: lambda: rng.normal(0, 0.1, shape),
                4: lambda: rng.uniform(0.5, 1.5, shape)}[index]()
    if op == "Mul":
        return rng.uniform(0.8, 1.2, shape)
    return rng.normal(0, 0.1, shape)


def load_light(name: str, seed: int = 0) -> Any:
    import onnx
    from onnx import helper, numpy_helper

    path = os.path.join(light_dir(), f"light_{name}.onnx")
    model = onnx.load(path)
    rng = np.random.default_rng(seed)
    g = model.graph
    inits = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    consumers: dict[str, tuple[Any, int]] = {}
    for n in g.node:
        for i, x in enumerate(n.input):
            consumers.setdefault(x, (n, i))
    # follow pass-through ops (Unsqueeze/Reshape) to the real reader
    def reader(name: str):
        n, i = consumers.get(name, (None, 0))
        while n is not None and n.op_type in ("Unsqueeze", "Reshape", "Identity") and i == 0:
            n, i = consumers.get(n.output[0], (None, 0))
        return n, i

    new_nodes, new_inits = [], []
    for n in g.node:
        if n.op_type == "ConstantOfShape" and n.input[0] in inits:
            shape = tuple(int(d) for d in inits[n.input[0]])
            cons, idx = reader(n.output[0])
            arr = _role_values(cons, idx, shape, rng).astype(np.float32)
            new_inits.append(numpy_helper.from_array(arr, n.output[0]))
        else:
            new_nodes.append(n)
    del g.node[:]
    g.node.extend(new_nodes)
    used = {x for n in new_nodes for x in n.input}
    keep = [t for t in g.initializer if t.name in used]
    del g.initializer[:]
    g.initializer.extend(keep + new_inits)
    init_names = {t.name for t in g.initializer}
    inputs = [i for i in g.input if i.name in used or i.name not in init_names]
    inputs = [i for i in inputs if i.name in used]
    del g.input[:]
    g.input.extend(inputs)
    model.graph.name = f"light_{name}"
    del helper
    return model
