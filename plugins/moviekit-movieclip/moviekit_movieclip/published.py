"""Readers for the split and label files the MovieCLIP authors published (``split_files/`` of
github.com/usc-sail/mica-MovieCLIP), as plain functions.

The published files (facts from the repository; no code of theirs is used):

* ``multi_label_thresh_0_4_0_1_label_map.json``: a JSON object ``{"courtroom": 0, "police
  station": 1, ...}`` mapping each of the 150 labels kept after the paper's thresholds
  (top-1 CLIPSceneScore >= 0.4, ranks 2-5 >= 0.1) to its index, 0-149.  (The same map is also
  published as a pickle, ``label_2_ind_..._label_map.pkl``; pickles can run code, so it is
  refused: use the JSON file.)
* ``{train,val,test}_multi_label_thresh_0_4_0_1_150_labels.txt`` and the human-verified test
  list ``test_shots_human_verified_multi_labels_v1_complete.txt``: one shot per line,
  ``<video folder>/<shot file>.mp4 <label index> [<label index> ...]``, separated by
  whitespace, labels as indices into the label map (the top-ranked first).  Shot files are
  PySceneDetect's split-video names, ``<video>-Scene-NNN.mp4``, numbered from 1; the shot's
  0-based index (moviekit's ``Shot.index``) is ``NNN - 1`` and the video id is the folder.

moviekit's own format for the same content is the CSV test list ``video,shot,labels``
(``moviekit_movieclip.scenes`` module docstring).  :func:`detect_format` tells the two apart
from the first line that is not blank or a ``#`` comment; every reader takes ``format="auto"``
(detected) or the declared ``"published"`` / ``"moviekit"``.  Errors name the file and line.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from moviekit import MoviekitError

#: File names in the authors' ``split_files/`` folder.
LABEL_MAP_FILE = "multi_label_thresh_0_4_0_1_label_map.json"
SPLIT_FILES = {
    "train": "train_multi_label_thresh_0_4_0_1_150_labels.txt",
    "val": "val_multi_label_thresh_0_4_0_1_150_labels.txt",
    "test": "test_multi_label_thresh_0_4_0_1_150_labels.txt",
}
VERIFIED_TEST_FILE = "test_shots_human_verified_multi_labels_v1_complete.txt"

Format = Literal["auto", "published", "moviekit"]

_SHOT_NAME = re.compile(r"^(?P<stem>.+)-Scene-(?P<number>\d+)\.[A-Za-z0-9]+$")
_INT = re.compile(r"^[+-]?\d+$")


@dataclass(frozen=True)
class PublishedShot:
    """One line of a published list: the shot, its labels (names, in the file's order) and where it was read."""

    video: str
    shot: int
    labels: tuple[str, ...]
    file: str
    line: int
    shot_file: str = ""


# -- the label map -------------------------------------------------------------------------


def read_label_map(path: str | Path) -> list[str]:
    """The labels of a label map in index order.

    Accepts the published JSON object ``{label: index}`` (indices must be the integers
    ``0..n-1``, each once) or a JSON list of labels in index order.
    """
    path = Path(path)
    if path.suffix.lower() in (".pkl", ".pickle"):
        raise MoviekitError(
            f"{path}: pickle files are not read (they can run code); use the JSON label map {LABEL_MAP_FILE} published beside it"
        )
    if not path.is_file():
        raise MoviekitError(f"label map {path} not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise MoviekitError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None
    if isinstance(data, list):
        labels = data
        if not all(isinstance(x, str) and x.strip() for x in labels):
            raise MoviekitError(f"{path}: a label-map list must hold non-empty label strings")
    elif isinstance(data, dict):
        by_index: dict[int, str] = {}
        for label, index in data.items():
            if isinstance(index, bool) or not isinstance(index, int):
                raise MoviekitError(f"{path}: label {label!r} has index {index!r}; indices must be integers")
            if index in by_index:
                raise MoviekitError(f"{path}: index {index} is given to both {by_index[index]!r} and {label!r}")
            if not label.strip():
                raise MoviekitError(f"{path}: empty label name (index {index})")
            by_index[index] = label
        n = len(by_index)
        if sorted(by_index) != list(range(n)):
            missing = sorted(set(range(n)) - set(by_index))[:5]
            raise MoviekitError(
                f"{path}: indices must be 0..{n - 1}, each once; missing {missing}, the largest is {max(by_index, default=None)}"
            )
        labels = [by_index[i] for i in range(n)]
    else:
        raise MoviekitError(
            f"{path}: a label map is a JSON object {{label: index}} (the published format) or a list of labels, not {type(data).__name__}"
        )
    if not labels:
        raise MoviekitError(f"{path}: the label map is empty")
    if len(set(labels)) != len(labels):
        dup = next(x for x in labels if labels.count(x) > 1)
        raise MoviekitError(f"{path}: label {dup!r} appears twice")
    return list(labels)


# -- format detection ----------------------------------------------------------------------


def _first_line(path: Path) -> tuple[int, str]:
    if not path.is_file():
        raise MoviekitError(f"shot list {path} not found")
    for lineno, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if raw.strip() and not raw.lstrip().startswith("#"):
            return lineno, raw
    raise MoviekitError(f"{path}: empty shot list")


def _is_published_line(text: str) -> bool:
    parts = text.split()
    return len(parts) >= 2 and "," not in text and _INT.match(parts[1]) is not None and all(_INT.match(p) for p in parts[1:])


def detect_format(path: str | Path) -> Literal["published", "moviekit"]:
    """``published`` (``<folder>/<shot>.mp4 <index> ...`` lines) or ``moviekit`` (a CSV with a
    ``video,shot,labels`` header), from the first line that is not blank or a comment."""
    path = Path(path)
    lineno, text = _first_line(path)
    if _is_published_line(text):
        return "published"
    header = [c.strip().lower() for c in text.split(",")]
    if {"video", "shot", "labels"} <= set(header):
        return "moviekit"
    raise MoviekitError(
        f"{path}:{lineno}: cannot tell the format of this shot list: expected the published "
        "'<video folder>/<shot file>.mp4 <label index> ...' lines or a moviekit CSV header 'video,shot,labels'; "
        "declare it with format: published or format: moviekit"
    )


# -- published shot lists ------------------------------------------------------------------


def shot_index_from_name(name: str) -> int:
    """The 0-based shot index of a PySceneDetect split-video file name ``<video>-Scene-NNN.mp4`` (``NNN`` from 1)."""
    m = _SHOT_NAME.match(name)
    if m is None or int(m["number"]) < 1:
        raise ValueError(
            f"cannot read a shot number from {name!r} (expected <video>-Scene-<NNN>.mp4, PySceneDetect's split-video naming, numbered from 1)"
        )
    return int(m["number"]) - 1


def parse_published_line(text: str, labels: list[str]) -> tuple[str, int, tuple[str, ...], str]:
    """``(video, shot, label names, shot file)`` of one published line; ``ValueError`` says what is wrong."""
    parts = text.split()
    if len(parts) < 2:
        raise ValueError("expected '<video folder>/<shot file>.mp4 <label index> [<label index> ...]'")
    rel, indices = parts[0], parts[1:]
    video, sep, shot_file = rel.replace("\\", "/").rpartition("/")
    if not sep or not video or not shot_file:
        raise ValueError(f"{rel!r} is not '<video folder>/<shot file>'")
    video = video.rsplit("/", 1)[-1]  # a longer relative path: the shot's own folder is the video
    shot = shot_index_from_name(shot_file)
    names: list[str] = []
    for tok in indices:
        if not _INT.match(tok):
            raise ValueError(f"label index {tok!r} is not an integer")
        i = int(tok)
        if not 0 <= i < len(labels):
            raise ValueError(f"label index {i} is outside the label map (0..{len(labels) - 1})")
        if labels[i] not in names:
            names.append(labels[i])
    return video, shot, tuple(names), shot_file


def _label_map_for(path: Path, label_map: str | Path | list[str] | None) -> list[str]:
    if isinstance(label_map, list):
        return label_map
    if label_map is None:
        beside = path.parent / LABEL_MAP_FILE
        if not beside.is_file():
            raise MoviekitError(
                f"{path}: a published shot list holds label indices; give its label map ({LABEL_MAP_FILE}), which was not found beside it"
            )
        label_map = beside
    return read_label_map(label_map)


def read_published_list(
    path: str | Path, label_map: str | Path | list[str] | None = None, vocabulary: Iterable[str] | None = None
) -> list[PublishedShot]:
    """The shots of a published list (train/val/test labels or the human-verified test list).

    ``label_map``: the label-map file, its labels in index order, or None to use
    ``multi_label_thresh_0_4_0_1_label_map.json`` beside the list.  ``vocabulary``: when
    given, every label must belong to it.  Blank lines and ``#`` lines are skipped; a shot
    listed twice with the same labels is kept once, with other labels it is an error.
    """
    path = Path(path)
    labels = _label_map_for(path, label_map)
    vocab = set(vocabulary) if vocabulary is not None else None
    if vocab is not None:
        outside = [lab for lab in labels if lab not in vocab]
        if outside:
            raise MoviekitError(
                f"{path}: {len(outside)} label(s) of the label map are not in the classifier's vocabulary: {', '.join(map(repr, outside[:5]))}"
            )
    out: list[PublishedShot] = []
    seen: dict[tuple[str, int], PublishedShot] = {}
    _first_line(path)  # not found / empty
    for lineno, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        try:
            video, shot, names, shot_file = parse_published_line(raw, labels)
        except ValueError as e:
            raise MoviekitError(f"{path}:{lineno}: {e}") from None
        rec = PublishedShot(video, shot, names, str(path), lineno, shot_file)
        prev = seen.get((video, shot))
        if prev is not None:
            if set(prev.labels) != set(names):
                raise MoviekitError(
                    f"{path}:{lineno}: video {video} shot {shot_file} is already listed on line {prev.line} with other labels"
                )
            continue
        seen[(video, shot)] = rec
        out.append(rec)
    return out


def read_shot_labels(
    path: str | Path,
    vocabulary: Iterable[str] | None = None,
    format: Format = "auto",
    label_map: str | Path | list[str] | None = None,
) -> dict[tuple[str, int], tuple[str, ...]]:
    """``{(video, shot index): labels}`` of a shot list in either format (detected or declared):
    the published lines (with their label map) or moviekit's ``video,shot,labels`` CSV."""
    fmt = detect_format(path) if format == "auto" else format
    if fmt == "published":
        return {(s.video, s.shot): s.labels for s in read_published_list(path, label_map, vocabulary)}
    if fmt != "moviekit":
        raise MoviekitError(f"unknown shot-list format {format!r}; use auto, published or moviekit")
    from .testlist import read_test_list  # moviekit's CSV reader (format in that module's docstring)

    return {(s.video, s.shot): s.labels for s in read_test_list(path, vocabulary)}


def read_verified_list(
    path: str | Path,
    vocabulary: Iterable[str] | None = None,
    format: Format = "auto",
    label_map: str | Path | list[str] | None = None,
) -> list:
    """A human-verified test list in either format, as ``testlist.VerifiedShot`` records (what
    ``movieclip_scene_classifier``'s ``test_list`` reads)."""
    from .testlist import VerifiedShot, read_test_list

    fmt = detect_format(path) if format == "auto" else format
    if fmt == "moviekit":
        return read_test_list(path, vocabulary)
    if fmt != "published":
        raise MoviekitError(f"unknown shot-list format {format!r}; use auto, published or moviekit")
    return [VerifiedShot(s.video, s.shot, s.labels, s.line) for s in read_published_list(path, label_map, vocabulary)]


def read_published_splits(folder: str | Path, label_map: str | Path | list[str] | None = None) -> dict[str, list[PublishedShot]]:
    """The published train/val/test lists (and ``test_verified``, the human-verified list) found in
    ``folder`` (the authors' ``split_files/``), read with one label map."""
    folder = Path(folder)
    labels = _label_map_for(folder / SPLIT_FILES["train"], label_map if label_map is not None else folder / LABEL_MAP_FILE)
    files = {**SPLIT_FILES, "test_verified": VERIFIED_TEST_FILE}
    found = {split: folder / name for split, name in files.items() if (folder / name).is_file()}
    if not found:
        raise MoviekitError(f"{folder}: none of the published split files ({', '.join(files.values())}) is there")
    return {split: read_published_list(p, labels) for split, p in found.items()}
