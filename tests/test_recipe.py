import pytest
import yaml
from mkhelpers import run_cli

from moviekit.errors import RecipeError
from moviekit.recipe import apply_overrides, load_recipe, validate

BASE = {
    "dataset": {"use": "video_folder", "root": "/data"},
    "encoder": {"use": "mean_pool", "dim": 32},
    "head": {"use": "mlp"},
    "tasks": [{"use": "multilabel_classification", "epochs": 2}],
}


def problems(data):
    with pytest.raises(RecipeError) as e:
        validate(data, "r.yaml")
    return dict(e.value.problems), str(e.value)


def test_valid_recipe_resolves_defaults():
    rr = validate(BASE, "r.yaml")
    resolved = rr.resolved_dict()
    assert resolved["encoder"]["dim"] == 32
    assert resolved["encoder"]["hidden"] == 512  # default filled in
    assert resolved["tasks"][0]["epochs"] == 2
    assert resolved["run"]["device"] == "auto"


def test_misspelt_component_names_key_path_and_suggests():
    data = {**BASE, "head": {"use": "mpl"}}
    probs, text = problems(data)
    assert "head.use" in probs
    assert "did you mean 'mlp'" in probs["head.use"]
    assert text.startswith("r.yaml:")


def test_misspelt_task_in_list_names_index():
    data = {**BASE, "tasks": [{"use": "export_features"}, {"use": "multilabel_clasification"}]}
    probs, _ = problems(data)
    assert "did you mean 'multilabel_classification'" in probs["tasks[1].use"]


def test_unknown_key_top_level_and_in_component():
    probs, _ = problems({**BASE, "taks": []})
    assert "unknown key 'taks'" in probs["taks"] and "did you mean 'tasks'" in probs["taks"]
    probs, _ = problems({**BASE, "encoder": {"use": "mean_pool", "dimm": 3}})
    assert "encoder.dimm" in probs and "did you mean 'dim'" in probs["encoder.dimm"]
    assert "Allowed keys" in probs["encoder.dimm"]


def test_type_errors_and_allowed_values():
    probs, _ = problems({**BASE, "run": {"precision": "fp8"}})
    assert "run.precision" in probs and "fp16" in probs["run.precision"]
    probs, _ = problems({**BASE, "encoder": {"use": "mean_pool", "dim": "big"}})
    assert "encoder.dim" in probs and "'big'" in probs["encoder.dim"]
    probs, _ = problems({**BASE, "run": {"device": "gpu"}})
    assert "run.device" in probs


def test_wrong_kind_is_named():
    probs, _ = problems({**BASE, "head": {"use": "mean_pool"}})
    assert "is a encoder, not a head" in probs["head.use"]


def test_task_requirements_checked():
    data = {k: v for k, v in BASE.items() if k != "head"}
    probs, _ = problems(data)
    assert "needs a `head` section" in probs["tasks[0]"]


def test_overrides_are_yaml_typed():
    data = yaml.safe_load(yaml.safe_dump(BASE))
    apply_overrides(data, ["encoder.dim=64", "tasks.0.epochs=5", "run.device=cpu", "head.hidden=[8, 4]", "tasks[0].lr=0.01"])
    assert data["encoder"]["dim"] == 64
    assert data["tasks"][0]["epochs"] == 5 and data["tasks"][0]["lr"] == 0.01
    assert data["head"]["hidden"] == [8, 4]
    rr = validate(data)
    assert rr.recipe.run.device == "cpu"
    with pytest.raises(RecipeError):
        apply_overrides(data, ["tasks.3.epochs=1"])
    with pytest.raises(RecipeError):
        apply_overrides(data, ["noequals"])


def test_cli_validate_exit_codes(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(BASE))
    r = run_cli("validate", str(good))
    assert r.returncode == 0, r.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**BASE, "head": {"use": "mpl"}, "extra": 1}))
    r = run_cli("validate", str(bad))
    assert r.returncode != 0
    assert "bad.yaml" in r.stderr and "head.use" in r.stderr and "did you mean 'mlp'" in r.stderr
    assert "unknown key 'extra'" in r.stderr
    r = run_cli("validate", str(good), "--set", "head.use=nothing_like_it")
    assert r.returncode != 0 and "head.use" in r.stderr


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(RecipeError, match="file not found"):
        load_recipe(tmp_path / "nope.yaml")
    p = tmp_path / "list.yaml"
    p.write_text("- a\n- b\n")
    with pytest.raises(RecipeError, match="must be a mapping"):
        load_recipe(p)
    p.write_text("dataset: {use: [\n")
    with pytest.raises(RecipeError, match="not valid YAML"):
        load_recipe(p)
