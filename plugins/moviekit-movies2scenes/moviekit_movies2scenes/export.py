"""``m2s_export_scenes``: the learnt scene embeddings as a ``features_dir`` folder, for other methods' heads."""

from __future__ import annotations

import csv
import io
import shutil
from typing import Any

import numpy as np
from pydantic import Field

from moviekit import Config, Task, TaskResult

from .common import item_scenes
from .downstream import representations


def write_scene_features(folder: Any, items: list[Any], scenes: list[Any], vectors: np.ndarray, modality: str = "scene") -> int:
    """``<folder>/<modality>/<movie>/<scene>.npy`` plus ``labels.csv`` (movie genres, split) and ``clips.csv`` (scene frame ranges)."""
    from pathlib import Path

    folder = Path(folder)
    shutil.rmtree(folder, ignore_errors=True)
    clips, labels = io.StringIO(), io.StringIO()
    wc, wl = csv.writer(clips, lineterminator="\n"), csv.writer(labels, lineterminator="\n")
    wc.writerow(["video", "clip", "start_frame", "end_frame", "start_time", "end_time"])
    wl.writerow(["video", "labels", "split"])
    per_movie: dict[int, int] = {}
    for sc, v in zip(scenes, vectors, strict=True):
        it = items[sc.item]
        k = per_movie.get(sc.item, 0)
        per_movie[sc.item] = k + 1
        d = folder / modality / it.id
        d.mkdir(parents=True, exist_ok=True)
        np.save(d / f"{k}.npy", v.astype(np.float32))
        first, last = it.clips[sc.shots[0]], it.clips[sc.shots[-1]]
        wc.writerow([it.id, k, first.start_frame, last.end_frame, first.start_time, last.end_time])
    for i in sorted(per_movie):
        it = items[i]
        wl.writerow([it.id, "|".join(it.video.labels), it.video.split or ""])
    (folder / "clips.csv").write_text(clips.getvalue())
    (folder / "labels.csv").write_text(labels.getvalue())
    return len(vectors)


class ExportScenes(Task):
    """Writes every item's ground-truth scenes embedded by the trained scene encoder as a `features_dir` folder (`<run>/<folder>/scene/<movie>/<scene>.npy`).

    A later recipe reads it with `dataset: {use: features_dir, root: <run>/scene_features}`, so MMX or
    MovieCLIP heads train on Movies2Scenes scene embeddings (one clip per scene, labels = the movie's).
    """

    name = "m2s_export_scenes"

    class Config(Config):
        model: str = Field("m2s_scene_cowatch", description="the trained scene model")
        folder: str = Field("scene_features", description="folder of the run directory")
        modality: str = Field("scene", description="modality name in the features_dir")

    @classmethod
    def example_config(cls, tmp_path: Any) -> dict[str, Any]:
        return {"model": "m2s_scene_genre"}

    @classmethod
    def example_setup(cls, tmp_path: Any) -> dict[str, Any]:
        from .downstream import _example_setup

        return _example_setup()

    def run(self, ctx: Any) -> TaskResult:
        scenes = item_scenes(ctx.items)
        vectors = representations(ctx, self.config.model, ctx.items, scenes, baselines=False)["learned"]
        n = write_scene_features(ctx.out_dir / self.config.folder, ctx.items, scenes, vectors, self.config.modality)
        return TaskResult(
            metrics={"scenes": n, "movies": len({s.item for s in scenes})},
            files=[f"{self.config.folder}/labels.csv", f"{self.config.folder}/clips.csv"],
        )
