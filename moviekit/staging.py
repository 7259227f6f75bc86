"""Local staging folders of remote run directories: ``$MOVIEKIT_CACHE/remote-runs/<hash>``.

A run whose ``-o`` / ``run.output`` is an fsspec URL writes its run directory in a local folder
named after the URL (:func:`staging_dir`) and uploads it when it ends.  Once a run has completed
and its upload has succeeded, the folder is removed (:func:`discard`); the folder of a run that
failed or was interrupted stays (its ``task_errors/`` tracebacks are named in the error message),
and the next run on that URL writes into it again.  A rerun resumes from the artifact store, not
from this folder.  ``moviekit cache prune --older-than DAYS`` removes the ones left behind.

Only folders whose name has the shape moviekit gives them (16 hex digits, or the hidden name a
folder takes while it is being removed) are listed or removed; a folder whose run lock is held
by a run in progress is never removed.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from pathlib import Path

from .errors import MoviekitError
from .runlock import LOCK_NAME, RunLock
from .store import hash_key
from .weights import cache_root

_NAME = re.compile(r"[0-9a-f]{16}|\.[0-9a-f]{16}\.[0-9a-f]{32}\.removing")


def staging_root() -> Path:
    return cache_root() / "remote-runs"


def staging_dir(url: str) -> Path:
    """The local folder in which the run directory ``url`` is written before its upload."""
    return staging_root() / hash_key(url)[:16]


def discard(folder: Path, lock: RunLock) -> None:
    """Remove ``folder``, whose run ``lock`` this process holds: it is first renamed aside under the
    lock (a run starting on the same URL meanwhile gets a new, empty folder), then unlocked and deleted."""
    aside = folder if folder.name.endswith(".removing") else folder.with_name(f".{folder.name}.{uuid.uuid4().hex}.removing")
    try:
        folder.rename(aside)
    finally:
        lock.release()
    shutil.rmtree(aside, ignore_errors=True)


def folder_stats(folder: Path) -> tuple[int, float]:
    """Bytes of the regular files under ``folder`` and the newest modification time of anything
    in it (links are neither followed nor counted)."""
    size, newest = 0, folder.lstat().st_mtime
    for dirpath, dirs, files in os.walk(folder):
        for name in dirs + files:
            st = os.lstat(os.path.join(dirpath, name))
            newest = max(newest, st.st_mtime)
            if name in files and not os.path.islink(os.path.join(dirpath, name)):
                size += st.st_size
    return size, newest


def list_staging() -> list[tuple[Path, int, float]]:
    """``(folder, bytes, newest mtime)`` of every staging folder on this machine."""
    root = staging_root()
    if not root.is_dir():
        return []
    out = []
    for p in sorted(root.iterdir()):
        if _NAME.fullmatch(p.name) and p.is_dir() and not p.is_symlink():
            out.append((p, *folder_stats(p)))
    return out


def in_use(folder: Path) -> bool:
    """Whether a run holds the lock of ``folder`` (checked without writing anything)."""
    import fcntl

    try:
        fd = os.open(folder / LOCK_NAME, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing the descriptor also drops a lock it took
    return False


def remove_if_idle(folder: Path) -> bool:
    """Remove a staging folder unless a run holds its lock; whether it was removed."""
    lock = RunLock(folder)
    try:
        lock.acquire()
    except MoviekitError:
        return False
    discard(folder, lock)
    return True
