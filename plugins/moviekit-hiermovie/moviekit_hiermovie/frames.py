"""``hier_frames``: each clip's low-resolution frames, kept as pixels for the tasks that train a backbone.

The backbone is trained inside the run (after extraction), so the one decode of each video
stores the frames themselves: a track of non-overlapping windows of ``frames_per_clip`` frames
(uint8 ``(T, H, W, 3)`` per row, timed by their first frame), pooled to the window that starts a
clip.  With the fixed_length segmenter at ``frames_per_clip / fps`` seconds (2 s, a VidSitu
event) every clip is exactly one window.  Shared by the ``hier_backbone`` expert, which embeds
the same windows with a trained backbone instead of keeping them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from pydantic import Field

from moviekit import (
    Clip,
    Config,
    Expert,
    FrameBatch,
    FrameNeed,
    Needs,
    Sink,
    Track,
    Video,
)


class WindowSink(Sink):
    """Cuts the frame stream into windows of ``length`` frames (the last one padded by repeating
    its last frame) and maps each batch of windows through ``encode``
    (``(n, T, H, W, 3) uint8 -> (n, *shape)``)."""

    def __init__(self, length: int, encode: Callable[[np.ndarray], np.ndarray], shape: tuple[int, ...], batch: int = 8):
        self.length, self.encode, self.shape, self.batch = length, encode, shape, batch
        self.buf: list[np.ndarray] = []
        self.buf_t: list[float] = []
        self.pending: list[np.ndarray] = []
        self.times: list[float] = []
        self.rows: list[np.ndarray] = []

    def frames(self, batch: FrameBatch) -> None:
        for img, t in zip(batch.frames, batch.times, strict=True):
            self.buf.append(img)
            self.buf_t.append(float(t))
            if len(self.buf) == self.length:
                self._window()

    def _window(self) -> None:
        self.pending.append(np.stack(self.buf + [self.buf[-1]] * (self.length - len(self.buf))))
        self.times.append(self.buf_t[0])
        self.buf, self.buf_t = [], []
        if len(self.pending) >= self.batch:
            self._flush()

    def _flush(self) -> None:
        if self.pending:
            self.rows.extend(np.asarray(self.encode(np.stack(self.pending))))
            self.pending = []

    def close(self) -> Track:
        if self.buf:
            self._window()
        self._flush()
        if not self.rows:
            return Track(times=np.zeros(0), values=np.zeros((0, *self.shape), np.float32))
        return Track(times=np.asarray(self.times, np.float64), values=np.stack(self.rows))


def _identity(x: np.ndarray) -> np.ndarray:
    return x


def pool_windows(track: Track, clips: list[Clip]) -> np.ndarray:
    """Per clip, the first window starting inside ``[start, end)``; else the one nearest its midpoint."""
    out = np.zeros((len(clips), *track.values.shape[1:]), dtype=track.values.dtype)
    if len(track.times) == 0:
        return out
    for i, c in enumerate(clips):
        inside = np.flatnonzero((track.times >= c.start_time - 1e-6) & (track.times < c.end_time - 1e-6))
        j = inside[0] if len(inside) else int(np.argmin(np.abs(track.times - 0.5 * (c.start_time + c.end_time))))
        out[i] = track.values[j]
    return out


class FramesConfig(Config):
    fps: float = Field(8.0, gt=0, description="frames per second sampled")
    frames_per_clip: int = Field(16, ge=1, description="frames per window (16 at 8 fps: one 2-s VidSitu event)")
    size: int = Field(32, ge=8, description="frames resized to size x size")


class HierFrames(Expert):
    """Low-resolution frames of each clip, `(T, size, size, 3)` uint8, for training a video backbone in the run."""

    name = "hier_frames"
    modality = "frames"

    Config = FramesConfig

    def needs(self) -> Needs:
        return Needs(frames=FrameNeed(fps=self.config.fps, size=(self.config.size, self.config.size), batch=32))

    def feature_shape(self) -> tuple[int, ...]:
        return (self.config.frames_per_clip, self.config.size, self.config.size, 3)

    def open(self, video: Video, info: dict[str, Any]) -> Sink:
        return WindowSink(self.config.frames_per_clip, _identity, self.feature_shape())

    def pool(self, track: Track, clips: list[Clip]) -> np.ndarray:
        return pool_windows(track, clips)
