import math

import numpy as np
import torch

from moviekit_hiermovie.contrastive import (
    consistent_augment,
    info_nce,
    sample_pair_starts,
)


def _nt_xent_by_hand(z1: np.ndarray, z2: np.ndarray, t: float) -> float:
    z = np.concatenate([z1, z2])
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    n = len(z1)
    total = 0.0
    for i in range(2 * n):
        pos = (i + n) % (2 * n)
        denom = sum(math.exp(z[i] @ z[j] / t) for j in range(2 * n) if j != i)
        total += -math.log(math.exp(z[i] @ z[pos] / t) / denom)
    return total / (2 * n)


def test_info_nce_matches_a_loop_computation():
    rng = np.random.default_rng(0)
    z1, z2 = rng.standard_normal((6, 5)), rng.standard_normal((6, 5))
    got = info_nce(torch.tensor(z1), torch.tensor(z2), temperature=0.1).item()
    assert abs(got - _nt_xent_by_hand(z1, z2, 0.1)) < 1e-4


def test_info_nce_is_low_for_aligned_pairs():
    z = torch.randn(8, 16)
    assert info_nce(z, z + 0.01 * torch.randn(8, 16), 0.1) < info_nce(z, torch.randn(8, 16), 0.1)


def test_pair_distance_is_linearly_decreasing_and_in_bounds():
    rng = np.random.default_rng(0)
    d = []
    for _ in range(20000):
        s1, s2 = sample_pair_starts(40, 8, 32, rng)
        assert 0 <= s1 <= 32 and 0 <= s2 <= 32
        d.append(abs(s1 - s2))
    counts = np.bincount(d, minlength=33)
    # P(d) ∝ 33 - d: the ratio of the first to the last third's mass is about (33+23)/(12+2) = 4
    first, last = counts[:11].sum(), counts[22:].sum()
    expected = sum(33 - k for k in range(11)) / sum(33 - k for k in range(22, 33))
    assert abs(first / last - expected) / expected < 0.1
    assert sample_pair_starts(5, 8, 10, rng) == (0, 0)  # shorter than a clip


def test_augmentation_is_consistent_over_frames():
    g = torch.Generator().manual_seed(0)
    frame = torch.rand(3, 16, 16)
    clip = frame.expand(6, -1, -1, -1).clone()
    out = consistent_augment(clip, g, flip=True, jitter=0.4, grayscale=0.5)
    assert out.shape == clip.shape
    assert torch.allclose(out, out[:1].expand_as(out))
    assert not torch.allclose(out[0], frame)  # something was applied


def test_min_distance_keeps_clips_apart():
    rng = np.random.default_rng(1)
    for _ in range(500):
        s1, s2 = sample_pair_starts(24, 8, 24, rng, min_distance=8)
        assert 8 <= abs(s1 - s2) <= 16
