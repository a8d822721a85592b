"""Output folders written whole or not at all.

``edgeq quantize`` and ``edgeq export`` build their folder ``OUT`` in a private sibling,
``.OUT.edgeq-tmp-XXXX``, and only when everything is written swap it in for ``OUT`` in one step
(``renameat2(RENAME_EXCHANGE)`` where the kernel has it, else two renames), then delete the old
folder. So ``OUT`` is always either the previous complete result or the new complete one: a
failure, a full disk, Ctrl-C or ``kill -9`` never leave a mix, and files of an earlier export
(a stale ``model.tflite`` or ``c/``) never survive a new one.

- A non-empty ``OUT`` that is not an earlier edgeq output (it has no ``model.eqm`` and
  ``report.json``) is refused unless ``force`` (``--force``), which replaces it whole. The
  current folder, one containing it, the home folder and ``/`` are refused even then.
- ``OUT`` is locked for the whole run (``flock`` on ``.OUT.edgeq-lock`` beside it): a second
  edgeq process writing the same folder fails at once, naming the first one's pid.
- Holding the lock, temp folders that a killed run left beside ``OUT`` are deleted.
- Any ``OSError`` while writing (permissions, a full disk, a read-only file system) becomes one
  ``EdgeqError`` naming the folder, and the temp folder is removed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import fcntl
import os
import shutil
import tempfile
from typing import Any

from edgeq.ir.graph import EdgeqError

MARKERS = ("model.eqm", "report.json")  # what every edgeq output folder holds
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def is_edgeq_output(path: str) -> bool:
    return all(os.path.isfile(os.path.join(path, m)) for m in MARKERS)


def _exchange(a: str, b: str) -> bool:
    """Atomically swap two paths (Linux ``renameat2``); False where unavailable."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False  # no such system call, or a file system without exchange
    raise OSError(err, os.strerror(err), b)


def _protected(path: str) -> bool:
    """``/``, the home folder, and the current folder or any folder containing it."""
    cwd = os.path.realpath(os.getcwd())
    real = os.path.realpath(path)
    home = os.path.realpath(os.path.expanduser("~"))
    return real in ("/", home) or cwd == real or cwd.startswith(real.rstrip("/") + "/")


class OutputDir:
    """``with OutputDir(path) as tmp:`` write into ``tmp``; on success ``path`` becomes it.
    Made before the work starts, it checks that ``path`` may be replaced and can be written,
    so a bad ``-o`` fails before calibration."""

    def __init__(self, path: str | os.PathLike, force: bool = False):
        self.user = os.fspath(path)
        self.path = os.path.abspath(path)
        self.parent, self.name = os.path.split(self.path)
        self.lock_path = os.path.join(self.parent, f".{self.name}.edgeq-lock")
        self._lock_fd: int | None = None
        self.tmp = ""
        if not os.path.isdir(self.parent):
            raise EdgeqError(f"{self.user}: parent folder {self.parent} does not exist")
        if os.path.lexists(self.path) and not os.path.isdir(self.path):
            raise EdgeqError(f"{self.user}: exists and is not a folder")
        if os.path.islink(self.path):
            raise EdgeqError(f"{self.user}: is a symbolic link; give the folder it points to")
        if os.path.isdir(self.path):
            if _protected(self.path):
                raise EdgeqError(f"{self.user}: refusing to replace the current folder, one "
                                 f"containing it, the home folder or /; choose a new folder")
            try:
                entries = os.listdir(self.path)
            except OSError as e:
                raise EdgeqError(f"{self.user}: cannot read the folder ({e.strerror})") from None
            if entries and not is_edgeq_output(self.path) and not force:
                raise EdgeqError(f"{self.user}: folder is not empty and is not an earlier edgeq "
                                 f"output (no {' and '.join(MARKERS)}); choose another folder "
                                 f"or pass --force to replace it and everything in it")
        try:  # can we write beside it? (an early, clear error instead of one after calibration)
            fd, probe = tempfile.mkstemp(dir=self.parent, prefix=f".{self.name}.edgeq-probe-")
            os.close(fd)
            os.unlink(probe)
        except OSError as e:
            raise EdgeqError(f"{self.user}: cannot write in {self.parent} ({e.strerror})") \
                from None

    # --- locking ------------------------------------------------------------------------------
    def _lock(self) -> None:
        for _ in range(10):
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.lseek(fd, 0, os.SEEK_SET)
                pid = os.read(fd, 32).decode(errors="replace").strip() or "?"
                os.close(fd)
                raise EdgeqError(f"{self.user}: another edgeq process (pid {pid}) is writing "
                                 f"this folder; wait for it or choose another folder") from None
            try:  # the file may have been unlinked by the previous holder after we opened it
                same = os.path.samestat(os.fstat(fd), os.stat(self.lock_path))
            except FileNotFoundError:
                same = False
            if same:
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()}\n".encode())
                self._lock_fd = fd
                return
            os.close(fd)
        raise EdgeqError(f"{self.user}: could not lock the folder (lock file keeps changing)")

    def _unlock(self) -> None:
        if self._lock_fd is None:
            return
        try:
            os.unlink(self.lock_path)
        except OSError:
            pass
        os.close(self._lock_fd)
        self._lock_fd = None

    def _clean_stale(self) -> None:
        """Holding the lock: no other run can be writing beside ``path``, so any temp folder of
        ours here was left by a killed run."""
        for prefix in (f".{self.name}.edgeq-tmp-", f".{self.name}.edgeq-old-",
                       f".{self.name}.edgeq-probe-"):
            for entry in os.listdir(self.parent):
                if entry.startswith(prefix):
                    p = os.path.join(self.parent, entry)
                    if os.path.isdir(p) and not os.path.islink(p):
                        shutil.rmtree(p, ignore_errors=True)
                    else:
                        os.unlink(p)

    # --- the context --------------------------------------------------------------------------
    def __enter__(self) -> str:
        try:
            self._lock()
            self._clean_stale()
            self.tmp = tempfile.mkdtemp(prefix=f".{self.name}.edgeq-tmp-", dir=self.parent)
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(self.tmp, 0o777 & ~umask)  # mkdtemp makes it private; the result is not
        except OSError as e:
            self._unlock()
            raise EdgeqError(f"{self.user}: cannot create the output folder ({e.strerror})") \
                from None
        except BaseException:
            self._unlock()
            raise
        return self.tmp

    def __exit__(self, exc_type, exc: BaseException | None, tb: Any) -> None:
        try:
            if exc_type is not None:
                shutil.rmtree(self.tmp, ignore_errors=True)
                if isinstance(exc, OSError) and exc.errno in (
                        errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES,
                        errno.EPERM, errno.EIO):
                    raise EdgeqError(f"{self.user}: could not write the output "
                                     f"({exc.strerror}); nothing was changed") from None
                return
            try:
                self._swap()
            except OSError as e:
                shutil.rmtree(self.tmp, ignore_errors=True)
                raise EdgeqError(f"{self.user}: could not move the new output into place "
                                 f"({e.strerror}); nothing was changed") from None
        finally:
            self._unlock()

    def _swap(self) -> None:
        if not os.path.isdir(self.path):
            os.rename(self.tmp, self.path)
            return
        if _exchange(self.tmp, self.path):
            shutil.rmtree(self.tmp, ignore_errors=True)  # now the previous output
            return
        old = tempfile.mkdtemp(prefix=f".{self.name}.edgeq-old-", dir=self.parent)
        os.rmdir(old)
        os.rename(self.path, old)
        try:
            os.rename(self.tmp, self.path)
        except OSError:
            os.rename(old, self.path)
            raise
        shutil.rmtree(old, ignore_errors=True)
