"""Evaluation metrics, computed with scikit-learn."""

from __future__ import annotations

from typing import Any

import numpy as np


def multilabel_metrics(y_true: np.ndarray, scores: np.ndarray, threshold: float = 0.5) -> dict[str, Any]:
    """AUPRC (micro, macro, weighted) and weighted P/R/F1 at ``threshold``.

    Classes without a positive in ``y_true`` are left out of the micro, macro and
    weighted AUPRC (their AP is undefined); ``classes_scored`` says how many
    classes counted and ``classes_dropped`` how many were left out.  The names
    are scikit-learn's (see :data:`AUPRC_NAMES` for papers that swap them).
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
        "classes_dropped": int((~present).sum()),
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


#: Random score draws averaged for the thresholded metrics of the random baseline.
RANDOM_DRAWS = 100


def expected_random_ap(n: int, k: int) -> float:
    """Expected average precision of a uniformly random ranking of ``n`` items with ``k`` positives.

    The positive at rank ``r`` contributes its precision ``(1 + (r - 1)(k - 1)/(n - 1)) / r`` in
    expectation, so ``E[AP] = (H_n + (k - 1)/(n - 1) * (n - H_n)) / n`` with ``H_n`` the n-th harmonic
    number.  It is ``k/n`` (the prevalence) only for large ``n``: on small test sets random scores
    earn much more, which is why the baseline is computed rather than assumed.
    """
    if k <= 0 or n <= 0:
        return float("nan")
    if n == 1:
        return 1.0
    h = float(np.sum(1.0 / np.arange(1, n + 1)))
    return (h + (k - 1) / (n - 1) * (n - h)) / n


def random_baseline(y_true: np.ndarray, threshold: float = 0.5, seed: int = 0, draws: int = RANDOM_DRAWS) -> dict[str, Any]:
    """The expected metrics of uniform random scores on the same targets.

    AUPRC micro, macro and weighted are exact expectations (:func:`expected_random_ap`);
    weighted precision, recall and F1 are averaged over ``draws`` seeded draws.
    """
    from sklearn.metrics import precision_recall_fscore_support

    y = np.asarray(y_true).astype(int)
    n, support = y.shape[0], y.sum(axis=0)
    present = support > 0
    if not present.any():
        raise ValueError("no positive labels in the evaluation set")
    per_class = np.array([expected_random_ap(n, int(k)) for k in support[present]])
    rng = np.random.default_rng(seed)
    prf = np.array(
        [
            precision_recall_fscore_support(y, (rng.random(y.shape) >= threshold).astype(int), average="weighted", zero_division=0)[:3]
            for _ in range(draws)
        ]
    )
    p, r, f = prf.mean(axis=0)
    return {
        "auprc_micro": expected_random_ap(n * int(present.sum()), int(y.sum())),  # over the scored classes, like the model
        "auprc_macro": float(per_class.mean()),
        "auprc_weighted": float(np.average(per_class, weights=support[present])),
        "precision_weighted": float(p),
        "recall_weighted": float(r),
        "f1_weighted": float(f),
        "classes_scored": int(present.sum()),
        "classes_dropped": int((~present).sum()),
        "threshold": threshold,
        "draws": draws,
    }


def boundary_scores(predicted: list[int], truth: list[tuple[int, int]], tolerance: int = 2) -> dict[str, Any]:
    """Precision, recall and F1 of shot boundaries against known transitions.

    ``predicted`` are cut frames (the first frame of each new shot); ``truth`` are transitions as
    ``(first, last)`` frames: ``(c, c)`` for a hard cut at ``c``, ``(first mixed frame, first frame
    of the new shot)`` for a dissolve or fade.  A cut found within ``tolerance`` frames of a
    transition's range matches it; each cut matches at most one transition and vice versa, and the
    matching is a maximum one (transitions taken by their end, each given the earliest free cut in
    range, which is optimal for points against intervals).
    """
    cuts = sorted(int(c) for c in predicted)
    used = [False] * len(cuts)
    matched: list[tuple[int, int]] = []
    for k, (a, b) in sorted(enumerate(truth), key=lambda kv: (kv[1][1], kv[1][0])):
        lo, hi = a - tolerance, b + tolerance
        for i, c in enumerate(cuts):
            if not used[i] and lo <= c <= hi:
                used[i] = True
                matched.append((k, c))
                break
    tp = len(matched)
    precision = tp / len(cuts) if cuts else (1.0 if not truth else 0.0)
    recall = tp / len(truth) if truth else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "true_positives": tp,
        "false_positives": len(cuts) - tp,
        "false_negatives": len(truth) - tp,
        "matched": sorted(k for k, _ in matched),
        "tolerance": tolerance,
    }


# -- the all-positive baseline, per-class tables and AUPRC names ----------------------------


def all_positive_from_supports(supports: Any, n: int) -> dict[str, Any]:
    """Weighted P/R/F1 of predicting every label for each of ``n`` items, from per-class ``supports``.

    Each class's precision is its prevalence ``p = support / n``, its recall 1 and its F1
    ``2p / (1 + p)``; the weighted means weight by support (classes without a positive weigh 0,
    as in scikit-learn's ``average="weighted"``).  This is the "Random" row of tables such as
    MMX-Trailer-20's Table 2, whose R_w is 1.
    """
    s = np.asarray(supports, dtype=np.float64)
    if n <= 0 or (s < 0).any() or (s > n).any():
        raise ValueError(f"supports must lie in [0, n] with n > 0 (n={n})")
    if s.sum() <= 0:
        raise ValueError("no positive labels in the evaluation set")
    p = s / n
    f1 = 2 * p / (1 + p)
    return {
        "precision_weighted": float(np.average(p, weights=s)),
        "recall_weighted": 1.0,
        "f1_weighted": float(np.average(f1, weights=s)),
        "f1_per_class": [float(x) for x in f1],
        "precision_per_class": [float(x) for x in p],
        "classes_scored": int((s > 0).sum()),
        "classes_dropped": int((s == 0).sum()),
    }


def all_positive_baseline(y_true: np.ndarray) -> dict[str, Any]:
    """:func:`all_positive_from_supports` for a ``(n_items, n_classes)`` 0/1 target matrix."""
    y = np.asarray(y_true).astype(int)
    return all_positive_from_supports(y.sum(axis=0), y.shape[0])


def weighted_mean(values: Any, supports: Any) -> float:
    """Support-weighted mean of per-class ``values``, skipping NaN (classes whose value is undefined)."""
    v, w = np.asarray(values, dtype=np.float64), np.asarray(supports, dtype=np.float64)
    keep = ~np.isnan(v) & (w > 0)
    return float(np.average(v[keep], weights=w[keep])) if keep.any() else float("nan")


#: Summary columns beside the per-class ones in :func:`per_class_table` (Table 2's order).
TABLE_SUMMARY = ("f1_weighted", "auprc_weighted", "precision_weighted", "recall_weighted")


def per_class_table(
    runs: dict[str, list[dict[str, Any]]],
    metric: str = "f1",
    summaries: dict[str, dict[str, Any]] | None = None,
    summary_keys: tuple[str, ...] = TABLE_SUMMARY,
) -> list[dict[str, Any]]:
    """Rows of a per-class table: a ``Support`` row, then one row per run (``model`` first).

    ``runs`` maps a run's name to its :func:`per_class_metrics` rows; each row of the table holds
    that run's ``metric`` (``f1``, ``auprc``, ``precision``, ``recall``) per label, in the first
    run's label order, then the run's ``summary_keys`` from ``summaries`` when given (blank when
    missing).  All runs must have the same labels.
    """
    if not runs:
        return []
    first = next(iter(runs.values()))
    labels = [r["label"] for r in first]
    table: list[dict[str, Any]] = [{"model": "Support", **{r["label"]: r["support"] for r in first}, **dict.fromkeys(summary_keys, "")}]
    for name, rows in runs.items():
        by_label = {r["label"]: r for r in rows}
        if set(by_label) != set(labels):
            raise ValueError(f"run {name!r} has labels {sorted(by_label)}, expected {sorted(labels)}")
        row: dict[str, Any] = {"model": name, **{lab: by_label[lab][metric] for lab in labels}}
        summary = (summaries or {}).get(name, {})
        row.update({k: summary.get(k, "") for k in summary_keys})
        table.append(row)
    return table


#: What scikit-learn's AUPRC averages compute, and the names some papers give them instead
#: (MMX-Trailer-20 §4.2 calls the per-label mean "micro" and the pooled one "macro").
AUPRC_NAMES = {
    "auprc_micro": "scikit-learn 'micro': one precision-recall curve over all (item, label) pairs pooled; MMX-Trailer-20's text calls this macro, AU(PRC-bar)",
    "auprc_macro": "scikit-learn 'macro': the mean of the per-label areas; MMX-Trailer-20's text calls this micro, AU(PRC)-bar",
    "auprc_weighted": "scikit-learn 'weighted': per-label areas averaged with the labels' supports as weights (the paper's AU(PRC)_w)",
}


def auprc_note(metrics: dict[str, Any]) -> str:
    """One sentence for a report: the names are scikit-learn's, and how many classes were dropped."""
    scored = int(metrics.get("classes_scored", 0))
    dropped = int(metrics.get("classes_dropped", 0))
    text = (
        "AUPRC micro/macro/weighted are scikit-learn's averages (micro pools every (item, label) pair; macro is the mean "
        "of per-label areas); MMX-Trailer-20's text swaps the names micro and macro."
    )
    if dropped:
        text += f" {dropped} class(es) with no positive in the evaluation split were dropped from the AUPRC averages ({scored} scored)."
    else:
        text += f" All {scored} classes had a positive in the evaluation split."
    return text
