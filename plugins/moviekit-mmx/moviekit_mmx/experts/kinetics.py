"""``mmx_motion_kinetics``: the paper's motion expert (Sec. 4.1): Kinetics video networks (I3D, R(2+1)D-34) built
from mmaction2's configs, loaded from local weights and fed RGB clips, one globally pooled vector per window."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, ValidationInfo, field_validator

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
    WeightsSpec,
    resolve_checkpoint,
)

from .loading import load_into, torch_device

ZOO = "https://download.openmmlab.com/mmaction/v1.0/recognition"
#: Marker in a backbone name that says it is a random network for tests.
TEST_ONLY_MARK = "TEST-ONLY"


@dataclass(frozen=True)
class KineticsNet:
    """A Kinetics video network: its mmaction2 config (a path under ``configs/``) and the test protocol that
    config documents (``val_pipeline``: ``SampleFrames`` clip_len x frame_interval, ``Resize`` of the shorter
    side, ``CenterCrop``; ``data_preprocessor`` mean/std on 0-255 RGB)."""

    config: str
    dim: int
    clip_len: int
    frame_interval: int
    short_side: int
    crop: int
    checkpoint: str | None
    description: str
    mean: tuple[float, float, float] = (123.675, 116.28, 103.53)
    std: tuple[float, float, float] = (58.395, 57.12, 57.375)
    #: fields of the config's backbone replaced when building (never the architecture of a real network)
    overrides: dict[str, Any] = field(default_factory=dict)

    @property
    def span(self) -> int:
        """Source frames one clip covers."""
        return self.clip_len * self.frame_interval

    @property
    def test_only(self) -> bool:
        return self.checkpoint is None


_I3D = "i3d/i3d_imagenet-pretrained-r50_8xb8-32x2x1-100e_kinetics400-rgb"
_R2PLUS1D = "r2plus1d/r2plus1d_r34_8xb8-8x8x1-180e_kinetics400-rgb"

#: The networks ``backbones`` may name.  The checkpoints are the mmaction2 model zoo's (download them
#: beforehand; ``$MOVIEKIT_WEIGHTS/mmaction2-<backbone>/`` or ``weights.<backbone>``).
BACKBONES: dict[str, KineticsNet] = {
    "i3d_r50_kinetics400": KineticsNet(
        config=f"recognition/{_I3D}.py",
        dim=2048,
        clip_len=32,
        frame_interval=2,
        short_side=256,
        crop=224,
        checkpoint=f"{ZOO}/{_I3D}/{_I3D.split('/')[1]}_20220812-e213c223.pth",
        description="I3D (ResNet-50 inflated) trained on Kinetics-400, mmaction2 model zoo",
    ),
    "r2plus1d_r34_kinetics400": KineticsNet(
        config=f"recognition/{_R2PLUS1D}.py",
        dim=512,
        clip_len=8,
        frame_interval=8,
        short_side=256,
        crop=224,
        checkpoint=f"{ZOO}/{_R2PLUS1D}/{_R2PLUS1D.split('/')[1]}_20220812-47cfe041.pth",
        description="R(2+1)D-34 trained on Kinetics-400, mmaction2 model zoo",
    ),
    # A tiny ResNet3d-18 (8 base channels) of the I3D config with RANDOM weights, for tests only.
    f"tiny_r3d_{TEST_ONLY_MARK}": KineticsNet(
        config=f"recognition/{_I3D}.py",
        dim=64,
        clip_len=4,
        frame_interval=1,
        short_side=40,
        crop=32,
        checkpoint=None,
        description="tiny random ResNet3d for tests only (its outputs mean nothing)",
        overrides={"depth": 18, "base_channels": 8, "inflate": (1, 1, 1, 1), "conv1_stride_t": 1, "pool1_stride_t": 1},
    ),
}
BackboneName = Literal["i3d_r50_kinetics400", "r2plus1d_r34_kinetics400", "tiny_r3d_TEST-ONLY"]


# --- building and loading --------------------------------------------------------------------


def backbone_config(name: str) -> dict[str, Any]:
    """The backbone of ``name``'s mmaction2 config, for random initialisation (no ImageNet inflation, no
    download) and single-process inference (``SyncBN`` becomes ``BN3d``: same parameters and buffers)."""
    from moviekit.backends import mmaction

    net = BACKBONES[name]
    cfg = dict(mmaction.load_config(net.config)["model"]["backbone"])
    cfg.update(pretrained=None, pretrained2d=False, **net.overrides)
    norm = cfg.get("norm_cfg")
    if isinstance(norm, dict) and norm.get("type") == "SyncBN":
        cfg["norm_cfg"] = {**norm, "type": "BN3d"}
    return cfg


def build_backbone(name: str) -> Any:
    """``name``'s backbone from its mmaction2 config, randomly initialised as mmaction2 does, in eval mode."""
    from moviekit.backends import mmaction

    net = mmaction.build(backbone_config(name))
    net.init_weights()
    net.eval()
    return net


def load_backbone(component: str, key: str, net: Any, file: Path) -> None:
    """Load an mmaction2 recognizer checkpoint (``{"state_dict": {"backbone.*", "cls_head.*"}, "meta"}``) or a
    bare backbone state dict into ``net``; the classifier is dropped, any other mismatch is an error."""
    load_into(f"{component}: `{key}`", net, file, keep_prefix="backbone.", drop_prefixes=("cls_head.", "data_preprocessor."))


def global_pool(out: Any) -> Any:
    """``(N, C)``: the backbone output ``(N, C, T, H, W)`` averaged over time and space (the I3D head's
    ``spatial_type: avg`` pooling, before its dropout and classifier)."""
    return out.mean(dim=(2, 3, 4))


# --- clips -----------------------------------------------------------------------------------


def resize_crop(frame: np.ndarray, short_side: int, crop: int) -> np.ndarray:
    """mmaction2's test transform of one RGB frame: ``Resize(scale=(-1, short_side))`` (shorter side to
    ``short_side``, aspect kept, sizes rounded, bilinear), then ``CenterCrop(crop)``."""
    import cv2

    h, w = frame.shape[:2]
    s = short_side / min(h, w)
    nw, nh = int(w * s + 0.5), int(h * s + 0.5)
    img = frame if (nw, nh) == (w, h) else cv2.resize(np.ascontiguousarray(frame), (nw, nh), interpolation=cv2.INTER_LINEAR)
    left, top = max(0, (nw - crop) // 2), max(0, (nh - crop) // 2)
    return np.ascontiguousarray(img[top : top + crop, left : left + crop])


def clip_positions(start: int, span: int, clip_len: int, interval: int, total: int | None = None) -> list[int]:
    """Positions of a network's ``clip_len`` frames, ``interval`` apart, centred in the window
    ``[start, start + span)``; with ``total`` (a video shorter than the window) they loop over its frames,
    as mmaction2's ``SampleFrames`` does."""
    offset = start + (span - clip_len * interval) // 2
    pos = [offset + j * interval for j in range(clip_len)]
    return [p % total for p in pos] if total else pos


def clip_tensor(clips: list[np.ndarray], mean: Any, std: Any, device: Any) -> Any:
    """``(N, 3, T, H, W)`` float tensor of uint8 ``(T, H, W, 3)`` RGB clips, normalised on the 0-255 scale."""
    import torch

    x = torch.from_numpy(np.stack(clips)).to(device).permute(0, 4, 1, 2, 3).float()
    m = torch.tensor(mean, dtype=x.dtype, device=device).view(1, 3, 1, 1, 1)
    s = torch.tensor(std, dtype=x.dtype, device=device).view(1, 3, 1, 1, 1)
    return (x - m) / s


def pool_windows(times: np.ndarray, values: np.ndarray, clips: list[Clip], span: int, dim: int) -> np.ndarray:
    """One row per clip from window rows (``times``: window centres).  A clip takes the mean of the windows
    whose ``span`` frames all lie inside it; a clip shorter than any such window takes the window centred
    nearest its midpoint.  Frame durations come from each clip's own frames and times."""
    out = np.zeros((len(clips), dim), np.float32)
    if len(times) == 0:
        return out
    for i, c in enumerate(clips):
        duration = c.end_time - c.start_time
        frame = duration / c.num_frames if c.num_frames > 0 and duration > 0 else 0.0
        half = 0.5 * (span - 1) * frame
        tol = 0.5 * frame + 1e-9
        inside = (times - half >= c.start_time - tol) & (times + half <= c.end_time - frame + tol)
        if inside.any():
            out[i] = values[inside].mean(axis=0)
        else:
            out[i] = values[int(np.argmin(np.abs(times - 0.5 * (c.start_time + c.end_time))))]
    return out


class _WindowSink(Sink):
    """Cuts windows of ``span`` consecutive frames every ``stride`` frames from the stream; each network
    takes its clip from the window's centre; rows are the networks' pooled features, concatenated."""

    def __init__(self, expert: MmxMotionKinetics):
        self.expert = expert
        self.loaded = expert._load()
        self.nets = [BACKBONES[b] for b in expert.config.backbones]
        self.span = max(n.span for n in self.nets)
        self.stride = expert.config.stride
        self.sizes = sorted({(n.short_side, n.crop) for n in self.nets})
        self.buf: list[dict[tuple[int, int], np.ndarray]] = []  # prepared frames from position `base`
        self.tbuf: list[float] = []
        self.base = 0
        self.n = 0
        self.next_start = 0
        self.emitted = 0
        self.first: tuple[dict, float] | None = None  # for a video shorter than one window (looped)
        self.pending: list[tuple[float, list[np.ndarray]]] = []
        self.times: list[float] = []
        self.values: list[np.ndarray] = []

    def frames(self, batch: FrameBatch) -> None:
        for img, t in zip(batch.frames, batch.times):
            self.buf.append({s: resize_crop(img, *s) for s in self.sizes})
            self.tbuf.append(float(t))
            self.n += 1
            while self.n >= self.next_start + self.span:
                self._window(self.next_start)
                self.next_start += self.stride
            drop = min(self.next_start, self.n - self.span) - self.base  # the last span frames stay, for the tail
            if drop > 0:
                del self.buf[:drop], self.tbuf[:drop]
                self.base += drop

    def _window(self, start: int, total: int | None = None) -> None:
        clips = []
        for net in self.nets:
            pos = clip_positions(start, self.span, net.clip_len, net.frame_interval, total)
            clips.append(np.stack([self.buf[p - self.base][(net.short_side, net.crop)] for p in pos]))
        if total:
            centre = 0.5 * (self.tbuf[0] + self.tbuf[-1])
        else:
            centre = 0.5 * (self.tbuf[start - self.base] + self.tbuf[start + self.span - 1 - self.base])
        self.pending.append((centre, clips))
        self.emitted += 1
        if len(self.pending) >= self.expert.config.batch:
            self._flush()

    def _flush(self) -> None:
        import torch

        if not self.pending:
            return
        device = self.loaded[0][1]
        rows = []
        with torch.inference_mode():
            for k, (net, (model, _)) in enumerate(zip(self.nets, self.loaded)):
                x = clip_tensor([clips[k] for _, clips in self.pending], net.mean, net.std, device)
                rows.append(global_pool(model(x)).float().cpu().numpy())
        feats = np.concatenate(rows, axis=1).astype(np.float32)
        self.times += [t for t, _ in self.pending]
        self.values += list(feats)
        self.pending = []

    def close(self) -> Track:
        if self.n and not self.emitted:  # shorter than one window: its frames loop (buffer still holds all)
            self._window(0, total=self.n)
        elif self.emitted and self.next_start - self.stride + self.span < self.n:  # the tail: an end-aligned window
            self._window(self.n - self.span)
        self._flush()
        if not self.times:
            return Track(times=np.zeros(0), values=np.zeros((0, *self.expert.feature_shape()), np.float32))
        return Track(times=np.asarray(self.times, np.float64), values=np.stack(self.values).astype(np.float32))


class MmxMotionKinetics(Expert):
    """Motion expert as the paper names it (Sec. 4.1): Kinetics video networks on RGB clips of the trailer, globally pooled, concatenated, averaged per clip.

    ``backbones`` lists mmaction2 networks, each built from the config file
    that mmaction2's wheel ships and loaded from a local checkpoint of its
    model zoo: ``i3d_r50_kinetics400`` (I3D, ResNet-50 inflated, 2048-d) and
    ``r2plus1d_r34_kinetics400`` (R(2+1)D-34, 512-d).  Each network sees clips
    as its config's test pipeline makes them: ``clip_len`` frames every
    ``frame_interval`` source frames (I3D 32 x 2, R(2+1)D 8 x 8), the shorter
    side resized to 256 (aspect kept), a 224 centre crop, RGB normalised with
    the Kinetics mean/std on the 0-255 scale.  Windows of ``span`` = the
    largest ``clip_len * frame_interval`` source frames (64 for both) start
    every ``stride`` frames; each network takes its clip from the window's
    centre and gives the penultimate vector (the backbone output averaged over
    time and space, the input of its classifier).  A row is the networks'
    vectors concatenated in ``backbones`` order (2048 + 512 = 2560 by default),
    at the window's centre time.  A clip averages the windows that lie wholly
    inside it; a clip shorter than a window takes the window centred nearest
    its midpoint (shots are found in the same decode, so windows cannot be cut
    per shot).  A video shorter than a window loops its frames, as mmaction2's
    ``SampleFrames`` does.  Weights are checked before any video is decoded;
    ``weights.<backbone>`` names a local checkpoint (mmaction2's ``.pth`` with
    ``state_dict`` and ``meta``, read with ``weights_only=True``, or a
    backbone state dict / ``.safetensors``).
    """

    name = "mmx_motion_kinetics"
    version = "1"
    returns = "Track of per-window Kinetics features (networks concatenated); mean of the windows inside each clip"

    class Config(Config):
        backbones: list[BackboneName] = Field(
            default_factory=lambda: ["i3d_r50_kinetics400", "r2plus1d_r34_kinetics400"],
            description="mmaction2 Kinetics networks whose pooled features are concatenated (the paper names I3D and R(2+1)D-34)",
        )
        weights: dict[str, str] = Field(
            default_factory=dict,
            description="local checkpoint file or folder per backbone (`weights.<backbone>`); unset: "
            "$MOVIEKIT_WEIGHTS/mmaction2-<backbone>, the cache, the mmaction2 model zoo when online",
        )
        stride: int = Field(16, ge=1, description="source frames between the starts of consecutive windows")
        batch: int = Field(4, ge=1, description="windows per forward pass")
        frame_batch: int = Field(16, ge=1, description="frames per batch from the reader")
        device: str = Field("auto", description="'auto' (CUDA when available, else CPU), 'cpu', 'cuda', 'cuda:N'")

        @field_validator("backbones")
        @classmethod
        def _check_backbones(cls, v: list[str]) -> list[str]:
            if not v:
                raise ValueError("name at least one backbone")
            if len(set(v)) != len(v):
                raise ValueError(f"a backbone is listed twice: {v}")
            return v

        @field_validator("weights")
        @classmethod
        def _check_weights(cls, v: dict[str, str], info: ValidationInfo) -> dict[str, str]:
            backbones = info.data.get("backbones") or []
            extra = sorted(set(v) - set(backbones))
            if extra:
                raise ValueError(f"weights for {extra}, which are not in backbones {backbones}")
            return v

    @classmethod
    def example_config(cls, tmp_path: Path) -> dict[str, Any]:
        name = f"tiny_r3d_{TEST_ONLY_MARK}"
        return {"backbones": [name], "weights": {name: str(tiny_checkpoint(tmp_path))}, "stride": 4, "device": "cpu"}

    def needs(self) -> Needs:
        # every source frame at its own size: clips are sampled in source frames and resized keeping the aspect
        return Needs(frames=FrameNeed(fps=None, size=None, batch=self.config.frame_batch))

    def feature_shape(self) -> tuple[int, ...]:
        return (sum(BACKBONES[b].dim for b in self.config.backbones),)

    def weights(self) -> list[WeightsSpec]:
        specs = []
        for b in self.config.backbones:
            net = BACKBONES[b]
            url = net.checkpoint
            specs.append(
                WeightsSpec(
                    name=f"mmaction2-{b}",
                    description=f"{net.description}; mmaction2 config {net.config}",
                    path=self.config.weights.get(b),
                    hub=url,
                    filenames=(url.rsplit("/", 1)[-1],) if url else (),
                    config_key=f"weights.{b}",
                )
            )
        return specs

    def _load(self) -> list[tuple[Any, Any]]:
        loaded = getattr(self, "_nets", None)
        if loaded is not None:
            return loaded
        device = torch_device(self.config.device)
        out = []
        for b, spec in zip(self.config.backbones, self.weights()):
            hint = "" if BACKBONES[b].checkpoint is None else f"\nGet it from the mmaction2 model zoo: {BACKBONES[b].checkpoint}"
            file = resolve_checkpoint(spec, self.name, hint)  # before building a large network
            if BACKBONES[b].test_only:
                warnings.warn(f"{self.name}: {b} is a tiny RANDOM network for tests only; its features mean nothing", stacklevel=2)
            net = build_backbone(b)
            load_backbone(self.name, spec.config_key, net, file)
            out.append((net.to(device), device))
        self._nets = out
        return out

    def open(self, video: Video, info: VideoInfo) -> Sink:
        return _WindowSink(self)

    def pool(self, track: Track, clips: list[Clip]) -> np.ndarray:
        span = max(BACKBONES[b].span for b in self.config.backbones)
        return pool_windows(track.times, track.values, clips, span, self.feature_shape()[0])


def tiny_checkpoint(folder: str | Path, seed: int = 0) -> Path:
    """FOR TESTS ONLY: a seeded random mmaction2-style checkpoint (``state_dict`` with ``backbone.`` keys and a
    classifier, and ``meta``) of the test-only backbone, saved under ``folder``."""
    import torch

    path = Path(folder) / f"tiny_r3d_{TEST_ONLY_MARK}-seed{seed}.pth"
    if not path.is_file():
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = build_backbone(f"tiny_r3d_{TEST_ONLY_MARK}")
            head = torch.nn.Linear(64, 3)
        sd = {f"backbone.{k}": v for k, v in net.state_dict().items()}
        sd.update({f"cls_head.fc_cls.{k}": v for k, v in head.state_dict().items()})
        Path(folder).mkdir(parents=True, exist_ok=True)
        torch.save({"meta": {"note": "random weights for tests"}, "state_dict": sd}, path)
    return path
