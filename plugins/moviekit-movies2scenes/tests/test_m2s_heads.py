"""Regression heads at Table 1's learning rate: finite, in the targets' units, MSE as computed by hand."""

import numpy as np
import pytest

from moviekit_movies2scenes.downstream import REGRESSION_CLIP
from moviekit_movies2scenes.heads import LVU_TABLE1, fit_head
from moviekit_movies2scenes.metrics import mse, top1


def like_ratio_case(scale: float = 1.0):
    """A like ratio in [0, 1] that 4 taste clusters set, visible in a few of 64 input dims."""
    rng = np.random.default_rng(0)
    n, d = 96, 32
    cluster = rng.integers(0, 4, n)
    x = rng.normal(size=(n, d)).astype(np.float32)
    x[:, :4] += cluster[:, None].astype(np.float32)
    y = np.clip(0.5 + 0.1 * cluster + rng.normal(0, 0.03, n), 0, 1) * scale
    return x[:64], y[:64], x[64:], y[64:]


def table1_head(x, y, clip):
    t = LVU_TABLE1["like_ratio"]
    return fit_head(x, y, "mse", [512], t["dropout"], t["lr"], int(t["batch_size"]), 10, seed=0, clip_grad=clip)


def test_regression_head_at_table1_lr_is_finite_and_mse_matches_hand_computation():
    x, y, xt, yt = like_ratio_case()
    head = table1_head(x, y, REGRESSION_CLIP)
    p = head.predict(xt)
    assert p.shape == (len(yt), 1) and np.isfinite(p).all()
    assert np.isfinite(head.history["epoch_loss"]).all()
    by_hand = sum((float(p[i, 0]) - float(yt[i])) ** 2 for i in range(len(yt))) / len(yt)
    assert mse(p, yt) == pytest.approx(by_hand, rel=1e-12)
    chance = sum((float(v) - float(y.mean())) ** 2 for v in yt) / len(yt)  # predicting the train mean
    assert by_hand < 0.75 * chance  # it learnt the clusters, in the targets' own units


def test_regression_targets_in_any_unit_give_the_same_head():
    # standardised targets: a view count in millions trains like a ratio in [0, 1]; predictions come back in millions
    x, y, xt, yt = like_ratio_case()
    small, big = table1_head(x, y, REGRESSION_CLIP), table1_head(x, y * 1e6, REGRESSION_CLIP)
    np.testing.assert_allclose(big.predict(xt) / 1e6, small.predict(xt), rtol=1e-4, atol=1e-6)


def test_unclipped_mse_head_at_table1_lr_diverges():
    # the failure the clip fixes: SGD lr 0.1, momentum 0.9, batch 16 on MSE
    x, y, _, _ = like_ratio_case()
    head = table1_head(x, y, None)
    assert not np.isfinite(head.history["epoch_loss"]).all()


def test_top1_hand_case():
    scores = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]])
    assert top1(scores, np.array([1, 1, -1])) == pytest.approx(1 / 3)
