"""Import time against graph size: is ONNX import (load + the float passes + inspect) linear?

    .venv/bin/python -m tools.bench_import [--sizes 1000,2000,5000,10000] [--base DIR]

For each size N it writes an N-node ONNX chain in two shapes real exporters produce: ``chain``
(alternating ``Add`` with a constant and ``Relu``, which the passes fuse) and ``convnet``
(repeated ``Conv`` -> ``BatchNormalization`` -> ``Relu`` -> ``Add`` residual blocks on a small
tensor, which the passes fold and fuse). It then measures the CPU time (not wall time: the
machine may be shared) of ``edgeq.api.load`` + ``optimize`` + ``inspect`` in a fresh process,
the median of ``--repeat`` runs, and prints microseconds per node: linear import keeps that
column flat. With ``--base DIR`` (a checkout of another revision) the same files are imported
there too, in the same run, for a before/after table. The goal (issue 12): a 10,000-node chain
in under 3 s here.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CHILD = r"""
import sys, time
sys.path.insert(0, sys.argv[1])
from edgeq import api
t = time.process_time()
g = api.load(sys.argv[2])
g, _ = api.optimize(g)
api.inspect(g)
print(time.process_time() - t)
"""


def chain(n: int, path: str) -> None:
    from onnx import helper, numpy_helper

    nodes, inits, prev = [], [], "x"
    for i in range(n):
        if i % 2 == 0:
            inits.append(numpy_helper.from_array(np.full((1, 8), 0.01 * (i % 7), np.float32),
                                                 f"b{i}"))
            nodes.append(helper.make_node("Add", [prev, f"b{i}"], [f"t{i}"], name=f"add{i}"))
        else:
            nodes.append(helper.make_node("Relu", [prev], [f"t{i}"], name=f"relu{i}"))
        prev = f"t{i}"
    _save(nodes, inits, prev, [1, 8], path)


def convnet(n: int, path: str) -> None:
    import onnx  # noqa: F401
    from onnx import helper, numpy_helper

    rng = np.random.default_rng(0)
    nodes, inits, prev = [], [], "x"
    for b in range(n // 4):
        w = numpy_helper.from_array(rng.standard_normal((4, 4, 3, 3)).astype(np.float32) * 0.1,
                                    f"w{b}")
        bn = [numpy_helper.from_array(a.astype(np.float32), f"bn{b}_{k}") for k, a in enumerate(
            (np.ones(4), np.zeros(4), np.zeros(4), np.ones(4)))]
        inits += [w, *bn]
        nodes += [
            helper.make_node("Conv", [prev, f"w{b}"], [f"c{b}"], name=f"conv{b}",
                             pads=[1, 1, 1, 1]),
            helper.make_node("BatchNormalization", [f"c{b}"] + [t.name for t in bn], [f"n{b}"],
                             name=f"bn{b}"),
            helper.make_node("Relu", [f"n{b}"], [f"r{b}"], name=f"relu{b}"),
            helper.make_node("Add", [f"r{b}", prev], [f"y{b}"], name=f"add{b}"),
        ]
        prev = f"y{b}"
    _save(nodes, inits, prev, [1, 4, 4, 4], path)


def _save(nodes, inits, out: str, shape: list[int], path: str) -> None:
    import onnx
    from onnx import TensorProto, helper

    g = helper.make_graph(nodes, "bench", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, shape)], [helper.make_tensor_value_info(
            out, TensorProto.FLOAT, shape)], inits)
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), path)


def cpu_s(tree: str, path: str, repeat: int) -> float:
    runs = []
    for _ in range(repeat):
        p = subprocess.run([sys.executable, "-c", CHILD, tree, path], capture_output=True,
                           text=True, check=True)
        runs.append(float(p.stdout.strip().splitlines()[-1]))
    return statistics.median(runs)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="1000,2000,5000,10000")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--base", help="another checkout to compare with, in the same run")
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    trees = [("edgeq", ROOT)] + ([("base", os.path.abspath(args.base))] if args.base else [])
    head = f"{'graph':<9}{'nodes':>7}" + "".join(f"{name + ' CPU s':>14}{'us/node':>9}"
                                               for name, _ in trees)
    print(head)
    print("-" * len(head))
    with tempfile.TemporaryDirectory() as d:
        for kind, make in (("chain", chain), ("convnet", convnet)):
            for n in sizes:
                path = os.path.join(d, f"{kind}{n}.onnx")
                make(n, path)
                row = f"{kind:<9}{n:>7}"
                for _, tree in trees:
                    s = cpu_s(tree, path, args.repeat)
                    row += f"{s:>14.2f}{s / n * 1e6:>9.0f}"
                print(row, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
