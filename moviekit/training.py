"""Training helpers shared by tasks: multi-label fitting with checkpoints, prediction, embedding.

A task builds its own modules (``encoder.build(dims)``, ``head.build(...)``) and hands
them to :func:`fit_multilabel`, which trains with BCE (per-class positive weights),
optionally keeps the epoch with the best validation AUPRC, and checkpoints every few
epochs so that a killed run resumes mid-training.  It runs on :func:`train_loop`, the one
epoch loop (mixed precision, gradient clipping, schedulers, checkpoints and resume) that
tasks with their own models and losses use too.
"""

from __future__ import annotations

import copy
import io
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

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

    return torch.sigmoid(
        torch.from_numpy(run_batched(lambda f, m: head(encoder(f, m)), [encoder, head], items, ctx, batch_size, max_clips))
    ).numpy()


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


def fit_multilabel(
    ctx: Any, encoder: Any, head: Any, train: list[Item], val: list[Item], cfg: TrainConfig, tag: str = "fit"
) -> dict[str, Any]:
    """Train ``head(encoder(x))`` on ``train`` with BCE; returns the history.

    With ``cfg.select_on_val`` and a non-empty ``val``, the modules end with the
    weights of the epoch of best validation AUPRC (macro).  Checkpoints go to
    ``ctx.checkpoint_path(tag)`` every ``cfg.checkpoint_every`` epochs.
    """
    import torch

    from .metrics import multilabel_metrics

    model = torch.nn.ModuleDict({"encoder": encoder, "head": head})
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, amsgrad=cfg.amsgrad)
    y_train = multi_hot([it.video.labels for it in train], ctx.vocabulary)
    pw = torch.from_numpy(pos_weights(y_train)).to(ctx.device) if cfg.pos_weight else None
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=pw)
    y_val = multi_hot([it.video.labels for it in val], ctx.vocabulary) if val else None
    use_val = bool(cfg.select_on_val and val and y_val.sum() > 0)
    kept: dict[str, Any] = {"val_auprc_macro": [], "best_epoch": None, "best_ap": None, "best_state": None}

    def step(idx: list[int]) -> Any:
        batch = [train[i] for i in idx]
        feats, mask = to_device(*pad_features(batch, max_clips=cfg.max_clips), ctx.device)
        y = torch.from_numpy(multi_hot([it.video.labels for it in batch], ctx.vocabulary)).to(ctx.device)
        return loss_fn(head(encoder(feats, mask)).float(), y)

    def select(epoch: int, _history: dict[str, Any]) -> None:
        scores = predict_scores(encoder, head, val, ctx, cfg.batch_size, cfg.max_clips)
        ap = multilabel_metrics(y_val, scores, cfg.threshold)["auprc_macro"]
        kept["val_auprc_macro"].append(ap)
        if kept["best_ap"] is None or ap > kept["best_ap"]:
            kept.update(best_ap=ap, best_epoch=epoch, best_state=copy.deepcopy(model.state_dict()))

    loop = train_loop(
        model, step, len(train), opt, cfg.epochs, cfg.batch_size, ctx, seed=ctx.seed,
        checkpoint_every=cfg.checkpoint_every, tag=tag, on_epoch_end=select if use_val else None, extra_state=kept,
    )  # fmt: skip
    if kept["best_state"] is not None:
        model.load_state_dict(kept["best_state"])
    return {"train_loss": loop["epoch_loss"], "val_auprc_macro": kept["val_auprc_macro"], "best_epoch": kept["best_epoch"]}


def classification_report(
    y_true: np.ndarray, scores: np.ndarray, vocabulary: list[str], threshold: float, seed: int = 0
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
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


def warmup_cosine(optimizer: Any, warmup: int, total: int, peak_in_warmup: bool = False) -> Any:
    """The one warm-up + cosine learning-rate schedule: a ``LambdaLR`` over ``total`` steps
    (epochs or iterations, as the caller steps it) of :func:`warmup_cosine_factor`."""
    import torch

    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: warmup_cosine_factor(step, warmup, total, peak_in_warmup))


def warmup_cosine_factor(step: int, warmup: int, total: int, peak_in_warmup: bool = False) -> float:
    """The learning-rate factor at ``step``: a linear warm-up over the first ``warmup`` steps, then
    cosine annealing from 1 to 0 over the remaining ``total - warmup`` (0 from then on).

    The warm-up climbs ``(step + 1) / (warmup + 1)``, so the first annealing step is the first
    at the full rate (MMX-Trailer-20's fine-tuning), or with ``peak_in_warmup``
    ``(step + 1) / warmup``, reaching it on the last warm-up step (MovieCLIP's heads).
    """
    if warmup > 0 and step < warmup:
        return (step + 1) / (warmup if peak_in_warmup else warmup + 1)
    span = max(total - warmup, 1)
    return 0.5 * (1.0 + math.cos(math.pi * (min(step - warmup, span) / span)))


def evaluation_split(ctx: Any, fallback: str | None = "val") -> tuple[str, list[Item]]:
    """The split a task evaluates on, by the one rule: the test items; without any, the
    ``fallback`` split's (val), named so that the task says so (``evaluated_split`` in its
    metrics); never the training split.  Raises a clear error when neither has items."""
    from .errors import MoviekitError

    test = ctx.split("test")
    if test:
        return "test", test
    if fallback and fallback != "train":
        items = ctx.split(fallback)
        if items:
            return fallback, items
    counts = {}
    for it in ctx.items:
        counts[it.video.split or "(none)"] = counts.get(it.video.split or "(none)", 0) + 1
    have = ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "no items"
    wanted = f"test or {fallback}" if fallback and fallback != "train" else "test"
    raise MoviekitError(
        f"no {wanted} items to evaluate on (the items are: {have}); a task never evaluates on its training split: give the dataset a test split"
    )


def selection_split(ctx: Any, evaluated: str) -> list[Item]:
    """Validation items for model selection: none when val is also the evaluated split."""
    return [] if evaluated == "val" else ctx.split("val")


def clip_gradients(params: list[Any], max_norm: float | None) -> None:
    import torch

    if max_norm:
        torch.nn.utils.clip_grad_norm_(params, max_norm)


def epoch_done(tag: str, epoch: int, history: dict[str, Any]) -> None:
    """Called after every finished (and, when due, checkpointed) epoch; a no-op seam for tests that simulate a kill."""


def _rng_state() -> dict[str, Any]:
    import torch

    state = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    import torch

    torch.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _plain(v: Any, where: str) -> Any:
    """``v`` with numpy scalars as Python numbers and numpy arrays as tensors, so that
    ``torch.load(weights_only=True)`` reads it; anything else that is not plain data is refused."""
    import torch

    if isinstance(v, np.generic):  # before float: np.float64 is a float
        return v.item()
    if v is None or isinstance(v, (bool, int, float, str, torch.Tensor, torch.Size, torch.dtype, torch.device)):
        return v
    if isinstance(v, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(v).copy())
    if isinstance(v, dict):
        return {k: _plain(x, f"{where}[{k!r}]") for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return type(v)(_plain(x, f"{where}[{i}]") for i, x in enumerate(v))
    raise TypeError(f"checkpoint {where}: cannot save a {type(v).__name__} (tensors, numbers, strings, lists and dicts only)")


def save_checkpoint(state: dict[str, Any], path: Any) -> None:
    """Write a training checkpoint of tensors and plain data, atomically under a unique temporary name.

    The state is serialised in memory first, so a failed write (a full disk) removes its
    temporary file and says how many bytes were needed (:class:`~moviekit.errors.DiskWriteError`).
    """
    import torch

    from .store import atomic_write_bytes

    buf = io.BytesIO()
    torch.save(_plain(state, "state"), buf)
    atomic_write_bytes(Path(path), buf.getvalue())


def load_checkpoint(path: Any, log: Callable[[str], None] = print) -> dict[str, Any] | None:
    """A checkpoint written by :func:`save_checkpoint`, loaded with ``weights_only=True`` (tensors and
    plain data only: a planted pickle never runs), or None when there is none.

    A checkpoint that cannot be loaded that way (corrupt, an older pickled format, planted
    code) is deleted and logged with its path, and training starts from the beginning.
    """
    import torch

    path = Path(path)
    try:
        with path.open("rb") as f:
            data = f.read()
    except FileNotFoundError:  # none, or another run sharing this cache just finished and removed it
        return None
    try:
        # on the CPU: generator states must stay CPU ByteTensors; load_state_dict moves the tensors to the model's device
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        if not isinstance(state, dict) or not {"model", "optimizer", "epoch", "history"} <= set(state):
            raise ValueError("not a moviekit training checkpoint")
    except Exception as e:  # noqa: BLE001 - unreadable: never fatal, never executed
        reason = str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__
        log(f"ignoring the unreadable checkpoint {path} ({type(e).__name__}: {reason}); training from the start")
        path.unlink(missing_ok=True)
        return None
    return state


def train_loop(
    model: Any,
    step_fn: Callable[[list[int]], Any],
    n: int,
    optimizer: Any,
    epochs: int,
    batch_size: int,
    ctx: Any = None,
    seed: int = 0,
    scheduler: Any = None,
    scheduler_per: Literal["epoch", "iter"] = "epoch",
    clip_grad: float | None = None,
    max_steps: int | None = None,
    checkpoint_every: int = 10,
    tag: str = "train",
    generators: Sequence[Any] = (),
    on_epoch_end: Callable[[int, dict[str, Any]], None] | None = None,
    extra_state: dict[str, Any] | None = None,
    min_batch: int = 1,
) -> dict[str, Any]:
    """Minibatch training: ``step_fn(indices)`` returns the loss of those samples, or None to
    skip that batch (no optimiser step; e.g. a contrastive loss needs at least two samples).

    Samples are shuffled with a generator seeded by ``seed`` every epoch.  With a task
    context ``ctx``, the forward runs under ``ctx.autocast()``, the backward through
    ``ctx.grad_scaler()``, and checkpoints go to ``ctx.checkpoint_path(tag)`` every
    ``checkpoint_every`` epochs (resumed on the next call, deleted at the end);
    ``generators`` and the ``extra_state`` dict (e.g. a kept best model) are saved and
    restored with it.  ``on_epoch_end(epoch, history)`` runs after each epoch (and after a
    per-epoch scheduler step), before its checkpoint (e.g. validation).  ``max_steps`` stops
    early (smoke tests).  Returns ``{"step_loss": [...], "epoch_loss": [...], "lr": [...],
    "start_epoch": e}``: ``lr`` is the first parameter group's learning rate at the start of
    each epoch, ``start_epoch`` the epoch training (re)started from.

    A global batch with fewer than ``min_batch`` samples is skipped (no optimiser step; decided
    on the global batch, so every rank agrees).  Under ``torchrun`` (:mod:`moviekit.distributed`)
    every rank takes its share of each global batch, the loss (a mean over the samples given)
    is weighted by that share and the gradients are summed over ranks, so the run follows the
    one-process run with the same ``batch_size``; only rank 0 writes checkpoints, and a
    checkpoint resumes under any number of ranks.
    """
    import contextlib

    import torch

    from . import distributed

    if n == 0:
        from .errors import MoviekitError

        raise MoviekitError("no training samples")
    gen = torch.Generator().manual_seed(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    scaler = ctx.grad_scaler() if ctx is not None else torch.amp.GradScaler("cuda", enabled=False)
    history: dict[str, Any] = {"step_loss": [], "epoch_loss": [], "lr": []}
    start, steps = 0, 0
    ckpt = ctx.checkpoint_path(tag) if ctx is not None else None
    state = load_checkpoint(ckpt, ctx.log) if ckpt is not None else None
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None and state["scheduler"] is not None:
            scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        gen.set_state(state["gen"])
        for g, s in zip(generators, state["generators"]):
            g.set_state(s)
        _set_rng_state(state["rng"])
        if extra_state is not None:
            extra_state.update(state["extra"] or {})  # a checkpoint saved without one has None
        history, start, steps = state["history"], state["epoch"], state["steps"]
        ctx.log(f"{tag}: resumed from the checkpoint at epoch {start}")
    distributed.broadcast_module(model)  # replicas start identical (a no-op in one process)
    history["start_epoch"] = start
    for epoch in range(start, epochs):
        if max_steps is not None and steps >= max_steps:
            break
        model.train()
        history.setdefault("lr", []).append(optimizer.param_groups[0]["lr"])
        order = torch.randperm(n, generator=gen).tolist()
        total, count = 0.0, 0
        for s in range(0, n, batch_size):
            idx = order[s : s + batch_size]
            if len(idx) < min_batch:
                continue
            local, weight, whole = distributed.shard(idx)
            with ctx.autocast() if ctx is not None else contextlib.nullcontext(), distributed.replicated(whole):
                loss = step_fn(local)
            if loss is None:
                continue
            if weight != 1.0:
                loss = loss * weight
            optimizer.zero_grad()
            scaler.scale(loss).backward()
            distributed.sum_gradients(params)
            scaler.unscale_(optimizer)
            clip_gradients(params, clip_grad)
            scaler.step(optimizer)
            scaler.update()
            if scheduler is not None and scheduler_per == "iter":
                scheduler.step()
            value = distributed.sum_value(float(loss.detach()))
            history["step_loss"].append(value)
            total += value * len(idx)
            count += len(idx)
            steps += 1
            if max_steps is not None and steps >= max_steps:
                break
        history["epoch_loss"].append(total / max(count, 1))
        if scheduler is not None and scheduler_per == "epoch":
            scheduler.step()
        if on_epoch_end is not None:
            on_epoch_end(epoch + 1, history)
        if ckpt is not None and (epoch + 1) % checkpoint_every == 0 and epoch + 1 < epochs and distributed.is_main():
            state = {
                "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict() if scheduler is not None else None, "scaler": scaler.state_dict(),
                "gen": gen.get_state(), "generators": [g.get_state() for g in generators], "rng": _rng_state(),
                "history": history, "epoch": epoch + 1, "steps": steps, "extra": extra_state,
            }  # fmt: skip
            save_checkpoint(state, ckpt)
        distributed.barrier()  # ranks leave an epoch together (the checkpoint is written)
        epoch_done(tag, epoch + 1, history)
    if ckpt is not None and distributed.is_main():
        ckpt.unlink(missing_ok=True)
    return history
