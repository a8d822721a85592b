"""The architecture sections of target files: ``[ethos_u]`` (``edgeq.targets.ethos_u``),
``[systolic]`` (a generic systolic-array NPU) and ``[cortex_m]`` (a microcontroller board).
Each is the schema its cost model (``edgeq.backends.npu_sim``, ``edgeq.profile``) reads."""

from __future__ import annotations

from edgeq.targets.ethos_u import ETHOS_U
from edgeq.targets.schema import Field

SYSTOLIC = {
    "rows": Field("int", "PE rows (the reduction dimension in weight-stationary mapping)",
                  minimum=1, maximum=4096),
    "cols": Field("int", "PE columns (output channels in weight-stationary mapping)",
                  minimum=1, maximum=4096),
    "dataflow": Field("str", "ws (weight stationary) or os (output stationary)",
                      choices=("ws", "os")),
    "vector_lanes": Field("int", "element-wise unit: int8 lanes per cycle (pooling, add, "
                          "requantize, data movement)", minimum=1, default=16),
    "output_cycles_per_element": Field("float", "output stage (requantize and write) cycles "
                                       "per output element, per column", minimum=0,
                                       default=0.0),
    "weight_buffer_bytes": Field("int", "on-chip weight buffer; weights beyond it are "
                                 "streamed once per output tile", minimum=0, default=0),
}

CORTEX_M = {
    "core": Field("str", "Arm core", choices=("cortex-m0plus", "cortex-m3", "cortex-m4",
                                              "cortex-m7", "cortex-m33", "cortex-m55")),
    "fpu": Field("bool", "has a single-precision FPU", default=True),
    "dsp": Field("bool", "has the DSP (SIMD) extension", default=True),
    "supply_v": Field("float", "core supply voltage in volts", minimum=0.5, maximum=5.5),
    "run_current_ua_per_mhz": Field("float", "run-mode supply current per MHz, microamps",
                                    minimum=0),
    "qemu_machine": Field("str", "the QEMU machine that models this core, if any", default=""),
}

ARCH_SCHEMAS = {"ethos_u": ETHOS_U, "systolic": SYSTOLIC, "cortex_m": CORTEX_M}
