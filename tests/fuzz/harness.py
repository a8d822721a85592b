"""Shared driver for the coverage-guided fuzzers in this folder (atheris / libFuzzer).

Each fuzzer module defines ``one_input(data: bytes) -> None`` (feed one input to one loader) and
``seeds() -> dict[str, bytes]`` (its seed corpus, built from the zoo and small graphs), and ends
with ``if __name__ == "__main__": harness.main(one_input, seeds)``. Run one as

    python -m tests.fuzz.fuzz_onnx --seconds 600

(``make fuzz FUZZ_S=600`` runs them all). An input fails the run when it raises anything other
than ``EdgeqError`` (the one error a user sees), takes over ``--timeout`` seconds, or makes the
process allocate beyond ``--mem-mb`` (an address-space limit, so a size a file declares and
edgeq trusts becomes a ``MemoryError``, not a swap storm). The crashing input is written to
``--artifacts`` (reproduce with ``python -m tests.fuzz.fuzz_onnx --repro FILE``). At the end
libFuzzer prints ``Done N runs in S second(s)``.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import time
import traceback
from typing import Callable

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def scratch(name: str) -> str:
    """A scratch folder for one fuzz process (``build/fuzz/scratch/NAME-PID``): libFuzzer ends
    the process through C ``exit()``, so no clean-up runs; folders of processes that are gone
    are removed here instead."""
    base = os.path.join(ROOT, "build", "fuzz", "scratch")
    os.makedirs(base, exist_ok=True)
    for entry in os.listdir(base):
        pid = entry.rsplit("-", 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid():
            try:
                os.kill(int(pid), 0)
            except ProcessLookupError:
                shutil.rmtree(os.path.join(base, entry), ignore_errors=True)
            except PermissionError:
                pass
    path = os.path.join(base, f"{name}-{os.getpid()}")
    os.makedirs(path, exist_ok=True)
    return path


class Stats:
    executions = 0


def _limit_memory(mem_mb: int) -> None:
    """Cap the address space at what the process already maps plus ``mem_mb``."""
    with open("/proc/self/status") as f:
        vm = next(int(line.split()[1]) for line in f if line.startswith("VmSize:"))  # kB
    cap = vm * 1024 + mem_mb * (1 << 20)
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))


def guarded(one_input: Callable[[bytes], None]) -> Callable[[bytes], None]:
    """Count executions; ``EdgeqError`` is a clean refusal, anything else propagates."""
    from edgeq.ir.graph import EdgeqError

    def run(data: bytes) -> None:
        Stats.executions += 1
        try:
            one_input(data)
        except EdgeqError:
            pass
    return run


def repro(one_input: Callable[[bytes], None], path: str) -> int:
    from edgeq.ir.graph import EdgeqError
    with open(path, "rb") as f:
        data = f.read()
    t = time.perf_counter()
    try:
        one_input(data)
        print(f"{path}: accepted in {time.perf_counter() - t:.2f} s")
    except EdgeqError as e:
        print(f"{path}: edgeq: error: {e} ({time.perf_counter() - t:.2f} s)")
    except BaseException:
        traceback.print_exc()
        return 1
    return 0


def main(one_input: Callable[[bytes], None], seeds: Callable[[], dict[str, bytes]],
         argv: list[str] | None = None,
         custom_mutator: Callable[[bytes, int, int], bytes] | None = None) -> int:
    """Fuzz ``one_input`` from ``seeds()``. ``custom_mutator(data, max_size, seed)``, when
    given, replaces libFuzzer's byte mutation (atheris' ``custom_mutator``): a structure-aware
    mutator keeps containers such as zip archives valid so inputs reach the parser behind
    them."""
    name = os.path.splitext(os.path.basename(sys.modules["__main__"].__file__ or "fuzz"))[0]
    p = argparse.ArgumentParser(prog=f"python -m tests.fuzz.{name}")
    p.add_argument("--seconds", type=int, default=30, help="total fuzzing time")
    p.add_argument("--timeout", type=int, default=10, help="seconds allowed per input")
    p.add_argument("--mem-mb", type=int, default=2048,
                   help="address space allowed beyond what the process maps at start")
    p.add_argument("--corpus", help="corpus folder, seeded from seeds() and kept between "
                   "runs (default: build/fuzz/NAME-corpus)")
    p.add_argument("--artifacts", default=os.path.join(ROOT, "build", "fuzz", name),
                   help="where crashing inputs are written")
    p.add_argument("--repro", metavar="FILE", help="run one input and print what happens")
    p.add_argument("--seed", type=int, default=1, help="libFuzzer's random seed")
    p.add_argument("--max-len", type=int, default=1 << 20, help="largest input libFuzzer makes")
    args, extra = p.parse_known_args(argv)
    if args.repro:
        return repro(one_input, args.repro)

    import atheris  # only the fuzz drivers need it

    corpus = args.corpus or os.path.join(ROOT, "build", "fuzz", f"{name}-corpus")
    os.makedirs(corpus, exist_ok=True)
    for fname, data in seeds().items():
        with open(os.path.join(corpus, fname), "wb") as f:
            f.write(data)
    os.makedirs(args.artifacts, exist_ok=True)
    _limit_memory(args.mem_mb)
    run = guarded(one_input)

    # libFuzzer ends the process through C exit() at -max_total_time: Python's atexit never
    # runs, so the summary is libFuzzer's own "Done N runs in S second(s)" line
    libfuzzer = [sys.argv[0], f"-max_total_time={args.seconds}", f"-timeout={args.timeout}",
                 f"-seed={args.seed}", f"-max_len={args.max_len}", "-rss_limit_mb=0",
                 f"-artifact_prefix={args.artifacts}{os.sep}", "-print_final_stats=1",
                 *extra, corpus]
    if custom_mutator is None:
        atheris.Setup(libfuzzer, run)
    else:
        atheris.Setup(libfuzzer, run, custom_mutator=custom_mutator)
    atheris.Fuzz()
    return 0
