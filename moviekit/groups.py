"""Grouping an ordered list of elements into runs of consecutive elements: the one mechanism for
sequences of clips (MMX-Trailer-20), scenes of shots, and fixed-length events of time.

A grouping is a list of ``(start, end)`` half-open index ranges into the ordered list it groups
(clips, shots, frames or feature rows of one video); nothing is copied or stored on the item.
The component that works on groups computes them where it uses them, from the one setting it
owns (e.g. the MMX encoder's ``clips_per_sequence``), so a group size is stated once:

* :func:`group_windows`: fixed-size windows (``size`` consecutive elements, a trailing remainder
  dropped; a ``stride`` below ``size`` makes them overlap). Sequences of 9 clips are
  ``group_windows(len(clips), 9)``.
* :func:`group_at`: groups that start at given indices (shots into scenes from the indices of
  each scene's first shot, as a scene-boundary detector gives them).
* :func:`group_by_time`: consecutive bins of ``width`` seconds over time-stamped elements (frames,
  clips by their mid time, feature rows) -- e.g. 2-s events; a bin without elements is empty.

:func:`gather` takes the elements (or array rows) of each group.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import pairwise
from typing import Any

Span = tuple[int, int]


def group_windows(n: int, size: int, stride: int | None = None) -> list[Span]:
    """``[start, end)`` windows of ``size`` consecutive elements out of ``n``; a trailing remainder
    shorter than ``size`` is dropped, so fewer than ``size`` elements give no window."""
    if size < 1:
        raise ValueError(f"window size must be at least 1, got {size}")
    stride = stride or size
    return [(s, s + size) for s in range(0, n - size + 1, stride)] if n >= size else []


def group_at(n: int, starts: Sequence[int]) -> list[Span]:
    """Consecutive groups of ``n`` elements, a new one at each index of ``starts`` (0 is implied).

    Shots into scenes: ``group_at(len(shots), first_shot_of_each_scene)``.  Every element is in
    exactly one group; indices outside ``1..n-1`` and repeats are ignored.
    """
    cuts = sorted({int(s) for s in starts if 0 < int(s) < n})
    edges = [0, *cuts, n] if n > 0 else []
    return list(pairwise(edges))


def group_by_time(times: Sequence[float], width: float, origin: float = 0.0, end: float | None = None) -> list[Span]:
    """Bins of ``width`` seconds from ``origin``: bin ``b`` holds the elements whose time falls in
    ``[origin + b * width, origin + (b + 1) * width)``.

    ``times`` must be ascending (frame times, clip mid-times).  The bins run to ``end`` (default:
    the last time), so bin ``b`` is always group ``b``; a bin without elements is ``(i, i)``.
    Elements before ``origin`` are left out.
    """
    if width <= 0:
        raise ValueError(f"bin width must be positive, got {width}")
    ts = [float(t) for t in times]
    if any(b < a for a, b in pairwise(ts)):
        raise ValueError("times must be ascending")
    last = end if end is not None else (ts[-1] if ts else origin)
    n_bins = max(0, math.floor((last - origin) / width) + 1) if ts or end is not None else 0
    if end is not None and n_bins and origin + (n_bins - 1) * width >= end:
        n_bins -= 1  # ``end`` itself opens no bin
    spans, i = [], 0
    while i < len(ts) and ts[i] < origin:
        i += 1
    for b in range(n_bins):
        stop = origin + (b + 1) * width
        j = i
        while j < len(ts) and ts[j] < stop:
            j += 1
        spans.append((i, j))
        i = j
    return spans


def gather(elements: Any, spans: Sequence[Span]) -> list[Any]:
    """The elements of each group: slices of a list, or of an array's rows."""
    return [elements[s:e] for s, e in spans]
