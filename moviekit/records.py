"""Typed records passed between components.

Metadata records (:class:`Video`, :class:`Shot`, :class:`Clip`, ...) are
pydantic models.  Records that carry arrays allow ``numpy.ndarray`` fields and
check their shapes on construction.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .codec import register_record

Split = Literal["train", "val", "test"]


class Record(BaseModel):
    """Base class of all records."""

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")


class Video(Record):
    """One input item: a video file, or an item whose features were precomputed."""

    id: str
    path: Path | None = None
    labels: list[str] = Field(default_factory=list)
    split: Split | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    #: Precomputed per-clip features (``features_dir`` sources); decoding is skipped.
    features: FeatureSet | None = None
    #: Precomputed clip boundaries that go with ``features``.
    clips: list[Clip] | None = None


class VideoInfo(Record):
    """What a reader's ``probe()`` tells about a video before decoding it (the stream facts components open with).

    ``width``/``height`` are the upright display size (after rotation metadata); ``rotation`` is the
    rotation in degrees the reader applies to frames.  Plain data, so it stores as JSON.
    """

    fps: float = Field(ge=0, description="frames per second (the stream's average rate; the pyav reader says 25 when unknown)")
    num_frames: int = Field(ge=0, description="frames in the stream (from the container, else duration x fps)")
    duration: float = Field(ge=0, description="seconds")
    width: int = Field(ge=0, description="display width in pixels (upright)")
    height: int = Field(ge=0, description="display height in pixels (upright)")
    has_audio: bool = Field(description="whether the file has an audio stream")
    rotation: int = Field(0, description="rotation (degrees, counter-clockwise as in the display matrix) the reader applies to frames")


class Shot(Record):
    """A shot: frames ``[start_frame, end_frame)`` of a video."""

    video_id: str
    index: int
    start_frame: int
    end_frame: int
    start_time: float
    end_time: float

    @model_validator(mode="after")
    def _check_range(self) -> Shot:
        if self.end_frame < self.start_frame:
            raise ValueError(f"end_frame {self.end_frame} < start_frame {self.start_frame}")
        return self

    @property
    def num_frames(self) -> int:
        return self.end_frame - self.start_frame


class Clip(Shot):
    """A clip cut from a shot (by default the shot without its first and last frame)."""

    shot_index: int


class FrameBatch(Record):
    """Decoded RGB frames with their exact presentation times.

    ``frames`` is ``(n, H, W, 3) uint8``; ``indices`` are frame numbers in the
    source stream and ``times`` presentation timestamps in seconds.
    """

    frames: np.ndarray
    indices: np.ndarray
    times: np.ndarray

    @model_validator(mode="after")
    def _check(self) -> FrameBatch:
        n = len(self.frames)
        if self.frames.ndim != 4 or self.frames.shape[-1] != 3:
            raise ValueError(f"frames must be (n, H, W, 3), got {self.frames.shape}")
        if len(self.indices) != n or len(self.times) != n:
            raise ValueError("frames, indices and times must have the same length")
        return self

    def __len__(self) -> int:
        return len(self.frames)


class AudioChunk(Record):
    """Mono float32 audio samples starting at ``start_time`` seconds."""

    samples: np.ndarray
    sample_rate: int
    start_time: float

    @field_validator("samples")
    @classmethod
    def _mono(cls, v: np.ndarray) -> np.ndarray:
        if v.ndim != 1:
            raise ValueError(f"samples must be 1-d (mono), got shape {v.shape}")
        return v


class Track(Record):
    """A time series produced by a streaming consumer: one row per timestamp."""

    times: np.ndarray
    values: np.ndarray

    @model_validator(mode="after")
    def _check(self) -> Track:
        if len(self.times) != len(self.values):
            raise ValueError(f"{len(self.times)} times but {len(self.values)} values")
        return self

    @classmethod
    def concat(cls, times: list[np.ndarray], values: list[np.ndarray], dim: tuple[int, ...]) -> Track:
        if not times:
            return cls(times=np.zeros(0), values=np.zeros((0, *dim), dtype=np.float32))
        return cls(times=np.concatenate(times), values=np.concatenate(values))


class FeatureSet(Record):
    """Named per-modality arrays whose first axis indexes clips."""

    video_id: str
    arrays: dict[str, np.ndarray]

    @model_validator(mode="after")
    def _check(self) -> FeatureSet:
        lengths = {k: len(v) for k, v in self.arrays.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"modalities disagree on the number of clips: {lengths}")
        return self

    @property
    def num_clips(self) -> int:
        return next((len(v) for v in self.arrays.values()), 0)

    def spec(self) -> dict[str, dict[str, Any]]:
        """Shape (without the clip axis) and dtype of each modality."""
        return {k: {"shape": list(v.shape[1:]), "dtype": str(v.dtype)} for k, v in self.arrays.items()}


class Labels(Record):
    """Scored labels for one shot (or a whole video when ``shot_index`` is None)."""

    video_id: str
    shot_index: int | None = None
    scores: dict[str, float] = Field(default_factory=dict)
    labels: list[str] = Field(default_factory=list)


class Predictions(Record):
    """Model outputs for one video (or sequence) with the targets it was scored against."""

    video_id: str
    scores: dict[str, float]
    predicted: list[str]
    target: list[str] = Field(default_factory=list)
    sequence_index: int | None = None


class Embeddings(Record):
    """A set of vectors with the ids of what they embed."""

    ids: list[str]
    vectors: np.ndarray
    space: str = "default"

    @model_validator(mode="after")
    def _check(self) -> Embeddings:
        if self.vectors.ndim != 2 or len(self.vectors) != len(self.ids):
            raise ValueError(f"vectors must be (len(ids), d), got {self.vectors.shape} for {len(self.ids)} ids")
        return self


class Item(Record):
    """Everything the extraction stage learned about one video; what tasks consume."""

    video: Video
    shots: list[Shot] = Field(default_factory=list)
    clips: list[Clip] = Field(default_factory=list)
    features: FeatureSet | None = None
    shot_labels: list[Labels] = Field(default_factory=list)

    @property
    def id(self) -> str:
        return self.video.id


Video.model_rebuild()

# the core's records are on the artifact codec's allow-list
for _cls in (Video, VideoInfo, Shot, Clip, FrameBatch, AudioChunk, Track, FeatureSet, Labels, Predictions, Embeddings, Item):
    register_record(_cls)
