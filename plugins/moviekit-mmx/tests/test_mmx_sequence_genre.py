"""Sequence-level genres (MMX-Trailer-20 §3.2) and the per-sequence predictions of each trailer (Fig. 8)."""

import csv
import json

import numpy as np
import pytest

from moviekit import FeatureSet, Item, get_registry, group_windows
from moviekit.testing import make_context, tiny_items
from moviekit_mmx.model import GatedTrailerEncoder, genre_modules, pool_sequence_logits
from moviekit_mmx.tasks import GenreClassification, build_model

DIMS = {"visual": (16,), "audio": (4, 8)}
L = 3


def uneven_items():
    """Trailers of 11, 9, 7, 5 and 2 clips: 3, 3, 2, 1 whole sequences, and one shorter than a sequence."""
    items = tiny_items(n=20, modalities=DIMS, n_clips=11, seed=5)
    out = []
    for i, it in enumerate(items):
        n = (11, 9, 7, 5, 2)[i % 5]
        arrays = {m: a[:n] for m, a in it.features.arrays.items()}
        out.append(Item(video=it.video, clips=it.clips[:n], features=FeatureSet(video_id=it.video.id, arrays=arrays)))
    return out


def sigmoid(z):
    return 1 / (1 + np.exp(-np.asarray(z, dtype=np.float64)))


def context(tmp_path):
    enc = GatedTrailerEncoder(**{**GatedTrailerEncoder.example_config(None), "clips_per_sequence": L})
    return make_context(tmp_path, uneven_items(), encoder=enc, head=get_registry().create("mlp", "head", hidden=[16]))


def test_pool_sequence_logits_sums_or_averages_each_trailers_rows():
    import torch

    z = torch.tensor([[1.0, -2.0], [3.0, 0.5], [-1.0, 4.0], [2.0, 2.0]])
    owners = [0, 0, 2, 2]
    s = pool_sequence_logits(z, owners, 3, "sum").numpy()
    m = pool_sequence_logits(z, owners, 3, "mean").numpy()
    np.testing.assert_allclose(s, [[4.0, -1.5], [0.0, 0.0], [1.0, 6.0]])
    np.testing.assert_allclose(m, [[2.0, -0.75], [0.0, 0.0], [0.5, 3.0]])
    with pytest.raises(ValueError, match="pooling"):
        pool_sequence_logits(z, owners, 3, "max")


def test_sequence_level_logits_have_one_row_per_sequence(tmp_path):
    import torch

    from moviekit import pad_features

    ctx = context(tmp_path)
    encoder = ctx.encoder.build({k: v for k, v in DIMS.items()})
    head = ctx.head.build(ctx.encoder.output_dim(), len(ctx.vocabulary))
    net, out = genre_modules(encoder, head, "sequence", "sum")
    batch = ctx.items[:5]
    feats, mask = pad_features(batch)
    with torch.no_grad():
        logits, owners = net.sequence_logits(feats, mask)
        trailer = out(net(feats, mask))
    per_trailer = [max(1, len(group_windows(len(it.clips), L))) for it in batch]
    assert per_trailer == [3, 3, 2, 1, 1]
    assert tuple(logits.shape) == (sum(per_trailer), len(ctx.vocabulary))
    assert [b for b, _ in owners] == [b for b, n in enumerate(per_trailer) for _ in range(n)]
    assert tuple(trailer.shape) == (5, len(ctx.vocabulary))
    with pytest.raises(ValueError, match="level"):
        genre_modules(encoder, head, "scene", "sum")


@pytest.fixture(scope="module")
def sequence_run(tmp_path_factory):
    ctx = context(tmp_path_factory.mktemp("seqgenre"))
    result = GenreClassification(epochs=3, lr=1e-3, level="sequence").run(ctx)
    return ctx, result


def test_a_sequence_level_models_trailer_score_is_the_sum_of_its_sequence_logits(sequence_run):
    """Recomputed from the saved model: each sequence alone through k and l, logits summed per trailer."""
    import torch

    from moviekit import load_model, pad_features

    ctx, _ = sequence_run
    model = load_model(ctx.out_dir / "models" / "coarse")
    assert model.record.meta["train"]["level"] == "sequence" and model.record.meta["train"]["sequence_pooling"] == "sum"
    encoder, head = build_model(model)
    test = ctx.split("test")
    with torch.no_grad():
        feats, mask = pad_features(test)
        emb, owners = encoder.per_sequence(feats, mask)
        z = head(emb).numpy()
    summed = np.zeros((len(test), len(ctx.vocabulary)))
    for (b, _), row in zip(owners, z):
        summed[b] += row
    saved = np.load(ctx.out_dir / "scores" / "model.npz")
    np.testing.assert_allclose(saved["scores"], sigmoid(summed), rtol=1e-5, atol=1e-6)
    # and not what k over the whole trailer would give
    with torch.no_grad():
        whole = torch.sigmoid(head(encoder(feats, mask))).numpy()
    assert not np.allclose(whole, saved["scores"], atol=1e-3)


def test_per_sequence_files_of_each_trailer(sequence_run):
    ctx, _ = sequence_run
    folder = ctx.out_dir / "sequence_predictions"
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"{it.id}.json" for it in ctx.items)
    scores = np.load(ctx.out_dir / "scores" / "model.npz")
    test_scores = dict(zip(scores["ids"].tolist(), scores["scores"]))
    csv_rows = list(csv.DictReader((ctx.out_dir / "sequence_predictions.csv").open()))
    assert len(csv_rows) == sum(max(1, len(group_windows(len(it.clips), L))) for it in ctx.items)
    for it in ctx.items:
        rec = json.loads((folder / f"{it.id}.json").read_text())
        assert rec["id"] == it.id and rec["given"] == it.video.labels and rec["genres"] == ctx.vocabulary
        assert rec["level"] == "sequence" and rec["pooling"] == "sum" and rec["threshold"] == 0.3
        spans = group_windows(len(it.clips), L) or [(0, len(it.clips))]
        assert [tuple(s["clips"]) for s in rec["sequences"]] == spans
        for s, (lo, hi) in zip(rec["sequences"], spans):
            assert (s["start_time"], s["end_time"]) == (it.clips[lo].start_time, it.clips[hi - 1].end_time)
            np.testing.assert_allclose(s["scores"], sigmoid(s["logits"]), atol=2e-5)
            assert s["predicted"] == [g for g, p in zip(ctx.vocabulary, s["scores"]) if p >= 0.3]
        pooled = sigmoid(np.sum([s["logits"] for s in rec["sequences"]], axis=0))
        np.testing.assert_allclose(rec["trailer"]["scores"], pooled, atol=1e-4)
        if it.id in test_scores:
            np.testing.assert_allclose(rec["trailer"]["scores"], test_scores[it.id], atol=1e-5)
        mine = [r for r in csv_rows if r["id"] == it.id]
        assert [json.loads(r["scores"]) for r in mine] == [dict(zip(ctx.vocabulary, s["scores"])) for s in rec["sequences"]]


def test_trailer_level_default_keeps_the_inference_only_sequence_scores(tmp_path):
    import torch

    from moviekit import pad_features

    ctx = context(tmp_path)
    GenreClassification(epochs=2, lr=1e-3).run(ctx)
    encoder, head = build_model(ctx.model("coarse"))
    assert ctx.model("coarse").record.meta["train"]["level"] == "trailer"
    it = ctx.items[0]
    rec = json.loads((ctx.out_dir / "sequence_predictions" / f"{it.id}.json").read_text())
    assert rec["level"] == "trailer" and "pooling" not in rec
    with torch.no_grad():
        feats, mask = pad_features([it])
        emb, _ = encoder.per_sequence(feats, mask)
        seq = torch.sigmoid(head(emb)).numpy()
        whole = torch.sigmoid(head(encoder(feats, mask))).numpy()[0]
    np.testing.assert_allclose([s["scores"] for s in rec["sequences"]], seq, atol=1e-5)
    np.testing.assert_allclose(rec["trailer"]["scores"], whole, atol=1e-5)
