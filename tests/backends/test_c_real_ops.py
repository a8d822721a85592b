"""C backend, the ops real exporters write around FPN necks and heads: Slice, Gather with
constant indices, nearest Resize (every coordinate_transformation_mode and nearest_mode),
linear Resize (QResize, TFLite's RESIZE_BILINEAR arithmetic) and QConvTranspose are bit-exact
(0 LSB) with the integer interpreter, with the host gcc and on an emulated Cortex-M4; what the
C kernels still cannot take is refused with its reason.

Each model is a tiny float ONNX graph (``onnx.helper``), optimized and quantized the way
``tests.helpers.quantized_case`` does, then lowered to C, compiled, run on every calibration
sample and compared with ``edgeq.run(..., raw=True)`` byte for byte."""

import os
import re
import shutil
import zlib

import numpy as np
import pytest
from onnx import helper

import edgeq
from edgeq.backends import get_backend
from edgeq.backends.c.lower import MAX_ACC_TERMS
from edgeq.ir.graph import EdgeqError
from edgeq.ops.resize import resize_coords
from tests.backends.test_c import NEEDS_ARM, _designated, _struct_fields
from tests.helpers import graph_of

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="no host gcc")

INT64_MAX, INT64_MIN = 2**63 - 1, -2**63
SAMPLES = 6


def _node(op, ins, out="y", **attrs):
    return helper.make_node(op, list(ins), [out], name=f"{op.lower()}_{out}", **attrs)


def _integer_model(nodes, shape, inits, rounding="edgeq", opset=17, **quantize):
    """(integer graph, float samples) of ``nodes`` on input ``x`` of ``shape``, quantized as
    ``quantized_case`` does (optimize, unit normals seeded by the model, no equalization)."""
    g = graph_of(nodes, {"x": shape}, [nodes[-1].output[0]], inits, opset=opset)
    g, _ = edgeq.optimize(g)
    rng = np.random.default_rng(zlib.crc32(repr((nodes, shape)).encode()))
    x = rng.normal(0, 1, (SAMPLES,) + tuple(shape[1:])).astype(np.float32)
    return edgeq.quantize(g, x, rounding=rounding, equalize=False, **quantize).graph, x


def _assert_bit_exact(ig, x, out_dir, target="c"):
    be = get_backend(target)
    assert be.supports(ig) == []
    art = be.lower(ig, str(out_dir))
    feeds = [{"x": x[i:i + 1]} for i in range(len(x))]
    for f, theirs in zip(feeds, be.run_many(art, feeds, raw=True)):
        for v, ours in zip(ig.outputs, edgeq.run(ig, f["x"], raw=True)):
            assert theirs[v.name].dtype == np.int8
            np.testing.assert_array_equal(theirs[v.name], ours)
    return art


def _ops(ig):
    return sorted({n.op for n in ig.nodes})


# --- Slice -----------------------------------------------------------------------------------
SLICES = {  # name: (input shape, starts, ends, axes or None, steps or None)
    "crop_rows_cols": ((1, 4, 8, 8), [1, 2], [7, -1], [2, 3], None),
    "every_other_column": ((1, 4, 8, 8), [0], [8], [3], [2]),
    "channels_clamped_end": ((1, 6, 4, 4), [-4], [INT64_MAX], [1], None),
    "flip_rows": ((1, 3, 6, 5), [-1], [INT64_MIN], [2], [-1]),  # torch.flip
    "negative_steps_clamped": ((1, 6, 7, 9), [100, 5], [-100, 0], [-1, 1], [-3, -2]),
    "every_axis_no_axes_input": ((1, 6, 7, 9), [0, 1, -2, 8], [1, 6, -9, 0], None,
                                 [1, 2, -1, -3]),
    "start_past_end_of_rank3": ((1, 12, 10), [-30, 3], [INT64_MAX, 10], [1, 2], [5, 4]),
}


@pytest.mark.parametrize("case", sorted(SLICES))
def test_slice_bit_exact(case, tmp_path):
    shape, starts, ends, axes, steps = SLICES[case]
    inits = {"st": np.array(starts), "en": np.array(ends)}
    ins = ["x", "st", "en"]
    if axes is not None or steps is not None:
        inits["ax"] = np.array(axes if axes is not None else range(len(starts)))
        ins.append("ax")
    if steps is not None:
        inits["sp"] = np.array(steps)
        ins.append("sp")
    ig, x = _integer_model([_node("Slice", ins)], shape, inits)
    assert _ops(ig) == ["Slice"]
    _assert_bit_exact(ig, x, tmp_path)


def test_slice_of_a_conv_output_in_a_chain(tmp_path):
    """Slices between integer layers: the arena keeps the slice's input and output apart."""
    w = np.random.default_rng(1).normal(0, 0.4, (8, 4, 3, 3)).astype(np.float32)
    nodes = [_node("Conv", ["x", "w"], "c", pads=[1, 1, 1, 1]),
             _node("Slice", ["c", "st", "en", "ax", "sp"], "s"),
             _node("Relu", ["s"])]
    ig, x = _integer_model(nodes, (1, 4, 8, 8), {
        "w": w, "st": np.array([6, 7]), "en": np.array([INT64_MIN, 1]),
        "ax": np.array([1, 3]), "sp": np.array([-2, -1])})
    assert "Slice" in _ops(ig) and "QConv" in _ops(ig)
    _assert_bit_exact(ig, x, tmp_path)


# --- Gather ----------------------------------------------------------------------------------
GATHERS = {  # name: (input shape, axis, indices)
    "x[:, 0]": ((1, 4, 5, 6), 1, np.array(0)),
    "x[:, -1]": ((1, 4, 5, 6), 1, np.array(-1)),
    "rows_repeated_and_negative": ((1, 4, 5, 6), 2, np.array([3, -1, 0, 3])),
    "columns_2d_indices": ((1, 4, 5, 6), 3, np.array([[1, 2], [5, 0]])),
    "last_token_of_rank3": ((1, 7, 10), 1, np.array(6)),
}


@pytest.mark.parametrize("case", sorted(GATHERS))
def test_gather_constant_indices_bit_exact(case, tmp_path):
    shape, axis, idx = GATHERS[case]
    ig, x = _integer_model([_node("Gather", ["x", "i"], axis=axis)], shape, {"i": idx})
    assert _ops(ig) == ["Gather"]
    _assert_bit_exact(ig, x, tmp_path)


# --- Resize, nearest -------------------------------------------------------------------------
NEAREST = ["floor", "ceil", "round_prefer_floor", "round_prefer_ceil"]
TIED_COLUMNS = {  # mode: (input, output columns) where source coordinates fall on .5 ties
    "half_pixel": (8, 4), "pytorch_half_pixel": (8, 4), "align_corners": (7, 5),
    "asymmetric": (6, 4), "tf_half_pixel_for_nn": (9, 3)}


@pytest.mark.parametrize("nearest_mode", NEAREST)
@pytest.mark.parametrize("mode", sorted(TIED_COLUMNS))
def test_resize_nearest_every_mode_bit_exact(mode, nearest_mode, tmp_path):
    """5 -> 8 rows (scale 1.6) and columns downsampled so that some source coordinates are
    ties (round_prefer_floor and round_prefer_ceil differ), from ``sizes``."""
    w_in, w_out = TIED_COLUMNS[mode]
    assert np.any(resize_coords(w_out, w_in, w_out / w_in, mode) % 1 == 0.5)
    node = _node("Resize", ["x", "", "", "sz"], mode="nearest",
                 coordinate_transformation_mode=mode, nearest_mode=nearest_mode)
    ig, x = _integer_model([node], (1, 3, 5, w_in), {"sz": np.array([1, 3, 8, w_out])})
    assert _ops(ig) == ["Resize"]
    _assert_bit_exact(ig, x, tmp_path)


@pytest.mark.parametrize("scales,mode,nearest_mode,opset", [
    ([1, 1, 2, 2], "asymmetric", "floor", 17),  # torch's F.interpolate(scale_factor=2)
    ([1, 1, 3, 1.5], "half_pixel", "round_prefer_floor", 17),
    ([1, 1, 2, 2], None, None, 9),  # Upsample
])
def test_resize_nearest_from_scales_bit_exact(scales, mode, nearest_mode, opset, tmp_path):
    sc = np.array(scales, np.float32)
    if opset == 9:
        node, inits = _node("Upsample", ["x", "sc"], mode="nearest"), {"sc": sc}
    else:
        node, inits = _node("Resize", ["x", "", "sc"], mode="nearest",
                            coordinate_transformation_mode=mode,
                            nearest_mode=nearest_mode), {"sc": sc}
    ig, x = _integer_model([node], (1, 4, 6, 6), inits, opset=opset)
    assert _ops(ig) == ["Resize"]
    _assert_bit_exact(ig, x, tmp_path)


# --- Resize, linear (QResize: TFLite's RESIZE_BILINEAR arithmetic) --------------------------
LINEAR_SIZES = {  # name: (input H, W) -> (output H, W)
    "upsample_2x": ((4, 4), (8, 8)),
    "upsample_1.6x_rows_2.5x_cols": ((5, 4), (8, 10)),
    "downsample_rows_keep_cols": ((8, 6), (5, 6)),
    "to_one_row_and_column": ((5, 7), (1, 1)),
}


@pytest.mark.parametrize("mode,sizes", [
    (mode, sizes) for mode in ["align_corners", "asymmetric", "half_pixel", "pytorch_half_pixel"]
    for sizes in sorted(LINEAR_SIZES)
    # pytorch_half_pixel to size 1 has no integer form (the quantizer refuses it)
    if (mode, sizes) != ("pytorch_half_pixel", "to_one_row_and_column")])
def test_resize_linear_bit_exact(mode, sizes, tmp_path):
    (h, w), (oh, ow) = LINEAR_SIZES[sizes]
    node = _node("Resize", ["x", "", "", "sz"], mode="linear",
                 coordinate_transformation_mode=mode)
    ig, x = _integer_model([node], (1, 3, h, w), {"sz": np.array([1, 3, oh, ow])})
    assert _ops(ig) == ["QResize"]
    _assert_bit_exact(ig, x, tmp_path)


# --- QConvTranspose --------------------------------------------------------------------------
CONV_TRANSPOSES = {  # name: (input shape, weight shape, attributes, bias)
    "stride2_kernel2": ((1, 6, 5, 5), (6, 4, 2, 2), dict(strides=[2, 2]), True),
    "stride2_kernel3_pad1_output_padding1": (
        (1, 6, 5, 5), (6, 4, 3, 3), dict(strides=[2, 2], pads=[1, 1, 1, 1],
                                         output_padding=[1, 1]), True),
    "stride3x2_dilation2x1_asymmetric_pads": (
        (1, 5, 4, 6), (5, 3, 3, 2), dict(strides=[3, 2], dilations=[2, 1],
                                         pads=[0, 1, 2, 0]), False),
    "grouped": ((1, 6, 5, 5), (6, 2, 3, 3), dict(strides=[2, 2], group=3, pads=[1, 0, 0, 1]),
                True),
    "depthwise_kernel4_stride2": ((1, 6, 5, 5), (6, 1, 4, 4),
                                  dict(strides=[2, 2], group=6, pads=[1, 1, 1, 1]), False),
    "stride1_same": ((1, 6, 5, 5), (6, 7, 3, 3), dict(pads=[1, 1, 1, 1]), True),
    "kernel_larger_than_stride_output_padding": (
        (1, 3, 3, 4), (3, 4, 5, 3), dict(strides=[2, 3], output_padding=[1, 2]), True),
}


@pytest.mark.parametrize("rounding", ["edgeq", "tflite"])
@pytest.mark.parametrize("case", sorted(CONV_TRANSPOSES))
def test_conv_transpose_bit_exact(case, rounding, tmp_path):
    """Per-channel weights (one multiplier per output channel, grouped ones included), both
    requantization rules, a fused Relu."""
    shape, wshape, attrs, with_bias = CONV_TRANSPOSES[case]
    rng = np.random.default_rng(zlib.crc32(case.encode()))
    inits = {"w": (rng.normal(0, 0.4, wshape) * rng.uniform(0.2, 2, (1, wshape[1], 1, 1)))
             .astype(np.float32)}
    ins = ["x", "w"]
    if with_bias:
        inits["b"] = rng.normal(0, 0.4, wshape[1] * attrs.get("group", 1)).astype(np.float32)
        ins.append("b")
    nodes = [_node("ConvTranspose", ins, "t", **attrs), _node("Relu", ["t"])]
    ig, x = _integer_model(nodes, shape, inits, rounding=rounding)
    assert _ops(ig) == ["QConvTranspose"]
    (node,) = ig.nodes
    assert np.asarray(node.attrs["multiplier"]).size == node.outputs[0].shape[1]
    _assert_bit_exact(ig, x, tmp_path)


def test_conv_transpose_parameters_are_designated_initializers(tmp_path):
    """The new parameter struct names every field of edgeq_rt.h's, in order."""
    shape, wshape, attrs, _ = CONV_TRANSPOSES["grouped"]
    w = np.random.default_rng(2).normal(0, 0.4, wshape).astype(np.float32)
    ig, _ = _integer_model([_node("ConvTranspose", ["x", "w"], **attrs)], shape, {"w": w})
    path = get_backend("c").lower(ig, str(tmp_path)).path
    with open(os.path.join(path, "edgeq_rt.h")) as f:
        structs = _struct_fields(f.read())
    with open(os.path.join(path, "model.c")) as f:
        (init,) = re.findall(r"static const eq_conv_transpose_t p\d+ = (\{.*\});", f.read())
    pairs = _designated(init)
    assert [f for f, _ in pairs] == [f for _, f in structs["eq_conv_transpose_t"]]
    q = dict(pairs)["q"]
    assert [f for f, _ in _designated(q)] == [f for _, f in structs["eq_requant"]]


# --- all of them together: a torch export, and the Cortex-M boards --------------------------
def _neck_nodes():
    """An FPN-neck-like graph: ConvTranspose, nearest and linear Resize merged by Adds, then a
    flip (Slice with step -1), a strided crop and a Gather (x[:, 1])."""
    rng = np.random.default_rng(5)
    inits = {"w": rng.normal(0, 0.4, (4, 4, 2, 2)).astype(np.float32),
             "b": rng.normal(0, 0.2, 4).astype(np.float32),
             "sc": np.array([1, 1, 2, 2], np.float32), "sz": np.array([1, 4, 10, 10]),
             "i": np.array(1),
             "st": np.array([-1, 1]), "en": np.array([INT64_MIN, -1]),
             "ax": np.array([3, 2]), "sp": np.array([-1, 2])}
    nodes = [_node("ConvTranspose", ["x", "w", "b"], "t", strides=[2, 2]),
             _node("Resize", ["x", "", "sc"], "r", mode="nearest",
                   coordinate_transformation_mode="asymmetric", nearest_mode="floor"),
             _node("Resize", ["x", "", "", "sz"], "l", mode="linear",
                   coordinate_transformation_mode="half_pixel"),
             _node("Add", ["t", "r"], "a"),
             _node("Add", ["a", "l"], "a2"),
             _node("Slice", ["a2", "st", "en", "ax", "sp"], "s"),
             _node("Gather", ["s", "i"], axis=1)]
    return nodes, inits


def test_torch_exported_neck_bit_exact(tmp_path):
    """What the TorchScript exporter writes for ConvTranspose2d, F.interpolate (nearest, and
    bilinear: pytorch_half_pixel), ``y[:, 2:6]``, ``c[:, 1]``, ``torch.flip`` and
    ``c[:, :, 1:-1:2]``."""
    torch = pytest.importorskip("torch")
    nn, F = torch.nn, torch.nn.functional

    class Neck(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, padding=1)
            self.up = nn.ConvTranspose2d(8, 4, 2, stride=2)

        def forward(self, x):
            y = torch.relu(self.conv(x))
            c = self.up(y) + F.interpolate(y[:, 2:6], scale_factor=2.0, mode="nearest")
            c = c + F.interpolate(y[:, 4:], scale_factor=2.0, mode="bilinear")
            return c[:, 1], torch.flip(c, [3])[:, :, 1:-1:2]

    torch.manual_seed(0)
    g = edgeq.from_torch(Neck().eval(), torch.zeros(1, 3, 6, 6))
    g, _ = edgeq.optimize(g)
    x = np.random.default_rng(3).normal(0, 1, (SAMPLES, 3, 6, 6)).astype(np.float32)
    ig = edgeq.quantize(g, x, equalize=False).graph
    assert {"QConvTranspose", "Resize", "QResize", "Slice", "Gather"} <= set(_ops(ig))
    # the graph input keeps the exporter's name
    be = get_backend("c")
    assert be.supports(ig) == []
    art = be.lower(ig, str(tmp_path))
    name = ig.inputs[0].name
    feeds = [{name: x[i:i + 1]} for i in range(SAMPLES)]
    for f, theirs in zip(feeds, be.run_many(art, feeds, raw=True)):
        for v, ours in zip(ig.outputs, edgeq.run(ig, f[name], raw=True)):
            np.testing.assert_array_equal(theirs[v.name], ours)


@NEEDS_ARM
@pytest.mark.parametrize("rounding", ["edgeq", "tflite"])
def test_neck_on_cortex_m4_bit_exact_without_float(rounding, tmp_path):
    nodes, inits = _neck_nodes()
    ig, x = _integer_model(nodes, (1, 4, 5, 5), inits, rounding=rounding)
    assert {"QConvTranspose", "Resize", "QResize", "Slice", "Gather"} <= set(_ops(ig))
    art = _assert_bit_exact(ig, x, tmp_path, target="cortex-m4")
    size = get_backend("cortex-m4").size(art.path)
    assert size["float_helpers"] == [], size


def test_neck_on_host_bit_exact(tmp_path):
    nodes, inits = _neck_nodes()
    ig, x = _integer_model(nodes, (1, 4, 5, 5), inits)
    _assert_bit_exact(ig, x, tmp_path)


# --- what is still refused, and why ------------------------------------------------------------
def _reasons(ig):
    reasons = [str(r) for r in get_backend("c").supports(ig)]
    for r in reasons:
        assert re.match(r"\w+ '.+': .+", r), r  # "<Op> '<node name>': <why>"
    return reasons


def test_refusals_name_the_node_and_the_reason(tmp_path):
    be = get_backend("c")
    # rank 7: eq_gather's index space is at most EQ_MAX_RANK (6) axes
    ig, _ = _integer_model([_node("Slice", ["x", "st", "en", "ax"])], (1, 2, 2, 2, 2, 2, 3),
                           {"st": np.array([1]), "en": np.array([3]), "ax": np.array([6])})
    reasons = _reasons(ig)
    assert any(r.startswith("Slice 'slice_y'") and "rank 7 > 6" in r for r in reasons), reasons
    with pytest.raises(EdgeqError, match="C backend: Slice 'slice_y': rank 7 > 6"):
        be.lower(ig, str(tmp_path))

    # int16 activations (mixed precision) have no C kernels
    w = np.random.default_rng(0).normal(0, 0.4, (2, 2, 1, 1)).astype(np.float32)
    ig, _ = _integer_model([_node("Conv", ["x", "w"], "c"),
                            _node("Resize", ["c", "", "sc"], "r", mode="nearest"),
                            _node("Conv", ["r", "w"])], (1, 2, 4, 4),
                           {"w": w, "sc": np.array([1, 1, 2, 2], np.float32)}, int16=["c"])
    assert any(r.startswith("Resize 'resize_r'") and "int16" in r for r in _reasons(ig))

    # more products per output than int32 accumulation holds exactly
    cin, k = MAX_ACC_TERMS // 64 + 1, 8
    w = np.random.default_rng(0).normal(0, 0.05, (cin, 1, k, k)).astype(np.float32)
    ig, _ = _integer_model([_node("ConvTranspose", ["x", "w"])], (1, cin, 1, 1), {"w": w})
    assert any(r.startswith("QConvTranspose 'convtranspose_y'") and
               f"{cin * k * k} terms per output overflow int32" in r for r in _reasons(ig))

    # a Gather index outside its axis (only reachable by editing the integer graph)
    ig, _ = _integer_model([_node("Gather", ["x", "i"], axis=1)], (1, 4, 3, 3),
                           {"i": np.array([1])})
    (node,) = ig.nodes
    ig.set_input(node, 1, ig.add_const("bad", np.array([1, 9])))
    assert any(r.startswith("Gather 'gather_y'") and "indices [9] are outside axis 1" in r
               for r in _reasons(ig))
