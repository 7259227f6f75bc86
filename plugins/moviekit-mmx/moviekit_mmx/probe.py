"""The linear-probe baseline: a one-vs-rest logistic regression on each trailer's clip features
averaged per expert and concatenated (standardised on the train split), and the sentence that says
whether the gated network beats it.

Pure functions over arrays and items; ``mmx_genre`` and ``mmx_ablation`` score the probe with the same
metrics as the network (:func:`moviekit.multilabel_metrics`).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from moviekit import MoviekitError

#: The setting name of the probe's row in ``ablation.csv`` and its key in ``metrics.json``.
PROBE_SETTING = "linear probe"
PROBE_KEY = "linear_probe"
PROBE_DESCRIPTION = (
    "one-vs-rest logistic regression (scikit-learn) on each trailer's clip features averaged per expert and "
    "concatenated, standardised on the train split; trained on the same train split, scored like the model"
)


def mean_features(items: list[Any], experts: list[str] | None = None, max_clips: int | None = None) -> np.ndarray:
    """One row per item: each expert's clip features averaged over the item's (first ``max_clips``) clips and
    concatenated in ``experts`` order (sorted names by default). A descriptor set per clip (audio) is averaged
    over its descriptors too (a set has no order), so every expert gives its last axis; no clips give zeros."""
    if not items:
        return np.zeros((0, 0), np.float32)
    first = items[0].features
    if first is None:
        raise MoviekitError(f"item {items[0].id} has no features: add experts (or use a features_dir dataset)")
    experts = list(experts or sorted(first.arrays))
    rows = []
    for it in items:
        arrays = it.features.arrays if it.features is not None else {}
        parts = []
        for e in experts:
            if e not in arrays:
                raise MoviekitError(f"item {it.id} has no '{e}' features (has {sorted(arrays)})")
            a = np.asarray(arrays[e], dtype=np.float64)[:max_clips]
            flat = a.reshape(-1, a.shape[-1]) if a.ndim > 1 else a.reshape(-1, 1)
            parts.append(flat.mean(axis=0) if len(flat) else np.zeros(flat.shape[-1]))
        rows.append(np.concatenate(parts))
    return np.stack(rows).astype(np.float32)


def probe_scores(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    c: float = 1.0,
    max_iter: int = 1000,
    balanced: bool = True,
    seed: int = 0,
) -> np.ndarray:
    """Per-class probabilities for ``x_test`` of a one-vs-rest logistic regression (L2, inverse strength ``c``,
    lbfgs) fitted on ``x_train`` standardised with the train mean and std. ``balanced`` weights each class's
    positives by negatives/positives, as the network's BCE ``pos_weight`` does. A class that is constant in
    train scores that constant (scikit-learn's one-vs-rest rule)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    y_train = np.asarray(y_train).astype(int)
    if len(x_train) < 2:
        raise MoviekitError("the linear probe needs at least 2 train trailers")
    lr = LogisticRegression(C=c, max_iter=max_iter, class_weight="balanced" if balanced else None, random_state=seed)
    model = make_pipeline(StandardScaler(), OneVsRestClassifier(lr))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.filterwarnings("ignore", message="Label .* is present in all training examples")
        model.fit(x_train, y_train)
        return np.asarray(model.predict_proba(x_test), dtype=np.float64)


#: The headline metrics the verdict compares, with their names in the sentence.
VERDICT_METRICS = (
    ("auprc_micro", "AUPRC micro"),
    ("auprc_macro", "AUPRC macro"),
    ("auprc_weighted", "AUPRC weighted"),
    ("precision_weighted", "P_w"),
    ("recall_weighted", "R_w"),
    ("f1_weighted", "F1_w"),
)


def probe_verdict(model: dict[str, Any], probe: dict[str, Any], metric: str = "auprc_macro") -> tuple[bool | None, str]:
    """(whether the gated network beats the linear probe on ``metric``, one plain sentence saying so and on how
    many headline metrics it is ahead); (None, why) when either value is missing."""
    names = dict(VERDICT_METRICS)
    a, b = model.get(metric), probe.get(metric)
    if not isinstance(a, (int, float)) or not isinstance(b, (int, float)):
        return None, f"The gated network and the linear probe cannot be compared: no {names.get(metric, metric)} for both."
    ahead = [
        n
        for k, n in VERDICT_METRICS
        if isinstance(model.get(k), (int, float)) and isinstance(probe.get(k), (int, float)) and model[k] > probe[k]
    ]
    compared = sum(isinstance(model.get(k), (int, float)) and isinstance(probe.get(k), (int, float)) for k, _ in VERDICT_METRICS)
    beats = bool(a > b)
    where = f"it is ahead on {len(ahead)} of {compared} headline metrics" + (f" ({', '.join(ahead)})" if ahead else "")
    if beats:
        head = f"The gated network beats the linear probe on {names.get(metric, metric)}: {a:.3f} vs {b:.3f} ({a - b:+.3f}); {where}."
    else:
        head = (
            f"The gated network does not beat the linear probe on {names.get(metric, metric)}: {a:.3f} vs {b:.3f} ({a - b:+.3f}); {where}. "
            "On this data a logistic regression on averaged expert features does at least as well, so the gated network does not earn its keep here."
        )
    return beats, head
