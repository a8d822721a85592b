"""Small builders for tests: ONNX models from node lists, and ORT as the independent oracle."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np


def onnx_model(nodes: list, inputs: dict[str, Sequence[int]], outputs: Sequence[str],
               inits: dict[str, np.ndarray] | None = None, opset: int = 17,
               out_shapes: dict[str, Sequence[int]] | None = None) -> Any:
    from onnx import TensorProto, helper, numpy_helper

    ins = [helper.make_tensor_value_info(n, TensorProto.FLOAT, list(s)) for n, s in
           inputs.items()]
    outs = [helper.make_tensor_value_info(n, TensorProto.FLOAT,
                                          None if not out_shapes else out_shapes.get(n))
            for n in outputs]
    graph = helper.make_graph(nodes, "test", ins, outs,
                              [numpy_helper.from_array(np.asarray(v), k) for k, v in
                               (inits or {}).items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = min(model.ir_version, 9)
    return model


def ort_run(model: Any, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(model.SerializeToString(), so,
                                providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def rel_err(a: np.ndarray, b: np.ndarray) -> float:
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-6))
