"""Dataset sources for user videos."""

from __future__ import annotations

import csv
from pathlib import Path

from pydantic import Field

from moviekit.hookspecs import hookimpl
from moviekit.components import DatasetSource
from moviekit.errors import MoviekitError
from moviekit.records import Video
from moviekit.sources import VIDEO_EXTENSIONS, SplitConfig, deterministic_split

__all__ = ["VIDEO_EXTENSIONS", "SplitConfig", "VideoFolder", "deterministic_split"]

class VideoFolder(DatasetSource):
    """Videos under a root folder, labelled by a CSV (`video`, `labels`, optional `split`).

    `labels` are `|`-separated; extra columns become item metadata.  Without a
    `split` column the split is a seeded, deterministic shuffle.  Without a CSV,
    every video file under the root is an unlabelled item.
    """

    name = "video_folder"

    class Config(SplitConfig):
        root: Path = Field(description="folder holding the videos")
        labels_csv: Path | None = Field(None, description="labels file; default <root>/labels.csv when it exists")

    @classmethod
    def example_config(cls, tmp_path: Path) -> dict:
        from moviekit.testing import write_test_video

        root = Path(tmp_path) / "videos"
        root.mkdir(parents=True, exist_ok=True)
        write_test_video(root / "a.mp4", audio=False)
        (root / "labels.csv").write_text("video,labels\na.mp4,Drama|Comedy\n")
        return {"root": str(root)}

    def _rows(self) -> list[dict[str, str]]:
        root = Path(self.config.root)
        if not root.is_dir():
            raise MoviekitError(f"dataset.root: {root} is not a folder")
        csv_path = self.config.labels_csv or (root / "labels.csv")
        if not Path(csv_path).exists():
            if self.config.labels_csv:
                raise MoviekitError(f"dataset.labels_csv: {csv_path} does not exist")
            return [{"video": str(p.relative_to(root))} for p in sorted(root.rglob("*")) if p.suffix.lower() in VIDEO_EXTENSIONS]
        with open(csv_path, newline="") as f:
            reader = csv.DictReader(f)
            if not reader.fieldnames or "video" not in reader.fieldnames:
                raise MoviekitError(f"{csv_path}: needs a `video` column (has {reader.fieldnames})")
            return list(reader)

    def items(self) -> list[Video]:
        root = Path(self.config.root)
        rows = self._rows()
        has_split = any(r.get("split") for r in rows)
        splits = {} if has_split else deterministic_split([r["video"] for r in rows], self.config.seed, self.config.split_fractions)
        out = []
        for r in rows:
            rel = r["video"]
            split = (r.get("split") or "").strip() or splits.get(rel)
            if split not in (None, "train", "val", "test"):
                raise MoviekitError(f"labels row for {rel}: split must be train, val or test, got {split!r}")
            labels = [x.strip() for x in (r.get("labels") or "").split("|") if x.strip()]
            meta = {k: v for k, v in r.items() if k not in ("video", "labels", "split") and k is not None}
            out.append(Video(id=Path(rel).with_suffix("").as_posix(), path=root / rel, labels=labels, split=split, metadata=meta))
        return out

    def vocabulary(self) -> list[str]:
        return list(self.config.vocabulary) if self.config.vocabulary else super().vocabulary()


@hookimpl
def register_components(register):
    register(VideoFolder)
