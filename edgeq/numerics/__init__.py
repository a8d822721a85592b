"""Pure integer arithmetic and the quantization scheme, below every op (numpy only).

- ``dyadic``: real factors as a Q31 multiplier and a shift, and the rescale rules;
- ``gemmlowp``: TFLite's fixed-point softmax arithmetic;
- ``reciprocal``: integer reciprocal and inverse square root;
- ``scheme``: activation, weight and bias quantization.

``docs/numerics.md`` is the contract; ``tests/numerics`` holds the golden vectors every
spelling (numpy, TVM, C) is checked against."""
