"""BERT-style mask prediction for the contextualizer (Devlin et al. 2019; VidSitu's event transformer).

:func:`bert_mask` picks the positions to predict: each real token with probability ``ratio``
(at least ``min_masked`` per sequence), of which 80 % are replaced by the learned mask token,
10 % by a random token of the batch and 10 % left unchanged.  :func:`masked_loss` scores the
predictions only at those positions, against the detached input tokens: ``regression`` (MSE,
the default), ``cosine`` (1 - cosine similarity) or ``contrastive`` (InfoNCE between predicted
and true tokens, the other masked tokens of the batch as negatives).
"""

from __future__ import annotations

from typing import Any, Literal


def bert_mask(valid: Any, ratio: float, generator: Any, min_masked: int = 1, replace: tuple[float, float] = (0.8, 0.1)) -> dict[str, Any]:
    """``valid`` (B, L) bool -> ``{"masked", "to_mask_token", "to_random"}`` (B, L) bool.

    ``masked`` are the positions the loss uses; ``to_mask_token`` and ``to_random`` (subsets of it)
    are replaced by the mask token and by a random token; the rest of ``masked`` stays unchanged.
    """
    import torch

    B, L = valid.shape
    r = torch.rand(B, L, generator=generator)
    masked = (r < ratio) & valid
    if min_masked > 0:
        # sequences with too few masked tokens: mask their real tokens of lowest r
        score = torch.where(valid & ~masked, r, torch.full_like(r, 2.0))
        order = score.argsort(dim=1)
        need = (min_masked - masked.sum(1)).clamp_min(0).clamp_max(valid.sum(1))
        rank = torch.arange(L).expand(B, L)
        extra = torch.zeros_like(masked)
        extra.scatter_(1, order, rank < need[:, None])
        masked = masked | (extra & valid)
    kind = torch.rand(B, L, generator=generator)
    to_mask = masked & (kind < replace[0])
    to_random = masked & (kind >= replace[0]) & (kind < replace[0] + replace[1])
    return {"masked": masked, "to_mask_token": to_mask, "to_random": to_random}


def apply_mask(x: Any, plan: dict[str, Any], mask_token: Any, generator: Any, valid: Any | None = None) -> Any:
    """``x`` (B, L, D) with the plan's replacements: the mask token, or a random real token of the batch."""
    import torch

    B, L, D = x.shape
    flat = x.reshape(B * L, D)
    pool = torch.nonzero(valid.reshape(-1)).squeeze(1) if valid is not None else torch.arange(B * L)
    pick = pool[torch.randint(len(pool), (B * L,), generator=generator)].to(x.device)
    out = torch.where(plan["to_random"].reshape(-1, 1).to(x.device), flat[pick], flat)
    out = torch.where(plan["to_mask_token"].reshape(-1, 1).to(x.device), mask_token.to(out.dtype).expand(B * L, D), out)
    return out.reshape(B, L, D)


def masked_loss(
    pred: Any, target: Any, masked: Any, kind: Literal["regression", "cosine", "contrastive"] = "regression", temperature: float = 0.1
) -> Any:
    """Loss of ``pred`` against ``target.detach()`` (both (B, L, D)) at the ``masked`` positions only."""
    import torch
    import torch.nn.functional as F

    m = masked.to(pred.device)
    p, t = pred[m].float(), target.detach()[m].float()
    if len(p) == 0:
        return pred.sum() * 0.0
    if kind == "regression":
        return F.mse_loss(p, t)
    if kind == "cosine":
        return (1 - F.cosine_similarity(p, t, dim=-1)).mean()
    if kind == "contrastive":
        logits = F.normalize(p, dim=-1) @ F.normalize(t, dim=-1).t() / temperature
        return F.cross_entropy(logits, torch.arange(len(p), device=p.device))
    raise ValueError(f"unknown mask-prediction loss {kind!r}")
