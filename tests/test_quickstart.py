"""The README's main job, at a reduced size, through the real command line."""

import json

from mkhelpers import REPO, run_cli


def test_quickstart_recipe_runs_offline_and_writes_metrics(tmp_path):
    out = tmp_path / "run"
    r = run_cli(
        "run",
        str(REPO / "recipes" / "quickstart.yaml"),
        "--set",
        "dataset.n=16",
        "--set",
        "dataset.min_seconds=8",
        "--set",
        "dataset.max_seconds=10",
        "--set",
        "tasks.0.epochs=5",
        "--set",
        "clips.min_clips=3",
        "--set",
        "run.device=cpu",
        "-o",
        str(out),
        env_extra={"MOVIEKIT_OFFLINE": "1"},
    )
    assert r.returncode == 0, r.stdout + r.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("auprc_micro", "auprc_macro", "auprc_weighted", "precision_weighted", "recall_weighted", "f1_weighted"):
        assert 0.0 <= metrics[key] <= 1.0
        assert key in metrics["random_baseline"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["decodes"] == summary["items"] + summary["exclusions"]
    assert "moviekit run: quickstart" in r.stdout
    resolved = (out / "resolved.yaml").read_text()
    assert "n: 16" in resolved
