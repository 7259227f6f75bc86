import csv
import json

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, precision_recall_fscore_support

from moviekit import Clip, FeatureSet, Item, Video, get_registry
from moviekit.testing import make_context, tiny_items
from moviekit_mmx.model import GatedTrailerEncoder
from moviekit_mmx.tasks import Ablation, FineGrained, GenreClassification, Retrieval, build_model, genre_model_scores, half_retrieval

DIMS = {"visual": (16,), "audio": (4, 8)}


def encoder(**kw):
    return GatedTrailerEncoder(**{**GatedTrailerEncoder.example_config(None), "clips_per_sequence": 3, **kw})


def head():
    return get_registry().create("mlp", "head", hidden=[32])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A genre model and its fine-tuned version on small learnable items."""
    import torch

    torch.manual_seed(0)  # the margin over random holds for other seeds too (0.13-0.28 over seeds 0-5)
    tmp = tmp_path_factory.mktemp("mmx")
    items = tiny_items(n=40, vocabulary=tuple("abcde"), modalities=DIMS, n_clips=12, seed=3)
    ctx = make_context(tmp, items, encoder=encoder(), head=head())
    genre = GenreClassification(epochs=40, lr=1e-3).run(ctx)
    fine = FineGrained(epochs=4, warmup_epochs=1, batch_size=8).run(ctx)
    return ctx, genre, fine


def test_genre_metrics_beat_random_and_match_sklearn(trained):
    ctx, genre, _ = trained
    out = ctx.out_dir
    metrics = json.loads((out / "metrics.json").read_text())
    keys = ["auprc_micro", "auprc_macro", "auprc_weighted", "precision_weighted", "recall_weighted", "f1_weighted"]
    for k in keys:
        assert k in metrics and k in metrics["random_baseline"]
    assert metrics["auprc_macro"] > metrics["random_baseline"]["auprc_macro"] + 0.1
    s = np.load(out / "scores" / "model.npz")
    y, sc = s["y_true"], s["scores"]
    present = y.sum(0) > 0
    assert metrics["auprc_macro"] == pytest.approx(average_precision_score(y[:, present], sc[:, present], average="macro"))
    assert metrics["auprc_micro"] == pytest.approx(average_precision_score(y[:, present], sc[:, present], average="micro"))
    p, r, f, _ = precision_recall_fscore_support(y, sc >= 0.3, average="weighted", zero_division=0)
    assert (metrics["precision_weighted"], metrics["recall_weighted"], metrics["f1_weighted"]) == pytest.approx((p, r, f))
    rows = list(csv.DictReader((out / "per_genre.csv").open()))
    assert [r["genre"] for r in rows] == ctx.vocabulary
    assert [int(r["support"]) for r in rows] == y.sum(0).astype(int).tolist()
    assert genre.metrics["margin_auprc_macro"] == pytest.approx(metrics["auprc_macro"] - metrics["random_baseline"]["auprc_macro"])


def test_genre_writes_the_papers_random_row_and_auprc_names(trained):
    """Table 2's "Random" (every genre predicted), checked against scikit-learn on all-ones predictions
    and against each genre's 2p/(1+p) recomputed from the supports written in per_genre.csv."""
    ctx, genre, _ = trained
    out = ctx.out_dir
    metrics = json.loads((out / "metrics.json").read_text())
    y = np.load(out / "scores" / "model.npz")["y_true"].astype(int)
    p, r, f, _ = precision_recall_fscore_support(y, np.ones_like(y), average="weighted", zero_division=0)
    paper = metrics["paper_random"]
    assert (paper["precision_weighted"], paper["recall_weighted"], paper["f1_weighted"]) == pytest.approx((p, 1.0, f))
    assert r == pytest.approx(1.0)
    rows = list(csv.DictReader((out / "per_genre.csv").open()))
    n = metrics["test_items"]
    support = np.array([int(row["support"]) for row in rows])
    prev = support / n
    assert [float(row["paper_random_f1"]) for row in rows] == pytest.approx((2 * prev / (1 + prev)).tolist())
    assert np.average(2 * prev / (1 + prev), weights=support) == pytest.approx(paper["f1_weighted"])
    assert genre.metrics["paper_random_f1_weighted"] == pytest.approx(f)
    # scikit-learn's AUPRC names, with the paper's swap and the dropped classes stated
    assert set(metrics["auprc_names"]) == {"auprc_micro", "auprc_macro", "auprc_weighted"}
    assert "swaps" in metrics["auprc_note"]
    assert metrics["classes_dropped"] == int((y.sum(0) == 0).sum())
    assert metrics["classes_scored"] + metrics["classes_dropped"] == len(ctx.vocabulary)


def test_label_augmentation_and_sequence_predictions(trained):
    ctx, _, _ = trained
    rows = list(csv.DictReader((ctx.out_dir / "predictions.csv").open()))
    assert [r["id"] for r in rows] == [it.id for it in ctx.items]
    for r in rows:
        given, pred = set(filter(None, r["given"].split("|"))), set(filter(None, r["predicted"].split("|")))
        assert set(filter(None, r["added"].split("|"))) == pred - given
        assert set(filter(None, r["missed"].split("|"))) == given - pred
    seq = list(csv.DictReader((ctx.out_dir / "sequence_predictions.csv").open()))
    assert len(seq) == 4 * len(ctx.items)  # 12 clips / 3 per sequence


def test_saved_model_reloads_to_the_same_embeddings(trained):
    from moviekit import embed_items, load_model

    ctx, genre, _ = trained
    assert sorted(p.name for p in (ctx.out_dir / "models").iterdir()) == [
        "coarse.json",
        "coarse.safetensors",
        "fine.json",
        "fine.safetensors",
    ]
    assert not list(ctx.out_dir.rglob("*.pt"))  # each model on disk once, data only
    coarse = np.load(ctx.out_dir / "embeddings" / "coarse.npz")
    model = load_model(ctx.out_dir / "models" / "coarse")
    assert model.record.task == "mmx_genre" and model.record.vocabulary == ctx.vocabulary
    assert model.record.meta["threshold"] == 0.3 and model.record.metrics["auprc_macro"] == genre.metrics["auprc_macro"]
    enc, hd = build_model(model)
    assert hd is not None
    again = embed_items(enc, ctx.items, ctx)
    assert np.allclose(again, coarse["vectors"], atol=1e-5)
    assert coarse["vectors"].shape == (len(ctx.items), 16)


def test_finetune_writes_silhouette_per_epoch_and_changes_embeddings(trained):
    ctx, _, fine = trained
    rows = list(csv.DictReader((ctx.out_dir / "silhouette.csv").open()))
    assert [int(r["epoch"]) for r in rows] == list(range(5))
    assert all(r["silhouette"] not in ("", "None") for r in rows)
    coarse = np.load(ctx.out_dir / "embeddings" / "coarse.npz")["vectors"]
    fine_v = np.load(ctx.out_dir / "embeddings" / "fine.npz")["vectors"]
    assert not np.allclose(coarse, fine_v)
    # the fine model keeps the coarse genre head (label augmentation from the fine-tuned network, §4.5)
    assert list(ctx.model("fine").record.parts) == ["encoder", "head"] and ctx.model("fine").record.meta["from"] == "coarse"
    assert fine.metrics["silhouette_after"] == pytest.approx(float(rows[-1]["silhouette"]))
    lrs = [float(r["lr"]) for r in rows[1:]]
    assert lrs[0] < lrs[1]  # warm-up, then cosine decay
    assert lrs[-1] < lrs[1]


def test_retrieval_index_neighbours_and_halves(trained):
    import faiss

    ctx, _, _ = trained
    res = Retrieval(k=3).run(ctx)
    data = json.loads((ctx.out_dir / "retrieval.json").read_text())
    assert data["space"] == "fine" and set(data["neighbours"]) == {it.id for it in ctx.items}
    for q, hits in data["neighbours"].items():
        assert len(hits) == 3 and q not in [h["id"] for h in hits]
        assert [h["score"] for h in hits] == sorted([h["score"] for h in hits], reverse=True)
    index = faiss.read_index(str(ctx.out_dir / "index.faiss"))
    assert index.ntotal == len(ctx.items)
    fine = np.load(ctx.out_dir / "embeddings" / "fine.npz")
    v = fine["vectors"] / np.linalg.norm(fine["vectors"], axis=1, keepdims=True)
    sims = v @ v.T
    np.fill_diagonal(sims, -2)
    q0 = ctx.items[0].id
    assert data["neighbours"][q0][0]["id"] == ctx.items[int(sims[0].argmax())].id
    assert res.metrics["half_top1"] is not None
    labels = {it.id: set(it.video.labels) for it in ctx.items}
    jac = [len(labels[q] & labels[h[0]["id"]]) / len(labels[q] | labels[h[0]["id"]]) for q, h in data["neighbours"].items()]
    assert res.metrics["top1_genre_jaccard"] == pytest.approx(np.mean(jac))


def distinct_items(n=12, n_clips=12, seed=0):
    """Trailers whose clips share a trailer-specific signature: each half identifies its trailer."""
    rng = np.random.default_rng(seed)
    items = []
    for i in range(n):
        sig = {m: rng.standard_normal(d) * 3 for m, d in DIMS.items()}
        arrays = {m: (sig[m] + 0.02 * rng.standard_normal((n_clips, *d))).astype(np.float32) for m, d in DIMS.items()}
        vid = f"t{i}"
        clips = [
            Clip(video_id=vid, index=j, shot_index=j, start_frame=j * 10, end_frame=j * 10 + 9, start_time=j, end_time=j + 0.9)
            for j in range(n_clips)
        ]
        items.append(
            Item(
                video=Video(id=vid, labels=["a"] if i % 2 else ["b"], split="train" if i % 3 else "test"),
                clips=clips,
                features=FeatureSet(video_id=vid, arrays=arrays),
            )
        )
    return items


def test_retrieval_finds_own_other_half(tmp_path):
    import torch

    torch.manual_seed(0)
    items = distinct_items()
    ctx = make_context(tmp_path, items, encoder=encoder(), head=head())
    GenreClassification(epochs=5, lr=1e-3).run(ctx)
    res = Retrieval(k=2).run(ctx)
    assert res.metrics["half_top1"] == 1.0
    # and the check can fail: trailers that all look alike do not find their own halves
    same = distinct_items(seed=1)
    for it in same:
        for m in it.features.arrays:
            it.features.arrays[m] = np.random.default_rng(int(it.id[1:])).standard_normal(it.features.arrays[m].shape).astype(np.float32)
    enc, _ = build_model(ctx.model("coarse"))
    assert half_retrieval(enc, same, ctx) < 0.5


def test_ablation_rows_and_expert_scores(tmp_path):
    items = tiny_items(n=16, modalities={"visual": (16,), "audio": (4, 8), "motion": (5,)}, n_clips=9, seed=2)
    ctx = make_context(tmp_path, items, encoder=encoder(), head=head())
    res = Ablation(epochs=3, lr=1e-3).run(ctx)
    rows = list(csv.DictReader((ctx.out_dir / "ablation.csv").open()))
    settings = [r["setting"] for r in rows]
    assert settings == [
        "single:audio", "single:motion", "single:visual",
        "gated:audio+motion", "gated:audio+visual", "gated:motion+visual",
        "concat:audio+motion+visual", "gated:audio+motion+visual", "linear probe", "random", "random (paper: every genre)",
    ]  # fmt: skip
    y = np.load(ctx.out_dir / "scores" / "expert_audio.npz")["y_true"].astype(int)
    p, r, f, _ = precision_recall_fscore_support(y, np.ones_like(y), average="weighted", zero_division=0)
    paper = rows[-1]
    assert (float(paper["precision_weighted"]), float(paper["recall_weighted"]), float(paper["f1_weighted"])) == pytest.approx(
        (p, r, f), abs=1e-4
    )
    assert paper["auprc_macro"] == ""  # predicting every genre ranks nothing: no AUPRC
    for m in ("audio", "motion", "visual"):
        assert (ctx.out_dir / "scores" / f"expert_{m}.npz").is_file()
    g = float(rows[settings.index("gated:audio+motion+visual")]["auprc_macro"])
    c = float(rows[settings.index("concat:audio+motion+visual")]["auprc_macro"])
    assert res.metrics["gating_beats_concat"] == (g > c)
    with pytest.raises(Exception, match="FUSION:EXPERT"):
        Ablation(epochs=1, settings=["mix:visual"]).run(ctx)


def test_ablation_reuses_the_genre_model_only_when_trained_alike(tmp_path):
    items = tiny_items(n=16, modalities={"visual": (16,), "audio": (4, 8)}, n_clips=9, seed=4)
    ctx = make_context(tmp_path, items, encoder=encoder(), head=head())
    genre = GenreClassification(epochs=3, lr=1e-3).run(ctx)
    Ablation(epochs=3, lr=1e-3, settings=["gated:audio+visual", "single:audio"]).run(ctx)
    rows = {r["setting"]: r for r in csv.DictReader((ctx.out_dir / "ablation.csv").open())}
    assert float(rows["gated:audio+visual"]["auprc_macro"]) == pytest.approx(genre.metrics["auprc_macro"], abs=1e-4)
    train, test = ctx.split("train"), ctx.split("test")
    saved = np.load(ctx.out_dir / "scores" / "model.npz")["scores"]

    def reused(cfg, experts, train=train, **update):
        variant = ctx.encoder.config.model_copy(update={"experts": experts, **update})
        return genre_model_scores(ctx, cfg, variant, DIMS, train, test)

    np.testing.assert_array_equal(reused(Ablation.Config(epochs=3, lr=1e-3), ["audio", "visual"]), saved)
    # other training settings, experts, encoder settings or items: the full gated setting is trained afresh
    assert reused(Ablation.Config(epochs=1, lr=1e-3), ["audio", "visual"]) is None
    assert reused(Ablation.Config(epochs=3, lr=1e-3, level="sequence"), ["audio", "visual"]) is None
    assert reused(Ablation.Config(epochs=3, lr=1e-3), ["visual"]) is None
    assert reused(Ablation.Config(epochs=3, lr=1e-3), ["audio", "visual"], fusion="concat") is None
    assert reused(Ablation.Config(epochs=3, lr=1e-3), ["audio", "visual"], train=train[1:]) is None


def test_mmx_retrieve_by_id_matches_the_run_and_suggests_ids(trained):
    from moviekit import MoviekitError
    from moviekit_mmx.commands import query_run

    ctx, _, _ = trained
    Retrieval(k=4).run(ctx)
    data = json.loads((ctx.out_dir / "retrieval.json").read_text())
    q = ctx.items[2].id
    got = query_run(ctx.out_dir, video_id=q, k=4)
    assert [n["id"] for n in got["neighbours"]] == [n["id"] for n in data["neighbours"][q]]
    assert got["neighbours"][0]["genres"] == next(it.video.labels for it in ctx.items if it.id == got["neighbours"][0]["id"])
    with pytest.raises(MoviekitError, match=f"did you mean {q}"):
        query_run(ctx.out_dir, video_id=q + "x", k=4)
    with pytest.raises(MoviekitError, match="exactly one of --id or --video"):
        query_run(ctx.out_dir, k=4)


def test_finetune_resumes_from_its_checkpoint_like_an_uninterrupted_run(trained, tmp_path, monkeypatch):
    """mmx_finetune runs on the core's train_loop: killed mid-way, it resumes to the very same result."""
    import torch

    from moviekit import training

    ctx0, _, _ = trained
    coarse = ctx0.model("coarse")

    def finetune(run: str):
        torch.manual_seed(1)
        ctx = make_context(tmp_path / run, ctx0.items, encoder=encoder(), head=head())
        ctx.store = make_context(tmp_path / "shared", ctx0.items).store  # both attempts see one checkpoint folder
        ctx.models["coarse"] = coarse
        FineGrained(epochs=4, warmup_epochs=1, batch_size=8, checkpoint_every=2, clip_grad=1.0).run(ctx)
        return (ctx.out_dir / "silhouette.csv").read_text(), np.load(ctx.out_dir / "embeddings" / "fine.npz")["vectors"]

    straight = finetune("straight")

    def die(tag, epoch, history):
        if tag == "mmx-finetune" and epoch == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(training, "epoch_done", die)
    with pytest.raises(KeyboardInterrupt):
        finetune("killed")
    epochs = []
    monkeypatch.setattr(training, "epoch_done", lambda tag, epoch, history: epochs.append(epoch))
    resumed = finetune("killed")  # from the checkpoint of epoch 2, silhouette rows included
    assert epochs == [3, 4]
    assert resumed[0] == straight[0] and len(straight[0].splitlines()) == 1 + 5
    np.testing.assert_array_equal(resumed[1], straight[1])


def _finetune_again(ctx0, tmp_path, **config):
    """mmx_finetune once more from the fixture's coarse model, in a fresh run folder."""
    import torch

    torch.manual_seed(2)
    ctx = make_context(tmp_path, ctx0.items, encoder=encoder(), head=head())
    ctx.models["coarse"] = ctx0.model("coarse")
    res = FineGrained(**{"epochs": 2, "warmup_epochs": 1, "batch_size": 8, **config}).run(ctx)
    return ctx, res


def test_finetune_optimiser_is_adam_with_amsgrad_unless_switched_off(trained, tmp_path, monkeypatch):
    import torch

    built = []

    class Recording(torch.optim.Adam):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            built.append(self)

    monkeypatch.setattr(torch.optim, "Adam", Recording)
    ctx0, _, _ = trained
    _finetune_again(ctx0, tmp_path / "default", epochs=1, warmup_epochs=0, label_augmentation="off")
    assert len(built) == 1 and all(g["amsgrad"] is True for g in built[0].param_groups)
    assert built[0].defaults["lr"] == pytest.approx(1e-4)  # the paper's self-supervised learning rate
    _finetune_again(ctx0, tmp_path / "plain", epochs=1, warmup_epochs=0, amsgrad=False, label_augmentation="off")
    assert len(built) == 2 and all(g["amsgrad"] is False for g in built[1].param_groups)


def _scores_of(path):
    rows = list(csv.DictReader(path.open()))
    return rows, np.array([list(json.loads(r["scores"]).values()) for r in rows])


def test_label_augmentation_from_the_fine_tuned_or_the_coarse_network(trained, tmp_path):
    from moviekit import predict_scores

    ctx0, _, fine = trained
    # default: the fine-tuned encoder with the kept coarse head, named in the metrics
    assert fine.metrics["label_augmentation"] == "fine" and fine.metrics["label_augmentation_model"] == "fine"
    rows, got = _scores_of(ctx0.out_dir / "label_augmentation.csv")
    assert {r["source"] for r in rows} == {"fine"} and [r["id"] for r in rows] == [it.id for it in ctx0.items]
    enc, hd = build_model(ctx0.model("fine"))
    fine_scores = predict_scores(enc, hd, ctx0.items, ctx0)
    np.testing.assert_allclose(got, fine_scores, atol=6e-5)  # the file rounds to 4 decimals
    coarse_enc, coarse_hd = build_model(ctx0.model("coarse"))
    for name, t in coarse_hd.state_dict().items():  # the head is carried over unchanged
        np.testing.assert_array_equal(hd.state_dict()[name].numpy(), t.numpy())
    coarse_scores = predict_scores(coarse_enc, coarse_hd, ctx0.items, ctx0)
    assert np.abs(got - coarse_scores).max() > 2e-4  # a few fine-tuning epochs move the scores, beyond rounding
    for r, s in zip(rows, got):
        assert set(filter(None, r["predicted"].split("|"))) == {g for g, p in zip(ctx0.vocabulary, s) if p >= 0.3}
    # selected: the coarse network fine-tuning started from (the same labels as mmx_genre's predictions.csv)
    ctx, res = _finetune_again(ctx0, tmp_path / "coarse", label_augmentation="coarse")
    assert res.metrics["label_augmentation"] == "coarse" and res.metrics["label_augmentation_model"] == "coarse"
    rows_c, got_c = _scores_of(ctx.out_dir / "label_augmentation.csv")
    assert {r["source"] for r in rows_c} == {"coarse"}
    np.testing.assert_allclose(got_c, coarse_scores, atol=6e-5)
    np.testing.assert_array_equal(got_c, _scores_of(ctx0.out_dir / "predictions.csv")[1])
    assert res.metrics["labels_added"] == sum(len(r["added"].split("|")) for r in rows_c if r["added"])
    # off: no file, no source
    ctx, res = _finetune_again(ctx0, tmp_path / "off", label_augmentation="off")
    assert not (ctx.out_dir / "label_augmentation.csv").exists() and "label_augmentation_model" not in res.metrics


def test_label_augmentation_needs_a_genre_head_and_says_which_key(trained, tmp_path):
    from moviekit import MoviekitError, TrainedModel

    ctx0, _, _ = trained
    coarse = ctx0.model("coarse")
    enc, _ = build_model(coarse)
    bare = TrainedModel.from_modules(
        "bare", {"encoder": (coarse.record.parts["encoder"], enc)}, task="x",
        input_dims=coarse.record.input_dims, vocabulary=coarse.record.vocabulary, metrics={}, meta={},
    )  # fmt: skip
    ctx = make_context(tmp_path, ctx0.items, encoder=encoder(), head=head())
    ctx.models["bare"] = bare
    with pytest.raises(MoviekitError, match="mmx_finetune.label_augmentation: model 'bare' has no genre head"):
        FineGrained(epochs=1, warmup_epochs=0, init="bare").run(ctx)
    res = FineGrained(epochs=1, warmup_epochs=0, batch_size=8, init="bare", label_augmentation="off").run(ctx)
    assert list(ctx.model("fine").record.parts) == ["encoder"] and res.metrics["label_augmentation"] == "off"
