"""A second recipe starts MMX tasks from the model an earlier run trained: mmx_genre (encoder and
head) and mmx_finetune (encoder) begin from exactly the first run's final weights."""

import pytest
import torch

from moviekit import load_model, run_recipe
from moviekit.default_plugins.formats import write_features_dir
from moviekit.recipe import validate
from moviekit.testing import tiny_items
from moviekit_mmx import tasks
from moviekit_mmx.model import GatedTrailerEncoder


def _recipe(root, cache, task_list, **extra):
    return {
        "dataset": {"use": "features_dir", "root": str(root)},
        "encoder": {"use": "mmx_gated", **GatedTrailerEncoder.example_config(None)},
        "head": {"use": "mlp", "hidden": [16]},
        "tasks": task_list,
        "run": {"device": "cpu", "cache_dir": str(cache)},
        **extra,
    }


def _equal(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_mmx_tasks_start_from_an_earlier_runs_model(tmp_path, monkeypatch):
    write_features_dir(tmp_path / "features", tiny_items(n=16, modalities={"visual": (16,), "motion": (5,)}, n_clips=12, seed=1))
    first = _recipe(tmp_path / "features", tmp_path / "cache", [{"use": "mmx_genre", "epochs": 2, "select_on_val": False}])
    run_recipe(validate(first), output=tmp_path / "first")
    coarse = load_model(tmp_path / "first" / "models" / "coarse")
    assert list(coarse.record.parts) == ["encoder", "head"] and coarse.record.parts["encoder"].component["use"] == "mmx_gated"

    seen = {}
    real_fit, real_loop = tasks.fit_multilabel, tasks.train_loop

    def fit_spy(ctx, encoder, head, *args, **kwargs):
        seen["genre"] = ({k: v.clone() for k, v in encoder.state_dict().items()}, {k: v.clone() for k, v in head.state_dict().items()})
        return real_fit(ctx, encoder, head, *args, **kwargs)

    def loop_spy(model, *args, **kwargs):
        seen["finetune"] = {k: v.clone() for k, v in model["encoder"].state_dict().items()}
        return real_loop(model, *args, **kwargs)

    monkeypatch.setattr(tasks, "fit_multilabel", fit_spy)
    monkeypatch.setattr(tasks, "train_loop", loop_spy)
    second = _recipe(
        tmp_path / "features", tmp_path / "cache",
        [{"use": "mmx_genre", "epochs": 1, "init": "pre"}, {"use": "mmx_finetune", "epochs": 1, "warmup_epochs": 0, "init": "pre", "batch_size": 4}],
        models={"pre": {"run": str(tmp_path / "first"), "name": "coarse"}},
    )  # fmt: skip
    run_recipe(validate(second), output=tmp_path / "second")
    enc, head = seen["genre"]
    assert _equal(enc, coarse.part_state("encoder")) and _equal(head, coarse.part_state("head"))
    assert _equal(seen["finetune"], coarse.part_state("encoder"))
    fine = load_model(tmp_path / "second" / "models" / "fine")
    assert fine.record.meta["from"] == "pre" and list(fine.record.parts) == ["encoder", "head"]  # the head kept for §4.5
    # the second run's genre model was started from another: the ablation would not reuse its scores
    assert load_model(tmp_path / "second" / "models" / "coarse").record.meta["init"] == "pre"


def test_finetune_without_a_model_says_which_task_makes_one(tmp_path):
    write_features_dir(tmp_path / "features", tiny_items(n=8, modalities={"visual": (16,)}, n_clips=6, seed=1))
    data = _recipe(tmp_path / "features", tmp_path / "cache", [{"use": "mmx_finetune", "epochs": 1}])
    with pytest.raises(Exception, match="no 'coarse' MMX model in this run: put the mmx_genre task before this one"):
        run_recipe(validate(data), output=tmp_path / "run")
