"""The lock a run holds on its output directory, so that two runs never write one folder.

The lock is an ``fcntl.flock`` on ``<run>/.moviekit-lock``: the operating system releases it
when the process ends, however it ends (a killed run leaves no stale lock).  The file holds
the owner's pid, host and start time, which a refused second run quotes.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path

from .errors import MoviekitError

LOCK_NAME = ".moviekit-lock"


class RunLock:
    """An exclusive, non-blocking lock on a run directory."""

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_NAME
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> RunLock:
        """Take the lock or raise :class:`MoviekitError` naming the directory and the other run's pid."""
        if self._fd is not None:
            return self
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                owner = json.loads(os.pread(fd, 4096, 0) or b"{}")
            except (OSError, ValueError):
                owner = {}
            os.close(fd)
            who = f"pid {owner.get('pid', '?')}" + (f" on {owner['host']}" if owner.get("host") else "")
            since = f", started {owner['started']}" if owner.get("started") else ""
            raise MoviekitError(
                f"output directory {self.run_dir} is in use by another moviekit run ({who}{since}); "
                "wait for it to finish or choose another --output"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        info = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            finally:
                os.close(self._fd)
                self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
