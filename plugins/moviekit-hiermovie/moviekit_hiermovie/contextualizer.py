"""The high-level contextualizer: a transformer over the low-level tokens of neighbouring events.

VidSitu's event transformer defaults: 3 layers, width 1024, FFN 2048, 8 heads, dropout 0.1,
learned position embeddings.  Tokens are layer-normalised (no parameters: the same target the
mask prediction regresses to), projected to the width, given their position and, where masked,
replaced by the learned mask token.  ``predict`` maps outputs back to token space (the
mask-prediction head, unused downstream).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import Field

from moviekit import Config, Encoder, ModelPart


class ContextConfig(Config):
    width: int = Field(1024, ge=8, description="transformer width (VidSitu: 1024)")
    layers: int = Field(3, ge=1, description="encoder layers (VidSitu: 3)")
    heads: int = Field(8, ge=1, description="attention heads (VidSitu: 8)")
    ffn: int = Field(2048, ge=8, description="feed-forward width (VidSitu: 2048)")
    dropout: float = Field(0.1, ge=0, lt=1, description="dropout (VidSitu: 0.1)")
    max_positions: int = Field(32, ge=1, description="learned positions: the longest token sequence (5 events in VidSitu)")


def build_contextualizer(in_dim: int, cfg: ContextConfig) -> Any:
    import torch
    import torch.nn.functional as F
    from torch import nn

    class Contextualizer(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.in_dim, self.out_dim = in_dim, cfg.width
            self.proj = nn.Linear(in_dim, cfg.width)
            self.pos = nn.Parameter(torch.randn(cfg.max_positions, cfg.width) * 0.02)
            self.mask_token = nn.Parameter(torch.randn(in_dim) * 0.02)
            layer = nn.TransformerEncoderLayer(cfg.width, cfg.heads, cfg.ffn, cfg.dropout, batch_first=True, norm_first=True)
            self.encoder = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
            self.norm = nn.LayerNorm(cfg.width)
            self.predict = nn.Linear(cfg.width, in_dim)

        @staticmethod
        def target(tokens: torch.Tensor) -> torch.Tensor:
            return F.layer_norm(tokens.float(), tokens.shape[-1:])

        def contextualize(
            self, tokens: torch.Tensor, valid: torch.Tensor, plan: dict[str, Any] | None = None, generator: Any = None
        ) -> torch.Tensor:
            """``(B, L, D)`` tokens -> ``(B, L, width)``; ``plan`` (from ``bert_mask``) masks some inputs."""
            from .masking import apply_mask

            x = self.target(tokens)
            if plan is not None:
                x = apply_mask(x, plan, self.mask_token, generator, valid)
            h = self.proj(x) + self.pos[: x.shape[1]]
            return self.norm(self.encoder(h, src_key_padding_mask=~valid))

        def forward(self, features: Any, mask: torch.Tensor) -> torch.Tensor:
            """Encoder contract: per-clip features (modalities concatenated) -> masked mean ``(B, width)``."""
            x = torch.cat([features[m].flatten(2) for m in sorted(features)], -1) if isinstance(features, dict) else features
            h = self.contextualize(x, mask)
            w = mask.unsqueeze(-1).to(h.dtype)
            return (h * w).sum(1) / w.sum(1).clamp_min(1.0)

    return Contextualizer()


class HierContextualizer(Encoder):
    """A transformer contextualizer over a video's clip (event) tokens, learned positions, mean-pooled output."""

    name = "hier_contextualizer"
    Config = ContextConfig

    def output_dim(self) -> int:
        return self.config.width

    def build(self, dims: dict[str, tuple[int, ...]]) -> Any:
        return build_contextualizer(int(sum(np.prod(d) for d in dims.values())), self.config)

    def part(self, dims: dict[str, Any]) -> ModelPart:
        return ModelPart(
            kind="encoder",
            component={"use": self.name, **self.config.model_dump(mode="json")},
            build={"dims": {k: list(v) for k, v in dims.items()}},
        )
