"""The README's main job, recipes/mmx_trailer.yaml, end to end on user data: a folder of videos,
then the features that run exported (features_dir), then a query with a new video file.

Only sizes and epochs are overridden (so the test takes a minute); every component is the recipe's own.
"""

import json
from pathlib import Path

import numpy as np
import pytest

from moviekit import get_registry, load_recipe, run_recipe
from moviekit_mmx.commands import query_run
from moviekit_mmx.tasks import HEADLINE

RECIPE = Path(__file__).resolve().parents[3] / "recipes" / "mmx_trailer.yaml"
QUICK = [
    "clips.min_clips=3",  # 4-7 s videos have few shots
    "tasks[1].epochs=3",
    "tasks[2].epochs=1",
    "tasks[3].epochs=2",
    "tasks[3].warmup_epochs=1",
    "tasks[4].k=3",
    "tasks[5].epochs=1",  # mmx_seqlen
]


@pytest.fixture(scope="module")
def user_videos(tmp_path_factory):
    """A folder of short mp4 files with a labels.csv (video,labels,split), as a user would have."""
    root = tmp_path_factory.mktemp("videos")
    src = get_registry().create(
        "synthetic_trailers", "dataset", n=12, min_seconds=4.0, max_seconds=7.0, seed=5, root=str(root / "trailers")
    )
    folder = src.ensure()
    return folder, [v.id for v in src.items()]


@pytest.fixture(scope="module")
def video_run(user_videos, tmp_path_factory):
    folder, _ = user_videos
    out = tmp_path_factory.mktemp("run_videos")
    overrides = ["dataset.use=video_folder", f"dataset.root={folder}", f"run.cache_dir={out / 'cache'}", *QUICK]
    resolved = load_recipe(RECIPE, overrides)
    summary = run_recipe(resolved, output=out / "run")
    return out / "run", summary


def check_run(run_dir: Path, summary: dict, n_items: int) -> dict:
    assert summary["failures"] == 0 and summary["items"] == n_items
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for key in HEADLINE:
        assert 0.0 <= metrics[key] <= 1.0 and 0.0 <= metrics["random_baseline"][key] <= 1.0
    for name in (
        "per_genre.csv",
        "ablation.csv",
        "seqlen.csv",
        "index.faiss",
        "index_ids.json",
        "report.html",
        "embeddings/fine.npz",
        "label_augmentation.csv",
    ):
        assert (run_dir / name).is_file(), name
    for key in HEADLINE:  # the linear-probe baseline beside the random rows
        assert 0.0 <= metrics["linear_probe"][key] <= 1.0
    return metrics


def test_video_folder_run(video_run, user_videos):
    run_dir, summary = video_run
    _, ids = user_videos
    check_run(run_dir, summary, len(ids))
    assert summary["decodes"] == len(ids)  # one decode per video, shared by the segmenter and 4 experts
    exported = sorted(p.name for p in (run_dir / "features").iterdir() if p.is_dir())
    assert exported == ["appearance", "audio", "motion", "scene"]


def test_features_dir_run_reads_back_the_same_features(video_run, user_videos, tmp_path):
    run_dir, _ = video_run
    _, ids = user_videos
    features = run_dir / "features"
    overrides = [
        "dataset.use=features_dir",
        f"dataset.root={features}",
        "dataset.temporal_reduce=none",
        f"run.cache_dir={tmp_path / 'cache'}",
        *QUICK,
    ]
    resolved = load_recipe(RECIPE, overrides)
    summary = run_recipe(resolved, output=tmp_path / "run")
    check_run(tmp_path / "run", summary, len(ids))
    assert summary["decodes"] == 0  # nothing decoded: the features are read from disk
    a = np.load(run_dir / "features.npz")
    b = np.load(tmp_path / "run" / "features.npz")
    assert sorted(a.files) == sorted(b.files)
    for key in a.files:  # audio descriptor sets included, thanks to temporal_reduce: none
        np.testing.assert_array_equal(a[key], b[key])


def test_query_with_a_new_video_file(video_run, tmp_path):
    run_dir, _ = video_run
    new = get_registry().create("synthetic_trailers", "dataset", n=1, min_seconds=5.0, max_seconds=5.0, seed=99, root=str(tmp_path / "new"))
    [video] = new.items()
    got = query_run(run_dir, video=video.path, k=3)
    ids = json.loads((run_dir / "index_ids.json").read_text())["ids"]
    assert got["query"] == str(video.path) and len(got["neighbours"]) == 3
    assert all(n["id"] in ids for n in got["neighbours"])
    scores = [n["score"] for n in got["neighbours"]]
    assert scores == sorted(scores, reverse=True) and -1.0001 <= scores[-1] <= scores[0] <= 1.0001
    with pytest.raises(Exception, match="video file not found"):
        query_run(run_dir, video=tmp_path / "missing.mp4", k=3)
