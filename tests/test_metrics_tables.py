"""The all-positive ("paper's random") baseline, per-class tables, AUPRC naming and shot-boundary scores."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import precision_recall_fscore_support

from moviekit.metrics import (
    all_positive_baseline,
    all_positive_from_supports,
    auprc_note,
    boundary_scores,
    multilabel_metrics,
    per_class_metrics,
    per_class_table,
    random_baseline,
    weighted_mean,
)

#: MMX-Trailer-20 Table 2: the test split's supports (754 trailers, §4.1) in the table's column order,
#: its Random row per genre, and the Image row per genre with its F1_w.
SUPPORTS = [130, 197, 46, 13, 224, 102, 87, 267, 117, 115, 44, 104, 41, 86, 107, 181, 30, 45, 12, 21]
RANDOM_ROW = [0.29, 0.41, 0.11, 0.03, 0.46, 0.24, 0.21, 0.52, 0.27, 0.26, 0.11, 0.24, 0.1, 0.2, 0.25, 0.39, 0.08, 0.11, 0.03, 0.05]
IMAGE_ROW = [0.48, 0.63, 0.79, 0.12, 0.65, 0.41, 0.60, 0.59, 0.55, 0.42, 0.25, 0.47, 0.42, 0.29, 0.50, 0.54, 0.34, 0.19, 0.12, 0.31]
TEST_TRAILERS = 754


def test_all_positive_row_from_the_papers_supports():
    row = all_positive_from_supports(SUPPORTS, TEST_TRAILERS)
    # Our derivation from its supports: P_w 0.198, R_w 1, F1_w 0.320 (the paper prints 0.19 / 1 / 0.318).
    assert round(row["precision_weighted"], 3) == 0.198
    assert row["recall_weighted"] == 1.0
    assert round(row["f1_weighted"], 3) == 0.320
    assert row["f1_weighted"] == pytest.approx(0.318, abs=0.003)
    # Per genre F1 = 2p/(1+p): the paper's Random row, to its two printed decimals (it truncates one).
    assert np.abs(np.array(row["f1_per_class"]) - RANDOM_ROW).max() < 0.006


def test_all_positive_equals_sklearn_on_every_label_predicted():
    rng = np.random.default_rng(0)
    y = (rng.random((60, 7)) < [0.05, 0.1, 0.3, 0.5, 0.7, 0.2, 0.0]).astype(int)
    p, r, f, _ = precision_recall_fscore_support(y, np.ones_like(y), average="weighted", zero_division=0)
    got = all_positive_baseline(y)
    assert (
        got["precision_weighted"] == pytest.approx(p)
        and got["recall_weighted"] == pytest.approx(r)
        and got["f1_weighted"] == pytest.approx(f)
    )
    per = precision_recall_fscore_support(y, np.ones_like(y), average=None, zero_division=0)[2]
    np.testing.assert_allclose(got["f1_per_class"], per)
    assert got["classes_dropped"] == 1 and got["classes_scored"] == 6
    with pytest.raises(ValueError, match="no positive"):
        all_positive_baseline(np.zeros((3, 2)))


def test_weighted_mean_of_the_papers_image_row_is_its_f1w():
    assert weighted_mean(IMAGE_ROW, SUPPORTS) == pytest.approx(0.516, abs=0.0015)
    assert weighted_mean([1.0, np.nan, 3.0], [1, 5, 3]) == pytest.approx(2.5)


def test_per_class_table_rows_are_per_class_f1_and_average_to_f1w():
    rng = np.random.default_rng(1)
    y = (rng.random((80, 5)) < 0.35).astype(int)
    names = list("abcde")
    runs, summaries = {}, {}
    for k, name in enumerate(["model", "other"]):
        scores = np.clip(y * 0.4 + rng.random(y.shape) * (0.8 - 0.2 * k), 0, 1)
        runs[name] = per_class_metrics(y, scores, names, 0.3)
        summaries[name] = multilabel_metrics(y, scores, 0.3)
    table = per_class_table(runs, "f1", summaries)
    assert [r["model"] for r in table] == ["Support", "model", "other"]
    assert [table[0][n] for n in names] == list(y.sum(axis=0))
    for row, name in zip(table[1:], runs, strict=True):
        scores_f1 = [row[n] for n in names]
        assert scores_f1 == [r["f1"] for r in runs[name]]
        # Table 2's property: the support-weighted mean of the per-class F1 is F1_w.
        assert weighted_mean(scores_f1, [table[0][n] for n in names]) == pytest.approx(row["f1_weighted"])
    auprc = per_class_table(runs, "auprc")
    assert [auprc[1][n] for n in names] == [r["auprc"] for r in runs["model"]] and auprc[1]["f1_weighted"] == ""
    with pytest.raises(ValueError, match="labels"):
        per_class_table({"a": runs["model"], "b": runs["model"][:3]})


def test_dropped_classes_are_counted_and_stated():
    rng = np.random.default_rng(2)
    y = (rng.random((30, 4)) < 0.4).astype(int)
    y[:, 2] = 0
    m = multilabel_metrics(y, rng.random(y.shape))
    assert (m["classes_scored"], m["classes_dropped"]) == (3, 1)
    assert random_baseline(y, draws=2)["classes_dropped"] == 1
    note = auprc_note(m)
    assert "1 class(es)" in note and "3 scored" in note and "swaps" in note
    y[:, 2] = 1
    assert "All 4 classes" in auprc_note(multilabel_metrics(y, rng.random(y.shape)))


def _brute_force_matches(pred, truth, tol):
    from scipy.optimize import linear_sum_assignment

    if not pred or not truth:
        return 0
    ok = np.array([[a - tol <= c <= b + tol for c in pred] for a, b in truth], dtype=float)
    r, c = linear_sum_assignment(-ok)
    return int(ok[r, c].sum())


def test_boundary_scores_hand_case_and_brute_force():
    truth = [(10, 10), (30, 42), (60, 60)]  # cut, dissolve, cut
    s = boundary_scores([11, 36, 58, 80], truth, tolerance=2)
    assert (s["true_positives"], s["false_positives"], s["false_negatives"]) == (3, 1, 0)
    assert s["precision"] == 0.75 and s["recall"] == 1.0 and s["f1"] == pytest.approx(2 * 0.75 / 1.75)
    assert boundary_scores([13], [(10, 10)], tolerance=2)["true_positives"] == 0
    assert boundary_scores([], [])["f1"] == 1.0 and boundary_scores([5], [])["precision"] == 0.0
    rng = np.random.default_rng(5)
    for _ in range(300):
        starts = np.sort(rng.choice(100, rng.integers(0, 8), replace=False))
        truth = [(int(a), int(a + rng.integers(0, 6))) for a in starts]
        pred = [int(c) for c in rng.choice(110, rng.integers(0, 10), replace=False)]
        tol = int(rng.integers(0, 4))
        assert boundary_scores(pred, truth, tol)["true_positives"] == _brute_force_matches(pred, truth, tol)
