"""The tables behind ``edgeq.ops``: per op, its shape rule, kernel, quantize rule and refusal
check, MAC count and traits, each filled by a decorator in the op family's module.

- ``shape``: ``(node, input types) -> output types``;
- ``kernel``: ``(attrs, *arrays) -> tuple of arrays``; for a float op the float reference
  (ONNX semantics), for an integer op its exact integer semantics (docs/numerics.md);
- ``quantize``: ``(converter, node) -> None``, emits the node's integer form through the
  converter (``edgeq.quant.convert.Converter``); ``quantize_check``: ``node -> reason | None``,
  the user's reason when the node has no integer form;
- ``macs``: ``node -> int`` multiply-accumulates (ops that do none are absent: 0);
- ``traits``: named properties every other layer asks about instead of keeping op-name sets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from edgeq.ir.graph import DType, EdgeqError, Node, TensorType
from edgeq.ir.registry import registrar

if TYPE_CHECKING:
    from edgeq.quant.convert import Converter

Attrs = dict[str, Any]
ShapeRule = Callable[[Node, list[TensorType]], list[TensorType]]
Kernel = Callable[..., tuple]
QuantizeRule = Callable[["Converter", Node], None]
QuantizeCheck = Callable[[Node], "str | None"]

TRAITS = {
    "integer": "an op of the integer graph: its kernel is exact integer arithmetic",
    "elementwise": "each output element depends on the input elements at the same index "
                   "(numpy broadcasting): runs on any tile and any memory layout",
    "inplace": "its output may overwrite its (same-sized, dying) first input in the arena",
    "alias": "its output is its input's bytes (a new shape only): no copy is needed",
    "spatial": "slides a window over H and W of an NCHW input (receptive fields, patches)",
    "keeps_qparams": "the integer form keeps its input's quantization (data movement)",
    "moves_data": "on integers it only moves or selects values (no arithmetic): it stays in "
                  "the integer graph as is",
    "int16_input": "the integer form also takes int16 activations",
    "channel_scale_commutes": "scaling input channel c by s > 0 scales output channel c by s",
    "fuses_activation": "a following Relu or Clip folds into it (clamp of its output)",
    "folds_channel_affine": "a per-channel scale and shift of its output fold into its "
                            "constant weights and bias",
    "compensated_weights": "its constant weights are rounded with error compensation (GPTQ): "
                           "calibration gathers its input's second moments",
    "lookup": "a function of one int8 input: its integer form is a 256-entry table",
    "axis_attr": "layout enters only through axis attributes (a layout change permutes them)",
    "reorders": "moves elements between positions (Reshape, Transpose): layout conversions",
    "image": "defined on the H and W axes of an NCHW tensor (convolution, pooling, padding, "
             "resizing): a channels-last runtime runs it in its own layout",
}

SHAPE: dict[str, ShapeRule] = {}
KERNEL: dict[str, Kernel] = {}
QUANTIZE: dict[str, QuantizeRule] = {}
QUANTIZE_CHECK: dict[str, QuantizeCheck] = {}
MACS: dict[str, Callable[[Node], int]] = {}
TRAIT: dict[str, frozenset[str]] = {}

shape_rule = registrar(SHAPE)
kernel = registrar(KERNEL)
quantize_rule = registrar(QUANTIZE)
quantize_check = registrar(QUANTIZE_CHECK)
macs_rule = registrar(MACS)


def result_dtype(node: Node, t: TensorType) -> DType:
    """An integer op's output dtype is its ``dtype`` attribute; a float op keeps its input's."""
    return DType(node.attrs["dtype"]) if "dtype" in node.attrs and has(node.op, "integer") \
        else t.dtype


def traits(*ops: str, add: tuple[str, ...] | str) -> None:
    """Declare traits of ``ops`` (adds to what they already have)."""
    names = (add,) if isinstance(add, str) else tuple(add)
    for t in names:
        if t not in TRAITS:
            raise ValueError(f"unknown trait {t!r}; known: {', '.join(sorted(TRAITS))}")
    for op in ops:
        TRAIT[op] = TRAIT.get(op, frozenset()) | frozenset(names)


@dataclass(frozen=True)
class OpDef:
    """Everything edgeq knows about one op, gathered from the tables."""

    name: str
    shape: ShapeRule | None
    kernel: Kernel | None
    quantize: QuantizeRule | None
    quantize_check: QuantizeCheck | None
    macs: Callable[[Node], int] | None
    traits: frozenset[str]


def known(op: str) -> bool:
    return op in SHAPE or op in KERNEL or op in TRAIT


def get(op: str) -> OpDef:
    if not known(op):
        raise EdgeqError(f"unknown op {op!r}")
    return OpDef(op, SHAPE.get(op), KERNEL.get(op), QUANTIZE.get(op), QUANTIZE_CHECK.get(op),
                 MACS.get(op), TRAIT.get(op, frozenset()))


def has(op: str, trait: str) -> bool:
    if trait not in TRAITS:
        raise ValueError(f"unknown trait {trait!r}")
    return trait in TRAIT.get(op, frozenset())


def with_trait(trait: str) -> list[str]:
    if trait not in TRAITS:
        raise ValueError(f"unknown trait {trait!r}")
    return sorted(op for op, ts in TRAIT.items() if trait in ts)


def all_ops() -> list[str]:
    return sorted(set(SHAPE) | set(KERNEL) | set(TRAIT))


# --- what the rest of edgeq asks ----------------------------------------------------------------

def infer_node(node: Node) -> list[TensorType]:
    """Output types of ``node`` from its inputs' types (the op's shape rule)."""
    rule = SHAPE.get(node.op)
    if rule is None:
        raise EdgeqError(f"no shape rule for op {node.op} (node '{node.name}')")
    return rule(node, [v.type for v in node.inputs if v is not None])


def kernel_of(op: str) -> Kernel:
    k = KERNEL.get(op)
    if k is None:
        raise EdgeqError(f"no kernel for op {op}")
    return k


def macs(node: Node) -> int:
    """Multiply-accumulates of ``node`` (0 for ops that do none)."""
    rule = MACS.get(node.op)
    return rule(node) if rule is not None else 0


def quantize_reason(node: Node) -> str | None:
    """Why ``node`` cannot become integer ops (None if it can): the user's reason."""
    if node.op not in QUANTIZE:
        return "no integer lowering for this op"
    check = QUANTIZE_CHECK.get(node.op)
    return check(node) if check is not None else None
