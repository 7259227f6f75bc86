"""The MovieCLIP tags format and its dataset source ``movieclip_json``.

The JSON maps video id -> shot file name (``<video id>_shot_<index:04d>.mp4``) -> ``{start_frame,
end_frame, start_time, end_time, labels: {label: score}}``; it is what ``moviekit movieclip label``
writes.  :func:`read_movieclip_json` / :func:`write_movieclip_json` convert it to and from
:class:`moviekit.Labels`; :func:`read_movieclip_shots` gives the stored shot boundaries.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

from pydantic import Field

from moviekit import VIDEO_EXTENSIONS, DatasetSource, Labels, ListingSource, MoviekitError, Shot, SplitConfig, Video, deterministic_split

log = logging.getLogger(__name__)

SHOT_NAME_RE = re.compile(r"_shot_(\d+)(?:\.[A-Za-z0-9]+)?$")
SHOT_FIELDS = ("start_frame", "end_frame", "start_time", "end_time")


def shot_file_name(video_id: str, index: int) -> str:
    """The key a shot gets in a MovieCLIP JSON: ``<video id>_shot_<index:04d>.mp4``."""
    return f"{video_id}_shot_{index:04d}.mp4"


def _parse_video(video_id: str, shots: Any) -> tuple[list[Labels], list[Shot]]:
    """One video's entry of a MovieCLIP JSON; raises ValueError on malformed input."""
    if not isinstance(shots, dict):
        raise ValueError(f"expected an object of shots, got {type(shots).__name__}")
    labels, out_shots = [], []
    for pos, (name, entry) in enumerate(shots.items()):
        if not isinstance(entry, dict):
            raise ValueError(f"shot {name!r}: expected an object, got {type(entry).__name__}")
        m = SHOT_NAME_RE.search(name)
        index = int(m.group(1)) if m else pos
        missing = [k for k in (*SHOT_FIELDS, "labels") if k not in entry]
        if missing:
            raise ValueError(f"shot {name!r}: missing {', '.join(missing)}")
        scores = entry["labels"]
        if not isinstance(scores, dict) or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in scores.values()):
            raise ValueError(f"shot {name!r}: labels must map label -> numeric score")
        try:
            shot = Shot(video_id=video_id, index=index, **{k: entry[k] for k in SHOT_FIELDS})
        except Exception as e:  # noqa: BLE001 - pydantic ValidationError, reported with the shot
            raise ValueError(f"shot {name!r}: {e}") from e
        out_shots.append(shot)
        labels.append(Labels(video_id=video_id, shot_index=index, scores={k: float(v) for k, v in scores.items()}, labels=list(scores)))
    return labels, out_shots


def _load_json(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except OSError as e:
        raise MoviekitError(f"{path}: cannot read MovieCLIP JSON ({e})") from e
    except json.JSONDecodeError as e:
        raise MoviekitError(f"{path}: not valid JSON ({e})") from e
    if not isinstance(data, dict):
        raise MoviekitError(f"{path}: expected an object of video id -> shots, got {type(data).__name__}")
    return data


def _read(path: str | Path) -> dict[str, tuple[list[Labels], list[Shot]]]:
    out = {}
    for vid, shots in _load_json(path).items():
        try:
            out[vid] = _parse_video(vid, shots)
        except ValueError as e:
            raise MoviekitError(f"{path}: video {vid!r}: {e}") from e
    return out


def read_movieclip_json(path: str | Path) -> dict[str, list[Labels]]:
    """Per-shot :class:`Labels` of each video in a MovieCLIP tags JSON, in file order.

    The JSON maps video id -> shot file name -> ``{start_frame, end_frame, start_time,
    end_time, labels: {label: score}}``.  ``shot_index`` is the number after ``_shot_`` in
    the file name (else the shot's position); ``scores`` is the labels object and
    ``labels`` its keys in file order.
    """
    return {vid: labels for vid, (labels, _) in _read(path).items()}


def read_movieclip_shots(path: str | Path) -> dict[str, list[Shot]]:
    """The :class:`Shot` boundaries stored in a MovieCLIP tags JSON, in file order."""
    return {vid: shots for vid, (_, shots) in _read(path).items()}


def write_movieclip_json(path: str | Path, labels_by_video: dict[str, list[Labels]], shots_by_video: dict[str, list[Shot]]) -> Path:
    """Write per-shot labels in the MovieCLIP tags format; returns ``path``.

    Each :class:`Labels` is matched to the shot of ``shots_by_video[video]`` with the same
    index and written under :func:`shot_file_name`, in list order, with
    ``labels: {label: scores[label] for label in labels.labels}``.  Shots without a Labels
    record are not written.  :func:`read_movieclip_json` gives back exactly what was
    written when each record's ``labels`` are the keys of its ``scores`` (which is what it
    reads); other scores are not part of the format.
    """
    data: dict[str, dict[str, Any]] = {}
    for vid, labels in labels_by_video.items():
        shots = {s.index: s for s in shots_by_video.get(vid, [])}
        entry: dict[str, Any] = {}
        for lab in labels:
            if lab.shot_index is None or lab.shot_index not in shots:
                raise MoviekitError(f"{vid}: no shot with index {lab.shot_index} for its labels")
            unscored = [x for x in lab.labels if x not in lab.scores]
            if unscored:
                raise MoviekitError(f"{vid} shot {lab.shot_index}: label(s) without a score: {', '.join(unscored)}")
            name = shot_file_name(vid, lab.shot_index)
            if name in entry:
                raise MoviekitError(f"{vid}: more than one Labels record for shot {lab.shot_index}")
            shot = shots[lab.shot_index]
            entry[name] = {**{k: getattr(shot, k) for k in SHOT_FIELDS}, "labels": {x: lab.scores[x] for x in lab.labels}}
        data[vid] = entry
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1))
    return path


class MovieClipJSON(ListingSource, DatasetSource):
    """Videos from a MovieCLIP tags JSON (video id -> shot file -> frames, times, {label: score}).

    Each video id becomes one item whose labels are the union of its shots' labels scoring
    at least `min_score`; `metadata["shot_labels"]` holds the per-shot `Labels` (as dicts)
    and `metadata["shots"]` the shot boundaries.  With `videos_root`, `<video id>.<ext>`
    found there becomes the item's path.  Splits are a seeded deterministic shuffle.  A
    malformed video entry is left out and reported in `problems`; the others are listed.
    """

    name = "movieclip_json"
    takes = "config (a MovieCLIP tags JSON)"
    returns = "Video items with per-shot labels in metadata"

    class Config(SplitConfig):
        path: Path = Field(description="the MovieCLIP tags JSON (video id -> shot file name -> shot)")
        videos_root: Path | None = Field(
            None, description="folder holding <video id>.mp4 (or another video extension); sets each item's path"
        )
        min_score: float = Field(
            0.0, description="a shot label counts towards the video's labels when its score is at least this; 0.0 keeps every listed label"
        )

    @classmethod
    def example_config(cls, tmp_path: Path) -> dict:
        path = Path(tmp_path) / "movieclip.json"
        shots, labels = {}, {}
        for v, vid in enumerate(["tt0000001", "tt0000002"]):
            shots[vid] = [
                Shot(video_id=vid, index=i, start_frame=12 * i, end_frame=12 * i + 11, start_time=i / 2, end_time=i / 2 + 11 / 24)
                for i in range(3)
            ]
            labels[vid] = [
                Labels(video_id=vid, shot_index=i, scores={"Interview": 0.6 - 0.1 * v, "Car": 0.25}, labels=["Interview", "Car"])
                for i in range(3)
            ]
        write_movieclip_json(path, labels, shots)
        return {"path": str(path)}

    def _video_path(self, vid: str) -> Path | None:
        if self.config.videos_root is None:
            return None
        root = Path(self.config.videos_root)
        for ext in VIDEO_EXTENSIONS:
            p = root / f"{vid}{ext}"
            if p.is_file():
                return p
        log.warning("movieclip_json: no video file for %s under %s", vid, root)
        return None

    def items(self) -> list[Video]:
        if self.config.videos_root is not None and not Path(self.config.videos_root).is_dir():
            raise MoviekitError(f"dataset.videos_root: {self.config.videos_root} is not a folder")
        data = _load_json(self.config.path)
        splits = deterministic_split(list(data), self.config.seed, self.config.split_fractions)
        self.problems = {}
        out = []
        for vid, shots_obj in data.items():
            try:
                labels, shots = _parse_video(vid, shots_obj)
            except ValueError as e:
                self.problems[vid] = str(e)
                log.warning("movieclip_json: skipping %s: %s", vid, e)
                continue
            video_labels = sorted({x for lab in labels for x in lab.labels if lab.scores[x] >= self.config.min_score})
            meta = {"shot_labels": [lab.model_dump() for lab in labels], "shots": [s.model_dump() for s in shots]}
            out.append(Video(id=vid, path=self._video_path(vid), labels=video_labels, split=splits[vid], metadata=meta))
        self._listed = out
        return out


COMPONENTS = [MovieClipJSON]
