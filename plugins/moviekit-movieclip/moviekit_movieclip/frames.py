"""``movieclip_frames`` (Expert): keeps a small clip of frames per shot from the run's single decode, so that
end-to-end video models can be trained without decoding the videos again."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

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
    VideoInfo,
)

# -- the paper's video resizing: shorter side to 256, aspect ratio kept ----------------------------


def short_side_size(width: int, height: int, short: int) -> tuple[int, int]:
    """``(width, height)`` of a ``width`` x ``height`` frame whose shorter side is resized to ``short``, the aspect
    ratio kept (the longer side rounded to the nearest pixel, as mmcv's ``Resize(scale=(-1, short))`` does)."""
    if width <= height:
        return short, max(1, int(height * short / width + 0.5))
    return max(1, int(width * short / height + 0.5)), short


def resize_short_side(frames: np.ndarray, short: int) -> np.ndarray:
    """uint8 ``(n, H, W, 3)`` frames with the shorter side resized to ``short`` (bilinear, antialiased), aspect kept."""
    import torch
    import torch.nn.functional as F

    a = np.asarray(frames)
    w, h = short_side_size(a.shape[2], a.shape[1], short)
    if (w, h) == (a.shape[2], a.shape[1]):
        return a
    x = torch.from_numpy(np.ascontiguousarray(a)).permute(0, 3, 1, 2).float()
    y = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
    return y.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


# -- per-shot frame clips from the shared decode ----------------------------------------------


class _FramesSink(Sink):
    def __init__(self, expert: MovieclipFrames):
        self.expert = expert
        self.kept: list[np.ndarray] = []
        self.times: list[np.ndarray] = []

    def frames(self, batch: FrameBatch) -> None:
        keep = np.ones(len(batch), bool)
        if self.expert.config.fps is None and self.expert.config.frame_interval > 1:
            keep = np.asarray(batch.indices) % self.expert.config.frame_interval == 0
        if keep.any():
            kept = np.asarray(batch.frames)[keep].astype(np.uint8, copy=False)
            if self.expert.config.resize == "short_side":
                kept = resize_short_side(kept, self.expert.config.short_side)
            self.kept.append(kept)
            self.times.append(np.asarray(batch.times, np.float64)[keep])

    def close(self) -> Track:
        return self.expert.windows(self.kept, self.times)


class MovieclipFrames(Expert):
    """Per-shot frame clips for end-to-end video models: ``clip_len`` frames, ``frame_interval`` apart, the shorter side resized to ``short_side`` (256) keeping the aspect ratio, kept from the run's single decode.

    The reader hands every frame (or frames at ``fps`` when set); every
    ``frame_interval``-th is kept and resized as the supplementary's "Video
    resizing" says (Sec. 4.1: the shorter side to 256, aspect ratio kept;
    ``resize: squash`` squashes to ``size`` x ``size`` instead).  The
    scene classifier then crops these frames (the paper's training crops,
    ThreeCrop at test) and resizes the crops to the model's input size.
    Each clip (shot) gets ``test_clips`` views of ``clip_len`` consecutive kept
    frames, centred in ``test_clips`` equal segments of the shot (one view: centred
    in the shot; looped when the shot is shorter), stored one after the other as
    uint8 ``(test_clips * clip_len, size, size, 3)``.  The scene classifier trains
    on one view drawn at random and averages its test scores over the views (the
    paper's multi-clip testing: 10 clips for I3D / SlowFast / R(2+1)D, 4 for Swin,
    1 for TimeSformer; fewer stored views are evenly subsampled).
    The defaults are the I3D / SlowFast / Swin settings (32 frames, interval 2,
    224); R(2+1)D uses 8 frames at interval 8, TimeSformer 8 at interval 32.
    Memory: the kept frames of a video (H x W x 3 bytes each: 455 x 256 for a
    16:9 video) during its decode, and ``test_clips`` x ``clip_len`` x H x W x 3
    bytes per shot afterwards (about 112 MB per shot of a 16:9 video with the
    defaults), so lower ``short_side`` or
    ``test_clips`` for large datasets (``test_clips: 1`` keeps one clip per shot).  Use it with ``movieclip_scene_classifier``
    (and ``movieclip_shot_scale``); generic feature tasks cannot use raw frames.
    """

    name = "movieclip_frames"
    version = "2"  # 2: shorter side to 256, aspect ratio kept
    returns = "Track of (test_clips * clip_len, H, W, 3) uint8 windows; per clip (test_clips * clip_len, H, W, 3) uint8 frames (H, W: shorter side short_side, aspect kept; or size x size)"

    class Config(Config):
        clip_len: int = Field(32, ge=1, description="frames per clip (I3D/SlowFast/Swin: 32; R(2+1)D, TimeSformer: 8)")
        frame_interval: int = Field(
            2, ge=1, description="keep every n-th decoded frame (I3D/SlowFast/Swin: 2; R(2+1)D: 8; TimeSformer: 32)"
        )
        fps: float | None = Field(
            None, gt=0, description="sample frames at this rate instead of by frame_interval (the shot-scale model uses 4)"
        )
        resize: Literal["short_side", "squash"] = Field(
            "short_side",
            description="short_side: the shorter side to `short_side`, aspect ratio kept (the paper, supplementary Sec. 4.1); squash: to size x size",
        )
        short_side: int = Field(256, ge=8, description="resize short_side: the frames' shorter side in pixels (the paper: 256)")
        size: int = Field(224, ge=8, description="resize squash: frames are squashed to size x size")
        batch: int = Field(16, ge=1, description="frames per batch asked of the reader")
        test_clips: int = Field(
            10,
            ge=1,
            description="temporal views (clips) kept per shot, evenly spaced, for multi-clip testing (the paper: 10 for I3D/SlowFast/R(2+1)D, 4 Swin, 1 TimeSformer); memory grows with it",
        )

    @classmethod
    def example_config(cls, tmp_path: Path) -> dict[str, Any]:
        return {"clip_len": 4, "short_side": 16, "test_clips": 2}

    def needs(self) -> Needs:
        cfg = self.config
        # short_side: the source frames, resized here once the video's aspect ratio is known
        size = (cfg.size, cfg.size) if cfg.resize == "squash" else None
        return Needs(frames=FrameNeed(fps=cfg.fps, size=size, batch=cfg.batch))

    def feature_shape(self) -> tuple[int | None, ...]:
        """Shape of one shot's array; ``short_side`` frames' height and width depend on the video's aspect ratio (None)."""
        cfg = self.config
        side = cfg.size if cfg.resize == "squash" else None
        return (cfg.test_clips * cfg.clip_len, side, side, 3)

    def open(self, video: Video, info: VideoInfo) -> Sink:
        return _FramesSink(self)

    def windows(self, frames: list[np.ndarray], times: list[np.ndarray]) -> Track:
        """Kept frames packed into rows of ``test_clips * clip_len`` (the last padded with its last frame); a row's time is its first frame's."""
        t = self.feature_shape()[0]
        if not frames:
            side = self.config.size if self.config.resize == "squash" else self.config.short_side
            return Track(times=np.zeros(0), values=np.zeros((0, t, side, side, 3), np.uint8))
        f = np.concatenate(frames)
        ts = np.concatenate(times)
        n_rows = -(-len(f) // t)
        pad = n_rows * t - len(f)
        if pad:
            f = np.concatenate([f, np.repeat(f[-1:], pad, axis=0)])
        return Track(times=ts[::t].copy(), values=f.reshape(n_rows, t, *f.shape[1:]))

    def pool(self, track: Track, clips: list[Clip]) -> np.ndarray:
        t, k = self.config.clip_len, self.config.test_clips
        shape = track.values.shape[1:]
        out = np.zeros((len(clips), *shape), np.uint8)
        if len(track.times) == 0:
            return out
        frames = track.values.reshape(-1, *shape[1:])
        rows, row_len = np.asarray(track.times, np.float64), shape[0]
        dt = (rows[1] - rows[0]) / row_len if len(rows) > 1 else 0.0
        ftimes = (rows[:, None] + dt * np.arange(row_len)[None, :]).reshape(-1)
        for i, c in enumerate(clips):
            idx = np.flatnonzero((ftimes >= c.start_time) & (ftimes < c.end_time))
            if len(idx) == 0:
                dist = np.abs(ftimes - 0.5 * (c.start_time + c.end_time))
                idx = np.flatnonzero(dist == dist.min())
            if len(idx) >= t:  # view v is centred in the v-th of k equal segments of the shot
                starts = np.clip(np.floor((np.arange(k) + 0.5) * len(idx) / k - t / 2).astype(int), 0, len(idx) - t)
                idx = idx[(starts[:, None] + np.arange(t)[None, :]).reshape(-1)]
            else:
                idx = idx[np.tile(np.arange(t) % len(idx), k)]
            out[i] = frames[idx]
        return out


COMPONENTS = [MovieclipFrames]
