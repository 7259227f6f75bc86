"""The networks of Movies2Scenes: shot encoder ``E_shot``, movie encoder ``E_movie``, scene encoder, MLP heads.

Each is rebuilt from a JSON-able dict (``build_network(spec)``), the ``build`` of its
:class:`~moviekit.ModelPart`, so a trained model on disk is data only.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from moviekit import mlp


class MLPShotEncoder(nn.Module):
    """``E_shot`` on frozen backbone features: the ``K`` keyframe features, concatenated, through an MLP to ``dim``."""

    def __init__(self, keyframes: int, in_dim: int, dim: int = 512, hidden: int = 1024):
        super().__init__()
        self.net = mlp([keyframes * in_dim, hidden, dim])

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, K, D) -> (B, dim)
        return self.net(x.flatten(1))


class ViTShotEncoder(nn.Module):
    """``E_shot`` as a small ViT over the pixels of the ``K`` keyframes (patch tokens of every keyframe, a CLS token)."""

    def __init__(
        self, keyframes: int, image: tuple[int, int], dim: int = 512, width: int = 192, depth: int = 4, heads: int = 4, patch: int = 8
    ):
        super().__init__()
        w, h = image
        self.image, self.keyframes = (w, h), keyframes
        self.patch = nn.Conv2d(3, width, patch, patch)
        n = (w // patch) * (h // patch) * keyframes
        self.cls = nn.Parameter(torch.zeros(1, 1, width))
        self.pos = nn.Parameter(torch.randn(1, n + 1, width) * 0.02)
        layer = nn.TransformerEncoderLayer(width, heads, 4 * width, dropout=0.0, batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        self.out = nn.Linear(width, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, K, H*W*3) pixels in [0, 1]
        b, k, _ = x.shape
        w, h = self.image
        img = x.reshape(b * k, h, w, 3).permute(0, 3, 1, 2)
        tok = self.patch(img).flatten(2).transpose(1, 2).reshape(b, -1, self.patch.out_channels)
        tok = torch.cat([self.cls.expand(b, -1, -1), tok], 1) + self.pos
        return self.out(self.norm(self.blocks(tok))[:, 0])


class MovieEncoder(nn.Module):
    """``E_movie``: per-shot layers (the features scene pairs are mined from), masked mean over shots, a last FC layer.

    Two movies are similar when the cosine of their embeddings, scaled and shifted by learnt
    scalars, is high: :meth:`pair_logit` gives the logit trained with BCE on metadata pairs.
    """

    def __init__(self, in_dim: int = 512, hidden: int = 512, shot_dim: int = 256, dim: int = 128):
        super().__init__()
        self.shot = mlp([in_dim, hidden, shot_dim], final_activation=True)
        self.fc = nn.Linear(shot_dim, dim)
        self.scale = nn.Parameter(torch.tensor(5.0))
        self.bias = nn.Parameter(torch.tensor(0.0))

    def shot_features(self, x: torch.Tensor) -> torch.Tensor:  # (..., in_dim) -> (..., shot_dim)
        return self.shot(x)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:  # (B, L, in), (B, L) -> (B, dim)
        h = self.shot(x)
        w = mask.unsqueeze(-1).to(h.dtype)
        return self.fc((h * w).sum(1) / w.sum(1).clamp_min(1.0))

    def pair_logit(self, za: torch.Tensor, zb: torch.Tensor) -> torch.Tensor:
        return self.scale * F.cosine_similarity(za, zb, dim=1) + self.bias


class SceneEncoder(nn.Module):
    """The scene encoder: a ViT-style transformer over the scene's shot embeddings (a CLS token, learnt positions).

    ``embed`` is the scene representation used downstream (the CLS output, ``width``-d);
    ``forward`` adds MoCo's projection head to ``dim`` (128).
    """

    def __init__(self, in_dim: int = 512, width: int = 256, depth: int = 2, heads: int = 4, max_shots: int = 32, dim: int = 128):
        super().__init__()
        self.inp = nn.Linear(in_dim, width)
        self.cls = nn.Parameter(torch.zeros(1, 1, width))
        self.pos = nn.Parameter(torch.randn(1, max_shots + 1, width) * 0.02)
        layer = nn.TransformerEncoderLayer(width, heads, 4 * width, dropout=0.0, batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        self.proj = mlp([width, width, dim])
        self.max_shots = max_shots

    def embed(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:  # (B, S, in), (B, S) bool
        x, mask = x[:, : self.max_shots], mask[:, : self.max_shots]
        b, s, _ = x.shape
        tok = torch.cat([self.cls.expand(b, -1, -1), self.inp(x)], 1) + self.pos[:, : s + 1]
        pad = torch.cat([torch.zeros(b, 1, dtype=torch.bool, device=x.device), ~mask], 1)
        return self.norm(self.blocks(tok, src_key_padding_mask=pad))[:, 0]

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.proj(self.embed(x, mask))


def build_network(spec: dict[str, Any]) -> nn.Module:
    """A fresh network from its JSON spec ``{"network": NAME, **arguments}``."""
    kw = dict(spec)
    name = kw.pop("network")
    if "image" in kw:
        kw["image"] = tuple(kw["image"])
    nets = {"mlp_shot": MLPShotEncoder, "vit_shot": ViTShotEncoder, "movie": MovieEncoder, "scene": SceneEncoder}
    if name not in nets:
        raise ValueError(f"unknown network {name!r}; known: {', '.join(nets)}")
    return nets[name](**kw)
