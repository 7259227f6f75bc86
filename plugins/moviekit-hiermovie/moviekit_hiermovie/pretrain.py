"""The two self-supervised pre-training tasks: the backbone (CVRL contrastive) and the contextualizer (mask prediction)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from moviekit import (
    MoviekitError,
    Task,
    TaskResult,
    TrainedModel,
    build_part,
    train_loop,
)

from .backbone import BackboneConfig, HierBackboneEncoder, load_kinetics_weights
from .contextualizer import ContextConfig, HierContextualizer
from .tokens import FEATURES, event_tokens, movie_items, split_name


class BackbonePretrain(Task):
    """Low-level backbone: CVRL contrastive pre-training on unlabelled short clips (or a random-init /
    local Kinetics-weights backbone for the ablation's baseline and supervised rows), handed on as a model.

    Two clips of one video at a sampled temporal distance, each with one temporally consistent
    augmentation, through the 3D CNN and an MLP projection (2048 hidden -> 128, dropped
    afterwards), InfoNCE at temperature 0.1 (negatives gathered across ranks under DDP).
    """

    name = "hier_backbone_pretrain"

    class Config(BackboneConfig):
        objective: Literal["contrastive", "random", "supervised", "labels"] = Field(
            "contrastive",
            description="contrastive: CVRL training; random: the untrained initialisation (baseline); supervised: local Kinetics weights (`weights`); "
            "labels: cross-entropy on the action clips' `metadata[label_key]` (a supervised stand-in where no Kinetics weights exist)",
        )
        label_key: str = Field("motion", description="metadata key of the action label (objective labels)")
        weights: Path | None = Field(None, description="torchvision Kinetics-400 state dict of `arch` (objective supervised)")
        model_name: str = Field("backbone", description="name of the model handed on (models/<name>.json + .safetensors)")
        videos: Literal["action", "all"] = Field(
            "action",
            description="action: the items marked as short unlabelled clips (hier_kind action), else every non-test item; all: every train/unlabelled item",
        )
        epochs: int = Field(100, ge=1, description="passes over the videos (CVRL: 200-800 epochs of Kinetics-400)")
        batch_size: int = Field(64, ge=2, description="video pairs per step (CVRL: 1024)")
        lr: float = Field(1e-3, gt=0, description="AdamW learning rate, cosine decay (CVRL: LARS 0.32 x batch/256)")
        weight_decay: float = Field(1e-6, ge=0, description="(CVRL: 1e-6)")
        temperature: float = Field(0.1, gt=0, description="InfoNCE temperature (CVRL: 0.1)")
        projection_hidden: int = Field(2048, ge=1, description="hidden width of the MLP projection (CVRL: 2048)")
        projection_dim: int = Field(128, ge=1, description="output of the projection (CVRL: 128)")
        projection_layers: int = Field(3, ge=1, description="linear layers of the projection (CVRL: 3)")
        clip_frames: int = Field(16, ge=1, description="frames per training clip (CVRL: 16)")
        max_distance: int | None = Field(None, ge=0, description="largest start distance of the two clips in frames; None: the whole video")
        min_distance: int = Field(0, ge=0, description="smallest start distance of the two clips in frames (CVRL: 0)")
        crop_scale: tuple[float, float] = Field((0.3, 1.0), description="area range of the random crop (CVRL: 0.3-1)")
        flip: bool = Field(True, description="random horizontal flip (CVRL: yes)")
        jitter: float = Field(0.4, ge=0, description="brightness/contrast/saturation jitter strength, applied with p=0.8 (CVRL)")
        grayscale: float = Field(0.2, ge=0, le=1, description="probability of grayscale (CVRL: 0.2)")
        checkpoint_every: int = Field(5, ge=1, description="epochs between mid-task checkpoints")

    @classmethod
    def example_config(cls, tmp_path: Path) -> dict:
        return {"objective": "random"}  # the contract's items have no frames; tests train it on frames

    def _videos(self, ctx) -> list[np.ndarray]:
        m = self.config.modality
        have = [it for it in ctx.items if it.features is not None and m in it.features.arrays]
        if self.config.videos == "action":
            chosen = [it for it in have if it.video.metadata.get("hier_kind") == "action"]
            chosen = chosen or [it for it in have if split_name(it) in ("train", "none")]
        else:
            chosen = [it for it in have if split_name(it) in ("train", "none")]
        return [it.features.arrays[m].reshape(-1, *it.features.arrays[m].shape[2:]) for it in chosen]

    def run(self, ctx) -> TaskResult:
        import torch

        cfg = self.config
        videos = self._videos(ctx)
        if not videos and ctx.items and cfg.objective == "contrastive":
            raise MoviekitError(f"no item has '{cfg.modality}' frames to pre-train on: add the hier_frames expert")
        shape = [cfg.clip_frames, *(videos[0].shape[1:] if videos else (32, 32, 3))]
        dims = {cfg.modality: shape}
        enc = HierBackboneEncoder(arch=cfg.arch, width=cfg.width, modality=cfg.modality)
        part = enc.part(dims)
        torch.manual_seed(ctx.seed)
        net = build_part(part)
        history: dict = {}
        if cfg.objective == "supervised":
            if cfg.weights is None:
                raise MoviekitError("objective supervised needs `weights`: a local torchvision Kinetics-400 state dict")
            load_kinetics_weights(net.net, cfg.weights)
        elif cfg.objective == "contrastive":
            history = self._train(ctx, net, videos)
        elif cfg.objective == "labels":
            history = self._train_labels(ctx, net)
        model = TrainedModel.from_modules(
            cfg.model_name, {"backbone": (part, net)}, task=self.name, input_dims=dims,
            metrics={"final_loss": history["epoch_loss"][-1]} if history else {},
            meta={"objective": cfg.objective, "videos": len(videos), "epoch_loss": history.get("epoch_loss", [])},
        )  # fmt: skip
        files = ctx.put_model(model)
        return TaskResult(metrics={"objective": cfg.objective, "videos": len(videos), **model.record.metrics}, files=files)

    def _train_labels(self, ctx, net) -> dict:
        """Supervised: every clip of a labelled action video, cross-entropy through a linear classifier (dropped afterwards)."""
        import torch
        import torch.nn.functional as F

        cfg = self.config
        m = cfg.modality
        its = [
            it
            for it in ctx.items
            if it.features is not None
            and m in it.features.arrays
            and it.video.metadata.get(cfg.label_key) is not None
            and split_name(it) in ("train", "none")
        ]
        if not its:
            raise MoviekitError(f"objective labels: no train/unlabelled item with metadata '{cfg.label_key}' and '{m}' frames")
        classes = sorted({it.video.metadata[cfg.label_key] for it in its})
        clips = np.concatenate([it.features.arrays[m][:, : cfg.clip_frames] for it in its])
        y = torch.tensor([classes.index(it.video.metadata[cfg.label_key]) for it in its for _ in range(len(it.features.arrays[m]))])
        model = torch.nn.ModuleDict({"backbone": net, "classifier": torch.nn.Linear(net.out_dim, len(classes))}).to(ctx.device)
        opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)

        def step(idx: list[int]) -> torch.Tensor:
            logits = model["classifier"](model["backbone"].embed(torch.from_numpy(clips[idx]).to(ctx.device)))
            return F.cross_entropy(logits, y[idx].to(ctx.device))

        history = train_loop(
            model,
            step,
            len(clips),
            opt,
            cfg.epochs,
            cfg.batch_size,
            ctx,
            seed=ctx.seed,
            checkpoint_every=cfg.checkpoint_every,
            tag=f"backbone-{cfg.model_name}",
        )
        ctx.log(f"{self.name}: {cfg.model_name} cross-entropy {history['epoch_loss'][0]:.3f} -> {history['epoch_loss'][-1]:.3f}")
        return history

    def _train(self, ctx, net, videos: list[np.ndarray]) -> dict:
        import torch

        from moviekit import mlp

        from .contrastive import consistent_augment, info_nce, sample_pair_starts

        cfg = self.config
        proj = mlp([net.out_dim] + [cfg.projection_hidden] * (cfg.projection_layers - 1) + [cfg.projection_dim])
        model = torch.nn.ModuleDict({"backbone": net, "projection": proj}).to(ctx.device)
        opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        steps = cfg.epochs * ((len(videos) + cfg.batch_size - 1) // cfg.batch_size)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
        gen = torch.Generator().manual_seed(ctx.seed + 1)
        L = cfg.clip_frames

        def view(video: np.ndarray, start: int) -> torch.Tensor:
            clip = video[start : start + L]
            if len(clip) < L:
                clip = np.concatenate([clip, np.repeat(clip[-1:], L - len(clip), 0)])
            x = torch.from_numpy(clip).float().permute(0, 3, 1, 2) / 255.0
            x = consistent_augment(x, gen, cfg.crop_scale, cfg.flip, cfg.jitter, cfg.grayscale)
            return x.permute(0, 2, 3, 1) * 255.0

        def step(idx: list[int]) -> torch.Tensor:
            rng = np.random.default_rng(int(torch.randint(2**31, (1,), generator=gen)))
            a, b = [], []
            for i in idx:
                v = videos[i]
                s1, s2 = sample_pair_starts(len(v), L, cfg.max_distance if cfg.max_distance is not None else len(v), rng, cfg.min_distance)
                a.append(view(v, s1))
                b.append(view(v, s2))
            # both views in one forward pass: batch norm sees 2N clips (and a last batch of one video works)
            z = model["projection"](model["backbone"].embed(torch.stack(a + b).to(ctx.device)))
            return info_nce(z[: len(a)], z[len(a) :], cfg.temperature)

        history = train_loop(
            model, step, len(videos), opt, cfg.epochs, cfg.batch_size, ctx, seed=ctx.seed, scheduler=sched, scheduler_per="iter",
            checkpoint_every=cfg.checkpoint_every, tag=f"backbone-{cfg.model_name}", generators=[gen],
        )  # fmt: skip
        ctx.log(f"{self.name}: {cfg.model_name} InfoNCE {history['epoch_loss'][0]:.3f} -> {history['epoch_loss'][-1]:.3f}")
        return history


class ContextPretrain(Task):
    """High-level contextualizer: a transformer over each clip's event tokens pre-trained by BERT-style
    mask prediction on movie clips (labels unused), one per backbone, handed on as `<prefix><backbone>`."""

    name = "hier_context_pretrain"

    class Config(ContextConfig):
        backbones: list[str] = Field(
            default_factory=lambda: ["backbone"],
            description=f"backbone models whose tokens to contextualize ('{FEATURES}': the items' own per-event features)",
        )
        model_prefix: str = Field("context_", description="the model of backbone B is handed on as <prefix>B")
        splits: list[str] = Field(
            default_factory=lambda: ["train", "none"],
            description="movie clips to pre-train on (none: unlabelled clips); never val/test by default",
        )
        mask_ratio: float = Field(0.15, gt=0, le=1, description="share of tokens predicted (BERT: 0.15)")
        min_masked: int = Field(1, ge=0, description="at least this many masked tokens per sequence (5 events x 0.15 often masks none)")
        replace: tuple[float, float] = Field(
            (0.8, 0.1),
            description="of the masked tokens: share given the mask token, share given a random token (BERT: 0.8, 0.1; the rest unchanged)",
        )
        loss: Literal["regression", "cosine", "contrastive"] = Field(
            "regression",
            description="regression to the detached (layer-normed) input token; cosine; or InfoNCE among the batch's masked tokens",
        )
        temperature: float = Field(0.1, gt=0, description="temperature of the contrastive loss")
        epochs: int = Field(100, ge=1)
        batch_size: int = Field(32, ge=1)
        lr: float = Field(1e-4, gt=0, description="AdamW learning rate (VidSitu: 1e-4)")
        weight_decay: float = Field(0.01, ge=0)
        frames: str = Field("frames", description="modality of the frame stacks")
        tokens: str = Field("tokens", description="modality of per-event features (backbone 'features')")
        checkpoint_every: int = Field(20, ge=1)

    @classmethod
    def example_config(cls, tmp_path: Path) -> dict:
        return {"backbones": ["features"], "tokens": "visual", "width": 16, "ffn": 32, "heads": 2, "layers": 1, "epochs": 1}

    def run(self, ctx) -> TaskResult:
        import torch

        from .masking import bert_mask, masked_loss

        cfg = self.config
        items = movie_items(ctx, cfg.splits)
        if not items:
            raise MoviekitError(f"no movie clips with features in splits {cfg.splits}")
        metrics, files = {}, []
        ccfg = ContextConfig(**{k: getattr(cfg, k) for k in ContextConfig.model_fields})
        for bb in cfg.backbones:
            x_all = torch.from_numpy(event_tokens(ctx, bb, items, cfg.frames, cfg.tokens))
            dims = {"tokens": [int(x_all.shape[-1])]}
            part = HierContextualizer(ccfg).part(dims)
            torch.manual_seed(ctx.seed)
            net = build_part(part).to(ctx.device)
            opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
            gen = torch.Generator().manual_seed(ctx.seed + 2)

            def step(idx: list[int], net=net, x_all=x_all, gen=gen) -> torch.Tensor:
                x = x_all[idx].to(ctx.device)
                valid = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
                plan = bert_mask(valid.cpu(), cfg.mask_ratio, gen, cfg.min_masked, cfg.replace)
                h = net.contextualize(x, valid, plan, gen)
                return masked_loss(net.predict(h), net.target(x), plan["masked"], cfg.loss, cfg.temperature)

            hist = train_loop(
                net,
                step,
                len(x_all),
                opt,
                cfg.epochs,
                cfg.batch_size,
                ctx,
                seed=ctx.seed,
                checkpoint_every=cfg.checkpoint_every,
                tag=f"context-{bb}",
                generators=[gen],
            )
            name = f"{cfg.model_prefix}{bb}"
            model = TrainedModel.from_modules(
                name, {"contextualizer": (part, net)}, task=self.name, input_dims=dims,
                metrics={"final_loss": hist["epoch_loss"][-1]}, meta={"backbone": bb, "loss": cfg.loss, "clips": len(items), "epoch_loss": hist["epoch_loss"]},
            )  # fmt: skip
            files += ctx.put_model(model)
            metrics[f"{name}_loss"] = [round(hist["epoch_loss"][0], 4), round(hist["epoch_loss"][-1], 4)]
            ctx.log(f"{self.name}: {name} {cfg.loss} loss {hist['epoch_loss'][0]:.4f} -> {hist['epoch_loss'][-1]:.4f}")
        return TaskResult(metrics=metrics, files=files)
