"""Tests of the synthetic_trailers dataset source (moviekit/default_plugins/synthetic.py)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import av
import numpy as np
import pytest
from pydantic import ValidationError

from moviekit.default_plugins import synthetic
from moviekit.default_plugins.synthetic import GENRES, SyntheticTrailers, generate_cut_video
from moviekit.errors import MoviekitError

SMALL = {"n": 4, "min_seconds": 3.0, "max_seconds": 4.0, "workers": 1}


def decode(path: Path) -> tuple[np.ndarray, int, float]:
    """All frames as float32 RGB, the number of audio streams and the audio duration in seconds."""
    with av.open(str(path)) as c:
        frames = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)]).astype(np.float32)
    with av.open(str(path)) as c:
        n_audio = len(c.streams.audio)
        samples, rate = 0, None
        if n_audio:
            for f in c.decode(audio=0):
                samples += f.samples
                rate = f.sample_rate
    return frames, n_audio, samples / rate if rate else 0.0


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic") / "ds"
    src = SyntheticTrailers(root=root, **SMALL)
    return src, src.items()


def load_cuts(video) -> dict:
    return json.loads(Path(video.metadata["cuts"]).read_text())


def test_vocabulary_is_the_20_mmx_genres():
    assert len(GENRES) == 20 and len(set(GENRES)) == 20
    assert SyntheticTrailers(n=1).vocabulary() == list(GENRES)
    # The paper's list (§4.1, Table 2's columns), in alphabetical order.
    paper = [
        "Action",
        "Adventure",
        "Animation",
        "Comedy",
        "Crime",
        "Documentary",
        "Drama",
        "Family",
        "Fantasy",
        "History",
        "Horror",
        "Music",
        "Mystery",
        "Science-Fiction",
        "Western",
        "Sport",
        "Short",
        "Biography",
        "Thriller",
        "War",
    ]
    assert list(GENRES) == sorted(paper)


def test_items_and_labels(small):
    src, items = small
    assert [v.id for v in items] == [f"trailer_{i:04d}" for i in range(4)]
    for v in items:
        assert 1 <= len(v.labels) <= 4
        assert set(v.labels) <= set(GENRES)
        assert v.labels == [g for g in GENRES if g in v.labels]  # vocabulary order, no duplicates
        assert v.split in ("train", "val", "test")
        assert v.metadata["synthetic"] is True
        assert Path(v.path).exists() and Path(v.metadata["cuts"]).exists()
        assert Path(v.metadata["cuts"]).parent == Path(v.path).parent


def test_labels_csv_matches_items(small):
    src, items = small
    with open(src.dataset_dir() / "labels.csv", newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == ["video", "labels", "split"]
        rows = list(reader)
    assert len(rows) == len(items)
    for row, v in zip(rows, items):
        assert src.dataset_dir() / row["video"] == Path(v.path)
        assert row["labels"].split("|") == v.labels
        assert row["split"] == v.split


def test_videos_decode_with_expected_frames_and_audio(small):
    src, items = small
    for v in items:
        cuts = load_cuts(v)
        frames, n_audio, audio_seconds = decode(v.path)
        assert frames.shape == (cuts["num_frames"], 96, 160, 3)
        assert cuts["fps"] == 12
        assert 3.0 * 12 - 1 <= cuts["num_frames"] <= 4.0 * 12 + 1
        assert n_audio == 1
        assert audio_seconds == pytest.approx(cuts["num_frames"] / cuts["fps"], abs=0.1)
        with av.open(str(v.path)) as c:
            vs = c.streams.video[0]
            assert vs.codec_context.name in ("h264", "libx264")
            assert vs.codec_context.pix_fmt == "yuv420p"
            assert c.streams.audio[0].codec_context.name == "aac"
            assert c.streams.audio[0].codec_context.channels == 1


def check_ground_truth(cuts: dict) -> None:
    shots, n, fps = cuts["shots"], cuts["num_frames"], cuts["fps"]
    assert shots[0][0] == 0 and shots[-1][1] == n
    for (_s0, e0), (s1, _) in zip(shots, shots[1:]):
        assert e0 == s1  # shots tile the video
    lo, hi = synthetic.shot_bounds(fps)
    for s, e in shots:
        assert lo <= e - s <= hi
    starts = {s for s, _ in shots[1:]}
    for c in cuts["hard_cuts"]:
        assert c in starts
    for d0, d1 in cuts["dissolves"]:
        assert 6 <= d1 - d0 <= 10
        mid = [s for s in starts if d0 < s < d1]
        assert len(mid) == 1  # a dissolve straddles exactly one shot boundary
    # every boundary is either a hard cut or inside exactly one dissolve
    assert len(cuts["hard_cuts"]) + len(cuts["dissolves"]) == len(shots) - 1
    assert len(cuts["shot_genres"]) == len(shots)


def test_ground_truth_is_consistent(small):
    src, items = small
    for v in items:
        cuts = load_cuts(v)
        check_ground_truth(cuts)
        assert set(cuts["shot_genres"]) <= set(v.labels)


def test_deterministic_by_seed(small, tmp_path):
    _, items = small
    again = SyntheticTrailers(root=tmp_path / "again", **SMALL).items()
    assert [(v.id, v.labels, v.split) for v in again] == [(v.id, v.labels, v.split) for v in items]
    assert [load_cuts(v) for v in again] == [load_cuts(v) for v in items]
    # frames are the same too (decoded, so independent of muxer bytes)
    np.testing.assert_array_equal(decode(again[0].path)[0], decode(items[0].path)[0])

    other = SyntheticTrailers(root=tmp_path / "other", seed=1, **SMALL).items()
    assert [v.labels for v in other] != [v.labels for v in items]
    assert [load_cuts(v)["shots"] for v in other] != [load_cuts(v)["shots"] for v in items]


def test_trailer_does_not_depend_on_n():
    a = SyntheticTrailers(n=4, seed=3).trailer_spec(2)
    b = SyntheticTrailers(n=40, seed=3).trailer_spec(2)
    assert a.labels == b.labels and a.ground_truth() == b.ground_truth()


def inter_frame_diffs(path: Path) -> np.ndarray:
    frames, _, _ = decode(path)
    return np.abs(np.diff(frames, axis=0)).mean(axis=(1, 2, 3))  # d[i]: frames i -> i + 1


def test_hard_cuts_are_real_visual_changes(tmp_path):
    cuts = generate_cut_video(tmp_path / "cuts.mp4", n_shots=12, seed=5)
    check_ground_truth(cuts)
    assert len(cuts["shots"]) == 12 and cuts["hard_cuts"]
    assert json.loads((tmp_path / "cuts.cuts.json").read_text()) == cuts
    d = inter_frame_diffs(tmp_path / "cuts.mp4")
    assert len(d) == cuts["num_frames"] - 1
    transition = {c - 1 for c in cuts["hard_cuts"]}
    for d0, d1 in cuts["dissolves"]:
        transition |= set(range(d0 - 1, d1))
    within = np.array([d[i] for i in range(len(d)) if i not in transition])
    across = np.array([d[c - 1] for c in cuts["hard_cuts"]])
    assert across.min() > 20.0
    assert across.min() > 4 * within.max()  # about 17x for this seed
    assert within.mean() < 3.0


def test_hard_cuts_in_the_dataset_are_real(small):
    _, items = small
    for v in items:
        cuts = load_cuts(v)
        if not cuts["hard_cuts"]:
            continue
        d = inter_frame_diffs(v.path)
        transition = {c - 1 for c in cuts["hard_cuts"]}
        for d0, d1 in cuts["dissolves"]:
            transition |= set(range(d0 - 1, d1))
        within = max(d[i] for i in range(len(d)) if i not in transition)
        assert min(d[c - 1] for c in cuts["hard_cuts"]) > 3 * within


def test_dissolves_are_gradual(tmp_path):
    cuts = generate_cut_video(tmp_path / "dis.mp4", n_shots=10, seed=2, dissolve_prob=1.0)
    assert len(cuts["dissolves"]) >= 3  # where both shots are long enough for one
    d = inter_frame_diffs(tmp_path / "dis.mp4")
    frames, _, _ = decode(tmp_path / "dis.mp4")
    for d0, d1 in cuts["dissolves"]:
        total = np.abs(frames[d1] - frames[d0 - 1]).mean()
        steps = d[d0 - 1 : d1]
        assert total > 15.0  # the two shots really differ
        assert steps.max() < 0.5 * total  # ... but no single frame carries the change


def test_content_detector_finds_the_hard_cuts(tmp_path):
    scenedetect = pytest.importorskip("scenedetect")
    cuts = generate_cut_video(tmp_path / "sd.mp4", n_shots=14, seed=7, dissolves=False)
    video = scenedetect.open_video(str(tmp_path / "sd.mp4"), backend="pyav")
    manager = scenedetect.SceneManager()
    # default threshold; min_scene_len lowered because shots can be shorter than its default 15 frames
    manager.add_detector(scenedetect.ContentDetector(threshold=27.0, min_scene_len=2))
    manager.detect_scenes(video)
    found = [s[0].frame_num for s in manager.get_scene_list()][1:]
    assert found == cuts["hard_cuts"]


def test_cached_under_cache_root_and_generated_once(tmp_path, monkeypatch):
    monkeypatch.setenv("MOVIEKIT_CACHE", str(tmp_path / "cache"))
    src = SyntheticTrailers(n=2, min_seconds=2.0, max_seconds=2.5, workers=1)
    folder = src.dataset_dir()
    assert folder.parent == tmp_path / "cache" / "datasets" / "synthetic_trailers"
    assert folder.name == src.key()[:16]
    items = src.items()
    assert (folder / "complete").exists() and (folder / "labels.csv").exists()
    assert all(Path(v.path).parent == folder for v in items)
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]  # no temp folders left

    calls = []
    monkeypatch.setattr(synthetic, "write_trailer", lambda *a, **k: calls.append(a))
    assert [v.id for v in SyntheticTrailers(n=2, min_seconds=2.0, max_seconds=2.5).items()] == [v.id for v in items]
    assert calls == []  # reused, not regenerated (workers is not part of the key)
    assert SyntheticTrailers(n=3, min_seconds=2.0, max_seconds=2.5).dataset_dir() != folder


def test_killed_generation_leaves_nothing(tmp_path, monkeypatch):
    real = synthetic.write_trailer
    calls = []

    def failing(path, spec, **kw):
        calls.append(path)
        if len(calls) == 2:
            raise KeyboardInterrupt  # like a user pressing ctrl-c mid-way
        return real(path, spec, **kw)

    monkeypatch.setattr(synthetic, "write_trailer", failing)
    root = tmp_path / "ds"
    src = SyntheticTrailers(root=root, n=3, min_seconds=2.0, max_seconds=2.5, workers=1)
    with pytest.raises(KeyboardInterrupt):
        src.items()
    assert not root.exists()
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(synthetic, "write_trailer", real)
    assert len(src.items()) == 3


def test_root_with_other_content_is_refused(tmp_path):
    root = tmp_path / "ds"
    cfg = {"n": 1, "min_seconds": 2.0, "max_seconds": 2.5, "workers": 1}
    SyntheticTrailers(root=root, **cfg).items()
    with pytest.raises(MoviekitError, match="different config"):
        SyntheticTrailers(root=root, seed=9, **cfg).items()
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(MoviekitError, match="not empty"):
        SyntheticTrailers(root=other, **cfg).items()
    assert (other / "notes.txt").read_text() == "keep me"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert len(SyntheticTrailers(root=empty, **cfg).items()) == 1


def test_config_validation():
    with pytest.raises(ValidationError):
        SyntheticTrailers(width=161)
    with pytest.raises(ValidationError):
        SyntheticTrailers(min_seconds=5, max_seconds=4)
    with pytest.raises(ValidationError):
        SyntheticTrailers(bogus=1)
    fields = SyntheticTrailers.Config.model_fields
    assert all(f.description for f in fields.values())
    d = SyntheticTrailers.Config()
    assert (d.n, d.seed, d.min_seconds, d.max_seconds, d.width, d.height, d.fps, d.audio_rate, d.root) == (
        96,
        0,
        10.0,
        20.0,
        160,
        96,
        12,
        16000,
        None,
    )


def test_splits_cover_train_val_test():
    names = synthetic._split_names(48, 0)
    assert names.count("train") == 34 and names.count("val") == 7 and names.count("test") == 7
    assert names == synthetic._split_names(48, 0) and names != synthetic._split_names(48, 1)


def test_registered_and_passes_the_component_contract(tmp_path):
    from moviekit.plugins import get_registry
    from moviekit.testing import check_component

    reg = get_registry()
    assert reg.get("synthetic_trailers", "dataset") is SyntheticTrailers
    assert reg.plugin_of("synthetic_trailers").name == "moviekit.default_plugins.synthetic"
    items = check_component(SyntheticTrailers, tmp_path, registry=reg)
    assert len(items) == 3


def test_other_sizes_and_rates(tmp_path):
    # height 50 is even but not a multiple of 4 (odd chroma rows)
    src = SyntheticTrailers(root=tmp_path / "ds", n=1, min_seconds=2.0, max_seconds=2.0, width=66, height=50, fps=25, audio_rate=22050)
    (v,) = src.items()
    cuts = load_cuts(v)
    check_ground_truth(cuts)
    frames, n_audio, seconds = decode(v.path)
    assert frames.shape == (50, 50, 66, 3) and cuts["num_frames"] == 50 and cuts["fps"] == 25
    assert n_audio == 1 and seconds == pytest.approx(2.0, abs=0.1)
