"""Scene-pair selection against brute-force references on small matrices."""

import itertools
import math

import numpy as np
import pytest

from moviekit_movies2scenes.selection import greedy_pairs, select_scene_pairs, shot_adjacency, window_means


def brute_window_means(a, wh, ww):
    m, n = a.shape
    return np.array([[a[i : i + wh, j : j + ww].mean() for j in range(n - ww + 1)] for i in range(m - wh + 1)])


def brute_greedy(scores, fraction):
    """Pop the best remaining admissible pair again and again, among the top fraction of all entries."""
    flat = sorted(((scores[i, j], -(i * scores.shape[1] + j), i, j) for i, j in itertools.product(*map(range, scores.shape))), reverse=True)
    allowed = {(i, j) for _, _, i, j in flat[: math.ceil(fraction * scores.size)]}
    chosen, rows, cols = [], set(), set()
    while True:
        cand = [(scores[i, j], -(i * scores.shape[1] + j), i, j) for (i, j) in allowed if i not in rows and j not in cols]
        if not cand:
            return chosen
        s, _, i, j = max(cand)
        chosen.append((i, j, s))
        rows.add(i)
        cols.add(j)


@pytest.mark.parametrize("seed", range(5))
def test_window_means_match_brute_force(seed):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(rng.integers(9, 20), rng.integers(9, 20)))
    np.testing.assert_allclose(window_means(a, 9), brute_window_means(a, 9, 9), atol=1e-12)
    np.testing.assert_allclose(window_means(a, (3, 5)), brute_window_means(a, 3, 5), atol=1e-12)


def test_window_shrinks_for_short_movies():
    a = np.arange(12.0).reshape(3, 4)
    assert window_means(a, 9).shape == (1, 1) and window_means(a, 9)[0, 0] == pytest.approx(a.mean())


@pytest.mark.parametrize("seed", range(8))
def test_greedy_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    scores = np.round(rng.normal(size=(rng.integers(2, 7), rng.integers(2, 7))), 1)  # rounding makes ties
    got = greedy_pairs(scores, 0.5)
    want = brute_greedy(scores, 0.5)
    assert [(i, j) for i, j, _ in got] == [(i, j) for i, j, _ in want]
    assert len({i for i, _, _ in got}) == len(got) and len({j for _, j, _ in got}) == len(got)


def test_greedy_hand_case():
    s = np.array([[0.9, 0.8, 0.1], [0.85, 0.2, 0.0]])
    # top 50% = 3 entries: 0.9 (0,0), 0.85 (1,0), 0.8 (0,1); (1,0) reuses column 0, (0,1) reuses row 0
    assert greedy_pairs(s, 0.5) == [(0, 0, 0.9)]
    assert [(i, j) for i, j, _ in greedy_pairs(s, 1.0)] == [(0, 0), (1, 1)]


def test_non_overlapping_skips_overlapping_windows():
    s = np.array([[1.0, 0.0, 0.0], [0.0, 0.9, 0.0], [0.0, 0.0, 0.8]])
    assert [(i, j) for i, j, _ in greedy_pairs(s, 1.0)] == [(0, 0), (1, 1), (2, 2)]
    assert [(i, j) for i, j, _ in greedy_pairs(s, 1.0, non_overlapping=True, window=(2, 2))] == [(0, 0), (2, 2)]


def test_select_scene_pairs_end_to_end():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(14, 6)), rng.normal(size=(12, 6))
    adj = np.array([[x @ y / np.linalg.norm(x) / np.linalg.norm(y) for y in b] for x in a])
    np.testing.assert_allclose(shot_adjacency(a, b), adj, atol=1e-12)
    want = brute_greedy(brute_window_means(adj, 9, 9), 0.5)
    got = select_scene_pairs(a, b, window=9)
    assert [(i, j) for i, j, _ in got] == [(i, j) for i, j, _ in want]
