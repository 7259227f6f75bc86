"""Dataset sources for user videos."""

from __future__ import annotations

import csv
import io
import posixpath
from pathlib import Path, PurePosixPath

from pydantic import Field

from moviekit.components import DatasetSource
from moviekit.errors import MoviekitError
from moviekit.hookspecs import hookimpl
from moviekit.paths import inside
from moviekit.records import Video
from moviekit.sources import VIDEO_EXTENSIONS, SplitConfig, deterministic_split

__all__ = ["VIDEO_EXTENSIONS", "SplitConfig", "VideoFolder", "deterministic_split"]


def read_csv_rows(path: Path, required: tuple[str, ...] = ()) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """The header and ``(line number, row)`` pairs of a CSV file.

    A UTF-8 byte-order mark (Excel writes one) is accepted; bytes that are not UTF-8 are an
    error naming the file and line; a missing ``required`` column is an error naming the file
    and the columns it has.  Cells are stripped of surrounding whitespace.
    """
    raw = Path(path).read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise MoviekitError(f"{path}:{line}: not UTF-8 text (byte 0x{raw[e.start]:02x}); save the file as UTF-8") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [h.strip() for h in (reader.fieldnames or [])]
    reader.fieldnames = header
    missing = [c for c in required if c not in header]
    if missing:
        raise MoviekitError(f"{path}: needs the column(s) {', '.join(repr(c) for c in missing)} (has {header or 'no header'})")
    rows = []
    for row in reader:
        if not any((v or "").strip() for k, v in row.items() if k is not None):
            continue  # blank line
        rows.append((reader.line_num, {k: (v or "").strip() if isinstance(v, str) else v for k, v in row.items()}))
    return header, rows


class VideoFolder(DatasetSource):
    """Videos under a root folder, labelled by a CSV (`video`, `labels`, optional `split`).

    `labels` are `|`-separated (an empty cell: an unlabelled video); extra columns become item
    metadata.  Without a `split` column the split is a seeded, deterministic shuffle.  Without a
    CSV, every video file under the root is an unlabelled item.  A CSV may start with a UTF-8 BOM.
    Video paths resolve inside `root` (`..`, absolute paths or links leading out are errors
    unless `allow_outside_root: true`); two rows (or files such as `v0.mp4` and `v0.mkv`)
    giving one item id are an error naming both.
    """

    name = "video_folder"

    class Config(SplitConfig):
        root: Path = Field(description="folder holding the videos")
        labels_csv: Path | None = Field(None, description="labels file; default <root>/labels.csv when it exists")
        allow_outside_root: bool = Field(
            False, description="let labels rows name videos outside root (absolute paths, '..', links leading out)"
        )

    @classmethod
    def example_config(cls, tmp_path: Path) -> dict:
        from moviekit.testing import write_test_video

        root = Path(tmp_path) / "videos"
        root.mkdir(parents=True, exist_ok=True)
        write_test_video(root / "a.mp4", audio=False)
        (root / "labels.csv").write_text("video,labels\na.mp4,Drama|Comedy\n")
        return {"root": str(root)}

    def _csv_path(self) -> Path:
        return Path(self.config.labels_csv or (Path(self.config.root) / "labels.csv"))

    def _rows(self) -> list[dict[str, str]]:
        """The labels rows (each with ``_where``: ``file:line``), or one row per video file under root."""
        root = Path(self.config.root)
        if not root.is_dir():
            raise MoviekitError(f"dataset.root: {root} is not a folder")
        csv_path = self._csv_path()
        if not csv_path.exists():
            if self.config.labels_csv:
                raise MoviekitError(f"dataset.labels_csv: {csv_path} does not exist")
            return [
                {"video": p.relative_to(root).as_posix(), "_where": str(p)}
                for p in sorted(root.rglob("*"))
                if p.suffix.lower() in VIDEO_EXTENSIONS and not p.is_dir()
            ]
        _, rows = read_csv_rows(csv_path, ("video", "labels"))
        out = []
        for line, r in rows:
            if not r.get("video"):
                raise MoviekitError(f"{csv_path}:{line}: the `video` cell is empty")
            out.append({**r, "_where": f"{csv_path}:{line}"})
        return out

    def _resolve(self, rel: str, where: str) -> Path:
        """The video file a row names, inside root unless ``allow_outside_root``."""
        root = Path(self.config.root)
        path = Path(rel) if Path(rel).is_absolute() else root / rel
        if not self.config.allow_outside_root and not inside(path, root):
            raise MoviekitError(f"{where}: video {rel!r} is outside dataset.root {root}; set dataset.allow_outside_root: true to allow it")
        return path

    @staticmethod
    def _video_id(rel: str) -> str:
        """The item id of a row's video: its path relative to root (normalised) without the extension."""
        norm = posixpath.normpath(rel.replace("\\", "/"))
        return PurePosixPath(norm).with_suffix("").as_posix()

    def items(self) -> list[Video]:
        rows = self._rows()
        has_split = any(r.get("split") for r in rows)
        ids = [self._video_id(r["video"]) for r in rows]
        check_unique(ids, [r["_where"] for r in rows], [r["video"] for r in rows])
        splits = {} if has_split else deterministic_split(ids, self.config.seed, self.config.split_fractions)
        out = []
        for r, vid in zip(rows, ids, strict=True):
            rel, where = r["video"], r["_where"]
            split = (r.get("split") or "").strip() or splits.get(vid)
            if split not in (None, "train", "val", "test"):
                raise MoviekitError(f"{where}: split must be train, val or test, got {split!r}")
            labels = [x.strip() for x in (r.get("labels") or "").split("|") if x.strip()]
            meta = {k: v for k, v in r.items() if k not in ("video", "labels", "split", "_where") and k is not None}
            out.append(Video(id=vid, path=self._resolve(rel, where), labels=labels, split=split, metadata=meta))
        return out

    def vocabulary(self) -> list[str]:
        return list(self.config.vocabulary) if self.config.vocabulary else super().vocabulary()


def check_unique(ids: list[str], wheres: list[str], names: list[str]) -> None:
    """Two rows giving one item id would overwrite each other's features: an error naming both."""
    first: dict[str, int] = {}
    for i, vid in enumerate(ids):
        if vid in first:
            j = first[vid]
            raise MoviekitError(f"duplicate item id '{vid}': {wheres[j]} ({names[j]}) and {wheres[i]} ({names[i]}); list each video once")
        first[vid] = i


@hookimpl
def register_components(register):
    register(VideoFolder)
