"""`moviekit movieclip hierarchy` and `moviekit movieclip label` (tiny RANDOM CLIP model: plumbing, not accuracy)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

import moviekit
from moviekit import Video, get_registry
from moviekit.backends.openclip import TINY_MODEL
from moviekit.backends.openclip import tiny_checkpoint as tiny_clip_checkpoint
from moviekit.default_plugins.synthetic import generate_cut_video
from moviekit.testing import make_context, offline_env
from moviekit_movieclip.hierarchy import MovieclipHierarchy, tsne_coordinates
from moviekit_movieclip.labeler import MovieclipClip
from moviekit_movieclip.tagsfile import read_movieclip_json, read_movieclip_shots, write_movieclip_json

pytestmark = pytest.mark.filterwarnings("ignore:.*TEST-ONLY.*:UserWarning")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path):
    offline_env(monkeypatch, tmp_path)
    monkeypatch.setenv("COLUMNS", "200")  # one table row per line


@pytest.fixture(scope="module")
def app():
    """A fresh `moviekit`-like app with every plugin's commands, added through the register_commands hook."""
    cli = typer.Typer()
    problems = get_registry().register_commands(cli)
    assert not [p for p in problems if "movieclip" in p], problems
    return cli


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    folder = tmp_path_factory.mktemp("videos")
    truth = generate_cut_video(folder / "good.mp4", n_shots=4, seed=0)
    (folder / "bad.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 48, dtype=np.uint8).tobytes())
    return {"good": folder / "good.mp4", "bad": folder / "bad.mp4", "truth": truth, "dir": folder}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_clip_checkpoint(tmp_path_factory.mktemp("tiny_clip"))


def invoke(app, args, **env):
    return CliRunner().invoke(app, ["movieclip", *map(str, args)], env=env or None)


@pytest.fixture(scope="module")
def labelled(app, media, tiny, tmp_path_factory):
    """One labelling run over a good and a corrupt video (offline, own cache)."""
    tmp = tmp_path_factory.mktemp("labelled")
    with pytest.MonkeyPatch.context() as mp:
        offline_env(mp, tmp)
        mp.setenv("COLUMNS", "200")
        out = tmp / "out" / "tags.json"
        result = invoke(
            app,
            [
                "label",
                media["good"],
                media["bad"],
                "--out",
                out,
                "--model",
                TINY_MODEL,
                "--pretrained",
                tiny,
                "--fps",
                2,
                "--device",
                "cpu",
            ],
        )
    return result, out


def direct_labels(tiny, video_path, shots):
    """movieclip_clip run by hand on the frames of the core pyav reader, with the given shots."""
    lab = MovieclipClip(model=TINY_MODEL, pretrained=str(tiny), fps=2, device="cpu")
    reader = get_registry().create("pyav", "reader")
    video = Video(id="good", path=video_path)
    sink = lab.open(video, reader.probe(video))
    reader.read(video, [(lab.needs(), sink)])
    return lab.label(video, sink.close(), shots)


# -- label ----------------------------------------------------------------------------------


def test_label_round_trips_and_matches_the_labeler(labelled, media, tiny, tmp_path):
    result, out = labelled
    assert result.exit_code == 0, result.output
    tags = read_movieclip_json(out)
    shots = read_movieclip_shots(out)
    assert list(tags) == ["good"]
    # the scenedetect segmenter found the generator's four shots
    assert [[s.start_frame, s.end_frame] for s in shots["good"]] == media["truth"]["shots"]
    direct = direct_labels(tiny, media["good"], shots["good"])
    assert len(direct) == len(tags["good"]) == 4
    for read, ref in zip(tags["good"], direct):
        assert read.shot_index == ref.shot_index
        assert list(read.scores) == list(ref.scores) and len(read.scores) == 5  # top-5, best first
        assert list(read.scores.values()) == pytest.approx(list(ref.scores.values()), rel=1e-5, abs=1e-7)
    # written again from what was read, the file is the same byte for byte
    again = write_movieclip_json(tmp_path / "again.json", tags, shots)
    assert again.read_text() == out.read_text()
    # and the core dataset source lists the video with its file and per-shot labels
    src = get_registry().create("movieclip_json", "dataset", path=str(out), videos_root=str(media["dir"]))
    (video,) = src.items()
    assert video.id == "good" and video.path == media["good"]
    assert len(video.metadata["shot_labels"]) == 4
    # the metadata keeps each shot's assigned multi-labels, as the labeler assigns them
    meta = json.loads(out.with_name("tags.meta.json").read_text())
    assert [a["labels"] for a in meta["assigned"]["good"]] == [ref.labels for ref in direct]
    assert meta["settings"]["fps"] == 2 and meta["segmenter"] == "scenedetect"
    assert meta["test_only"] is True and "RANDOM" in meta["warning"] and meta["model"] == TINY_MODEL


def test_label_prints_a_table(labelled):
    result, out = labelled
    text = result.stdout
    title = " ".join(text.split())
    assert "MovieCLIP shot labels: " + TINY_MODEL in title
    assert "RANDOM OPEN_CLIP MODEL FOR TESTS ONLY" in title
    for column in ("video", "shot", "time (s)", "top labels (CLIPSceneScore)", "assigned"):
        assert column in text
    tags = read_movieclip_json(out)["good"]
    shots = read_movieclip_shots(out)["good"]
    for lab, shot in zip(tags, shots):
        best, score = next(iter(lab.scores.items()))
        assert f"{shot.start_time:.2f}–{shot.end_time:.2f}" in text
        assert f"{best} {score:.3f}" in text
    assert "4 shot(s) of 1 video(s)" in text


def test_a_corrupt_video_is_reported_and_the_others_kept(labelled, media):
    result, out = labelled
    assert result.exit_code == 0
    assert f"{media['bad']}:" in result.stderr and "cannot open" in result.stderr
    meta = json.loads(out.with_name("tags.meta.json").read_text())
    assert list(meta["errors"]) == [str(media["bad"])]
    assert list(meta["videos"]) == ["good"]


def test_all_videos_failing_exits_non_zero(app, media, tiny, tmp_path):
    out = tmp_path / "tags.json"
    missing = tmp_path / "missing.mp4"
    r = invoke(app, ["label", media["bad"], missing, "--out", out, "--model", TINY_MODEL, "--pretrained", tiny, "--device", "cpu"])
    assert r.exit_code == 1
    assert str(media["bad"]) in r.stderr and f"{missing}: video file not found" in r.stderr
    assert "no video could be labelled" in r.stderr
    assert not out.exists()


def test_offline_without_weights_fails_before_decoding(app, media, tmp_path, monkeypatch):
    def no_decoding(*args, **kwargs):
        raise AssertionError("videos were decoded although the weights are missing")

    monkeypatch.setattr(moviekit, "extract_videos", no_decoding)
    out = tmp_path / "tags.json"
    r = invoke(app, ["label", media["good"], "--out", out])  # ViT-B-32 'openai': nothing local, offline
    assert r.exit_code == 2, r.output
    msg = " ".join(r.stderr.split())
    for part in ("open_clip-ViT-B-32-openai", "$MOVIEKIT_WEIGHTS/open_clip-ViT-B-32-openai", "MOVIEKIT_OFFLINE", "--pretrained"):
        assert part in msg, part
    assert not out.exists()


def test_options_random_checkpoint_and_bad_values(app, media, tmp_path):
    tax = tmp_path / "tax.txt"
    tax.write_text("kitchen\nbeach\nforest\nstreet\n")
    out = tmp_path / "tags.json"
    args = ["label", media["good"], "--out", out, "--model", TINY_MODEL, "--fps", 1, "--top-k", 3, "--taxonomy", tax]
    args += ["--template", "background", "--template", "A photo of a {}.", "--segmenter", "fixed_length", "--device", "cpu"]
    r = invoke(app, args)
    assert r.exit_code == 0, r.output
    assert "random weights, seed 0" in " ".join(r.stdout.split())  # no --pretrained: a throw-away random checkpoint, said so
    meta = json.loads((tmp_path / "tags.meta.json").read_text())
    assert meta["segmenter"] == "fixed_length" and meta["pretrained"].startswith("random weights")
    assert meta["settings"]["top_k"] == 3 and len(meta["settings"]["templates"]) == 2
    for lab in read_movieclip_json(out)["good"]:
        assert len(lab.scores) == 3 and set(lab.scores) <= {"kitchen", "beach", "forest", "street"}

    bad = invoke(app, ["label", media["good"], "--out", out, "--fps", 0, "--segmenter", "nope", "--template", "no slot"])
    assert bad.exit_code == 2
    for opt in ("--fps:", "--segmenter: unknown segmenter 'nope'", "--template:"):
        assert opt in bad.stderr, opt


# -- hierarchy ------------------------------------------------------------------------------


def test_hierarchy_is_deterministic_and_out_equals_stdout(app, tmp_path):
    first = invoke(app, ["hierarchy"])
    second = invoke(app, ["hierarchy"])
    assert first.exit_code == 0 and second.exit_code == 0, first.output
    assert first.stdout == second.stdout
    data = json.loads(first.stdout)
    labels = [lab for cluster in data["clusters"] for lab in cluster]
    assert len(labels) == len(set(labels)) == 179
    assert data["clusters"] == MovieclipHierarchy().hierarchy().clusters
    out = tmp_path / "sub" / "clusters.json"
    r = invoke(app, ["hierarchy", "--out", out])
    assert r.exit_code == 0 and r.stdout == ""
    assert out.read_text() == first.stdout


def test_hierarchy_of_a_custom_taxonomy_with_tsne(app, tmp_path):
    tax = tmp_path / "small.csv"
    with open(tax, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["label", "note"])
        for lab in ("kitchen", "restaurant", "cafe", "beach", "lake", "river", "hospital", "clinic"):
            w.writerow([lab, "x"])
    png = tmp_path / "plots" / "tsne.png"
    r = invoke(app, ["hierarchy", "--taxonomy", tax, "--tsne", png])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert sorted(lab for c in data["clusters"] for lab in c) == sorted(
        ["kitchen", "restaurant", "cafe", "beach", "lake", "river", "hospital", "clinic"]
    )
    assert data["n_labels"] == 8
    cluster = {lab: i for i, c in enumerate(data["clusters"]) for lab in c}
    assert cluster["hospital"] == cluster["clinic"] and cluster["kitchen"] != cluster["river"]
    blob = png.read_bytes()
    assert len(blob) > 1000 and blob.startswith(PNG_SIGNATURE)
    from PIL import Image

    with Image.open(png) as img:
        assert img.width > 100 and img.height > 100


def test_tsne_is_seeded_and_the_task_can_plot(tmp_path):
    emb = np.random.default_rng(0).standard_normal((12, 384)).astype(np.float32)
    a, b = tsne_coordinates(emb), tsne_coordinates(emb)
    assert a.shape == (12, 2) and np.array_equal(a, b)
    ctx = make_context(tmp_path, items=[])
    res = MovieclipHierarchy(labels=["kitchen", "restaurant", "beach", "lake", "hospital"], tsne="tsne.png").run(ctx)
    assert res.files == ["hierarchy.json", "tsne.png"]
    assert (ctx.out_dir / "tsne.png").read_bytes().startswith(PNG_SIGNATURE)


def test_hierarchy_bad_taxonomy_is_named(app, tmp_path):
    r = invoke(app, ["hierarchy", "--taxonomy", tmp_path / "nope.csv"])
    assert r.exit_code == 2 and "nope.csv" in r.stderr


def test_the_moviekit_command_has_the_group():
    r = subprocess.run([sys.executable, "-m", "moviekit", "movieclip", "--help"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "hierarchy" in r.stdout and "label" in r.stdout
