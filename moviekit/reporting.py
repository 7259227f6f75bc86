"""What tasks write for people to read: CSV tables, and the one layout of a classification report
(a metrics JSON file beside a per-class CSV table)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

#: The columns of a per-class table, after the label column (rows of :func:`~moviekit.classification_report`).
PER_CLASS_COLUMNS = ("support", "auprc", "precision", "recall", "f1", "random_auprc")


def write_csv(
    path: str | Path, rows: list[dict[str, Any]], fields: list[str] | None = None, empty_fields: tuple[str, ...] = ("label",)
) -> None:
    """``rows`` as a CSV with a header: ``fields``, else the first row's keys, else ``empty_fields``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields or (list(rows[0]) if rows else list(empty_fields)))
        w.writeheader()
        w.writerows(rows)


def write_classification_report(
    out_dir: str | Path,
    metrics: dict[str, Any],
    rows: list[dict[str, Any]],
    metrics_file: str = "metrics.json",
    per_class_file: str = "per_class.csv",
    label_column: str = "label",
) -> list[str]:
    """Write ``metrics`` as JSON and the per-class ``rows`` of
    :func:`~moviekit.classification_report` as a CSV of ``label_column`` then
    :data:`PER_CLASS_COLUMNS` (then any other keys the rows have); returns the two file names."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / metrics_file).write_text(json.dumps(metrics, indent=2, default=float))
    extra = [k for k in (rows[0] if rows else {}) if k != "label" and k not in PER_CLASS_COLUMNS]
    table = [{label_column: r["label"], **{k: r[k] for k in PER_CLASS_COLUMNS if k in r}, **{k: r[k] for k in extra}} for r in rows]
    write_csv(out / per_class_file, table, [label_column, *PER_CLASS_COLUMNS, *extra])
    return [metrics_file, per_class_file]
