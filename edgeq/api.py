"""The Python API. The CLI only parses arguments and calls these functions."""

from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np

from edgeq.ir.cost import activation_bytes, node_macs, node_param_bytes, node_params
from edgeq.ir.graph import EdgeqError, Graph
from edgeq.passes.pipeline import FLOAT_PASSES, PipelineResult, run_passes
from edgeq.runtime.reference import run_batch


def from_onnx(model: Any, input_shapes: dict[str, Sequence[int]] | None = None) -> Graph:
    """An ONNX file path or ``onnx.ModelProto`` -> Graph (not yet optimized)."""
    from edgeq.frontend import onnx as fe

    if isinstance(model, (str, os.PathLike)):
        return fe.load_onnx(model, input_shapes)
    return fe.from_onnx(model, input_shapes)


def from_torch(module: Any, example_inputs: Any) -> Graph:
    """A ``torch.nn.Module`` and example inputs -> Graph (not yet optimized)."""
    from edgeq.frontend.torch import from_torch as fe

    return fe(module, example_inputs)


def load(model: str | os.PathLike | None = None, *, torch: str | None = None,
         input_shapes: dict[str, Sequence[int]] | None = None) -> Graph:
    """Load from an .onnx path, or from a ``package.module:factory`` torch spec."""
    if (model is None) == (torch is None):
        raise EdgeqError("give a MODEL path or --torch package.module:factory (exactly one)")
    if torch is None and (str(model).endswith(".eqm") or (
            os.path.isdir(str(model)) and os.path.exists(os.path.join(str(model), "model.eqm")))):
        return load_model(model)  # type: ignore[arg-type]
    if torch is not None:
        from edgeq.frontend.torch import example_input, load_factory

        if not input_shapes:
            raise EdgeqError("--torch needs --input-shape (e.g. --input-shape 1,3,96,96)")
        shapes = list(input_shapes.values())
        module = load_factory(torch)
        return from_torch(module, [example_input(s) for s in shapes])
    return from_onnx(model, input_shapes)


def optimize(graph: Graph, mean: Sequence[float] | None = None,
             std: Sequence[float] | None = None, verify: bool | None = None
             ) -> tuple[Graph, PipelineResult]:
    """Run the float passes on a copy; with ``mean``/``std``, fold input normalization first so
    the result takes raw input."""
    g = graph.copy()
    passes = list(FLOAT_PASSES)
    if mean is not None or std is not None:
        from edgeq.passes.fold_input_normalization import FoldInputNormalization

        if mean is None or std is None:
            raise EdgeqError("input normalization needs both --mean and --std")
        passes.insert(0, ("fold_input_normalization",
                          FoldInputNormalization(tuple(mean), tuple(std))))
    result = run_passes(g, passes, verify_each=verify)
    return g, result


def run(graph: Graph, x: np.ndarray, raw: bool = False) -> list[np.ndarray]:
    """Run over samples (first axis of ``x``): the float reference interpreter for a float
    graph; for an integer graph, inputs are quantized with the model's input parameters, the
    integer interpreter runs, and outputs are dequantized (integer outputs with ``raw``)."""
    if not is_integer(graph):
        if raw:
            raise EdgeqError("--raw needs an integer (quantized) model")
        return run_batch(graph, x)
    from edgeq.quant.pipeline import run_integer

    return run_batch(graph, x, runner=lambda g, feeds: run_integer(g, feeds, raw=raw))


def is_integer(graph: Graph) -> bool:
    return graph.metadata.get("quantized") == "int"


def quantize(graph: Graph, calib: Any, *, observer: str = "minmax", weight_bits: int = 8,
             int16: Sequence[str] | str = (), rounding: str = "edgeq", equalize: bool = True,
             bias_correction: bool = True, calib_samples: int | None = None,
             eval_samples: int = 32, progress: bool | None = None,
             target_sqnr_db: float = 40.0, max_int16: int = 8,
             weight_rounding: str = "gptq"):
    """An optimized float graph + calibration data (a path to .npy/.npz/an image folder, an
    array with samples on axis 0, or a CalibrationData) -> QuantResult(graph, float_graph,
    report). ``int16`` names values to keep in int16, or is ``"auto"``: the fewest values
    (at most ``max_int16``) that bring the output SQNR to ``target_sqnr_db``."""
    from edgeq.quant.calibrate import CalibrationData, load_calibration
    from edgeq.quant.convert import QuantConfig
    from edgeq.quant.observers import OBSERVERS
    from edgeq.quant.pipeline import quantize as _quantize

    if observer not in OBSERVERS:
        raise EdgeqError(f"unknown observer {observer!r}; choose one of {', '.join(OBSERVERS)}")
    if is_integer(graph):
        raise EdgeqError("the model is already quantized")
    if isinstance(calib, CalibrationData):
        data = calib
    elif isinstance(calib, (str, os.PathLike)):
        data = load_calibration(os.fspath(calib), graph, calib_samples)
    else:
        if not isinstance(calib, dict) and len(graph.inputs) != 1:
            raise EdgeqError("pass calibration data for several inputs as a dict or .npz")
        arrays = calib if isinstance(calib, dict) else {graph.inputs[0].name: np.asarray(calib)}
        data = CalibrationData(graph, arrays=arrays, limit=calib_samples)
    auto = int16 == "auto"
    int16 = () if auto else tuple(int16)
    known = {v.name for n in graph.nodes for v in n.outputs} | {v.name for v in graph.inputs}
    unknown = [n for n in int16 if n not in known]
    if unknown:
        raise EdgeqError(f"--int16 names unknown values {unknown}")
    cfg = QuantConfig(observer=observer, weight_bits=weight_bits, int16=tuple(int16),
                      rounding=rounding, bias_correction=bias_correction,
                      weight_rounding=weight_rounding)
    return _quantize(graph, data, cfg, equalize=equalize, eval_samples=eval_samples,
                     progress=progress, int16_auto=auto, target_sqnr_db=target_sqnr_db,
                     max_int16=max_int16)


def save(graph: Graph, path: str | os.PathLike) -> None:
    from edgeq import serialize

    serialize.save(graph, path)


def load_model(path: str | os.PathLike) -> Graph:
    """An edgeq model: a ``.eqm`` file, or a folder holding ``model.eqm``."""
    from edgeq import serialize

    path = os.fspath(path)
    if os.path.isdir(path):
        path = os.path.join(path, "model.eqm")
    return serialize.load(path)


def inspect(graph: Graph) -> dict[str, Any]:
    """Per-layer table (op, output shape, params, MACs, activation bytes) and totals."""
    layers = []
    for n in graph.nodes:
        layers.append({
            "name": n.name, "op": n.op + (f"+{n.attrs['activation']}" if "activation" in n.attrs
                                          else ""),
            "output_shape": list(n.outputs[0].shape), "params": node_params(n),
            "param_bytes": node_param_bytes(n), "macs": node_macs(n),
            "activation_bytes": activation_bytes(n),
        })
    totals = {
        "layers": len(layers),
        "params": sum(r["params"] for r in layers),
        "param_bytes": sum(r["param_bytes"] for r in layers),
        "macs": sum(r["macs"] for r in layers),
        "activation_bytes": sum(r["activation_bytes"] for r in layers),
        "max_activation_bytes": max((r["activation_bytes"] for r in layers), default=0),
    }
    return {"model": graph.name,
            "inputs": [{"name": v.name, "shape": list(v.shape), "dtype": v.dtype.value}
                       for v in graph.inputs],
            "outputs": [{"name": v.name, "shape": list(v.shape), "dtype": v.dtype.value}
                        for v in graph.outputs],
            "layers": layers, "totals": totals}


def format_table(rows: list[list[Any]], header: list[str]) -> str:
    """Plain aligned text table; numbers right-aligned."""
    cells = [header] + [[_fmt(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    numeric = [all(isinstance(r[i], (int, float)) for r in rows) for i in range(len(header))]
    lines = []
    for k, r in enumerate(cells):
        lines.append("  ".join(c.rjust(w) if numeric[i] else c.ljust(w)
                               for i, (c, w) in enumerate(zip(r, widths))).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _fmt(c: Any) -> str:
    if isinstance(c, int):
        return f"{c:,}"
    if isinstance(c, float):
        return f"{c:.4g}"
    return str(c)


def format_inspect(info: dict[str, Any]) -> str:
    rows = [[r["name"], r["op"], "x".join(map(str, r["output_shape"])), r["params"], r["macs"],
             r["activation_bytes"]] for r in info["layers"]]
    t = info["totals"]
    head = (f"model {info['model']}: inputs "
            + ", ".join(f"{i['name']} {i['dtype']}{i['shape']}" for i in info["inputs"])
            + "; outputs " + ", ".join(f"{o['name']} {o['dtype']}{o['shape']}"
                                        for o in info["outputs"]))
    table = format_table(rows, ["layer", "op", "output", "params", "MACs", "act bytes"])
    total = (f"total: {t['layers']} layers, {t['params']:,} params ({t['param_bytes']:,} bytes), "
             f"{t['macs']:,} MACs, largest activation {t['max_activation_bytes']:,} bytes")
    return f"{head}\n{table}\n{total}"
