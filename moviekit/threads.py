"""The run's CPU thread budget (``run.threads``) and how it is split between concurrent consumers.

torch and OpenCV each start a thread pool as large as the machine.  With several consumers running
at once (see :mod:`moviekit.fanout`), or several worker processes, those pools oversubscribe the
cores and everything slows down (measured: two processes with default threads were slower than one;
with one thread each 1.29x faster).  So while ``k`` consumers run together each library gets
``budget // k`` threads (at least one); the budget is ``run.threads``, or, when that is 0, the
``MOVIEKIT_THREADS`` environment variable, or the cores this process may run on.

Nothing here imports torch or OpenCV: only libraries a component has already imported are sized.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - macOS, Windows
        return max(1, os.cpu_count() or 1)


def thread_budget(threads: int | None = None, workers: int = 1) -> int:
    """Threads one process may use: ``threads`` (``run.threads``) if positive, else
    ``$MOVIEKIT_THREADS``, else the available cores; divided between ``workers`` processes."""
    if not threads:
        env = os.environ.get("MOVIEKIT_THREADS", "").strip()
        threads = int(env) if env.isdigit() and int(env) > 0 else available_cores()
    return max(1, threads // max(1, workers))


def per_consumer_threads(threads: int | None, consumers: int) -> int:
    """Library threads for each of ``consumers`` running at once within a budget of ``threads``."""
    return max(1, thread_budget(threads) // max(1, consumers))


@contextlib.contextmanager
def library_threads(n: int) -> Iterator[None]:
    """Size torch's and OpenCV's pools to ``n`` threads (only if already imported), restoring them after."""
    torch = sys.modules.get("torch")
    cv2 = sys.modules.get("cv2")
    before_torch = before_cv2 = None
    if torch is not None and hasattr(torch, "get_num_threads"):
        before_torch = torch.get_num_threads()
        if before_torch != n:
            torch.set_num_threads(n)
    if cv2 is not None and hasattr(cv2, "getNumThreads"):
        before_cv2 = cv2.getNumThreads()
        if before_cv2 != n:
            cv2.setNumThreads(n)
    try:
        yield
    finally:
        if before_torch is not None and torch.get_num_threads() != before_torch:
            torch.set_num_threads(before_torch)
        if before_cv2 is not None and cv2.getNumThreads() != before_cv2:
            cv2.setNumThreads(before_cv2)


__all__ = ["available_cores", "library_threads", "per_consumer_threads", "thread_budget"]
