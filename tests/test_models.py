"""The trained-model hand-off between runs: a recipe trains a model, a second recipe starts from it
(by run directory and name, or by file), and the second run's starting weights are the first run's
final weights."""

import json

import pytest
import torch

from moviekit import MoviekitError, load_model, load_recipe, run_recipe
from moviekit.default_plugins import generic
from moviekit.default_plugins.formats import write_features_dir
from moviekit.models import ModelPart, TrainedModel, init_from
from moviekit.recipe import validate
from moviekit.testing import tiny_items


def _recipe(root, cache, task, **extra):
    return {
        "dataset": {"use": "features_dir", "root": str(root)},
        "encoder": {"use": "mean_pool", "dim": 8, "hidden": 16},
        "head": {"use": "mlp", "hidden": [8]},
        "tasks": [task],
        "run": {"device": "cpu", "cache_dir": str(cache)},
        **extra,
    }


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("first")
    write_features_dir(tmp / "features", tiny_items(n=16, seed=1))
    data = _recipe(tmp / "features", tmp / "cache", {"use": "multilabel_classification", "epochs": 3, "batch_size": 4, "model_name": "pre"})
    run_recipe(validate(data), output=tmp / "run")
    return tmp


def _starting_weights(monkeypatch):
    """Record the encoder and head weights multilabel_classification starts training from."""
    seen = {}
    real = generic.fit_multilabel

    def spy(ctx, encoder, head, *args, **kwargs):
        seen["encoder"] = {k: v.clone() for k, v in encoder.state_dict().items()}
        seen["head"] = {k: v.clone() for k, v in head.state_dict().items()}
        return real(ctx, encoder, head, *args, **kwargs)

    monkeypatch.setattr(generic, "fit_multilabel", spy)
    return seen


def _equal(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("source", ["run", "file"])
def test_second_run_starts_from_the_first_runs_final_weights(first_run, tmp_path, monkeypatch, source):
    trained = load_model(first_run / "run" / "models" / "pre")
    assert trained.record.task == "multilabel_classification" and list(trained.record.parts) == ["encoder", "head"]
    ref = {"run": str(first_run / "run"), "name": "pre"} if source == "run" else {"file": str(first_run / "run" / "models" / "pre.json")}
    seen = _starting_weights(monkeypatch)
    data = _recipe(
        first_run / "features",
        tmp_path / "cache",
        {"use": "multilabel_classification", "epochs": 1, "batch_size": 4, "init": "start"},
        models={"start": ref},
    )
    run_recipe(validate(data), output=tmp_path / "run")
    assert _equal(seen["encoder"], trained.part_state("encoder"))
    assert _equal(seen["head"], trained.part_state("head"))  # same shape and vocabulary: the head too
    second = load_model(tmp_path / "run" / "models" / "multilabel")
    assert second.record.meta["init"] == "start" and second.record.meta["init_parts"] == ["encoder", "head"]
    assert not _equal(second.part_state("encoder"), trained.part_state("encoder"))  # and it trained on from there


def test_without_init_the_run_does_not_start_from_the_model(first_run, tmp_path, monkeypatch):
    seen = _starting_weights(monkeypatch)
    data = _recipe(first_run / "features", tmp_path / "cache", {"use": "multilabel_classification", "epochs": 1, "batch_size": 4})
    run_recipe(validate(data), output=tmp_path / "run")
    assert not _equal(seen["encoder"], load_model(first_run / "run" / "models" / "pre").part_state("encoder"))


def test_missing_run_or_model_is_a_clear_error_naming_the_key(first_run, tmp_path):
    task = {"use": "multilabel_classification", "epochs": 1, "init": "pre"}
    cases = [
        ({"run": str(tmp_path / "nowhere"), "name": "pre"}, r"models\.pre: .*nowhere: run directory not found"),
        ({"run": str(first_run / "run"), "name": "other"}, r"models\.pre: .*no model named 'other'; it has: pre"),
        ({"file": str(tmp_path / "gone.json")}, r"models\.pre: .*gone\.json: model file not found"),
    ]
    for ref, message in cases:
        data = _recipe(first_run / "features", tmp_path / "cache", task, models={"pre": ref})
        with pytest.raises(MoviekitError, match=message):
            run_recipe(validate(data), output=tmp_path / "run")
    with pytest.raises(Exception, match=r"models\.pre"):
        validate(_recipe(first_run / "features", tmp_path / "cache", task, models={"pre": {"run": str(first_run / "run")}}))
    # a task that starts from a model nobody loaded names what there is
    data = _recipe(
        first_run / "features", tmp_path / "cache", {**task, "init": "typo"}, models={"pre": {"run": str(first_run / "run"), "name": "pre"}}
    )
    with pytest.raises(MoviekitError, match=r"no model named 'typo' in this run \(models available: pre\)"):
        run_recipe(validate(data), output=tmp_path / "run")


def test_a_pickled_file_is_refused_not_loaded(tmp_path):
    import pickle

    bad = tmp_path / "model.pt"
    bad.write_bytes(pickle.dumps({"x": 1}))
    with pytest.raises(MoviekitError, match=r"model\.pt: a pickled checkpoint is not loaded"):
        load_model(bad)
    (tmp_path / "m.json").write_text("{}")
    (tmp_path / "m.safetensors").write_bytes(pickle.dumps({"x": 1}))
    with pytest.raises(MoviekitError, match=r"m\.json: not a moviekit model record"):
        load_model(tmp_path / "m")


def test_init_from_checks_the_parts():
    lin = torch.nn.Linear
    enc = ModelPart(kind="encoder", component={"use": "mean_pool", "dim": 4}, build={"dims": {"v": [3]}})
    head = ModelPart(kind="head", component={"use": "mlp"}, build={"in_dim": 4, "out_dim": 2})
    model = TrainedModel.from_modules("m", {"encoder": (enc, lin(3, 4)), "head": (head, lin(4, 2))}, vocabulary=["a", "b"])
    e, h = lin(3, 4), lin(4, 2)
    assert init_from(model, {"encoder": (enc, e), "head": (head, h)}, vocabulary=["a", "b"]) == ["encoder", "head"]
    assert torch.equal(e.weight, model.part_state("encoder")["weight"]) and torch.equal(h.weight, model.part_state("head")["weight"])
    # other classes: the head starts afresh; another encoder component or shape: a clear error
    assert init_from(model, {"encoder": (enc, lin(3, 4)), "head": (head, lin(4, 2))}, vocabulary=["b", "a"]) == ["encoder"]
    other = enc.model_copy(update={"component": {"use": "mmx_gated"}})
    with pytest.raises(MoviekitError, match="built by 'mean_pool', this task builds 'mmx_gated'"):
        init_from(model, {"encoder": (other, lin(3, 4))})
    with pytest.raises(MoviekitError, match="'encoder' weights do not fit the module built here"):
        init_from(model, {"encoder": (enc, lin(5, 4))})
    with pytest.raises(MoviekitError, match="has no part 'encoder'"):
        init_from(TrainedModel.from_modules("h", {"head": (head, lin(4, 2))}), {"encoder": (enc, lin(3, 4))})


def test_no_test_split_evaluates_val_and_says_so(tmp_path):
    items = tiny_items(n=12, seed=2)
    for it in items:
        it.video.split = "val" if it.video.split == "test" else it.video.split
    write_features_dir(tmp_path / "features", items)
    data = _recipe(tmp_path / "features", tmp_path / "cache", {"use": "multilabel_classification", "epochs": 1})
    summary = run_recipe(validate(data), output=tmp_path / "run")
    assert summary["tasks"]["0:multilabel_classification"]["evaluated_split"] == "val"
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["evaluated_split"] == "val"
    rows = (tmp_path / "run" / "per_class.csv").read_text().splitlines()
    assert rows[0] == "label,support,auprc,precision,recall,f1,random_auprc" and len(rows) == 1 + 3
    for it in items:
        it.video.split = "train"
    write_features_dir(tmp_path / "train_only", items)
    data = _recipe(tmp_path / "train_only", tmp_path / "cache", {"use": "multilabel_classification", "epochs": 1})
    with pytest.raises(
        MoviekitError,
        match=r"no test or val items to evaluate on \(the items are: 12 train\); a task never evaluates on its training split",
    ):
        run_recipe(validate(data), output=tmp_path / "run2")


def test_recipe_file_with_models_section(first_run, tmp_path):
    path = tmp_path / "second.yaml"
    path.write_text(
        f"dataset: {{use: features_dir, root: {first_run / 'features'}}}\n"
        "encoder: {use: mean_pool, dim: 8, hidden: 16}\nhead: {use: mlp, hidden: [8]}\n"
        f"models:\n  pre: {{run: {first_run / 'run'}, name: pre}}\n"
        "tasks:\n  - {use: multilabel_classification, epochs: 1, init: pre}\n"
        f"run: {{device: cpu, cache_dir: {tmp_path / 'cache'}}}\n"
    )
    resolved = load_recipe(path)
    assert resolved.recipe.models["pre"].name == "pre"
