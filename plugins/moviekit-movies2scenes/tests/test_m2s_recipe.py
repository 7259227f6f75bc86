"""recipes/movies2scenes.yaml end to end on small synthetic movies, then the exported features_dir and the embed command.

Only sizes and epochs are overridden (pixels instead of EfficientNet, so it takes a minute); every
component and the order of the tasks are the recipe's own.
"""

import json
from pathlib import Path

import numpy as np
import pytest

from moviekit import load_recipe, run_recipe

RECIPE = Path(__file__).resolve().parents[3] / "recipes" / "movies2scenes.yaml"
QUICK = [
    "dataset.n=10", "dataset.min_scenes=3", "dataset.max_scenes=4",
    "experts.keyframes.backbone=pixels", "experts.keyframes.size=[16,12]",
    "tasks[0].epochs=2", "tasks[1].epochs=5", "tasks[3].epochs=2", "tasks[3].warmup_epochs=1",
    "tasks[5].epochs=5", "tasks[6].epochs=5", "tasks[7].epochs_scale=0.02",
]  # fmt: skip


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("m2s")
    overrides = [*QUICK, f"dataset.root={out / 'movies'}", f"run.cache_dir={out / 'cache'}"]
    summary = run_recipe(load_recipe(RECIPE, overrides), output=out / "run")
    return out, summary


def test_recipe_runs_end_to_end(run):
    out, summary = run
    rd = out / "run"
    assert summary["failures"] == 0 and summary["items"] == 10
    table = json.loads((rd / "place_retrieval.json").read_text())
    assert set(table) == {"learned", "frame_average", "random"}
    for t in table.values():
        assert 0 <= t["all"]["p@1"] <= 100 and t["all"]["queries"] > 0
    sbd = json.loads((rd / "sbd.json").read_text())
    assert 0 <= sbd["learned_ap"] <= 1 and 0 <= sbd["random_ap"] <= 1
    for name in (
        "report.html",
        "scene_pairs_cowatch.json",
        "models/m2s_scene_cowatch.json",
        "models/m2s_shot.safetensors",
        "scene_features/labels.csv",
    ):
        assert (rd / name).exists(), name
    assert "Place retrieval" in (rd / "report.html").read_text()


def test_rerun_reuses_every_task(run):
    out, _ = run
    overrides = [*QUICK, f"dataset.root={out / 'movies'}", f"run.cache_dir={out / 'cache'}"]
    summary = run_recipe(load_recipe(RECIPE, overrides), output=out / "run")
    assert summary["decodes"] == 0
    assert all(st["computed"] == 0 for name, st in summary["stages"].items() if name.startswith("task"))


def test_exported_scenes_read_back_as_features_dir(run):
    from moviekit import get_registry

    out, _ = run
    src = get_registry().create("features_dir", "dataset", root=str(out / "run" / "scene_features"))
    items = src.items()
    assert len(items) == 10 and all(v.features.arrays["scene"].ndim == 2 for v in items)


def test_embed_command_on_a_new_video(run):
    from moviekit_movies2scenes.commands import embed_video

    out, _ = run
    video = sorted((out / "movies").glob("*.mp4"))[0]
    res = embed_video(out / "run", video, window=3)
    assert res["vectors"].shape[0] == len(res["ids"]) > 0 and np.isfinite(res["vectors"]).all()
