"""Scene-pair selection between two similar movies (supplementary §1.1c and §3a), as pure numpy.

Given the shot features of two movies (``M x d`` and ``N x d``, taken from ``E_movie`` before its
last fully-connected layer) the shot adjacency ``A`` is their ``M x N`` cosine similarity.  The
mean of every ``w x w`` window of ``A`` (stride 1; the paper's ``w`` is 9) scores the pair of scenes
"shots ``i..i+w-1`` of the first movie" and "shots ``j..j+w-1`` of the second".  Scene pairs are
then popped greedily from the highest score down, over the top ``fraction`` (50 %) of all window
scores, skipping a pair when either of its scenes was already used (§3a: a scene is never selected
twice; with ``non_overlapping`` a scene that overlaps a used one is skipped too, as §1.1c's
"keeping the selected scenes to be non-overlapping" can also be read).
"""

from __future__ import annotations

import math

import numpy as np


def shot_adjacency(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(M, N)`` cosine similarity of the rows of ``a`` and ``b``."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return a @ b.T


def window_means(adj: np.ndarray, window: int | tuple[int, int] = 9) -> np.ndarray:
    """Mean of every ``wh x ww`` window of ``adj`` at stride 1: ``(M - wh + 1, N - ww + 1)``.

    A movie with fewer shots than the window uses all its shots (the window shrinks to fit).
    Computed with a summed-area table, so the cost does not depend on the window size.
    """
    adj = np.asarray(adj, np.float64)
    wh, ww = (window, window) if isinstance(window, int) else window
    m, n = adj.shape
    wh, ww = min(wh, m), min(ww, n)
    if wh < 1 or ww < 1:
        return np.zeros((0, 0))
    s = np.zeros((m + 1, n + 1))
    s[1:, 1:] = adj.cumsum(0).cumsum(1)
    total = s[wh:, ww:] - s[:-wh, ww:] - s[wh:, :-ww] + s[:-wh, :-ww]
    return total / (wh * ww)


def greedy_pairs(
    scores: np.ndarray, fraction: float = 0.5, non_overlapping: bool = False, window: tuple[int, int] = (1, 1)
) -> list[tuple[int, int, float]]:
    """Scene pairs ``(i, j, score)`` popped from the top ``fraction`` of ``scores``, best first, no scene used twice.

    With ``non_overlapping`` a candidate ``(i, j)`` is also skipped when window ``i`` overlaps a
    chosen window of the first movie (``|i - i'| < window[0]``) or ``j`` one of the second.
    Ties are broken by position (row-major), so the result is deterministic.
    """
    scores = np.asarray(scores, np.float64)
    if scores.size == 0:
        return []
    k = max(1, math.ceil(fraction * scores.size))
    flat = scores.ravel()
    order = np.lexsort((np.arange(flat.size), -flat))[:k]  # by score descending, then position
    used_i: list[int] = []
    used_j: list[int] = []
    out = []
    gap_i, gap_j = window if non_overlapping else (1, 1)
    for idx in order:
        i, j = divmod(int(idx), scores.shape[1])
        if any(abs(i - u) < gap_i for u in used_i) or any(abs(j - u) < gap_j for u in used_j):
            continue
        used_i.append(i)
        used_j.append(j)
        out.append((i, j, float(flat[idx])))
    return out


def select_scene_pairs(
    feats_a: np.ndarray, feats_b: np.ndarray, window: int = 9, fraction: float = 0.5, non_overlapping: bool = False
) -> list[tuple[int, int, float]]:
    """The scene pairs of two movies from their shot features: adjacency, window means, greedy selection.

    ``i`` and ``j`` are the first shots of the paired scenes (each ``min(window, shots)`` long).
    """
    adj = shot_adjacency(feats_a, feats_b)
    wh, ww = min(window, adj.shape[0]), min(window, adj.shape[1])
    return greedy_pairs(window_means(adj, (wh, ww)), fraction, non_overlapping, (wh, ww))
