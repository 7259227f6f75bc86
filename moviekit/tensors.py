"""Batching items' per-clip features into padded tensors (torch imported lazily)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .records import Item


def pad_features(items: list[Item], modalities: list[str] | None = None, max_clips: int | None = None) -> tuple[dict[str, Any], Any]:
    """``({modality: (B, T, *dim) float tensor}, mask (B, T) bool)`` with zero padding.

    ``T`` is the longest item's clip count, capped at ``max_clips`` (clips past
    the cap are dropped).  ``mask`` is True where a clip is real.
    """
    import torch

    if not items:
        raise ValueError("pad_features needs at least one item")
    if modalities is None:
        modalities = sorted(items[0].features.arrays) if items[0].features else []
    lengths = [min(it.features.num_clips if it.features else 0, max_clips or 1 << 30) for it in items]
    t = max(max(lengths), 1)
    out: dict[str, Any] = {}
    for m in modalities:
        first = items[0].features.arrays[m]
        buf = np.zeros((len(items), t, *first.shape[1:]), dtype=np.float32)
        for i, it in enumerate(items):
            if m not in it.features.arrays:
                raise KeyError(f"item {it.id} has no '{m}' features (has {sorted(it.features.arrays)})")
            arr = it.features.arrays[m][: lengths[i]]
            buf[i, : len(arr)] = arr
        out[m] = torch.from_numpy(buf)
    mask = torch.zeros(len(items), t, dtype=torch.bool)
    for i, n in enumerate(lengths):
        mask[i, :n] = True
    return out, mask


def multi_hot(labels: list[list[str]], vocabulary: list[str]) -> np.ndarray:
    index = {v: i for i, v in enumerate(vocabulary)}
    y = np.zeros((len(labels), len(vocabulary)), dtype=np.float32)
    for i, ls in enumerate(labels):
        for label in ls:
            if label in index:
                y[i, index[label]] = 1.0
    return y


def mlp(dims: list[int], final_activation: bool = False, dropout: float = 0.0) -> Any:
    """``torch.nn.Sequential`` of Linear layers ``dims[0] -> ... -> dims[-1]`` with ReLU (and
    dropout) between them, and after the last one too when ``final_activation``."""
    from torch import nn

    layers: list[Any] = []
    for i in range(len(dims) - 1):
        layers.append(nn.Linear(dims[i], dims[i + 1]))
        if i < len(dims) - 2 or final_activation:
            layers.append(nn.ReLU())
            if dropout:
                layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)
