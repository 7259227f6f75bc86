"""What dataset sources share: the video file extensions, and the seeded train/val/test split with its config fields.

Public (``moviekit.SplitConfig``, ``moviekit.deterministic_split``, ``moviekit.VIDEO_EXTENSIONS``) so that a
plugin's source splits and lists videos exactly as the core's ``video_folder`` does.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from .components import Config
from .records import Video

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v", ".mpg", ".mpeg", ".ts")


def deterministic_split(ids: list[str], seed: int, fractions: tuple[float, float, float]) -> dict[str, str]:
    """train/val/test by a seeded shuffle of the sorted ids (stable across runs and machines)."""
    order = sorted(ids)
    random.Random(seed).shuffle(order)
    n = len(order)
    n_train = round(n * fractions[0])
    n_val = round(n * fractions[1])
    return {vid: ("train" if i < n_train else "val" if i < n_train + n_val else "test") for i, vid in enumerate(order)}


class SplitConfig(Config):
    """Config fields shared by labelled sources: the deterministic split and the label order."""

    split_fractions: tuple[float, float, float] = Field(
        (0.7, 0.15, 0.15), description="train/val/test fractions when the data gives no split"
    )
    seed: int = Field(0, description="seed of the deterministic split")
    vocabulary: list[str] | None = Field(None, description="fixed label order; default sorted labels found")

    @field_validator("split_fractions")
    @classmethod
    def _sum(cls, v: tuple[float, float, float]) -> tuple[float, float, float]:
        if abs(sum(v) - 1.0) > 1e-6 or min(v) < 0:
            raise ValueError(f"split_fractions must be non-negative and sum to 1, got {v}")
        return v


def write_mp4(path: str | Path, frames: Any, fps: float, crf: int = 23) -> Path:
    """``(T, H, W, 3) uint8`` RGB frames as an H.264 yuv420p mp4 without audio, written with PyAV.

    The one writer the synthetic data sources share (single-threaded x264, ``preset veryfast``,
    ``mbtree=0``), so a seeded source writes the same bytes on every machine; returns ``path``."""
    from fractions import Fraction

    import av
    import numpy as np

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format="mp4") as out:
        vs = out.add_stream("libx264", rate=Fraction(fps), options={"crf": str(crf), "preset": "veryfast", "x264-params": "mbtree=0"})
        vs.width, vs.height, vs.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        vs.codec_context.thread_count = 1
        for i, img in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            vf.pts = i
            for pk in vs.encode(vf):
                out.mux(pk)
        for pk in vs.encode():
            out.mux(pk)
    return path


class ListingSource:
    """Mixin of dataset sources that skip bad videos: ``problems`` (video id -> why it was left
    out, filled by ``items()``) and ``vocabulary()``: the config's ``vocabulary`` when set, else
    the labels of the videos last listed.  Put it before :class:`DatasetSource` in the bases."""

    def __init__(self, config: Any = None, **fields: Any):
        super().__init__(config, **fields)
        #: Video id -> why it was left out, filled by :meth:`items`.
        self.problems: dict[str, str] = {}
        self._listed: list[Video] | None = None

    def vocabulary(self) -> list[str]:
        if self.config.vocabulary:
            return list(self.config.vocabulary)
        listed = self._listed if self._listed is not None else self.items()
        return sorted({label for v in listed for label in v.labels})
