"""Bad command lines and hostile environments (issue 12, items 5, 7 and 9): each is one
``edgeq: error:`` line with exit 2 (1 for an internal error), no traceback, and an output folder
that is either untouched or complete, never a mix."""

from __future__ import annotations

import fcntl
import json
import os
import resource
import signal
import subprocess
import time

import numpy as np
import pytest
from onnx import helper

from edgeq import cli
from tests.helpers import EDGEQ, onnx_model, run_cli

pytestmark = pytest.mark.backend  # exports to ORT and the host C compiler


@pytest.fixture
def model(tmp_path):
    w = np.random.default_rng(0).normal(size=(4, 3, 3, 3)).astype(np.float32)
    m = onnx_model([helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
                    helper.make_node("Relu", ["c"], ["y"], name="relu")],
                   {"x": ("N", 3, 6, 6)}, ["y"], {"w": w})
    path = tmp_path / "small.onnx"
    path.write_bytes(m.SerializeToString())
    np.save(tmp_path / "cal.npy", np.random.default_rng(1).normal(size=(8, 3, 6, 6))
            .astype(np.float32))
    return path


def one_line(res, code=2, *needles):
    assert res.returncode == code, (res.returncode, res.stdout, res.stderr)
    assert "Traceback" not in res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("edgeq: error: " if code == 2 else "edgeq: "), lines[0]
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


def tree(path):
    """Every file under ``path`` with its bytes (what "untouched" compares)."""
    out = {}
    for root, _, files in os.walk(path):
        for f in files:
            p = os.path.join(root, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, path)] = fh.read()
    return out


def leftovers(parent):
    return sorted(e for e in os.listdir(parent) if ".edgeq-" in e)


# --- item 5: arguments ---------------------------------------------------------------------------
def test_huge_input_shape_is_refused_with_its_size(model):
    one_line(run_cli("inspect", model, "--input-shape", "12345678901234567890,3,6,6"), 2,
             "--input-shape", "EDGEQ_MAX_ACTIVATION_BYTES")


@pytest.mark.parametrize("n", ["0", "-1"])
def test_calib_samples_must_be_positive(model, tmp_path, n):
    res = run_cli("quantize", model, "--calib", tmp_path / "cal.npy", "-o", tmp_path / "q",
                  "--calib-samples", n)
    one_line(res, 2, f"--calib-samples {n}", ">= 1")
    assert not (tmp_path / "q").exists() and leftovers(tmp_path) == []


def test_usage_errors_are_one_line(model, tmp_path):
    one_line(run_cli("quantize", model, "--calib", tmp_path / "cal.npy", "-o", tmp_path / "q",
                     "--weight-bits", "5"), 2, "--weight-bits", "edgeq quantize --help")
    one_line(run_cli("export", model, "-o", tmp_path / "q"), 2, "--calib")


def test_run_input_npz_object_and_corrupt_arrays(model, tmp_path):
    x = tmp_path / "x"
    np.savez(tmp_path / "x.npz", x=np.zeros((1, 3, 6, 6), np.float32))
    one_line(run_cli("run", model, "--input", tmp_path / "x.npz", "--output", x / "y.npy"), 2,
             ".npz archive")
    good = tmp_path / "good.npy"
    np.save(good, np.zeros((1, 3, 6, 6), np.float32))
    data = good.read_bytes()
    (tmp_path / "obj.npy").write_bytes(data.replace(b"'<f4'", b"'|O' "))
    one_line(run_cli("run", model, "--input", tmp_path / "obj.npy", "--output",
                     tmp_path / "y.npy"), 2, "obj.npy")
    (tmp_path / "trunc.npy").write_bytes(data[:-40])
    one_line(run_cli("run", model, "--input", tmp_path / "trunc.npy", "--output",
                     tmp_path / "y.npy"), 2, "trunc.npy")
    huge = data.replace(b"(1, 3, 6, 6)", b"(10**9,3,6,6)".replace(b"10**9", b"999999999"))
    (tmp_path / "huge.npy").write_bytes(huge)
    one_line(run_cli("run", model, "--input", tmp_path / "huge.npy", "--output",
                     tmp_path / "y.npy"), 2, "huge.npy")
    assert not (tmp_path / "y.npy").exists()


def test_internal_error_is_one_line_exit_1(model, monkeypatch, capsys):
    from edgeq import api

    def broken(*a, **k):
        raise RuntimeError("simulated bug")
    monkeypatch.setattr(api, "inspect", broken)
    assert cli.main(["inspect", str(model)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("edgeq: internal error: RuntimeError: simulated")
    monkeypatch.setenv("EDGEQ_DEBUG", "1")
    with pytest.raises(RuntimeError):
        cli.main(["inspect", str(model)])


# --- item 7: output folders ----------------------------------------------------------------------
def _export(model, out, *extra, targets="ort"):
    return run_cli("export", model, "--calib", model.parent / "cal.npy", "-o", out, "--target",
                   targets, "--eval-samples", "2", *extra)


def test_reexport_replaces_the_folder_whole(model, tmp_path):
    out = tmp_path / "out"
    res = _export(model, out, targets="ort,c")
    assert res.returncode == 0, res.stderr
    assert (out / "c").is_dir() and (out / "model.qdq.onnx").exists()
    res = _export(model, out, targets="c")  # failed with an OSError traceback before
    assert res.returncode == 0, res.stderr
    assert not (out / "model.qdq.onnx").exists(), "a stale artifact survived the new export"
    assert (out / "c").is_dir()
    assert json.loads((out / "report.json").read_text())["targets"].keys() == {"c"}
    one_line(run_cli("run", out, "--target", "ort", "--input", model.parent / "cal.npy",
                     "--output", tmp_path / "y.npy"), 2)
    assert leftovers(tmp_path) == []


def test_foreign_folder_is_refused_unless_force(model, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    one_line(_export(model, out), 2, "not an earlier edgeq output", "--force")
    assert tree(out) == {"notes.txt": b"keep me"} and leftovers(tmp_path) == []
    res = _export(model, out, "--force")
    assert res.returncode == 0, res.stderr
    assert not (out / "notes.txt").exists() and (out / "model.qdq.onnx").exists()


def test_current_folder_and_symlinks_are_refused(model, tmp_path):
    (tmp_path / "model.eqm").write_bytes(b"")
    (tmp_path / "report.json").write_text("{}")
    one_line(run_cli("quantize", model, "--calib", "cal.npy", "-o", ".", "--force",
                     cwd=tmp_path), 2, "current folder")
    real = tmp_path / "real"
    real.mkdir()
    os.symlink(real, tmp_path / "link")
    one_line(_export(model, tmp_path / "link"), 2, "symbolic link")


def test_a_concurrent_export_is_refused(model, tmp_path):
    out = tmp_path / "out"
    fd = os.open(tmp_path / ".out.edgeq-lock", os.O_RDWR | os.O_CREAT)
    os.write(fd, b"4242\n")
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        one_line(_export(model, out), 2, "another edgeq process (pid 4242)")
    finally:
        os.close(fd)
    assert not out.exists()


def test_kill_9_leaves_the_old_folder_and_the_next_run_cleans_up(model, tmp_path):
    out = tmp_path / "out"
    assert _export(model, out).returncode == 0
    before = tree(out)
    p = subprocess.Popen(EDGEQ + ["export", str(model), "--calib", str(tmp_path / "cal.npy"),
                                  "-o", str(out), "--target", "ort,c", "--eval-samples", "2"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not any("edgeq-tmp" in e for e in os.listdir(tmp_path)):
        assert p.poll() is None and time.time() < deadline, "export ended before it was killed"
        time.sleep(0.02)
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert tree(out) == before, "kill -9 changed the previous output"
    assert leftovers(tmp_path), "expected the killed run's temp folder (the test's premise)"
    assert _export(model, out).returncode == 0
    assert leftovers(tmp_path) == [], "the stale temp folder was not cleaned up"


def _full_disk():
    # writes beyond 64 KB fail with EFBIG, as on a full disk (ENOSPC), instead of killing us
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 << 10, 64 << 10))


def test_full_disk_leaves_nothing(model, tmp_path):
    out = tmp_path / "out"
    big = tmp_path / "big.onnx"  # 300 KB of weights: model.eqm cannot be written
    w = np.random.default_rng(0).normal(size=(64, 3, 3, 3)).astype(np.float32)
    m = onnx_model([helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
                    helper.make_node("Flatten", ["c"], ["f"], name="flat"),
                    helper.make_node("Gemm", ["f", "w2"], ["y"], name="fc")],
                   {"x": (1, 3, 6, 6)}, ["y"],
                   {"w": w, "w2": np.random.default_rng(2).normal(size=(64 * 36, 40))
                    .astype(np.float32) * 0.01})
    big.write_bytes(m.SerializeToString())
    res = subprocess.run(EDGEQ + ["quantize", str(big), "--calib", str(tmp_path / "cal.npy"),
                                  "-o", str(out), "--eval-samples", "2"],
                         capture_output=True, text=True, preexec_fn=_full_disk)
    one_line(res, 2, "out", "nothing was changed")
    assert not out.exists() and leftovers(tmp_path) == []


def test_unwritable_output_folder(model, tmp_path, monkeypatch, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    if os.geteuid() == 0:  # root ignores permissions: simulate what the kernel would say
        import tempfile

        def denied(*a, **k):
            raise PermissionError(13, "Permission denied")
        monkeypatch.setattr(tempfile, "mkstemp", denied)
    else:
        ro.chmod(0o555)
    try:
        code = cli.main(["quantize", str(model), "--calib", str(tmp_path / "cal.npy"), "-o",
                         str(ro / "q")])
    finally:
        ro.chmod(0o755)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "Permission denied" in err[0], err
    assert os.listdir(ro) == []


# --- item 9: --deterministic-report on export ----------------------------------------------------
def test_export_deterministic_report_is_byte_identical(model, tmp_path):
    runs = []
    for name in ("a", "b"):
        res = _export(model, tmp_path / name, "--deterministic-report", targets="ort,c")
        assert res.returncode == 0, res.stderr
        runs.append(tree(tmp_path / name))
    assert runs[0].keys() == runs[1].keys()
    for f in runs[0]:
        assert runs[0][f] == runs[1][f], f"{f} differs between two identical exports"
    text = runs[0]["report.json"].decode()
    assert '_ms"' not in text and '_s"' not in text, "timings left in the report"
    assert "verification" in json.loads(text)["targets"]["ort"]


def test_export_report_keeps_timings_by_default(model, tmp_path):
    assert _export(model, tmp_path / "t").returncode == 0
    assert '_ms"' in (tmp_path / "t" / "report.json").read_text()

