"""TVM backend: bit-exact (0 LSB) with the integer interpreter, op by op and on the zoo."""

import os

import numpy as np
import pytest

import edgeq
from edgeq.backends import get_backend
from edgeq.quant.pipeline import quantize_feeds
from edgeq.runtime.reference import run_graph
from tests.helpers import ZOO
from tests.helpers import float_and_data as _float_and_data
from tests.helpers import CASES
from tests.helpers import quantized_case as _quantized

pytest.importorskip("tvm", reason="the TVM backend needs apache-tvm")
pytestmark = pytest.mark.slow

OP_CASES = sorted(CASES)  # every integer-op case of tests/quant/test_integer_ops.py


def _max_lsb(ig, art, be, xs, name):
    sess = be.session(art)
    worst = 0
    for x in xs:
        feeds = {name: x}
        ours = run_graph(ig, quantize_feeds(ig, feeds))
        theirs = be.run(art, feeds, raw=True, session=sess)
        for v in ig.outputs:
            worst = max(worst, int(np.abs(ours[v.name].astype(np.int64) -
                                          theirs[v.name].astype(np.int64)).max()))
    return worst


@pytest.mark.parametrize("case", OP_CASES)
def test_each_integer_op_is_bit_exact_on_tvm(case, tmp_path):
    g, res, x = _quantized(case)
    be = get_backend("tvm")
    assert be.supports(res.graph) == []
    edgeq.save(res.graph, tmp_path / "model.eqm")
    art = be.lower(res.graph, str(tmp_path))
    assert _max_lsb(res.graph, art, be, [x[i:i + 1] for i in range(4)], "x") == 0


@pytest.mark.parametrize("name", ZOO)
def test_zoo_model_is_bit_exact_on_tvm(name, zoo_dir, tmp_path):
    from edgeq.export import export

    fg, cal = _float_and_data(name, zoo_dir, n=12)
    report = export(fg, cal, ["tvm"], str(tmp_path), {"eval_samples": 2})
    t = report["targets"]["tvm"]
    assert t["verification"]["calibration"]["max_abs_diff_lsb"] == 0
    assert t["verification"]["held_out"]["max_abs_diff_lsb"] == 0
    assert t["sqnr_db_vs_float"] == report["integer_interpreter"]["sqnr_db_vs_float"]
    assert os.path.getsize(tmp_path / "model.tvm.so") == t["size_bytes"] > 0
    assert "nn.conv2d" in t["op_counts"] or "matmul" in t["op_counts"]


def test_refuses_a_float_graph_with_the_reason():
    g, _, x = _quantized("conv_relu_pad")
    reasons = get_backend("tvm").supports(g)
    assert reasons and str(reasons[0]).startswith("the graph is not quantized")
