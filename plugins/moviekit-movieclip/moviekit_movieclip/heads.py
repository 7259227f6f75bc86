"""Downstream heads of the MovieCLIP paper (supplementary Sec. 4.3), and the schedule and report helpers the plugin's tasks share.

* ``M_scene``: multi-label visual scene recognition on HVU web videos (248 HVU scene classes).
* ``M_trailer``: multi-label genre classification of Moviescope trailers (13 genres).

Both are three fully connected layers on 1024-d features (the paper feeds them
features of its best MovieCLIP-trained Swin-B), trained with AdamW (lr 1e-4),
step decay (gamma 0.85) after epochs 5 and 50, batch 256.  The hidden widths of
the paper's Fig. 10 are not given in its text, so they are a config field
(default 512 and 256).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from moviekit import (
    Config,
    Head,
    ModelPart,
    MoviekitError,
    Task,
    TaskResult,
    TrainedModel,
    classification_report,
    mlp,
    multi_hot,
    pos_weights,
    train_loop,
    write_csv,
)

#: Input width of M_scene and M_trailer (features of the MovieCLIP-trained Swin-B).
FEATURE_DIM = 1024
#: Output sizes: HVU scene classes (M_scene) and Moviescope genres (M_trailer).
PRESET_OUTPUTS = {"scene": 248, "trailer": 13}
#: The paper's optimiser and scheduler settings for both heads.
DOWNSTREAM_SETTINGS = {"batch_size": 256, "lr": 1e-4, "gamma": 0.85, "milestones": (5, 50)}


# -- schedules and reports ----------------------------------------------------------------------


def write_report(out_dir: Path, prefix: str, metrics: dict[str, Any], rows: list[dict[str, Any]]) -> list[str]:
    """``<prefix>_metrics.json`` and ``<prefix>_per_class.csv`` in ``out_dir``; returns the file names."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    mname, cname = f"{prefix}_metrics.json", f"{prefix}_per_class.csv"
    (out_dir / mname).write_text(json.dumps(metrics, indent=2, default=float))
    write_csv(out_dir / cname, rows)
    return [mname, cname]


# -- the heads --------------------------------------------------------------------------------


def fc3(in_dim: int, out_dim: int, hidden: tuple[int, int] | list[int] = (512, 256), dropout: float = 0.0) -> Any:
    """Three fully connected layers ``in_dim -> hidden[0] -> hidden[1] -> out_dim`` with ReLU between them."""
    if len(hidden) != 2:
        raise MoviekitError(f"three FC layers need exactly two hidden widths, got hidden={list(hidden)}")
    return mlp([in_dim, *hidden, out_dim], dropout=dropout)


def downstream_optimizer(
    module: Any, lr: float = 1e-4, weight_decay: float = 0.01, gamma: float = 0.85, milestones: tuple[int, ...] = (5, 50)
) -> tuple[Any, Any]:
    """The paper's AdamW with step decay (gamma 0.85) after epochs 5 and 50 (a per-epoch ``MultiStepLR``).

    The paper does not give AdamW's weight decay; ``weight_decay`` keeps PyTorch's default (0.01).
    """
    import torch

    opt = torch.optim.AdamW(module.parameters(), lr=lr, weight_decay=weight_decay)
    return opt, torch.optim.lr_scheduler.MultiStepLR(opt, milestones=list(milestones), gamma=gamma)


class MovieclipFC(Head):
    """MovieCLIP downstream head (M_scene / M_trailer): three fully connected layers on 1024-d features.

    ``preset`` names the paper's use: ``scene`` (M_scene, multi-label scene
    recognition on HVU, 248 outputs) or ``trailer`` (M_trailer, multi-label genre
    classification on Moviescope, 13 outputs); the output size itself is the
    task's vocabulary size.  ``hidden`` are the two hidden widths.  The paper
    trains both with AdamW (lr 1e-4), MultiStepLR (milestones [5, 50], gamma 0.85)
    and batch 256: see the ``movieclip_downstream`` task.
    """

    name = "movieclip_fc"
    version = "1"

    class Config(Config):
        preset: Literal["scene", "trailer"] = Field(
            "scene", description="scene: M_scene (HVU, 248 scene classes); trailer: M_trailer (Moviescope, 13 genres)"
        )
        hidden: list[int] = Field(
            default_factory=lambda: [512, 256],
            min_length=2,
            max_length=2,
            description="widths of the two hidden layers (not given in the paper's text)",
        )
        dropout: float = Field(0.0, ge=0, lt=1, description="dropout after each hidden layer")

    def build(self, in_dim: int, out_dim: int) -> Any:
        return fc3(in_dim, out_dim, self.config.hidden, self.config.dropout)

    def paper_output_dim(self) -> int:
        return PRESET_OUTPUTS[self.config.preset]


class MovieclipDownstream(Task):
    """Trains a MovieCLIP downstream head (M_scene / M_trailer) on per-video features with the paper's settings; writes `<out>_metrics.json` and `<out>_per_class.csv`.

    A video's input is the mean over its clips of the ``features`` modality (its
    1024-d Swin-B features in the paper); the targets are the videos' labels.
    The head is the recipe's ``head`` when given, else ``movieclip_fc`` with
    ``preset``.  Training: BCE with per-class positive weights, AdamW (lr 1e-4),
    MultiStepLR (milestones [5, 50], gamma 0.85, stepped per epoch), batch 256;
    evaluation on the test split (else the training split, with a note).
    """

    name = "movieclip_downstream"
    version = "1"
    returns = "TaskResult; <out>_metrics.json, <out>_per_class.csv"

    class Config(Config):
        features: str | None = Field(None, description="modality used as input; unset: all modalities concatenated")
        preset: Literal["scene", "trailer"] = Field("scene", description="head preset when the recipe has no head")
        epochs: int = Field(100, ge=1, description="training epochs (not given in the paper; the milestones at 5 and 50 need more than 50)")
        batch_size: int = Field(DOWNSTREAM_SETTINGS["batch_size"], ge=1, description="the paper: 256")
        lr: float = Field(DOWNSTREAM_SETTINGS["lr"], gt=0, description="AdamW learning rate (the paper: 1e-4)")
        weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay (not given in the paper; PyTorch's default)")
        gamma: float = Field(DOWNSTREAM_SETTINGS["gamma"], gt=0, le=1, description="step decay factor (the paper: 0.85)")
        milestones: list[int] = Field(
            default_factory=lambda: list(DOWNSTREAM_SETTINGS["milestones"]),
            description="epochs after which the learning rate decays (the paper: 5 and 50)",
        )
        pos_weight: bool = Field(True, description="per-class positive weights (negatives/positives) in the BCE")
        threshold: float = Field(0.5, gt=0, lt=1, description="sigmoid threshold of the thresholded metrics")
        checkpoint_every: int = Field(10, ge=1, description="epochs between mid-task checkpoints (a killed run resumes from the last one)")
        warn_dim: bool = Field(True, description="note when the input is not 1024-d")
        out: str = Field("downstream", description="prefix of the output files")
        model_name: str | None = Field(
            None, description="name of the trained head handed on (models/<name>.json + .safetensors, `ctx.model(name)`); default `out`"
        )

    def inputs(self, items: list[Any]) -> np.ndarray:
        rows = []
        for it in items:
            if it.features is None:
                raise MoviekitError(f"{self.name}: item {it.id} has no features (add experts)")
            arrays = it.features.arrays
            keys = [self.config.features] if self.config.features else sorted(arrays)
            parts = []
            for k in keys:
                if k not in arrays:
                    raise MoviekitError(f"{self.name}: `features`: item {it.id} has no '{k}' features (has {sorted(arrays)})")
                a = np.asarray(arrays[k], np.float32)
                parts.append(a.reshape(len(a), -1).mean(0) if len(a) else np.zeros(int(np.prod(a.shape[1:])), np.float32))
            rows.append(np.concatenate(parts))
        return np.stack(rows).astype(np.float32)

    def run(self, ctx: Any) -> TaskResult:
        import torch

        cfg = self.config
        train = ctx.split("train") or [it for it in ctx.items if it.video.split != "test"]
        test = ctx.split("test")
        notes = []
        if not test:
            test = train
            notes.append("no test split: evaluated on the training split")
        x_train, x_test = self.inputs(train), self.inputs(test)
        y_train = multi_hot([it.video.labels for it in train], ctx.vocabulary)
        y_test = multi_hot([it.video.labels for it in test], ctx.vocabulary)
        in_dim = x_train.shape[1]
        if cfg.warn_dim and in_dim != FEATURE_DIM:
            notes.append(f"input is {in_dim}-d; the paper's heads take {FEATURE_DIM}-d features")
        head = ctx.head if isinstance(ctx.head, MovieclipFC) else MovieclipFC(preset=cfg.preset)
        torch.manual_seed(ctx.seed)
        model = head.build(in_dim, len(ctx.vocabulary)).to(ctx.device)
        opt, sched = downstream_optimizer(model, cfg.lr, cfg.weight_decay, cfg.gamma, tuple(cfg.milestones))
        pw = torch.from_numpy(pos_weights(y_train)).to(ctx.device) if cfg.pos_weight else None
        loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=pw)
        xt, yt = torch.from_numpy(x_train).to(ctx.device), torch.from_numpy(y_train).to(ctx.device)

        def step(idx: list[int]) -> Any:
            return loss_fn(model(xt[idx]).float(), yt[idx])

        history = train_loop(
            model,
            step,
            len(xt),
            opt,
            cfg.epochs,
            cfg.batch_size,
            ctx,
            ctx.seed,
            sched,
            "epoch",
            checkpoint_every=cfg.checkpoint_every,
            tag=f"{cfg.out}-train",
        )
        model.eval()
        with torch.no_grad():
            with ctx.autocast():
                scores = torch.sigmoid(model(torch.from_numpy(x_test).to(ctx.device)).float()).cpu().numpy()
        metrics, rows = classification_report(y_test, scores, ctx.vocabulary, cfg.threshold, ctx.seed)
        metrics.update(
            {
                "final_train_loss": history["epoch_loss"][-1],
                "epochs": len(history["epoch_loss"]),
                "head": head.config.model_dump(),
                "in_dim": in_dim,
            }
        )
        files = write_report(ctx.out_dir, cfg.out, metrics, rows)
        part = ModelPart(
            kind="head",
            component={"use": head.name, **head.config.model_dump(mode="json")},
            build={"in_dim": in_dim, "out_dim": len(ctx.vocabulary)},
        )
        summary = {k: v for k, v in metrics.items() if not isinstance(v, dict)}
        trained = TrainedModel.from_modules(
            cfg.model_name or cfg.out, {"head": (part, model)}, task=self.name, vocabulary=list(ctx.vocabulary),
            metrics=summary, meta={"features": cfg.features, "threshold": cfg.threshold},
        )  # fmt: skip
        files += ctx.put_model(trained)
        return TaskResult(metrics=summary, files=files, notes=notes)

    @classmethod
    def example_config(cls, tmp_path: Path) -> dict[str, Any]:
        return {"epochs": 3, "batch_size": 8, "warn_dim": False}


COMPONENTS = [MovieclipFC, MovieclipDownstream]
