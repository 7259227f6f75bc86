"""``mmx_motion``: motion features from optical flow (Dual TV-L1, the paper, or DIS), as a histogram of flow
or through ``encoder: torchvision:<video net>`` on stacks of flow images."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from moviekit import (
    Config,
    Expert,
    FrameBatch,
    FrameNeed,
    MoviekitError,
    Needs,
    Sink,
    Track,
    Video,
    VideoInfo,
    WeightsSpec,
    resolve_checkpoint,
)

from .loading import load_into, resize_frames, torch_device

_TORCHVISION_VIDEO = ("r2plus1d_18", "r3d_18", "mc3_18")
_OPENCV_FIX = (
    "use `flow: dis` (in every OpenCV build, fast), or reinstall the contrib build over the shadowing one: "
    "`pip install --force-reinstall --no-deps opencv-contrib-python==5.0.0.93`"
)


def _flow_engine(kind: str, dis_preset: str) -> Any:
    import cv2

    if kind == "dis":
        preset = {
            "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
            "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
            "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
        }[dis_preset]
        return cv2.DISOpticalFlow_create(preset)
    create = getattr(getattr(cv2, "optflow", None), "DualTVL1OpticalFlow_create", None)
    if create is None:
        raise MoviekitError(
            f"mmx_motion: `flow: tvl1` needs cv2.optflow.DualTVL1OpticalFlow_create from opencv-contrib-python, but the "
            f"imported cv2 {getattr(cv2, '__version__', '?')} ({getattr(cv2, '__file__', '?')}) has no cv2.optflow: "
            "opencv-python and opencv-contrib-python share one `cv2` folder and the plain build may shadow the contrib one. "
            f"Fix: {_OPENCV_FIX}"
        )
    return create()


@functools.lru_cache(maxsize=16)
def _hof_cells(h: int, w: int, grid: int, bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per pixel (raveled): its grid cell, and that cell's first histogram slot ``cell * (bins + 1)``;
    and the pixels per cell.  Read-only: shared by every frame pair of this shape."""
    cell = (
        np.minimum(np.arange(h) * grid // h, grid - 1)[:, None] * grid + np.minimum(np.arange(w) * grid // w, grid - 1)[None, :]
    ).astype(np.int64)
    cell = cell.ravel()
    out = (cell, cell * (bins + 1), np.bincount(cell, minlength=grid * grid))
    for a in out:
        a.flags.writeable = False
    return out


def _hof(flow: np.ndarray, bins: int, grid: int, static: float) -> np.ndarray:
    """Histogram of flow: per region (grid cells + whole frame) ``bins`` orientation bins + a static bin
    (L1-normalised motion energy) and the mean magnitude; then mean dx, mean dy, magnitude std, moving fraction.

    Orientation bin ``k`` is centred on ``k * 360 / bins`` degrees in image coordinates
    (0: rightward, ``bins/4``: downward); magnitudes are in percent of the frame width.
    """
    h, w = flow.shape[:2]
    cell, slot, counts = _hof_cells(h, w, grid, bins)
    dx, dy = flow[..., 0], flow[..., 1]
    mag = np.hypot(dx, dy)
    ang = np.arctan2(dy, dx)
    # ang mod 2 pi: the same values as np.mod (arctan2 is within [-pi, pi]), several times faster
    np.add(ang, 2 * np.pi, out=ang, where=ang < 0)
    moving = mag >= static
    k = np.floor(ang / (2 * np.pi / bins) + 0.5).astype(np.int64)
    k[k == bins] = 0  # k is within [0, bins]: k % bins
    b = np.where(moving, k, bins)
    weight = np.where(moving, mag, static)
    n_cells = grid * grid
    hist = np.bincount((slot + b.ravel()), weights=weight.ravel(), minlength=n_cells * (bins + 1)).reshape(n_cells, bins + 1)
    hist = np.vstack([hist, hist.sum(0, keepdims=True)])
    hist /= np.maximum(hist.sum(1, keepdims=True), 1e-12)
    scale = 100.0 / w
    mean_mag = np.bincount(cell, weights=mag.ravel(), minlength=n_cells) / np.maximum(counts, 1)
    mean_mag = np.append(mean_mag, mag.mean()) * scale
    extra = np.array([dx.mean() * scale, dy.mean() * scale, mag.std() * scale, moving.mean()])
    return np.concatenate([hist.ravel(), mean_mag, extra]).astype(np.float32)


class _MotionSink(Sink):
    """Keeps the last frame of the previous batch, so flow is continuous across batch boundaries."""

    def __init__(self, expert: MmxMotion):
        self.expert = expert
        cfg = expert.config
        self.engine = _flow_engine(cfg.flow, cfg.dis_preset)
        self.hof = cfg.encoder == "hof"
        self.net = None if self.hof else expert._load()
        self.prev: np.ndarray | None = None
        self.times: list[float] = []
        self.values: list[np.ndarray] = []
        # flow-image windows for a video encoder
        self.window: list[tuple[float, np.ndarray]] = []
        self.seen = 0  # flow images received
        self.covered = 0  # flow images already inside an emitted window

    def frames(self, batch: FrameBatch) -> None:
        import cv2

        cfg = self.expert.config
        for img, t in zip(resize_frames(batch.frames, cfg.size), batch.times):
            gray = np.ascontiguousarray(cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2GRAY))
            if self.prev is not None:
                flow = self.engine.calc(self.prev, gray, None)
                if self.hof:
                    self.times.append(float(t))
                    self.values.append(_hof(flow, cfg.orientation_bins, cfg.grid, cfg.static_threshold))
                else:
                    self._push(float(t), flow)
            self.prev = gray

    def _push(self, t: float, flow: np.ndarray) -> None:
        import cv2

        cfg = self.expert.config
        h, w = flow.shape[:2]
        ew, eh = cfg.encoder_size
        f = cv2.resize(flow, (ew, eh), interpolation=cv2.INTER_LINEAR)
        f[..., 0] *= ew / w  # flow vectors in encoder pixels
        f[..., 1] *= eh / h
        mag = np.hypot(f[..., 0], f[..., 1])
        b = cfg.flow_bound
        img = np.stack([np.clip(f[..., 0] / b, -1, 1), np.clip(f[..., 1] / b, -1, 1), np.clip(mag / b, 0, 1) * 2 - 1]).astype(np.float32)
        self.window.append((t, img))
        self.seen += 1
        while len(self.window) >= cfg.clip_len:
            self._emit(self.window[: cfg.clip_len])
            self.covered = self.seen - len(self.window) + cfg.clip_len
            del self.window[: cfg.clip_stride]

    def _emit(self, window: list[tuple[float, np.ndarray]]) -> None:
        import torch

        model, device = self.net
        cfg = self.expert.config
        stack = [img for _, img in window]
        stack += [stack[-1]] * (cfg.clip_len - len(stack))  # a short final window repeats its last flow image
        x = torch.from_numpy(np.stack(stack, axis=1)[None]).to(device)  # (1, 3, T, H, W)
        with torch.inference_mode():
            out = model(x).float().cpu().numpy()[0]
        self.times.append(float(np.mean([t for t, _ in window])))
        self.values.append(out.astype(np.float32))

    def close(self) -> Track:
        if not self.hof and self.seen > self.covered and self.window:
            self._emit(self.window)
            self.covered = self.seen
        if not self.times:
            return Track(times=np.zeros(0), values=np.zeros((0, *self.expert.feature_shape()), np.float32))
        return Track(times=np.asarray(self.times, np.float64), values=np.stack(self.values).astype(np.float32))


class MmxMotion(Expert):
    """Motion expert: optical flow between consecutive sampled frames (Dual TV-L1 as in the paper, or DIS), encoded per frame pair, averaged per clip.

    Flow is computed on grayscale frames at ``size`` sampled at ``fps``; the sink
    keeps the last frame of each batch so flow is continuous across batches.
    ``encoder: hof`` (default, offline) is a histogram of flow per frame pair
    (row time = time of the pair's second frame): for each of ``grid`` x ``grid``
    cells and the whole frame, ``orientation_bins`` magnitude-weighted orientation
    bins plus a static bin (L1-normalised) and the mean magnitude, then the mean
    dx, mean dy, magnitude std and moving fraction; bin ``k`` is centred on
    ``k*360/orientation_bins`` degrees in image coordinates (0 = rightward, y down)
    and magnitudes are in percent of the frame width.  ``encoder:
    torchvision:r2plus1d_18`` (also ``r3d_18``, ``mc3_18``) runs a video network
    from local weights on windows of ``clip_len`` flow images (x, y, magnitude as
    3 channels, clipped to ``flow_bound`` and scaled to [-1, 1]) and returns its
    globally pooled 512-d features (row time = mean time of the window).
    Cost: TV-L1 takes about 0.15 CPU-seconds per frame pair at 160x96 (so roughly real time
    at fps 6 on 2 cores, and it grows with the frame area); DIS is about 50x faster.
    """

    name = "mmx_motion"
    version = "1"
    returns = "Track of per-frame-pair flow descriptors (or per-window embeddings); clip mean"

    class Config(Config):
        flow: Literal["tvl1", "dis"] = Field(
            "tvl1", description="'tvl1': Dual TV-L1 (paper; needs opencv-contrib, slow on CPU); 'dis': OpenCV DIS flow (fast)"
        )
        dis_preset: Literal["ultrafast", "fast", "medium"] = Field("medium", description="DIS flow quality preset")
        fps: float = Field(6.0, gt=0, description="frames per second sampled; flow is taken between consecutive samples")
        size: tuple[int, int] = Field((160, 96), description="(width, height) of the frames the flow is computed on")
        batch: int = Field(16, ge=1, description="frames per batch from the reader")
        encoder: str = Field(
            "hof",
            description="'hof': histogram of flow (offline); 'torchvision:<arch>' with arch in r2plus1d_18, r3d_18, mc3_18 (local weights)",
        )
        orientation_bins: int = Field(8, ge=2, description="hof: orientation bins (plus one static bin)")
        grid: int = Field(2, ge=1, description="hof: histograms over grid x grid cells plus the whole frame")
        static_threshold: float = Field(
            0.5, gt=0, description="hof: flow magnitude (pixels at `size`) below which a pixel counts as static"
        )
        weights: str | None = Field(
            None,
            description="video encoder: local checkpoint file or folder; unset: $MOVIEKIT_WEIGHTS/torchvision-<arch>, the cache, the hub when online",
        )
        clip_len: int = Field(16, ge=1, description="video encoder: flow images per window")
        clip_stride: int = Field(16, ge=1, description="video encoder: flow images between window starts")
        encoder_size: tuple[int, int] = Field((112, 112), description="video encoder: (width, height) of the flow images")
        flow_bound: float = Field(
            20.0, gt=0, description="video encoder: flow (encoder pixels) is clipped to +-bound and scaled to [-1, 1]"
        )
        device: str = Field("auto", description="video encoder device: 'auto', 'cpu', 'cuda', 'cuda:N'")

        @field_validator("encoder")
        @classmethod
        def _check_encoder(cls, v: str) -> str:
            if v == "hof":
                return v
            kind, _, arch = v.partition(":")
            if kind != "torchvision" or arch not in _TORCHVISION_VIDEO:
                raise ValueError(f"encoder must be 'hof' or one of {['torchvision:' + a for a in _TORCHVISION_VIDEO]}, got {v!r}")
            return v

        @model_validator(mode="after")
        def _check_stride(self) -> MmxMotion.Config:
            if self.clip_stride > self.clip_len:
                raise ValueError("clip_stride must not exceed clip_len (flow images would be skipped)")
            return self

    @classmethod
    def example_config(cls, tmp_path: Path) -> dict[str, Any]:
        return {"size": (48, 32)}  # default TV-L1 flow, on small frames to keep the contract fast

    def needs(self) -> Needs:
        return Needs(frames=FrameNeed(fps=self.config.fps, size=self.config.size, batch=self.config.batch), flow=True)

    def feature_shape(self) -> tuple[int, ...]:
        cfg = self.config
        if cfg.encoder == "hof":
            regions = cfg.grid * cfg.grid + 1
            return (regions * (cfg.orientation_bins + 1) + regions + 4,)
        return (512,)

    def weights(self) -> list[WeightsSpec]:
        cfg = self.config
        if cfg.encoder == "hof":
            return []
        arch = cfg.encoder.partition(":")[2]
        hub = None
        try:
            import torchvision

            hub = torchvision.models.get_model_weights(arch).DEFAULT.url
        except Exception:  # noqa: BLE001 - the hub is only a fallback
            hub = None
        return [
            WeightsSpec(
                name=f"torchvision-{arch}",
                description=f"torchvision {arch} video weights",
                path=cfg.weights,
                hub=hub,
                filenames=((hub.rsplit("/", 1)[-1],) if hub else ()),
            )
        ]

    def _load(self) -> tuple[Any, Any]:
        net = getattr(self, "_net", None)
        if net is not None:
            return net
        import torch
        import torchvision

        arch = self.config.encoder.partition(":")[2]
        spec = self.weights()[0]
        file = resolve_checkpoint(spec, self.name)
        model = torchvision.models.get_model(arch, weights=None)
        load_into(self.name, model, file, drop_prefixes=("fc.",))
        model.fc = torch.nn.Identity()
        device = torch_device(self.config.device)
        model.eval().to(device)
        self._net = (model, device)
        return self._net

    def open(self, video: Video, info: VideoInfo) -> Sink:
        return _MotionSink(self)
