"""recipes/movieclip_scenes.yaml: CLIP shot labels -> thresholds -> LSTM scene classifier -> mAP.

The runs use a few short synthetic trailers and the tiny RANDOM test-only CLIP model: they show the
recipe's plumbing works end to end, offline, not that the labels mean anything.  The end of the file
checks the CSV rules that the test list and the shot-scale labels file share (``moviekit_movieclip.csvfile``).
"""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

import moviekit
from moviekit.backends.openclip import TEST_ONLY_MARK, TINY_MODEL
from moviekit.backends.openclip import tiny_checkpoint as tiny_clip_checkpoint
from moviekit.cli import app as moviekit_app
from moviekit.runner import Runner
from moviekit.testing import offline_env
from moviekit_movieclip import scoring
from moviekit_movieclip.shotscale import read_shot_scale_labels
from moviekit_movieclip.taxonomy import load_taxonomy
from moviekit_movieclip.testlist import read_test_list

RECIPE = Path(__file__).resolve().parents[3] / "recipes" / "movieclip_scenes.yaml"

#: Six trailers of 3-4 s (one in the test split), instead of 96 of 10-20 s.
SMALL_DATA = ["dataset.n=6", "dataset.min_seconds=3", "dataset.max_seconds=4"]
#: A short, small LSTM on the CPU.
FAST_TASK = ["tasks.0.epochs=3", "tasks.0.lstm_hidden=16", "run.device=cpu", "labeler.device=cpu"]


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path):
    offline_env(monkeypatch, tmp_path)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    """One folder for the generated trailers, shared by the runs (the first one writes them)."""
    return tmp_path_factory.mktemp("synthetic") / "trailers"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_clip_checkpoint(tmp_path_factory.mktemp("tiny_clip"))


def overrides(tmp_path: Path, data_root: Path, *extra: str) -> list[str]:
    return [*SMALL_DATA, f"dataset.root={data_root}", f"run.cache_dir={tmp_path / 'artifacts'}", *extra]


# -- (a) it validates, with the paper's CLIP settings ------------------------------------------------


def test_recipe_validates_with_the_paper_clip_settings():
    result = CliRunner().invoke(moviekit_app, ["validate", str(RECIPE)])
    assert result.exit_code == 0, result.output
    assert "ok" in result.output

    resolved = moviekit.load_recipe(RECIPE)
    lab = resolved.component("labeler")
    assert lab.cls.name == "movieclip_clip"
    cfg = lab.config
    assert (cfg.model, cfg.pretrained) == ("ViT-B-32", "openai")
    assert cfg.templates == [scoring.DEFAULT_TEMPLATE] == ["A photo of {}, a type of background location"]
    assert (cfg.top_k, cfg.top1_threshold, cfg.topk_threshold, cfg.require_top1) == (5, 0.4, 0.1, True)
    assert cfg.taxonomy is None and cfg.labels is None  # the packaged 179 labels
    assert resolved.component("segmenter").cls.name == "scenedetect"
    assert resolved.component("dataset").cls.name == "synthetic_trailers"

    task = resolved.component("tasks[0]")
    assert task.cls.name == "movieclip_scene_classifier"
    assert (task.config.model, task.config.label_source, task.config.test_list) == ("lstm", "clip", None)
    # the LSTM reads the per-frame input of an expert of the recipe
    frames = resolved.component(f"experts.{task.config.features}")
    assert frames is not None and frames.cls.name == "movieclip_frames"


def test_recipe_header_says_how_to_give_local_weights():
    header = "\n".join(line for line in RECIPE.read_text().splitlines() if line.startswith("#"))
    assert "--set labeler.pretrained=/path/to/open_clip_model.safetensors" in header
    assert "$MOVIEKIT_WEIGHTS/open_clip-ViT-B-32-openai/" in header


# -- (b) it runs with the tiny test-only model --------------------------------------------------------


def test_recipe_runs_offline_with_the_tiny_test_only_model(tmp_path, data_root, tiny):
    out = tmp_path / "run"
    sets = overrides(tmp_path, data_root, f"labeler.model={TINY_MODEL}", f"labeler.pretrained={tiny}", *FAST_TASK)
    cmd = [sys.executable, "-m", "moviekit", "run", str(RECIPE), "--output", str(out)]
    for s in sets:
        cmd += ["--set", s]
    # the real command line, in a fresh process: the test-only model is selected by its name alone
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"}, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "tiny RANDOM open_clip model for tests only" in proc.stderr

    metrics = json.loads((out / "scene_metrics.json").read_text())
    assert math.isfinite(metrics["map"]) and 0.0 <= metrics["map"] <= 1.0
    assert metrics["model"] == "lstm" and metrics["test_source"] == "test_split"
    assert metrics["n_train"] > 0 and metrics["n_test"] > 0
    assert metrics["settings"]["epochs"] == 3

    # per-class csv: one row per taxonomy label; mAP is the mean AP of the classes with a positive
    with (out / "scene_per_class.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["label"] for r in rows] == list(load_taxonomy().labels)
    scored = [float(r["auprc"]) for r in rows if int(r["support"]) > 0]
    assert len(scored) == metrics["classes_scored"] >= 1
    assert metrics["map"] == pytest.approx(sum(scored) / len(scored))

    # the model is marked test-only wherever it is named
    named = yaml.safe_load((out / "resolved.yaml").read_text())["labeler"]["model"]
    assert named == TINY_MODEL and TEST_ONLY_MARK in named
    source = metrics["labels_from"]
    assert source["labeler"] == "movieclip_clip" and source["model"] == TINY_MODEL and source["test_only"] is True
    assert "RANDOM" in source["warning"] and "tests only" in source["warning"]

    summary = json.loads((out / "summary.json").read_text())
    assert summary["failures"] == 0 and summary["items"] == 6 and summary["decodes"] == 6
    assert (out / "failures.jsonl").read_text() == ""


# -- (c) offline without weights -----------------------------------------------------------------------


def test_recipe_without_weights_offline_stops_before_any_data_work(tmp_path, data_root):
    resolved = moviekit.load_recipe(RECIPE, overrides(tmp_path, data_root))
    runner = Runner(resolved, output=tmp_path / "run")
    with pytest.raises(moviekit.WeightsNotFoundError) as info:
        runner.run()
    message = str(info.value)
    assert message.startswith("labeler (movieclip_clip):")  # the recipe key and component
    assert "open_clip-ViT-B-32-openai" in message
    assert "$MOVIEKIT_WEIGHTS/open_clip-ViT-B-32-openai" in message  # where to put the checkpoint
    assert "--set labeler.pretrained=/path/to/open_clip-ViT-B-32-openai" in message  # the key that takes a path
    assert str(Path(os.environ["MOVIEKIT_WEIGHTS"]) / "open_clip-ViT-B-32-openai") in message  # what was searched
    assert "MOVIEKIT_OFFLINE/HF_HUB_OFFLINE is set" in message
    # nothing was listed, decoded or failed: the check comes before the dataset stage
    assert runner.decodes == 0 and "dataset" not in runner.stats
    assert (tmp_path / "run" / "failures.jsonl").read_text() == ""


# -- the CSV rules the test list and the shot-scale labels share (moviekit_movieclip.csvfile) ----------

READERS = {
    "test list": (read_test_list, "video,shot,labels", "v1,0,cafe"),
    "shot-scale labels file": (read_shot_scale_labels, "video,shot,scale", "v1,0,CS"),
}


@pytest.mark.parametrize("what", list(READERS))
@pytest.mark.parametrize(
    "body, expected",
    [
        ("{header}\n{row}\n,{tail}\n", r":3: empty video id"),
        ("{header}\n{row},extra\n", r":2: 4 fields but the header has 3"),
        ("# a comment\n\nvideo\n", r":3: the header must name the column\(s\) .*; missing "),
        ("# only a comment\n\n", r": empty {what} \(expected a header line such as '{header}'\)"),
    ],
)
def test_both_readers_share_the_csv_rules(tmp_path, what, body, expected):
    read, header, row = READERS[what]
    path = tmp_path / "ann.csv"
    path.write_text(body.format(header=header, row=row, tail=row.split(",", 1)[1]))
    with pytest.raises(moviekit.MoviekitError, match="ann\\.csv" + expected.format(what=what, header=header)):
        read(path)
    with pytest.raises(moviekit.MoviekitError, match=f"{what} .*missing.csv not found"):
        read(tmp_path / "missing.csv")


@pytest.mark.parametrize("what", list(READERS))
def test_both_readers_skip_comments_and_blank_lines_and_keep_line_numbers(tmp_path, what):
    read, header, row = READERS[what]
    path = tmp_path / "ann.csv"
    path.write_text(f"# made by hand\n\n{header.upper()}\n  # another comment\n{row}\n\n")
    (rec,) = read(path)
    assert (rec.video, rec.shot, rec.line) == ("v1", 0, 5)
