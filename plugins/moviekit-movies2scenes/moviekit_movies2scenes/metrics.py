"""Downstream metrics: place retrieval precision@k (faiss), MovieNet scene-boundary metrics, mAP.

Scene boundary detection follows the MovieNet / LGSS evaluation:

* **AP**: average precision of the boundary scores over every shot transition (scikit-learn).
* **mIoU**: scenes are the runs of shots between boundaries, as frame ranges; for each
  ground-truth scene the best IoU with a predicted scene, averaged, and the same from the
  predicted side; the two means are averaged (per movie, then over movies).
* **Recall@3s**: the share of ground-truth boundaries with a predicted boundary within 3 seconds.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from moviekit import IndexConfig, build_index, search_index

# -- retrieval -----------------------------------------------------------------------------


def knn_l2(gallery: np.ndarray, queries: np.ndarray, k: int, index: IndexConfig | None = None) -> np.ndarray:
    """Indices of the ``k`` nearest gallery rows of each query by L2 distance (faiss; exact unless ``index`` says otherwise)."""
    built = build_index(gallery, index, metric="l2")
    _, idx = search_index(built, queries, k, index)
    return idx


def precision_at_k(
    gallery: np.ndarray,
    gallery_tags: list[list[str]],
    queries: np.ndarray,
    query_place: list[str],
    ks: tuple[int, ...] = (1, 5, 10),
    index: IndexConfig | None = None,
) -> dict[str, Any]:
    """Table 2: per place and over all queries, the share of a query's ``k`` nearest training scenes tagged with its place.

    Returns ``{"all": {"p@1": ..}, "per_place": {place: {"p@1": .., "queries": n}}}`` in percent.
    """
    idx = knn_l2(gallery, queries, max(ks), index)
    hits = np.array([[query_place[q] in gallery_tags[g] for g in row] for q, row in enumerate(idx)], dtype=np.float64)
    out: dict[str, Any] = {"all": {f"p@{k}": 100 * float(hits[:, :k].mean()) for k in ks}, "per_place": {}}
    out["all"]["queries"] = len(query_place)
    for place in sorted(set(query_place)):
        rows = [q for q, p in enumerate(query_place) if p == place]
        out["per_place"][place] = {**{f"p@{k}": 100 * float(hits[rows, :k].mean()) for k in ks}, "queries": len(rows)}
    return out


# -- scene boundaries ----------------------------------------------------------------------


def boundaries_to_scenes(boundary: np.ndarray, shot_frames: np.ndarray) -> list[tuple[int, int]]:
    """Frame ranges ``[start, end)`` of the scenes cut at shot transitions where ``boundary`` is true.

    ``boundary[i]`` says whether a scene ends after shot ``i`` (length ``n_shots - 1``);
    ``shot_frames`` is ``(n_shots, 2)`` half-open frame ranges.
    """
    shot_frames = np.asarray(shot_frames)
    scenes, start = [], 0
    for i, b in enumerate(np.asarray(boundary, bool)):
        if b:
            scenes.append((int(shot_frames[start, 0]), int(shot_frames[i, 1])))
            start = i + 1
    scenes.append((int(shot_frames[start, 0]), int(shot_frames[-1, 1])))
    return scenes


def _best_iou(a: list[tuple[int, int]], b: list[tuple[int, int]]) -> float:
    out = []
    for s, e in a:
        best = 0.0
        for s2, e2 in b:
            inter = max(0, min(e, e2) - max(s, s2))
            union = max(e, e2) - min(s, s2)
            best = max(best, inter / union if union else 0.0)
        out.append(best)
    return float(np.mean(out)) if out else 0.0


def scene_miou(gt: np.ndarray, pred: np.ndarray, shot_frames: np.ndarray) -> float:
    """MovieNet's mIoU of one movie: mean of the gt->pred and pred->gt best-IoU averages."""
    g, p = boundaries_to_scenes(gt, shot_frames), boundaries_to_scenes(pred, shot_frames)
    return 0.5 * (_best_iou(g, p) + _best_iou(p, g))


def recall_at_seconds(gt: np.ndarray, pred: np.ndarray, boundary_times: np.ndarray, seconds: float = 3.0) -> tuple[int, int]:
    """(recalled, total) ground-truth boundaries with a predicted boundary within ``seconds``.

    ``boundary_times[i]`` is the time of the transition after shot ``i`` (the next shot's start).
    """
    t = np.asarray(boundary_times, np.float64)
    gt_t, pr_t = t[np.asarray(gt, bool)], t[np.asarray(pred, bool)]
    if len(gt_t) == 0:
        return 0, 0
    if len(pr_t) == 0:
        return 0, len(gt_t)
    hit = np.abs(gt_t[:, None] - pr_t[None, :]).min(axis=1) <= seconds + 1e-9
    return int(hit.sum()), len(gt_t)


def sbd_metrics(movies: list[dict[str, Any]], threshold: float = 0.5, seconds: float = 3.0) -> dict[str, float]:
    """AP (pooled over transitions), mIoU (mean over movies) and Recall@3s (pooled) of boundary scores.

    Each movie is ``{"gt": (n-1,) 0/1, "scores": (n-1,), "shot_frames": (n, 2), "times": (n-1,)}``.
    """
    from sklearn.metrics import average_precision_score

    y = np.concatenate([m["gt"] for m in movies]).astype(int)
    s = np.concatenate([m["scores"] for m in movies]).astype(np.float64)
    miou, rec, tot = [], 0, 0
    for m in movies:
        pred = np.asarray(m["scores"]) >= threshold
        miou.append(scene_miou(m["gt"], pred, m["shot_frames"]))
        r, t = recall_at_seconds(m["gt"], pred, m["times"], seconds)
        rec, tot = rec + r, tot + t
    return {
        "ap": float(average_precision_score(y, s)) if y.any() else float("nan"),
        "miou": float(np.mean(miou)) if miou else float("nan"),
        "recall_at_3s": rec / tot if tot else float("nan"),
        "positive_rate": float(y.mean()),
        "transitions": int(len(y)),
    }


def mean_ap(y_true: np.ndarray, scores: np.ndarray) -> float:
    """Macro mAP over the classes with a positive (scikit-learn's average precision)."""
    from sklearn.metrics import average_precision_score

    y_true = np.asarray(y_true).astype(int)
    present = y_true.sum(0) > 0
    return float(average_precision_score(y_true[:, present], np.asarray(scores)[:, present], average="macro"))


# -- heads ---------------------------------------------------------------------------------


def top1(scores: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy of ``(n, classes)`` scores (a label of -1, unseen in training, is never right)."""
    return float((scores.argmax(1) == labels).mean())


def mse(pred: np.ndarray, target: np.ndarray) -> float:
    """Mean squared error in the targets' units (LVU's regression metric); ``pred`` may be ``(n, 1)``."""
    return float(((np.asarray(pred, np.float64).ravel() - np.asarray(target, np.float64)) ** 2).mean())
