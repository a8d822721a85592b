"""The ``[ethos_u]`` section of an Arm Ethos-U target file: the NPU's configuration as Arm's
Vela 5.2 describes it (its C++ core's ``ethos_u55.cpp`` / ``ethos_u65.cpp`` accelerator tables
and performance model, ``vela.ini`` for the system), read by the cost model in
``edgeq.backends.npu_sim.ethos_u``. Shapes are H, W, C."""

from __future__ import annotations

from edgeq.targets.schema import Field

ETHOS_U = {
    "macs_per_cycle": Field("int", "8x8-bit MACs per cycle (the configuration's number)",
                            minimum=1),
    "cores": Field("int", "NPU cores", minimum=1, default=1),
    "ofm_ublock": Field("ints", "output micro-block H, W, C", length=3, minimum=1),
    "ifm_ublock": Field("ints", "input micro-block H, W, C", length=3, minimum=1),
    "shram_banks": Field("int", "shared buffer (SHRAM) banks", minimum=1),
    "shram_bank_bytes": Field("int", "bytes per SHRAM bank", minimum=1, default=1024),
    "shram_reserved_output_banks": Field("int", "SHRAM banks reserved for the output stage",
                                         minimum=0, default=2),
    "shram_reserved_end_banks": Field("int", "SHRAM banks reserved at the end (LUT) when the "
                                      "buffer has more than 16 banks", minimum=0, default=2),
    "shram_granules": Field(
        "ints", "SHRAM allocation granule in banks for IFM8, IFM16, IFM8 element-wise, IFM16 "
        "element-wise, IFM32, Acc16, Acc32, Acc40", length=8, minimum=1),
    "ofm_block_max": Field("ints", "largest OFM block H, W, C", length=3, minimum=1,
                           default=[32, 64, 128]),
    "subkernel_max": Field("ints", "largest kernel H, W run in one pass (sub-kernel)",
                           length=2, minimum=1, default=[8, 8]),
    "ofm_split_depth": Field("int", "OFM block depth granule once the output is split in "
                             "depth", minimum=1, default=16),
    "elementwise_units": Field("int", "element-wise engine lanes", minimum=1),
    "output_cycles_per_element": Field(
        "floats", "output stage cycles per element by kind (Vela's outputCycles: int32 unary "
        "element-wise, int32 binary element-wise, int32 mul, mul or 40-bit accumulator, simple "
        "add/sub, rescaling add/sub, max pool, other (convolution, avg pool, copy))",
        length=8, minimum=0),
    "activation_cycles_per_element": Field(
        "floats", "activation function cycles per element (Vela's activationCycles: "
        "sigmoid/tanh/LUT, relu-family clamp, none)", length=3, minimum=0),
    "weight_compression_ratio": Field(
        "float", "encoded bytes per int8 weight after Vela's weight compression (the "
        "stream's zero padding and 16-byte alignment are counted apart)",
        minimum=0.01, maximum=2.0, default=1.0),
    "scale_bytes_per_channel": Field("int", "encoded bias + scale + shift bytes per output "
                                     "channel", minimum=0, default=10),
    "max_outstanding_dma": Field("int", "DMA transfers in flight", minimum=1, default=1),
    "vela_accelerator": Field("str", "Vela's --accelerator-config for the same NPU"),
    "vela_system_config": Field("str", "Vela's --system-config (clock and memories)"),
    "vela_memory_mode": Field("str", "Vela's --memory-mode (what lives where)"),
}
