"""User data for Movies2Scenes: a movie-metadata table, co-watch pairs and MovieNet scene annotations.

* ``movies.csv``: ``movie,genres,synopsis[,year][,split]`` (one row per movie; ``genres``
  ``|``-separated; the ``movie`` value is the video file's stem or relative path).
* ``cowatch.csv`` (optional): ``movie_a,movie_b`` (one watched-together pair per row).
* MovieNet scene annotations (optional): ``<dir>/<movie>.json`` as MovieNet's ``annotation/<imdb>.json``:
  ``{"scene": [{"shot": [first, last], "frame": [first, last], "place_tag": [...]}, ...]}``
  (inclusive ranges as MovieNet writes them).

Every malformed row is an error naming ``file:line``.
"""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path
from typing import Any

from pydantic import Field

from moviekit import Config, DatasetSource, MoviekitError, Video

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v", ".mpg", ".mpeg", ".ts")


def read_movie_table(path: str | Path) -> list[dict[str, Any]]:
    """Rows ``{movie, genres: [...], synopsis, year: int | None, split: str | None, line}`` of a movies table."""
    path = Path(path)
    if not path.is_file():
        raise MoviekitError(f"{path}: movie table not found")
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        cols = reader.fieldnames or []
        missing = [c for c in ("movie", "genres", "synopsis") if c not in cols]
        if missing:
            raise MoviekitError(f"{path}:1: needs columns movie, genres, synopsis (missing {', '.join(missing)}; has {', '.join(cols)})")
        rows, seen = [], {}
        for row in reader:
            n = reader.line_num
            if None in row or any(v is None for v in row.values()):
                raise MoviekitError(f"{path}:{n}: wrong number of fields (header has {len(cols)})")
            movie = row["movie"].strip()
            if not movie:
                raise MoviekitError(f"{path}:{n}: empty movie id")
            if movie in seen:
                raise MoviekitError(f"{path}:{n}: movie {movie!r} already listed on line {seen[movie]}")
            seen[movie] = n
            year = (row.get("year") or "").strip()
            if year and not year.lstrip("-").isdigit():
                raise MoviekitError(f"{path}:{n}: year {year!r} is not an integer")
            split = (row.get("split") or "").strip() or None
            if split not in (None, "train", "val", "test"):
                raise MoviekitError(f"{path}:{n}: split must be train, val or test, got {split!r}")
            extra = {k: v for k, v in row.items() if k not in ("movie", "genres", "synopsis", "year", "split")}
            genres = [g.strip() for g in row["genres"].split("|") if g.strip()]
            rows.append(
                {
                    "movie": movie,
                    "genres": genres,
                    "synopsis": row["synopsis"].strip(),
                    "year": int(year) if year else None,
                    "split": split,
                    "line": n,
                    "extra": extra,
                }
            )
    return rows


def read_cowatch(path: str | Path, known: set[str]) -> list[tuple[str, str]]:
    """Co-watch pairs ``(a, b)`` of a ``movie_a,movie_b`` CSV; unknown movies are errors with ``file:line``."""
    path = Path(path)
    if not path.is_file():
        raise MoviekitError(f"{path}: co-watch file not found")
    pairs = []
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None or [h.strip() for h in header[:2]] != ["movie_a", "movie_b"]:
            raise MoviekitError(f"{path}:1: header must be movie_a,movie_b (got {header})")
        for row in reader:
            n = reader.line_num
            if not row or not "".join(row).strip():
                continue
            if len(row) != 2:
                raise MoviekitError(f"{path}:{n}: expected 2 fields (movie_a,movie_b), got {len(row)}")
            a, b = row[0].strip(), row[1].strip()
            for m in (a, b):
                if m not in known:
                    raise MoviekitError(f"{path}:{n}: movie {m!r} is not in the movie table")
            if a == b:
                raise MoviekitError(f"{path}:{n}: a movie cannot be co-watched with itself ({a!r})")
            pairs.append((a, b))
    return pairs


def read_movienet_scenes(path: str | Path) -> list[dict[str, Any]]:
    """Scenes ``{start_frame, end_frame (half-open), shots: [first, end), places}`` of a MovieNet annotation file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise MoviekitError(f"{path}:{e.lineno}: not JSON ({e.msg})") from None
    scenes = data.get("scene") if isinstance(data, dict) else None
    if not isinstance(scenes, list):
        raise MoviekitError(
            f"{path}: no 'scene' list (MovieNet annotation format: {{'scene': [{{'shot': [a, b], 'frame': [a, b], 'place_tag': [...]}}]}})"
        )
    out = []
    for i, s in enumerate(scenes):
        try:
            shot, frame = s["shot"], s["frame"]
            out.append({
                "shots": [int(shot[0]), int(shot[1]) + 1], "start_frame": int(frame[0]), "end_frame": int(frame[1]) + 1,
                "places": [str(p) for p in (s.get("place_tag") or [])],
            })  # fmt: skip
        except (KeyError, TypeError, ValueError, IndexError):
            raise MoviekitError(f"{path}: scene[{i}] needs 'shot' and 'frame' as [first, last] integers, got {s!r}") from None
        if out[-1]["end_frame"] <= out[-1]["start_frame"]:
            raise MoviekitError(f"{path}: scene[{i}] has an empty frame range {frame}")
    return out


def _seeded_splits(ids: list[str], seed: int, fractions: tuple[float, float, float]) -> dict[str, str]:
    order = sorted(ids)
    random.Random(seed).shuffle(order)
    n_train, n_val = round(len(order) * fractions[0]), round(len(order) * fractions[1])
    return {m: ("train" if i < n_train else "val" if i < n_train + n_val else "test") for i, m in enumerate(order)}


def videos_from_table(
    root: Path,
    table: list[dict[str, Any]],
    cowatch: Path | None = None,
    seed: int = 0,
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
) -> list[Video]:
    """One :class:`Video` per table row (labels = genres; metadata: genres, synopsis, year, cowatch ids)."""
    known = {r["movie"] for r in table}
    mates: dict[str, list[str]] = {m: [] for m in known}
    if cowatch is not None and Path(cowatch).is_file():
        for a, b in read_cowatch(cowatch, known):
            mates[a].append(b)
            mates[b].append(a)
    splits = {} if any(r["split"] for r in table) else _seeded_splits(sorted(known), seed, fractions)
    out = []
    for r in table:
        rel = r["movie"]
        path = root / rel
        if not path.suffix:
            path = next((root / f"{rel}{ext}" for ext in VIDEO_EXTENSIONS if (root / f"{rel}{ext}").is_file()), root / f"{rel}.mp4")
        meta = {"genres": r["genres"], "synopsis": r["synopsis"], "year": r["year"], "cowatch": sorted(set(mates[rel])), **r["extra"]}
        out.append(
            Video(
                id=Path(rel).with_suffix("").as_posix() if Path(rel).suffix else rel,
                path=path,
                labels=r["genres"],
                split=r["split"] or splits.get(rel),
                metadata=meta,
            )
        )
    return out


class MovieFolder(DatasetSource):
    """Your movies: a folder of videos with a metadata table (genres, synopsis, year), optional co-watch pairs and MovieNet scene annotations.

    `movies.csv` columns `movie,genres,synopsis[,year][,split]` (genres `|`-separated); `cowatch.csv`
    `movie_a,movie_b`; scene annotations `<scenes_dir>/<movie>.json` in MovieNet's format (per scene
    `shot`, `frame` ranges and `place_tag`).  Without a split column the split is a seeded shuffle.
    Malformed rows are errors naming file and line.
    """

    name = "movie_folder"
    returns = "Video items (movies) with metadata: genres, synopsis, year, cowatch[, scenes]"

    class Config(Config):
        root: Path = Field(description="folder holding the videos")
        movies_csv: Path | None = Field(None, description="movie table; default <root>/movies.csv")
        cowatch_csv: Path | None = Field(None, description="co-watch pairs; default <root>/cowatch.csv when it exists")
        scenes_dir: Path | None = Field(
            None, description="MovieNet-format scene annotations <dir>/<movie>.json (shots, frames, place tags)"
        )
        seed: int = Field(0, description="seed of the split when the table has none")
        split_fractions: tuple[float, float, float] = Field((0.7, 0.15, 0.15))

    @classmethod
    def example_config(cls, tmp_path: Path) -> dict[str, Any]:
        from moviekit.testing import write_test_video

        root = Path(tmp_path) / "movies"
        root.mkdir(parents=True, exist_ok=True)
        for m in ("a", "b"):
            write_test_video(root / f"{m}.mp4", audio=False)
        (root / "movies.csv").write_text(
            'movie,genres,synopsis,year\na,Drama|Crime,"A heist, then a chase.",1999\nb,Comedy,A wedding.,2004\n'
        )
        (root / "cowatch.csv").write_text("movie_a,movie_b\na,b\n")
        return {"root": str(root)}

    def items(self) -> list[Video]:
        cfg = self.config
        root = Path(cfg.root)
        if not root.is_dir():
            raise MoviekitError(f"dataset.root: {root} is not a folder")
        table = read_movie_table(cfg.movies_csv or root / "movies.csv")
        cowatch = cfg.cowatch_csv or root / "cowatch.csv"
        if cfg.cowatch_csv is not None and not Path(cfg.cowatch_csv).is_file():
            raise MoviekitError(f"dataset.cowatch_csv: {cfg.cowatch_csv} does not exist")
        videos = videos_from_table(root, table, cowatch, cfg.seed, cfg.split_fractions)
        if cfg.scenes_dir is not None:
            for v in videos:
                f = Path(cfg.scenes_dir) / f"{v.id}.json"
                if f.is_file():
                    v.metadata["scenes"] = read_movienet_scenes(f)
        return videos

    def vocabulary(self) -> list[str]:
        return sorted({g for v in self.items() for g in v.labels})
