"""Downstream MLP heads on fixed scene representations (LVU, MovieNet place tagging and SBD, age-appropriateness)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from moviekit import mlp, train_loop

#: Supplementary Table 1: the MLP settings of each LVU task (learning rate, batch, epochs, dropout).
LVU_TABLE1: dict[str, dict[str, float]] = {
    "scene": {"lr": 0.1, "batch_size": 128, "epochs": 400, "dropout": 0.1},
    "director": {"lr": 1.0, "batch_size": 256, "epochs": 400, "dropout": 0.5},
    "relationship": {"lr": 0.01, "batch_size": 16, "epochs": 400, "dropout": 0.5},
    "way_speaking": {"lr": 0.1, "batch_size": 256, "epochs": 400, "dropout": 0.1},
    "writer": {"lr": 0.5, "batch_size": 32, "epochs": 400, "dropout": 0.25},
    "year": {"lr": 0.1, "batch_size": 128, "epochs": 400, "dropout": 0.75},
    "genre": {"lr": 0.1, "batch_size": 256, "epochs": 400, "dropout": 0.1},
    "view_count": {"lr": 0.01, "batch_size": 16, "epochs": 500, "dropout": 0.8},
    "like_ratio": {"lr": 0.1, "batch_size": 16, "epochs": 500, "dropout": 0.5},
}


@dataclass
class HeadResult:
    model: Any
    mean: np.ndarray
    std: np.ndarray
    best_epoch: int
    history: dict[str, Any]
    #: Regression heads learn standardised targets; predictions are mapped back with these (0 and 1 otherwise).
    target_mean: np.ndarray | float = 0.0
    target_std: np.ndarray | float = 1.0

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Logits (classification) or predictions in the targets' own units (regression)."""
        import torch

        with torch.no_grad():
            out = self.model(torch.from_numpy(((x - self.mean) / self.std).astype(np.float32))).numpy()
        return out * self.target_std + self.target_mean


def fit_head(
    x: np.ndarray,
    y: np.ndarray,
    loss: Literal["ce", "bce", "mse"],
    hidden: list[int],
    dropout: float,
    lr: float,
    batch_size: int,
    epochs: int,
    seed: int = 0,
    x_val: np.ndarray | None = None,
    score_val: Callable[[np.ndarray], float] | None = None,
    eval_every: int = 10,
    ctx: Any = None,
    tag: str = "m2s_head",
    momentum: float = 0.9,
    clip_grad: float | None = None,
) -> HeadResult:
    """An MLP ``x -> hidden... -> out`` trained by SGD (momentum 0.9) on standardised inputs (train mean and std).

    With ``loss="mse"`` the targets are standardised too (train mean and std), so one learning rate
    suits any unit (a like ratio in [0, 1], a view count in millions); :meth:`HeadResult.predict`
    returns predictions in the original units.  ``clip_grad`` bounds the gradient norm of each step
    (MSE's gradient grows with the error, so a large learning rate diverges without it).
    With ``x_val`` and ``score_val`` (higher is better) the epoch with the best validation score
    (checked every ``eval_every`` epochs and at the end) is kept: selection on the validation split only.
    """
    import copy

    import torch

    mean, std = x.mean(0), x.std(0) + 1e-6
    xt = torch.from_numpy(((x - mean) / std).astype(np.float32))
    out_dim = int(y.max()) + 1 if loss == "ce" else (y.shape[1] if y.ndim == 2 else 1)
    torch.manual_seed(seed)
    net = mlp([x.shape[1], *hidden, out_dim], dropout=dropout)
    if loss == "ce":
        yt, fn = torch.from_numpy(y.astype(np.int64)), torch.nn.CrossEntropyLoss()
    elif loss == "bce":
        yt, fn = torch.from_numpy(y.astype(np.float32).reshape(len(y), -1)), torch.nn.BCEWithLogitsLoss()
    else:
        y2 = y.astype(np.float64).reshape(len(y), -1)
        y_mean, y_std = y2.mean(0), y2.std(0) + 1e-12
        yt, fn = torch.from_numpy(((y2 - y_mean) / y_std).astype(np.float32)), torch.nn.MSELoss()
    best = {"score": -np.inf, "epoch": epochs, "state": None}
    res = HeadResult(net, mean, std, epochs, {})
    if loss == "mse":
        res.target_mean, res.target_std = y_mean, y_std

    def on_epoch(epoch: int, _h: dict[str, Any]) -> None:
        if x_val is None or score_val is None or (epoch % eval_every and epoch != epochs):
            return
        net.eval()
        s = score_val(res.predict(x_val))
        net.train()
        if s > best["score"]:
            best.update(score=s, epoch=epoch, state=copy.deepcopy(net.state_dict()))

    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=momentum)
    hist = train_loop(net, lambda idx: fn(net(xt[idx]), yt[idx]), len(xt), opt, epochs, batch_size, ctx=ctx, seed=seed, tag=tag,
                      clip_grad=clip_grad, on_epoch_end=on_epoch, checkpoint_every=10**9)  # fmt: skip
    if best["state"] is not None:
        net.load_state_dict(best["state"])
        res.best_epoch = int(best["epoch"])
    net.eval()
    res.history = hist
    return res
