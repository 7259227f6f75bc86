"""Momentum contrast (He et al., CVPR 2020) for any batch size, in one process or under ``torchrun``.

The reference code keeps a queue whose size must be a multiple of the batch size and assumes every
batch is full (on every rank).  Here the queue is a ring buffer that takes a batch of any size (a
short last batch wraps around the end).  Under ``torchrun`` (:func:`moviekit.train_loop` gives each
rank a contiguous share of the global batch) :meth:`MoCo.loss` gathers every rank's keys in rank
order, without gradient, so each rank enqueues the whole global batch's keys in the order one
process would: the queues, hence the negatives, stay identical on every rank and equal to one
process's; shares may be unequal, and a batch smaller than the world is computed whole on every
rank.  The online encoder's gradients are summed over ranks by ``train_loop``, so the momentum
updates are identical too.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from moviekit import gather_with_grad


class KeyQueue(torch.nn.Module):
    """A FIFO ring buffer of ``size`` L2-normalised keys of dimension ``dim`` (a module buffer, so it checkpoints)."""

    def __init__(self, dim: int, size: int, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("keys", F.normalize(torch.randn(size, dim, generator=g), dim=1))
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long))
        #: How many real keys were ever enqueued (the rest of the buffer is random init).
        self.register_buffer("filled", torch.zeros((), dtype=torch.long))

    @property
    def size(self) -> int:
        return self.keys.shape[0]

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor) -> None:
        """Replace the oldest entries with ``keys`` (``(b, dim)``, any ``b``; the newest ``size`` if ``b > size``)."""
        keys = keys.detach().to(self.keys.device, self.keys.dtype)
        if keys.shape[0] > self.size:
            keys = keys[-self.size :]
        b = keys.shape[0]
        idx = (self.ptr + torch.arange(b, device=self.keys.device)) % self.size
        self.keys[idx] = keys
        self.ptr.copy_((self.ptr + b) % self.size)
        self.filled.copy_(torch.clamp(self.filled + b, max=self.size))

    def negatives(self) -> torch.Tensor:
        return self.keys.clone().detach()


@torch.no_grad()
def momentum_update(online: torch.nn.Module, target: torch.nn.Module, m: float) -> None:
    """``target = m * target + (1 - m) * online``, parameter by parameter (buffers copied)."""
    for p_o, p_t in zip(online.parameters(), target.parameters(), strict=True):
        p_t.mul_(m).add_(p_o.detach(), alpha=1 - m)
    for b_o, b_t in zip(online.buffers(), target.buffers(), strict=True):
        b_t.copy_(b_o)


def info_nce(q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor, temperature: float = 0.07) -> torch.Tensor:
    """MoCo's loss: cross-entropy of each query against its positive key (class 0) and the queue's negatives.

    ``q`` and ``k`` are ``(b, d)``, ``queue`` ``(K, d)``; all are L2-normalised here.
    """
    q, k, queue = F.normalize(q, dim=1), F.normalize(k, dim=1), F.normalize(queue, dim=1)
    pos = (q * k).sum(1, keepdim=True)
    neg = q @ queue.T
    logits = torch.cat([pos, neg], dim=1) / temperature
    return F.cross_entropy(logits, torch.zeros(len(q), dtype=torch.long, device=q.device))


class MoCo(torch.nn.Module):
    """An online encoder, its momentum copy and a key queue; ``loss(x_q, x_k)`` does one MoCo step's forward.

    ``encoder`` maps a batch to ``(b, dim)`` vectors (the projection included).  Call
    :meth:`after_step` after the optimiser step: it updates the momentum encoder and enqueues the keys.
    The keys waiting for it are kept in :attr:`pending`; hand that dict to ``train_loop(extra_state=...)``
    so that a checkpoint taken between a step and its ``after_step`` resumes with them.
    """

    def __init__(
        self, encoder: torch.nn.Module, dim: int, queue_size: int = 65536, momentum: float = 0.999, temperature: float = 0.07, seed: int = 0
    ):
        super().__init__()
        import copy

        self.encoder = encoder
        self.key_encoder = copy.deepcopy(encoder)
        for p in self.key_encoder.parameters():
            p.requires_grad_(False)
        self.queue = KeyQueue(dim, queue_size, seed)
        self.momentum, self.temperature = momentum, temperature
        #: ``{"keys": the last step's keys of the whole global batch, or None once enqueued}``.
        self.pending: dict[str, torch.Tensor | None] = {"keys": None}

    def loss(self, x_q: Any, x_k: Any) -> torch.Tensor:
        q = self.encoder(*x_q) if isinstance(x_q, tuple) else self.encoder(x_q)
        with torch.no_grad():
            k = self.key_encoder(*x_k) if isinstance(x_k, tuple) else self.key_encoder(x_k)
            k = F.normalize(k.float(), dim=1)
            self.pending["keys"] = gather_with_grad(k)  # every rank's keys in rank order (k itself in one process)
        return info_nce(q.float(), k, self.queue.negatives(), self.temperature)

    @torch.no_grad()
    def after_step(self) -> None:
        momentum_update(self.encoder, self.key_encoder, self.momentum)
        if self.pending["keys"] is not None:
            self.queue.enqueue(self.pending["keys"])
            self.pending["keys"] = None
