"""Downstream metrics against scikit-learn, brute force and hand-computed cases."""

import numpy as np
import pytest

from moviekit_movies2scenes.metrics import boundaries_to_scenes, knn_l2, mean_ap, precision_at_k, recall_at_seconds, sbd_metrics, scene_miou


def test_knn_matches_brute_force():
    rng = np.random.default_rng(0)
    g, q = rng.normal(size=(40, 5)), rng.normal(size=(7, 5))
    d = ((q[:, None] - g[None]) ** 2).sum(-1)
    np.testing.assert_array_equal(knn_l2(g, q, 5), np.argsort(d, axis=1, kind="stable")[:, :5])


def test_precision_at_k_brute_force():
    rng = np.random.default_rng(1)
    g, q = rng.normal(size=(30, 4)), rng.normal(size=(9, 4))
    places = ["a", "b", "c"]
    gtags = [[places[i % 3]] + (["b"] if i % 7 == 0 else []) for i in range(30)]
    qplace = [places[i % 3] for i in range(9)]
    got = precision_at_k(g, gtags, q, qplace, ks=(1, 5))
    d = ((q[:, None] - g[None]) ** 2).sum(-1)
    nn = np.argsort(d, axis=1)
    for k in (1, 5):
        want = np.mean([[qplace[i] in gtags[j] for j in nn[i, :k]] for i in range(9)]) * 100
        assert got["all"][f"p@{k}"] == pytest.approx(want)
        rows = [i for i in range(9) if qplace[i] == "b"]
        want_b = np.mean([[qplace[i] in gtags[j] for j in nn[i, :k]] for i in rows]) * 100
        assert got["per_place"]["b"][f"p@{k}"] == pytest.approx(want_b)


def test_scenes_and_miou_hand_case():
    frames = np.array([[0, 10], [10, 20], [20, 30], [30, 40]])
    gt = np.array([0, 1, 0])  # scenes [0,20) [20,40)
    pred = np.array([0, 0, 1])  # scenes [0,30) [30,40)
    assert boundaries_to_scenes(gt, frames) == [(0, 20), (20, 40)]
    # gt->pred: [0,20) best IoU 20/30; [20,40) best max(10/40, 10/20) = 0.5 -> (2/3 + 1/2)/2
    # pred->gt: [0,30) best 20/30; [30,40) best 10/20 -> same
    assert scene_miou(gt, pred, frames) == pytest.approx((2 / 3 + 0.5) / 2)
    assert scene_miou(gt, gt, frames) == pytest.approx(1.0)


def test_recall_at_3s_hand_case():
    times = np.array([2.0, 5.0, 9.0, 20.0])
    gt = np.array([1, 0, 1, 1])
    pred = np.array([0, 1, 0, 0])  # one predicted boundary at 5 s: within 3 s of 2 s and of 9 s? |9-5|=4 > 3
    assert recall_at_seconds(gt, pred, times, 3.0) == (1, 3)
    assert recall_at_seconds(gt, np.zeros(4), times) == (0, 3)


def test_sbd_ap_matches_sklearn_and_map():
    from sklearn.metrics import average_precision_score

    rng = np.random.default_rng(2)
    movies = []
    for _ in range(3):
        n = 12
        frames = np.cumsum(rng.integers(5, 15, size=n))
        shot_frames = np.stack([np.r_[0, frames[:-1]], frames], 1)
        gt = (rng.uniform(size=n - 1) < 0.3).astype(int)
        movies.append({"gt": gt, "scores": rng.uniform(size=n - 1), "shot_frames": shot_frames, "times": shot_frames[1:, 0] / 8.0})
    m = sbd_metrics(movies)
    y = np.concatenate([x["gt"] for x in movies])
    s = np.concatenate([x["scores"] for x in movies])
    assert m["ap"] == pytest.approx(average_precision_score(y, s))
    assert m["positive_rate"] == pytest.approx(y.mean())
    Y = (rng.uniform(size=(20, 4)) < 0.4).astype(int)
    Y[:, 3] = 0
    S = rng.uniform(size=(20, 4))
    assert mean_ap(Y, S) == pytest.approx(np.mean([average_precision_score(Y[:, j], S[:, j]) for j in range(3)]))


def test_random_baseline_streams_are_independent():
    """The random baseline's queries (one split) must not repeat its gallery (another split): with one
    shared stream, query i would equal gallery vector i and random P@1 would be far above chance."""
    from moviekit_movies2scenes.common import random_baseline

    gallery, queries = random_baseline(50, 8, 3, "train"), random_baseline(20, 8, 3, "val")
    assert not np.isclose(gallery[:20], queries).all(axis=1).any()
    np.testing.assert_array_equal(random_baseline(50, 8, 3, "train"), gallery)  # same stream, same vectors
    places = [str(i % 10) for i in range(50)]
    got = precision_at_k(gallery, [[p] for p in places], queries, places[:20], ks=(1,))
    assert got["all"]["p@1"] < 50  # chance is 10 %; a shared stream gives 100 %
