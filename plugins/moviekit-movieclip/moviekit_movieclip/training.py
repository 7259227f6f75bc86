"""The plugin's one epoch loop, shared by ``movieclip_scene_classifier``, ``movieclip_shot_scale`` and ``movieclip_downstream``.

:func:`train_loop` trains a model by minibatches of sample indices: a task hands it a
``step_fn(indices)`` that returns the loss of those samples.  It runs the forward pass
under ``ctx.autocast()`` and the backward pass through ``ctx.grad_scaler()`` (mixed
precision on CUDA, plain fp32 on the CPU), clips gradients, steps the scheduler per
epoch or per iteration, and every ``checkpoint_every`` epochs writes a checkpoint to
``ctx.checkpoint_path(tag)``: model, optimiser, scheduler, grad scaler, the shuffling
generator and any extra generators (e.g. a task's augmentation generator), torch's
global RNG state (dropout), the history and the epoch.  A rerun of a killed task
loads the checkpoint and continues from the next epoch, so a CPU run ends with the
same weights as an uninterrupted one.  The checkpoint is deleted when training ends.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

from moviekit import MoviekitError


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
) -> dict[str, Any]:
    """Minibatch training: ``step_fn(indices)`` returns the loss of those samples.

    Samples are shuffled with a generator seeded by ``seed`` every epoch.  With a task
    context ``ctx``, the forward runs under ``ctx.autocast()``, the backward through
    ``ctx.grad_scaler()``, and checkpoints go to ``ctx.checkpoint_path(tag)`` every
    ``checkpoint_every`` epochs (resumed on the next call, deleted at the end);
    ``generators`` are saved and restored with it.  ``max_steps`` stops early (smoke
    tests).  Returns ``{"step_loss": [...], "epoch_loss": [...], "start_epoch": e}``
    where ``start_epoch`` is the epoch training (re)started from.
    """
    import contextlib

    import torch

    if n == 0:
        raise MoviekitError("no training samples")
    gen = torch.Generator().manual_seed(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    scaler = ctx.grad_scaler() if ctx is not None else torch.amp.GradScaler("cuda", enabled=False)
    history: dict[str, Any] = {"step_loss": [], "epoch_loss": []}
    start, steps = 0, 0
    ckpt = ctx.checkpoint_path(tag) if ctx is not None else None
    if ckpt is not None and ckpt.exists():
        # on the CPU: generator states must stay CPU ByteTensors; load_state_dict moves the tensors to the model's device
        state = torch.load(ckpt, map_location="cpu", weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None and state["scheduler"] is not None:
            scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        gen.set_state(state["gen"])
        for g, s in zip(generators, state["generators"]):
            g.set_state(s)
        _set_rng_state(state["rng"])
        history, start, steps = state["history"], state["epoch"], state["steps"]
        ctx.log(f"{tag}: resumed from the checkpoint at epoch {start}")
    history["start_epoch"] = start
    for epoch in range(start, epochs):
        if max_steps is not None and steps >= max_steps:
            break
        model.train()
        order = torch.randperm(n, generator=gen).tolist()
        total, count = 0.0, 0
        for s in range(0, n, batch_size):
            idx = order[s : s + batch_size]
            with ctx.autocast() if ctx is not None else contextlib.nullcontext():
                loss = step_fn(idx)
            optimizer.zero_grad()
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            clip_gradients(params, clip_grad)
            scaler.step(optimizer)
            scaler.update()
            if scheduler is not None and scheduler_per == "iter":
                scheduler.step()
            value = float(loss.detach())
            history["step_loss"].append(value)
            total += value * len(idx)
            count += len(idx)
            steps += 1
            if max_steps is not None and steps >= max_steps:
                break
        history["epoch_loss"].append(total / max(count, 1))
        if scheduler is not None and scheduler_per == "epoch":
            scheduler.step()
        if ckpt is not None and (epoch + 1) % checkpoint_every == 0 and epoch + 1 < epochs:
            state = {
                "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict() if scheduler is not None else None, "scaler": scaler.state_dict(),
                "gen": gen.get_state(), "generators": [g.get_state() for g in generators], "rng": _rng_state(),
                "history": history, "epoch": epoch + 1, "steps": steps,
            }  # fmt: skip
            tmp = ckpt.with_suffix(".tmp")
            torch.save(state, tmp)
            tmp.replace(ckpt)
        epoch_done(tag, epoch + 1, history)
    if ckpt is not None:
        ckpt.unlink(missing_ok=True)
    return history
