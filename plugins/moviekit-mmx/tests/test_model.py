import numpy as np
import pytest
import torch

from moviekit_mmx.model import GatedTrailerEncoder, _modules, nt_xent

DIST = "moviekit-mmx"


def test_plugin_is_loaded():
    from moviekit.plugins import get_registry

    info = [p for p in get_registry().plugins.values() if p.distribution == DIST]
    assert info and all(p.ok for p in info), [p.errors for p in info]


def small(**kw):
    cfg = {**GatedTrailerEncoder.example_config(None), **kw}
    return GatedTrailerEncoder(**cfg)


def feats(b, t, seed=0, dims=None):
    g = torch.Generator().manual_seed(seed)
    dims = dims or {"a": (6,), "b": (5,), "audio": (4, 3)}
    return {m: torch.randn(b, t, *d, generator=g) for m, d in dims.items()}


DIMS = {"a": (6,), "b": (5,), "audio": (4, 3)}


def test_paper_sizes():
    torch.manual_seed(0)
    model = GatedTrailerEncoder().build({"appearance": (1280,), "audio": (16, 64)}).eval()
    x = feats(2, 30, dims={"appearance": (1280,), "audio": (16, 64)})
    mask = torch.ones(2, 30, dtype=torch.bool)
    assert model(x, mask).shape == (2, 2048)
    assert model.proj["appearance"][-1].out_features == 768
    assert model.j[0].in_features == 9 * 128 and model.j[-2].out_features == 256
    assert model.k[0].in_features == 40 * 256 and model.k[-2].out_features == 2048
    c = model.clip_vectors(x, mask)
    assert c.shape == (2, 30, 128)
    assert torch.allclose(c.norm(dim=-1), torch.ones(2, 30), atol=1e-5)


def test_padding_does_not_leak():
    torch.manual_seed(0)
    model = small().build(DIMS).eval()
    x = feats(2, 10)
    mask = torch.ones(2, 10, dtype=torch.bool)
    mask[0, 7:] = False
    for m in x:
        x[m][0, 7:] = 100.0  # garbage in the padding
    with torch.no_grad():
        both = model(x, mask)
        alone = model({m: v[:1, :7] for m, v in x.items()}, mask[:1, :7])
    assert torch.allclose(both[0], alone[0], atol=1e-5)


def test_halves_and_sequences_are_embedded_like_short_trailers():
    torch.manual_seed(0)
    model = small(clips_per_sequence=3).build(DIMS).eval()
    x = feats(1, 12)  # 4 sequences of 3
    mask = torch.ones(1, 12, dtype=torch.bool)
    with torch.no_grad():
        a, b, ok = model.halves(x, mask)
        first = model({m: v[:, :6] for m, v in x.items()}, mask[:, :6])
        second = model({m: v[:, 6:] for m, v in x.items()}, mask[:, 6:])
        per, owners = model.per_sequence(x, mask)
        third = model({m: v[:, 6:9] for m, v in x.items()}, mask[:, 6:9])
    assert ok == [True]
    assert torch.allclose(a, first, atol=1e-5) and torch.allclose(b, second, atol=1e-5)
    assert owners == [(0, 0), (0, 1), (0, 2), (0, 3)]
    assert torch.allclose(per[2], third[0], atol=1e-5)


def test_remainder_clips_dropped_and_short_trailer_kept():
    torch.manual_seed(0)
    model = small(clips_per_sequence=3).build(DIMS).eval()
    x = feats(1, 8)
    mask = torch.ones(1, 8, dtype=torch.bool)
    _, valid = model.sequence_vectors(x, mask)
    assert valid == [[0, 1]]  # clips 6, 7 do not make a whole sequence
    _, valid = model.sequence_vectors({m: v[:, :2] for m, v in x.items()}, mask[:, :2])
    assert valid == [[0]]


def test_more_sequences_than_slots_are_evenly_spaced():
    torch.manual_seed(0)
    model = small(clips_per_sequence=1, max_sequences=3).build(DIMS).eval()
    x = feats(1, 7)
    mask = torch.ones(1, 7, dtype=torch.bool)
    with torch.no_grad():
        full = model(x, mask)
        picked = model({m: v[:, [0, 3, 6]] for m, v in x.items()}, mask[:, :3])
    assert torch.allclose(full, picked, atol=1e-5)


def test_gating_mixes_experts_and_concat_and_single_differ():
    torch.manual_seed(0)
    gated = small().build(DIMS).eval()
    x = feats(1, 6)
    y = {**x, "b": torch.randn(x["b"].shape, generator=torch.Generator().manual_seed(9))}
    with torch.no_grad():
        ea = gated.proj["a"](x["a"])
        att_x = gated.gating([gated.proj[m](x[m].flatten(0, 1).reshape(6, *DIMS[m])).reshape(1, 6, -1) for m in gated.modalities])[0]
        att_y = gated.gating([gated.proj[m](y[m].flatten(0, 1).reshape(6, *DIMS[m])).reshape(1, 6, -1) for m in gated.modalities])[0]
    # expert "a" (first in sorted order) is modulated differently when another expert changes
    assert gated.modalities[0] == "a"
    assert not torch.allclose(att_x, att_y)
    ratio = att_x / ea
    assert torch.all((ratio > 0) & (ratio < 1))  # a sigmoid attention, elementwise
    assert small(fusion="concat").build(DIMS).fusion == "concat"
    single = small(experts=["b"]).build(DIMS)
    assert single.fusion == "single" and list(single.proj) == ["b"]
    with pytest.raises(ValueError, match="not among the features"):
        small(experts=["nope"]).build(DIMS)


def test_netvlad_ignores_order_and_zero_rows():
    torch.manual_seed(0)
    vlad = _modules()["NetVLAD"](3, 4).eval()
    x = torch.randn(2, 5, 3)
    perm = x[:, torch.randperm(5)]
    padded = torch.cat([x, torch.zeros(2, 3, 3)], dim=1)
    with torch.no_grad():
        assert torch.allclose(vlad(x), vlad(perm), atol=1e-5)
        assert torch.allclose(vlad(x), vlad(padded), atol=1e-5)
        assert vlad(x).shape == (2, 12)


def reference_nt_xent(z1, z2, tau):
    """SimCLR's NT-Xent written out term by term (Chen et al. 2020, eq. 1)."""
    z = np.concatenate([z1, z2]).astype(np.float64)
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    n = len(z1)
    total = 0.0
    for i in range(2 * n):
        p = (i + n) % (2 * n)
        num = np.exp(z[i] @ z[p] / tau)
        den = sum(np.exp(z[i] @ z[k] / tau) for k in range(2 * n) if k != i)
        total += -np.log(num / den)
    return total / (2 * n)


@pytest.mark.parametrize("tau", [0.5, 0.1])
def test_nt_xent_matches_reference(tau):
    rng = np.random.default_rng(1)
    z1, z2 = rng.standard_normal((6, 8)), rng.standard_normal((6, 8))
    got = float(nt_xent(torch.from_numpy(z1), torch.from_numpy(z2), tau))
    assert got == pytest.approx(reference_nt_xent(z1, z2, tau), rel=1e-5)
    # identical pairs far from the others give a lower loss than random pairs
    assert float(nt_xent(torch.from_numpy(z1), torch.from_numpy(z1), tau)) < got


def test_the_sequence_length_is_stated_once_on_the_encoder():
    from moviekit import RecipeError, group_windows
    from moviekit.recipe import validate

    data = {
        "dataset": {"use": "synthetic_trailers"},
        "segmenter": {"use": "fixed_length"},
        "experts": {"colour": {"use": "color_histogram"}},
        "encoder": {"use": "mmx_gated", "clips_per_sequence": 3},
    }
    assert validate(data).recipe.encoder.use == "mmx_gated"
    data["clips"] = {"sequence_length": 9}  # the old key says where it went
    with pytest.raises(RecipeError, match=r"clips.sequence_length.*encoder.clips_per_sequence"):
        validate(data)
    model = small(clips_per_sequence=3).build(DIMS)
    assert model.sequence_spans(10) == group_windows(10, 3) == [(0, 3), (3, 6), (6, 9)]
