"""Helpers the Movies2Scenes tasks share: trained-network hand-off, shot features, ground-truth scenes."""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from moviekit import Item, ModelPart, MoviekitError, TrainedModel


def build_network(spec: dict[str, Any]) -> Any:
    """:func:`networks.build_network`, importing torch only when a network is built (registry loads stay light)."""
    from .networks import build_network as build

    return build(spec)


def MoCo(*args: Any, **kwargs: Any) -> Any:  # noqa: N802 - stands in for the class
    """:class:`moco.MoCo`, importing torch only when a task trains."""
    from .moco import MoCo as cls

    return cls(*args, **kwargs)


def module_part(task: str, spec: dict[str, Any]) -> ModelPart:
    """The :class:`ModelPart` of a plugin network (rebuilt by :func:`load_network` from ``spec``)."""
    return ModelPart(kind="module", component={"use": task}, build=spec)


def load_network(model: TrainedModel, part: str) -> Any:
    """The network of ``part`` of a trained model, with its weights, in eval mode."""
    if part not in model.record.parts:
        raise MoviekitError(
            f"model '{model.name}' has no part '{part}' (it has: {', '.join(model.record.parts)}); is it a Movies2Scenes model?"
        )
    net = build_network(model.record.parts[part].build)
    net.load_state_dict(model.part_state(part))
    return net.eval()


def keyframes(item: Item, modality: str) -> np.ndarray:
    """``(n_shots, K, D)`` keyframe features of an item (``(n_shots, D)`` features count as one keyframe)."""
    if item.features is None or modality not in item.features.arrays:
        have = sorted(item.features.arrays) if item.features else []
        raise MoviekitError(
            f"item {item.id} has no '{modality}' features (has {have}); add the m2s_keyframes expert under experts.{modality}"
        )
    arr = item.features.arrays[modality]
    if arr.ndim == 2:  # one feature per shot (e.g. precomputed shot features from a features_dir): one keyframe
        return arr[:, None, :]
    if arr.ndim != 3:
        raise MoviekitError(f"item {item.id}: '{modality}' features must be (shots, keyframes, dim) or (shots, dim), got {arr.shape}")
    return arr


def shot_embeddings(shot_net: Any, items: list[Item], modality: str, batch: int = 512) -> list[np.ndarray]:
    """``E_shot`` of every shot of every item: a list of ``(n_shots, 512)`` arrays."""
    import torch

    out = []
    with torch.no_grad():
        for it in items:
            x = torch.from_numpy(keyframes(it, modality))
            out.append(
                np.concatenate([shot_net(x[s : s + batch]).numpy() for s in range(0, max(len(x), 1), batch)])
                if len(x)
                else np.zeros((0, 512), np.float32)
            )
    return out


@dataclass
class Scene:
    """A ground-truth scene of one item: its shots (clip indices), place tags and labels."""

    item: int
    index: int
    shots: list[int]
    places: list[str] = field(default_factory=list)
    labels: dict[str, Any] = field(default_factory=dict)


def clip_scene_ids(item: Item) -> np.ndarray:
    """The ground-truth scene of each clip (by its middle frame, or time), -1 outside every scene.

    Scenes come from ``metadata["scenes"]``: ``{start_frame, end_frame}`` or ``{start, end}`` (seconds).
    An item without scenes is one scene (e.g. an LVU clip).
    """
    scenes = item.video.metadata.get("scenes")
    n = len(item.clips)
    if not scenes:
        return np.zeros(n, dtype=np.int64)
    out = np.full(n, -1, dtype=np.int64)
    for c, clip in enumerate(item.clips):
        mid_f = 0.5 * (clip.start_frame + clip.end_frame)
        mid_t = 0.5 * (clip.start_time + clip.end_time)
        for s, sc in enumerate(scenes):
            if "start_frame" in sc:
                inside = sc["start_frame"] <= mid_f < sc["end_frame"]
            else:
                inside = sc["start"] <= mid_t < sc["end"]
            if inside:
                out[c] = s
                break
    return out


def item_scenes(items: list[Item]) -> list[Scene]:
    """Every ground-truth scene with at least one shot, in item order; labels: place (first tag), the movie's genre and year, activity."""
    out = []
    for i, it in enumerate(items):
        ids = clip_scene_ids(it)
        meta = it.video.metadata
        scenes = meta.get("scenes") or [{"places": list(it.video.labels)}]
        for s, sc in enumerate(scenes):
            shots = [int(c) for c in np.flatnonzero(ids == s)]
            if not shots:
                continue
            places = list(sc.get("places") or [])
            labels = {k: v for k, v in sc.items() if k not in ("start", "end", "start_frame", "end_frame", "shots", "places")}
            if places:
                labels.setdefault("scene", places[0])
            genres = meta.get("genres") or it.video.labels
            if genres:
                labels.setdefault("genre", genres[0])
            if meta.get("year"):
                labels.setdefault("year", f"{int(meta['year']) // 10 * 10}s")
            if meta.get("like_ratio") not in (None, ""):
                labels.setdefault("like_ratio", float(meta["like_ratio"]))
            out.append(Scene(item=i, index=s, shots=shots, places=places, labels=labels))
    return out


def pad_shots(seqs: list[np.ndarray], max_len: int | None = None) -> tuple[Any, Any]:
    """``(B, S, d)`` float tensor and ``(B, S)`` mask of variable-length shot sequences."""
    import torch

    s = max(1, max(len(x) for x in seqs))
    if max_len:
        s = min(s, max_len)
    d = next((x.shape[1] for x in seqs if x.ndim == 2), 1)
    buf = np.zeros((len(seqs), s, d), np.float32)
    mask = np.zeros((len(seqs), s), bool)
    for i, x in enumerate(seqs):
        x = x[:s]
        buf[i, : len(x)] = x
        mask[i, : len(x)] = True
    return torch.from_numpy(buf), torch.from_numpy(mask)


def scene_embeddings(scene_net: Any, shot_emb: list[np.ndarray], scenes: list[Scene], batch: int = 256) -> np.ndarray:
    """The scene encoder's representation of each scene (its shots' ``E_shot`` embeddings in order)."""
    import torch

    out = []
    with torch.no_grad():
        for s in range(0, len(scenes), batch):
            chunk = scenes[s : s + batch]
            x, m = pad_shots([shot_emb[sc.item][sc.shots] for sc in chunk], scene_net.max_shots)
            out.append(scene_net.embed(x, m).numpy())
    return np.concatenate(out) if out else np.zeros((0, 1), np.float32)


def frame_baseline(items: list[Item], scenes: list[Scene], modality: str) -> np.ndarray:
    """Table 2's appearance baseline: the backbone's keyframe embeddings averaged over the scene's shots."""
    return np.stack(
        [keyframes(items[sc.item], modality)[sc.shots].reshape(-1, keyframes(items[sc.item], modality).shape[-1]).mean(0) for sc in scenes]
    )


def random_baseline(n: int, dim: int, seed: int, stream: str = "") -> np.ndarray:
    """``n`` random ``dim``-vectors, one independent stream per ``stream`` name (e.g. the split), so that the
    random queries of one split never repeat the random gallery of another."""
    return np.random.default_rng([seed, 4242, zlib.crc32(stream.encode())]).normal(size=(n, dim)).astype(np.float32)
