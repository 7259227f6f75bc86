"""The LVU benchmark's label files (Wu & Krähenbühl, "Towards Long-Form Video Understanding", CVPR 2021).

A pure reader, :func:`read_lvu_task`, shared by every method that evaluates on LVU, and
the ``lvu`` dataset source built on it.

Expected layout (the ``lvu_1.0`` release)::

    <root>/<task>/train.csv
    <root>/<task>/val.csv
    <root>/<task>/test.csv

for the nine tasks of :data:`LVU_TASKS`: seven classification tasks (``relationship``,
``way_speaking``, ``scene`` (place), ``director``, ``writer``, ``year``, ``genre``; scored by
top-1 accuracy) and two regression tasks (``like_ratio``, ``view_count``; scored by MSE).

Each file starts with a header line and has one clip per line.  Columns are separated by
spaces (as in the release) or commas (either is detected from the header).  The first column
is the target: an integer class id for a classification task, a number for a regression task.
The clip id is the column named ``video_id``, else ``youtube_id``, else ``id``, else the last
column; every other column (``imdb_id``, ...) is kept as metadata.  A malformed line (wrong
number of fields, a target that is not a number, an empty id) is an error naming
``file:line``.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from moviekit import hookimpl
from moviekit.components import Config, DatasetSource
from moviekit.errors import MoviekitError
from moviekit.records import Video

#: The nine LVU tasks and their kind.
LVU_TASKS: dict[str, Literal["classification", "regression"]] = {
    "relationship": "classification",
    "way_speaking": "classification",
    "scene": "classification",
    "director": "classification",
    "writer": "classification",
    "year": "classification",
    "genre": "classification",
    "like_ratio": "regression",
    "view_count": "regression",
}
LVU_SPLITS = ("train", "val", "test")
ID_COLUMNS = ("video_id", "youtube_id", "id")


@dataclass
class LVURow:
    """One labelled clip of an LVU task file."""

    id: str
    target: str | float  # class id (as text) for classification, a number for regression
    split: str
    line: int
    meta: dict[str, str] = field(default_factory=dict)


def lvu_task_kind(task: str) -> Literal["classification", "regression"]:
    if task not in LVU_TASKS:
        raise MoviekitError(f"unknown LVU task {task!r}; tasks: {', '.join(LVU_TASKS)}")
    return LVU_TASKS[task]


def _split_line(line: str, delimiter: str) -> list[str]:
    if delimiter == ",":
        return next(csv.reader([line]))
    return line.split()


def read_lvu_file(path: str | Path, task: str, split: str) -> list[LVURow]:
    """The rows of one LVU label file; errors name ``file:line``."""
    kind = lvu_task_kind(task)
    path = Path(path)
    if not path.is_file():
        raise MoviekitError(f"{path}: LVU label file not found (expected <root>/{task}/{split}.csv)")
    lines = path.read_text().splitlines()
    if not lines or not lines[0].strip():
        raise MoviekitError(f"{path}:1: empty file; expected a header line such as '{task} youtube_id imdb_id'")
    delimiter = "," if "," in lines[0] else " "
    header = [h.strip() for h in _split_line(lines[0], delimiter)]
    id_col = next((header.index(c) for c in ID_COLUMNS if c in header), len(header) - 1)
    if id_col == 0:
        raise MoviekitError(f"{path}:1: the first column is the target, but the header names it as the id ({header[0]!r})")
    rows: list[LVURow] = []
    for n, raw in enumerate(lines[1:], start=2):
        if not raw.strip():
            continue
        fields = [x.strip() for x in _split_line(raw, delimiter)]
        if len(fields) != len(header):
            raise MoviekitError(f"{path}:{n}: {len(fields)} fields, the header has {len(header)} ({' '.join(header)})")
        target_text, vid = fields[0], fields[id_col]
        if not vid:
            raise MoviekitError(f"{path}:{n}: empty clip id in column {header[id_col]!r}")
        try:
            value = float(target_text)
        except ValueError:
            raise MoviekitError(f"{path}:{n}: target {target_text!r} is not a number ({kind} task {task})") from None
        if kind == "classification":
            if value != int(value):
                raise MoviekitError(f"{path}:{n}: class id {target_text!r} is not an integer")
            target: str | float = str(int(value))
        else:
            target = value
        meta = {h: f for i, (h, f) in enumerate(zip(header, fields)) if i not in (0, id_col)}
        rows.append(LVURow(id=vid, target=target, split=split, line=n, meta=meta))
    return rows


def read_lvu_task(root: str | Path, task: str, splits: tuple[str, ...] = LVU_SPLITS) -> dict[str, list[LVURow]]:
    """``{split: rows}`` of one LVU task read from ``<root>/<task>/<split>.csv``."""
    lvu_task_kind(task)
    return {s: read_lvu_file(Path(root) / task / f"{s}.csv", task, s) for s in splits}


class LVUSource(DatasetSource):
    """One task of the LVU benchmark: clips from `<root>/<task>/{train,val,test}.csv`.

    Classification tasks give each clip its class id as its one label; regression tasks
    (`like_ratio`, `view_count`) give no label and put the number in `metadata["target"]`.
    Videos are `<videos>/<id>.<ext>`; with `features` set (a `features_dir` folder written for
    these clips, e.g. another method's exported embeddings) the clips carry those features and
    are not decoded.  Clips without a video or features are left out and listed in `problems`.
    """

    name = "lvu"
    takes = "config (LVU label files + videos or a features_dir)"
    returns = "Video items labelled for one LVU task"

    class Config(Config):
        root: Path = Field(description="folder holding <task>/{train,val,test}.csv")
        task: str = Field("scene", description=f"one of: {', '.join(LVU_TASKS)}")
        videos: Path | None = Field(None, description="folder of <clip id>.mp4 (or another video extension); default <root>/videos")
        features: Path | None = Field(
            None, description="a features_dir folder (<modality>/<clip id>/<clip>.npy) to take instead of decoding"
        )

    def __init__(self, config: Any = None, **fields: Any):
        super().__init__(config, **fields)
        self.problems: dict[str, str] = {}

    @classmethod
    def example_config(cls, tmp_path: Path) -> dict[str, Any]:
        from moviekit.testing import write_test_video

        root = Path(tmp_path) / "lvu"
        (root / "videos").mkdir(parents=True, exist_ok=True)
        for split, vid in zip(LVU_SPLITS, ("a", "b", "c")):
            (root / "scene").mkdir(parents=True, exist_ok=True)
            (root / "scene" / f"{split}.csv").write_text(f"scene youtube_id imdb_id\n{LVU_SPLITS.index(split)} {vid} tt000{vid}\n")
            write_test_video(root / "videos" / f"{vid}.mp4", audio=False)
        return {"root": str(root), "task": "scene"}

    @property
    def kind_of_task(self) -> str:
        return lvu_task_kind(self.config.task)

    def items(self) -> list[Video]:
        from .datasets import VIDEO_EXTENSIONS

        cfg = self.config
        rows = read_lvu_task(cfg.root, cfg.task)
        self.problems = {}
        features: dict[str, Video] = {}
        if cfg.features is not None:
            from .formats import FeaturesDir

            fd = FeaturesDir(root=cfg.features)
            features = {v.id: v for v in fd.items()}
            self.problems.update(fd.problems)
        videos = Path(cfg.videos) if cfg.videos is not None else Path(cfg.root) / "videos"
        out = []
        for split in LVU_SPLITS:
            for r in rows[split]:
                meta: dict[str, Any] = {"lvu_task": cfg.task, "lvu_line": r.line, **r.meta}
                labels = [r.target] if isinstance(r.target, str) else []
                if isinstance(r.target, float):
                    meta["target"] = r.target
                if r.id in features:
                    f = features[r.id]
                    out.append(Video(id=r.id, labels=labels, split=split, metadata=meta, features=f.features, clips=f.clips))
                    continue
                path = next((videos / f"{r.id}{ext}" for ext in VIDEO_EXTENSIONS if (videos / f"{r.id}{ext}").is_file()), None)
                if path is None:
                    self.problems[r.id] = f"{cfg.root}/{cfg.task}/{split}.csv:{r.line}: no video {videos}/{r.id}.* and no features"
                    continue
                out.append(Video(id=r.id, path=path, labels=labels, split=split, metadata=meta))
        return out

    def vocabulary(self) -> list[str]:
        if self.kind_of_task == "regression":
            return []
        rows = read_lvu_task(self.config.root, self.config.task)
        return sorted({r.target for rs in rows.values() for r in rs}, key=lambda x: int(x))


@hookimpl
def register_components(register):
    register(LVUSource)
