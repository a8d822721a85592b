"""End to end on the model zoo and the nine onnx light graphs: import, float passes, then the
reference interpreter against ONNX Runtime on random inputs (1e-4 relative), and no
BatchNormalization / Identity / Dropout left. The light graphs end in Softmax, which hides
errors, so their logits (the Softmax input) are compared too."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

import edgeq
from edgeq.runtime.reference import run_graph
from models.onnx_light import NAMES as LIGHT, load_light
from tests.helpers import rel_err

ort = pytest.importorskip("onnxruntime", reason="ONNX Runtime is the oracle for these tests")
pytestmark = pytest.mark.slow
ZOO = ["mobilenet_v2", "resnet8", "ds_cnn", "transformer_block", "digits_cnn"]
GONE = {"BatchNormalization", "Identity", "Dropout"}


def _ort(model_bytes: bytes, feeds, outputs=None):
    sess = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    return sess.run(outputs, feeds)


def _check(graph_raw, model_bytes, logits_name=None):
    graph, result = edgeq.optimize(graph_raw, verify=True)
    assert not GONE & set(graph.ops()), graph.ops()
    rng = np.random.default_rng(0)
    feeds = {v.name: rng.normal(0, 1, v.shape).astype(np.float32) for v in graph.inputs}
    expected = _ort(model_bytes, feeds)
    env = run_graph(graph, feeds, keep=logits_name is not None)
    for v, e in zip(graph.outputs, expected):
        assert rel_err(env[v.name], e) < 1e-4, v.name
    return graph, env, feeds


@pytest.mark.parametrize("name", ZOO)
def test_zoo_model_matches_onnxruntime(name, zoo_dir):
    path = os.path.join(zoo_dir, f"{name}.onnx")
    with open(path, "rb") as f:
        _check(edgeq.from_onnx(path), f.read())


@pytest.mark.parametrize("name", LIGHT)
def test_onnx_light_graph_matches_onnxruntime(name):
    import onnx

    model = load_light(name)
    graph, env, feeds = _check(edgeq.from_onnx(model), model.SerializeToString(), logits_name=1)
    softmax = [n for n in model.graph.node if n.op_type == "Softmax"]
    if softmax:  # compare the logits, which Softmax would otherwise flatten into one-hots
        logits = softmax[-1].input[0]
        m2 = onnx.ModelProto()
        m2.CopyFrom(model)
        m2.graph.output.append(onnx.helper.make_tensor_value_info(logits, onnx.TensorProto.FLOAT,
                                                                  None))
        expected = _ort(m2.SerializeToString(), feeds, [logits])[0]
        assert logits in env, f"{name}: logits value '{logits}' lost its name"
        assert rel_err(env[logits], expected) < 1e-4, name


def test_digits_cnn_is_actually_trained(zoo_dir):
    from models import data

    graph, _ = edgeq.optimize(edgeq.from_onnx(os.path.join(zoo_dir, "digits_cnn.onnx")))
    _, _, x, y = data.digits()
    logits = edgeq.run(graph, data.normalize(x, data.DIGITS_MEAN, data.DIGITS_STD))[0]
    acc = float((logits.argmax(1) == y).mean())
    assert acc > 0.9, acc


def test_manifest_lists_every_model(zoo_dir):
    with open(os.path.join(zoo_dir, "manifest.json")) as f:
        manifest = json.load(f)
    assert sorted(manifest) == sorted(ZOO)
