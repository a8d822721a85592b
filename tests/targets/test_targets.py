"""Hardware descriptions (edgeq/targets/): every built-in loads, and a malformed or incomplete
file is one EdgeqError naming the file, the table and the key."""

from __future__ import annotations

import pytest

from edgeq.ir.graph import EdgeqError
from edgeq.targets import builtin_targets, load_energy, load_target

pytestmark = pytest.mark.unit

GOOD = """
[target]
name = "my-npu"
kind = "npu"
architecture = "systolic"
clock_hz = 800e6

[memory.sram]
kind = "sram"
size_bytes = 262144
bytes_per_cycle = 32.0

[memory.dram]
kind = "dram"
size_bytes = 1073741824
bytes_per_cycle = 8.0
read_latency_cycles = 200

[placement]
weights = "dram"
activations = "sram"

[systolic]
rows = 8
cols = 8
dataflow = "ws"
"""


def write(tmp_path, text, name="npu.toml"):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def test_every_builtin_loads_with_its_memories_and_energy():
    names = builtin_targets()
    for n in ("ethos-u55-64", "ethos-u55-128", "ethos-u55-256", "ethos-u65-256",
              "systolic-16x8-ws", "systolic-32x32-ws", "mps2-an386", "stm32f446re"):
        assert n in names
    for n in names:
        t = load_target(n)
        assert t.name == n and t.clock_hz > 0
        assert t.memory("weights").size_bytes > 0 and t.memory("activations").kind == "sram"
        assert t.energy.sram and t.energy.mac_int8_pj > 0


def test_a_user_file_loads_with_defaults_and_the_default_energy_table(tmp_path):
    t = load_target(write(tmp_path, GOOD))
    assert t.params == {"rows": 8, "cols": 8, "dataflow": "ws", "vector_lanes": 16,
                        "output_cycles_per_element": 0.0, "weight_buffer_bytes": 0}
    assert t.memories["sram"].read_latency_cycles == 0.0  # default
    assert t.energy.name == "horowitz-45nm"


@pytest.mark.parametrize("edit, needles", [
    (lambda s: s.replace("rows = 8", 'rows = "eight"'), ["[systolic] rows", "an integer"]),
    (lambda s: s.replace("rows = 8\n", ""), ["[systolic] rows", "missing"]),
    (lambda s: s.replace("rows = 8", "rows = 0"), ["[systolic] rows", ">= 1"]),
    (lambda s: s + "\n[systolic2]\nx = 1\n", ["unknown table [systolic2]"]),
    (lambda s: s.replace("cols = 8", "cols = 8\ncolumns = 8"), ["unknown key 'columns'"]),
    (lambda s: s.replace('weights = "dram"', 'weights = "hbm"'),
     ["[placement] weights", "'hbm'"]),
    (lambda s: s.replace('kind = "npu"', 'kind = "gpu"'), ["[target] kind", "npu, mcu"]),
    (lambda s: s.replace("clock_hz = 800e6", "clock_hz = nan"), ["[target] clock_hz",
                                                                  "finite"]),
    (lambda s: s.replace("[systolic]", "[ethos_u]"), ["[systolic]"]),
    (lambda s: s.replace('dataflow = "ws"', 'dataflow = "xs"'), ["dataflow", "ws, os"]),
    (lambda s: s.replace("[target]", "[target\n"), ["not valid TOML"]),
    (lambda s: s.replace('size_bytes = 262144', 'size_bytes = 262144.5'),
     ["[memory.sram] size_bytes"]),
])
def test_malformed_files_name_the_field(tmp_path, edit, needles):
    with pytest.raises(EdgeqError) as e:
        load_target(write(tmp_path, edit(GOOD)))
    msg = str(e.value)
    assert "npu.toml" in msg
    for n in needles:
        assert n in msg, (n, msg)


def test_energy_tables_are_checked_too(tmp_path):
    write(tmp_path, '[energy]\nname = "x"\nsource = "y"\nmac_int8_pj = 1\n', "e.toml")
    with pytest.raises(EdgeqError, match=r"e.toml \[energy\] add_int32_pj: missing"):
        load_target(write(tmp_path, GOOD.replace('clock_hz = 800e6',
                                                 'clock_hz = 800e6\nenergy = "e.toml"')))
    assert load_energy("horowitz-45nm-dram-high").dram_pj_per_64bit == 2600.0


def test_unknown_names_list_the_builtins_and_huge_files_are_refused(tmp_path):
    with pytest.raises(EdgeqError, match="built-in: .*ethos-u55-128"):
        load_target("ethos-u99")
    big = tmp_path / "big.toml"
    big.write_bytes(b"#" * (2 << 20))
    with pytest.raises(EdgeqError, match="too large"):
        load_target(str(big))


def test_overrides_change_a_field_and_are_checked(tmp_path):
    t = load_target("ethos-u55-128", {"ethos_u.macs_per_cycle": 256})
    assert t.params["macs_per_cycle"] == 256 and t.overrides == {"ethos_u.macs_per_cycle": 256}
    with pytest.raises(EdgeqError, match="no such key"):
        load_target("ethos-u55-128", {"ethos_u.mac_per_cycle": 256})
    with pytest.raises(EdgeqError, match="macs_per_cycle"):
        load_target("ethos-u55-128", {"ethos_u.macs_per_cycle": -1})
