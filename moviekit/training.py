"""Training helpers shared by tasks: multi-label fitting with checkpoints, prediction, embedding.

A task builds its own modules (``encoder.build(dims)``, ``head.build(...)``) and hands
them to :func:`fit_multilabel`, which trains with BCE (per-class positive weights),
optionally keeps the epoch with the best validation AUPRC, and checkpoints every few
epochs so that a killed run resumes mid-training.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
from pydantic import Field

from .components import Config
from .records import Item
from .tensors import multi_hot, pad_features


class TrainConfig(Config):
    """Config fields of a supervised multi-label training run (tasks extend it)."""

    epochs: int = Field(30, ge=1)
    lr: float = Field(1e-3, gt=0, description="learning rate")
    batch_size: int = Field(32, ge=1)
    weight_decay: float = Field(0.0, ge=0)
    amsgrad: bool = Field(False, description="Adam with the AMSGrad variant")
    threshold: float = Field(0.5, gt=0, lt=1, description="sigmoid threshold for predicted labels")
    pos_weight: bool = Field(True, description="weight each class's positives by negatives/positives in the train split")
    max_clips: int | None = Field(None, ge=1, description="cap on clips per video")
    select_on_val: bool = Field(True, description="keep the epoch with the best validation AUPRC (macro) when a val split exists")
    checkpoint_every: int = Field(10, ge=1, description="epochs between mid-task checkpoints (a killed run resumes from the last)")


def batches(items: list[Item], batch_size: int, generator: Any | None = None) -> list[list[Item]]:
    """Items in batches, shuffled with ``generator`` when given."""
    import torch

    order = torch.randperm(len(items), generator=generator).tolist() if generator is not None else list(range(len(items)))
    return [[items[i] for i in order[s : s + batch_size]] for s in range(0, len(order), batch_size)]


def to_device(feats: dict[str, Any], mask: Any, device: Any) -> tuple[dict[str, Any], Any]:
    return {k: v.to(device) for k, v in feats.items()}, mask.to(device)


def pos_weights(y: np.ndarray) -> np.ndarray:
    """Negatives/positives per class (1 for a class with no positive)."""
    pos = y.sum(0)
    return np.where(pos > 0, (len(y) - pos) / np.maximum(pos, 1), 1.0).astype(np.float32)


def predict_scores(encoder: Any, head: Any, items: list[Item], ctx: Any, batch_size: int = 64, max_clips: int | None = None) -> np.ndarray:
    """Sigmoid scores of ``head(encoder(x))`` for ``items``, in order."""
    import torch

    return torch.sigmoid(torch.from_numpy(run_batched(lambda f, m: head(encoder(f, m)), [encoder, head], items, ctx, batch_size, max_clips))).numpy()


def embed_items(encoder: Any, items: list[Item], ctx: Any, batch_size: int = 64, max_clips: int | None = None) -> np.ndarray:
    """``encoder(x)`` for ``items``, in order, as float32 rows."""
    return run_batched(encoder, [encoder], items, ctx, batch_size, max_clips)


def run_batched(fn: Any, modules: list[Any], items: list[Item], ctx: Any, batch_size: int = 64, max_clips: int | None = None) -> np.ndarray:
    """``fn(features, mask)`` over ``items`` in eval mode without gradients, concatenated."""
    import torch

    for m in modules:
        m.eval()
    out = []
    with torch.no_grad():
        for batch in batches(items, batch_size):
            feats, mask = to_device(*pad_features(batch, max_clips=max_clips), ctx.device)
            with ctx.autocast():
                out.append(fn(feats, mask).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def feature_dims(items: list[Item]) -> dict[str, tuple[int, ...]]:
    from .errors import MoviekitError

    if not items or items[0].features is None:
        raise MoviekitError("items have no features: add experts (or use a features_dir dataset)")
    return {m: tuple(a.shape[1:]) for m, a in items[0].features.arrays.items()}


def fit_multilabel(ctx: Any, encoder: Any, head: Any, train: list[Item], val: list[Item], cfg: TrainConfig, tag: str = "fit") -> dict[str, Any]:
    """Train ``head(encoder(x))`` on ``train`` with BCE; returns the history.

    With ``cfg.select_on_val`` and a non-empty ``val``, the modules end with the
    weights of the epoch of best validation AUPRC (macro).  Checkpoints go to
    ``ctx.checkpoint_path(tag)`` every ``cfg.checkpoint_every`` epochs.
    """
    import torch

    from .metrics import multilabel_metrics

    params = list(encoder.parameters()) + list(head.parameters())
    opt = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay, amsgrad=cfg.amsgrad)
    y_train = multi_hot([it.video.labels for it in train], ctx.vocabulary)
    pw = torch.from_numpy(pos_weights(y_train)).to(ctx.device) if cfg.pos_weight else None
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=pw)
    scaler = ctx.grad_scaler()
    gen = torch.Generator().manual_seed(ctx.seed)
    y_val = multi_hot([it.video.labels for it in val], ctx.vocabulary) if val else None
    use_val = bool(cfg.select_on_val and val and y_val.sum() > 0)
    history: dict[str, Any] = {"train_loss": [], "val_auprc_macro": [], "best_epoch": None}
    best: tuple[float, Any] | None = None
    start = 0
    ckpt = ctx.checkpoint_path(tag)
    if ckpt.exists():
        state = torch.load(ckpt, map_location="cpu", weights_only=False)  # load_state_dict moves tensors; the RNG state must stay on the CPU
        encoder.load_state_dict(state["encoder"])
        head.load_state_dict(state["head"])
        opt.load_state_dict(state["opt"])
        gen.set_state(state["gen"])
        history, best, start = state["history"], state["best"], state["epoch"]
        ctx.log(f"{tag}: resumed from the checkpoint at epoch {start}")
    for epoch in range(start, cfg.epochs):
        encoder.train()
        head.train()
        total = 0.0
        for batch in batches(train, cfg.batch_size, gen):
            feats, mask = to_device(*pad_features(batch, max_clips=cfg.max_clips), ctx.device)
            y = torch.from_numpy(multi_hot([it.video.labels for it in batch], ctx.vocabulary)).to(ctx.device)
            with ctx.autocast():
                loss = loss_fn(head(encoder(feats, mask)).float(), y)
            opt.zero_grad()
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            total += float(loss.detach()) * len(batch)
        history["train_loss"].append(total / len(train))
        if use_val:
            scores = predict_scores(encoder, head, val, ctx, cfg.batch_size, cfg.max_clips)
            ap = multilabel_metrics(y_val, scores, cfg.threshold)["auprc_macro"]
            history["val_auprc_macro"].append(ap)
            if best is None or ap > best[0]:
                best = (ap, {"encoder": copy.deepcopy(encoder.state_dict()), "head": copy.deepcopy(head.state_dict())})
                history["best_epoch"] = epoch + 1
        if (epoch + 1) % cfg.checkpoint_every == 0 and epoch + 1 < cfg.epochs:
            state = {"encoder": encoder.state_dict(), "head": head.state_dict(), "opt": opt.state_dict(), "gen": gen.get_state(), "history": history, "best": best, "epoch": epoch + 1}
            tmp = ckpt.with_suffix(".tmp")
            torch.save(state, tmp)
            tmp.replace(ckpt)
    if best is not None:
        encoder.load_state_dict(best[1]["encoder"])
        head.load_state_dict(best[1]["head"])
    ckpt.unlink(missing_ok=True)
    return history


def classification_report(y_true: np.ndarray, scores: np.ndarray, vocabulary: list[str], threshold: float, seed: int = 0) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Global metrics with a ``random_baseline`` entry, and per-class rows with ``random_auprc``.

    The random baseline is the expectation for uniform random scores on the same targets
    (:func:`~moviekit.metrics.random_baseline`): exact for AUPRC, averaged over seeded draws for
    the thresholded metrics.
    """
    from .metrics import expected_random_ap, multilabel_metrics, per_class_metrics, random_baseline

    metrics = multilabel_metrics(y_true, scores, threshold)
    metrics["random_baseline"] = random_baseline(y_true, threshold, seed)
    rows = per_class_metrics(y_true, scores, vocabulary, threshold)
    for row in rows:
        row["random_auprc"] = expected_random_ap(len(y_true), row["support"])
    return metrics, rows
