"""``m2s_shot_encoder``: trains ``E_shot`` with MoCo; the positive key of a shot is its most similar neighbour (§1.1a)."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field

from moviekit import Config, MoviekitError, Task, TaskResult, TrainedModel, gather_with_grad, train_loop

from .common import MoCo, build_network, keyframes, load_network, module_part


def neighbour_positives(emb: np.ndarray, k: int) -> np.ndarray:
    """For each shot, the index of the most cosine-similar shot among its ``±k`` neighbours (itself excluded).

    A movie of one shot pairs it with itself.
    """
    n = len(emb)
    e = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    out = np.arange(n)
    for i in range(n):
        cand = [j for j in range(max(0, i - k), min(n, i + k + 1)) if j != i]
        if cand:
            out[i] = cand[int(np.argmax(e[cand] @ e[i]))]
    return out


class ShotEncoderTask(Task):
    """Trains the shot encoder E_shot (512-d) by MoCo with neighbour positives, re-selected with the current embeddings every epoch.

    The positive key of a shot is the most similar shot within `neighbours` shots either side,
    chosen with the current embeddings (not a stale positive fixed for epochs, §1.1a); a small
    neighbourhood keeps positives from being near-copies of the query.  On frozen
    EfficientNet-Lite0 keyframe features `arch: mlp` trains a projection; on pixels `arch: vit` trains
    a ViT from scratch.  Hands on the model `model_name` (part `shot`).
    """

    name = "m2s_shot_encoder"

    class Config(Config):
        modality: str = Field("keyframes", description="the m2s_keyframes expert's key under experts")
        arch: Literal["mlp", "vit"] = Field(
            "mlp", description="mlp over backbone keyframe features, or a ViT over keyframe pixels (backbone: pixels)"
        )
        dim: int = Field(512, ge=1, description="shot embedding size (the paper's 512)")
        hidden: int = Field(1024, ge=1, description="hidden size of the mlp encoder")
        vit_width: int = Field(192, ge=8)
        vit_depth: int = Field(4, ge=1)
        vit_heads: int = Field(4, ge=1)
        vit_patch: int = Field(8, ge=1)
        neighbours: int = Field(2, ge=1, description="k: positives are searched among the ±k neighbouring shots")
        queue: int = Field(65536, ge=1, description="MoCo queue size (MoCo's default)")
        momentum: float = Field(0.999, ge=0, le=1, description="momentum of the key encoder (MoCo's default)")
        temperature: float = Field(0.07, gt=0)
        noise: float = Field(
            0.0, ge=0, description="std of Gaussian noise added to query and key inputs, relative to the feature std (augmentation)"
        )
        epochs: int = Field(100, ge=1, description="the paper gives none for E_shot; ShotCoL's 100")
        lr: float = Field(0.03, gt=0, description="SGD learning rate (MoCo's 0.03)")
        weight_decay: float = Field(1e-4, ge=0)
        batch_size: int = Field(256, ge=1)
        splits: list[str] = Field(["train"], description="splits whose shots are trained on (self-supervised)")
        init: str | None = Field(None, description="start from this model's `shot` part")
        model_name: str = Field("m2s_shot", description="name of the trained model handed on")
        max_steps: int | None = Field(None, ge=1, description="stop after this many steps (smoke tests)")
        checkpoint_every: int = Field(10, ge=1, description="epochs between the checkpoints a killed run resumes from")

    def _spec(self, ctx: Any, arr: np.ndarray) -> dict[str, Any]:
        c = self.config
        if c.arch == "mlp":
            return {"network": "mlp_shot", "keyframes": int(arr.shape[1]), "in_dim": int(arr.shape[2]), "dim": c.dim, "hidden": c.hidden}
        expert = ctx.experts.get(c.modality)
        if expert is None or getattr(expert.config, "backbone", None) != "pixels":
            raise MoviekitError(f"arch: vit needs experts.{c.modality} to be m2s_keyframes with backbone: pixels")
        return {"network": "vit_shot", "keyframes": int(arr.shape[1]), "image": list(expert.config.size), "dim": c.dim,
                "width": c.vit_width, "depth": c.vit_depth, "heads": c.vit_heads, "patch": c.vit_patch}  # fmt: skip

    def run(self, ctx: Any) -> TaskResult:
        import torch

        c = self.config
        items = [it for it in ctx.items if it.video.split in c.splits and it.features is not None]
        if not items:
            raise MoviekitError(f"no items with features in splits {c.splits}")
        feats = [keyframes(it, c.modality) for it in items]
        x = torch.from_numpy(np.concatenate(feats))
        offsets = np.cumsum([0] + [len(f) for f in feats])
        spec = self._spec(ctx, feats[0])
        net = build_network(spec)
        if c.init:
            net.load_state_dict(ctx.model(c.init).part_state("shot"))
        torch.manual_seed(ctx.seed)
        moco = MoCo(net, c.dim, c.queue, c.momentum, c.temperature, seed=ctx.seed).to(ctx.device)
        x = x.to(ctx.device)
        scale = float(x.std()) * c.noise
        gen = torch.Generator().manual_seed(ctx.seed + 1)
        positives = np.arange(len(x))

        def reselect(*_: Any) -> None:
            moco.eval()
            with torch.no_grad():
                emb = torch.cat([net(x[s : s + 1024]) for s in range(0, len(x), 1024)]).cpu().numpy()
            for a, b in zip(offsets[:-1], offsets[1:]):
                positives[a:b] = a + neighbour_positives(emb[a:b], c.neighbours)

        reselect()

        def step(idx: list[int]) -> Any:
            moco.after_step()  # the previous step's momentum update and enqueue, after its optimiser step
            q, k = x[idx], x[positives[idx]]
            if scale > 0:  # one process's draw for the global batch, this rank's rows of it (ranks keep one generator state)
                everyone, start = gather_with_grad(torch.tensor(idx, device=x.device), with_offset=True)
                rows = slice(start, start + len(idx))
                q = q + scale * torch.randn((len(everyone), *q.shape[1:]), generator=gen)[rows].to(q.device)
                k = k + scale * torch.randn((len(everyone), *k.shape[1:]), generator=gen)[rows].to(k.device)
            return moco.loss(q, k)

        opt = torch.optim.SGD(net.parameters(), lr=c.lr, momentum=0.9, weight_decay=c.weight_decay)
        hist = train_loop(moco, step, len(x), opt, c.epochs, c.batch_size, ctx=ctx, seed=ctx.seed, max_steps=c.max_steps,
                          checkpoint_every=c.checkpoint_every, tag="m2s_shot", generators=[gen], on_epoch_end=reselect,
                          extra_state=moco.pending)  # fmt: skip
        moco.after_step()
        net = moco.encoder.cpu().eval()
        losses = hist["epoch_loss"]
        metrics = {"shots": len(x), "first_loss": losses[0] if losses else None, "final_loss": losses[-1] if losses else None}
        model = TrainedModel.from_modules(c.model_name, {"shot": (module_part(self.name, spec), net)}, task=self.name,
                                          input_dims={c.modality: list(feats[0].shape[1:])}, metrics=metrics,
                                          meta={"modality": c.modality, "dim": c.dim})  # fmt: skip
        files = ctx.put_model(model)
        return TaskResult(metrics=metrics, files=files)

    @classmethod
    def example_config(cls, tmp_path: Any) -> dict[str, Any]:
        return {"modality": "visual", "epochs": 1, "queue": 64}


def shot_network(ctx: Any, name: str) -> tuple[Any, str]:
    """The trained ``E_shot`` of model ``name`` and the modality it reads."""
    model = ctx.model(name)
    return load_network(model, "shot"), model.record.meta.get("modality", "keyframes")
