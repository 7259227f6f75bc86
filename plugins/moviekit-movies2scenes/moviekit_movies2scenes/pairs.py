"""``m2s_scene_pairs``: mines similar scene pairs from similar movies with the learnt ``E_movie`` (§1.1c, §3a)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from pydantic import Field

from moviekit import Config, MoviekitError, Task, TaskResult

from .common import clip_scene_ids, keyframes, shot_embeddings
from .selection import select_scene_pairs
from .train_movie import movie_network
from .train_shot import shot_network


def window_place(item: Any, start: int, length: int) -> str | None:
    """The first place tag of the ground-truth scene most of the window's shots belong to (None without scenes)."""
    scenes = item.video.metadata.get("scenes")
    if not scenes:
        return None
    ids = clip_scene_ids(item)[start : start + length]
    ids = ids[ids >= 0]
    if not len(ids):
        return None
    s = int(np.bincount(ids).argmax())
    places = scenes[s].get("places") or []
    return places[0] if places else None


class ScenePairsTask(Task):
    """Selects similar scene pairs in every similar movie pair: the M x N shot adjacency of E_movie features (before its last FC layer), 9 x 9 window means, greedy top 50 % with no scene used twice.

    Pairs are written to `scene_pairs_<metadata>.json` (movie ids, first shots, window, score) and
    handed to the scene contrastive task through the run's shared state.  When the items have
    ground-truth places, the share of pairs whose two windows are mostly at the same place is
    reported, for these pairs and for pairs mined the same way from the backbone's keyframe
    features (appearance similarity), as a check of what the metadata adds.
    """

    name = "m2s_scene_pairs"

    class Config(Config):
        movie_model: str = Field("m2s_movie_cowatch", description="the trained E_movie model (its metadata's similar pairs are used)")
        window: int = Field(9, ge=1, description="shots per scene window (the paper's 9 x 9 windows)")
        fraction: float = Field(0.5, gt=0, le=1, description="share of the window scores greedy selection runs over (the paper's top 50 %)")
        non_overlapping: bool = Field(
            False, description="also skip windows overlapping a chosen one (§1.1c's reading); default §3a: no scene reused"
        )

    @classmethod
    def example_config(cls, tmp_path: Any) -> dict[str, Any]:
        return {"movie_model": "m2s_movie_genre", "window": 3}

    @classmethod
    def example_setup(cls, tmp_path: Any) -> dict[str, Any]:
        return {"before": [{"use": "m2s_shot_encoder", "modality": "visual", "epochs": 1, "queue": 64},
                           {"use": "m2s_movie_encoder", "metadata": "genre", "epochs": 1, "max_shots": 16}]}  # fmt: skip

    def run(self, ctx: Any) -> TaskResult:
        import torch

        c = self.config
        movie_net, meta = movie_network(ctx, c.movie_model)
        shot_net, modality = shot_network(ctx, meta["shot_model"])
        by_id = {it.id: it for it in ctx.items}
        movie_pairs = [(a, b) for a, b in meta.get("similar_pairs", []) if a in by_id and b in by_id]
        if not movie_pairs:
            raise MoviekitError(f"model {c.movie_model} lists no similar movie pairs among this run's items")
        ids = sorted({m for p in movie_pairs for m in p})
        emb = dict(zip(ids, shot_embeddings(shot_net, [by_id[m] for m in ids], modality), strict=True))
        with torch.no_grad():
            feats = {m: movie_net.shot_features(torch.from_numpy(e)).numpy() for m, e in emb.items()}
        appearance = {m: keyframes(by_id[m], modality).mean(1) for m in ids}
        out, same, base_same, known, base_known = [], 0, 0, 0, 0
        for a, b in movie_pairs:
            wa, wb = min(c.window, len(feats[a])), min(c.window, len(feats[b]))
            for i, j, score in select_scene_pairs(feats[a], feats[b], c.window, c.fraction, c.non_overlapping):
                out.append({"a": a, "b": b, "i": i, "j": j, "len_a": wa, "len_b": wb, "score": round(score, 6)})
                pa, pb = window_place(by_id[a], i, wa), window_place(by_id[b], j, wb)
                if pa is not None and pb is not None:
                    known += 1
                    same += pa == pb
            for i, j, _ in select_scene_pairs(appearance[a], appearance[b], c.window, c.fraction, c.non_overlapping):
                pa, pb = window_place(by_id[a], i, wa), window_place(by_id[b], j, wb)
                if pa is not None and pb is not None:
                    base_known += 1
                    base_same += pa == pb
        kind = meta.get("metadata", c.movie_model)
        ctx.shared.setdefault("m2s_scene_pairs", {})[kind] = out
        fname = f"scene_pairs_{kind}.json"
        (ctx.out_dir / fname).write_text(json.dumps({"movie_model": c.movie_model, "window": c.window, "pairs": out}, indent=0))
        metrics: dict[str, Any] = {"metadata": kind, "movie_pairs": len(movie_pairs), "scene_pairs": len(out)}
        if known:
            metrics["same_place_share"] = same / known
        if base_known:
            metrics["same_place_share_appearance"] = base_same / base_known
        return TaskResult(metrics=metrics, files=[fname])
