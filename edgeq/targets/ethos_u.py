"""The ``[ethos_u]`` section of an Arm Ethos-U target file: the NPU's configuration as Arm's
Vela describes it (``ethosu/vela/architecture_features.py``, ``vela.ini``), read by the cost
model in ``edgeq.backends.npu_sim.ethos_u``."""

from __future__ import annotations

from edgeq.targets.schema import Field

ETHOS_U = {
    "macs_per_cycle": Field("int", "8x8-bit MACs per cycle (the configuration's number)",
                            minimum=1),
    "cores": Field("int", "NPU cores", minimum=1, default=1),
    "ofm_ublock": Field("ints", "output micro-block H, W, C", length=3, minimum=1),
    "ifm_ublock": Field("ints", "input micro-block H, W, C", length=3, minimum=1),
    "shram_banks": Field("int", "shared buffer banks of 1 KB", minimum=1),
    "elementwise_units": Field("int", "element-wise engine lanes", minimum=1),
    "output_cycles_per_element": Field(
        "floats", "output stage cycles per element by kind (Vela's output_cycles_per_elem: "
        "int8 conv, int16 conv, int32 conv, int8 elementwise, int16 elementwise, int32 "
        "elementwise, int8 mul, int16 mul)", length=8, minimum=0),
    "activation_cycles_per_element": Field(
        "floats", "activation function cycles per element (Vela's activation_cycles_per_elem: "
        "sigmoid/tanh, clamp, none)", length=3, minimum=0),
    "max_outstanding_dma": Field("int", "DMA transfers in flight", minimum=1, default=1),
    "vela_accelerator": Field("str", "Vela's --accelerator-config for the same NPU"),
    "vela_system_config": Field("str", "Vela's --system-config (clock and memories)"),
    "vela_memory_mode": Field("str", "Vela's --memory-mode (what lives where)"),
}
