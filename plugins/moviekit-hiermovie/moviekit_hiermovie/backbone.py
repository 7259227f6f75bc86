"""The low-level backbone: a 3D CNN of torchvision's video ResNet family, as an Encoder and an Expert.

Architectures (``arch``): torchvision's ``r3d_18``, ``mc3_18`` and ``r2plus1d_18`` (512-d, the
references' family; local Kinetics-400 weights through ``weights`` give the ablation's supervised
row), and ``r3d_tiny`` / ``r2plus1d_tiny``: the same blocks (torchvision's ``BasicBlock`` with
``Conv3DSimple`` / ``Conv2Plus1D``) at widths ``w, 2w, 4w, 8w`` with one block per stage, the
CPU default.  Frames enter as stored by ``hier_frames`` (``(N, T, H, W, 3)``, 0-255) and are
normalised with the Kinetics mean and std.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from moviekit import (
    Clip,
    Config,
    Encoder,
    Expert,
    FrameNeed,
    ModelPart,
    MoviekitError,
    Needs,
    Sink,
    Track,
    Video,
    WeightsSpec,
)

from .frames import FramesConfig, WindowSink, pool_windows

Arch = Literal["r3d_tiny", "r2plus1d_tiny", "r3d_18", "mc3_18", "r2plus1d_18"]
MEAN = (0.43216, 0.394666, 0.37645)
STD = (0.22803, 0.22145, 0.216989)


def _tiny(block: str, width: int) -> Any:
    from torch import nn
    from torchvision.models.video.resnet import BasicBlock, Conv2Plus1D, Conv3DSimple

    conv = Conv3DSimple if block == "r3d" else Conv2Plus1D
    layers: list[Any] = [
        nn.Conv3d(3, width, (3, 5, 5), stride=(1, 2, 2), padding=(1, 2, 2), bias=False),
        nn.BatchNorm3d(width),
        nn.ReLU(inplace=True),
    ]
    inplanes = width
    for i, planes in enumerate([width, 2 * width, 4 * width, 8 * width]):
        stride = 1 if i == 0 else 2
        down = None
        if stride != 1 or inplanes != planes:
            ds = conv.get_downsample_stride(stride)
            down = nn.Sequential(nn.Conv3d(inplanes, planes, 1, stride=ds, bias=False), nn.BatchNorm3d(planes))
        layers.append(BasicBlock(inplanes, planes, conv, stride, down))
        inplanes = planes
    layers += [nn.AdaptiveAvgPool3d(1), nn.Flatten(1)]
    return nn.Sequential(*layers)


def build_net(arch: str, width: int = 16) -> tuple[Any, int]:
    """``(module mapping (N, 3, T, H, W) -> (N, D), D)``, randomly initialised."""
    from torch import nn

    if arch.endswith("_tiny"):
        return _tiny(arch.split("_")[0], width), 8 * width
    import torchvision.models.video as tvv

    net = getattr(tvv, arch)(weights=None)
    net.fc = nn.Identity()
    return net, 512


def load_kinetics_weights(net: Any, path: str | Path) -> None:
    """Load a torchvision video ResNet state dict (``.pth`` read with ``weights_only``, or safetensors); the classifier is dropped."""
    import torch

    p = Path(path)
    if not p.is_file():
        raise MoviekitError(f"weights: {p} not found (a torchvision Kinetics-400 state dict, e.g. r3d_18-b3b3357e.pth)")
    if p.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(p))
    else:
        state = torch.load(p, map_location="cpu", weights_only=True)
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    missing, unexpected = net.load_state_dict(state, strict=False)
    if unexpected or missing:
        raise MoviekitError(f"weights: {p} does not fit this architecture (missing {missing[:3]}, unexpected {unexpected[:3]})")


def _module(arch: str, width: int, modality: str) -> Any:
    import torch
    from torch import nn

    net, dim = build_net(arch, width)

    class VideoBackbone(nn.Module):
        """``embed(frames (N, T, H, W, 3) 0-255) -> (N, D)``; ``forward(features, mask)`` embeds every clip
        of ``features[modality]`` ``(B, C, T, H, W, 3)`` and averages the real clips: ``(B, D)``."""

        def __init__(self) -> None:
            super().__init__()
            self.net = net
            self.out_dim = dim
            self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1, 1), persistent=False)
            self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1, 1), persistent=False)

        def embed(self, frames: torch.Tensor) -> torch.Tensor:
            x = frames.float().permute(0, 4, 1, 2, 3) / 255.0  # (N, 3, T, H, W)
            return self.net((x - self.mean) / self.std)

        def forward(self, features: Any, mask: torch.Tensor | None = None) -> torch.Tensor:
            if isinstance(features, torch.Tensor):
                return self.embed(features)
            x = features[modality]
            B, C = x.shape[:2]
            e = self.embed(x.flatten(0, 1)).view(B, C, -1)
            w = (mask if mask is not None else torch.ones(B, C, dtype=torch.bool, device=e.device)).unsqueeze(-1).to(e.dtype)
            return (e * w).sum(1) / w.sum(1).clamp_min(1.0)

    return VideoBackbone()


class BackboneConfig(Config):
    arch: Arch = Field(
        "r3d_tiny", description="r3d_tiny / r2plus1d_tiny (CPU default; widths w, 2w, 4w, 8w) or torchvision's r3d_18, mc3_18, r2plus1d_18"
    )
    width: int = Field(16, ge=4, le=128, description="first-stage width w of the tiny architectures (output 8w)")
    modality: str = Field("frames", description="the FeatureSet modality holding (T, H, W, 3) frame stacks")


class HierBackboneEncoder(Encoder):
    """A torchvision video-ResNet 3D CNN over each clip's frames (from `hier_frames`), averaged over clips."""

    name = "hier_backbone"
    Config = BackboneConfig

    def output_dim(self) -> int:
        return 8 * self.config.width if self.config.arch.endswith("_tiny") else 512

    def build(self, dims: dict[str, tuple[int, ...]]) -> Any:
        shape = dims.get(self.config.modality)
        if shape is None or len(shape) != 4 or shape[-1] != 3:
            raise MoviekitError(
                f"hier_backbone: needs a '{self.config.modality}' modality of (T, H, W, 3) frame stacks (add the hier_frames expert); got {dims}"
            )
        return _module(self.config.arch, self.config.width, self.config.modality)

    def part(self, dims: dict[str, Any]) -> ModelPart:
        return ModelPart(
            kind="encoder",
            component={"use": self.name, **self.config.model_dump(mode="json")},
            build={"dims": {k: list(v) for k, v in dims.items()}},
        )


class HierBackboneExpert(Expert):
    """Per-clip features of a trained backbone (a `hier_backbone_pretrain` model file) or of local Kinetics weights."""

    name = "hier_backbone_features"
    modality = "tokens"

    class Config(FramesConfig, BackboneConfig):
        model: Path | None = Field(
            None, description="a moviekit model file (models/<name>.json of hier_backbone_pretrain); its architecture wins"
        )
        weights: Path | None = Field(
            None, description="a torchvision Kinetics-400 state dict for arch (the supervised backbone), used when no model is given"
        )
        seed: int = Field(0, description="seed of the random initialisation when neither model nor weights is given")
        batch: int = Field(8, ge=1, description="windows per forward pass")
        device: str = Field("cpu", description="device of the forward passes")

    def weights(self) -> list[WeightsSpec]:
        if self.config.weights is None:
            return []
        return [
            WeightsSpec(
                name=f"kinetics_{self.config.arch}",
                description="torchvision Kinetics-400 video ResNet",
                path=str(self.config.weights),
                config_key="weights",
            )
        ]

    def _load(self) -> Any:
        if getattr(self, "_net", None) is not None:
            return self._net
        import torch

        cfg = self.config
        if cfg.model is not None:
            from moviekit import load_model

            net = load_model(cfg.model).build("backbone")
        else:
            torch.manual_seed(cfg.seed)
            net = _module(cfg.arch, cfg.width, cfg.modality)
            if cfg.weights is not None:
                load_kinetics_weights(net.net, cfg.weights)
        self._net = net.to(cfg.device).eval()
        return self._net

    def feature_shape(self) -> tuple[int, ...]:
        return (self._load().out_dim,)

    def needs(self) -> Needs:
        return Needs(frames=FrameNeed(fps=self.config.fps, size=(self.config.size, self.config.size), batch=32))

    def _encode(self, windows: np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad():
            return self._load().embed(torch.from_numpy(windows).to(self.config.device)).float().cpu().numpy()

    def open(self, video: Video, info: dict[str, Any]) -> Sink:
        return WindowSink(self.config.frames_per_clip, self._encode, self.feature_shape(), self.config.batch)

    def pool(self, track: Track, clips: list[Clip]) -> np.ndarray:
        return pool_windows(track, clips).astype(np.float32)
