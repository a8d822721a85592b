"""Integer-graph forms of real models, lowered to TFLite and bit-exact (0 LSB) with the integer
interpreter on LiteRT's reference kernels and on TFLite Micro, on calibration inputs and on
random int8 inputs over the whole range:

- ceil-mode MaxPool (SAME, or PADV2 with -128 then VALID) and QAveragePool (when its padding,
  ceil_mode's cells included, is TFLite's SAME per axis, or its mirror image: that axis is
  reversed around the pool);
- grouped convolution (one CONV_2D: both runtimes take groups natively);
- channel shuffle as torchvision's shufflenet_v2 exports it (5-D Reshape, Transpose, Reshape),
  and means of NHWC tensors (its final ``x.mean([2, 3])``);
- QConvTranspose -> TRANSPOSE_CONV (SAME, VALID, or VALID and a STRIDED_SLICE crop; groups as
  SPLIT_V + one TRANSPOSE_CONV each + CONCATENATION; dilation as a kernel with zeros);
- linear Resize -> QResize -> RESIZE_BILINEAR (align_corners, half_pixel, pytorch_half_pixel,
  asymmetric), including the negative ties that show its rounding (half away from zero).

What still cannot be lowered is refused with its reason, each case asserted.
"""

import zlib

import numpy as np
import pytest
from onnx import helper

import edgeq
from edgeq.backends.base import Artifact
from edgeq.backends.tflite import TfliteBackend, TflmArtifact, TflmBackend
from edgeq.backends.tflite.lower import _schema, lower_graph, supports
from edgeq.ir.graph import EdgeqError, Graph
from edgeq.quant.pipeline import dequantize_array, quantize_feeds
from edgeq.runtime.reference import run_graph
from tests.helpers import graph_of

pytest.importorskip("ai_edge_litert", reason="the TFLite backend needs ai-edge-litert")
pytest.importorskip("tflite_micro", reason="the TFLM target needs tflite-micro")

RANDOM_INPUTS = 8  # full-range int8 inputs on top of the calibration ones


def n(op, ins, outs, **attrs):
    return helper.make_node(op, list(ins), list(outs), name=outs[0], **attrs)


def _weights(seed, *shape, scale=0.4):
    return np.random.default_rng(seed).normal(0, scale, shape).astype(np.float32)


def _integer(nodes, inputs, inits=None, opset=17, samples=16) -> tuple[Graph, Graph, np.ndarray]:
    """(optimized float graph, its integer model with TFLite's arithmetic, calibration inputs
    drawn from a generator seeded by the last node's name)."""
    g = graph_of(nodes, inputs, [nodes[-1].output[0]], inits or {}, opset=opset)
    g, _ = edgeq.optimize(g)
    rng = np.random.default_rng(zlib.crc32(nodes[-1].name.encode()))
    (shape,) = inputs.values()
    x = rng.normal(0, 1, (samples,) + tuple(shape[1:])).astype(np.float32)
    return g, edgeq.quantize(g, x, rounding="tflite", equalize=False).graph, x


def _builtins(blob: bytes) -> list[str]:
    """The builtin operator of each operator in the file, in order."""
    s = _schema()
    model = s.ModelT.InitFromPackedBuf(blob, 0)
    names = {v: k for k, v in vars(s.BuiltinOperator).items() if not k.startswith("_")}
    return [names[model.operatorCodes[o.opcodeIndex].builtinCode]
            for o in model.subgraphs[0].operators]


def assert_exact(ig: Graph, tmp_path, feeds_int: list[dict[str, np.ndarray]]) -> list[str]:
    """Lower ``ig`` and run every feed on LiteRT's reference kernels and on TFLite Micro:
    each equals the integer model as that runtime computes it (``reference_graph``), 0 LSB.
    Returns the file's builtin operators."""
    assert supports(ig) == []
    blob = lower_graph(ig)
    path = str(tmp_path / "model.tflite")
    with open(path, "wb") as f:
        f.write(blob)
    runtimes = [(TfliteBackend(), Artifact(path, ig)),
                (TflmBackend(), TflmArtifact(path, ig, arena_bytes=1 << 22))]
    for be, art in runtimes:
        sess = be.session(art)
        want_graph = be.reference_graph(ig)
        for feeds in feeds_int:
            real = {v.name: dequantize_array(feeds[v.name], v.qparams) for v in ig.inputs}
            got = be.run(art, real, raw=True, session=sess)
            want = run_graph(want_graph, feeds)
            for v in ig.outputs:
                np.testing.assert_array_equal(got[v.name], want[v.name], err_msg=be.name)
    return _builtins(blob)


def _feeds(ig: Graph, x: np.ndarray, seed: int = 0) -> list[dict[str, np.ndarray]]:
    """The calibration inputs quantized, then random int8 inputs over the whole range."""
    v = ig.inputs[0]
    rng = np.random.default_rng(seed)
    cal = [quantize_feeds(ig, {v.name: x[i:i + 1]}) for i in range(len(x))]
    return cal + [{v.name: rng.integers(-128, 128, (1,) + v.shape[1:]).astype(np.int8)}
                  for _ in range(RANDOM_INPUTS)]


def _exact(nodes, inputs, inits, tmp_path, opset=17) -> list[str]:
    _, ig, x = _integer(nodes, inputs, inits, opset)
    return assert_exact(ig, tmp_path, _feeds(ig, x))


# --- 1. ceil-mode pooling ----------------------------------------------------------------------

def _after_conv(pool, hw=(8, 8)):
    """Conv (so the pool runs NHWC, as in a real model) then ``pool`` on its output."""
    return [n("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), pool], {"x": (1, 4) + hw}, \
        {"w": _weights(1, 6, 4, 3, 3)}


@pytest.mark.parametrize("hw,k,s,pads,builtin", [
    ((8, 8), 3, 2, [0, 0, 0, 0], None),           # one ceil cell: TFLite's SAME
    ((7, 7), 2, 2, [0, 0, 0, 0], None),           # odd size, k = s: SAME
    ((8, 8), 3, 2, [1, 1, 1, 1], "PADV2"),        # pads and two ceil cells: PADV2 -128, VALID
    ((9, 6), 3, 3, [0, 1, 0, 1], "PADV2"),
])
def test_ceil_mode_max_pool_bit_exact(hw, k, s, pads, builtin, tmp_path):
    nodes, inputs, inits = _after_conv(n("MaxPool", ["c"], ["y"], kernel_shape=[k, k],
                                         strides=[s, s], pads=pads, ceil_mode=1), hw)
    ops = _exact(nodes, inputs, inits, tmp_path)
    assert "MAX_POOL_2D" in ops and (builtin in ops if builtin else "PADV2" not in ops), ops


@pytest.mark.parametrize("hw,k,s,pads,ceil,include_pad,mirrored", [
    ((8, 8), 3, 2, [0, 0, 0, 0], 1, 0, False),   # one ceil cell at the end: TFLite's SAME
    ((7, 7), 2, 2, [0, 0, 0, 0], 1, 0, False),   # odd size, k = s (ResNet-D's avg_down)
    ((8, 11), 3, 3, [0, 0, 0, 0], 1, 0, False),
    ((7, 7), 2, 2, [0, 0, 0, 0], 1, 1, False),   # counting padding, no pads: ceil cells are
                                                 # still left out of the count
    ((8, 8), 3, 2, [1, 1, 1, 1], 0, 0, True),    # padding before, none used after: SAME's
                                                 # mirror image (shufflenet v1's pools)
    ((8, 7), 3, 2, [1, 1, 1, 1], 0, 0, True),    # H mirrored, W SAME as is
    ((8, 8), 3, 2, [1, 0, 0, 0], 1, 0, True),    # H: pad before, W: a ceil cell after
])
def test_average_pool_bit_exact_where_its_padding_is_same_or_its_mirror_image(
        hw, k, s, pads, ceil, include_pad, mirrored, tmp_path):
    """ceil_mode's cells and padding are left out of the count, as AVERAGE_POOL_2D's SAME
    does; SAME's padding is after the input, so padding before it runs on reversed axes."""
    nodes, inputs, inits = _after_conv(n("AveragePool", ["c"], ["y"], kernel_shape=[k, k],
                                         strides=[s, s], pads=pads, ceil_mode=ceil,
                                         count_include_pad=include_pad), hw)
    _, ig, x = _integer(nodes, inputs, inits)
    pool = next(nd for nd in ig.nodes if nd.op == "QAveragePool")
    assert pool.attrs["flavor"] == "tflite"
    ops = assert_exact(ig, tmp_path, _feeds(ig, x))
    assert "AVERAGE_POOL_2D" in ops and "PADV2" not in ops
    assert ops.count("STRIDED_SLICE") == (2 if mirrored else 0), ops


# --- 2. grouped convolution ----------------------------------------------------------------

@pytest.mark.parametrize("group,cin,cout,attrs", [
    (4, 8, 12, {"pads": [1, 1, 1, 1], "strides": [2, 1]}),   # resnext / regnet style
    (2, 8, 8, {"pads": [2, 2, 2, 2], "dilations": [2, 2]}),
    (3, 6, 3, {}),                                             # one filter per group
])
def test_grouped_convolution_is_one_conv_2d(group, cin, cout, attrs, tmp_path):
    """Per-channel weight scales stay on the filter's output channels (dim 0); the filter's
    input depth is C / group, which LiteRT's reference CONV_2D and TFLite Micro's take."""
    nodes = [n("Conv", ["x", "w", "b"], ["c"], group=group, **attrs), n("Relu", ["c"], ["y"])]
    inits = {"w": _weights(2, cout, cin // group, 3, 3), "b": _weights(3, cout)}
    ops = _exact(nodes, {"x": (1, cin, 7, 6)}, inits, tmp_path)
    assert ops == ["CONV_2D"]


# --- 3. channel shuffle (torchvision shufflenet_v2) -----------------------------------------

def test_torchvision_channel_shuffle_on_nhwc_tensors_bit_exact(tmp_path):
    """torchvision's InvertedResidual (stride 1): chunk in two, a branch of convolutions,
    Concat, then ``channel_shuffle``: ``view(N, 2, C/2, H, W)``, ``transpose(1, 2)``,
    ``view(N, -1, H, W)``, as ``torch.onnx.export`` writes it (shapes folded to constants)."""
    c, h, w = 8, 6, 6
    nodes = [n("Conv", ["x", "w0"], ["a"]),
             n("Split", ["a"], ["keep", "branch"], axis=1, split=[c // 2, c // 2]),
             n("Conv", ["branch", "w1"], ["b1"]), n("Relu", ["b1"], ["r1"]),
             n("Conv", ["r1", "w2"], ["b2"], group=c // 2, pads=[1, 1, 1, 1]),
             n("Conv", ["b2", "w3"], ["b3"]), n("Relu", ["b3"], ["r3"]),
             n("Concat", ["keep", "r3"], ["cat"], axis=1),
             n("Reshape", ["cat", "s5"], ["r5"]),
             n("Transpose", ["r5"], ["t5"], perm=[0, 2, 1, 3, 4]),
             n("Reshape", ["t5", "s4"], ["shuffled"]),
             n("Conv", ["shuffled", "w4"], ["y"])]
    inits = {"w0": _weights(4, c, c, 1, 1), "w1": _weights(5, c // 2, c // 2, 1, 1),
             "w2": _weights(6, c // 2, 1, 3, 3), "w3": _weights(7, c // 2, c // 2, 1, 1),
             "s5": np.array([1, 2, c // 2, h, w]), "s4": np.array([1, -1, h, w]),
             "w4": _weights(8, c, c, 1, 1)}
    _, ig, x = _integer(nodes, {"x": (1, c, h, w)}, inits)
    assert [nd.op for nd in ig.nodes][-4:] == ["Reshape", "Transpose", "Reshape", "QConv"]
    ops = assert_exact(ig, tmp_path, _feeds(ig, x))
    assert ops.count("TRANSPOSE") == 3  # NHWC -> NCHW, the 5-D shuffle, NCHW -> NHWC


@pytest.mark.parametrize("axes,keepdims,tail", [
    ([2, 3], 0, "Gemm"),  # torchvision shufflenet_v2's global pool: x.mean([2, 3]) -> fc
    ([1], 1, "Conv"),     # a channel mean feeding a convolution (spatial attention)
])
def test_mean_of_nhwc_tensors_bit_exact(axes, keepdims, tail, tmp_path):
    """QReduceMean reads NHWC tensors through a TRANSPOSE of their stored axes."""
    nodes = [n("Conv", ["x", "w0"], ["c"]), n("ReduceMean", ["c"], ["m"], axes=axes,
                                                 keepdims=keepdims)]
    inits = {"w0": _weights(19, 6, 4, 1, 1)}
    if tail == "Gemm":
        nodes.append(n("Gemm", ["m", "wf"], ["y"], transB=1))
        inits["wf"] = _weights(20, 5, 6)
    else:
        nodes.append(n("Conv", ["m", "wc"], ["y"], pads=[1, 1, 1, 1]))
        inits["wc"] = _weights(21, 3, 1, 3, 3)
    _, ig, x = _integer(nodes, {"x": (1, 4, 5, 6)}, inits)
    assert "QReduceMean" in [nd.op for nd in ig.nodes]
    assert_exact(ig, tmp_path, _feeds(ig, x))


# --- 4. transposed convolution ---------------------------------------------------------------

@pytest.mark.parametrize("k,s,pads,opad,group,dil,crop", [
    (4, 2, [1, 1, 1, 1], [0, 0], 1, 1, False),   # DCGAN / FPN upsampling: SAME
    (2, 2, [0, 0, 0, 0], [0, 0], 1, 1, False),   # VALID
    (3, 2, [1, 1, 1, 1], [1, 1], 1, 1, True),    # PyTorch's 2x (output_padding 1): crop
    (3, 2, [0, 0, 0, 0], [1, 1], 1, 1, False),   # output_padding rows hold the bias alone
    (3, 1, [1, 1, 1, 1], [0, 0], 1, 1, False),
    (3, 2, [0, 2, 1, 0], [0, 1], 1, 1, True),    # asymmetric pads
    (3, 3, [2, 2, 2, 2], [0, 0], 1, 1, True),
    (3, 2, [1, 1, 1, 1], [1, 1], 2, 1, True),    # groups: SPLIT_V, TRANSPOSE_CONV each, CONCAT
    (3, 2, [2, 2, 2, 2], [0, 0], 1, 2, False),   # dilation: a 5x5 kernel with zeros
])
def test_conv_transpose_to_transpose_conv_bit_exact(k, s, pads, opad, group, dil, crop,
                                                    tmp_path):
    nodes = [n("Conv", ["x", "w0"], ["c"]),
             n("ConvTranspose", ["c", "w", "b"], ["t"], kernel_shape=[k, k], strides=[s, s],
               pads=pads, output_padding=opad, group=group, dilations=[dil, dil]),
             n("Relu", ["t"], ["y"])]
    inits = {"w0": _weights(9, 4, 4, 1, 1), "w": _weights(10, 4, 6 // group, k, k),
             "b": _weights(11, 6)}
    ops = _exact(nodes, {"x": (1, 4, 5, 4)}, inits, tmp_path)
    assert ops.count("TRANSPOSE_CONV") == group
    assert ("STRIDED_SLICE" in ops) == crop, ops
    assert ("SPLIT_V" in ops and "CONCATENATION" in ops) == (group > 1), ops


def test_conv_transpose_per_channel_scales_and_int32_bias_reach_the_file(tmp_path):
    nodes = [n("ConvTranspose", ["x", "w", "b"], ["y"], kernel_shape=[2, 2], strides=[2, 2])]
    w = _weights(12, 3, 5, 2, 2) * np.array([1, 10, 0.1, 3, 0.5], np.float32)[None, :, None,
                                                                             None]
    _, ig, x = _integer(nodes, {"x": (1, 3, 4, 4)}, {"w": w, "b": _weights(13, 5)})
    assert_exact(ig, tmp_path, _feeds(ig, x))
    s = _schema()
    model = s.ModelT.InitFromPackedBuf(lower_graph(ig), 0)
    tensors = {t.name.decode() if isinstance(t.name, bytes) else t.name: t
               for t in model.subgraphs[0].tensors}
    node = next(nd for nd in ig.nodes if nd.op == "QConvTranspose")
    weight, bias = tensors[f"{node.name}/weight"], tensors[f"{node.name}/bias"]
    assert list(weight.shape) == [5, 2, 2, 3]  # OHWI
    np.testing.assert_allclose(weight.quantization.scale, node.inputs[1].qparams.scale,
                               rtol=1e-7)
    assert weight.quantization.quantizedDimension == 0 and len(set(
        weight.quantization.scale)) == 5
    assert bias.type == s.TensorType.INT32


# --- 5. linear resize --------------------------------------------------------------------------

LINEAR = ["align_corners", "half_pixel", "pytorch_half_pixel", "asymmetric"]


def _resize(ctm, sizes=None, scales=None, hw=(5, 6)):
    extra = ["", "", "sz"] if sizes else ["", "sc"]
    nodes = [n("Conv", ["x", "w"], ["c"]),
             n("Resize", ["c"] + extra, ["y"], mode="linear",
               coordinate_transformation_mode=ctm)]
    inits = {"w": _weights(14, 4, 4, 1, 1)}
    if sizes:
        inits["sz"] = np.array(sizes, np.int64)
    else:
        inits["sc"] = np.array(scales, np.float32)
    return nodes, {"x": (1, 4) + hw}, inits


@pytest.mark.parametrize("ctm", LINEAR)
@pytest.mark.parametrize("out_hw", [(10, 12), (8, 15), (3, 4), (5, 13)])
def test_linear_resize_is_resize_bilinear_bit_exact(ctm, out_hw, tmp_path):
    nodes, inputs, inits = _resize(ctm, sizes=[1, 4, *out_hw])
    fg, ig, x = _integer(nodes, inputs, inits)
    (node,) = [nd for nd in ig.nodes if nd.op == "QResize"]
    assert node.outputs[0].qparams == node.inputs[0].qparams
    assert node.attrs["coordinate_transformation_mode"] == \
        ("half_pixel" if ctm == "pytorch_half_pixel" else ctm)
    assert assert_exact(ig, tmp_path, _feeds(ig, x)) == ["CONV_2D", "RESIZE_BILINEAR"]
    # the 10-bit coordinates approximate ONNX's: close to the float model
    y_float, y_int = edgeq.run(fg, x)[0], edgeq.run(ig, x)[0]
    err = np.sqrt(np.mean((y_int - y_float) ** 2)) / np.sqrt(np.mean(y_float ** 2))
    assert err < 0.05, err


def test_resize_bilinear_rounds_half_away_from_zero(tmp_path):
    """2x asymmetric upsampling of W: output column 2j + 1 weighs input columns j and j + 1
    by 512/1024 each, so an odd ``x[j] + x[j + 1]`` is a tie. The default build (no
    TFLITE_SINGLE_ROUNDING) rounds it half away from zero; the single-rounding variant would
    round the negative ties up."""
    nodes, inputs, inits = _resize("asymmetric", scales=[1, 1, 1, 2])
    _, ig, _ = _integer(nodes, inputs, inits)
    node = next(nd for nd in ig.nodes if nd.op == "QResize")
    sub = Graph("resize")
    x = sub.add_input("x", node.inputs[0].type)
    x.qparams = node.inputs[0].qparams
    q = sub.add_node("QResize", [x], [node.outputs[0].type], dict(node.attrs), name="r")
    q.outputs[0].qparams = node.outputs[0].qparams
    sub.outputs = list(q.outputs)
    sub.metadata = dict(ig.metadata)
    rng = np.random.default_rng(3)
    feeds = [{"x": rng.integers(-128, 128, (1, 4, 5, 6)).astype(np.int8)} for _ in range(48)]
    negative_ties = 0
    for f in feeds:
        t = f["x"][..., :-1].astype(np.int64) + f["x"][..., 1:]
        negative_ties += int(((t % 2 == 1) & (t < 0)).sum())
        mid = run_graph(sub, f)["r"][..., 1:-1:2]
        np.testing.assert_array_equal(mid, np.where(t >= 0, (t + 1) // 2, -((-t + 1) // 2)))
    assert negative_ties > 500  # where half up would give one more
    assert_exact(sub, tmp_path, feeds)


# --- what still cannot be lowered, and why ----------------------------------------------------

def _tflite_reasons(nodes, inputs, inits) -> list[str]:
    _, ig, _ = _integer(nodes, inputs, inits)
    return [str(r) for r in supports(ig)]


def test_ceil_mode_average_pool_whose_padding_is_not_same_is_refused():
    """pads 1 and two ceil cells at the bottom and right: a PAD's cells would be counted."""
    nodes, inputs, inits = _after_conv(n("AveragePool", ["c"], ["y"], kernel_shape=[3, 3],
                                         strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=1))
    (reason,) = _tflite_reasons(nodes, inputs, inits)
    assert reason.startswith("QAveragePool 'y': average pooling padding [1, 1, 2, 2] "
                             "(ceil_mode's cells included) is neither TFLite's SAME [0, 0, 1, 1], "
                             "its mirror image, nor VALID")


def test_average_pool_counting_padding_is_still_refused():
    nodes, inputs, inits = _after_conv(n("AveragePool", ["c"], ["y"], kernel_shape=[3, 3],
                                         pads=[1, 1, 1, 1], count_include_pad=1, ceil_mode=1))
    (reason,) = _tflite_reasons(nodes, inputs, inits)
    assert "average pooling that counts padding has no TFLite form" in reason


def test_dilated_max_pool_is_refused():
    nodes, inputs, inits = _after_conv(n("MaxPool", ["c"], ["y"], kernel_shape=[2, 2],
                                         dilations=[2, 2]))
    assert _tflite_reasons(nodes, inputs, inits) == [
        "MaxPool 'y': dilated max pooling has no TFLite form"]


def test_conv_transpose_past_transpose_conv_reach_is_refused():
    """output_padding 2 with stride 2 (ONNX allows it below the dilation, 3): two rows past
    the full scatter, which TRANSPOSE_CONV cannot write."""
    nodes = [n("ConvTranspose", ["x", "w"], ["y"], kernel_shape=[3, 3], strides=[2, 2],
               dilations=[3, 3], output_padding=[2, 2])]
    (reason,) = _tflite_reasons(nodes, {"x": (1, 3, 4, 4)}, {"w": _weights(15, 3, 2, 3, 3)})
    assert reason.startswith("QConvTranspose 'y': output_padding [2, 2] reaches a stride or "
                             "more past")


@pytest.mark.parametrize("build,reason", [
    (lambda: _resize("tf_half_pixel_for_nn", scales=[1, 1, 2, 2]),
     "linear resizing with coordinate_transformation_mode 'tf_half_pixel_for_nn' has no "
     "integer form"),
    (lambda: _resize("pytorch_half_pixel", sizes=[1, 4, 1, 6]),
     "pytorch_half_pixel resizing to size 1 reads pixel 0"),
    (lambda: _resize("half_pixel", scales=[1, 1, 1.5, 1], hw=(5, 6)),  # 5 * 1.5 -> 7 rows
     "scale 1.5 on axis 2 is not output/input size 7/5"),
    (lambda: _resize("asymmetric", scales=[1, 1, 1, 1.1], hw=(5, 6)),  # 6 * 1.1 -> 6 columns,
     "scale 1.1 on axis 3 is not output/input size 6/6"),             # not the identity
    (lambda: _resize("asymmetric", sizes=[1, 4, 5, 7000], hw=(5, 6)),
     "upsampling 6 -> 7000 on axis 3 is beyond the 10-bit fixed-point coordinates"),
    (lambda: ([n("Resize", ["x", "", "sc"], ["y"], mode="linear")], {"x": (1, 4, 6)},
              {"sc": np.array([1, 1, 2], np.float32)}),
     "linear resizing of a rank-3 tensor: only 4-D NCHW has an integer form"),
])
def test_linear_resize_without_an_exact_integer_form_is_refused_at_quantize(build, reason):
    nodes, inputs, inits = build()
    g = graph_of(nodes, inputs, ["y"], inits)
    g, _ = edgeq.optimize(g)
    x = np.zeros((2,) + tuple(inputs["x"][1:]), np.float32)
    with pytest.raises(EdgeqError, match="cannot quantize: Resize 'y': ") as e:
        edgeq.quantize(g, x, rounding="tflite")
    assert reason in str(e.value)


def test_cubic_resize_is_refused_at_import():
    nodes = [n("Resize", ["x", "", "sc"], ["y"], mode="cubic")]
    with pytest.raises(EdgeqError, match="mode 'cubic' is not supported"):
        graph_of(nodes, {"x": (1, 4, 5, 6)}, ["y"], {"sc": np.array([1, 1, 2, 2], np.float32)})


def test_a_block_of_every_form_exports_bit_exact_to_tflite_and_tflm(tmp_path):
    """Through ``edgeq export``: grouped Conv, ceil-mode MaxPool, ConvTranspose needing a
    crop, linear Resize and ceil-mode AveragePool in one graph; 0 LSB on LiteRT's reference
    kernels and TFLite Micro, within 1 LSB per layer on LiteRT's default (XNNPACK) path."""
    from edgeq.export import export
    from edgeq.quant.calibrate import CalibrationData

    nodes = [n("Conv", ["x", "w0"], ["c0"], group=2, pads=[1, 1, 1, 1]), n("Relu", ["c0"], ["r0"]),
             n("MaxPool", ["r0"], ["p0"], kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1),
             n("ConvTranspose", ["p0", "wt", "bt"], ["t0"], kernel_shape=[3, 3], strides=[2, 2],
               pads=[1, 1, 1, 1], output_padding=[1, 1]),
             n("Resize", ["t0", "", "sc"], ["rs"], mode="linear"),
             n("AveragePool", ["rs"], ["y"], kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1)]
    inits = {"w0": _weights(16, 8, 2, 3, 3), "wt": _weights(17, 8, 6, 3, 3),
             "bt": _weights(18, 6), "sc": np.array([1, 1, 2, 2], np.float32)}
    g, _ = edgeq.optimize(graph_of(nodes, {"x": (1, 4, 9, 9)}, ["y"], inits))
    x = np.random.default_rng(0).normal(size=(16, 4, 9, 9)).astype(np.float32)
    report = export(g, CalibrationData(g, arrays={"x": x}), ["tflite", "tflm"], str(tmp_path),
                    {"eval_samples": 4, "equalize": False})
    for target in ("tflite", "tflm"):
        for part in ("calibration", "held_out"):
            assert report["targets"][target]["verification"][part]["max_abs_diff_lsb"] == 0
    assert report["targets"]["tflite"]["verification"]["per_layer_default_delegate"][
        "max_abs_diff_lsb"] <= 1
    assert report["targets"]["tflite"]["sqnr_db_vs_float"] > 30
