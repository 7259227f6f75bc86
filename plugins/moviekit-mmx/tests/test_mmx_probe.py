"""The linear-probe baseline: averaged expert features, the one-vs-rest logistic regression against a
direct scikit-learn computation, its rows in metrics.json / ablation.csv, and the report's sentence."""

from __future__ import annotations

import csv
import json
import re

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, precision_recall_fscore_support

from moviekit import MoviekitError, get_registry
from moviekit.testing import make_context, tiny_items
from moviekit_mmx.model import GatedTrailerEncoder
from moviekit_mmx.probe import mean_features, probe_verdict
from moviekit_mmx.report import MMXReport
from moviekit_mmx.tasks import Ablation, GenreClassification

DIMS = {"visual": (16,), "audio": (4, 8)}


def _context(tmp_path, n=24, seed=5):
    items = tiny_items(n=n, vocabulary=tuple("abcd"), modalities=DIMS, n_clips=6, seed=seed)
    enc = GatedTrailerEncoder(**{**GatedTrailerEncoder.example_config(None), "clips_per_sequence": 3})
    return make_context(tmp_path, items, encoder=enc, head=get_registry().create("mlp", "head", hidden=[8]))


def _direct_probe(train, test, vocabulary, c=1.0, max_iter=1000):
    """Independent: numpy means and standardisation, one scikit-learn LogisticRegression per genre."""

    def feats(items):
        return np.stack(
            [np.concatenate([it.features.arrays["audio"].mean(axis=(0, 1)), it.features.arrays["visual"].mean(axis=0)]) for it in items]
        )

    xtr, xte = feats(train), feats(test)
    mu, sd = xtr.mean(0), xtr.std(0)
    sd[sd == 0] = 1.0
    xtr, xte = (xtr - mu) / sd, (xte - mu) / sd
    ytr = np.array([[g in it.video.labels for g in vocabulary] for it in train], dtype=int)
    yte = np.array([[g in it.video.labels for g in vocabulary] for it in test], dtype=int)
    scores = np.zeros((len(test), len(vocabulary)))
    for j in range(len(vocabulary)):
        if ytr[:, j].min() == ytr[:, j].max():
            scores[:, j] = ytr[0, j]
            continue
        lr = LogisticRegression(C=c, max_iter=max_iter, class_weight="balanced").fit(xtr, ytr[:, j])
        scores[:, j] = lr.predict_proba(xte)[:, 1]
    return yte, scores


def test_mean_features_average_each_expert_over_clips_and_descriptors():
    items = tiny_items(n=3, modalities=DIMS, n_clips=5, seed=1)
    x = mean_features(items)
    assert x.shape == (3, 8 + 16)  # sorted experts: audio (descriptor sets of 8-d) then visual
    it = items[1]
    np.testing.assert_allclose(x[1, :8], it.features.arrays["audio"].mean(axis=(0, 1)), rtol=1e-5)
    np.testing.assert_allclose(x[1, 8:], it.features.arrays["visual"].mean(axis=0), rtol=1e-5)
    capped = mean_features(items, ["visual"], max_clips=2)
    np.testing.assert_allclose(capped[0], items[0].features.arrays["visual"][:2].mean(axis=0), rtol=1e-5)
    with pytest.raises(MoviekitError, match="has no 'motion' features"):
        mean_features(items, ["motion"])


def test_genre_and_ablation_probe_rows_equal_a_direct_sklearn_computation(tmp_path):
    ctx = _context(tmp_path)
    genre = GenreClassification(epochs=2, lr=1e-3).run(ctx)
    train, test = ctx.split("train"), ctx.split("test")
    y, scores = _direct_probe(train, test, ctx.vocabulary)
    saved = np.load(ctx.out_dir / "scores" / "linear_probe.npz")
    np.testing.assert_allclose(saved["scores"], scores, atol=1e-5)
    probe = json.loads((ctx.out_dir / "metrics.json").read_text())["linear_probe"]
    present = y.sum(0) > 0
    p, r, f, _ = precision_recall_fscore_support(y, scores >= 0.3, average="weighted", zero_division=0)
    expected = {
        "auprc_micro": average_precision_score(y[:, present], scores[:, present], average="micro"),
        "auprc_macro": average_precision_score(y[:, present], scores[:, present], average="macro"),
        "auprc_weighted": average_precision_score(y[:, present], scores[:, present], average="weighted"),
        "precision_weighted": p,
        "recall_weighted": r,
        "f1_weighted": f,
    }
    for k, v in expected.items():
        assert probe[k] == pytest.approx(v, abs=1e-6), k
    assert probe["features"] == 8 + 16 and probe["C"] == 1.0
    assert genre.metrics["linear_probe_auprc_macro"] == pytest.approx(expected["auprc_macro"])
    assert genre.metrics["beats_linear_probe"] == (genre.metrics["auprc_macro"] > expected["auprc_macro"])
    # the same row in ablation.csv, beside the random rows
    Ablation(epochs=2, lr=1e-3, settings=["single:visual"]).run(ctx)
    rows = list(csv.DictReader((ctx.out_dir / "ablation.csv").open()))
    assert [r["setting"] for r in rows] == ["single:visual", "linear probe", "random", "random (paper: every genre)"]
    assert float(rows[1]["auprc_macro"]) == pytest.approx(expected["auprc_macro"], abs=1e-4)
    assert float(rows[1]["f1_weighted"]) == pytest.approx(f, abs=1e-4)
    # C reaches the regression: a much stronger penalty gives other scores
    ctx2 = _context(tmp_path / "c")
    GenreClassification(epochs=1, lr=1e-3, probe_c=1e-3, sequence_predictions=False).run(ctx2)
    _, strong = _direct_probe(train, test, ctx.vocabulary, c=1e-3)
    np.testing.assert_allclose(
        np.load(ctx2.out_dir / "scores" / "linear_probe.npz")["scores"], strong, atol=1e-4
    )  # lbfgs stops within its tolerance
    assert not np.allclose(strong, scores, atol=1e-3)


@pytest.mark.parametrize("model_macro, probe_macro, beats", [(0.61, 0.55, True), (0.50, 0.58, False), (0.55, 0.55, False)])
def test_probe_verdict_says_plainly_who_wins(model_macro, probe_macro, beats):
    model = {"auprc_macro": model_macro, "f1_weighted": 0.4}
    probe = {"auprc_macro": probe_macro, "f1_weighted": 0.5}
    got, text = probe_verdict(model, probe)
    assert got is beats
    assert f"{model_macro:.3f} vs {probe_macro:.3f}" in text
    assert ("does not beat" in text) is (not beats)
    assert ("does not earn its keep" in text) is (not beats)
    assert "ahead on 1 of 2" in text if beats else "ahead on 0 of 2" in text
    assert probe_verdict({}, probe)[0] is None


def test_report_carries_the_probe_column_and_sentence(tmp_path):
    ctx = _context(tmp_path, n=8)
    metrics = {"auprc_macro": 0.4, "f1_weighted": 0.3, "threshold": 0.3, "linear_probe": {"auprc_macro": 0.6, "f1_weighted": 0.5, "C": 1.0}}
    (ctx.out_dir / "metrics.json").write_text(json.dumps(metrics))
    MMXReport(tsne=False).run(ctx)
    page = (ctx.out_dir / "report.html").read_text()
    assert "<th>Linear probe</th>" in page
    m = re.search(r'<p class="verdict neg" id="probe-verdict">(.*?)</p>', page, re.S)
    assert m and "does not beat the linear probe" in m.group(1) and "0.400 vs 0.600" in m.group(1)
