"""The Python API. The CLI only parses arguments and calls these functions; the text it prints
comes from ``edgeq.present``."""

from __future__ import annotations

import json
import os
from typing import Any, Sequence

import numpy as np

from edgeq import serialize
from edgeq.backends import available, get_backend
from edgeq import budgets as budget_rules
from edgeq.backends.npu_sim import simulate as run_simulation
from edgeq.backends.npu_sim import sweep as run_sweep
from edgeq.export import export as export_to
from edgeq.frontend import onnx as onnx_frontend
from edgeq.frontend import torch as torch_frontend
from edgeq.budgets import Budget
from edgeq.ir.graph import EdgeqError, Graph
from edgeq.outdir import OutputDir
from edgeq.ops.cost import activation_bytes, node_macs, node_param_bytes, node_params
from edgeq.passes.fold_input_normalization import FoldInputNormalization
from edgeq.passes.pipeline import FLOAT_PASSES, PipelineResult, run_passes
from edgeq.profile import profile as profile  # re-exported: edgeq.api.profile
from edgeq.quant.calibrate import CalibrationData, load_calibration
from edgeq.report_html import write_html
from edgeq.quant.pipeline import check_options, is_integer, quantize_model, run_integer
from edgeq.runtime.reference import run_batch
from edgeq.schedule.plan import Schedule, plan_schedule

DEFAULT_TARGETS = ("ort", "tflite", "tflm", "tvm")


def from_onnx(model: Any, input_shapes: dict[str, Sequence[int]] | None = None) -> Graph:
    """An ONNX file path or ``onnx.ModelProto`` -> Graph (not yet optimized)."""
    if isinstance(model, (str, os.PathLike)):
        return onnx_frontend.load_onnx(model, input_shapes)
    return onnx_frontend.from_onnx(model, input_shapes)


def from_torch(module: Any, example_inputs: Any) -> Graph:
    """A ``torch.nn.Module`` and example inputs -> Graph (not yet optimized)."""
    return torch_frontend.from_torch(module, example_inputs)


def load(model: str | os.PathLike | None = None, *, torch: str | None = None,
         input_shapes: dict[str, Sequence[int]] | None = None) -> Graph:
    """Load from an .onnx path, or from a ``package.module:factory`` torch spec."""
    if (model is None) == (torch is None):
        raise EdgeqError("give a MODEL path or --torch package.module:factory (exactly one)")
    if torch is None and (str(model).endswith(".eqm") or (
            os.path.isdir(str(model)) and os.path.exists(os.path.join(str(model), "model.eqm")))):
        return load_model(model)  # type: ignore[arg-type]
    if torch is not None:
        if not input_shapes:
            raise EdgeqError("--torch needs --input-shape (e.g. --input-shape 1,3,96,96)")
        shapes = list(input_shapes.values())
        module = torch_frontend.load_factory(torch)
        return from_torch(module, [torch_frontend.example_input(s) for s in shapes])
    return from_onnx(model, input_shapes)


def optimize(graph: Graph, mean: Sequence[float] | None = None,
             std: Sequence[float] | None = None, verify: bool | None = None
             ) -> tuple[Graph, PipelineResult]:
    """Run the float passes on a copy; with ``mean``/``std``, fold input normalization first so
    the result takes raw input."""
    g = graph.copy()
    passes = list(FLOAT_PASSES)
    if mean is not None or std is not None:
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
    return run_batch(graph, x, runner=lambda g, feeds: run_integer(g, feeds, raw=raw))


quantize = quantize_model


def save(graph: Graph, path: str | os.PathLike) -> None:
    serialize.save(graph, path)


def load_model(path: str | os.PathLike) -> Graph:
    """An edgeq model: a ``.eqm`` file, or a folder holding ``model.eqm``."""
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


def without_timings(report: Any) -> Any:
    """The report without its timings (every key ending in ``_ms`` or ``_s``, at any depth):
    what ``--deterministic-report`` writes, byte-identical between runs."""
    if isinstance(report, dict):
        return {k: without_timings(v) for k, v in report.items()
                if not (k.endswith("_ms") or k.endswith("_s"))}
    if isinstance(report, list):
        return [without_timings(v) for v in report]
    return report


SCHEMA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "report.schema.json")


def validate_report(report: dict[str, Any]) -> None:
    """Check ``report`` against the published schema (docs/report.schema.json; needs the
    ``jsonschema`` package, in the dev extra). The test suite sets ``EDGEQ_VALIDATE_REPORTS``
    so every report it writes is checked."""
    import jsonschema  # only for validation: not a runtime dependency

    with open(SCHEMA) as f:
        schema = json.load(f)
    kind = "export" if "targets" in report else "quantization"  # the schema's two shapes
    schema = dict(schema, oneOf=[{"$ref": f"#/$defs/{kind}"}])
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(report),
                    key=lambda e: list(e.absolute_path))
    errors = [c for e in errors for c in (e.context or [e])] or errors
    if errors:
        e = errors[0]
        where = "/".join(map(str, e.absolute_path)) or "(top level)"
        raise AssertionError(f"report.json does not match docs/report.schema.json at {where}: "
                             f"{e.message[:300]}")


def _write_json(path: str, report: dict[str, Any]) -> None:
    if os.environ.get("EDGEQ_VALIDATE_REPORTS"):
        validate_report(report)
    with open(path, "w") as f:
        json.dump(report, f, indent=2, sort_keys=True)
        f.write("\n")


def save_quantized(res, out: str | os.PathLike | OutputDir, deterministic_report: bool = False
                   ) -> None:
    """``edgeq quantize``'s folder: ``model.eqm`` and ``report.json`` (without its timing with
    ``deterministic_report``), written atomically."""
    out = out if isinstance(out, OutputDir) else OutputDir(out)
    with out as tmp:
        save(res.graph, os.path.join(tmp, "model.eqm"))
        _write_json(os.path.join(tmp, "report.json"),
                    without_timings(res.report) if deterministic_report else res.report)


def export(graph: Graph, calib: Any, out: str | os.PathLike | OutputDir,
           targets: Sequence[str] = DEFAULT_TARGETS, *, allow_fallback: bool = False,
           keep_going: bool = False,
           calib_samples: int | None = None, progress: bool | None = None,
           deterministic_report: bool = False, npu: str | None = None,
           budgets: Sequence[Budget] = (), baseline: dict[str, Any] | None = None,
           labels: Any = None, **quant_options) -> dict[str, Any]:
    """Quantize an optimized float graph with ``calib`` (as ``quantize`` takes it) and lower it
    to every target, each verified against the integer interpreter (``edgeq.export``). Writes
    the folder ``out`` atomically: ``model.eqm``, one artifact per target and ``report.json``
    (docs/report.md; without timings with ``deterministic_report``); returns the report.
    ``npu``: the NPU description (a built-in name or a ``.toml`` path) for ``npu-sim``.
    ``budgets`` (``edgeq.budgets``, e.g. from ``edgeq.toml``) are checked on the finished
    export, against ``baseline`` (an earlier report) for relative goals, and their results
    written into the report (``budgets``); a failed budget does not stop the export.
    ``labels``: class indices per calibration sample (an array or a ``.npy`` path): the report
    gets top-1 accuracies (``accuracy``) and ``max_top1_drop`` uses them.
    ``quant_options``: those of ``quantize``."""
    targets = list(targets)
    labels = _labels(labels)
    if not targets:
        raise EdgeqError(f"--target needs at least one of: {', '.join(available())}")
    out = out if isinstance(out, OutputDir) else OutputDir(out)
    if is_integer(graph):
        raise EdgeqError("export takes the float model (it quantizes it)")
    check_options(calib_samples=calib_samples, **quant_options)
    budgets = list(budgets)
    for b in budgets:
        if b.target != "*" and b.target not in targets:
            raise EdgeqError(f"budget {b.name}: target {b.target} is not exported (targets: "
                             f"{', '.join(targets)})")
    budget_rules.require_baseline(budgets, baseline)
    data = calib if isinstance(calib, CalibrationData) else load_calibration(
        os.fspath(calib), graph, calib_samples)
    with out as tmp:
        report = export_to(graph, data, targets, tmp, quant_options, progress=progress,
                           allow_fallback=allow_fallback, keep_going=keep_going,
                           backend_options={"npu": npu}, labels=labels)
        if budgets:
            check_budgets(report, budgets, baseline, tmp)
        _write_json(os.path.join(tmp, "report.json"),
                    without_timings(report) if deterministic_report else report)
        write_html(tmp)
    return report


def _labels(labels: Any) -> np.ndarray | None:
    if labels is None:
        return None
    if isinstance(labels, (str, os.PathLike)):
        path = os.fspath(labels)
        if not os.path.isfile(path):
            raise EdgeqError(f"--labels {path}: no such file")
        try:
            labels = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as e:
            raise EdgeqError(f"--labels {path}: not a readable .npy array ({e})") from None
    a = np.asarray(labels)
    if a.ndim != 1 or a.dtype.kind not in "iu":
        raise EdgeqError(f"--labels: expected one integer class index per sample, got "
                         f"{a.dtype}{list(a.shape)}")
    return a


def check_budgets(report: dict[str, Any], budgets: Sequence[Budget],
                  baseline: dict[str, Any] | None = None, out_dir: str | None = None
                  ) -> list[dict[str, Any]]:
    """Evaluate ``budgets`` on ``report`` (adding ``report["budgets"]``); metrics that need a
    profile (Cortex-M instruction counts) profile ``out_dir``'s artifacts first."""
    budgets = list(budgets)
    wanted = {b.target for b in budgets if b.metric in budget_rules.PROFILED}
    if wanted and out_dir is not None:
        names = sorted(report["targets"]) if "*" in wanted else sorted(wanted)
        for t in names:
            if t.startswith("cortex-m") and t in report["targets"]:
                p = profile(out_dir, [t], runs=1, warmup=0)["targets"][t]
                report["targets"][t]["profile"] = {"unit": p["unit"], "total": p["total"],
                                                   "source": p["source"]}
    results = budget_rules.evaluate(budgets, report, baseline)
    report["budgets"] = {"results": results,
                         "failed": [r["name"] for r in budget_rules.failed(results)]}
    return results


def run_exported(out_dir: str | os.PathLike, target: str, x: np.ndarray, raw: bool = False
                 ) -> tuple[list[str], list[np.ndarray]]:
    """Run the artifact ``edgeq export`` wrote for ``target`` in ``out_dir`` over the samples
    of ``x`` (as ``run`` takes them): (output names, outputs)."""
    out_dir = os.fspath(out_dir)
    if not os.path.isdir(out_dir):
        raise EdgeqError(f"--target {target} needs the folder `edgeq export` wrote")
    be = get_backend(target)
    art = be.open(out_dir)
    sess = be.session(art)
    outs = run_batch(art.graph, x,
                     many=lambda g, feeds: be.run_many(art, feeds, raw=raw, session=sess))
    return [v.name for v in art.graph.outputs], outs


def simulate(model: Graph | str | os.PathLike, npu: str = "ethos-u55-128",
             sweep: Sequence[str] | None = None) -> dict[str, Any]:
    """The NPU simulator (``edgeq.backends.npu_sim``) on an integer model (a Graph, an ``.eqm``
    or a folder ``edgeq export`` / ``quantize`` wrote): per-layer cycles, traffic, bound and
    energy on ``npu`` (a built-in name or a ``.toml`` path). With ``sweep``
    (``["macs=64,128,256", "sram=128KB,256KB"]``) also one row per combination under
    ``"sweep"``."""
    graph = model if isinstance(model, Graph) else load(model)
    if not is_integer(graph):
        raise EdgeqError("simulate takes an integer model: the folder `edgeq export` or "
                         "`edgeq quantize` wrote, or its model.eqm")
    report = run_simulation(graph, npu)
    if sweep:
        report["sweep"] = run_sweep(graph, npu, sweep)
    return report


def plan_memory(graph: Graph, max_overhead: float = 0.20) -> Schedule:
    """Activation-memory schedules (``edgeq.schedule.plan``): layer by layer, best order,
    patch-based within ``max_overhead`` extra MACs (a fraction). A float graph is planned as the
    int8 model it becomes."""
    return plan_schedule(graph, max_overhead, bytes_per_element=None if is_integer(graph) else 1)
