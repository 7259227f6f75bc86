"""The offline recipe end to end on a tiny embedded dataset (a few epochs): every stage runs, hands
its models on, and the ablation writes the slides' tables; a rerun reuses every finished task."""

import csv
import json
from pathlib import Path

from moviekit import load_recipe, run_recipe

RECIPE = Path(__file__).resolve().parents[3] / "recipes" / "hierarchical_movie.yaml"
TINY = [
    "dataset.n_train=6", "dataset.n_val=1", "dataset.n_test=3", "dataset.n_unlabelled=2", "dataset.n_actions=6",
    "tasks[1].epochs=1", "tasks[2].epochs=1", "tasks[3].epochs=1", "tasks[4].epochs=1", "tasks[5].epochs=1",
]  # fmt: skip


def test_recipe_end_to_end_and_resume(tmp_path):
    out = tmp_path / "run"
    summary = run_recipe(load_recipe(RECIPE, TINY), output=out)
    assert summary["failures"] == 0
    models = {p.stem for p in (out / "models").glob("*.json")}
    assert models == {
        "backbone_random",
        "backbone",
        "backbone_supervised",
        "context_backbone_random",
        "context_backbone",
        "context_backbone_supervised",
        "hier_vidsitu",
    }
    rows = list(csv.DictReader((out / "ablation_verbs.csv").open()))
    assert [(r["Pre-training"], r["Contextualizer"]) for r in rows] == [
        (b, c) for b in ("random", "labels", "contrastive") for c in ("none", "mask")
    ]
    assert all(0 <= float(r["Acc@1"]) <= float(r["Acc@5"]) <= 100 for r in rows)
    assert {"Mean Accuracy", "Top1 Accuracy"} <= set(next(csv.DictReader((out / "ablation_relations.csv").open())))
    assert "CIDEr-verb" in (out / "ablation_roles.csv").read_text() and "LEA" in (out / "report.html").read_text()
    meta = json.loads((out / "models" / "backbone.json").read_text())["meta"]
    assert meta["objective"] == "contrastive" and meta["videos"] == 6
    again = run_recipe(load_recipe(RECIPE, TINY), output=out)
    assert again["decodes"] == 0 and again["stages"]["task 6/6: hier_ablation"]["reused"] == 1
