"""The VidSitu annotation format (Sadhu et al., CVPR 2021) and the ``vidsitu`` dataset source.

Layout (the ``vidsitu_annotations`` release)::

    <root>/split_files/vseg_split_<name>_lb.json   # list of clip ids v_<video>_seg_<start>_<end>
    <root>/vseg_ann_files/vsann_<name>_lb.json     # annotations (absent for the hidden test sets)
    <root>/vinfo_files/vinfo_<name>_lb.json        # optional: per clip `vb_lst` {Ev1: [10 verbs], ...}

An annotation file is a list.  Each element is one annotation of one clip, a dict with keys
``Ev1`` .. ``Ev5`` whose values hold ``vid_seg_int`` (the clip id), ``Verb`` (or ``VerbID``),
``Args`` (role name -> text, e.g. ``{"Arg0 (pusher)": "man in hat", "AScn": "street"}``) and,
for every event but ``Ev3``, ``EvRel`` (its relation to event 3).  An element may also be a list
of such dicts (several annotators of one clip); several elements for one clip id are several
annotators as well.  Every event thus gets the lists ``verbs``, ``relations`` and ``args``, one
entry per annotator, plus the ``vb_lst`` verbs of the info file when present.

Problems name the file and line: invalid JSON at its line; a malformed entry at the line where
its clip id first appears.  The clips themselves come from a folder of videos
(``<videos>/<id>.mp4``) or from pre-extracted per-event features (``<features_dir>/<id>.npy``,
shape ``(5, D)``), which are then used as the low-level tokens without decoding.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from moviekit import Clip, Config, DatasetSource, FeatureSet, MoviekitError, Video, atomic_write_text

EVENTS = ("Ev1", "Ev2", "Ev3", "Ev4", "Ev5")
#: Seconds per event (VidSitu: 10-s clips, an event every 2 s).
EVENT_SECONDS = 2.0
VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".mov", ".avi")


def _line_of(text: str, needle: str) -> int:
    pos = text.find(needle)
    return text.count("\n", 0, pos) + 1 if pos >= 0 else 1


def load_json(path: Path) -> tuple[Any, str]:
    """Parsed JSON and its text; invalid JSON is an error naming ``file:line``."""
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise MoviekitError(f"{path}: cannot read ({e.strerror or e})") from None
    try:
        return json.loads(text), text
    except json.JSONDecodeError as e:
        raise MoviekitError(f"{path}:{e.lineno}: invalid JSON: {e.msg}") from None


def role_name(key: str) -> str:
    """``"Arg0 (pusher)"`` -> ``"Arg0"``; ``"Scene of the Event"`` -> ``"AScn"``."""
    key = key.strip()
    if key.lower().startswith("scene"):
        return "AScn"
    return re.split(r"[\s(]", key, maxsplit=1)[0]


def roles_text(args: dict[str, str]) -> str:
    """The text a role decoder writes: ``"ARG0 man in hat ARG1 door ASCN street"`` (role order kept)."""
    return " ".join(f"{role_name(k).upper()} {str(v).strip().lower()}" for k, v in args.items() if str(v).strip())


def read_split(path: Path) -> list[str]:
    data, _ = load_json(path)
    if not isinstance(data, list) or not all(isinstance(x, str) for x in data):
        raise MoviekitError(f"{path}:1: a split file is a JSON list of clip ids (v_<video>_seg_<start>_<end>)")
    return data


def read_annotations(path: Path) -> dict[str, list[dict[str, Any]]]:
    """``{clip id: [event dicts]}``: five events, each ``{"verbs", "relations", "args", "line"}``
    with one entry per annotator (``relations`` holds None for ``Ev3``)."""
    data, text = load_json(path)
    if not isinstance(data, list):
        raise MoviekitError(f"{path}:1: an annotation file is a JSON list (one element per annotated clip)")
    out: dict[str, list[dict[str, Any]]] = {}
    flat: list[tuple[int, Any]] = []
    for i, el in enumerate(data):
        flat += [(i, x) for x in el] if isinstance(el, list) else [(i, el)]
    for i, ann in flat:
        if not isinstance(ann, dict):
            raise MoviekitError(f"{path}:1: element {i} is a {type(ann).__name__}, expected a dict with keys Ev1..Ev5")
        vid = next((ann[e].get("vid_seg_int") for e in EVENTS if isinstance(ann.get(e), dict) and ann[e].get("vid_seg_int")), None)
        where = f"{path}:{_line_of(text, json.dumps(vid)) if vid else 1}"
        if vid is None:
            raise MoviekitError(f"{where}: element {i} has no vid_seg_int in any of {', '.join(EVENTS)}")
        missing = [e for e in EVENTS if not isinstance(ann.get(e), dict)]
        if missing:
            raise MoviekitError(f"{where}: clip {vid}: missing event(s) {', '.join(missing)}")
        events = out.setdefault(vid, [{"verbs": [], "relations": [], "args": [], "line": int(where.rsplit(":", 1)[1])} for _ in EVENTS])
        for k, e in enumerate(EVENTS):
            ev = ann[e]
            verb = ev.get("Verb", ev.get("VerbID"))
            if not isinstance(verb, str) or not verb.strip():
                raise MoviekitError(f"{where}: clip {vid} {e}: missing 'Verb'")
            args = ev.get("Args", {})
            if not isinstance(args, dict):
                raise MoviekitError(f"{where}: clip {vid} {e}: 'Args' must be a dict of role -> text, got {type(args).__name__}")
            rel = ev.get("EvRel")
            if e != "Ev3" and (not isinstance(rel, str) or not rel.strip()):
                raise MoviekitError(f"{where}: clip {vid} {e}: missing 'EvRel' (the relation to Ev3)")
            events[k]["verbs"].append(verb.strip())
            events[k]["relations"].append(None if e == "Ev3" else rel.strip())
            events[k]["args"].append({str(a): str(t) for a, t in args.items()})
    return out


def read_vinfo_verbs(path: Path) -> dict[str, list[list[str]]]:
    """``{clip id: [verbs of Ev1, ..., Ev5]}`` from an info file's ``vb_lst`` (when present)."""
    data, _ = load_json(path)
    if not isinstance(data, list):
        raise MoviekitError(f"{path}:1: an info file is a JSON list of dicts")
    out = {}
    for row in data:
        if isinstance(row, dict) and isinstance(row.get("vb_lst"), dict) and row.get("vid_seg_int"):
            out[row["vid_seg_int"]] = [list(row["vb_lst"].get(e, [])) for e in EVENTS]
    return out


def event_clips(video_id: str, fps: float = 8.0) -> list[Clip]:
    """The five 2-s events of a clip as :class:`Clip` records (for pre-extracted features)."""
    n = int(round(EVENT_SECONDS * fps))
    return [
        Clip(
            video_id=video_id,
            index=k,
            shot_index=k,
            start_frame=k * n,
            end_frame=(k + 1) * n,
            start_time=k * EVENT_SECONDS,
            end_time=(k + 1) * EVENT_SECONDS,
        )
        for k in range(5)
    ]


def majority(labels: list[str | None]) -> str | None:
    """The most frequent label; ties go to the one given first (VidSitu's majority relation)."""
    labels = [x for x in labels if x is not None]
    if not labels:
        return None
    counts: dict[str, int] = {}
    for x in labels:
        counts[x] = counts.get(x, 0) + 1
    return max(counts, key=lambda x: (counts[x], -labels.index(x)))


class VidSitu(DatasetSource):
    """VidSitu clips: five 2-s events each with annotators' verbs, semantic roles and event relations.

    Reads the split and annotation files of a `vidsitu_annotations` folder (see the module
    docstring) over a folder of videos, or over pre-extracted per-event features
    (`features_dir/<id>.npy`, `(5, D)`, used as the low-level tokens).  Every item carries
    `metadata["vidsitu"]["events"]`; a clip without a video or features is left out and listed
    in `problems`.  The vocabulary is the verbs of all read annotations, sorted.
    """

    name = "vidsitu"
    takes = "config (VidSitu annotation files + videos or per-event features)"
    returns = "Video items, one per 10-s clip, with per-event annotations in metadata['vidsitu']"

    class Config(Config):
        root: Path = Field(description="the vidsitu_annotations folder (split_files/, vseg_ann_files/, vinfo_files/)")
        videos: Path | None = Field(None, description="folder of <clip id>.mp4; default <root>/../videos")
        features_dir: Path | None = Field(None, description="folder of <clip id>.npy per-event features (5, D), used instead of videos")
        modality: str = Field("tokens", description="feature name of the features_dir arrays in the items")
        splits: dict[str, str] = Field(
            default_factory=lambda: {"train": "train", "valid": "val", "test": "test", "unlabelled": "none"},
            description="split-file name -> moviekit split (train, val, test, or none for unlabelled clips); missing files are skipped",
        )
        fps: float = Field(8.0, gt=0, description="frame rate of the placeholder event clips of features_dir items")

    def __init__(self, config: Any = None, **fields: Any):
        super().__init__(config, **fields)
        self.problems: dict[str, str] = {}

    @classmethod
    def example_config(cls, tmp_path: Path) -> dict[str, Any]:
        from .fixtures import write_tiny_vidsitu

        root = write_tiny_vidsitu(Path(tmp_path) / "vidsitu", n=3, dim=8)
        return {"root": str(root / "vidsitu_annotations"), "features_dir": str(root / "features")}

    def clips(self) -> list[tuple[str, str | None, list[dict[str, Any]] | None]]:
        """``(clip id, split, events or None)`` over the configured split files."""
        root = Path(self.config.root)
        if not (root / "split_files").is_dir():
            raise MoviekitError(f"dataset.root: {root} has no split_files/ folder (a vidsitu_annotations folder)")
        out = []
        for name, split in self.config.splits.items():
            sp = root / "split_files" / f"vseg_split_{name}_lb.json"
            if not sp.is_file():
                continue
            ann_path = root / "vseg_ann_files" / f"vsann_{name}_lb.json"
            anns = read_annotations(ann_path) if ann_path.is_file() else {}
            info_path = root / "vinfo_files" / f"vinfo_{name}_lb.json"
            extra = read_vinfo_verbs(info_path) if info_path.is_file() else {}
            for vid in read_split(sp):
                events = anns.get(vid)
                if events is not None and vid in extra:
                    for ev, more in zip(events, extra[vid]):
                        ev["vb_lst"] = more
                out.append((vid, None if split == "none" else split, events))
        if not out:
            raise MoviekitError(
                f"dataset.root: {root}/split_files has none of the split files {', '.join(f'vseg_split_{n}_lb.json' for n in self.config.splits)}"
            )
        return out

    def _video(self, vid: str, split: str | None, events: list[dict[str, Any]] | None, extra_meta: dict[str, Any]) -> Video | None:
        cfg = self.config
        meta: dict[str, Any] = {"hier_kind": "movie", **extra_meta}
        if events is not None:
            meta["vidsitu"] = {"events": events}
        labels = sorted({majority(ev["verbs"]) for ev in events}) if events else []
        if cfg.features_dir is not None:
            path = Path(cfg.features_dir) / f"{vid}.npy"
            if not path.is_file():
                self.problems[vid] = f"{path}: no features for this clip"
                return None
            try:
                arr = np.load(path, allow_pickle=False)
            except (OSError, ValueError) as e:
                self.problems[vid] = f"{path}: not a readable .npy array ({e})"
                return None
            if arr.ndim != 2 or arr.shape[0] != 5:
                self.problems[vid] = f"{path}: per-event features must be (5, D), got {arr.shape}"
                return None
            feats = FeatureSet(video_id=vid, arrays={cfg.modality: arr.astype(np.float32)})
            return Video(id=vid, labels=labels, split=split, metadata=meta, features=feats, clips=event_clips(vid, cfg.fps))
        videos = Path(cfg.videos) if cfg.videos is not None else Path(cfg.root).parent / "videos"
        path = next((videos / f"{vid}{ext}" for ext in VIDEO_EXTENSIONS if (videos / f"{vid}{ext}").is_file()), None)
        if path is None:
            self.problems[vid] = f"no video {videos}/{vid}.* (and no features_dir)"
            return None
        return Video(id=vid, path=path, labels=labels, split=split, metadata=meta)

    def items(self) -> list[Video]:
        self.problems = {}
        out = [v for vid, split, events in self.clips() if (v := self._video(vid, split, events, {})) is not None]
        if not out:
            raise MoviekitError(
                f"dataset: no VidSitu clip has a video or features ({len(self.problems)} problems, e.g. {next(iter(self.problems.values()), '')})"
            )
        return out

    def vocabulary(self) -> list[str]:
        return sorted({v for _, _, events in self.clips() if events for ev in events for v in ev["verbs"]})


def write_vidsitu(root: Path, name: str, clips: list[tuple[str, list[dict[str, Any]] | None]]) -> None:
    """Write split file ``name`` and, for clips with events, its annotation file, in the release's format.

    ``clips`` is ``[(clip id, events)]`` with the events as :func:`read_annotations` returns them
    (per annotator ``verbs``, ``relations``, ``args``); the annotators become one list element each.
    """
    root = Path(root)
    atomic_write_text(root / "split_files" / f"vseg_split_{name}_lb.json", json.dumps([vid for vid, _ in clips], indent=1))
    anns = []
    for vid, events in clips:
        if not events:
            continue
        for a in range(len(events[0]["verbs"])):
            ann = {}
            for k, e in enumerate(EVENTS):
                ev = {"vid_seg_int": vid, "Verb": events[k]["verbs"][a], "Args": events[k]["args"][a]}
                if e != "Ev3":
                    ev["EvRel"] = events[k]["relations"][a]
                ann[e] = ev
            anns.append(ann)
    if anns:
        atomic_write_text(root / "vseg_ann_files" / f"vsann_{name}_lb.json", json.dumps(anns, indent=1))
