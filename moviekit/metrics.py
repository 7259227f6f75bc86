"""Evaluation metrics, computed with scikit-learn."""

from __future__ import annotations

from typing import Any

import numpy as np


def multilabel_metrics(y_true: np.ndarray, scores: np.ndarray, threshold: float = 0.5) -> dict[str, Any]:
    """AUPRC (micro, macro, weighted) and weighted P/R/F1 at ``threshold``.

    Classes without a positive in ``y_true`` are left out of the macro and
    weighted AUPRC (their AP is undefined); ``classes_scored`` says how many
    classes counted.
    """
    from sklearn.metrics import average_precision_score, precision_recall_fscore_support

    y_true = np.asarray(y_true).astype(int)
    scores = np.asarray(scores, dtype=np.float64)
    present = y_true.sum(axis=0) > 0
    if not present.any():
        raise ValueError("no positive labels in the evaluation set")
    yt, sc = y_true[:, present], scores[:, present]
    pred = (scores >= threshold).astype(int)
    p, r, f, _ = precision_recall_fscore_support(y_true, pred, average="weighted", zero_division=0)
    return {
        "auprc_micro": float(average_precision_score(yt, sc, average="micro")),
        "auprc_macro": float(average_precision_score(yt, sc, average="macro")),
        "auprc_weighted": float(average_precision_score(yt, sc, average="weighted")),
        "precision_weighted": float(p),
        "recall_weighted": float(r),
        "f1_weighted": float(f),
        "classes_scored": int(present.sum()),
        "threshold": threshold,
    }


def per_class_metrics(y_true: np.ndarray, scores: np.ndarray, names: list[str], threshold: float = 0.5) -> list[dict[str, Any]]:
    """Per-class AP, precision, recall, F1 and support."""
    from sklearn.metrics import average_precision_score, precision_recall_fscore_support

    y_true = np.asarray(y_true).astype(int)
    pred = (np.asarray(scores) >= threshold).astype(int)
    p, r, f, s = precision_recall_fscore_support(y_true, pred, average=None, zero_division=0, labels=list(range(len(names))))
    rows = []
    for j, name in enumerate(names):
        ap = float(average_precision_score(y_true[:, j], scores[:, j])) if y_true[:, j].any() else float("nan")
        rows.append({"label": name, "auprc": ap, "precision": float(p[j]), "recall": float(r[j]), "f1": float(f[j]), "support": int(s[j])})
    return rows


def random_baseline(y_true: np.ndarray, threshold: float = 0.5, seed: int = 0) -> dict[str, Any]:
    """The metrics of uniform random scores on the same targets."""
    rng = np.random.default_rng(seed)
    return multilabel_metrics(y_true, rng.random(np.shape(y_true)), threshold)
