"""Hardware described as data: NPUs, microcontroller boards and energy tables, as TOML files.

The built-in files live beside this module (they ship inside the wheel; ``edgeq targets`` lists
them); a user passes a path to their own (``--npu my_npu.toml``). Every file is checked on load
against the schema below and the architecture's own section (``edgeq.backends.npu_sim``): an
unknown key, a wrong type, a missing field or a value out of range is one ``EdgeqError`` naming
the file, the table and the key. Units are in the key names; each built-in value says its source
in a comment beside it. The format is in ``docs/npu_sim.md``.

A target file::

    [target]       name, kind ("npu" | "mcu"), architecture, description, clock_hz, energy
    [memory.NAME]  one table per memory level: kind ("sram" | "dram" | "flash"), size_bytes,
                   bytes_per_cycle (at the core clock), read/write_latency_cycles, burst_bytes
    [placement]    which memory holds weights and activations (Vela's memory modes)
    [ARCH]         the architecture's own parameters (``[ethos_u]``, ``[systolic]``, ``[mcu]``)

An energy table (``energy/*.toml``, or a path relative to the target file)::

    [energy]       name, source, mac_int8_pj, add_int32_pj, dram_pj_per_64bit,
                   flash_pj_per_64bit, and [[energy.sram]] entries (size_bytes, pj_per_64bit)
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from typing import Any

from edgeq.ir.graph import EdgeqError
from edgeq.targets.arch import ARCH_SCHEMAS
from edgeq.targets.schema import Field, check

HERE = os.path.dirname(os.path.abspath(__file__))
ENERGY_DIR = os.path.join(HERE, "energy")
MAX_FILE_BYTES = 1 << 20  # a target file is a few hundred bytes: refuse anything huge

TARGET = {
    "name": Field("str", "the target's name"),
    "kind": Field("str", "npu or mcu", choices=("npu", "mcu")),
    "architecture": Field("str", "the cost model: ethos-u, systolic (npu) or cortex-m (mcu)",
                          choices=("ethos-u", "systolic", "cortex-m")),
    "description": Field("str", "one line for listings", default=""),
    "clock_hz": Field("float", "core clock in Hz", minimum=1e3, maximum=1e11),
    "energy": Field("str", "an energy table: a built-in name or a path relative to this file",
                    default="horowitz-45nm"),
}
MEMORY = {
    "kind": Field("str", "sram, dram or flash", choices=("sram", "dram", "flash")),
    "size_bytes": Field("int", "capacity in bytes", minimum=1),
    "bytes_per_cycle": Field("float", "bandwidth in bytes per core clock cycle", minimum=1e-6,
                             default=8.0),
    "read_latency_cycles": Field("float", "latency of a read burst in core cycles", minimum=0,
                                 default=0.0),
    "write_latency_cycles": Field("float", "latency of a write burst in core cycles",
                                  minimum=0, default=0.0),
    "burst_bytes": Field("int", "burst length in bytes", minimum=1, default=32),
    "wait_states": Field("int", "flash wait states at clock_hz (MCU flash)", minimum=0,
                         default=0),
}
PLACEMENT = {
    "weights": Field("str", "the memory holding weights and biases"),
    "activations": Field("str", "the memory holding the activation arena"),
}
ENERGY_SRAM = {
    "size_bytes": Field("int", "SRAM array size this entry is for", minimum=1),
    "pj_per_64bit": Field("float", "energy of one 64-bit access in pJ", minimum=0),
}
ENERGY = {
    "name": Field("str", "the table's name"),
    "source": Field("str", "where the numbers come from"),
    "mac_int8_pj": Field("float", "one 8-bit multiply + 32-bit accumulate, pJ", minimum=0),
    "add_int32_pj": Field("float", "one 32-bit integer add (element-wise ops), pJ", minimum=0),
    "dram_pj_per_64bit": Field("float", "one 64-bit DRAM access, pJ", minimum=0),
    "flash_pj_per_64bit": Field("float", "one 64-bit read of off-chip flash, pJ", minimum=0),
    "sram": Field("table", "not a table: use [[energy.sram]] entries"),  # replaced below
}


@dataclass(frozen=True)
class Memory:
    name: str
    kind: str
    size_bytes: int
    bytes_per_cycle: float
    read_latency_cycles: float
    write_latency_cycles: float
    burst_bytes: int
    wait_states: int


@dataclass(frozen=True)
class EnergyTable:
    name: str
    source: str
    mac_int8_pj: float
    add_int32_pj: float
    dram_pj_per_64bit: float
    flash_pj_per_64bit: float
    sram: tuple[tuple[int, float], ...]  # (size_bytes, pJ per 64 bit), ascending size
    path: str = ""

    def pj_per_byte(self, memory: Memory) -> float:
        """Access energy of one byte of ``memory``: DRAM and flash from their rows, SRAM from
        the smallest entry at least as large as the memory (the largest entry beyond it)."""
        if memory.kind == "dram":
            return self.dram_pj_per_64bit / 8
        if memory.kind == "flash":
            return self.flash_pj_per_64bit / 8
        for size, pj in self.sram:
            if memory.size_bytes <= size:
                return pj / 8
        return self.sram[-1][1] / 8


@dataclass(frozen=True)
class Target:
    name: str
    kind: str
    architecture: str
    description: str
    clock_hz: float
    memories: dict[str, Memory]
    placement: dict[str, str]
    params: dict[str, Any]        # the architecture's own section, checked by its schema
    energy: EnergyTable
    path: str = ""
    overrides: dict[str, Any] = field(default_factory=dict)  # what a sweep changed

    def memory(self, role: str) -> Memory:
        """The memory holding ``role`` ("weights" or "activations")."""
        return self.memories[self.placement[role]]


def _read_toml(path: str, what: str) -> dict[str, Any]:
    try:
        size = os.stat(path).st_size
    except OSError as e:
        raise EdgeqError(f"{path}: cannot read {what} ({e.strerror})") from None
    if not os.path.isfile(path):
        raise EdgeqError(f"{path}: {what} is not a regular file")
    if size > MAX_FILE_BYTES:
        raise EdgeqError(f"{path}: {size} bytes is too large for {what} "
                         f"(limit {MAX_FILE_BYTES})")
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise EdgeqError(f"{path}: not valid TOML ({e})") from None
    except (OSError, UnicodeDecodeError) as e:
        raise EdgeqError(f"{path}: cannot read {what} ({e})") from None


def builtin_targets() -> dict[str, str]:
    """Built-in target name -> file."""
    return {f[:-5]: os.path.join(HERE, f) for f in sorted(os.listdir(HERE))
            if f.endswith(".toml")}


def _resolve(spec: str, builtins: dict[str, str], what: str, base: str = "") -> str:
    if spec in builtins:
        return builtins[spec]
    if spec.endswith(".toml") or os.sep in spec:
        path = spec if os.path.isabs(spec) or not base else os.path.join(base, spec)
        if not os.path.exists(path):
            raise EdgeqError(f"{spec}: no such {what} file")
        return path
    raise EdgeqError(f"unknown {what} {spec!r}; built-in: {', '.join(builtins)}, or give a "
                     f".toml file")


def load_energy(spec: str, base: str = "") -> EnergyTable:
    """A built-in energy table by name (``horowitz-45nm``) or a ``.toml`` path."""
    builtins = {f[:-5]: os.path.join(ENERGY_DIR, f) for f in sorted(os.listdir(ENERGY_DIR))
                if f.endswith(".toml")}
    path = _resolve(spec, builtins, "energy table", base)
    doc = _read_toml(path, "an energy table")
    where = os.path.basename(path)
    if set(doc) != {"energy"}:
        raise EdgeqError(f"{where}: expected one [energy] table, got "
                         f"{', '.join(sorted(doc)) or 'nothing'}")
    body = dict(doc["energy"]) if isinstance(doc["energy"], dict) else doc["energy"]
    entries = body.pop("sram", None) if isinstance(body, dict) else None
    fields = {k: f for k, f in ENERGY.items() if k != "sram"}
    e = check(body, fields, f"{where} [energy]")
    if not isinstance(entries, list) or not entries:
        raise EdgeqError(f"{where} [energy] sram: missing (at least one [[energy.sram]] entry "
                         f"with size_bytes and pj_per_64bit)")
    sram = sorted((check(x, ENERGY_SRAM, f"{where} [[energy.sram]] #{i + 1}")
                   for i, x in enumerate(entries)), key=lambda x: x["size_bytes"])
    return EnergyTable(sram=tuple((x["size_bytes"], x["pj_per_64bit"]) for x in sram),
                       path=path, **e)


def load_target(spec: str, overrides: dict[str, Any] | None = None) -> Target:
    """A built-in target by name (``ethos-u55-128``) or a ``.toml`` path, checked. ``overrides``
    (``{"ethos_u.macs_per_cycle": 256, "memory.sram.size_bytes": 262144}``) change fields before
    the check (``edgeq simulate --sweep``)."""
    path = _resolve(spec, builtin_targets(), "target")
    doc = _read_toml(path, "a target file")
    where = os.path.basename(path)
    for key, value in (overrides or {}).items():
        _override(doc, key, value, where)
    known = {"target", "memory", "placement"} | set(ARCH_SCHEMAS)
    unknown = sorted(set(doc) - known)
    if unknown:
        raise EdgeqError(f"{where}: unknown table [{unknown[0]}] (known: "
                         f"{', '.join(sorted(known))})")
    t = check(doc.get("target"), TARGET, f"{where} [target]") if "target" in doc else None
    if t is None:
        raise EdgeqError(f"{where}: missing [target] table")
    mems = doc.get("memory")
    if not isinstance(mems, dict) or not mems:
        raise EdgeqError(f"{where}: missing [memory.NAME] tables (at least one memory)")
    memories = {name: Memory(name=name, **check(m, MEMORY, f"{where} [memory.{name}]"))
                for name, m in mems.items()}
    placement = check(doc.get("placement", {}), PLACEMENT, f"{where} [placement]")
    for role, mem in placement.items():
        if mem not in memories:
            raise EdgeqError(f"{where} [placement] {role}: names memory {mem!r}, not one of "
                             f"{', '.join(memories)}")
    section = t["architecture"].replace("-", "_")
    schema = ARCH_SCHEMAS.get(section)
    if schema is None or section not in doc:
        raise EdgeqError(f"{where}: architecture {t['architecture']!r} needs a [{section}] "
                         f"table")
    others = sorted(set(doc) & set(ARCH_SCHEMAS) - {section})
    if others:
        raise EdgeqError(f"{where}: table [{others[0]}] does not belong to architecture "
                         f"{t['architecture']!r}")
    params = check(doc[section], schema, f"{where} [{section}]")
    energy = load_energy(t.pop("energy"), os.path.dirname(path))
    return Target(memories=memories, placement=placement, params=params, energy=energy,
                  path=path, overrides=dict(overrides or {}), **t)


def _override(doc: dict[str, Any], key: str, value: Any, where: str) -> None:
    parts = key.split(".")
    node = doc
    for p in parts[:-1]:
        if not isinstance(node.get(p), dict):
            raise EdgeqError(f"{where}: cannot set {key}: no table {p!r}")
        node = node[p]
    if parts[-1] not in node:
        raise EdgeqError(f"{where}: cannot set {key}: the file has no such key")
    node[parts[-1]] = value
