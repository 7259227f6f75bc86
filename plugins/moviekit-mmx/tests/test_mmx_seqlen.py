"""Table 5 (mmx_seqlen): one row per sequence length, each trained like mmx_genre, metrics checked against scikit-learn."""

import csv
import json

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, precision_recall_fscore_support

from moviekit import get_registry
from moviekit.testing import make_context, tiny_items
from moviekit_mmx.model import GatedTrailerEncoder
from moviekit_mmx.seqlen import SequenceLength
from moviekit_mmx.tasks import GenreClassification

DIMS = {"visual": (16,), "audio": (4, 8)}


def context(tmp_path):
    items = tiny_items(n=16, modalities=DIMS, n_clips=9, seed=4)
    enc = GatedTrailerEncoder(**{**GatedTrailerEncoder.example_config(None), "clips_per_sequence": 3})
    return make_context(tmp_path, items, encoder=enc, head=get_registry().create("mlp", "head", hidden=[16]))


@pytest.fixture(scope="module")
def seqlen_run(tmp_path_factory):
    ctx = context(tmp_path_factory.mktemp("seqlen"))
    GenreClassification(epochs=2, lr=1e-3).run(ctx)
    result = SequenceLength(epochs=2, lr=1e-3, lengths=[1, 3, 20]).run(ctx)
    return ctx, result


def test_one_row_per_length_with_sklearns_metrics(seqlen_run):
    ctx, result = seqlen_run
    rows = list(csv.DictReader((ctx.out_dir / "seqlen.csv").open()))
    assert [int(r["clips_per_sequence"]) for r in rows] == [1, 3, 20]
    assert list(rows[0])[:5] == ["clips_per_sequence", "f1_weighted", "auprc_weighted", "precision_weighted", "recall_weighted"]
    metrics = json.loads((ctx.out_dir / "metrics.json").read_text())
    assert "auprc_macro" in metrics  # mmx_genre's metrics are kept beside the table
    table = metrics["sequence_length"]["rows"]
    assert [r["clips_per_sequence"] for r in table] == [1, 3, 20]
    for row, saved in zip(rows, table):
        s = np.load(ctx.out_dir / "seqlen" / f"scores_{row['clips_per_sequence']}.npz")
        y, sc = s["y_true"].astype(int), s["scores"]
        assert s["ids"].tolist() == [it.id for it in ctx.split("test")]
        present = y.sum(0) > 0
        p, r, f, _ = precision_recall_fscore_support(y, sc >= 0.3, average="weighted", zero_division=0)
        expected = {
            "f1_weighted": f,
            "precision_weighted": p,
            "recall_weighted": r,
            "auprc_weighted": average_precision_score(y[:, present], sc[:, present], average="weighted"),
            "auprc_micro": average_precision_score(y[:, present], sc[:, present], average="micro"),
            "auprc_macro": average_precision_score(y[:, present], sc[:, present], average="macro"),
        }
        for k, v in expected.items():
            assert float(row[k]) == pytest.approx(v) and saved[k] == pytest.approx(v)
    assert result.metrics["f1_weighted_len20"] == pytest.approx(float(rows[2]["f1_weighted"]))


def test_each_length_is_its_own_model_and_the_genre_model_is_reused_for_its_length(seqlen_run):
    ctx, _ = seqlen_run
    rows = {int(r["clips_per_sequence"]): r for r in csv.DictReader((ctx.out_dir / "seqlen.csv").open())}
    assert rows[3]["model"] == "mmx_genre" and rows[1]["model"] == rows[20]["model"] == "trained"
    genre = np.load(ctx.out_dir / "scores" / "model.npz")["scores"]
    np.testing.assert_array_equal(np.load(ctx.out_dir / "seqlen" / "scores_3.npz")["scores"], genre)
    assert not np.allclose(np.load(ctx.out_dir / "seqlen" / "scores_1.npz")["scores"], genre)
    # 9 clips: every trailer holds a whole sequence of 1 or 3 clips, none of 20 (one zero-padded sequence each)
    n = len(ctx.split("test"))
    assert [int(rows[k]["trailers_with_a_sequence"]) for k in (1, 3, 20)] == [n, n, 0]


def test_a_fresh_run_gives_the_same_table(seqlen_run, tmp_path):
    """Each length trains from its own seed: the table does not depend on what ran before it."""
    ctx0, _ = seqlen_run
    ctx = context(tmp_path)
    SequenceLength(epochs=2, lr=1e-3, lengths=[20, 1]).run(ctx)  # another order, no mmx_genre before it
    for length in (1, 20):
        a = np.load(ctx.out_dir / "seqlen" / f"scores_{length}.npz")["scores"]
        np.testing.assert_array_equal(a, np.load(ctx0.out_dir / "seqlen" / f"scores_{length}.npz")["scores"])


def test_lengths_are_checked():
    with pytest.raises(ValueError, match="at least 1"):
        SequenceLength.Config(lengths=[0, 9])
    with pytest.raises(ValueError, match="repeat"):
        SequenceLength.Config(lengths=[9, 9])


def test_report_shows_table5_and_a_few_trailers_sequences(seqlen_run):
    import re

    from moviekit_mmx.report import MMXReport

    ctx, _ = seqlen_run
    MMXReport(tsne=False, sequence_examples=2).run(ctx)
    page = (ctx.out_dir / "report.html").read_text()
    seqlen = page.split('<section id="seqlen">')[1].split("</section>")[0]
    rows = list(csv.DictReader((ctx.out_dir / "seqlen.csv").open()))
    cells = re.findall(r"<tr><th>(\d+)</th><td>(?:<strong>)?([0-9.]+)", seqlen)
    assert [(int(n), float(f1)) for n, f1 in cells] == [(int(r["clips_per_sequence"]), round(float(r["f1_weighted"]), 3)) for r in rows]
    assert "0.456 / 0.451 / 0.475 / 0.484" in seqlen and "0.495 / 0.503 / 0.493 / 0.576" in seqlen  # the paper's rows for 1 and 20
    sequences = page.split('<section id="sequences">')[1].split("</section>")[0]
    shown = re.findall(r"<h3>(.*?) <small>\((.*?)\)</small></h3>", sequences)
    test = [it.id for it in ctx.split("test")]
    assert shown == [(test[0], "test"), (test[1], "test")]
    assert sequences.count("data:image/png") == 2
    assert "scores_1" not in page  # the per-length scores are not shown as experts
