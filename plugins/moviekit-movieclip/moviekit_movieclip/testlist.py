"""The human-verified test list of the scene classifier, and its metric (mAP over classes).

Human-verified test list (``test_list``): a UTF-8 CSV file.  Blank lines and
lines starting with ``#`` are ignored; the first other line is the header,
which must name the columns ``video``, ``shot`` and ``labels`` (other columns
are allowed and ignored).  Each row is one verified shot:

* ``video``: the video id (``Video.id`` of the run's items);
* ``shot``: the 0-based index of the shot in the video (``Shot.index``, the
  ``shot`` of the CLIP labels);
* ``labels``: the scene labels the annotators kept, separated by ``;`` (at least
  one; shots marked "Not relevant" are left out of the list).

A (video, shot) pair appears once; labels must belong to the classifier's
vocabulary.  Errors name the file and line.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from moviekit import (
    MoviekitError,
)

from .csvfile import iter_csv_records

# -- the human-verified test list --------------------------------------------------------------


@dataclass(frozen=True)
class VerifiedShot:
    video: str
    shot: int
    labels: tuple[str, ...]
    line: int = 0


TEST_LIST_COLUMNS = ("video", "shot", "labels")


def read_test_list(path: str | Path, vocabulary: Iterable[str] | None = None) -> list[VerifiedShot]:
    """Parse a human-verified test list (format in the module docstring); errors name the file and line."""
    vocab = set(vocabulary) if vocabulary is not None else None
    out: list[VerifiedShot] = []
    seen: dict[tuple[str, int], int] = {}
    for rec in iter_csv_records(path, TEST_LIST_COLUMNS, what="test list", example=",".join(TEST_LIST_COLUMNS)):
        shot = rec.shot_index()
        labels = tuple(lab.strip() for lab in rec["labels"].split(";") if lab.strip())
        if not labels:
            raise rec.error("no labels (leave shots marked 'Not relevant' out of the list)")
        if vocab is not None:
            unknown = [lab for lab in labels if lab not in vocab]
            if unknown:
                raise rec.error(f"label(s) {', '.join(map(repr, unknown))} not in the classifier's vocabulary")
        key = (rec["video"], shot)
        if key in seen:
            raise rec.error(f"video {key[0]} shot {shot} is already listed on line {seen[key]}")
        seen[key] = rec.line
        out.append(VerifiedShot(rec["video"], shot, labels, rec.line))
    return out


def write_test_list(path: str | Path, shots: Iterable[VerifiedShot | tuple[str, int, Iterable[str]]]) -> Path:
    """Write a human-verified test list (the inverse of :func:`read_test_list`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(TEST_LIST_COLUMNS)
        for s in shots:
            video, shot, labels = (s.video, s.shot, s.labels) if isinstance(s, VerifiedShot) else s
            labels = list(labels)
            bad = [lab for lab in labels if ";" in lab]
            if bad:
                raise MoviekitError(f"label {bad[0]!r} contains ';', the label separator of the test list format")
            w.writerow([video, int(shot), ";".join(labels)])
    return path


def mean_average_precision(y_true: np.ndarray, scores: np.ndarray) -> float:
    """mAP: scikit-learn's average precision per class, averaged over the classes with a positive."""
    from sklearn.metrics import average_precision_score

    y_true = np.asarray(y_true).astype(int)
    scores = np.asarray(scores, np.float64)
    present = np.flatnonzero(y_true.sum(0) > 0)
    if len(present) == 0:
        raise MoviekitError("no positive label in the evaluation set: mAP is undefined")
    return float(np.mean([average_precision_score(y_true[:, j], scores[:, j]) for j in present]))
