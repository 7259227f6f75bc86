"""The place labels of the synthetic movies: a subset of the MovieCLIP visual-scene taxonomy, shipped as data (`places.csv`)."""

from __future__ import annotations

import csv
import functools
from pathlib import Path


@functools.lru_cache(maxsize=1)
def _all_places() -> tuple[str, ...]:
    path = Path(__file__).with_name("places.csv")
    lines = [line for line in path.read_text().splitlines() if line and not line.startswith("#")]
    return tuple(row["label"] for row in csv.DictReader(lines))


def place_labels(n: int | None = None) -> list[str]:
    """The first ``n`` place labels (all when None)."""
    places = list(_all_places())
    return places if n is None else places[:n]
