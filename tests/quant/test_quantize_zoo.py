"""The quantization goals on the zoo (issue: integer-only quantization), asserted."""

import os

import numpy as np
import pytest

import edgeq
from edgeq.quant.pipeline import run_integer
from edgeq.runtime.reference import run_graph
from models import data
from tests.quant.util import assert_integer_only

pytestmark = pytest.mark.slow


def _held_out_sqnr(fg, ig, x):
    sig = noise = 0.0
    for i in range(len(x)):
        f = run_graph(fg, {"input": x[i:i + 1]})["output"].astype(np.float64)
        q = run_integer(ig, {"input": x[i:i + 1]})["output"].astype(np.float64)
        sig += (f ** 2).sum()
        noise += ((f - q) ** 2).sum()
    return 10 * np.log10(sig / noise)


def test_digits_cnn_int8_keeps_accuracy_and_sqnr(zoo_dir):
    fg, _ = edgeq.optimize(edgeq.load(os.path.join(zoo_dir, "digits_cnn.onnx")),
                           mean=data.DIGITS_MEAN, std=data.DIGITS_STD)
    xtr, _, xte, yte = data.digits()
    res = edgeq.quantize(fg, xtr[:256])
    assert_integer_only(res.graph)
    assert all(v.dtype.value == "int8" for v in res.graph.values.values() if not v.is_const)
    f_acc = float((edgeq.run(fg, xte)[0].argmax(1) == yte).mean())
    q_acc = float((edgeq.run(res.graph, xte)[0].argmax(1) == yte).mean())
    # measured 96.67% float and int8, SQNR 40.66 dB, with either BLAS kernel set
    assert f_acc - q_acc <= 0.005, (f_acc, q_acc)
    assert _held_out_sqnr(fg, res.graph, xte[:64]) >= 30


def test_mobilenet_v2_reaches_38_db_on_held_out_photos(zoo_dir):
    """The net is the same on every machine (kept weights, models/weights), its calibration is
    not quite: the float interpreter runs numpy's BLAS, whose kernels differ by CPU, and
    near-equal int16 gains then pick different int16 sets. Measured on this net, held-out:
    --int16 auto 38.95 dB (5 int16) with OpenBLAS's SkylakeX (AVX-512) kernels and 40.13 dB
    (5 int16) with its Haswell (AVX2) kernels (OPENBLAS_CORETYPE=Haswell); all-int8 37.25 and
    37.28 dB. Margins: 0.95 dB above 38, 4.2 dB above 33. (Across six training seeds of the
    same recipe the auto figure spans 31.9-39.8 dB: the threshold is this net's, not the
    recipe's.)"""
    fg, _ = edgeq.optimize(edgeq.load(os.path.join(zoo_dir, "mobilenet_v2.onnx")),
                           mean=data.IMAGENET_MEAN, std=data.IMAGENET_STD)
    calib = data.photo_crops(64, 96, seed=1)
    held = data.photo_crops(32, 96, seed=2)
    res = edgeq.quantize(fg, calib, int16="auto", target_sqnr_db=40)
    assert_integer_only(res.graph)
    n16 = len(res.report["mixed_precision"]["steps"][-1]["int16"])
    assert n16 <= 8
    db = _held_out_sqnr(fg, res.graph, held)
    assert db >= 38, (db, n16)
    int8 = edgeq.quantize(fg, calib)  # all-int8 is reported too; it must still be sane
    assert _held_out_sqnr(fg, int8.graph, held) >= 33


@pytest.mark.parametrize("name", ["resnet8", "ds_cnn", "transformer_block"])
def test_other_zoo_models_quantize_integer_only(name, zoo_dir):
    fg, _ = edgeq.optimize(edgeq.load(os.path.join(zoo_dir, f"{name}.onnx")))
    shape = fg.inputs[0].shape
    x = np.random.default_rng(0).normal(size=(16,) + shape[1:]).astype(np.float32)
    res = edgeq.quantize(fg, x, eval_samples=8)
    assert_integer_only(res.graph)
    # measured 40.4 (resnet8), 41.9 (ds_cnn), 33.1 dB (transformer_block), same with either BLAS
    assert res.report["output_sqnr_db"]["output"] >= 25
    a = edgeq.run(res.graph, x[:4], raw=True)[0]
    b = edgeq.run(res.graph, x[:4], raw=True)[0]
    assert a.dtype == np.int8 and np.array_equal(a, b)  # deterministic
