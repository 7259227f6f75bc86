"""Generic components: a classical colour expert, a mean-pooling encoder, an MLP
head, and tasks to export features and train/evaluate a multi-label classifier."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from pydantic import Field

from moviekit import hookimpl
from moviekit.components import Config, Encoder, Expert, FrameNeed, Head, Needs, Task, TaskResult
from moviekit.errors import MoviekitError
from moviekit.metrics import multilabel_metrics, per_class_metrics, random_baseline
from moviekit.records import FrameBatch
from moviekit.tensors import multi_hot, pad_features


class ColorHistogram(Expert):
    """Classical per-frame HSV colour histogram (no weights needed); averaged per clip."""

    name = "color_histogram"

    class Config(Config):
        bins: tuple[int, int, int] = Field((8, 4, 4), description="hue, saturation, value bins")
        fps: float = Field(2.0, gt=0, description="frames per second sampled")
        size: tuple[int, int] = Field((64, 64), description="frame size (width, height) before the histogram")

    def needs(self) -> Needs:
        return Needs(frames=FrameNeed(fps=self.config.fps, size=self.config.size))

    def feature_shape(self) -> tuple[int, ...]:
        h, s, v = self.config.bins
        return (h * s * v,)

    def encode_frames(self, batch: FrameBatch) -> np.ndarray:
        import cv2

        h, s, v = self.config.bins
        out = np.empty((len(batch), h * s * v), dtype=np.float32)
        for i, rgb in enumerate(batch.frames):
            hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
            hist = cv2.calcHist([hsv], [0, 1, 2], None, [h, s, v], [0, 180, 0, 256, 0, 256]).reshape(-1)
            out[i] = hist / max(hist.sum(), 1.0)
        return out


def _mlp(dims: list[int], dropout: float = 0.0, final_activation: bool = False) -> Any:
    from torch import nn

    layers: list[Any] = []
    for i in range(len(dims) - 1):
        layers.append(nn.Linear(dims[i], dims[i + 1]))
        if i < len(dims) - 2 or final_activation:
            layers.append(nn.ReLU())
            if dropout:
                layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


class MeanPoolEncoder(Encoder):
    """Concatenates the modalities of each clip, averages over a video's clips, and projects."""

    name = "mean_pool"

    class Config(Config):
        dim: int = Field(256, ge=1, description="output embedding size")
        hidden: int = Field(512, ge=1, description="hidden layer size")
        dropout: float = Field(0.1, ge=0, lt=1)

    def output_dim(self) -> int:
        return self.config.dim

    def build(self, dims: dict[str, tuple[int, ...]]) -> Any:
        import torch
        from torch import nn

        total = sum(int(np.prod(d)) for d in dims.values())
        mlp = _mlp([total, self.config.hidden, self.config.dim], self.config.dropout)
        order = sorted(dims)

        class Module(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.mlp = mlp

            def forward(self, features: dict[str, torch.Tensor], mask: torch.Tensor) -> torch.Tensor:
                x = torch.cat([features[m].flatten(2) for m in order], dim=-1)
                w = mask.unsqueeze(-1).to(x.dtype)
                pooled = (x * w).sum(1) / w.sum(1).clamp_min(1.0)
                return self.mlp(pooled)

        return Module()


class MLPHead(Head):
    """A multi-layer perceptron head: in_dim -> hidden... -> out_dim."""

    name = "mlp"

    class Config(Config):
        hidden: list[int] = Field(default_factory=lambda: [512], description="hidden layer sizes")
        dropout: float = Field(0.0, ge=0, lt=1)

    def build(self, in_dim: int, out_dim: int) -> Any:
        return _mlp([in_dim, *self.config.hidden, out_dim], self.config.dropout)


class ExportFeatures(Task):
    """Writes every item's per-clip features to `features.npz` and clips to `items.json`."""

    name = "export_features"

    class Config(Config):
        filename: str = Field("features.npz", description="file in the run directory")

    def run(self, ctx) -> TaskResult:
        arrays: dict[str, np.ndarray] = {}
        index = []
        for it in ctx.items:
            if it.features is not None:
                for m, a in it.features.arrays.items():
                    arrays[f"{it.id}/{m}"] = a
            index.append({"id": it.id, "labels": it.video.labels, "split": it.video.split, "clips": [c.model_dump() for c in it.clips]})
        np.savez_compressed(ctx.out_dir / self.config.filename, **arrays)
        (ctx.out_dir / "items.json").write_text(json.dumps(index, indent=1))
        return TaskResult(metrics={"items": len(index), "arrays": len(arrays)}, files=[self.config.filename, "items.json"])


def _eval_items(ctx, split: str) -> list:
    items = ctx.split(split)
    if not items:
        items = ctx.split("val") if split == "test" else []
    return items


class MultilabelClassification(Task):
    """Trains encoder + head with BCE (per-class positive weights) on the train split and
    reports AUPRC micro/macro/weighted and weighted P/R/F1 on the test split."""

    name = "multilabel_classification"
    requires = frozenset({"encoder", "head"})

    class Config(Config):
        epochs: int = Field(30, ge=1)
        lr: float = Field(1e-3, gt=0)
        batch_size: int = Field(32, ge=1)
        weight_decay: float = Field(0.0, ge=0)
        threshold: float = Field(0.5, gt=0, lt=1, description="sigmoid threshold for predicted labels")
        pos_weight: bool = Field(True, description="weight positives by negatives/positives per class")
        max_clips: int | None = Field(None, description="cap on clips per video")

    def run(self, ctx) -> TaskResult:
        import torch

        cfg = self.config
        train, test = ctx.split("train"), _eval_items(ctx, "test")
        if not train or not test:
            raise MoviekitError(f"needs train and test (or val) items; got {len(train)} train, {len(test)} test")
        if train[0].features is None:
            raise MoviekitError("items have no features: add experts (or use a features_dir dataset)")
        dims = {m: a.shape[1:] for m, a in train[0].features.arrays.items()}
        encoder = ctx.encoder.build(dims).to(ctx.device)
        head = ctx.head.build(ctx.encoder.output_dim(), len(ctx.vocabulary)).to(ctx.device)
        params = list(encoder.parameters()) + list(head.parameters())
        opt = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        y_train = multi_hot([it.video.labels for it in train], ctx.vocabulary)
        pos = y_train.sum(0)
        pw = torch.tensor(np.where(pos > 0, (len(y_train) - pos) / np.maximum(pos, 1), 1.0), dtype=torch.float32) if cfg.pos_weight else None
        loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=pw.to(ctx.device) if pw is not None else None)
        scaler = ctx.grad_scaler()
        gen = torch.Generator().manual_seed(ctx.seed)
        losses = []
        for _epoch in range(cfg.epochs):
            encoder.train()
            head.train()
            order = torch.randperm(len(train), generator=gen).tolist()
            total = 0.0
            for s in range(0, len(order), cfg.batch_size):
                batch = [train[i] for i in order[s : s + cfg.batch_size]]
                feats, mask = pad_features(batch, max_clips=cfg.max_clips)
                feats = {k: v.to(ctx.device) for k, v in feats.items()}
                y = torch.from_numpy(multi_hot([it.video.labels for it in batch], ctx.vocabulary)).to(ctx.device)
                with ctx.autocast():
                    loss = loss_fn(head(encoder(feats, mask.to(ctx.device))).float(), y)
                opt.zero_grad()
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
                total += float(loss.detach()) * len(batch)
            losses.append(total / len(train))
        scores = predict_scores(encoder, head, test, ctx, cfg.batch_size, cfg.max_clips)
        y_test = multi_hot([it.video.labels for it in test], ctx.vocabulary)
        metrics = multilabel_metrics(y_test, scores, cfg.threshold)
        metrics["random_baseline"] = random_baseline(y_test, cfg.threshold, ctx.seed)
        metrics["train_loss"] = losses
        ctx.shared["encoder_state"] = {k: v.cpu() for k, v in encoder.state_dict().items()}
        ctx.shared["head_state"] = {k: v.cpu() for k, v in head.state_dict().items()}
        (ctx.out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
        rows = per_class_metrics(y_test, scores, ctx.vocabulary, cfg.threshold)
        (ctx.out_dir / "per_class.json").write_text(json.dumps(rows, indent=1))
        summary = {k: v for k, v in metrics.items() if k.startswith(("auprc", "f1"))}
        summary["random_auprc_macro"] = metrics["random_baseline"]["auprc_macro"]
        return TaskResult(metrics=summary, files=["metrics.json", "per_class.json"])


def predict_scores(encoder: Any, head: Any, items: list, ctx, batch_size: int = 64, max_clips: int | None = None) -> np.ndarray:
    """Sigmoid scores of ``head(encoder(x))`` for items, in order."""
    import torch

    encoder.eval()
    head.eval()
    out = []
    with torch.no_grad():
        for s in range(0, len(items), batch_size):
            feats, mask = pad_features(items[s : s + batch_size], max_clips=max_clips)
            feats = {k: v.to(ctx.device) for k, v in feats.items()}
            with ctx.autocast():
                out.append(torch.sigmoid(head(encoder(feats, mask.to(ctx.device))).float()).cpu().numpy())
    return np.concatenate(out)


@hookimpl
def register_components(register):
    for cls in (ColorHistogram, MeanPoolEncoder, MLPHead, ExportFeatures, MultilabelClassification):
        register(cls)
