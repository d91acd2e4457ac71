"""Files, written so nothing is half-written and no two jobs write one folder.

`atomic_write` writes through a temporary file in the same folder and renames it into place:
a reader (or a resumed job) sees the old file or the new one, never a partial one. JSON is
written strictly (NaN and infinity are errors, not invalid JSON). `folder_lock` takes an
exclusive lock on a job's output folder; the operating system drops it when the process dies,
so a killed job never leaves a stale lock behind. `exit_with_parent` ends a job's worker
processes with the job: a forked worker inherits the lock and the job's output pipes, so an
orphaned one would hold both forever.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

LOCK_FILE = ".gato.lock"
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> None:
    """Create `path` (and its folders) by `write(tmp)` on a temporary file, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text(path: str | Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_json(path: str | Path, obj, indent: int | None = 1) -> None:
    """Strict JSON (a NaN or infinity is an error naming the file), written atomically."""
    try:
        text = json.dumps(obj, indent=indent, allow_nan=False, default=str)
    except ValueError as e:
        raise ValueError(f"{path}: cannot write a non-finite number as JSON ({e})") from None
    write_text(path, text)


def read_json(path: str | Path, what: str = "file"):
    """Parsed JSON; a clear error naming the file when it is missing or corrupt."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such {what}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: corrupt {what} ({e})") from None


@contextlib.contextmanager
def folder_lock(folder: str | Path, job: str) -> Iterator[None]:
    """Hold an exclusive lock on `folder` for this job; a second job on it fails at once with a
    clear error. The lock dies with the process (flock), so a killed job leaves none behind. A
    folder the lock made, that holds nothing else when the job ends (it failed before writing),
    is removed."""
    folder = Path(folder)
    made = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.pread(fd, 200, 0).decode(errors="replace").strip()
            raise ValueError(f"{folder} is in use by another job ({other or 'unknown'}); wait for it to end "
                             f"or choose another folder") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{job}, pid {os.getpid()}".encode(), 0)
        try:
            yield
        finally:
            if made and folder.is_dir() and [p.name for p in folder.iterdir()] == [LOCK_FILE]:
                (folder / LOCK_FILE).unlink()
                folder.rmdir()
    finally:
        os.close(fd)


def exit_with_parent(parent: int) -> None:
    """Worker initializer: end this process when `parent` (the process that started it) dies,
    even by SIGKILL. Linux: the kernel sends SIGKILL (prctl PR_SET_PDEATHSIG); elsewhere a
    daemon thread watches for the parent to change."""
    prctl = getattr(ctypes.CDLL(None, use_errno=True), "prctl", None)
    if prctl is None or prctl(_PR_SET_PDEATHSIG, signal.SIGKILL) != 0:
        threading.Thread(target=_exit_when_orphaned, args=(parent,), daemon=True).start()
    if os.getppid() != parent:  # it died before the line above
        os._exit(1)


def _exit_when_orphaned(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)
