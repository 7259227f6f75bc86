"""moviekit.memory: glibc keeps freed blocks for reuse once keep_freed_memory() ran (in a fresh process each)."""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys

import pytest

GLIBC = sys.platform.startswith("linux") and hasattr(ctypes.CDLL(None), "gnu_get_libc_version")

# A thread allocates, touches and frees a 24 MiB block three times; printed: the minor page faults
# of the third round (the first rounds settle glibc's own adaptive thresholds).
_PROBE = """
import json, resource, sys, threading
import numpy as np
from moviekit.memory import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "keep" else None
faults = []
def work():
    for _ in range(3):
        before = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
        a = np.ones(24 * 1024 * 1024 // 8)
        a += 1.0
        del a
        faults.append(resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - before)
t = threading.Thread(target=work); t.start(); t.join()
print(json.dumps({"applied": applied, "again": keep_freed_memory() if applied else None, "faults": faults}))
"""


def _probe(mode: str, env: dict[str, str] | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"} | (env or {})
    out = subprocess.run([sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not GLIBC, reason="glibc's malloc only")
def test_freed_blocks_are_reused_without_page_faults():
    # (with transparent huge pages a fault maps up to 2 MiB, so a 24 MiB block takes 12 to 6144 faults)
    kept = _probe("keep")
    assert kept["applied"] is True and kept["again"] is True
    assert kept["faults"][0] >= 12  # the first block is touched once: the probe does see faults
    assert max(kept["faults"][1:]) <= 2  # then reused, not mapped afresh
    plain = _probe("plain")  # glibc alone maps fresh pages at least once more
    assert max(plain["faults"][1:]) >= 12


@pytest.mark.skipif(not GLIBC, reason="glibc's malloc only")
def test_users_own_malloc_settings_are_left_alone():
    assert _probe("keep", {"MALLOC_TRIM_THRESHOLD_": "131072"})["applied"] is False
    assert _probe("keep", {"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=131072"})["applied"] is False
