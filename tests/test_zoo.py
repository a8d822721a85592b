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
        # both sides sum float32 products in CPU-dependent orders (BLAS, MLAS): ~1e-7 apart
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


def test_zoo_is_built_from_the_kept_weights(zoo_dir):
    """The same zoo on every machine: each model is exported from models/weights/NAME.npz,
    whose digest is recorded (training runs CPU-dependent float kernels)."""
    from models import zoo

    with open(os.path.join(zoo_dir, "manifest.json")) as f:
        manifest = json.load(f)
    digests = zoo.recorded_digests()
    for name in ZOO:
        assert manifest[name]["weights_sha256"] == digests[name], name
        assert zoo.weights_digest(zoo.load_weights(name)) == digests[name], name


def test_tampered_weights_are_refused(tmp_path, monkeypatch):
    import shutil

    from models import zoo

    shutil.copytree(zoo.WEIGHTS_DIR, tmp_path / "w")
    monkeypatch.setattr(zoo, "WEIGHTS_DIR", str(tmp_path / "w"))
    monkeypatch.setattr(zoo, "DIGESTS", str(tmp_path / "w" / "digests.json"))
    arrays = zoo.load_weights("digits_cnn")
    key = sorted(k for k in arrays if arrays[k].dtype == np.float32)[0]
    arrays[key] = arrays[key].copy()
    arrays[key].flat[0] = np.nextafter(arrays[key].flat[0], np.float32(np.inf))  # one ULP
    np.savez_compressed(tmp_path / "w" / "digits_cnn.npz", **arrays)
    with pytest.raises(RuntimeError, match="does not match the recorded"):
        zoo.load_weights("digits_cnn")
    os.remove(tmp_path / "w" / "ds_cnn.npz")
    with pytest.raises(RuntimeError, match="--retrain --only ds_cnn"):
        zoo.pinned("ds_cnn")


def test_zoo_onnx_bytes_are_the_recorded_ones(zoo_dir):
    """Exported from the kept weights with BatchNormalization kept as a node, the ONNX files are
    byte-identical on every machine (recorded by ``models.build --retrain``)."""
    from models.build import exporter_versions, file_sha256, recorded_onnx

    rec = recorded_onnx()
    if {k: rec.get(k) for k in ("torch", "onnx")} != exporter_versions():
        pytest.skip(f"recorded with {rec.get('torch')}/{rec.get('onnx')}, this is "
                    f"{exporter_versions()}: the exporter's bytes may differ")
    for name in ZOO:
        assert file_sha256(os.path.join(zoo_dir, f"{name}.onnx")) == rec["files"][name], name
