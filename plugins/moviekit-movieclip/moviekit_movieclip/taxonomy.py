"""The MovieCLIP visual scene taxonomy: 179 labels with the source each came from.

The taxonomy ships as package data (``data/movieclip_taxonomy.csv``, columns
``label,source``; sources ``movie_slugline``, ``common``, ``hvu`` and
``human_expert`` as in Sec. 1.1 of the supplementary).  Users can supply their
own taxonomy: a CSV file with a ``label`` column (any other columns are kept,
aligned with the labels) or a text file with one label per line (blank lines
and lines starting with ``#`` are skipped).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from moviekit import MoviekitError

#: Number of labels of the MovieCLIP taxonomy.
NUM_LABELS = 179
#: Sources of the labels (supplementary Sec. 1.1) and how many labels each contributes.
SOURCES = {"movie_slugline": 69, "common": 68, "hvu": 26, "human_expert": 16}


@dataclass(frozen=True)
class Taxonomy:
    """An ordered list of scene labels plus any extra per-label columns (e.g. ``source``)."""

    labels: tuple[str, ...]
    columns: dict[str, tuple[str, ...]] = field(default_factory=dict)
    origin: str = ""

    def __len__(self) -> int:
        return len(self.labels)

    def index(self, label: str) -> int:
        return self.labels.index(label)

    def column(self, name: str) -> dict[str, str]:
        """``{label: value}`` of an extra column."""
        if name not in self.columns:
            raise KeyError(f"taxonomy {self.origin} has no column {name!r} (columns: {sorted(self.columns)})")
        return dict(zip(self.labels, self.columns[name]))


def default_taxonomy_path() -> Path:
    """Path of the packaged MovieCLIP taxonomy CSV."""
    return Path(str(resources.files("moviekit_movieclip") / "data" / "movieclip_taxonomy.csv"))


def _check(labels: list[str], origin: str) -> None:
    if not labels:
        raise MoviekitError(f"taxonomy {origin}: no labels")
    seen: set[str] = set()
    for i, lab in enumerate(labels):
        if not lab:
            raise MoviekitError(f"taxonomy {origin}: label {i + 1} is empty")
        if lab in seen:
            raise MoviekitError(f"taxonomy {origin}: label {lab!r} appears more than once")
        seen.add(lab)


def taxonomy_from_labels(labels: list[str] | tuple[str, ...], origin: str = "<labels>") -> Taxonomy:
    """A taxonomy from a list of labels (stripped, checked for empties and duplicates)."""
    clean = [str(x).strip() for x in labels]
    _check(clean, origin)
    return Taxonomy(labels=tuple(clean), origin=origin)


def load_taxonomy(path: str | Path | None = None) -> Taxonomy:
    """Load a taxonomy; ``None`` gives the packaged 179-label MovieCLIP taxonomy."""
    default = path is None
    p = default_taxonomy_path() if default else Path(path).expanduser()
    if not p.is_file():
        raise MoviekitError(f"taxonomy file not found: {p} (give a CSV with a 'label' column or a text file with one label per line)")
    text = p.read_text(encoding="utf-8-sig")
    if p.suffix.lower() in (".csv", ".tsv"):
        reader = csv.DictReader(text.splitlines(), delimiter="\t" if p.suffix.lower() == ".tsv" else ",")
        fields = [f.strip() for f in (reader.fieldnames or [])]
        key = next((f for f in (reader.fieldnames or []) if f.strip().lower() == "label"), None)
        if key is None:
            raise MoviekitError(f"taxonomy {p}: no 'label' column (columns: {fields})")
        rows = [r for r in reader if any((v or "").strip() for v in r.values())]
        labels = [(r[key] or "").strip() for r in rows]
        extra = [f for f in (reader.fieldnames or []) if f != key]
        columns = {f.strip(): tuple((r.get(f) or "").strip() for r in rows) for f in extra}
    else:
        labels = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
        columns = {}
    _check(labels, str(p))
    tax = Taxonomy(labels=tuple(labels), columns=columns, origin=str(p))
    if default and len(tax) != NUM_LABELS:  # pragma: no cover - a broken install
        raise MoviekitError(
            f"the packaged MovieCLIP taxonomy {p} has {len(tax)} labels, expected {NUM_LABELS}; reinstall moviekit-movieclip"
        )
    return tax


def resolve_taxonomy(path: str | None = None, labels: list[str] | None = None) -> Taxonomy:
    """The taxonomy a component config asks for: inline ``labels``, a ``path``, or the packaged one."""
    if labels is not None and path is not None:
        raise MoviekitError("give either a taxonomy file or inline labels, not both")
    if labels is not None:
        return taxonomy_from_labels(labels, origin="<config labels>")
    return load_taxonomy(path)
