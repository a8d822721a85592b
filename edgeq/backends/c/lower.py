"""Integer graph -> C99 source (model.h, model.c) over the kernels of ``edgeq_rt.h``.

Every activation lives in one static arena at the offset the memory planner gave it
(``edgeq.schedule.arena.plan_memory``); weights, biases, multipliers and tables are ``const``
arrays (flash on a microcontroller). With a patch plan, the leading stage runs patch by patch:
a table holds each patch's output region per stage node, tiles alternate between the two ends of
one scratch block, and the last stage node writes into the split layer's full output.
"""

from __future__ import annotations

import numpy as np

from edgeq.ir.graph import DType, EdgeqError, Graph, Node, Value

SPATIAL_KERNELS = {"QConv", "MaxPool", "QAveragePool"}
ELEMENTWISE = {"QAdd", "QMul", "Requantize", "QLookup"}
ALIASES = {"Reshape", "Flatten", "Squeeze", "Unsqueeze"}
SUPPORTED = SPATIAL_KERNELS | ELEMENTWISE | ALIASES | {
    "QGlobalAveragePool", "QGemm", "Pad", "Concat", "Split", "Transpose", "QMatMul",
    "QReduceMean", "QSoftmax", "QLayerNorm"}
MAX_RANK = 6
MAX_ACC_TERMS = (2**31 - 1) // (255 * 128)  # int32 accumulation stays exact below this


def supports(graph: Graph) -> list[str]:
    """One reason per node the C backend cannot take."""
    out = []
    for v in list(graph.inputs) + list(graph.outputs):
        if v.dtype != DType.INT8:
            out.append(f"{v.name}: graph {'input' if v in graph.inputs else 'output'} is "
                       f"{v.dtype.value}; the C backend takes int8 models")
    for node in graph.nodes:
        where = f"{node.name} ({node.op})"
        if node.op not in SUPPORTED:
            out.append(f"{where}: no C kernel for {node.op}")
            continue
        for v in node.inputs + node.outputs:
            if v is not None and not v.is_const and v.dtype != DType.INT8:
                out.append(f"{where}: {v.name} is {v.dtype.value}; the C kernels are int8 "
                           f"(int16 activations are not lowered to C)")
                break
        else:
            reason = _node_reason(node)
            if reason:
                out.append(f"{where}: {reason}")
    return out


def _node_reason(node: Node) -> str | None:
    x = node.inputs[0]
    if node.op in SPATIAL_KERNELS | {"QGlobalAveragePool", "Pad"} and (
            len(x.shape) != 4 or x.shape[0] != 1):
        return f"needs a batch-1 NCHW input, got shape {list(x.shape)}"
    if node.op == "QConv":
        k = node.inputs[1].shape[1] * int(np.prod(node.attrs["kernel_shape"]))
        if k > MAX_ACC_TERMS:
            return f"{k} terms per output overflow int32 accumulation (limit {MAX_ACC_TERMS})"
    if node.op == "QGemm" and x.shape[-1] > MAX_ACC_TERMS:
        return f"{x.shape[-1]} terms per output overflow int32 accumulation"
    if node.op == "Pad":
        p = node.attrs["pads"]
        if node.attrs.get("mode", "constant") != "constant":
            return f"only constant padding, got mode {node.attrs.get('mode')!r}"
        if any(v < 0 for v in p) or p[0] or p[1] or p[4] or p[5]:
            return f"only non-negative spatial padding, got pads {list(p)}"
    if node.op in ELEMENTWISE and len(node.outputs[0].shape) > 4:
        return f"rank {len(node.outputs[0].shape)} > 4"
    if node.op == "Transpose" and len(x.shape) > MAX_RANK:
        return f"rank {len(x.shape)} > {MAX_RANK}"
    if node.op == "QMatMul":
        a, b = node.inputs[0].shape, node.inputs[1].shape
        if node.inputs[1].is_const or len(a) < 2 or list(a[:-2]) != list(b[:-2]):
            return f"needs two activations with equal batch dimensions, got {list(a)} @ {list(b)}"
    if node.op == "QReduceMean":
        axes = sorted(ax % len(x.shape) for ax in (node.attrs.get("axes") or
                                                   range(len(x.shape))))
        if axes != list(range(axes[0], axes[-1] + 1)):
            return f"reduces non-adjacent axes {axes}"
    if node.op == "QSoftmax" and node.attrs["axis"] % len(x.shape) != len(x.shape) - 1:
        return "softmax over a non-last axis"
    if node.op == "QLayerNorm" and np.asarray(node.attrs["shift"]).max(initial=0) + 16 > 62:
        return "rescale shift above 62"
    return None


def _4d(shape) -> list[int]:
    shape = list(shape)
    return [1] * (4 - len(shape)) + shape


def _strides(shape) -> list[int]:
    s = [1] * 4
    for i in (2, 1, 0):
        s[i] = s[i + 1] * shape[i + 1]
    return s


def _bcast_strides(shape, out) -> list[int]:
    shape = _4d(shape)
    return [0 if shape[i] == 1 and out[i] != 1 else st for i, st in enumerate(_strides(shape))]


def _c_array(ctype: str, name: str, values) -> str:
    vals = [str(int(v)) for v in np.asarray(values).reshape(-1)]
    body = ",\n".join("    " + ", ".join(vals[i:i + 16]) for i in range(0, len(vals), 16))
    return f"static const {ctype} {name}[{max(len(vals), 1)}] = {{\n{body or '    0'}\n}};"


def _ident(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name)


class Emitter:
    def __init__(self, plan):
        self.plan = plan
        self.decls: list[str] = []
        self.body: list[str] = []
        self.consts: dict[tuple, str] = {}
        self.n = 0

    # --- constants -------------------------------------------------------------------------
    def const(self, ctype: str, values, hint: str) -> str:
        arr = np.asarray(values)
        key = (ctype, arr.dtype.str, arr.shape, arr.tobytes())
        if key not in self.consts:
            name = f"k{len(self.consts)}_{_ident(hint)[-40:]}"
            self.decls.append(_c_array(ctype, name, arr))
            self.consts[key] = name
        return self.consts[key]

    def requant(self, node: Node, a: dict) -> str:
        m = np.atleast_1d(np.asarray(a["multiplier"], np.int64))
        s = np.atleast_1d(np.asarray(a["shift"], np.int64))
        if s.max(initial=0) > 62 or s.min(initial=0) < 0:
            raise EdgeqError(f"{node.name}: shift outside [0, 62]")
        return (f"{{{self.const('int32_t', m, node.name + '_m')}, "
                f"{self.const('int8_t', s, node.name + '_s')}, {m.size}, {int(a['y_zp'])}, "
                f"{int(a['act_min'])}, {int(a['act_max'])}, {_rule(a)}}}")

    # --- arena -----------------------------------------------------------------------------
    def ptr(self, v: Value) -> str:
        if v.is_const:
            return self.const("int8_t", v.const, v.name)
        return f"(A + {self.plan.offset_of(v.name)})"

    def full_view(self, v: Value) -> str:
        _, c, h, w = _4d(v.shape)
        return f"eq_full({self.ptr(v)}, {c}, {h}, {w})"

    # --- nodes -----------------------------------------------------------------------------
    def struct(self, ctype: str, init: str) -> str:
        self.n += 1
        name = f"p{self.n}"
        self.decls.append(f"static const {ctype} {name} = {init};")
        return name

    def spatial_params(self, node: Node) -> str:
        a = node.attrs
        op = node.op
        kh, kw = a["kernel_shape"]
        sh, sw = a["strides"]
        dh, dw = a.get("dilations", [1, 1])
        pt, pl = a["pads"][0], a["pads"][1]
        pool = f"{{{kh}, {kw}, {sh}, {sw}, {dh}, {dw}, {pt}, {pl}}}"
        if op == "QConv":
            w, b = node.inputs[1], node.inputs[2] if len(node.inputs) > 2 else None
            cin = node.inputs[0].shape[1]
            bias = self.const("int32_t", b.const, b.name) if b is not None else "0"
            return "&" + self.struct("eq_conv_t", (
                f"{{{cin}, {w.shape[0]}, {a['group']}, {kh}, {kw}, {sh}, {sw}, {dh}, {dw}, "
                f"{pt}, {pl}, {int(a['x_zp'])}, {self.const('int8_t', w.const, w.name)}, "
                f"{bias}, {self.requant(node, a)}}}"))
        if op == "MaxPool":
            return "&" + self.struct("eq_pool_t", pool)
        tfl = a.get("flavor") == "tflite"
        ow = node.outputs[0].shape[3]
        if tfl:
            mult = shift = "0"
        else:
            mult = self.const("int32_t", np.asarray(a["multiplier"]).reshape(-1), node.name)
            shift = self.const("int8_t", np.asarray(a["shift"]).reshape(-1), node.name + "_s")
        return "&" + self.struct("eq_avgpool_t", (
            f"{{{pool}, {int(tfl)}, {ow}, {int(a.get('x_zp', 0))}, {int(a.get('y_zp', 0))}, "
            f"{int(a['act_min'])}, {int(a['act_max'])}, {mult}, {shift}, {_rule(a)}}}"))

    def spatial_call(self, node: Node, params: str, xview: str, yview: str, region: str) -> str:
        fn = {"QConv": "eq_conv", "MaxPool": "eq_maxpool", "QAveragePool": "eq_avgpool"}[node.op]
        return f"{{ eq_view x = {xview}, y = {yview}; {fn}({params}, &x, &y, {region}); }}"

    def elementwise(self, node: Node, bcast: str, pa: str, py: str) -> str:
        a = node.attrs
        if node.op == "QAdd":
            b = node.inputs[1]
            if a.get("flavor") == "tflite":
                init = (f"{{1, {int(a.get('subtract', 0))}, 1, {int(a['a_zp'])}, "
                        f"{int(a['b_zp'])}, {int(a['y_zp'])}, {int(a['act_min'])}, "
                        f"{int(a['act_max'])}, {int(a['a_mult'])}, {int(a['multiplier'])}, "
                        f"{self.const('int32_t', [a['b_mult']], node.name + '_bm')}, "
                        f"{int(a['a_shift'])}, {int(a['b_shift'])}, {int(a['shift'])}}}")
            else:
                bm = np.atleast_1d(np.asarray(a["b_mult"], np.int64))
                init = (f"{{0, 0, {bm.size}, {int(a['a_zp'])}, {int(a['b_zp'])}, "
                        f"{int(a['y_zp'])}, {int(a['act_min'])}, {int(a['act_max'])}, "
                        f"{int(np.asarray(a['a_mult']).reshape(-1)[0])}, 0, "
                        f"{self.const('int32_t', bm, node.name + '_bm')}, 0, 0, "
                        f"{int(a['shift'])}}}")
            p = self.struct("eq_add_t", init)
            return f"eq_add(&{p}, {bcast}, {pa}, {self.ptr(b)}, {py});"
        if node.op == "QMul":
            q = self.struct("eq_requant", self.requant(node, a))
            return (f"eq_mul(&{q}, {int(a['a_zp'])}, {int(a['b_zp'])}, {bcast}, {pa}, "
                    f"{self.ptr(node.inputs[1])}, {py});")
        if node.op == "Requantize":
            q = self.struct("eq_requant", self.requant(node, a))
            return f"eq_requantize(&{q}, {int(a['x_zp'])}, {bcast}, {pa}, {py});"
        table = self.const("int8_t", a["table"], node.name + "_table")
        return f"eq_lookup({table}, {bcast}, {pa}, {py});"

    def axis4(self, node: Node) -> int:
        ax = node.attrs.get("axis")
        if ax is None or node.op in ("QLookup",):
            return -1
        rank = len(node.outputs[0].shape)
        return (ax % rank) + 4 - rank

    def layer(self, node: Node) -> None:
        """One node, whole-layer."""
        op, a = node.op, node.attrs
        x, y = node.inputs[0], node.outputs[0]
        self.body.append(f"    /* {node.name}: {op} {list(x.shape)} -> {list(y.shape)} */")
        if op == "QConv" and self.ptr(x) == self.ptr(y):  # the planner made it in-place
            from edgeq.schedule.arena import dw_scratch

            _, _, h, w = x.shape
            _, _, oh, ow = y.shape
            self.body.append(f"    eq_conv_dw_inplace({self.spatial_params(node)}, "
                             f"{self.ptr(x)}, {h}, {w}, {oh}, {ow}, "
                             f"(A + {self.plan.offset_of(dw_scratch(node))}));")
        elif op in SPATIAL_KERNELS:
            _, _, oh, ow = y.shape
            self.body.append("    " + self.spatial_call(
                node, self.spatial_params(node), self.full_view(x), self.full_view(y),
                f"0, {oh}, 0, {ow}"))
        elif op in ELEMENTWISE:
            d = _4d(y.shape)
            b = node.inputs[1] if op in ("QAdd", "QMul") else x
            init = (f"{{{{{', '.join(map(str, d))}}}, "
                    f"{{{', '.join(map(str, _bcast_strides(x.shape, d)))}}}, "
                    f"{{{', '.join(map(str, _bcast_strides(b.shape, d)))}}}, "
                    f"{{{', '.join(map(str, _strides(d)))}}}, {self.axis4(node)}}}")
            bc = self.struct("eq_bcast", init)
            self.body.append("    " + self.elementwise(node, "&" + bc, self.ptr(x), self.ptr(y)))
        elif op == "QGlobalAveragePool":
            q = self.struct("eq_requant", self.requant(node, a))
            c, hw = x.shape[1], int(np.prod(x.shape[2:]))
            self.body.append(f"    eq_global_avgpool(&{q}, {int(a['x_zp'])}, {self.ptr(x)}, "
                             f"{self.ptr(y)}, {c}, {hw});")
        elif op == "QGemm":
            w = node.inputs[1]
            b = node.inputs[2] if len(node.inputs) > 2 and node.inputs[2] is not None else None
            q = self.struct("eq_requant", self.requant(node, a))
            rows = int(np.prod(x.shape[:-1]))
            bias = self.const("int32_t", b.const, b.name) if b is not None else "0"
            self.body.append(f"    eq_gemm(&{q}, {int(a['x_zp'])}, {self.ptr(x)}, "
                             f"{self.ptr(w)}, {bias}, {self.ptr(y)}, {rows}, {w.shape[1]}, "
                             f"{w.shape[0]});")
        elif op == "Pad":
            p = a["pads"]
            _, c, h, w = x.shape
            self.body.append(f"    eq_pad({self.ptr(x)}, {self.ptr(y)}, {c}, {h}, {w}, {p[2]}, "
                             f"{p[6]}, {p[3]}, {p[7]}, {int(a.get('value', 0))});")
        elif op in ALIASES:
            if self.ptr(x) != self.ptr(y):
                self.body.append(f"    memmove({self.ptr(y)}, {self.ptr(x)}, {y.type.nbytes});")
        elif op in ("Concat", "Split"):
            # `outer` blocks of the joined tensor; each part holds `inner[i]` bytes per block
            whole, parts = (y, node.inputs) if op == "Concat" else (x, node.outputs)
            ax = a["axis"] % len(whole.shape)
            outer = int(np.prod(whole.shape[:ax]))
            inner = ", ".join(str(int(np.prod(v.shape[ax:]))) for v in parts)
            ptrs = ", ".join(self.ptr(v) for v in parts)
            decl = "const int8_t *xs[]" if op == "Concat" else "int8_t *const xs[]"
            fn = "eq_concat" if op == "Concat" else "eq_split"
            self.body.append(f"    {{ {decl} = {{{ptrs}}}; static const int32_t in[] = "
                             f"{{{inner}}}; {fn}({self.ptr(whole)}, {outer}, {len(parts)}, xs, "
                             f"in); }}")
        elif op == "Transpose":
            shape, perm = list(x.shape), [int(p) for p in a["perm"]]
            self.body.append(f"    {{ static const int32_t s[] = {{{', '.join(map(str, shape))}}}"
                             f", p[] = {{{', '.join(map(str, perm))}}}; eq_transpose("
                             f"{self.ptr(x)}, {self.ptr(y)}, {len(shape)}, s, p); }}")
        elif op == "QMatMul":
            b = node.inputs[1]
            q = self.struct("eq_requant", self.requant(node, a))
            m, k = x.shape[-2:]
            n = b.shape[-1]
            batch = int(np.prod(x.shape[:-2]))
            self.body.append(f"    eq_matmul(&{q}, {int(a['a_zp'])}, {int(a['b_zp'])}, "
                             f"{self.ptr(x)}, {self.ptr(b)}, {self.ptr(y)}, {batch}, {m}, {k}, "
                             f"{n});")
        elif op == "QReduceMean":
            axes = sorted(ax % len(x.shape) for ax in (a.get("axes") or range(len(x.shape))))
            outer = int(np.prod(x.shape[:axes[0]]))
            red = int(np.prod(x.shape[axes[0]:axes[-1] + 1]))
            inner = int(np.prod(x.shape[axes[-1] + 1:]))
            q = self.struct("eq_requant", self.requant(node, a))
            self.body.append(f"    eq_reduce_mean(&{q}, {int(a['x_zp'])}, {self.ptr(x)}, "
                             f"{self.ptr(y)}, {outer}, {red}, {inner});")
        elif op == "QSoftmax":
            length = x.shape[-1]
            table = self.const("int32_t", a["exp_table"], node.name + "_exp")
            fn = "eq_softmax_tflite" if a.get("flavor") == "tflite" else "eq_softmax"
            self.body.append(f"    {fn}({table}, {int(a['y_zp'])}, {int(a['act_min'])}, "
                             f"{int(a['act_max'])}, {self.ptr(x)}, {self.ptr(y)}, "
                             f"{x.type.size // length}, {length});")
        elif op == "QLayerNorm":
            k = x.shape[-1]
            shifted = dict(a, shift=np.broadcast_to(np.asarray(a["shift"]) + 16, (k,)),
                           multiplier=np.broadcast_to(np.asarray(a["multiplier"]), (k,)))
            gs = a.get("gamma_sign")
            bq = a.get("beta_q")
            gs = self.const("int8_t", gs, node.name + "_gsign") if gs is not None else "0"
            bq = self.const("int32_t", bq, node.name + "_beta") if bq is not None else "0"
            p = self.struct("eq_layernorm_t", f"{{{int(a['x_zp'])}, {int(a['eps_q'])}, {gs}, "
                            f"{bq}, {self.requant(node, shifted)}}}")
            self.body.append(f"    eq_layernorm(&{p}, {self.ptr(x)}, {self.ptr(y)}, "
                             f"{x.type.size // k}, {k});")
        else:  # pragma: no cover - supports() refuses these first
            raise EdgeqError(f"{node.name}: no C kernel for {op}")

    def stage(self, stage: list[Node], regions: list[list[tuple]], scratch: int,
              scratch_bytes: int) -> None:
        """The patched leading stage: one loop over patches."""
        ns = len(stage)
        table = self.const("int16_t", np.asarray(regions, np.int64), "patch_regions")
        self.body.append(f"    /* patch-based stage: {len(regions)} patches x {ns} layers "
                         f"({stage[0].name} .. {stage[-1].name}) */")
        self.body.append(f"    for (int pi = 0; pi < {len(regions)}; pi++) {{")
        self.body.append(f"        const int16_t *R = {table} + pi * {ns * 4};")
        self.body.append("        eq_view t_in, t_out;")
        lo, hi_end = f"(A + {scratch})", f"(A + {scratch + scratch_bytes})"
        for i, node in enumerate(stage):
            x, y = node.inputs[0], node.outputs[0]
            r = f"R[{4 * i}], R[{4 * i + 1}], R[{4 * i + 2}], R[{4 * i + 3}]"
            c = y.shape[1]
            _, _, yh, yw = y.shape
            size = f"({c} * (R[{4 * i + 1}] - R[{4 * i}]) * (R[{4 * i + 3}] - R[{4 * i + 2}]))"
            xview = self.full_view(x) if i == 0 else "t_in"
            if i == ns - 1:
                yview = self.full_view(y)
            else:
                base = lo if i % 2 == 0 else f"({hi_end} - {size})"
                yview = f"eq_tile({base}, {c}, {yh}, {yw}, {r})"
            self.body.append(f"        /* {node.name}: {node.op} */")
            self.body.append(f"        t_out = {yview};")
            if node.op in SPATIAL_KERNELS:
                self.body.append("        " + self.spatial_call(
                    node, self.spatial_params(node), xview, "t_out", r))
            else:
                src = "t_in" if i else "t_src"
                if i == 0:
                    self.body.append(f"        eq_view t_src = {xview};")
                d = f"{{1, {c}, R[{4 * i + 1}] - R[{4 * i}], R[{4 * i + 3}] - R[{4 * i + 2}]}}"
                b = node.inputs[1] if node.op in ("QAdd", "QMul") else x
                sb = _bcast_strides(b.shape, [1, c, 2, 2]) if b.is_const else [0, 0, 0, 0]
                if b.is_const and any(s > 1 for s in _4d(b.shape)[2:]):
                    raise EdgeqError(f"{node.name}: a constant with spatial extent cannot be "
                                     f"tiled in the patch stage")
                self.body.append(
                    f"        {{ eq_bcast B = {{{d}, {{0}}, {{{', '.join(map(str, sb))}}}, "
                    f"{{0}}, {self.axis4(node)}}}; "
                    f"const int8_t *pa = eq_view_at(&{src}, R[{4 * i}], R[{4 * i + 2}], B.sa); "
                    f"int8_t *py = eq_view_at(&t_out, R[{4 * i}], R[{4 * i + 2}], B.sy); "
                    + self.elementwise(node, "&B", "pa", "py") + " }")
            self.body.append("        t_in = t_out;")
        self.body.append("    }")


def _rule(a: dict) -> str:
    return "EQ_RULE_TFLITE" if a.get("rounding") == "tflite" else "EQ_RULE_EDGEQ"


def generate(graph: Graph, plan, patch=None, order=None) -> tuple[str, str]:
    """(model.h, model.c) for ``graph`` executed in ``order`` over ``plan``'s arena."""
    from edgeq.schedule.arena import PATCH_SCRATCH
    from edgeq.schedule.patch import chain_prefix, patches

    em = Emitter(plan)
    nodes = list(order if order is not None else graph.nodes)
    if patch is not None:
        stage = chain_prefix(graph)[:patch.split + 1]
        scratch = plan.offset_of(PATCH_SCRATCH)
        size = next(b.size for b in plan.blocks if PATCH_SCRATCH in b.values)
        em.stage(stage, patches(stage, patch.n), scratch, size)
        nodes = nodes[len(stage):]
    for node in nodes:
        em.layer(node)
    guard = "EDGEQ_MODEL_H"
    ins = [(i, v) for i, v in enumerate(graph.inputs)]
    outs = [(i, v) for i, v in enumerate(graph.outputs)]
    h = [f"/* {graph.name}: generated by edgeq. Integer-only inference, int8 NCHW tensors. */",
         f"#ifndef {guard}", f"#define {guard}", "", "#include <stdint.h>", "",
         f"#define EDGEQ_ARENA_BYTES {plan.arena_bytes}",
         f"#define EDGEQ_NUM_INPUTS {len(ins)}", f"#define EDGEQ_NUM_OUTPUTS {len(outs)}"]
    for kind, vals in (("INPUT", ins), ("OUTPUT", outs)):
        for i, v in vals:
            qp = v.qparams
            h.append(f"#define EDGEQ_{kind}{i}_BYTES {v.type.nbytes}  "
                     f"/* {v.name}: shape {list(v.shape)}, zero point "
                     f"{int(np.asarray(qp.zero_point).reshape(-1)[0]) if qp else 0}, "
                     f"scale {float(np.asarray(qp.scale).reshape(-1)[0]) if qp else 1:.9g} */")
    h += ["", "/* Where to write input i (quantized int8) before each run. */",
          "int8_t *edgeq_input(int i);",
          "extern const int32_t edgeq_input_bytes[EDGEQ_NUM_INPUTS];",
          "extern const int32_t edgeq_output_bytes[EDGEQ_NUM_OUTPUTS];",
          "/* Output i after edgeq_run(), valid until the next run. */",
          "const int8_t *edgeq_output(int i);",
          "/* One inference; no allocation, no float. */",
          "void edgeq_run(void);", "", f"#endif /* {guard} */", ""]
    c = [f"/* {graph.name}: generated by edgeq. Do not edit. */", '#include "model.h"',
         '#include "edgeq_rt.h"', "",
         f"static int8_t A[{max(plan.arena_bytes, 1)}] __attribute__((aligned(16)));", ""]
    c += em.decls
    c += ["", "const int32_t edgeq_input_bytes[EDGEQ_NUM_INPUTS] = {"
          + ", ".join(str(v.type.nbytes) for _, v in ins) + "};",
          "const int32_t edgeq_output_bytes[EDGEQ_NUM_OUTPUTS] = {"
          + ", ".join(str(v.type.nbytes) for _, v in outs) + "};"]
    c += ["", "int8_t *edgeq_input(int i) {", "    switch (i) {"]
    c += [f"    case {i}: return {em.ptr(v)};" for i, v in ins]
    c += ["    default: return 0;", "    }", "}", "",
          "const int8_t *edgeq_output(int i) {", "    switch (i) {"]
    c += [f"    case {i}: return {em.ptr(v)};" for i, v in outs]
    c += ["    default: return 0;", "    }", "}", "", "void edgeq_run(void) {"]
    c += em.body
    c += ["}", ""]
    return "\n".join(h), "\n".join(c)
