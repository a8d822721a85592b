"""C backend: a self-contained C99 library for microcontrollers, built and run three ways.

``edgeq export --target c`` writes ``c/``: ``model.h`` / ``model.c`` (weights as ``const``
arrays, one static arena sized by the memory planner, the patch-based schedule of the leading
stage when it lowers the peak), ``edgeq_rt.h`` (the int8 kernels, int16 in requantization and
data movement; no malloc, no float), and to run it: ``main.c`` (a file-in/file-out runner),
``startup_cm.c`` and ``mps2.ld`` (QEMU MPS2 boards). Targets:

- ``c``: built with the host ``gcc`` and run (bit-exact with the integer interpreter, tested);
- ``cortex-m4`` / ``cortex-m7``: built with ``arm-none-eabi-gcc`` and run on QEMU's
  ``mps2-an386`` / ``mps2-an500`` boards with semihosting file I/O (bit-exact, tested), sized
  with ``arm-none-eabi-size``;
- ``aarch64``: built with ``aarch64-linux-gnu-gcc`` (a phone's CPU) and run under
  ``qemu-aarch64`` user mode (bit-exact, tested).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from edgeq.backends.base import LATENCY_REPEATS, Artifact, Backend, Checks, Feeds, Refusal
from edgeq.backends.c.lower import generate, patchable, supports
from edgeq.ops.cost import node_macs
from edgeq.ir.graph import EdgeqError, Graph
from edgeq.quant.pipeline import dequantize_array, quantize_feeds
from edgeq.schedule.plan import plan_schedule
from edgeq.targets import load_target

HERE = os.path.dirname(os.path.abspath(__file__))
RUNTIME_FILES = ("edgeq_rt.h", "main.c", "startup_cm.c", "mps2.ld", "CMakeLists.txt",
                 "arm-none-eabi.cmake")
HOST_FLAGS = ["-std=c99", "-O2", "-Wall", "-Wextra", "-Wno-unused-function", "-Werror",
              "-D_POSIX_C_SOURCE=199309L", "-DEDGEQ_HOST_TIMING"]
BOARDS = {"cortex-m4": ("mps2-an386", "cortex-m4"), "cortex-m7": ("mps2-an500", "cortex-m7")}
BOARD_TARGETS = {"mps2-an386": "mps2-an386", "mps2-an500": "mps2-an500"}  # edgeq/targets/
ICOUNT_SHIFT = 10  # QEMU -icount: 2**10 ns of virtual time per instruction
ARM_FLAGS = ["-std=c99", "-O2", "-mthumb", "-mfloat-abi=soft", "-ffunction-sections",
             "-fdata-sections", "-Wall", "-Wno-unused-function"]
FLOAT_HELPERS = ("__aeabi_f", "__aeabi_d", "__aeabi_i2f", "__aeabi_i2d", "__aeabi_l2f",
                 "__aeabi_l2d", "__aeabi_ui2", "__aeabi_ul2")


def _tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise EdgeqError(f"{name} not found: install the Debian package {package} "
                         f"(`make` does this via apt-get)")
    return path


def _check(cmd: list[str], what: str, cwd: str, timeout: float = 600) -> str:
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise EdgeqError(f"{what} failed (exit {r.returncode}): "
                         f"{(r.stderr or r.stdout).strip()[-2000:]}")
    return r.stdout


def _compile_once(cmd: list[str], out: str, what: str) -> None:
    """Run ``cmd -o out`` unless ``out`` exists (build folders are keyed by the sources' hash);
    written under a temporary name, so a concurrent or failed build never leaves half a file."""
    if not os.path.exists(out):
        tmp = out + f".{os.getpid()}"
        _check(cmd + ["-o", tmp], what=what, cwd=os.path.dirname(out))
        os.replace(tmp, out)


def parse_serial(device: str) -> tuple[str, int]:
    """``serial:PORT[,BAUD]`` -> (port or pyserial URL, baud rate; 115200 by default)."""
    kind, _, rest = device.partition(":")
    if kind != "serial" or not rest:
        raise EdgeqError(f"--device {device!r}: expected serial:PORT[,BAUD], e.g. "
                         f"serial:/dev/ttyACM0,115200 or serial:socket://127.0.0.1:4444")
    port, _, baud = rest.rpartition(",") if rest.rsplit(",", 1)[-1].isdigit() else (rest, "",
                                                                                   "115200")
    return port, int(baud)


def _profile_flags(profile: tuple[int, int] | None) -> tuple[list[str], str]:
    """Compiler flags and executable-name suffix of a profiling build (runs, warmup)."""
    if profile is None:
        return [], ""
    runs, warmup = profile
    if runs < 1 or warmup < 0:
        raise EdgeqError(f"--runs {runs} / --warmup {warmup}: need runs >= 1 and warmup >= 0")
    return ["-DEDGEQ_PROFILE", f"-DEDGEQ_PROFILE_RUNS={runs}",
            f"-DEDGEQ_PROFILE_WARMUP={warmup}"], f"-prof{runs}w{warmup}"


def _parse_profile(out: str, runs: int, path: str, unit: str, source: str, per_unit: float
                   ) -> dict[str, Any]:
    """The runner's ``edgeq_profile`` lines -> counts per run and layer (in ``unit``)."""
    with open(os.path.join(path, "model.c")) as f:
        text = f.read()
    start = text.index("edgeq_layer_names[EDGEQ_NUM_LAYERS] = {")
    names = [ln.strip().rstrip(",") for ln in text[start:text.index("};", start)]
             .splitlines()[1:]]
    layers = [bytes(n[1:-1], "ascii").decode("unicode_escape").encode("latin-1").decode()
              for n in names]
    counts = [[0] * len(layers) for _ in range(runs)]
    totals = [0] * runs
    for line in out.splitlines():
        p = line.split()
        if len(p) == 4 and p[0] == "edgeq_profile":
            counts[int(p[1])][int(p[2])] = round(int(p[3]) / per_unit)
        elif len(p) == 3 and p[0] == "edgeq_profile_run":
            totals[int(p[1])] = round(int(p[2]) / per_unit)
    if not any(totals):
        raise EdgeqError(f"the profiling build printed no counts: {out.strip()[-300:]}")
    return {"layers": layers, "unit": unit, "source": source, "runs": counts,
            "totals": totals}


@dataclass(frozen=True)
class CArtifact(Artifact):
    memory: dict[str, Any] = field(default_factory=dict)  # the memory plan (docs/report.md)


class CBackend(Backend):
    name = "c"
    artifact = "c"
    int16_activations = "outputs"  # int16 only where a lowering says int16=True

    def __init__(self, allow_fallback: bool = False, max_overhead: float = 0.20,
                 patch: bool = True, **options: Any):
        super().__init__(allow_fallback, **options)
        self.max_overhead = max_overhead
        self.patch = patch

    def supports(self, graph: Graph) -> list[Refusal]:
        return supports(graph)

    def lower(self, graph: Graph, out_dir: str) -> CArtifact:
        problems = supports(graph)
        if problems:
            raise EdgeqError("C backend: " + "; ".join(map(str, problems)))
        sched = plan_schedule(graph, self.max_overhead, self.patch and patchable(graph))
        order, pp, plan = sched.execution_order, sched.patch, sched.plan
        header, source = generate(graph, plan, pp, order)
        path = os.path.join(out_dir, self.artifact)
        os.makedirs(path, exist_ok=True)
        with open(os.path.join(path, "model.h"), "w") as f:
            f.write(header)
        with open(os.path.join(path, "model.c"), "w") as f:
            f.write(source)
        for name in RUNTIME_FILES:
            shutil.copyfile(os.path.join(HERE, name), os.path.join(path, name))
        macs = sum(node_macs(n) for n in graph.nodes)
        memory = {
            "arena_bytes": plan.arena_bytes, "peak_live_bytes": plan.peak_live_bytes,
            "arena_proven_smallest": plan.optimal,
            "layer_by_layer_arena_bytes": sched.layer_by_layer.arena_bytes,
            "macs": macs + (pp.patch_macs - pp.stage_macs if pp else 0),
            "model_macs": macs,
            "patch_plan": None if pp is None else {
                "split_layer": order[pp.split].name, "grid": pp.n,
                "mac_overhead_percent": round(100 * pp.overhead, 2)},
        }
        return CArtifact(path, graph, op_counts=dict(sorted(Counter(n.op for n in graph.nodes)
                                                            .items())), memory=memory)

    def open(self, out_dir: str) -> CArtifact:
        """The exported folder (its memory plan is in the export report, not re-planned)."""
        art = super().open(out_dir)
        return CArtifact(art.path, art.graph)

    def describe(self, artifact: CArtifact, checks: Checks  # type: ignore[override]
                 ) -> dict[str, Any]:
        return {"memory": dict(artifact.memory)}

    # --- building and running --------------------------------------------------------------
    def _build_dir(self, path: str | os.PathLike) -> str:
        digest = hashlib.sha256()
        for name in sorted(os.listdir(path)):
            if not os.path.isfile(os.path.join(path, name)):
                continue  # e.g. a CMake build folder made inside c/
            with open(os.path.join(path, name), "rb") as f:
                digest.update(name.encode() + f.read())
        d = os.path.join(tempfile.gettempdir(), f"edgeq-c-{digest.hexdigest()[:16]}")
        os.makedirs(d, exist_ok=True)
        return d

    def build(self, path: str | os.PathLike, profile: tuple[int, int] | None = None) -> str:
        """Compile ``path`` (the exported ``c/`` folder) for the host; returns the executable.
        ``profile`` = (runs, warmup): with the per-layer hooks (``-DEDGEQ_PROFILE``)."""
        path = os.path.abspath(path)
        gcc = _tool("gcc", "gcc")
        d = self._build_dir(path)
        flags, suffix = _profile_flags(profile)
        exe = os.path.join(d, "model-host" + suffix)
        _compile_once([gcc, *HOST_FLAGS, *flags, "-I", path, os.path.join(path, "main.c"),
                       os.path.join(path, "model.c")], exe, "host gcc build")
        return exe

    def profile(self, artifact: Artifact, feeds: Feeds, runs: int = 10, warmup: int = 2
                ) -> dict[str, Any]:
        """Per-layer counts of ``runs`` inferences on ``feeds`` (after ``warmup``), from the
        hooks compiled in with ``-DEDGEQ_PROFILE``: ``{"layers": names in execution order,
        "unit", "source", "runs": [[count per layer] per run], "totals": [whole run]}``. Host:
        this thread's CPU time in ns (``clock_gettime(CLOCK_THREAD_CPUTIME_ID)``)."""
        exe = self.build(os.path.abspath(artifact.path), profile=(runs, warmup))
        q = quantize_feeds(artifact.graph, feeds)
        blob = b"".join(np.ascontiguousarray(q[v.name]).tobytes() for v in artifact.graph.inputs)
        _, out = self._execute(exe, blob, icount=True)
        raw = _parse_profile(out, runs, artifact.path, *self._profile_unit())
        raw["method"] = (f"hooks compiled in with -DEDGEQ_PROFILE read the profile clock "
                         f"({raw['unit']}, {raw['source']}) around each layer's call and the "
                         f"whole inference, in the same run")
        return raw

    def _profile_unit(self) -> tuple[str, str, float]:
        """(unit, source, counts per unit) of the profile clock."""
        return "cpu_ns", "measured", 1.0

    def session(self, artifact: Artifact, threads: int = 0) -> str:
        """The built executable."""
        return self.build(artifact.path)

    def _command(self, exe: str, extra: list[str], icount: bool = False
                 ) -> tuple[list[str], str]:
        """The command that runs ``exe`` on input.bin into output.bin, and what to call it."""
        return [exe, "input.bin", "output.bin", *extra], "C model run"

    def _execute(self, exe: str, blob: bytes, extra: list[str] | None = None,
                 icount: bool = False) -> tuple[bytes, str]:
        """(output.bin, stdout) of one run in a fresh folder holding input.bin."""
        with tempfile.TemporaryDirectory(prefix="edgeq-run-") as d:
            with open(os.path.join(d, "input.bin"), "wb") as f:
                f.write(blob)
            out = _check(*self._command(exe, extra or [], icount), cwd=d)
            with open(os.path.join(d, "output.bin"), "rb") as f:
                return f.read(), out

    def run_many(self, artifact: Artifact, feeds_list: Sequence[Feeds], raw: bool = False,
                 session=None) -> list[Feeds]:
        """Every sample in one process (one emulator boot for the boards)."""
        if not feeds_list:
            return []
        graph = artifact.graph
        exe = session or self.session(artifact)
        blob = b"".join(np.ascontiguousarray(quantize_feeds(graph, feeds)[v.name]).tobytes()
                        for feeds in feeds_list for v in graph.inputs)
        data, _ = self._execute(exe, blob)
        sizes = [v.type.nbytes for v in graph.outputs]
        if len(data) != sum(sizes) * len(feeds_list):
            raise EdgeqError(f"C model wrote {len(data)} bytes, expected "
                             f"{sum(sizes) * len(feeds_list)}")
        res, pos = [], 0
        for _ in feeds_list:
            one = {}
            for v, n in zip(graph.outputs, sizes):
                a = np.frombuffer(data[pos:pos + n], v.dtype.numpy).reshape(v.shape)
                pos += n
                one[v.name] = a if raw else dequantize_array(a, v.qparams)
            res.append(one)
        return res

    def run(self, artifact: Artifact, feeds: Feeds, raw: bool = False, session=None) -> Feeds:
        return self.run_many(artifact, [feeds], raw, session)[0]

    def latency_ms(self, artifact: Artifact, feeds: Feeds) -> float | None:
        """Best of LATENCY_REPEATS timed runs inside the process (no process start-up
        counted)."""
        exe = self.session(artifact)
        q = quantize_feeds(artifact.graph, feeds)
        blob = b"".join(np.ascontiguousarray(q[v.name]).tobytes() for v in artifact.graph.inputs)
        _, out = self._execute(exe, blob, [str(LATENCY_REPEATS)])
        ns = next(float(line.split()[1]) for line in out.splitlines()
                  if line.startswith("edgeq_run_ns"))
        return round(ns / 1e6, 3)


class CortexMBackend(CBackend):
    """The C library on a Cortex-M board emulated by QEMU (MPS2), via semihosting."""

    def __init__(self, cpu: str, allow_fallback: bool = False, **kw):
        super().__init__(allow_fallback, **kw)
        self.name = cpu
        self.board, self.cpu = BOARDS[cpu]

    def build(self, path: str | os.PathLike, profile: tuple[int, int] | None = None) -> str:
        path = os.path.abspath(path)
        gcc = _tool("arm-none-eabi-gcc", "gcc-arm-none-eabi (and libnewlib-arm-none-eabi)")
        d = self._build_dir(path)
        flags, suffix = _profile_flags(profile)
        elf = os.path.join(d, f"model-{self.cpu}{suffix}.elf")
        _compile_once([gcc, f"-mcpu={self.cpu}", *ARM_FLAGS, *flags, "-specs=rdimon.specs",
                       "-nostartfiles", "-T", os.path.join(path, "mps2.ld"), "-I", path,
                       os.path.join(path, "startup_cm.c"), os.path.join(path, "main.c"),
                       os.path.join(path, "model.c"), "-Wl,--gc-sections"], elf,
                      f"arm-none-eabi-gcc build for {self.cpu}")
        return elf

    def _command(self, exe: str, extra: list[str], icount: bool = False
                 ) -> tuple[list[str], str]:
        # the start-up code opens input.bin / output.bin through semihosting (QEMU's cwd)
        qemu = _tool("qemu-system-arm", "qemu-system-arm")
        timing = ["-icount", f"shift={ICOUNT_SHIFT},sleep=off"] if icount else []
        return [qemu, "-machine", self.board, *timing, "-nographic", "-monitor", "none",
                "-serial", "none", "-semihosting-config", "enable=on,target=native", "-kernel",
                exe], f"QEMU {self.board} run"

    def _profile_unit(self) -> tuple[str, str, float]:
        """QEMU with ``-icount shift=S`` advances its virtual clock 2**S ns per instruction, and
        SysTick counts the board's clock: ``2**S * clock_hz / 1e9`` ticks per instruction
        (MPS2: 25 MHz, S = 10: 25.6), so counts divided by that and rounded are exact
        instruction counts (the error of two floored tick readings is under 1/25.6)."""
        hz = load_target(BOARD_TARGETS[self.board]).clock_hz
        return "instructions", "instructions", (2 ** ICOUNT_SHIFT) * hz / 1e9

    def latency_ms(self, artifact: Artifact, feeds: Feeds) -> None:
        return None  # QEMU is not cycle-accurate: no latency figure from an emulator

    def firmware(self, artifact: Artifact, feeds: Feeds, runs: int, warmup: int,
                 out: str) -> str:
        """The device profiling firmware for this board: the sample compiled in, the profile
        hooks on, the counts written to UART0 in the line protocol, no semihosting. Copied to
        ``out`` (to flash, or to run under QEMU with ``-serial``); returns ``out``."""
        path = os.path.abspath(artifact.path)
        gcc = _tool("arm-none-eabi-gcc", "gcc-arm-none-eabi (and libnewlib-arm-none-eabi)")
        q = quantize_feeds(artifact.graph, feeds)
        blob = b"".join(np.ascontiguousarray(q[v.name]).tobytes() for v in artifact.graph.inputs)
        flags, suffix = _profile_flags((runs, warmup))
        d = os.path.join(self._build_dir(path),
                         f"device-{hashlib.sha256(blob).hexdigest()[:12]}{suffix}")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "sample.h"), "w") as f:
            f.write("static const int8_t edgeq_sample[] = {"
                    + ",".join(str(b) for b in np.frombuffer(blob, np.int8)) + "};\n")
        elf = os.path.join(d, f"firmware-{self.cpu}.elf")
        _compile_once([gcc, f"-mcpu={self.cpu}", *ARM_FLAGS, *flags, "-DEDGEQ_SAMPLE",
                       "-DEDGEQ_PROFILE_UART", "-DEDGEQ_NO_SEMIHOSTING", "-specs=rdimon.specs",
                       "-nostartfiles", "-T", os.path.join(path, "mps2.ld"), "-I", path,
                       "-I", d, os.path.join(path, "startup_cm.c"),
                       os.path.join(path, "main.c"), os.path.join(path, "model.c"),
                       "-Wl,--gc-sections"], elf, f"arm-none-eabi-gcc firmware for {self.cpu}")
        shutil.copyfile(elf, out)
        return out

    def read_device(self, artifact: Artifact, device: str, runs: int,
                    timeout_s: float = 300.0) -> dict[str, Any]:
        """Per-layer counts streamed by the firmware (``firmware``) over a serial port:
        ``device`` is ``serial:PORT[,BAUD]`` (``/dev/ttyACM0,115200``, or a pyserial URL such as
        ``socket://127.0.0.1:4444`` for QEMU's ``-serial tcp:...``)."""
        port, baud = parse_serial(device)
        try:
            import serial  # pyserial: only the device path needs it
        except ImportError:
            raise EdgeqError("--device serial needs pyserial (pip install 'edgeq[device]')") \
                from None
        lines: list[str] = []
        deadline = time.monotonic() + timeout_s
        try:
            with serial.serial_for_url(port, baudrate=baud, timeout=1) as link:
                buf = b""
                while time.monotonic() < deadline:
                    buf += link.read(4096)
                    *done, buf = buf.split(b"\n")
                    lines += [ln.decode("ascii", "replace").strip() for ln in done]
                    if "edgeq_profile_end" in lines:
                        break
        except (serial.SerialException, OSError, ValueError) as e:
            raise EdgeqError(f"--device {device}: cannot read the serial port ({e})") from None
        if "edgeq_profile_end" not in lines:
            raise EdgeqError(f"--device {device}: no complete profile within {timeout_s:g} s "
                             f"(got {len(lines)} lines); is the profiling firmware running?")
        text = "\n".join(lines[max(i for i, ln in enumerate(lines)
                                    if ln.startswith("edgeq_profile_begin")):])
        unit, source, per = self._profile_unit()
        return _parse_profile(text, runs, os.fspath(artifact.path), unit, source + " (serial)",
                              per)

    def describe(self, artifact: CArtifact, checks: Checks  # type: ignore[override]
                 ) -> dict[str, Any]:
        memory = dict(artifact.memory, arm_none_eabi_size=self.size(artifact.path))
        return {"memory": memory}

    def size(self, path: str | os.PathLike) -> dict[str, Any]:
        """``arm-none-eabi-size -A`` of the compiled model library (model.c alone): code,
        constants (weights, tables) and the zero-initialized arena."""
        gcc = _tool("arm-none-eabi-gcc", "gcc-arm-none-eabi")
        size = _tool("arm-none-eabi-size", "gcc-arm-none-eabi")
        nm = _tool("arm-none-eabi-nm", "gcc-arm-none-eabi")
        path = os.path.abspath(path)
        d = self._build_dir(path)
        obj = os.path.join(d, f"model-{self.cpu}.o")
        _compile_once([gcc, f"-mcpu={self.cpu}", *ARM_FLAGS, "-I", path, "-c",
                       os.path.join(path, "model.c")], obj, "arm-none-eabi-gcc -c")
        res = {"text": 0, "rodata": 0, "data": 0, "bss": 0}
        for line in _check([size, "-A", obj], cwd=d, what="arm-none-eabi-size").splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0].startswith(".") and parts[1].isdigit():
                kind = parts[0][1:].split(".")[0]
                if kind in res:
                    res[kind] += int(parts[1])
        undefined = _check([nm, "-u", obj], cwd=d, what="arm-none-eabi-nm").split()
        res["float_helpers"] = sorted(s for s in undefined if s.startswith(FLOAT_HELPERS))
        res["flash_bytes"] = res["text"] + res["rodata"] + res["data"]
        return res


class Aarch64Backend(CBackend):
    """The C library cross-compiled for 64-bit Arm Linux, the CPU of a phone
    (``aarch64-linux-gnu-gcc -O2``, statically linked), run under ``qemu-aarch64`` user mode:
    bit-exact outputs, and per-layer counts of the emulated process's CPU time (relative
    figures: an emulator's time is not the phone's, so no latency is reported)."""

    name = "aarch64"

    def build(self, path: str | os.PathLike, profile: tuple[int, int] | None = None) -> str:
        path = os.path.abspath(path)
        gcc = _tool("aarch64-linux-gnu-gcc", "gcc-aarch64-linux-gnu (and libc6-dev-arm64-cross)")
        d = self._build_dir(path)
        flags, suffix = _profile_flags(profile)
        exe = os.path.join(d, f"model-aarch64{suffix}")
        _compile_once([gcc, *HOST_FLAGS, *flags, "-static", "-I", path,
                       os.path.join(path, "main.c"), os.path.join(path, "model.c")], exe,
                      "aarch64-linux-gnu-gcc build")
        return exe

    def _command(self, exe: str, extra: list[str], icount: bool = False
                 ) -> tuple[list[str], str]:
        qemu = _tool("qemu-aarch64", "qemu-user")
        return [qemu, exe, "input.bin", "output.bin", *extra], "qemu-aarch64 run"

    def latency_ms(self, artifact: Artifact, feeds: Feeds) -> None:
        return None  # emulated: no phone latency

    def _profile_unit(self) -> tuple[str, str, float]:
        return "cpu_ns", "emulated", 1.0


__all__ = ["Aarch64Backend", "CArtifact", "CBackend", "CortexMBackend"]
