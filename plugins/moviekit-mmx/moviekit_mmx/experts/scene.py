"""``mmx_scene``: per-frame scene features (a classical GIST descriptor as the offline stand-in; the paper's
Places365 ResNet-18 via ``backend: places365_resnet18``; also ``backend: open_clip``)."""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
from pydantic import Field

from moviekit import (
    Config,
    Expert,
    FrameBatch,
    FrameNeed,
    Needs,
    Sink,
    Video,
    VideoInfo,
    WeightsSpec,
    resolve_checkpoint,
)
from moviekit.backends import openclip

from .loading import IMAGENET_MEAN, IMAGENET_STD, build_open_clip, load_into, resize_frames, run_batches, torch_device


class _GistBank:
    """Frequency responses of a Gabor-like filter bank (one-sided, so responses are complex envelopes)."""

    def __init__(self, h: int, w: int, scales: int, orientations: int, pad: int):
        self.h, self.w, self.pad = h, w, pad
        fy = np.fft.fftfreq(h + 2 * pad)[:, None]
        fx = np.fft.fftfreq(w + 2 * pad)[None, :]
        f = np.hypot(fx, fy)
        theta = np.arctan2(fy, fx)
        logf = np.log(np.where(f > 0, f, 1.0))
        sigma_r = 0.35  # radial bandwidth, in natural-log frequency: about one octave at half power
        sigma_t = 0.6 * math.pi / orientations
        bank = []
        for s in range(scales):
            radial = np.where(f > 0, np.exp(-((logf - math.log(0.25 / 2**s)) ** 2) / (2 * sigma_r**2)), 0.0)
            for o in range(orientations):
                d = np.angle(np.exp(1j * (theta - math.pi * o / orientations)))
                bank.append(radial * np.exp(-(d**2) / (2 * sigma_t**2)))
        self.bank = np.stack(bank).astype(np.complex64)


def _cropped_ifft2(spectra: np.ndarray, p: int, h: int, w: int) -> np.ndarray:
    """``np.abs(np.fft.ifft2(spectra, axes=(-2, -1)))[:, p : p + h, p : p + w]``, the same bytes, a third faster:
    ``ifft2`` transforms the last axis, then the one before; each column's second transform is
    independent of the others, so only the ``w`` columns kept are transformed (and only the kept
    rows are taken the magnitude of)."""
    rows = np.fft.ifft(spectra, axis=-1)[..., p : p + w]
    return np.abs(np.fft.ifft(rows, axis=-2)[..., p : p + h, :])


def _gist(frames: np.ndarray, size: tuple[int, int], scales: int, orientations: int, grid: int, cache: dict) -> np.ndarray:
    """GIST-like spatial envelope of each frame: ``scales*orientations*grid*grid`` values."""
    import cv2

    frames = resize_frames(frames, size)
    w, h = size
    key = (h, w, scales, orientations)
    if key not in cache:
        cache[key] = _GistBank(h, w, scales, orientations, pad=max(8, min(h, w) // 8))
    bank = cache[key]
    p = bank.pad
    ys = np.linspace(0, h, grid + 1).round().astype(int)
    xs = np.linspace(0, w, grid + 1).round().astype(int)
    counts = np.diff(ys)[:, None] * np.diff(xs)[None, :]
    sigma = max(1.0, min(h, w) / 30.0)
    out = np.empty((len(frames), scales * orientations * grid * grid), np.float32)
    for i, rgb in enumerate(frames):
        g = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY).astype(np.float32)
        g = (g - g.mean()) / (g.std() + 1e-3)  # global contrast normalisation: invariant to brightness/contrast
        hp = g - cv2.GaussianBlur(g, (0, 0), sigma)  # remove the illumination gradient
        x = hp / (0.2 + np.sqrt(cv2.GaussianBlur(hp * hp, (0, 0), sigma)))  # local contrast normalisation
        x = np.pad(x, p, mode="symmetric")
        spectra = np.fft.fft2(x).astype(np.complex64)[None] * bank.bank
        resp = _cropped_ifft2(spectra, p, h, w)
        cells = np.add.reduceat(np.add.reduceat(resp, ys[:-1], axis=1), xs[:-1], axis=2) / counts
        out[i] = cells.reshape(-1)
    return out


class MmxScene(Expert):
    """Scene expert: per-frame scene descriptors, averaged per clip; offline default is a classical GIST stand-in for the paper's Places365 ResNet-18.

    ``backend: gist`` (default, no weights) is a classical GIST-like spatial
    envelope: the grayscale frame is contrast-normalised (global z-score, then
    local contrast normalisation), filtered by a bank of ``scales`` x
    ``orientations`` Gabor-like filters (one octave apart, from 0.25 cycles/pixel
    down) and the response magnitudes are averaged over a ``grid`` x ``grid``
    layout: 4 x 8 x 16 = 512 values.  It is NOT the paper's feature, only a
    classical stand-in.  ``backend: places365_resnet18`` is the paper's ResNet-18
    trained on Places365 (512-d pooled features, local weights, e.g. the CSAIL
    ``resnet18_places365.pth.tar``); ``backend: open_clip`` gives L2-normalised
    CLIP image embeddings of ``model`` with ``pretrained`` weights.  Descriptor
    layout (gist): index ``((scale * orientations + o) * grid + row) * grid + col``;
    orientation ``o`` is the angle ``o * 180 / orientations`` degrees of the
    spatial-frequency vector (0: intensity varying along x, i.e. vertical stripes).
    """

    name = "mmx_scene"
    version = "1"
    returns = "Track of per-frame scene descriptors; clip mean"

    class Config(Config):
        backend: Literal["gist", "places365_resnet18", "open_clip"] = Field(
            "gist",
            description="'gist': classical GIST-like Gabor descriptor, offline (a stand-in for the paper's Places365 "
            "ResNet-18); 'places365_resnet18': the paper's model from local weights; 'open_clip': CLIP image embeddings",
        )
        fps: float = Field(1.0, gt=0, description="frames per second sampled")
        size: tuple[int, int] | None = Field(
            None,
            description="(width, height) frames are resized to; default (128, 128) for gist, 224x224 (or the CLIP model's size) otherwise",
        )
        scales: int = Field(4, ge=1, le=6, description="gist: number of Gabor scales (one octave apart)")
        orientations: int = Field(8, ge=1, description="gist: number of Gabor orientations")
        grid: int = Field(4, ge=1, description="gist: responses are averaged over a grid x grid layout")
        model: str = Field("ViT-B-32", description="open_clip: architecture name (open_clip.list_models())")
        pretrained: str | None = Field(
            None,
            description="open_clip: local checkpoint file/folder or pretrained tag (default 'openai'; a tag is looked up in "
            "$MOVIEKIT_WEIGHTS/open_clip-<model>-<tag>, then downloaded only when online); places365_resnet18: local checkpoint",
        )
        batch: int = Field(16, ge=1, description="frames per forward pass (network backends)")
        device: str = Field("auto", description="'auto' (CUDA when available, else CPU), 'cpu', 'cuda', 'cuda:N'")

    def _size(self) -> tuple[int, int]:
        cfg = self.config
        if cfg.size is not None:
            return tuple(cfg.size)
        if cfg.backend == "gist":
            return (128, 128)
        if cfg.backend == "open_clip":
            return openclip.image_size(cfg.model)
        return (224, 224)

    def needs(self) -> Needs:
        return Needs(frames=FrameNeed(fps=self.config.fps, size=self._size(), batch=self.config.batch))

    def _pretrained(self) -> str | None:
        cfg = self.config
        return cfg.pretrained if cfg.pretrained is not None else ("openai" if cfg.backend == "open_clip" else None)

    def weights(self) -> list[WeightsSpec]:
        cfg = self.config
        if cfg.backend == "gist":
            return []
        if cfg.backend == "open_clip":
            return [openclip.weights_spec(cfg.model, self._pretrained())[0]]
        return [
            WeightsSpec(
                name="resnet18_places365",
                description="ResNet-18 trained on Places365 (CSAIL)",
                path=cfg.pretrained,
                config_key="pretrained",
                hub="http://places2.csail.mit.edu/models_places365/resnet18_places365.pth.tar",
                filenames=("resnet18_places365.pth.tar",),
            )
        ]

    def feature_shape(self) -> tuple[int, ...]:
        cfg = self.config
        if cfg.backend == "gist":
            return (cfg.scales * cfg.orientations * cfg.grid * cfg.grid,)
        if cfg.backend == "open_clip":
            return (openclip.embed_dim(cfg.model),)
        return (512,)

    def _load(self) -> tuple[Any, tuple[int, int], Any, Any, Any]:
        net = getattr(self, "_net", None)
        if net is not None:
            return net
        cfg = self.config
        device = torch_device(cfg.device)
        if cfg.backend == "open_clip":
            fn, size, mean, std = build_open_clip(self.name, "pretrained", cfg.model, self._pretrained(), device)
            self._net = (fn, self._size() if cfg.size is not None else size, mean, std, device)
        else:
            import torch
            import torchvision

            spec = self.weights()[0]
            file = resolve_checkpoint(spec, self.name)
            model = torchvision.models.resnet18(weights=None, num_classes=365)
            load_into(self.name, model, file)
            model.fc = torch.nn.Identity()
            model.eval().to(device)
            self._net = (model, self._size(), IMAGENET_MEAN, IMAGENET_STD, device)
        return self._net

    def open(self, video: Video, info: VideoInfo) -> Sink:
        if self.config.backend != "gist":
            self._load()  # fail before decoding when the weights are missing
        return super().open(video, info)

    def encode_frames(self, batch: FrameBatch) -> np.ndarray:
        cfg = self.config
        if cfg.backend == "gist":
            cache = self.__dict__.setdefault("_gist_cache", {})
            return _gist(batch.frames, self._size(), cfg.scales, cfg.orientations, cfg.grid, cache)
        fn, size, mean, std, device = self._load()
        return run_batches(fn, batch.frames, cfg.batch, size, mean, std, device, self.feature_shape()[0])
