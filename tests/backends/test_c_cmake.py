"""The exported C library as a CMake package: configured, built and installed with cmake for
the host and for Cortex-M4 (the shipped arm-none-eabi toolchain file), and a small program
linked against it through find_package; the host program runs and matches the interpreter."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
from onnx import helper

from edgeq import api
from tests.helpers import onnx_model, run_cli

pytestmark = pytest.mark.backend

APP = r"""
#include <stdio.h>
#include <string.h>
#include "model.h"
int main(int argc, char **argv) {
    FILE *f = fopen(argv[1], "rb");
    if (!f || fread(edgeq_input(0), 1, EDGEQ_INPUT0_BYTES, f) != EDGEQ_INPUT0_BYTES) return 2;
    fclose(f);
    edgeq_run();
    const EDGEQ_OUTPUT0_TYPE *y = edgeq_output(0);
    for (int i = 0; i < (int)(EDGEQ_OUTPUT0_BYTES / sizeof(EDGEQ_OUTPUT0_TYPE)); i++)
        printf("%d\n", (int)y[i]);
    return argc > 2;
}
"""
APP_CMAKE = """cmake_minimum_required(VERSION 3.16)
project(app C)
find_package(edgeq_model 1.0 REQUIRED)
add_executable(app app.c)
target_link_libraries(app PRIVATE edgeq::model)
"""


def cmake(*args, cwd):
    r = subprocess.run(["cmake", *map(str, args)], cwd=cwd, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r.stdout


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    if not shutil.which("cmake"):
        pytest.skip("cmake not installed (make installs it)")
    d = tmp_path_factory.mktemp("cmake")
    rng = np.random.default_rng(0)
    m = onnx_model([helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
                    helper.make_node("Relu", ["c"], ["r"], name="relu"),
                    helper.make_node("GlobalAveragePool", ["r"], ["p"], name="gap"),
                    helper.make_node("Flatten", ["p"], ["y"], name="flat")],
                   {"x": (1, 3, 8, 8)}, ["y"],
                   {"w": rng.normal(size=(6, 3, 3, 3)).astype(np.float32) * 0.3})
    (d / "m.onnx").write_bytes(m.SerializeToString())
    np.save(d / "cal.npy", rng.normal(size=(8, 3, 8, 8)).astype(np.float32))
    res = run_cli("export", d / "m.onnx", "--calib", d / "cal.npy", "-o", d / "out", "--target",
                  "c", "--eval-samples", "2")
    assert res.returncode == 0, res.stderr
    return d


def test_host_package_installs_and_a_program_links_and_matches(exported):
    d = exported
    cmake("-S", d / "out" / "c", "-B", d / "build", "-DCMAKE_BUILD_TYPE=Release", cwd=d)
    cmake("--build", d / "build", cwd=d)
    cmake("--install", d / "build", "--prefix", d / "prefix", cwd=d)
    assert (d / "prefix" / "include" / "edgeq_model" / "model.h").exists()
    (d / "app").mkdir()
    (d / "app" / "app.c").write_text(APP)
    (d / "app" / "CMakeLists.txt").write_text(APP_CMAKE)
    cmake("-S", d / "app", "-B", d / "app-build", f"-DCMAKE_PREFIX_PATH={d / 'prefix'}", cwd=d)
    cmake("--build", d / "app-build", cwd=d)
    g = api.load_model(str(d / "out" / "model.eqm"))
    x = np.load(d / "cal.npy")[:1]
    from edgeq.quant.pipeline import quantize_feeds

    q = quantize_feeds(g, {g.inputs[0].name: x})[g.inputs[0].name]
    (d / "x.bin").write_bytes(q.tobytes())
    r = subprocess.run([str(d / "app-build" / "app"), str(d / "x.bin")], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    ref = api.run(g, x, raw=True)[0].reshape(-1)
    assert [int(v) for v in r.stdout.split()] == [int(v) for v in ref]


def test_cortex_m4_package_builds_with_the_toolchain_file_and_links(exported):
    if not shutil.which("arm-none-eabi-gcc"):
        pytest.skip("arm-none-eabi-gcc not installed (make installs gcc-arm-none-eabi)")
    d = exported
    c = d / "out" / "c"
    cmake("-S", c, "-B", d / "build-m4", f"-DCMAKE_TOOLCHAIN_FILE={c / 'arm-none-eabi.cmake'}",
          "-DEDGEQ_CPU=cortex-m4", "-DCMAKE_BUILD_TYPE=Release", cwd=d)
    cmake("--build", d / "build-m4", cwd=d)
    cmake("--install", d / "build-m4", "--prefix", d / "prefix-m4", cwd=d)
    lib = d / "prefix-m4" / "lib" / "libedgeq_model.a"
    assert lib.exists()
    info = subprocess.run(["arm-none-eabi-readelf", "-A", str(lib)], capture_output=True,
                          text=True).stdout
    assert "Cortex-M4" in info or "v7E-M" in info, info[:500]
    (d / "app-m4").mkdir()
    (d / "app-m4" / "app.c").write_text(APP)
    (d / "app-m4" / "CMakeLists.txt").write_text(
        APP_CMAKE + f'target_sources(app PRIVATE "{c / "startup_cm.c"}")\n'
        f'target_link_options(app PRIVATE -specs=rdimon.specs -nostartfiles '
        f'-T "{c / "mps2.ld"}" -Wl,--gc-sections)\n')
    cmake("-S", d / "app-m4", "-B", d / "app-m4-build",
          f"-DCMAKE_TOOLCHAIN_FILE={c / 'arm-none-eabi.cmake'}", "-DEDGEQ_CPU=cortex-m4",
          f"-DCMAKE_PREFIX_PATH={d / 'prefix-m4'}", "-DCMAKE_BUILD_TYPE=Release", cwd=d)
    cmake("--build", d / "app-m4-build", cwd=d)
    elf = d / "app-m4-build" / "app"
    head = subprocess.run(["arm-none-eabi-readelf", "-h", str(elf)], capture_output=True,
                          text=True).stdout
    assert "ARM" in head and "EXEC" in head
