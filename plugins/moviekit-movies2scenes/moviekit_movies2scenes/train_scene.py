"""``m2s_scene_encoder``: scene contrastive learning with MoCo on the mined scene pairs (§1.1c)."""

from __future__ import annotations

import math
from typing import Any

from pydantic import Field

from moviekit import Config, MoviekitError, Task, TaskResult, TrainedModel, gather_with_grad, train_loop

from .common import MoCo, build_network, load_network, module_part, pad_shots, shot_embeddings
from .train_shot import shot_network


def warmup_cosine(epoch: int, warmup: int, epochs: int) -> float:
    """Learning-rate factor: linear warm-up over ``warmup`` epochs, then half a cosine to 0."""
    if epoch < warmup:
        return (epoch + 1) / warmup
    rest = max(1, epochs - warmup)
    return 0.5 * (1 + math.cos(math.pi * (epoch - warmup) / rest))


class SceneEncoderTask(Task):
    """Trains the scene encoder (a ViT over the scene's E_shot embeddings) by MoCo on the similar scene pairs of one metadata type.

    The query is one scene of a pair, the positive key the other (both directions), negatives the
    queue.  Paper settings are the defaults: dim 128, queue 65,536, momentum 0.999, temperature 0.07,
    AdamW lr 1.5e-4, weight decay 0.01, 40 warm-up epochs, batch 128, 100 epochs.  The queue takes a
    short last batch; under torchrun every rank enqueues the keys of the whole global batch (one
    process's queue).  Hands on `m2s_scene_<metadata>` with parts `shot` (E_shot, frozen here) and `scene`.
    """

    name = "m2s_scene_encoder"

    class Config(Config):
        metadata: str = Field("cowatch", description="whose scene pairs to learn from (the m2s_scene_pairs task's metadata)")
        shot_model: str = Field("m2s_shot", description="the trained E_shot model")
        width: int = Field(256, ge=8, description="transformer width: the size of the scene representation")
        depth: int = Field(2, ge=1)
        heads: int = Field(4, ge=1)
        max_shots: int = Field(32, ge=1, description="longest scene the encoder takes, in shots")
        dim: int = Field(128, ge=1, description="MoCo feature dimension (the paper's 128)")
        queue: int = Field(65536, ge=1, description="MoCo queue size (the paper's 65,536)")
        momentum: float = Field(0.999, ge=0, le=1, description="key-encoder momentum (the paper's 0.999)")
        temperature: float = Field(0.07, gt=0, description="softmax temperature (the paper's 0.07)")
        lr: float = Field(1.5e-4, gt=0, description="AdamW learning rate (the paper's 1.5e-4)")
        weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay (the paper's 0.01)")
        warmup_epochs: int = Field(40, ge=0, description="linear warm-up epochs, then cosine decay (the paper's 40)")
        batch_size: int = Field(128, ge=1, description="the paper's 128")
        epochs: int = Field(100, ge=1, description="the paper's 100")
        shot_drop: float = Field(
            0.0, ge=0, lt=1, description="chance of masking each shot of the query (augmentation; the paper uses none)"
        )
        model_name: str | None = Field(None, description="name of the model handed on; default m2s_scene_<metadata>")
        max_steps: int | None = Field(None, ge=1)
        checkpoint_every: int = Field(10, ge=1, description="epochs between the checkpoints a killed run resumes from")

    @classmethod
    def example_config(cls, tmp_path: Any) -> dict[str, Any]:
        return {"metadata": "genre", "epochs": 1, "warmup_epochs": 0, "queue": 32, "width": 16, "heads": 2}

    @classmethod
    def example_setup(cls, tmp_path: Any) -> dict[str, Any]:
        return {"before": [{"use": "m2s_shot_encoder", "modality": "visual", "epochs": 1, "queue": 64},
                           {"use": "m2s_movie_encoder", "metadata": "genre", "epochs": 1, "max_shots": 16},
                           {"use": "m2s_scene_pairs", "movie_model": "m2s_movie_genre", "window": 3}]}  # fmt: skip

    def run(self, ctx: Any) -> TaskResult:
        import torch

        c = self.config
        pairs = (ctx.shared.get("m2s_scene_pairs") or {}).get(c.metadata)
        if not pairs:
            raise MoviekitError(f"no scene pairs for metadata '{c.metadata}'; run m2s_scene_pairs with an E_movie of that metadata first")
        shot_net, modality = shot_network(ctx, c.shot_model)
        by_id = {it.id: it for it in ctx.items}
        ids = sorted({p[k] for p in pairs for k in ("a", "b")} & set(by_id))
        emb = dict(zip(ids, shot_embeddings(shot_net, [by_id[m] for m in ids], modality), strict=True))
        samples = [(p["a"], p["i"], p["len_a"], p["b"], p["j"], p["len_b"]) for p in pairs if p["a"] in emb and p["b"] in emb]
        samples += [(b, j, lb, a, i, la) for a, i, la, b, j, lb in samples]  # both directions
        spec = {"network": "scene", "in_dim": int(next(iter(emb.values())).shape[1]), "width": c.width, "depth": c.depth,
                "heads": c.heads, "max_shots": c.max_shots, "dim": c.dim}  # fmt: skip
        torch.manual_seed(ctx.seed)
        net = build_network(spec)
        moco = MoCo(net, c.dim, c.queue, c.momentum, c.temperature, seed=ctx.seed).to(ctx.device)
        gen = torch.Generator().manual_seed(ctx.seed + 2)

        def batch(side: int, idx: list[int]) -> tuple[Any, Any]:
            seqs = [emb[samples[k][3 * side]][samples[k][3 * side + 1] : samples[k][3 * side + 1] + samples[k][3 * side + 2]] for k in idx]
            x, m = pad_shots(seqs, c.max_shots)
            return x.to(ctx.device), m.to(ctx.device)

        def step(idx: list[int]) -> Any:
            moco.after_step()  # the previous step's momentum update and enqueue, after its optimiser step
            xq, mq = batch(0, idx)
            if c.shot_drop > 0:  # one process's draw for the global batch, this rank's rows of it (ranks keep one generator state)
                lens, start = gather_with_grad(mq.sum(1), with_offset=True)
                draw = torch.rand((len(lens), max(1, int(lens.max()))), generator=gen)
                keep = draw[start : start + len(idx), : mq.shape[1]].to(mq.device) >= c.shot_drop
                keep[:, 0] = True
                mq = mq & keep
            return moco.loss((xq, mq), batch(1, idx))

        opt = torch.optim.AdamW(net.parameters(), lr=c.lr, weight_decay=c.weight_decay)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda e: warmup_cosine(e, c.warmup_epochs, c.epochs))
        name = c.model_name or f"m2s_scene_{c.metadata}"
        hist = train_loop(moco, step, len(samples), opt, c.epochs, c.batch_size, ctx=ctx, seed=ctx.seed, scheduler=sched,
                          max_steps=c.max_steps, checkpoint_every=c.checkpoint_every, tag=name, generators=[gen],
                          extra_state=moco.pending)  # fmt: skip
        moco.after_step()
        net = moco.encoder.cpu().eval()
        shot_model = ctx.model(c.shot_model)
        losses = hist["epoch_loss"]
        metrics = {
            "metadata": c.metadata,
            "scene_pairs": len(samples) // 2,
            "first_loss": losses[0] if losses else None,
            "final_loss": losses[-1] if losses else None,
        }
        model = TrainedModel.from_modules(
            name, {"shot": (shot_model.record.parts["shot"], load_network(shot_model, "shot")), "scene": (module_part(self.name, spec), net)},
            task=self.name, input_dims=shot_model.record.input_dims, metrics=metrics,
            meta={"modality": modality, "metadata": c.metadata, "shot_model": c.shot_model},
        )  # fmt: skip
        return TaskResult(metrics=metrics, files=ctx.put_model(model))


def scene_model(ctx: Any, name: str) -> tuple[Any, Any, str]:
    """``(E_shot, scene encoder, modality)`` of a trained scene model."""
    model = ctx.model(name)
    return load_network(model, "shot"), load_network(model, "scene"), model.record.meta.get("modality", "keyframes")
