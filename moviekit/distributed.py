"""Data-parallel training under ``torchrun``: the process group, each rank's share of a batch,
gradient averaging, and gathering embeddings across ranks for contrastive losses.

Every function is a no-op (or the identity) in a single process, so code written against this
module runs unchanged without ``torchrun``.  The process group is started from torchrun's
environment (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``...) by :func:`init_from_env`: NCCL
when the run's device is CUDA, gloo on the CPU.

**Equivalence with one process.**  :func:`moviekit.train_loop` keeps the *global* batch of a
one-process run: every rank draws the same shuffled order, takes a contiguous share of each
global batch (:func:`shard`), scales its loss by its share of the batch and the gradients are
summed over ranks.  For a loss that is a mean over samples this is the one-process gradient;
a contrastive loss that gathers the other ranks' embeddings with :func:`gather_with_grad`
sees the same negatives as one process.  Only float summation order differs.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

#: True while a global batch too small to split is computed whole on every rank (gathering is then the identity).
_REPLICATED = False
_STARTED_HERE = False


def _dist() -> Any:
    import torch.distributed as dist

    return dist


def is_distributed() -> bool:
    """True inside an initialised process group of more than one process (never when torch is not
    imported yet: no group can exist then, so this does not import it)."""
    if "torch" not in sys.modules:
        return False
    try:
        dist = _dist()
    except ImportError:  # pragma: no cover - torch is a core dependency
        return False
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return _dist().get_rank() if is_distributed() else 0


def world_size() -> int:
    return _dist().get_world_size() if is_distributed() else 1


def is_main() -> bool:
    """Rank 0 (or the only process): the one that writes run files, store artifacts and checkpoints."""
    return rank() == 0


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_from_env(device: str = "auto") -> bool:
    """Start the process group from torchrun's environment when there is one (and none yet).

    Returns True when this call started it (the caller then ends it with :func:`shutdown`).
    ``MOVIEKIT_DIST_TIMEOUT`` (seconds, default 86400) bounds how long ranks wait for each other,
    e.g. while rank 0 extracts the videos.
    """
    global _STARTED_HERE
    if not launched_by_torchrun():
        return False
    import torch

    dist = _dist()
    if dist.is_initialized():
        return False
    cuda = device != "cpu" and torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    timeout = timedelta(seconds=float(os.environ.get("MOVIEKIT_DIST_TIMEOUT", "86400")))
    dist.init_process_group(backend="nccl" if cuda else "gloo", timeout=timeout)
    _STARTED_HERE = True
    return True


def shutdown() -> None:
    """End a process group that :func:`init_from_env` started."""
    global _STARTED_HERE
    if _STARTED_HERE and _dist().is_initialized():
        _dist().destroy_process_group()
    _STARTED_HERE = False


def barrier() -> None:
    if is_distributed():
        _dist().barrier()


def broadcast_object(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank (small, JSON-like values)."""
    if not is_distributed():
        return obj
    box = [obj]
    _dist().broadcast_object_list(box, src=0)
    return box[0]


def _device_of(tensor_or_module: Any) -> Any:
    import torch

    if isinstance(tensor_or_module, torch.Tensor):
        return tensor_or_module.device
    for p in tensor_or_module.parameters():
        return p.device
    return torch.device("cpu")


def broadcast_module(module: Any) -> None:
    """Copy rank 0's parameters and buffers to every rank (replicas start identical)."""
    if not is_distributed():
        return
    import torch

    with torch.no_grad():
        for t in [*module.parameters(), *module.buffers()]:
            _dist().broadcast(t.data, src=0)


def shard(idx: list[int]) -> tuple[list[int], float, bool]:
    """This rank's share of a global batch ``idx``: ``(indices, loss weight, replicated)``.

    Ranks take contiguous, near-equal slices in rank order; the weight is the slice's share of the
    batch, so that summing the weighted losses' gradients over ranks gives the global mean's.  A
    batch smaller than the world is computed whole on every rank with weight ``1 / world``
    (``replicated``: :func:`gather_with_grad` is then the identity).
    """
    world = world_size()
    if world == 1:
        return idx, 1.0, False
    n = len(idx)
    if n < world:
        return list(idx), 1.0 / world, True
    r = rank()
    start, stop = r * n // world, (r + 1) * n // world
    return idx[start:stop], (stop - start) / n, False


@contextlib.contextmanager
def replicated(flag: bool) -> Iterator[None]:
    """Mark a step whose batch every rank computes whole (see :func:`shard`)."""
    global _REPLICATED
    before, _REPLICATED = _REPLICATED, flag
    try:
        yield
    finally:
        _REPLICATED = before


def sum_gradients(params: list[Any]) -> None:
    """Sum every parameter's gradient over ranks (a parameter without one counts as zeros)."""
    if not is_distributed():
        return
    import torch

    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    _dist().all_reduce(flat)
    offset = 0
    for p, g in zip(params, grads):
        n = g.numel()
        p.grad = flat[offset : offset + n].view_as(p).clone()
        offset += n


def sum_value(value: float) -> float:
    """The sum of a float over ranks."""
    if not is_distributed():
        return value
    import torch

    t = torch.tensor([value], dtype=torch.float64)
    if _dist().get_backend() == "nccl":
        t = t.cuda()
    _dist().all_reduce(t)
    return float(t.item())


def _gather_function() -> Any:
    import torch

    class GatherWithGrad(torch.autograd.Function):
        """all_gather of rows (ranks may hold different numbers); the backward sums every rank's
        gradient of the gathered rows and hands each rank the gradient of its own rows."""

        @staticmethod
        def forward(ctx: Any, x: Any) -> Any:
            dist = _dist()
            world = dist.get_world_size()
            sizes = torch.tensor([x.shape[0]], device=x.device)
            all_sizes = [torch.zeros_like(sizes) for _ in range(world)]
            dist.all_gather(all_sizes, sizes)
            counts = [int(s.item()) for s in all_sizes]
            most = max(counts)
            padded = torch.zeros((most, *x.shape[1:]), dtype=x.dtype, device=x.device)
            padded[: x.shape[0]] = x
            parts = [torch.empty_like(padded) for _ in range(world)]
            dist.all_gather(parts, padded.contiguous())
            ctx.counts, ctx.rank = counts, dist.get_rank()
            return torch.cat([p[:c] for p, c in zip(parts, counts)])

        @staticmethod
        def backward(ctx: Any, grad: Any) -> Any:
            grad = grad.contiguous()
            _dist().all_reduce(grad)
            start = sum(ctx.counts[: ctx.rank])
            return grad[start : start + ctx.counts[ctx.rank]]

    return GatherWithGrad


def gather_with_grad(x: Any, with_offset: bool = False) -> Any:
    """Every rank's rows of ``x`` concatenated in rank order, differentiable (negatives from the
    whole global batch for NT-Xent, InfoNCE or a MoCo queue's keys).

    With ``with_offset`` also returns where this rank's rows start in the result.  In one
    process, or in a step every rank computes whole, returns ``x`` itself (offset 0).
    """
    if not is_distributed() or _REPLICATED:
        return (x, 0) if with_offset else x
    out = _gather_function().apply(x)
    if not with_offset:
        return out
    counts = _gather_function_counts(x)
    return out, sum(counts[: rank()])


def _gather_function_counts(x: Any) -> list[int]:
    import torch

    sizes = torch.tensor([x.shape[0]], device=x.device)
    all_sizes = [torch.zeros_like(sizes) for _ in range(world_size())]
    _dist().all_gather(all_sizes, sizes)
    return [int(s.item()) for s in all_sizes]


class ReadOnlyStore:
    """A rank's view of the shared artifact store that reads but never writes (ranks other than 0)."""

    def __init__(self, store: Any):
        object.__setattr__(self, "_inner", store)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._inner, name, value)

    def put(self, kind: str, key: str, value: Any) -> Any:
        return self._inner.path(kind, key)


@contextlib.contextmanager
def run_ranks(runner: Any) -> Iterator[None]:
    """Around a whole run under ``torchrun``: start the process group; ranks other than 0 write
    their run files to a scratch folder and never write the store; all ranks finish together."""
    import shutil
    import tempfile
    from pathlib import Path

    started = init_from_env(runner.recipe.run.device)
    scratch = None
    if is_distributed() and not is_main():
        scratch = Path(tempfile.mkdtemp(prefix=f"moviekit-rank{rank()}-"))
        from .runlock import RunLock

        runner.out_dir = scratch
        runner.publish = None  # only rank 0 publishes a remote run directory
        runner.lock = RunLock(scratch)
        runner.store = ReadOnlyStore(runner.store)
    try:
        yield
        barrier()
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
        if started:
            shutdown()
