"""Fuzz ONNX import: model bytes -> ``edgeq.api.load`` (dynamic dimensions given static sizes) ->
``edgeq.api.optimize`` (the float passes; the IR verifier after each on small graphs, once at the
end on large ones) -> ``edgeq.api.inspect``, and the float reference interpreter on a zero input
when the graph is small. See ``tests/fuzz/harness.py``.

Raw byte mutation of a protobuf mostly makes parse errors, so the custom mutator here parses the
``ModelProto`` and changes its structure (attribute values to boundary values, node inputs
dropped, duplicated or rewired, op types swapped, dims set to 0 / -1 / huge, initializer data
cut short, names made to collide, nodes reordered...), and only sometimes mutates bytes.

The size limits are lowered (``EDGEQ_MAX_TENSOR_BYTES`` / ``EDGEQ_MAX_ACTIVATION_BYTES``) so a
size edgeq accepts stays well inside the harness's address-space cap.
"""

from __future__ import annotations

import os
import random
import warnings

import atheris
import numpy as np

os.environ.setdefault("EDGEQ_MAX_TENSOR_BYTES", str(64 << 20))
os.environ.setdefault("EDGEQ_MAX_ACTIVATION_BYTES", str(64 << 20))

with atheris.instrument_imports(include=["edgeq"]):
    from edgeq import api
    from edgeq.ir.graph import EdgeqError
    from edgeq.ir.verify import verify
    from edgeq.runtime.reference import run_graph

import onnx  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from tests.fuzz import harness  # noqa: E402

warnings.simplefilter("ignore", RuntimeWarning)  # NaN and overflow in kernels are not findings
TMP = harness.scratch("onnx")
PATH = os.path.join(TMP, "model.onnx")
RUN_MAX_ELEMENTS = 100_000      # inputs the interpreter runs on (as `edgeq run` does)
RUN_MAX_ACTIVATION = 16 << 20   # and only when every activation together stays small
RUN_MAX_MACS = 50_000_000
VERIFY_EACH_MAX_NODES = 300


def _input_shapes(data: bytes) -> dict[str, list[int]]:
    """Static sizes for the model's dynamic dimensions (1 for the batch, 4 elsewhere), as a user
    gives them with --input-shape."""
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except Exception:  # the loader reports it
        return {}
    inits = {t.name for t in model.graph.initializer}
    shapes = {}
    for vi in model.graph.input:
        tt = vi.type.tensor_type
        if vi.name in inits or not vi.type.HasField("tensor_type") or not tt.HasField("shape"):
            continue
        dims = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
                for d in tt.shape.dim]
        if None in dims:
            shapes[vi.name] = [d if d is not None else 1 if i == 0 else 4
                               for i, d in enumerate(dims)]
    return shapes


def one_input(data: bytes) -> None:
    with open(PATH, "wb") as f:
        f.write(data)
    try:
        graph = api.load(PATH, input_shapes=_input_shapes(data))
        # the verifier after every pass on small graphs, once at the end on large ones
        opt, _ = api.optimize(graph, verify=len(graph.nodes) <= VERIFY_EACH_MAX_NODES)
        verify(opt)
        info = api.inspect(opt)
    except EdgeqError as e:
        # the import's last-resort net names the node but not the problem: a finding
        if "cannot import this node (" in str(e):
            raise AssertionError(str(e)) from None
        raise
    totals = info["totals"]
    elements = sum(int(np.prod(v.shape, dtype=object)) for v in opt.inputs)
    if elements <= RUN_MAX_ELEMENTS and totals["activation_bytes"] <= RUN_MAX_ACTIVATION and \
            totals["macs"] <= RUN_MAX_MACS:
        run_graph(opt, {v.name: np.zeros(v.shape, v.dtype.numpy) for v in opt.inputs})


# --- structure-aware mutation -------------------------------------------------------------------

INTS = [0, 1, -1, 2, 3, -2, 7, 255, 2 ** 31 - 1, 2 ** 31, -2 ** 31, 2 ** 40, 2 ** 62, 10 ** 6,
        -10 ** 6]
FLOATS = [0.0, -0.0, 1.0, -1.0, 0.5, 1e6, -1e6, 1e30, 1e-30, float("nan"), float("inf"),
          float("-inf"), 20000.0]
STRINGS = ["", "NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER", "nearest", "linear", "cubic",
           "bilinear", "constant", "reflect", "edge", "wrap", "half_pixel", "align_corners",
           "asymmetric", "tf_crop_and_resize", "pytorch_half_pixel", "floor", "ceil", "tanh",
           "none", "forward", "reverse", "bidirectional", "Sigmoid", "Tanh", "Relu", "Foo"]
ATTR_NAMES = ["axis", "axes", "kernel_shape", "strides", "pads", "dilations", "group", "perm",
              "split", "keepdims", "auto_pad", "ceil_mode", "count_include_pad", "alpha",
              "beta", "epsilon", "transA", "transB", "to", "mode", "value", "starts", "ends",
              "shape", "allowzero", "output_padding", "output_shape", "num_outputs", "size",
              "bias", "hidden_size", "direction", "layout", "start", "end", "min", "max",
              "scales", "noop_with_empty_axes", "training_mode", "approximate", "antialias",
              "coordinate_transformation_mode", "nearest_mode", "linear_before_reset",
              "value_int", "value_ints", "value_float", "value_floats", "sizes"]
OPS = ["Abs", "Add", "AveragePool", "BatchNormalization", "Cast", "Clip", "Concat", "Constant",
       "ConstantOfShape", "Conv", "ConvTranspose", "Div", "Dropout", "Equal", "Erf", "Exp",
       "Expand", "Flatten", "GRU", "Gather", "Gelu", "Gemm", "GlobalAveragePool",
       "HardSigmoid", "HardSwish", "Identity", "If", "LRN", "LSTM", "LayerNormalization",
       "LeakyRelu", "MatMul", "Max", "MaxPool", "Min", "Mul", "Neg", "PRelu", "Pad", "Pow",
       "Range", "Reciprocal", "ReduceMean", "Relu", "Reshape", "Resize", "Shape", "Sigmoid",
       "Slice", "Softmax", "Split", "Sqrt", "Squeeze", "Sub", "Sum", "Tanh", "Transpose",
       "Unsqueeze", "Upsample", "Where"]
DTYPES = [TensorProto.FLOAT, TensorProto.INT64, TensorProto.INT32, TensorProto.INT8,
          TensorProto.UINT8, TensorProto.BOOL, TensorProto.FLOAT16, TensorProto.DOUBLE,
          TensorProto.STRING, TensorProto.BFLOAT16, TensorProto.COMPLEX64, 0, 99]


def _value_names(g) -> list[str]:
    names = [vi.name for vi in g.input] + [t.name for t in g.initializer]
    for n in g.node:
        names.extend(n.output)
    return names or ["x"]


def _random_attr(rng: random.Random, name: str):
    kind = rng.randrange(6)
    if kind == 0:
        return helper.make_attribute(name, rng.choice(INTS))
    if kind == 1:
        return helper.make_attribute(name, rng.choice(FLOATS))
    if kind == 2:
        return helper.make_attribute(name, [rng.choice(INTS) for _ in range(rng.randrange(7))])
    if kind == 3:
        return helper.make_attribute(name, rng.choice(STRINGS))
    if kind == 4:
        return helper.make_attribute(name, [rng.choice(FLOATS) for _ in range(rng.randrange(5))])
    dims = [rng.choice([0, 1, 2, 3]) for _ in range(rng.randrange(3))]
    return helper.make_attribute(name, helper.make_tensor(
        "t", TensorProto.FLOAT if rng.random() < 0.5 else TensorProto.INT64, dims,
        [rng.choice([0, 1, -1, 3]) for _ in range(int(np.prod(dims)))]))


def _mutate_attr(rng: random.Random, a) -> None:
    t = a.type
    if t == a.INT:
        a.i = rng.choice(INTS) if rng.random() < 0.8 else a.i + rng.choice([-1, 1])
    elif t == a.FLOAT:
        a.f = rng.choice(FLOATS)
    elif t == a.INTS:
        vals = list(a.ints)
        r = rng.random()
        if vals and r < 0.5:
            vals[rng.randrange(len(vals))] = rng.choice(INTS)
        elif vals and r < 0.7:
            vals.pop(rng.randrange(len(vals)))
        elif r < 0.85:
            vals.append(rng.choice(INTS))
        else:
            vals = [rng.choice(INTS)] * rng.randrange(6)
        del a.ints[:]
        a.ints.extend(vals)
    elif t == a.FLOATS:
        vals = list(a.floats)
        if vals and rng.random() < 0.6:
            vals[rng.randrange(len(vals))] = rng.choice(FLOATS)
        else:
            vals.append(rng.choice(FLOATS))
        del a.floats[:]
        a.floats.extend(vals)
    elif t == a.STRING:
        a.s = rng.choice(STRINGS).encode()
    elif t == a.TENSOR:
        _mutate_tensor(rng, a.t)
    elif t == a.GRAPH:
        _mutate_graph(rng, a.g)
    else:
        a.i = rng.choice(INTS)
        a.type = a.INT


def _mutate_tensor(rng: random.Random, t) -> None:
    r = rng.random()
    if r < 0.3 and t.dims:
        t.dims[rng.randrange(len(t.dims))] = rng.choice([0, 1, -1, 2, 3, 2 ** 31, 2 ** 40])
    elif r < 0.45:
        t.dims.append(rng.choice([0, 1, 2, 2 ** 20]))
    elif r < 0.55 and t.dims:
        del t.dims[-1]
    elif r < 0.7 and t.raw_data:
        t.raw_data = t.raw_data[:rng.randrange(len(t.raw_data) + 1)] if rng.random() < 0.6 \
            else t.raw_data + bytes(rng.randrange(1, 9))
    elif r < 0.8:
        t.data_type = rng.choice(DTYPES)
    else:
        # new values: boundary numbers of the tensor's type
        dims = list(t.dims) if all(0 <= d <= 8 for d in t.dims) else [1]
        count = int(np.prod(dims))
        if t.data_type in (TensorProto.INT64, TensorProto.INT32):
            arr = np.array([rng.choice(INTS[:12]) for _ in range(count)], np.int64).reshape(dims)
            arr = arr.astype(np.int32 if t.data_type == TensorProto.INT32 else np.int64)
        else:
            arr = np.array([rng.choice(FLOATS) for _ in range(count)], np.float32).reshape(dims)
        new = numpy_helper.from_array(arr, t.name)
        t.CopyFrom(new)


def _mutate_dims(rng: random.Random, vi) -> None:
    tt = vi.type.tensor_type
    dims = tt.shape.dim
    r = rng.random()
    if dims and r < 0.6:
        d = dims[rng.randrange(len(dims))]
        if rng.random() < 0.2:
            d.dim_param = "N"
        else:
            d.dim_value = rng.choice([0, 1, -1, 2, 3, 64, 2 ** 20, 2 ** 31, 2 ** 40])
    elif r < 0.75:
        dims.add().dim_value = rng.choice([1, 2, 3])
    elif r < 0.85 and dims:
        del dims[-1]
    elif r < 0.92:
        tt.elem_type = rng.choice(DTYPES)
    else:
        tt.ClearField("shape")


def _mutate_graph(rng: random.Random, g) -> None:
    names = _value_names(g)
    nodes = g.node
    kind = rng.randrange(16)
    if kind <= 3 and nodes:  # an attribute's value
        n = rng.choice(nodes)
        if n.attribute and rng.random() < 0.85:
            _mutate_attr(rng, rng.choice(n.attribute))
        else:
            n.attribute.append(_random_attr(rng, rng.choice(ATTR_NAMES)))
    elif kind == 4 and nodes:  # remove an attribute
        n = rng.choice(nodes)
        if n.attribute:
            del n.attribute[rng.randrange(len(n.attribute))]
    elif kind == 5 and nodes:  # node inputs: drop, duplicate, blank, rewire, add
        n = rng.choice(nodes)
        ins = list(n.input)
        r = rng.random()
        if ins and r < 0.25:
            ins.pop(rng.randrange(len(ins)))
        elif ins and r < 0.45:
            ins.insert(rng.randrange(len(ins) + 1), rng.choice(ins))
        elif ins and r < 0.6:
            ins[rng.randrange(len(ins))] = ""
        elif ins and r < 0.8:
            ins[rng.randrange(len(ins))] = rng.choice(names + ["nowhere"])
        else:
            ins.append(rng.choice(names))
        del n.input[:]
        n.input.extend(ins)
    elif kind == 6 and nodes:  # op type
        rng.choice(nodes).op_type = rng.choice(OPS)
    elif kind == 7:  # a graph input's dims or type
        real = [vi for vi in g.input if vi.name not in {t.name for t in g.initializer}]
        if real:
            _mutate_dims(rng, rng.choice(real))
    elif kind == 8 and g.initializer:  # an initializer's dims / data / type
        _mutate_tensor(rng, rng.choice(g.initializer))
    elif kind == 9 and nodes:  # an output name collides with another value
        n = rng.choice(nodes)
        if n.output:
            n.output[rng.randrange(len(n.output))] = rng.choice(names)
    elif kind == 10 and len(nodes) > 1:  # reorder nodes (cycles, reads before writes)
        i, j = rng.randrange(len(nodes)), rng.randrange(len(nodes))
        a, b = onnx.NodeProto(), onnx.NodeProto()
        a.CopyFrom(nodes[i])
        b.CopyFrom(nodes[j])
        nodes[i].CopyFrom(b)
        nodes[j].CopyFrom(a)
    elif kind == 11 and nodes:  # delete or duplicate a node
        k = rng.randrange(len(nodes))
        if rng.random() < 0.5:
            del nodes[k]
        else:
            nodes.add().CopyFrom(nodes[k])
    elif kind == 12 and g.output:  # graph outputs
        r = rng.random()
        if r < 0.4:
            g.output[rng.randrange(len(g.output))].name = rng.choice(names + ["nowhere"])
        elif r < 0.7:
            g.output.add().CopyFrom(rng.choice(g.output))
        else:
            g.output.add().name = rng.choice(names)
    elif kind == 13 and nodes:  # a node output feeds back into an earlier node (a cycle)
        n = rng.choice(nodes)
        first = nodes[0]
        if n.output and first.input:
            first.input[rng.randrange(len(first.input))] = n.output[0]
    elif kind == 14:  # a new node of a random op between existing values
        op = rng.choice(OPS)
        ins = [rng.choice(names) for _ in range(rng.randrange(1, 4))]
        node = helper.make_node(op, ins, [f"fz{rng.randrange(1000)}"], name=f"fz_{op}")
        for _ in range(rng.randrange(3)):
            node.attribute.append(_random_attr(rng, rng.choice(ATTR_NAMES)))
        nodes.insert(rng.randrange(len(nodes) + 1), node)
        if rng.random() < 0.5 and g.output:
            g.output[0].name = node.output[0]
    elif kind == 15:  # an initializer shadows a value, or a graph input is duplicated
        if rng.random() < 0.5 and g.initializer:
            t = onnx.TensorProto()
            t.CopyFrom(rng.choice(g.initializer))
            t.name = rng.choice(names)
            g.initializer.append(t)
        elif g.input:
            g.input.add().CopyFrom(rng.choice(g.input))


def _mutate_model(rng: random.Random, m) -> None:
    r = rng.random()
    if r < 0.04 and m.opset_import:
        m.opset_import[0].version = rng.choice([1, 8, 9, 10, 11, 12, 13, 17, 18, 21, 22, 23, 99])
    elif r < 0.06 and m.opset_import:
        m.opset_import[0].domain = rng.choice(["", "ai.onnx", "com.microsoft"])
    else:
        _mutate_graph(rng, m.graph)


def custom_mutator(data: bytes, max_size: int, seed: int) -> bytes:
    rng = random.Random(seed)
    if rng.random() < 0.15:
        return atheris.Mutate(data, max_size)
    m = onnx.ModelProto()
    try:
        m.ParseFromString(data)
    except Exception:
        return atheris.Mutate(data, max_size)
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        try:
            _mutate_model(rng, m)
        except (ValueError, TypeError, IndexError, OverflowError):
            pass  # a protobuf field refused the value: try the next mutation
    try:
        out = m.SerializeToString()
    except Exception:
        return atheris.Mutate(data, max_size)
    return out if len(out) <= max_size else atheris.Mutate(data, max_size)


# --- seeds ------------------------------------------------------------------------------------

R = np.random.default_rng(0)


def _w(*shape) -> np.ndarray:
    return R.normal(0, 0.3, shape).astype(np.float32)


def _i64(*v) -> np.ndarray:
    return np.array(v, np.int64)


def _model(nodes, inputs, out, inits=None, opset=17) -> bytes:
    ins = [helper.make_tensor_value_info(k, TensorProto.FLOAT, list(s)) for k, s in
           inputs.items()]
    outs = [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in out]
    g = helper.make_graph(nodes, "seed", ins, outs,
                          [numpy_helper.from_array(np.asarray(v), k) for k, v in
                           (inits or {}).items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = min(m.ir_version, 9)
    return m.SerializeToString()


def _n(op, ins, outs=("y",), **attrs):
    return helper.make_node(op, list(ins), list(outs), name=f"{op.lower()}_{outs[0]}", **attrs)


X = {"x": (1, 2, 5, 5)}
UNARY = ["Relu", "Sigmoid", "Tanh", "Erf", "Exp", "Sqrt", "Neg", "Abs", "Reciprocal",
         "HardSwish", "Identity"]


def _cases() -> dict[str, tuple]:
    c: dict[str, tuple] = {
        "conv": ([_n("Conv", ["x", "w", "b"], pads=[1, 1, 0, 1], dilations=[2, 1],
                     strides=[1, 2])], X, {"w": _w(3, 2, 3, 3), "b": _w(3)}, 17),
        "conv_group_same": ([_n("Conv", ["x", "w"], group=2, auto_pad="SAME_UPPER",
                                strides=[2, 2])], X, {"w": _w(2, 1, 2, 2)}, 11),
        "conv_transpose": ([_n("ConvTranspose", ["x", "w", "b"], strides=[2, 2],
                               pads=[1, 1, 0, 0], output_padding=[1, 1])], X,
                           {"w": _w(2, 3, 3, 3), "b": _w(3)}, 17),
        "conv_transpose_os": ([_n("ConvTranspose", ["x", "w"], strides=[2, 2],
                                  output_shape=[10, 10])], X, {"w": _w(2, 1, 3, 3)}, 17),
        "gemm": ([_n("Gemm", ["a", "bw", "c"], alpha=0.7, beta=1.3, transB=1)], {"a": (3, 5)},
                 {"bw": _w(4, 5), "c": _w(4)}, 17),
        "matmul": ([_n("MatMul", ["a", "bw"])], {"a": (2, 3, 5)}, {"bw": _w(5, 4)}, 17),
        "add": ([_n("Add", ["x", "c"])], X, {"c": _w(2, 1, 1)}, 17),
        "sub": ([_n("Sub", ["x", "c"])], X, {"c": _w(5)}, 17),
        "mul": ([_n("Mul", ["x", "c"])], X, {"c": _w(1, 2, 1, 1)}, 17),
        "div": ([_n("Div", ["x", "c"])], X, {"c": np.abs(_w(2, 1, 1)) + 0.5}, 17),
        "pow": ([_n("Pow", ["x", "c"])], X, {"c": np.float32(2.0)}, 17),
        "max_min": ([_n("Max", ["x", "c"], ["m"]), _n("Min", ["m", "x", "c"])], X,
                    {"c": _w(5)}, 17),
        "equal_where": ([_n("Equal", ["x", "c"], ["e"]), _n("Where", ["e", "x", "c"])], X,
                        {"c": np.zeros(5, np.float32)}, 17),
        "clip11": ([_n("Clip", ["x", "lo", "hi"])], X, {"lo": np.float32(-0.2),
                                                       "hi": np.float32(0.3)}, 13),
        "clip9": ([_n("Clip", ["x"], min=-0.1, max=0.2)], X, {}, 9),
        "leaky_relu": ([_n("LeakyRelu", ["x"], alpha=0.2)], X, {}, 17),
        "prelu": ([_n("PRelu", ["x", "s"])], X, {"s": _w(2, 1, 1)}, 17),
        "hard_sigmoid": ([_n("HardSigmoid", ["x"], alpha=0.3, beta=0.4)], X, {}, 17),
        "gelu": ([_n("Gelu", ["x"], approximate="tanh")], X, {}, 20),
        "softmax13": ([_n("Softmax", ["x"], axis=1)], X, {}, 13),
        "softmax11": ([_n("Softmax", ["x"], axis=1)], X, {}, 11),
        "batchnorm": ([_n("BatchNormalization", ["x", "s", "b", "m", "v"], epsilon=1e-3)], X,
                      {"s": _w(2), "b": _w(2), "m": _w(2), "v": np.abs(_w(2)) + 0.5}, 15),
        "layernorm": ([_n("LayerNormalization", ["x", "s", "b"], axis=-1)], {"x": (2, 3, 8)},
                      {"s": _w(8), "b": _w(8)}, 17),
        "maxpool": ([_n("MaxPool", ["x"], kernel_shape=[3, 3], strides=[2, 2],
                        pads=[1, 0, 1, 0], ceil_mode=1, dilations=[1, 1])], X, {}, 12),
        "avgpool": ([_n("AveragePool", ["x"], kernel_shape=[3, 3], strides=[2, 2],
                        pads=[1, 1, 1, 1], count_include_pad=1)], X, {}, 17),
        "avgpool_same": ([_n("AveragePool", ["x"], kernel_shape=[2, 2], auto_pad="SAME_LOWER")],
                         X, {}, 11),
        "global_avgpool": ([_n("GlobalAveragePool", ["x"])], X, {}, 17),
        "reduce_mean13": ([_n("ReduceMean", ["x"], axes=[2, 3], keepdims=0)], X, {}, 13),
        "reduce_mean18": ([_n("ReduceMean", ["x", "ax"])], X, {"ax": _i64(-1)}, 18),
        "split_concat": ([_n("Split", ["x"], ["a", "b"], axis=1, split=[1, 1]),
                          _n("Concat", ["b", "a"], axis=1)], X, {}, 11),
        "split13": ([_n("Split", ["x", "sp"], ["a", "b"], axis=2),
                     _n("Concat", ["b", "a"], axis=2)], X, {"sp": _i64(2, 3)}, 13),
        "split18": ([_n("Split", ["x"], ["a", "b"], axis=3, num_outputs=2),
                     _n("Concat", ["b", "a"], axis=3)], X, {}, 18),
        "slice": ([_n("Slice", ["x", "st", "en", "ax", "sp"])], X,
                  {"st": _i64(1, -1), "en": _i64(4, -100), "ax": _i64(2, 3), "sp": _i64(2, -2)},
                  13),
        "slice9": ([_n("Slice", ["x"], starts=[1], ends=[3], axes=[1])], X, {}, 9),
        "pad": ([_n("Pad", ["x", "p", "v"])], X, {"p": _i64(0, 0, 1, 2, 0, 0, 2, 1),
                                                 "v": np.float32(0.5)}, 13),
        "pad_axes": ([_n("Pad", ["x", "p", "", "ax"], mode="reflect")], X,
                     {"p": _i64(1, 2, 2, 1), "ax": _i64(2, 3)}, 18),
        "pad9": ([_n("Pad", ["x"], pads=[0, 0, 1, 1, 0, 0, 1, 1], value=1.0, mode="edge")], X,
                 {}, 9),
        "reshape_flatten": ([_n("Reshape", ["x", "s"], ["r"]), _n("Flatten", ["r"], axis=2)],
                            X, {"s": _i64(0, -1, 5)}, 13),
        "squeeze_unsqueeze": ([_n("Unsqueeze", ["x", "a1"], ["u"]),
                               _n("Squeeze", ["u", "a2"])], X,
                              {"a1": _i64(0, -1), "a2": _i64(0)}, 13),
        "squeeze11": ([_n("Unsqueeze", ["x"], ["u"], axes=[2]), _n("Squeeze", ["u"], axes=[2])],
                      X, {}, 11),
        "transpose": ([_n("Transpose", ["x"], perm=[0, 2, 3, 1])], X, {}, 17),
        "resize_scales": ([_n("Resize", ["x", "", "sc"], mode="nearest")], X,
                          {"sc": np.array([1, 1, 2, 1.5], np.float32)}, 13),
        "resize_sizes": ([_n("Resize", ["x", "", "", "sz"], mode="linear",
                             coordinate_transformation_mode="align_corners")], X,
                         {"sz": _i64(1, 2, 7, 4)}, 13),
        "resize10": ([_n("Resize", ["x", "sc"], mode="linear")], X,
                     {"sc": np.array([1, 1, 2, 2], np.float32)}, 10),
        "upsample9": ([_n("Upsample", ["x", "sc"], mode="nearest")], X,
                      {"sc": np.array([1, 1, 2, 2], np.float32)}, 9),
        "dropout": ([_n("Identity", ["x"], ["i"]), _n("Dropout", ["i"], ratio=0.5)], X, {}, 11),
        "shape_gather_cos": ([_n("Shape", ["x"], ["s"]),
                              _n("Constant", [], ["k"], value=helper.make_tensor(
                                  "k", TensorProto.INT64, [1], [2])),
                              _n("Gather", ["s", "k"], ["d"]),
                              _n("ConstantOfShape", ["d"], ["c"], value=helper.make_tensor(
                                  "v", TensorProto.FLOAT, [1], [0.25])),
                              _n("Add", ["x", "c"])], X, {}, 13),
        "shape_slice": ([_n("Shape", ["x"], ["s"], start=2, end=4),
                         _n("ConstantOfShape", ["s"], ["c"]), _n("Add", ["x", "c"])], X, {},
                        15),
        "expand": ([_n("Expand", ["c", "s"], ["e"]), _n("Add", ["x", "e"])], X,
                   {"c": _w(1, 5), "s": _i64(2, 1, 5)}, 13),
        "range": ([_n("Range", ["st", "li", "de"], ["r"]), _n("Cast", ["r"], ["rf"], to=1),
                   _n("Add", ["x", "rf"])], X,
                  {"st": np.int64(0), "li": np.int64(5), "de": np.int64(1)}, 13),
        "constants": ([_n("Constant", [], ["a"], value_floats=[1.0, 2.0, 3.0, 4.0, 5.0]),
                       _n("Constant", [], ["b"], value_float=2.0),
                       _n("Constant", [], ["ci"], value_ints=[5]),
                       _n("Constant", [], ["d"], value_int=1),
                       _n("Mul", ["a", "b"], ["ab"]), _n("Add", ["x", "ab"])], X, {}, 13),
        "cast": ([_n("Cast", ["x"], ["c"], to=TensorProto.FLOAT16),
                  _n("Cast", ["c"], to=TensorProto.FLOAT)], X, {}, 13),
        "sum3": ([_n("Sum", ["x", "c", "x"])], X, {"c": _w(5)}, 13),
        "lrn": ([_n("LRN", ["x"], size=3, alpha=1e-3, beta=0.75, bias=1.5)], X, {}, 13),
        "gather": ([_n("Gather", ["x", "idx"], axis=1)], X, {"idx": _i64(1, 0, 1)}, 13),
        "if_const": ([_n("Constant", [], ["cond"], value=helper.make_tensor(
            "c", TensorProto.BOOL, [1], [True])),
            _n("If", ["cond"], then_branch=helper.make_graph(
                [_n("Relu", ["x"], ["t"])], "then", [],
                [helper.make_tensor_value_info("t", TensorProto.FLOAT, None)]),
                else_branch=helper.make_graph(
                [_n("Neg", ["x"], ["e"])], "else", [],
                [helper.make_tensor_value_info("e", TensorProto.FLOAT, None)]))], X, {}, 13),
        "lstm": ([_n("LSTM", ["s", "W", "R", "B"], ["Y", "Yh"], hidden_size=3)],
                 {"s": (2, 1, 4)}, {"W": _w(1, 12, 4), "R": _w(1, 12, 3), "B": _w(1, 24)}, 14),
        "gru": ([_n("GRU", ["s", "W", "R", "", "", "h0"], ["Y"], hidden_size=3,
                    direction="bidirectional", linear_before_reset=1)],
                {"s": (2, 1, 4)}, {"W": _w(2, 9, 4), "R": _w(2, 9, 3), "h0": _w(2, 1, 3)}, 14),
        "block": ([_n("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
                   _n("BatchNormalization", ["c", "s", "b", "m", "v"], ["bn"]),
                   _n("Relu", ["bn"], ["r"]), _n("MaxPool", ["r"], ["p"], kernel_shape=[2, 2],
                                                 strides=[2, 2]),
                   _n("Flatten", ["p"], ["f"]), _n("Gemm", ["f", "fw"], ["g"], transB=1),
                   _n("Softmax", ["g"])], X,
                  {"w": _w(3, 2, 3, 3), "s": _w(3), "b": _w(3), "m": _w(3),
                   "v": np.abs(_w(3)) + 0.5, "fw": _w(4, 12)}, 13),
    }
    for op in UNARY:
        c[op.lower()] = ([_n(op, ["x"])], X, {}, 17)
    return c


def _dynamic_seed() -> bytes:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, "H", "W"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    g = helper.make_graph([_n("Relu", ["x"])], "dyn", [x], [y])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 9
    return m.SerializeToString()


def seeds() -> dict[str, bytes]:
    out = {name: _model(nodes, ins, [nodes[-1].output[0]], inits, opset)
           for name, (nodes, ins, inits, opset) in sorted(_cases().items())}
    out["dynamic"] = _dynamic_seed()
    zoo = os.path.join(harness.ROOT, "build", "models")
    if os.path.isdir(zoo):
        for f in sorted(os.listdir(zoo)):
            path = os.path.join(zoo, f)
            if f.endswith(".onnx") and os.path.getsize(path) <= 1 << 20:
                with open(path, "rb") as fh:
                    out[f"zoo_{f[:-5]}"] = fh.read()
    return out


if __name__ == "__main__":
    harness.main(one_input, seeds, custom_mutator=custom_mutator)
