"""Event tokens: the low-level backbone's embedding of each 2-s event of each movie clip.

Computed from the items' ``hier_frames`` pixels with a backbone model of the run (cached in the
run's artifact store by model content and frames), or taken as given from a features_dir
source (backbone name ``features``).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np

from moviekit import MoviekitError

#: Events per VidSitu clip.
N_EVENTS = 5
#: Backbone name meaning "the items' own per-event features" (a features_dir source).
FEATURES = "features"


def split_name(item: Any) -> str:
    return item.video.split or "none"


def movie_items(ctx: Any, splits: list[str], annotated: bool = False) -> list[Any]:
    """Movie clips (not action clips) with features, in the given splits (``none``: unlabelled)."""
    out = []
    for it in ctx.items:
        if it.video.metadata.get("hier_kind", "movie") != "movie" or it.features is None:
            continue
        if split_name(it) in splits and (not annotated or it.video.metadata.get("vidsitu")):
            out.append(it)
    return out


def model_digest(model: Any) -> str:
    h = hashlib.sha256(json.dumps(model.record.model_dump(mode="json", exclude={"name"}), sort_keys=True).encode())
    for k in sorted(model.state):
        h.update(k.encode())
        h.update(model.state[k].detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _events(arr: np.ndarray) -> np.ndarray:
    if len(arr) >= N_EVENTS:
        return arr[:N_EVENTS]
    if len(arr) == 0:
        raise MoviekitError("an item has no clips (events)")
    return np.concatenate([arr, np.repeat(arr[-1:], N_EVENTS - len(arr), 0)])


def clip_tokens(
    ctx: Any, backbone: str, items: list[Any], frames: str = "frames", tokens: str = "tokens", batch: int = 32
) -> list[np.ndarray]:
    """Per item, ``(clips, D)`` float32 tokens of every clip under backbone model ``backbone``."""
    if backbone == FEATURES:
        missing = [it.id for it in items if tokens not in it.features.arrays]
        if missing:
            raise MoviekitError(f"backbone '{FEATURES}' takes the items' '{tokens}' features, which {missing[0]} lacks")
        return [it.features.arrays[tokens].reshape(len(it.features.arrays[tokens]), -1).astype(np.float32) for it in items]
    import torch

    model = ctx.model(backbone)
    missing = [it.id for it in items if frames not in it.features.arrays]
    if missing:
        raise MoviekitError(f"backbone '{backbone}' needs the '{frames}' modality (the hier_frames expert); {missing[0]} lacks it")
    h = hashlib.sha256(model_digest(model).encode())
    for it in items:
        h.update(it.id.encode())
        h.update(hashlib.sha256(np.ascontiguousarray(it.features.arrays[frames]).tobytes()).digest())
    key = h.hexdigest()
    cached = ctx.store.get("hier_tokens", key)
    if cached is not None:
        return cached
    net = model.build("backbone").to(ctx.device).eval()
    lengths = [len(it.features.arrays[frames]) for it in items]
    flat = np.concatenate([it.features.arrays[frames] for it in items])  # (sum clips, T, H, W, 3)
    out = []
    with torch.no_grad():
        for s in range(0, len(flat), batch):
            out.append(net.embed(torch.from_numpy(flat[s : s + batch]).to(ctx.device)).float().cpu().numpy())
    rows = np.concatenate(out).astype(np.float32)
    result = np.split(rows, np.cumsum(lengths)[:-1])
    ctx.store.put("hier_tokens", key, result)
    return result


def event_tokens(ctx: Any, backbone: str, items: list[Any], frames: str = "frames", tokens: str = "tokens", batch: int = 32) -> np.ndarray:
    """``(len(items), 5, D)`` float32 tokens of the five events of ``items`` (fewer clips: the last repeats)."""
    if not items:
        return np.zeros((0, N_EVENTS, 0), np.float32)
    return np.stack([_events(t) for t in clip_tokens(ctx, backbone, items, frames, tokens, batch)])
