"""The features_dir dataset source and its writer."""

import json

import numpy as np
import pytest

from moviekit.default_plugins.formats import FeaturesDir, write_features_dir
from moviekit.errors import MoviekitError
from moviekit.plugins import get_registry
from moviekit.testing import check_component, tiny_items


def test_registered_as_default_datasets():
    reg = get_registry()
    assert reg.get("features_dir", "dataset") is FeaturesDir
    assert "movieclip_json" not in reg.names() or reg.plugin_of("movieclip_json").distribution != "moviekit"  # a plugin's format
    assert reg.plugin_of("features_dir").distribution == "moviekit"


def test_contract_features_dir(tmp_path):
    videos = check_component("features_dir", tmp_path)
    assert len(videos) == 4
    assert all(v.features is not None and v.features.num_clips == 3 for v in videos)
    assert videos[0].features.spec() == {"audio": {"shape": [4], "dtype": "float32"}, "visual": {"shape": [6], "dtype": "float32"}}


def test_features_dir_round_trip(tmp_path):
    items = tiny_items(n=5, n_clips=4, seed=3)
    # non-contiguous clip indices and real boundaries must survive via clips.csv
    for it in items:
        it.clips = [
            c.model_copy(update={"index": c.index * 2 + 1, "shot_index": c.index * 2 + 1, "start_time": c.start_time + 0.1})
            for c in it.clips
        ]
    write_features_dir(tmp_path / "f", items)
    src = FeaturesDir(root=tmp_path / "f")
    videos = src.items()
    assert src.problems == {}
    assert [v.id for v in videos] == [it.id for it in items]
    for v, it in zip(videos, items):
        assert v.labels == it.video.labels
        assert v.split == it.video.split
        assert v.path is None
        assert v.clips == it.clips
        assert set(v.features.arrays) == set(it.features.arrays)
        for m, a in it.features.arrays.items():
            assert v.features.arrays[m].dtype == np.float32
            np.testing.assert_array_equal(v.features.arrays[m], a)
        assert "dropped_clips" not in v.metadata
    assert src.vocabulary() == sorted({lab for it in items for lab in it.video.labels})


def test_placeholder_clips_and_no_labels_csv(tmp_path):
    root = tmp_path / "f"
    for vid in ("b", "a"):
        (root / "visual" / vid).mkdir(parents=True)
        for i in range(3):
            np.save(root / "visual" / vid / f"{i}.npy", np.full(5, i, np.float32))
    videos = FeaturesDir(root=root, split_fractions=(0.5, 0.0, 0.5)).items()
    assert [v.id for v in videos] == ["a", "b"]
    assert sorted(v.split for v in videos) == ["test", "train"]
    assert all(v.labels == [] for v in videos)
    c = videos[0].clips[2]
    assert (c.index, c.shot_index, c.start_frame, c.end_frame, c.start_time, c.end_time) == (2, 2, 2, 3, 2.0, 3.0)


def test_temporal_arrays_are_pooled(tmp_path):
    root = tmp_path / "f"
    (root / "visual" / "v").mkdir(parents=True)
    (root / "audio" / "v").mkdir(parents=True)
    temporal = np.arange(12, dtype=np.float64).reshape(4, 3)
    np.save(root / "visual" / "v" / "0.npy", temporal)
    np.save(root / "visual" / "v" / "1.npy", np.array([1.0, 2.0, 3.0]))
    for i in range(2):
        np.save(root / "audio" / "v" / f"{i}.npy", np.ones((2, 7), np.float32) * i)
    (root / "labels.csv").write_text("video,labels,split\nv,x|y,train\n")
    [v] = FeaturesDir(root=root).items()
    visual = v.features.arrays["visual"]
    assert visual.shape == (2, 3) and visual.dtype == np.float32
    np.testing.assert_allclose(visual[0], temporal.mean(axis=0))
    np.testing.assert_allclose(visual[1], [1, 2, 3])
    assert v.features.arrays["audio"].shape == (2, 7)
    assert v.labels == ["x", "y"]
    [vmax] = FeaturesDir(root=root, temporal_reduce="max", modalities=["visual"]).items()
    np.testing.assert_allclose(vmax.features.arrays["visual"][0], temporal.max(axis=0))
    assert set(vmax.features.arrays) == {"visual"}


def test_descriptor_sets_kept_with_temporal_reduce_none(tmp_path):
    root = tmp_path / "f"
    sets = {0: np.arange(8, dtype=np.float32).reshape(4, 2) + 1, 1: np.ones((2, 2), np.float32)}
    for i, a in sets.items():
        (root / "audio" / "v").mkdir(parents=True, exist_ok=True)
        np.save(root / "audio" / "v" / f"{i}.npy", a)
    [v] = FeaturesDir(root=root, temporal_reduce="none").items()
    audio = v.features.arrays["audio"]
    assert audio.shape == (2, 4, 2)
    np.testing.assert_array_equal(audio[0], sets[0])
    np.testing.assert_array_equal(audio[1, :2], sets[1])
    assert not audio[1, 2:].any()  # the shorter clip is padded with zero rows
    # a modality mixing (d,) clips and (t, d) sets is reported, not guessed at
    np.save(root / "audio" / "v" / "2.npy", np.ones(2, np.float32))
    src = FeaturesDir(root=root, temporal_reduce="none")
    assert src.items() == [] and "descriptor sets" in src.problems["v"]


def test_mismatched_clip_sets_use_intersection(tmp_path):
    root = tmp_path / "f"
    for m, idx in (("visual", [0, 1, 2, 3]), ("audio", [1, 2, 3, 5])):
        (root / m / "v").mkdir(parents=True)
        for i in idx:
            np.save(root / m / "v" / f"{i}.npy", np.full(4, i, np.float32))
    [v] = FeaturesDir(root=root).items()
    assert [c.index for c in v.clips] == [1, 2, 3]
    assert v.metadata["dropped_clips"] == {"visual": [0], "audio": [5]}
    np.testing.assert_array_equal(v.features.arrays["visual"][:, 0], [1, 2, 3])
    np.testing.assert_array_equal(v.features.arrays["audio"][:, 0], [1, 2, 3])


def test_bad_videos_are_reported_and_others_listed(tmp_path):
    items = tiny_items(n=5, n_clips=3)
    root = write_features_dir(tmp_path / "f", items)
    ids = [it.id for it in items]
    (root / "visual" / ids[1] / "2.npy").write_bytes(b"not a numpy file")  # corrupt
    for p in (root / "audio" / ids[3]).iterdir():  # a modality missing entirely
        p.unlink()
    (root / "audio" / ids[3]).rmdir()
    np.save(root / "visual" / ids[4] / "0.npy", np.zeros(99, np.float32))  # wrong size within the video
    src = FeaturesDir(root=root)
    videos = src.items()
    assert [v.id for v in videos] == [ids[0], ids[2]]
    assert set(src.problems) == {ids[1], ids[3], ids[4]}
    assert "2.npy" in src.problems[ids[1]] and "unreadable" in src.problems[ids[1]]
    assert "audio" in src.problems[ids[3]]
    assert "different feature sizes" in src.problems[ids[4]]


def test_inconsistent_dims_across_videos_and_bad_config(tmp_path):
    items = tiny_items(n=3, n_clips=2, modalities={"visual": (4,)})
    root = write_features_dir(tmp_path / "f", items)
    for p in (root / "visual" / items[2].id).iterdir():
        np.save(p, np.zeros(6, np.float32))
    src = FeaturesDir(root=root)
    assert [v.id for v in src.items()] == [items[0].id, items[1].id]
    assert "expected 4" in src.problems[items[2].id]
    src = FeaturesDir(root=root, dims={"visual": 6})
    assert [v.id for v in src.items()] == [items[2].id]
    with pytest.raises(MoviekitError, match="audio"):
        FeaturesDir(root=root, modalities=["visual", "audio"]).items()
    with pytest.raises(MoviekitError, match="not a folder"):
        FeaturesDir(root=tmp_path / "nope").items()


def test_runner_on_features_dir_never_decodes(tmp_path):
    from moviekit.recipe import validate
    from moviekit.runner import Runner

    root = write_features_dir(tmp_path / "f", tiny_items(n=12, n_clips=5))
    data = {
        "dataset": {"use": "features_dir", "root": str(root)},
        "encoder": {"use": "mean_pool", "dim": 8, "hidden": 16},
        "head": {"use": "mlp", "hidden": [8]},
        "clips": {"min_clips": 1},
        "tasks": [{"use": "multilabel_classification", "epochs": 2}],
        "run": {"device": "cpu", "cache_dir": str(tmp_path / "c")},
    }
    runner = Runner(validate(data), output=tmp_path / "out")
    summary = runner.run()
    assert runner.decodes == 0
    assert summary["items"] == 12 and summary["failures"] == 0
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert "auprc_macro" in metrics and len(metrics["train_loss"]) == 2
