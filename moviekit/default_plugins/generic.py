"""Generic components: a classical colour expert, a mean-pooling encoder, an MLP
head, and tasks to export features and train/evaluate a multi-label classifier."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from moviekit.components import Config, Encoder, Expert, FrameNeed, Head, Needs, Task, TaskResult
from moviekit.errors import MoviekitError
from moviekit.hookspecs import hookimpl
from moviekit.models import ModelPart, TrainedModel, build_part, init_from
from moviekit.records import FrameBatch
from moviekit.reporting import write_classification_report
from moviekit.tensors import mlp, multi_hot
from moviekit.training import (
    TrainConfig,
    classification_report,
    evaluation_split,
    feature_dims,
    fit_multilabel,
    predict_scores,
    selection_split,
)


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
        net = mlp([total, self.config.hidden, self.config.dim], dropout=self.config.dropout)
        order = sorted(dims)

        class Module(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.mlp = net

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
        return mlp([in_dim, *self.config.hidden, out_dim], dropout=self.config.dropout)


class ExportFeatures(Task):
    """Writes every item's per-clip features to `features.npz` and clips to `items.json`, and the same
    features as a `features_dir` folder (`features/`) that a later recipe reads back with
    `dataset: {use: features_dir, root: <run>/features}` (add `temporal_reduce: none` to keep
    descriptor sets such as audio frames) instead of decoding the videos again.

    Outputs stay inside the run directory (`filename` and `features_dir` are relative, without
    `..`).  The folder is written under a temporary name and renamed into place; an existing folder
    of that name is replaced only when the run directory's `manifest.json` shows moviekit wrote
    it, so a user's own files are never deleted.  A reused result recreates every file."""

    name = "export_features"

    class Config(Config):
        filename: str = Field("features.npz", description="file in the run directory (relative, no '..')")
        features_dir: str | None = Field(
            "features",
            description="also write the features_dir layout to this folder of the run directory (relative, no '..'); null skips it",
        )

    @classmethod
    def check_recipe(cls, config: Config, recipe: Any) -> list[str]:
        from moviekit.paths import relative_problem

        out = []
        for key in ("filename", "features_dir"):
            value = getattr(config, key)
            problem = relative_problem(value) if value is not None else None
            if problem:
                out.append(f"{key}: {problem}")
        return out

    def run(self, ctx) -> TaskResult:
        files = self._npz(ctx)
        if self.config.features_dir:
            files += self._features_dir(ctx)
        arrays = sum(len(it.features.arrays) for it in ctx.items if it.features is not None)
        return TaskResult(metrics={"items": len(ctx.items), "arrays": arrays}, files=files)

    def _features_dir(self, ctx) -> list[str]:
        from .formats import export_features_dir

        items = [it for it in ctx.items if it.features is not None and it.features.arrays]
        return export_features_dir(ctx.out_dir, self.config.features_dir, items, "export_features.features_dir")

    def _npz(self, ctx) -> list[str]:
        from moviekit import manifest
        from moviekit.paths import output_path
        from moviekit.store import atomic_write_bytes, atomic_write_text

        target = output_path(ctx.out_dir, self.config.filename, "export_features.filename")
        for rel in (self.config.filename, "items.json"):
            if not manifest.owned(ctx.out_dir, rel) and (ctx.out_dir / rel).is_dir():
                raise MoviekitError(f"export_features: {ctx.out_dir / rel} is a folder that moviekit did not write; it is left alone")
        arrays: dict[str, np.ndarray] = {}
        index = []
        for it in ctx.items:
            if it.features is not None:
                for m, a in it.features.arrays.items():
                    arrays[f"{it.id}/{m}"] = a
            index.append({"id": it.id, "labels": it.video.labels, "split": it.video.split, "clips": [c.model_dump() for c in it.clips]})
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(target, buf.getvalue())
        atomic_write_text(ctx.out_dir / "items.json", json.dumps(index, indent=1))
        return [Path(self.config.filename).as_posix(), "items.json"]


class MultilabelClassification(Task):
    """Trains encoder + head with BCE (per-class positive weights) on the train split and
    reports AUPRC micro/macro/weighted and weighted P/R/F1 on the test split (on val, named in
    ``evaluated_split``, when there is no test split). Writes ``metrics.json``, ``per_class.csv``
    and the trained model ``models/<model_name>.json + .safetensors``."""

    name = "multilabel_classification"
    requires = frozenset({"encoder", "head"})

    class Config(TrainConfig):
        select_on_val: bool = Field(False, description="keep the epoch with the best validation AUPRC (macro) when a val split exists")
        init: str | None = Field(
            None,
            description="start from this model's encoder (and head, when it has the same shape and vocabulary): "
            "a model of an earlier task or of the recipe's `models:`",
        )
        model_name: str = Field("multilabel", description="name of the trained model handed on (models/<name>.json + .safetensors)")

    def run(self, ctx) -> TaskResult:
        cfg = self.config
        train = ctx.split("train")
        if not train:
            raise MoviekitError("no train items to train on")
        evaluated, test = evaluation_split(ctx)
        dims = feature_dims(train)
        enc_part = ModelPart(
            kind="encoder",
            component={"use": ctx.encoder.name, **ctx.encoder.config.model_dump(mode="json")},
            build={"dims": {k: list(v) for k, v in dims.items()}},
        )
        head_part = ModelPart(
            kind="head",
            component={"use": ctx.head.name, **ctx.head.config.model_dump(mode="json")},
            build={"in_dim": ctx.encoder.output_dim(), "out_dim": len(ctx.vocabulary)},
        )
        encoder = build_part(enc_part)
        head = build_part(head_part)
        started: list[str] = []
        if cfg.init:
            started = init_from(ctx.model(cfg.init), {"encoder": (enc_part, encoder), "head": (head_part, head)}, vocabulary=ctx.vocabulary)
            ctx.log(f"{self.name}: started from model '{cfg.init}' ({', '.join(started)})")
        encoder, head = encoder.to(ctx.device), head.to(ctx.device)
        history = fit_multilabel(ctx, encoder, head, train, selection_split(ctx, evaluated), cfg, tag="multilabel")
        scores = predict_scores(encoder, head, test, ctx, cfg.batch_size, cfg.max_clips)
        y_test = multi_hot([it.video.labels for it in test], ctx.vocabulary)
        metrics, rows = classification_report(y_test, scores, ctx.vocabulary, cfg.threshold, ctx.seed)
        metrics["train_loss"] = history["train_loss"]
        metrics["evaluated_split"] = evaluated
        report = write_classification_report(ctx.out_dir, metrics, rows)
        summary = {k: v for k, v in metrics.items() if k.startswith(("auprc", "f1"))}
        summary["random_auprc_macro"] = metrics["random_baseline"]["auprc_macro"]
        summary["evaluated_split"] = evaluated
        model = TrainedModel.from_modules(
            cfg.model_name, {"encoder": (enc_part, encoder), "head": (head_part, head)},
            task=self.name, input_dims={k: list(v) for k, v in dims.items()}, vocabulary=list(ctx.vocabulary),
            metrics=summary, meta={"threshold": cfg.threshold, "init": cfg.init, "init_parts": started},
        )  # fmt: skip
        files = ctx.put_model(model)
        return TaskResult(metrics=summary, files=[*report, *files])


@hookimpl
def register_components(register):
    for cls in (ColorHistogram, MeanPoolEncoder, MLPHead, ExportFeatures, MultilabelClassification):
        register(cls)
