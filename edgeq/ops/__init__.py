"""What edgeq knows about each op, in one place: one module per op family.

==================  =========================================================================
module              ops
==================  =========================================================================
``conv``            Conv, ConvTranspose, QConv, QConvTranspose
``matmul``          Gemm, MatMul, QGemm, QMatMul
``pool``            MaxPool, AveragePool, GlobalAveragePool, ReduceMean, QAveragePool,
                    QGlobalAveragePool, QReduceMean
``elementwise``     Add, Sub, Mul, Div, Pow, Max, Min, Equal, Where, QAdd, QMul, Requantize
``activation``      Relu, Clip, Sigmoid, Tanh, HardSwish, HardSigmoid, Gelu, Erf, LeakyRelu,
                    PRelu, Exp, Sqrt, Neg, Abs, Reciprocal, Rsqrt, QLookup
``normalization``   BatchNormalization, LayerNormalization, LRN, QLayerNorm
``softmax``         Softmax, QSoftmax
``movement``        Concat, Split, Slice, Pad, Reshape, Transpose, Gather, Cast, Shape,
                    ConstantOfShape, Expand, Range, Identity, Dropout
``resize``          Resize
==================  =========================================================================

For each op its module declares the shape rule, the kernel (float reference, or the exact
integer semantics of docs/numerics.md), the quantize rule and the reason it refuses, the MAC
count and the traits (``base.TRAITS``). The verifier, shape inference, both interpreters, the
converter, the scheduler, cost and the backends' support checks read them here.
"""

from edgeq.ops import (activation, conv, elementwise, matmul, movement,  # noqa: F401
                       normalization, pool, resize, softmax)
from edgeq.ops.base import (TRAITS, OpDef, all_ops, get, has, infer_node, kernel_of, known, macs,
                            quantize_reason, with_trait)

__all__ = ["TRAITS", "OpDef", "all_ops", "get", "has", "infer_node", "kernel_of", "known",
           "macs", "quantize_reason", "with_trait"]
