"""CVRL-style contrastive maths (Qian et al., "Spatiotemporal Contrastive Video Representation Learning", CVPR 2021).

* :func:`sample_pair_starts`: two clips of one video whose temporal distance is drawn from a
  linearly decreasing distribution (CVRL's temporal interval sampling: close clips are more
  likely, far ones still possible);
* :func:`consistent_augment`: one random crop, flip and colour jitter drawn per clip and applied
  identically to all of its frames (CVRL's temporally consistent augmentation);
* :func:`info_nce`: the InfoNCE (NT-Xent) loss of a batch of pairs, every other clip of the batch
  a negative; under DDP the other ranks' clips join the negatives (:func:`moviekit.gather_with_grad`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from moviekit import gather_with_grad


def sample_pair_starts(n_frames: int, clip_len: int, max_distance: int, rng: np.random.Generator, min_distance: int = 0) -> tuple[int, int]:
    """Start frames of two ``clip_len`` clips of an ``n_frames`` video, ``|s1 - s2| = d`` with
    ``P(d) ∝ (D + 1 - d)`` for ``d in [m, D]``, ``D = min(max_distance, n_frames - clip_len)``,
    ``m = min(min_distance, D)``."""
    span = max(n_frames - clip_len, 0)
    top = min(max_distance, span)
    d = np.arange(min(min_distance, top), top + 1)
    p = (top + 1 - d).astype(np.float64)
    dist = int(rng.choice(d, p=p / p.sum()))
    s1 = int(rng.integers(0, span - dist + 1))
    s2 = s1 + dist
    return (s1, s2) if rng.random() < 0.5 else (s2, s1)


def consistent_augment(
    clip: Any, generator: Any, scale: tuple[float, float] = (0.3, 1.0), flip: bool = True, jitter: float = 0.4, grayscale: float = 0.2
) -> Any:
    """``(T, 3, H, W)`` float clip in [0, 1] -> the same size, one draw of every augmentation for all frames."""
    import torch
    import torch.nn.functional as F

    def u(lo: float = 0.0, hi: float = 1.0) -> float:
        return float(lo + (hi - lo) * torch.rand((), generator=generator))

    _, C, H, W = clip.shape
    area = u(*scale)
    ratio = float(np.exp(u(np.log(3 / 4), np.log(4 / 3))))
    h = int(round(min(H, max(2, np.sqrt(area * H * W / ratio)))))
    w = int(round(min(W, max(2, np.sqrt(area * H * W * ratio)))))
    y0, x0 = int(u() * (H - h + 1)), int(u() * (W - w + 1))
    y0, x0 = min(y0, H - h), min(x0, W - w)
    out = F.interpolate(clip[:, :, y0 : y0 + h, x0 : x0 + w], size=(H, W), mode="bilinear", align_corners=False)
    if flip and u() < 0.5:
        out = out.flip(-1)
    if jitter > 0 and u() < 0.8:
        b, c, s = 1 + u(-jitter, jitter), 1 + u(-jitter, jitter), 1 + u(-jitter, jitter)
        out = out * b
        mean = out.mean(dim=(1, 2, 3), keepdim=True)
        out = (out - mean) * c + mean
        gray = out.mean(dim=1, keepdim=True)
        out = (out - gray) * s + gray
    if grayscale > 0 and u() < grayscale:
        out = out.mean(dim=1, keepdim=True).expand(-1, C, -1, -1)
    return out.clamp(0, 1)


def info_nce(z1: Any, z2: Any, temperature: float = 0.1, gather: bool = True) -> Any:
    """NT-Xent over a batch of pairs ``(z1[i], z2[i])``: each of the 2N embeddings has its pair as
    the positive and the other 2N - 2 (times the world size under DDP) as negatives; mean over 2N."""
    import torch
    import torch.nn.functional as F

    z1, z2 = F.normalize(z1.float(), dim=1), F.normalize(z2.float(), dim=1)
    local = torch.cat([z1, z2], 0)  # (2N, d)
    n = len(z1)
    # the gathered layout is [rank0: z1, z2 | rank1: z1, z2 | ...]; ranks may hold different N
    everyone, offset = gather_with_grad(local, with_offset=True) if gather else (local, 0)
    logits = local @ everyone.t() / temperature
    idx = torch.arange(2 * n, device=local.device)
    logits[idx, idx + offset] = float("-inf")  # no self-similarity
    target = torch.cat([idx[n:], idx[:n]]) + offset
    return F.cross_entropy(logits, target)
