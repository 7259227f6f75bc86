"""Tests of the mmx_report task on a fake run directory (no network, a few seconds)."""

from __future__ import annotations

import base64
import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest

from moviekit import Clip, Item, Video, write_csv
from moviekit.testing import check_component, make_context, write_test_video
from moviekit_mmx.report import MMXReport, gating_verdict, safe_id

GENRES = ["Action", "Animation", "Comedy", "Documentary", "Drama", "Horror"]
EXPERTS = ["image", "motion", "audio"]
BOLD_ID = "tt<b>07</b>"
VIDEO_ID = "trailer-with-video"
SECTIONS = [
    "Headline metrics",
    "Per-genre results",
    "Experts and fusion",
    "Precision–recall curves",
    "Embedding space",
    "Silhouette score",
    "Retrieval examples",
    "Sequence length (Table 5)",
    "Genres along the trailer (Fig. 8)",
]
METRIC_KEYS = ["auprc_micro", "auprc_macro", "auprc_weighted", "precision_weighted", "recall_weighted", "f1_weighted"]


def make_items(tmp_path: Path, n: int = 24, seed: int = 0) -> list[Item]:
    """Features-only items with genres, one with an id that needs escaping and one with a real video."""
    rng = np.random.default_rng(seed)
    items = []
    for i in range(n):
        vid = BOLD_ID if i == 7 else VIDEO_ID if i == 3 else f"tt{i:02d}"
        labels = sorted(rng.choice(GENRES, size=1 + i % 3, replace=False).tolist())
        path, clips = None, []
        if vid == VIDEO_ID:
            # four 1-second shots of red, green, blue, yellow at 12 fps: the middle clip (index 2) is blue
            path = write_test_video(tmp_path / "trailer.mp4", size=(64, 48), audio=False)
            clips = [
                Clip(
                    video_id=vid,
                    index=j,
                    shot_index=j,
                    start_frame=12 * j,
                    end_frame=12 * j + 12,
                    start_time=float(j),
                    end_time=float(j + 1),
                )
                for j in range(4)
            ]
        items.append(Item(video=Video(id=vid, path=path, labels=labels, split="test"), clips=clips))
    return items


def _metrics(rng: np.random.Generator, lo: float, hi: float) -> dict[str, float]:
    return {k: float(rng.uniform(lo, hi)) for k in METRIC_KEYS}


def write_ablation(out: Path, gated_macro: float, concat_macro: float) -> None:
    rng = np.random.default_rng(1)
    rows = [{"setting": e.capitalize(), "experts": e, "fusion": "single", **_metrics(rng, 0.3, 0.5)} for e in EXPERTS]
    rows.append({"setting": "Image + Motion", "experts": "image|motion", "fusion": "gated", **_metrics(rng, 0.4, 0.55)})
    rows.append(
        {
            "setting": "Naive Concat",
            "experts": "|".join(EXPERTS),
            "fusion": "concat",
            **_metrics(rng, 0.4, 0.55),
            "auprc_macro": concat_macro,
        }
    )
    rows.append(
        {"setting": "MMX (gated)", "experts": "|".join(EXPERTS), "fusion": "gated", **_metrics(rng, 0.4, 0.6), "auprc_macro": gated_macro}
    )
    rows.append({"setting": "random", "experts": "", "fusion": "random", **_metrics(rng, 0.1, 0.2)})
    with (out / "ablation.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["setting", "experts", "fusion", *METRIC_KEYS])
        w.writeheader()
        w.writerows(rows)


def build_run_dir(out: Path, items: list[Item], gated_macro: float = 0.612, concat_macro: float = 0.58, seed: int = 0) -> None:
    """Every input of the report: random but well-formed, with scores that track the labels."""
    rng = np.random.default_rng(seed)
    ids = np.array([it.id for it in items])
    y = np.array([[g in it.video.labels for g in GENRES] for it in items], dtype=np.int64)
    out.mkdir(parents=True, exist_ok=True)
    (out / "scores").mkdir(exist_ok=True)
    for name, signal in [("model", 2.0), *((f"expert_{e}", s) for e, s in zip(EXPERTS, (1.4, 0.9, 0.4)))]:
        logits = signal * (2 * y - 1) + rng.standard_normal(y.shape)
        np.savez(out / "scores" / f"{name}.npz", ids=ids, genres=np.array(GENRES), y_true=y, scores=1 / (1 + np.exp(-logits)))
    metrics = {
        **_metrics(rng, 0.5, 0.7),
        "threshold": 0.3,
        "random_baseline": _metrics(rng, 0.2, 0.4),
        "classes_scored": len(GENRES),
        "train_loss": [0.9, 0.5],
    }
    (out / "metrics.json").write_text(json.dumps(metrics))
    with (out / "per_genre.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["genre", "support", "auprc", "precision", "recall", "f1", "random_auprc"])
        for j, g in enumerate(GENRES):
            w.writerow([g, int(y[:, j].sum()), *np.round(rng.uniform(0.3, 0.9, 4), 4), round(float(y[:, j].mean()), 4)])
    write_ablation(out, gated_macro, concat_macro)
    (out / "embeddings").mkdir(exist_ok=True)
    centres = rng.standard_normal((len(GENRES), 32)) * 4
    first = np.array([GENRES.index(it.video.labels[0]) for it in items])
    labels = np.array(["|".join(it.video.labels) for it in items])
    coarse = centres[first] + rng.standard_normal((len(items), 32))
    fine = 0.3 * centres[first] + rng.standard_normal((len(items), 32)) * 2
    for space, vec in (("coarse", coarse), ("fine", fine)):
        np.savez(
            out / "embeddings" / f"{space}.npz",
            ids=ids,
            vectors=vec.astype(np.float32),
            labels=labels,
            split=np.array(["test"] * len(items)),
        )
    with (out / "silhouette.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["epoch", "loss", "silhouette"])
        w.writerow([0, "", 0.41])
        for e in range(1, 11):
            w.writerow([e, round(3.0 - 0.15 * e, 3), round(0.41 - 0.03 * e, 3)])
    unit = fine / np.linalg.norm(fine, axis=1, keepdims=True)
    sim = unit @ unit.T
    k = 4
    neighbours = {}
    for i, q in enumerate(ids):
        order = [j for j in np.argsort(-sim[i]) if j != i][:k]
        neighbours[str(q)] = [{"id": str(ids[j]), "score": float(sim[i, j])} for j in order]
    examples = [VIDEO_ID, BOLD_ID, str(ids[0])]
    (out / "retrieval.json").write_text(
        json.dumps({"space": "fine", "metric": "cosine", "k": k, "neighbours": neighbours, "examples": examples, "half_top1": 0.75})
    )
    seqlen = [
        {"clips_per_sequence": n, **_metrics(rng, 0.3, 0.6), "trailers_with_a_sequence": 20, "trailers": 24, "model": "trained"}
        for n in (1, 5, 9, 20)
    ]
    write_csv(out / "seqlen.csv", seqlen)
    (out / "sequence_predictions").mkdir(exist_ok=True)
    for it in items:
        seqs = [
            {
                "sequence": s,
                "clips": [s, s + 1],
                "start_time": float(s),
                "end_time": s + 0.9,
                "scores": rng.uniform(0, 1, len(GENRES)).round(3).tolist(),
                "predicted": [GENRES[s]],
            }
            for s in range(2)
        ]
        rec = {
            "id": it.id,
            "split": "test",
            "given": it.video.labels,
            "level": "trailer",
            "genres": GENRES,
            "trailer": {"predicted": it.video.labels},
            "sequences": seqs,
        }
        (out / "sequence_predictions" / f"{safe_id(it.id)}.json").write_text(json.dumps(rec))


def run_report(tmp_path: Path, items: list[Item] | None = None, build: bool = True, **config) -> tuple[object, str, Path]:
    items = items if items is not None else make_items(tmp_path)
    ctx = make_context(tmp_path, items=items, vocabulary=GENRES)
    if build:
        build_run_dir(ctx.out_dir, items, **config.pop("run_dir", {}))
    result = MMXReport(config).run(ctx)
    page = (ctx.out_dir / "report.html").read_text()
    return result, page, ctx.out_dir


def test_full_report_has_every_section_and_figure(tmp_path):
    result, page, out = run_report(tmp_path)
    for title in SECTIONS:
        assert title in page
    assert "Not produced by this run" not in page
    assert "Could not render" not in page
    assert result.metrics["sections"] == 9
    # one embedded PNG per figure: PR curves for model + 3 experts, t-SNE, silhouette, 3 trailers' sequence scores
    pngs = re.findall(r'<img class="fig" src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(pngs) == 9 == result.metrics["figures"]
    for b64 in pngs:
        assert base64.b64decode(b64)[:8] == b"\x89PNG\r\n\x1a\n"
    # self-contained: nothing fetched from elsewhere
    assert not re.search(r'(src|href)="(https?:)?//', page)
    assert "<script" not in page
    # tables: headline margin, per-genre random row, ablation
    assert "Random baseline" in page and "Margin" in page and "threshold <strong>0.3</strong>" in page
    assert "<th>Random (random scores)</th>" in page and "<th>Random (paper: every genre)</th>" in page and "<th>Support</th>" in page
    for g in GENRES:
        assert f"<th>{g}</th>" in page
    assert "Naive Concat" in page and "MMX (gated)" in page


def test_keyframe_is_the_middle_of_the_middle_clip(tmp_path):
    from PIL import Image

    result, page, out = run_report(tmp_path)
    rel = f"keyframes/{safe_id(VIDEO_ID)}.jpg"
    assert rel in result.files and (out / rel).is_file()
    for f in result.files:
        assert (out / f).exists()
    img = Image.open(out / rel).convert("RGB")
    assert img.width == 160
    r, g, b = np.asarray(img, dtype=float).reshape(-1, 3).mean(axis=0)
    assert b > 120 and r < 90 and g < 90, "middle clip (index 2) of the test video is blue"
    assert page.count('src="data:image/jpeg;base64,') >= 1
    # items without a video file get a grey placeholder with their id
    assert 'class="placeholder"' in page


def test_keyframe_width_config(tmp_path):
    from PIL import Image

    result, _, out = run_report(tmp_path, keyframe_width=96, tsne=False)
    img = Image.open(out / f"keyframes/{safe_id(VIDEO_ID)}.jpg")
    assert img.width == 96
    assert "tsne: false" in _
    assert result.metrics["sections"] == 8


def test_ids_and_strings_are_escaped(tmp_path):
    _, page, _ = run_report(tmp_path, title="Run <script>alert(1)</script>")
    assert BOLD_ID not in page
    assert "tt&lt;b&gt;07&lt;/b&gt;" in page
    assert "<script>" not in page
    assert "Run &lt;script&gt;" in page


@pytest.mark.parametrize(
    "gated, concat, verb",
    [(0.612, 0.580, "beats"), (0.540, 0.571, "does not beat"), (0.55, 0.55, "does not beat")],
)
def test_gating_sentence_is_honest(tmp_path, gated, concat, verb):
    _, page, _ = run_report(tmp_path, tsne=False, run_dir={"gated_macro": gated, "concat_macro": concat})
    m = re.search(r'<p class="verdict[^"]*" id="gating-verdict">(.*?)</p>', page, re.S)
    assert m
    text = m.group(1)
    assert f"<strong>{verb}</strong> naive concatenation" in text
    assert f"{gated:.3f} vs {concat:.3f}" in text
    assert f"({gated - concat:+.3f})" in text
    assert "all experts" in text  # the gated row with all experts, not the Image + Motion pair


def test_gating_verdict_without_a_concat_row():
    rows = [{"setting": "G", "experts": "a|b", "fusion": "gated", "auprc_macro": "0.5"}]
    assert "cannot be compared" in gating_verdict(rows)
    assert "fusion=concat" in gating_verdict(rows)


def test_no_inputs_still_writes_a_report(tmp_path):
    result, page, out = run_report(tmp_path, build=False)
    assert (out / "report.html").is_file()
    assert result.files == ["report.html"]
    assert result.metrics["sections"] == 0
    assert page.count("Not produced by this run") == 9
    for name in (
        "metrics.json",
        "per_genre.csv",
        "ablation.csv",
        "scores/model.npz",
        "embeddings/coarse.npz",
        "silhouette.csv",
        "retrieval.json",
        "seqlen.csv",
        "sequence_predictions/",
    ):
        assert f"<code>{name}</code>" in page
    assert "add task" in page
    assert "data:image/png" not in page


def test_partial_and_broken_inputs_give_notes(tmp_path):
    items = make_items(tmp_path)
    ctx = make_context(tmp_path, items=items, vocabulary=GENRES)
    build_run_dir(ctx.out_dir, items)
    out = ctx.out_dir
    (out / "embeddings" / "fine.npz").unlink()
    (out / "scores" / "model.npz").unlink()
    (out / "retrieval.json").write_text("{not json")
    np.savez(out / "scores" / "expert_broken.npz", ids=np.array(["a"]))
    result = MMXReport().run(ctx)
    page = (out / "report.html").read_text()
    assert "<code>embeddings/fine.npz</code>" in page  # t-SNE shows coarse, notes the missing fine
    assert "<code>scores/model.npz</code>" in page
    assert "Unreadable" in page and "expert_broken.npz lacks" in page
    assert "Could not render this section: JSONDecodeError" in page
    assert result.metrics["sections"] == 8


def test_tiny_embeddings_do_not_break_tsne(tmp_path):
    items = make_items(tmp_path, n=4)
    ctx = make_context(tmp_path, items=items, vocabulary=GENRES)
    build_run_dir(ctx.out_dir, items)
    result = MMXReport().run(ctx)
    page = (ctx.out_dir / "report.html").read_text()
    assert "t-SNE needs at least 5" in page
    assert result.metrics["sections"] == 9


def test_ctx_results_are_listed(tmp_path):
    from moviekit import TaskResult

    items = make_items(tmp_path)
    ctx = make_context(tmp_path, items=items, vocabulary=GENRES)
    ctx.results["0:mmx_genre"] = TaskResult(metrics={"auprc_macro": 0.5123, "random_auprc_macro": 0.2}, files=["metrics.json"])
    MMXReport().run(ctx)
    page = (ctx.out_dir / "report.html").read_text()
    assert "0:mmx_genre" in page and "auprc_macro = 0.512" in page


def test_safe_id():
    assert safe_id("tt0001") == "tt0001"
    assert safe_id("a/b") != safe_id("a_b")
    assert "/" not in safe_id("../../etc/passwd") and not safe_id("../x").startswith(".")


def test_contract(tmp_path):
    result = check_component("mmx_report", tmp_path)
    assert "report.html" in result.files


def test_config_schema_has_descriptions():
    props = MMXReport.Config.model_json_schema()["properties"]
    assert {"title", "max_examples", "tsne", "keyframe_width"} <= set(props)
    assert all(p.get("description") for p in props.values())
    assert MMXReport.Config().max_examples == 5 and MMXReport.Config().keyframe_width == 160


def _wide_rows(page: str, metric: str) -> dict[str, list[str]]:
    """The per-genre table for ``metric`` as {row label: cell texts}."""
    table = re.search(rf'<table class="wide per-genre-{metric}">(.*?)</table>', page, re.DOTALL)
    assert table, f"no per-genre {metric} table"
    out = {}
    for tr in re.findall(r"<tbody>.*", table.group(1), re.DOTALL)[0].split("<tr>")[1:]:
        cells = [re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<t[hd]>(.*?)</t[hd]>", tr, re.DOTALL)]
        out[cells[0]] = cells[1:]
    return out


def test_per_genre_table_is_f1_at_the_threshold_then_auprc(tmp_path):
    """Table 2's layout: F1 at the task threshold (0.3) by default, checked against scikit-learn's
    f1_score on the scores files; the every-genre row recomputed from the supports; AUPRC second."""
    from sklearn.metrics import average_precision_score, f1_score

    items = make_items(tmp_path)
    ctx = make_context(tmp_path, items=items, vocabulary=GENRES)
    build_run_dir(ctx.out_dir, items)
    metrics = json.loads((ctx.out_dir / "metrics.json").read_text())
    metrics.update(test_items=len(items), classes_dropped=0)
    (ctx.out_dir / "metrics.json").write_text(json.dumps(metrics))
    MMXReport().run(ctx)
    page = (ctx.out_dir / "report.html").read_text()
    assert page.index("per-genre-f1") < page.index("per-genre-auprc")
    f1_rows, auprc_rows = _wide_rows(page, "f1"), _wide_rows(page, "auprc")
    n = len(GENRES)
    for e in EXPERTS:
        data = np.load(ctx.out_dir / "scores" / f"expert_{e}.npz")
        y, s = data["y_true"], data["scores"]
        expected = f1_score(y, s >= 0.3, average=None, zero_division=0)
        assert [float(c) for c in f1_rows[f"{e}†"][:n]] == pytest.approx(expected.tolist(), abs=0.006)
        ap = [average_precision_score(y[:, j], s[:, j]) for j in range(n)]
        assert [float(c) for c in auprc_rows[f"{e}†"][:n]] == pytest.approx(ap, abs=0.006)
    supports = np.array([int(c) for c in f1_rows["Support"][:n]])
    prev = supports / len(items)
    assert [float(c) for c in f1_rows["Random (paper: every genre)"][:n]] == pytest.approx((2 * prev / (1 + prev)).tolist(), abs=0.006)
    f1w, aw, pw, rw = f1_rows["Random (paper: every genre)"][n:]
    assert aw == "–"  # predicting every genre ranks nothing
    f1w, pw, rw = float(f1w), float(pw), float(rw)
    assert (f1w, pw, rw) == pytest.approx(
        (np.average(2 * prev / (1 + prev), weights=supports), np.average(prev, weights=supports), 1.0), abs=6e-4
    )
    assert "Random (paper: every genre)" not in auprc_rows
    assert "swaps the names micro and macro" in page
