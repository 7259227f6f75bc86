"""Freed memory kept in the process, so that consumers' large working buffers are not page-faulted afresh.

glibc's ``malloc`` serves a block above its mmap threshold (128 KiB at first, raised as such blocks are
freed, to 32 MiB at most) with a new mapping, and gives the free top of a heap back to the system once
it exceeds the trim threshold.  A consumer that allocates and frees the same tens of MiB on every batch
(a CPU network's activations; a filter bank's responses), on its own thread (so in its own arena), then
pays for fresh zero-filled pages on every batch: in the one pass over the 20 embedded trailers the
appearance expert took 570-630 thousand page faults and 1.3-2 s of system time (of 7-8 s).
:func:`keep_freed_memory` raises both thresholds once per process, which keeps those pages for reuse
(the peak memory is unchanged; the process just does not give it back between batches).

Only glibc has these knobs; elsewhere, and when the user set glibc's own ``MALLOC_MMAP_THRESHOLD_``,
``MALLOC_TRIM_THRESHOLD_`` or ``GLIBC_TUNABLES``, nothing is changed.
"""

from __future__ import annotations

import ctypes
import os
import sys

#: ``mallopt`` parameters (glibc's malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3

#: Blocks up to this size come from the heaps (glibc's largest allowed value on 64-bit systems).
MMAP_THRESHOLD = 32 * 1024 * 1024
#: Free memory at the top of a heap kept before any is given back.
TRIM_THRESHOLD = 512 * 1024 * 1024

_USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")
_applied: bool | None = None


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds for this process (once); whether they are raised."""
    global _applied
    if _applied is None:
        _applied = _apply()
    return _applied


def _apply() -> bool:
    if not sys.platform.startswith("linux") or any(k in os.environ for k in _USER_SETTINGS):
        return False
    try:
        libc = ctypes.CDLL(None)
        if not hasattr(libc, "gnu_get_libc_version"):  # musl and others: no such knobs
            return False
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # pragma: no cover - no C library to ask
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1


__all__ = ["keep_freed_memory"]
