"""The component interfaces every plugin implements.

A component is a class with a ``name``, a pydantic ``Config`` model and the
methods of its kind.  Components are constructed from their config alone, so
a recipe entry ``{use: NAME, **fields}`` is enough to build one.

Kinds and what they do:

* :class:`DatasetSource` yields :class:`~moviekit.records.Video` items.
* :class:`Reader` decodes a video once and fans frames and audio out to sinks.
* :class:`Segmenter` turns a frame stream into shots.
* :class:`Expert` turns a frame or audio stream into a feature track, pooled per clip.
* :class:`Labeler` turns a frame stream into per-shot labels.
* :class:`Encoder` and :class:`Head` build trainable ``torch.nn.Module`` s.
* :class:`Task` consumes the extracted items (and the encoder/head) and writes results.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from .codec import register_record
from .records import AudioChunk, Clip, FeatureSet, FrameBatch, Item, Labels, Shot, Track, Video, VideoInfo

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from .context import TaskContext


class Config(BaseModel):
    """Base of component configs: unknown fields are errors."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class FrameNeed(BaseModel):
    """Which frames a consumer wants from the shared decode."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fps: float | None = Field(None, description="sample rate in frames per second; None keeps every frame")
    size: tuple[int, int] | None = Field(None, description="(width, height) to resize to; None keeps the source size")
    batch: int = Field(16, ge=1, description="frames per batch handed to the consumer")
    pixels: bool = Field(
        True,
        description="False: only the frames' indices and times are wanted (a segmenter that counts time); "
        "batches then hold (n, 0, 0, 3) frames and the reader converts nothing for them",
    )


class AudioNeed(BaseModel):
    """Which audio a consumer wants from the shared decode."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sample_rate: int = 16000
    chunk_seconds: float = 10.0


class Needs(BaseModel):
    """Inputs a streaming component needs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    frames: FrameNeed | None = None
    audio: AudioNeed | None = None
    flow: bool = Field(False, description="computes optical flow, so needs consecutive frames at `frames.fps`")


class WeightsSpec(BaseModel):
    """Where a component's weights come from; see :func:`moviekit.weights.resolve_weights`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="short name, also the folder looked up under $MOVIEKIT_WEIGHTS")
    description: str = ""
    path: str | None = Field(None, description="explicit local file or folder given in the config")
    package: str | None = Field(None, description="an installed Python package that ships the weights")
    hub: str | None = Field(None, description="hub id or URL, downloaded only when online")
    filenames: tuple[str, ...] = ()
    required: bool = True
    config_key: str = Field("weights", description="the component's config field that takes a local path to these weights")


def shape_matches(shape: tuple[int, ...], declared: tuple[int | None, ...]) -> bool:
    """Whether an array's ``shape`` fits a declared one (an :meth:`Expert.feature_shape`), ``None`` matching any size."""
    return len(shape) == len(declared) and all(d is None or int(a) == d for a, d in zip(shape, declared))


class Sink:
    """Receives one video's decoded stream; ``close`` returns the consumer's result."""

    def frames(self, batch: FrameBatch) -> None:  # pragma: no cover - default no-op
        pass

    def audio(self, chunk: AudioChunk) -> None:  # pragma: no cover - default no-op
        pass

    def close(self) -> Any:
        raise NotImplementedError


class Component:
    """Base of all components."""

    kind: ClassVar[str] = "component"
    name: ClassVar[str] = ""
    Config: ClassVar[type[Config]] = Config
    #: Semantic version of the component's own output; bump to invalidate cached artifacts.
    version: ClassVar[str] = "1"
    #: The records the component takes and returns (documentation, shown by `moviekit show`).
    takes: ClassVar[str] = ""
    returns: ClassVar[str] = ""

    def __init__(self, config: Config | dict[str, Any] | None = None, **fields: Any):
        if config is None:
            config = self.Config(**fields)
        elif isinstance(config, dict):
            config = self.Config(**{**config, **fields})
        elif fields:
            config = config.model_copy(update=fields)
        self.config = config

    @classmethod
    def describe(cls) -> str:
        """First paragraph of the class docstring."""
        doc = (cls.__doc__ or "").strip()
        return doc.split("\n\n")[0].replace("\n", " ")

    @classmethod
    def example_config(cls, tmp_path: Path) -> dict[str, Any]:
        """A small config for contract tests (override when a field is required)."""
        return {}

    @classmethod
    def check_recipe(cls, config: Config, recipe: Any) -> list[str]:
        """Problems with ``config`` in the context of the whole validated ``recipe`` (a
        :class:`~moviekit.recipe.Recipe`), reported at this component's key before a run starts."""
        return []

    def needs(self) -> Needs:
        """Inputs this component wants from the shared decode (streaming kinds only)."""
        return Needs()

    def weights(self) -> list[WeightsSpec]:
        """Weights this component loads, for ``moviekit doctor`` and clear errors."""
        return []

    def __repr__(self) -> str:
        return f"<{self.kind} {self.name} {self.config!r}>"


class DatasetSource(Component):
    """Yields the videos of a dataset with their labels and splits."""

    kind = "dataset"
    takes = "config"
    returns = "Video items"

    def items(self) -> Iterable[Video]:
        raise NotImplementedError

    def vocabulary(self) -> list[str]:
        """The label set in a fixed order; defaults to the sorted union of item labels."""
        return sorted({label for v in self.items() for label in v.labels})


class Reader(Component):
    """Decodes a video once and fans its frames and audio out to every sink."""

    kind = "reader"
    takes = "Video"
    returns = "FrameBatch and AudioChunk streams, one pass"

    def probe(self, video: Video) -> VideoInfo:
        """Stream facts (fps, num_frames, duration, width, height, has_audio, rotation) as a :class:`VideoInfo`."""
        raise NotImplementedError

    def read(self, video: Video, consumers: list[tuple[Needs, Sink]]) -> None:
        """Decode ``video`` in one pass, handing each sink what its needs ask for."""
        raise NotImplementedError

    def frame_at(self, video: Video, time: float | None = None) -> np.ndarray:
        """The upright RGB frame ``(H, W, 3)`` uint8 shown at ``time`` seconds (the middle of the video when None),
        as :meth:`read` would deliver it: the first frame at or after ``time``, else the last one.

        This default decodes the video through :meth:`read`; a reader that can seek overrides it.
        """
        if time is None:
            time = self.probe(video).duration / 2
        state: dict[str, Any] = {"frame": None, "done": False}

        class _Pick(Sink):
            def frames(self, batch: FrameBatch) -> None:
                for img, t in zip(batch.frames, batch.times, strict=True):
                    if state["done"]:
                        return
                    state["frame"] = img
                    state["done"] = float(t) + 1e-3 >= time

            def close(self) -> None:
                return None

        self.read(video, [(Needs(frames=FrameNeed()), _Pick())])
        if state["frame"] is None:
            raise ValueError(f"{video.path}: no video frames")
        return np.asarray(state["frame"])


class Segmenter(Component):
    """Cuts a video into shots from its frame stream."""

    kind = "segmenter"
    takes = "FrameBatch stream"
    returns = "list[Shot]"

    def open(self, video: Video, info: VideoInfo) -> Sink:
        """A sink whose ``close()`` returns ``list[Shot]``."""
        raise NotImplementedError


class _FeatureSink(Sink):
    def __init__(self, expert: Expert):
        self.expert = expert
        self.times: list[np.ndarray] = []
        self.values: list[np.ndarray] = []

    def frames(self, batch: FrameBatch) -> None:
        out = self.expert.encode_frames(batch)
        if out is not None:
            self.times.append(np.asarray(batch.times, dtype=np.float64))
            self.values.append(np.asarray(out, dtype=np.float32))

    def audio(self, chunk: AudioChunk) -> None:
        out = self.expert.encode_audio(chunk)
        if out is not None:
            times, values = out
            self.times.append(np.asarray(times, dtype=np.float64))
            self.values.append(np.asarray(values, dtype=np.float32))

    def close(self) -> Track:
        return Track.concat(self.times, self.values, self.expert.feature_shape())


def pool_track(track: Track, clips: list[Clip], reduce: str = "mean") -> np.ndarray:
    """Temporal pooling of a track into one row per clip.

    Rows whose time lies in ``[clip.start_time, clip.end_time)`` are averaged
    (or max-pooled).  A clip with no row takes the row nearest its midpoint, so
    short clips still get a feature; an empty track gives zeros.
    """
    dim = track.values.shape[1:]
    out = np.zeros((len(clips), *dim), dtype=np.float32)
    if len(track.times) == 0:
        return out
    order = np.argsort(track.times, kind="stable")
    times, values = track.times[order], track.values[order]
    for i, c in enumerate(clips):
        lo, hi = np.searchsorted(times, [c.start_time, c.end_time], side="left")
        if hi > lo:
            seg = values[lo:hi]
            out[i] = seg.mean(axis=0) if reduce == "mean" else seg.max(axis=0)
        else:
            mid = 0.5 * (c.start_time + c.end_time)
            out[i] = values[int(np.argmin(np.abs(times - mid)))]
    return out


class Expert(Component):
    """A pre-trained model that turns a video's stream into per-clip features.

    The simple way to write one is to implement :meth:`encode_frames` (or
    :meth:`encode_audio`) and :meth:`feature_shape`: the default :meth:`open`
    streams batches through it and :meth:`pool` averages rows over each clip.
    Stateful experts (optical flow across batches) override :meth:`open`.
    """

    kind = "expert"
    takes = "FrameBatch and/or AudioChunk stream"
    returns = "Track, pooled per Clip into FeatureSet arrays"

    def feature_shape(self) -> tuple[int | None, ...]:
        """Shape of one track row (and of one clip's pooled feature); ``None`` for a size that depends on the
        video (e.g. frames resized keeping their aspect ratio), checked with :func:`shape_matches`."""
        raise NotImplementedError

    def encode_frames(self, batch: FrameBatch) -> np.ndarray | None:
        """``(n, *feature_shape)`` features for the batch's frames."""
        return None

    def encode_audio(self, chunk: AudioChunk) -> tuple[np.ndarray, np.ndarray] | None:
        """``(times, values)`` for an audio chunk."""
        return None

    def open(self, video: Video, info: VideoInfo) -> Sink:
        return _FeatureSink(self)

    def pool(self, track: Track, clips: list[Clip]) -> np.ndarray:
        return pool_track(track, clips)


class Labeler(Component):
    """Scores labels per frame and aggregates them into per-shot :class:`Labels`."""

    kind = "labeler"
    takes = "FrameBatch stream and Shots"
    returns = "list[Labels] per shot"

    def open(self, video: Video, info: VideoInfo) -> Sink:
        """A sink whose ``close()`` returns a :class:`Track` of per-frame label scores."""
        raise NotImplementedError

    def label(self, video: Video, track: Track, shots: list[Shot]) -> list[Labels]:
        raise NotImplementedError


class Encoder(Component):
    """Builds the trainable model that maps per-clip features to embeddings."""

    kind = "encoder"
    takes = "padded FeatureSet tensors {modality: (B, clips, ...)} and a (B, clips) mask"
    returns = "(B, output_dim) embeddings"

    def build(self, dims: dict[str, tuple[int, ...]]) -> torch.nn.Module:
        """A module for features of the given per-modality shapes."""
        raise NotImplementedError

    def output_dim(self) -> int:
        raise NotImplementedError


class Head(Component):
    """Builds a prediction head on top of an embedding."""

    kind = "head"
    takes = "(B, in_dim) embeddings"
    returns = "(B, out_dim) logits"

    def build(self, in_dim: int, out_dim: int) -> torch.nn.Module:
        raise NotImplementedError


class TaskResult(BaseModel):
    """What a task reports: metrics for the summary, files it wrote, notes."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    metrics: dict[str, Any] = Field(default_factory=dict)
    files: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)


register_record(TaskResult)


class Task(Component):
    """A step of a run that uses the extracted items: train, evaluate, retrieve, export."""

    kind = "task"
    takes = "TaskContext: Items, encoder, head, shared state"
    returns = "TaskResult (metrics, files)"
    #: Recipe sections the task needs, e.g. ``{"encoder", "head"}``.
    requires: ClassVar[frozenset[str]] = frozenset()

    def run(self, ctx: TaskContext) -> TaskResult:
        raise NotImplementedError

    @classmethod
    def example_setup(cls, tmp_path: Path) -> dict[str, Any]:
        """What the contract test needs around this task: ``{"encoder": {use: ..., **config},
        "head": {...}, "before": [{use: TASK, **config}, ...]}`` (tasks run first, e.g. training
        before a task that reuses the trained model).  Empty means the generic defaults."""
        return {}


KINDS: dict[str, type[Component]] = {cls.kind: cls for cls in (DatasetSource, Reader, Segmenter, Expert, Labeler, Encoder, Head, Task)}


__all__ = [
    "AudioNeed",
    "Component",
    "Config",
    "DatasetSource",
    "Encoder",
    "Expert",
    "FeatureSet",
    "FrameNeed",
    "Head",
    "Item",
    "KINDS",
    "Labeler",
    "Needs",
    "Reader",
    "Segmenter",
    "Sink",
    "Task",
    "TaskResult",
    "WeightsSpec",
    "pool_track",
]
