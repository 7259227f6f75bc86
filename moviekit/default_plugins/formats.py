"""The ``features_dir`` dataset source: precomputed per-clip feature folders.

``features_dir`` reads expert features that were computed elsewhere (for example the
per-scene embeddings MMX-Trailer-20 distributes per modality), so a run skips decoding.
:func:`write_features_dir` writes the same layout from extracted :class:`~moviekit.records.Item` s.
(The MovieCLIP tags format, ``movieclip_json``, belongs to the moviekit-movieclip plugin.)
"""

from __future__ import annotations

import csv
import logging
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from moviekit.default_plugins.datasets import VideoFolder
from moviekit.errors import MoviekitError
from moviekit.hookspecs import hookimpl
from moviekit.paths import safe_component
from moviekit.records import Clip, FeatureSet, Item, Video
from moviekit.sources import ListingSource

log = logging.getLogger(__name__)

CLIP_FILE_RE = re.compile(r"^\d+$")
CLIPS_CSV_COLUMNS = ("video", "clip", "start_frame", "end_frame", "start_time", "end_time")


# -- features_dir ------------------------------------------------------------------


class FeaturesDir(ListingSource, VideoFolder):
    """Precomputed per-clip expert features: `<root>/<modality>/<video id>/<clip index>.npy`.

    Each `.npy` holds one clip's feature, shape `(d,)`, or `(t, d)` which is pooled over `t`
    (`temporal_reduce` mean or max) or kept as a set of `t` descriptors (`none`: clips with fewer
    rows are padded with zero rows, which set-aggregating encoders such as NetVLAD ignore).  Labels come from a CSV like `video_folder`'s (`video` = video id,
    `|`-separated `labels`, optional `split`); without one every video folder is an
    unlabelled item split deterministically.  Clip boundaries come from an optional
    `<root>/clips.csv` (`video,clip,start_frame,end_frame,start_time,end_time`); clips
    missing from it get placeholders (frames `[i, i+1)`, times `[i, i+1)` for clip index
    `i`, listed in `metadata["placeholder_clips"]` when a clips.csv exists), and
    `shot_index` is always the clip index.  When a video's modalities disagree on clip
    indices only the common ones are kept (`metadata["dropped_clips"]`).  A video with a
    missing modality or an unreadable/ill-shaped array is left out and reported in
    `problems` (video id -> message); the other videos are still listed.
    """

    name = "features_dir"
    takes = "config (a folder of .npy features)"
    returns = "Video items with precomputed features and clips (no decoding)"

    class Config(VideoFolder.Config):
        root: Path = Field(description="folder holding one subfolder per modality: <root>/<modality>/<video id>/<clip index>.npy")
        labels_csv: Path | None = Field(
            None,
            description="labels file (video,labels,split); default <root>/labels.csv when it exists, else every video folder unlabelled",
        )
        clips_csv: Path | None = Field(
            None,
            description="clip boundaries (video,clip,start_frame,end_frame,start_time,end_time); default <root>/clips.csv when it exists, else placeholders",
        )
        modalities: list[str] | None = Field(None, description="modality subfolders to read; None reads every subfolder of root")
        temporal_reduce: Literal["mean", "max", "none"] = Field(
            "mean",
            description="how a (t, d) array is pooled over t into (d,); none keeps it as t descriptors (zero rows pad shorter clips)",
        )
        dims: dict[str, int] | None = Field(
            None,
            description="expected feature size per modality; videos that differ are reported in `problems`. Default: the first readable video fixes each modality's size",
        )

    @classmethod
    def example_config(cls, tmp_path: Path) -> dict:
        from moviekit.testing import tiny_items

        root = Path(tmp_path) / "features"
        write_features_dir(root, tiny_items(n=4, n_clips=3, modalities={"visual": (6,), "audio": (4,)}))
        return {"root": str(root)}

    # -- listing -----------------------------------------------------------------
    def _modalities(self) -> list[str]:
        root = Path(self.config.root)
        if not root.is_dir():
            raise MoviekitError(f"dataset.root: {root} is not a folder")
        if self.config.modalities is not None:
            missing = [m for m in self.config.modalities if not (root / m).is_dir()]
            if missing:
                raise MoviekitError(f"dataset.modalities: no folder for {', '.join(missing)} under {root}")
            if not self.config.modalities:
                raise MoviekitError("dataset.modalities: list at least one modality (or leave it unset)")
            return list(self.config.modalities)
        found = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        if not found:
            raise MoviekitError(f"dataset.root: {root} has no modality subfolders (<root>/<modality>/<video id>/<clip>.npy)")
        return found

    def _rows(self) -> list[dict[str, str]]:
        csv_path = self.config.labels_csv or (Path(self.config.root) / "labels.csv")
        if self.config.labels_csv or Path(csv_path).exists():
            return super()._rows()
        root = Path(self.config.root)
        ids = sorted({p.name for m in self._modalities() for p in (root / m).iterdir() if p.is_dir() and not p.name.startswith(".")})
        return [{"video": vid, "_where": str(root / "<modality>" / vid)} for vid in ids]

    @staticmethod
    def _video_id(rel: str) -> str:
        """A features_dir row's `video` is the item id itself (its folder is the id made path-safe)."""
        return rel

    def _resolve(self, rel: str, where: str) -> Path:
        # no video file: the features are read from <root>/<modality>/<safe id>/, which cannot escape root
        return Path(self.config.root)

    def _clip_rows(self) -> dict[tuple[str, int], dict[str, str]] | None:
        path = self.config.clips_csv or (Path(self.config.root) / "clips.csv")
        if not Path(path).exists():
            if self.config.clips_csv:
                raise MoviekitError(f"dataset.clips_csv: {path} does not exist")
            return None
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            missing = [c for c in CLIPS_CSV_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise MoviekitError(f"{path}: missing column(s) {', '.join(missing)} (has {reader.fieldnames})")
            out = {}
            for line, r in enumerate(reader, start=2):
                try:
                    out[(r["video"], int(r["clip"]))] = r
                except ValueError:
                    raise MoviekitError(f"{path}:{line}: clip must be an integer, got {r['clip']!r}") from None
            return out

    def items(self) -> list[Video]:
        modalities = self._modalities()
        rows = self._rows()
        # video_folder parses labels, splits and extra columns; keep the CSV's id verbatim.
        listed = super().items()
        clip_rows = self._clip_rows()
        dims: dict[str, int] = dict(self.config.dims or {})
        self.problems = {}
        out = []
        for row, base in zip(rows, listed, strict=True):
            vid = row["video"]
            try:
                arrays, kept, dropped = self._load_video(vid, modalities, dims)
                clips, placeholders = _make_clips(vid, kept, clip_rows)
            except _VideoProblem as e:
                self.problems[vid] = str(e)
                log.warning("features_dir: skipping %s: %s", vid, e)
                continue
            for m, a in arrays.items():
                dims.setdefault(m, a.shape[-1])
            meta = dict(base.metadata)
            if dropped:
                meta["dropped_clips"] = dropped
            if placeholders:
                meta["placeholder_clips"] = placeholders
            out.append(
                base.model_copy(
                    update={"id": vid, "path": None, "metadata": meta, "features": FeatureSet(video_id=vid, arrays=arrays), "clips": clips}
                )
            )
        self._listed = out
        return out

    def _load_video(
        self, vid: str, modalities: list[str], dims: dict[str, int]
    ) -> tuple[dict[str, np.ndarray], list[int], dict[str, list[int]]]:
        root = Path(self.config.root)
        files: dict[str, dict[int, Path]] = {}
        for m in modalities:
            folder = root / m / safe_component(vid)
            if not folder.is_dir():
                raise _VideoProblem(f"modality '{m}' is missing ({folder} is not a folder)")
            by_index: dict[int, Path] = {}
            for p in folder.glob("*.npy"):
                if not CLIP_FILE_RE.match(p.stem):
                    raise _VideoProblem(f"{p}: file name must be the clip index, e.g. 0.npy")
                by_index[int(p.stem)] = p
            if not by_index:
                raise _VideoProblem(f"modality '{m}' has no clip files in {folder}")
            files[m] = by_index
        common = set.intersection(*(set(f) for f in files.values()))
        if not common:
            raise _VideoProblem(f"modalities share no clip index ({', '.join(f'{m}: {len(f)} clips' for m, f in files.items())})")
        kept = sorted(common)
        dropped = {m: sorted(set(f) - common) for m, f in files.items() if set(f) != common}
        arrays = {}
        for m, by_index in files.items():
            rows = [self._load_clip(by_index[i]) for i in kept]
            sizes = {r.shape[-1] for r in rows}
            if len(sizes) > 1:
                raise _VideoProblem(f"modality '{m}': clips have different feature sizes {sorted(sizes)}")
            size = sizes.pop()
            if m in dims and dims[m] != size:
                raise _VideoProblem(f"modality '{m}': feature size {size}, expected {dims[m]}")
            if len({r.ndim for r in rows}) > 1:
                raise _VideoProblem(f"modality '{m}': some clips are (d,) and some (t, d) descriptor sets")
            if rows[0].ndim == 2:  # descriptor sets (temporal_reduce: none): pad to the longest
                t = max(r.shape[0] for r in rows)
                rows = [np.pad(r, ((0, t - r.shape[0]), (0, 0))) for r in rows]
            arrays[m] = np.stack(rows).astype(np.float32, copy=False)
        return arrays, kept, dropped

    def _load_clip(self, path: Path) -> np.ndarray:
        try:
            a = np.load(path, allow_pickle=False)
        except Exception as e:  # noqa: BLE001 - any unreadable file is reported, not raised
            raise _VideoProblem(f"{path}: unreadable .npy ({type(e).__name__}: {e})") from e
        if not isinstance(a, np.ndarray) or a.dtype.kind not in "fiub":
            raise _VideoProblem(f"{path}: expected a numeric array, got {getattr(a, 'dtype', type(a).__name__)}")
        if a.ndim == 2:
            if a.shape[0] == 0:
                raise _VideoProblem(f"{path}: temporal array with no rows {a.shape}")
            if self.config.temporal_reduce != "none":
                a = a.mean(axis=0) if self.config.temporal_reduce == "mean" else a.max(axis=0)
        elif a.ndim != 1:
            raise _VideoProblem(f"{path}: expected shape (d,) or (t, d), got {a.shape}")
        if a.shape[-1] == 0:
            raise _VideoProblem(f"{path}: empty feature")
        a = a.astype(np.float32)
        if not np.isfinite(a).all():
            raise _VideoProblem(f"{path}: non-finite values")
        return a


class _VideoProblem(Exception):
    """One video cannot be read; it is reported and the listing goes on."""


def _make_clips(vid: str, indices: list[int], clip_rows: dict[tuple[str, int], dict[str, str]] | None) -> tuple[list[Clip], list[int]]:
    clips, placeholders = [], []
    for i in indices:
        r = clip_rows.get((vid, i)) if clip_rows is not None else None
        if r is None:
            if clip_rows is not None:
                placeholders.append(i)
            clips.append(
                Clip(video_id=vid, index=i, shot_index=i, start_frame=i, end_frame=i + 1, start_time=float(i), end_time=float(i + 1))
            )
            continue
        try:
            clips.append(
                Clip(
                    video_id=vid,
                    index=i,
                    shot_index=i,
                    start_frame=int(r["start_frame"]),
                    end_frame=int(r["end_frame"]),
                    start_time=float(r["start_time"]),
                    end_time=float(r["end_time"]),
                )
            )
        except (ValueError, TypeError) as e:
            raise _VideoProblem(f"clips.csv row for clip {i}: {e}") from e
    return clips, placeholders


def write_features_dir(root: str | Path, items: Iterable[Item]) -> Path:
    """Write items' features in the ``features_dir`` layout; returns ``root``.

    Writes ``<root>/<modality>/<video id>/<clip index>.npy`` (float32, one ``(d,)`` row, or
    ``(t, d)`` descriptors, per clip, named by the item's clip index when it has one clip record per feature row, else
    by row number), ``<root>/labels.csv`` (video, labels, split) and ``<root>/clips.csv``
    for items with clip records.  Item metadata and shot indices are not stored.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    labels_rows, clip_rows = [], []
    for item in items:
        vid = item.video.id
        if item.features is None or not item.features.arrays:
            raise MoviekitError(f"{vid}: item has no features to write")
        n = item.features.num_clips
        clips = item.clips if len(item.clips) == n else None
        indices = [c.index for c in clips] if clips else list(range(n))
        if len(set(indices)) != n:
            raise MoviekitError(f"{vid}: clip indices are not unique")
        for m, arr in item.features.arrays.items():
            if arr.ndim not in (2, 3):
                raise MoviekitError(f"{vid}: modality '{m}' must be (clips, d) or (clips, t, d) to write, got {arr.shape}")
            folder = root / m / safe_component(vid)
            folder.mkdir(parents=True, exist_ok=True)
            for idx, row in zip(indices, arr, strict=True):
                np.save(folder / f"{idx}.npy", np.asarray(row, dtype=np.float32))
        labels_rows.append([vid, "|".join(item.video.labels), item.video.split or ""])
        for c in clips or []:
            clip_rows.append([vid, c.index, c.start_frame, c.end_frame, repr(float(c.start_time)), repr(float(c.end_time))])
    with open(root / "labels.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["video", "labels", "split"])
        w.writerows(labels_rows)
    if clip_rows:
        with open(root / "clips.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(CLIPS_CSV_COLUMNS)
            w.writerows(clip_rows)
    return root


def export_features_dir(out_dir: str | Path, rel: str, items: Iterable[Item], key: str) -> list[str]:
    """Write ``items``' features as a ``features_dir`` folder ``rel`` of the run directory ``out_dir`` (see
    :func:`write_features_dir`); returns the files written, relative to ``out_dir``.

    ``rel`` is relative, without ``..`` (errors name the recipe ``key``).  The folder is written under a
    temporary name and renamed into place; an existing folder of that name is replaced only when the run
    directory's ``manifest.json`` shows moviekit wrote it, so a user's own files are never deleted.
    """
    import shutil
    import tempfile
    import uuid

    from moviekit import manifest
    from moviekit.paths import output_path

    out_dir = Path(out_dir)
    folder = output_path(out_dir, rel, key)
    rel = folder.relative_to(out_dir).as_posix()
    if not manifest.owned(out_dir, rel):
        raise MoviekitError(
            f"{key}: {folder} exists and was not written by moviekit (or changed since); "
            "moviekit never deletes what it did not create: move it away, or set it to another folder"
        )
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.tmp-"))
    try:
        write_features_dir(tmp, items)
        if folder.exists():
            old = folder.parent / f".{folder.name}.old-{uuid.uuid4().hex[:8]}"
            folder.rename(old)
            tmp.rename(folder)
            shutil.rmtree(old)  # every file in it was written by moviekit (checked above)
        else:
            tmp.rename(folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    written = sorted(f.relative_to(out_dir).as_posix() for f in folder.rglob("*") if f.is_file())
    manifest.forget(out_dir, rel)
    manifest.record(out_dir, written)
    return written


@hookimpl
def register_components(register):
    register(FeaturesDir)
