"""Per-frame image features of the shot-scale model (supplementary Sec. 3.3.2): "frame-wise features from
pretrained ViT-B/16 at 4 fps" of each shot.

* the frame encoders: :class:`VitEncoder` (timm ``vit_base_patch16_224``, the paper's ViT-B/16, from local
  weights), :class:`ClipEncoder` (CLIP ViT-B/16 through the core's open_clip back-end) and
  :class:`ThumbnailEncoder` (8x8 colour thumbnails, an offline STAND-IN that is no ViT);
* :func:`shot_frame_indices` and :func:`shot_sequences`: the frames of a shot's own time span, as zero-padded
  ``(L, D)`` sequences, and :func:`sequence_lengths` to read their lengths back;
* ``movieclip_frame_features`` (Expert): encodes the frames sampled at ``fps`` (4) during the run's single
  decode and hands each shot the features of its own frames.
"""

from __future__ import annotations

from dataclasses import dataclass, field
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
    MoviekitError,
    Needs,
    Sink,
    Track,
    Video,
    VideoInfo,
    WeightsSpec,
    resolve_checkpoint,
    resolve_device,
)

from .videomodels import cheap_frame_features, read_state_dict

#: The paper's ViT-B/16 in timm, and the Hugging Face repository of timm's default weights for it.
VIT_MODEL = "vit_base_patch16_224"
VIT_HUB = "timm/vit_base_patch16_224.augreg2_in21k_ft_in1k"


# -- the frame encoders ------------------------------------------------------------------------


@dataclass
class FrameEncoder:
    """Encodes uint8 ``(n, H, W, 3)`` frames into ``(n, dim)`` features; ``about`` says which backbone it is."""

    dim: int
    about: dict[str, Any] = field(default_factory=dict)

    def encode(self, frames: np.ndarray) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError


class ThumbnailEncoder(FrameEncoder):
    """The frame area-averaged to a ``grid`` x ``grid`` RGB thumbnail: a CPU stand-in, not the paper's ViT-B/16."""

    def __init__(self, grid: int = 8):
        about = {"backbone": "thumbnail", "model": f"{grid}x{grid} RGB thumbnail", "stand_in": True}
        about["warning"] = "a STAND-IN for the paper's ViT-B/16 features (no pretrained network): not a result of the paper's model"
        super().__init__(grid * grid * 3, about)
        self.grid = grid

    def encode(self, frames: np.ndarray) -> np.ndarray:
        return cheap_frame_features(np.asarray(frames)[None], self.grid)[0]


def vit_weights_spec(model: str = VIT_MODEL, path: str | None = None, config_key: str = "weights") -> WeightsSpec:
    """Weights of the timm image model ``model``: ``$MOVIEKIT_WEIGHTS/timm-<model>/`` (or the cache, or ``path``);
    timm's default ViT-B/16 weights are downloaded from its Hugging Face repository only when online."""
    default = model == VIT_MODEL
    return WeightsSpec(
        name=f"timm-{model}",
        description=f"timm {model} image model" + (f" ({VIT_HUB})" if default else ""),
        path=path,
        hub=VIT_HUB if default else None,
        filenames=("model.safetensors", "pytorch_model.bin") if default else (),
        config_key=config_key,
    )


def timm_model(model: str, overrides: dict[str, Any] | None = None, device: Any = None) -> Any:
    """A timm image model without its classifier (``num_classes=0``: the pooled pre-logits feature), random weights."""
    import timm

    try:
        return timm.create_model(model, pretrained=False, num_classes=0, **(overrides or {})).to(device or "cpu")
    except Exception as e:  # noqa: BLE001 - an unknown name or a bad override
        raise MoviekitError(f"timm cannot build {model!r} with {overrides or {}} ({type(e).__name__}: {e})") from e


class VitEncoder(FrameEncoder):
    """A timm ViT (the paper's ViT-B/16: ``vit_base_patch16_224``) from a local state dict; its pooled pre-logits
    feature (768-d for ViT-B/16), after timm's own evaluation transform for the model."""

    def __init__(
        self,
        model: str = VIT_MODEL,
        weights: str | None = None,
        overrides: dict[str, Any] | None = None,
        device: Any = "cpu",
        component: str = "movieclip_frame_features",
        config_key: str = "weights",
    ):
        import timm.data

        file = resolve_checkpoint(vit_weights_spec(model, weights, config_key), component)
        net = timm_model(model, overrides)
        state = {k: v for k, v in read_state_dict(file, component, config_key).items() if not k.startswith("head.")}
        try:
            net.load_state_dict(state)
        except RuntimeError as e:
            detail = " ".join(str(e).split())[:400]
            raise MoviekitError(f"{component}: `{config_key}`: {file} does not fit timm {model} {overrides or ''} ({detail})") from None
        self.net = net.to(device).eval()
        self.device = device
        cfg = dict(timm.data.resolve_model_data_config(net))
        size = getattr(getattr(net, "patch_embed", None), "img_size", None)
        if size is not None:  # a model built at another image size than its default config's
            cfg["input_size"] = (3, *tuple(size))
        self.transform = timm.data.create_transform(**cfg)
        about = {"backbone": "vit", "model": model, "weights": str(file), "stand_in": False, "library": "timm"}
        super().__init__(int(net.num_features), {**about, **({"overrides": overrides} if overrides else {})})

    def encode(self, frames: np.ndarray) -> np.ndarray:
        import torch
        from PIL import Image

        x = torch.stack([self.transform(Image.fromarray(np.ascontiguousarray(f))) for f in np.asarray(frames)])
        with torch.inference_mode():
            return self.net(x.to(self.device)).float().cpu().numpy()


class ClipEncoder(FrameEncoder):
    """CLIP's image tower (open_clip, through the core's back-end): L2-normalised embeddings (512-d for ViT-B-16)."""

    def __init__(
        self,
        model: str = "ViT-B-16",
        pretrained: str = "openai",
        device: Any = "cpu",
        component: str = "movieclip_frame_features",
        config_key: str = "clip_pretrained",
    ):
        from moviekit.backends import openclip

        self.clip = openclip.load(component, config_key, model, pretrained, device)
        about = {"backbone": "open_clip", "model": model, "pretrained": pretrained, "weights": str(self.clip.checkpoint)}
        about["stand_in"] = openclip.is_test_only(model)
        super().__init__(int(self.clip.dim), about)

    def encode(self, frames: np.ndarray) -> np.ndarray:
        import torch
        from PIL import Image

        x = torch.stack([self.clip.preprocess(Image.fromarray(np.ascontiguousarray(f))) for f in np.asarray(frames)])
        with torch.inference_mode():
            return self.clip.encode_images(x.to(self.clip.device)).float().cpu().numpy()


Backbone = Literal["vit", "open_clip", "thumbnail"]


def frame_encoder(backbone: Backbone, cfg: Any, component: str, device: Any = "cpu") -> FrameEncoder:
    """The encoder of ``backbone`` from a config with the fields of :class:`EncoderFields`."""
    if backbone == "vit":
        return VitEncoder(cfg.vit_model, cfg.weights, cfg.vit_overrides, device, component)
    if backbone == "open_clip":
        return ClipEncoder(cfg.clip_model, cfg.clip_pretrained, device, component)
    return ThumbnailEncoder(cfg.grid)


def encoder_about(backbone: Backbone, cfg: Any) -> dict[str, Any]:
    """What the encoder of ``backbone`` is, without loading it."""
    if backbone == "vit":
        return {"backbone": "vit", "model": cfg.vit_model, "stand_in": False, "library": "timm"}
    if backbone == "open_clip":
        return {"backbone": "open_clip", "model": cfg.clip_model, "pretrained": cfg.clip_pretrained, "stand_in": False}
    return dict(ThumbnailEncoder(cfg.grid).about)


def encoder_dim(backbone: Backbone, cfg: Any) -> int:
    """The feature size of ``backbone`` without loading weights (a timm model is built on the meta device)."""
    if backbone == "thumbnail":
        return cfg.grid * cfg.grid * 3
    if backbone == "open_clip":
        from moviekit.backends.openclip import embed_dim

        return embed_dim(cfg.clip_model)
    import torch

    with torch.device("meta"):
        return int(timm_model(cfg.vit_model, cfg.vit_overrides, "meta").num_features)


# -- the frames of a shot ------------------------------------------------------------------------


def shot_frame_indices(times: np.ndarray, start: float, end: float, max_frames: int | None = None) -> np.ndarray:
    """Indices of the sampled frames shown during ``[start, end)``, in time order; a shot between two samples
    gets the frame nearest its middle.  Over ``max_frames``, that many are kept, evenly spaced."""
    t = np.asarray(times, np.float64)
    idx = np.flatnonzero((t >= start) & (t < end))
    if len(idx) == 0 and len(t):
        idx = np.asarray([int(np.argmin(np.abs(t - 0.5 * (start + end))))])
    if max_frames is not None and len(idx) > max_frames:
        idx = idx[np.floor((np.arange(max_frames) + 0.5) * len(idx) / max_frames).astype(int)]
    return idx


def shot_sequences(times: np.ndarray, values: np.ndarray, clips: list[Clip], max_frames: int | None = None) -> np.ndarray:
    """``(n_clips, L, D)``: each shot's own frame features (:func:`shot_frame_indices`), zero rows after them up to
    the longest shot's ``L``."""
    picks = [shot_frame_indices(times, c.start_time, c.end_time, max_frames) for c in clips]
    width = max([len(p) for p in picks] + [1])
    out = np.zeros((len(clips), width, values.shape[-1]), np.float32)
    for i, p in enumerate(picks):
        out[i, : len(p)] = values[p]
    return out


def sequence_lengths(x: np.ndarray) -> np.ndarray:
    """Lengths of zero-padded ``(n, L, D)`` sequences: rows up to the last one that is not all zeros (at least 1)."""
    nonzero = np.abs(np.asarray(x)).sum(-1) > 0
    last = np.where(nonzero.any(1), x.shape[1] - np.argmax(nonzero[:, ::-1], axis=1), 1)
    return last.astype(np.int64)


# -- the expert ---------------------------------------------------------------------------------


class _FeatureSink(Sink):
    def __init__(self, expert: MovieclipFrameFeatures):
        self.expert = expert
        self.times: list[np.ndarray] = []
        self.values: list[np.ndarray] = []

    def frames(self, batch: FrameBatch) -> None:
        enc = self.expert.encoder()
        frames = np.asarray(batch.frames)
        for s in range(0, len(frames), self.expert.config.batch):
            self.values.append(enc.encode(frames[s : s + self.expert.config.batch]).astype(np.float32))
        self.times.append(np.asarray(batch.times, np.float64))

    def close(self) -> Track:
        dim = self.expert.dim()
        if not self.values:
            return Track(times=np.zeros(0), values=np.zeros((0, 1, dim), np.float32))
        return Track(times=np.concatenate(self.times), values=np.concatenate(self.values)[:, None, :])


class EncoderFields(Config):
    """The config fields of the frame encoders (shared by ``movieclip_frame_features`` and ``movieclip_shot_scale``)."""

    vit_model: str = Field(VIT_MODEL, description="vit: the timm model (the paper's ViT-B/16: vit_base_patch16_224)")
    weights: str | None = Field(
        None,
        description="vit: a local state dict (.safetensors, or a torch file read with weights_only=True) or folder; unset: $MOVIEKIT_WEIGHTS/timm-<vit_model>/ or the cache",
    )
    vit_overrides: dict[str, Any] = Field(
        default_factory=dict, description="vit: keyword overrides of the timm model (e.g. a tiny depth and width for tests)"
    )
    clip_model: str = Field("ViT-B-16", description="open_clip: architecture (CLIP ViT-B/16)")
    clip_pretrained: str = Field("openai", description="open_clip: pretrained tag or local checkpoint")
    grid: int = Field(8, ge=1, description="thumbnail: grid of the stand-in's colour thumbnail")
    device: str = Field("auto", description="torch device of the image model")


class MovieclipFrameFeatures(Expert):
    """Per-frame features of each shot's own frames sampled at 4 fps, for the shot-scale LSTM: ViT-B/16 (timm, the paper's), CLIP ViT-B/16, or an 8x8-thumbnail STAND-IN.

    Frames are sampled at ``fps`` (the paper: 4) from the run's single decode
    and encoded by ``backbone``: ``vit`` (timm ``vit_model``, default
    ``vit_base_patch16_224``, the pooled 768-d pre-logits feature, from local
    ``weights`` or ``$MOVIEKIT_WEIGHTS/timm-vit_base_patch16_224/``), ``open_clip``
    (CLIP ``clip_model`` ViT-B-16 with ``clip_pretrained``) or ``thumbnail``
    (no network; works offline; labelled a stand-in wherever it is reported).
    Each shot gets the features of the frames shown during its time span (a
    shot between two samples: the frame nearest its middle), ``(L, D)`` with
    zero rows after its own frames up to the longest shot of the video; over
    ``max_frames`` that many are kept, evenly spaced.
    """

    name = "movieclip_frame_features"
    version = "1"
    returns = "Track of (1, D) frame features at `fps`; per clip (L, D): the shot's own frames, zero rows after them"

    class Config(EncoderFields):
        backbone: Backbone = Field(
            "vit",
            description="vit: timm ViT-B/16 (the paper's); open_clip: CLIP ViT-B/16; thumbnail: 8x8 colour thumbnails, an offline STAND-IN",
        )
        fps: float = Field(4.0, gt=0, description="frames sampled per second (the paper: 4)")
        max_frames: int | None = Field(None, ge=1, description="at most this many frames per shot (evenly spaced); unset: all")
        batch: int = Field(32, ge=1, description="frames per forward pass")

    def __init__(self, config: Any = None, **fields: Any):
        super().__init__(config, **fields)
        self._encoder: FrameEncoder | None = None
        self._dim: int | None = None

    @classmethod
    def example_config(cls, tmp_path: Path) -> dict[str, Any]:
        return {"backbone": "thumbnail", "grid": 2}

    def weights(self) -> list[WeightsSpec]:
        cfg = self.config
        return [vit_weights_spec(cfg.vit_model, cfg.weights)] if cfg.backbone == "vit" else []

    def encoder(self) -> FrameEncoder:
        """The frame encoder, loaded once per expert."""
        if self._encoder is None:
            self._encoder = frame_encoder(self.config.backbone, self.config, self.name, resolve_device(self.config.device))
        return self._encoder

    def dim(self) -> int:
        if self._dim is None:
            self._dim = self._encoder.dim if self._encoder is not None else encoder_dim(self.config.backbone, self.config)
        return self._dim

    def about(self) -> dict[str, Any]:
        """Which backbone makes the features (for metrics and model records), without loading it when it is not loaded."""
        cfg = self.config
        about = dict(self._encoder.about) if self._encoder is not None else encoder_about(cfg.backbone, cfg)
        return {**about, "fps": cfg.fps, "expert": self.name}

    def needs(self) -> Needs:
        return Needs(frames=FrameNeed(fps=self.config.fps, batch=self.config.batch))

    def feature_shape(self) -> tuple[int | None, ...]:
        return (None, self.dim())

    def open(self, video: Video, info: VideoInfo) -> Sink:
        self.encoder()  # fail on missing weights before the decode
        return _FeatureSink(self)

    def pool(self, track: Track, clips: list[Clip]) -> np.ndarray:
        values = np.asarray(track.values, np.float32).reshape(len(track.values), -1)
        if len(values) == 0:
            return np.zeros((len(clips), 1, self.dim()), np.float32)
        return shot_sequences(np.asarray(track.times), values, clips, self.config.max_frames)


COMPONENTS = [MovieclipFrameFeatures]
