"""YAML recipes: loading, ``--set`` overrides and validation against the registry."""

from __future__ import annotations

import copy
import difflib
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .components import Component
from .errors import PluginError, RecipeError, UnknownComponentError
from .plugins import Registry, get_registry


class ComponentSpec(BaseModel):
    """A recipe entry ``{use: <registered name>, <its config fields>}``."""

    model_config = ConfigDict(extra="allow")

    use: str

    def fields(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class ClipsConfig(BaseModel):
    """How shots become clips.  (Groups of clips, such as sequences, are set on the component
    that groups them: see :mod:`moviekit.groups`.)"""

    model_config = ConfigDict(extra="forbid")

    trim_start: int = Field(1, ge=0, description="frames dropped at the start of each shot")
    trim_end: int = Field(1, ge=0, description="frames dropped at the end of each shot")
    min_frames: int = Field(1, ge=1, description="clips shorter than this (after trimming) are dropped")
    min_clips: int = Field(10, ge=0, description="videos with fewer clips are excluded (and reported)")


DEVICE_RE = re.compile(r"^(auto|cpu|cuda(:\d+)?|mps)$")


class RayConfig(BaseModel):
    """Where and how the ``ray`` executor runs (``run.executor: ray``)."""

    model_config = ConfigDict(extra="forbid")

    address: str | None = Field(None, description="an existing Ray cluster (`auto`, or `ray://HOST:10001`); None starts a local one")
    num_cpus: int | None = Field(None, ge=1, description="CPUs of the local cluster started when no address is given; None: all of them")
    num_cpus_per_task: float = Field(1.0, gt=0, description="CPUs reserved by each video's task")
    num_gpus_per_task: float = Field(0.0, ge=0, description="GPUs reserved by each video's task (set >0 on a cluster with CUDA workers; experts then find CUDA)")
    max_retries: int = Field(2, ge=0, description="retries of a video whose worker died (a raised error is not retried: it is recorded in failures.jsonl)")


class RunConfig(BaseModel):
    """Where and how a run executes."""

    model_config = ConfigDict(extra="forbid")

    output: Path | None = Field(None, description="run directory; default runs/<recipe name>")
    device: str = Field("auto", description="auto | cpu | cuda | cuda:N")
    seed: int = 0
    workers: int = Field(0, ge=0, description="data-loader worker processes; with executor processes or ray, also the videos extracted at once (0: one per CPU)")
    executor: Literal["local", "processes", "ray"] = Field(
        "local", description="how videos are extracted: local (one after another in this process), processes (run.workers local processes), ray (Ray tasks, see run.ray)"
    )
    ray: RayConfig = Field(default_factory=RayConfig)
    precision: Literal["fp32", "bf16", "fp16"] = Field("fp32", description="autocast precision on CUDA")
    cache_dir: Path | None = Field(None, description="artifact store; default <user cache>/moviekit/artifacts")
    reader: ComponentSpec = Field(default_factory=lambda: ComponentSpec(use="pyav"))
    strict: bool = Field(False, description="stop at the first failed item")

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        if not DEVICE_RE.match(v):
            raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {v!r}")
        return v


class ModelSource(BaseModel):
    """A trained model to start from: ``{run: RUN_DIR, name: NAME}`` (the model an earlier run
    wrote to ``RUN_DIR/models/NAME.*``) or ``{file: PATH}`` (a ``.json``/``.safetensors`` pair)."""

    model_config = ConfigDict(extra="forbid")

    run: Path | None = Field(None, description="run directory of an earlier run")
    name: str | None = Field(None, description="the model's name in that run (its models/<name>.json)")
    file: Path | None = Field(None, description="a model file pair written by moviekit (<stem>.json + <stem>.safetensors)")

    @model_validator(mode="after")
    def _one_source(self) -> ModelSource:
        if (self.file is None) == (self.run is None):
            raise ValueError("give either `file`, or `run` and `name`")
        if self.run is not None and not self.name:
            raise ValueError("`run` needs the model's `name`")
        return self

    def stem(self) -> Path:
        from .models import find_run_model, model_stem

        return model_stem(self.file) if self.file is not None else find_run_model(self.run, self.name)


class Recipe(BaseModel):
    """A whole run: the components to compose and the tasks to execute."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    description: str = ""
    dataset: ComponentSpec
    segmenter: ComponentSpec | None = None
    experts: dict[str, ComponentSpec] = Field(default_factory=dict)
    labeler: ComponentSpec | None = None
    encoder: ComponentSpec | None = None
    head: ComponentSpec | None = None
    tasks: list[ComponentSpec] = Field(default_factory=list)
    models: dict[str, ModelSource] = Field(
        default_factory=dict, description="trained models loaded before the tasks, by the name tasks start from (`init: NAME`)"
    )
    clips: ClipsConfig = Field(default_factory=ClipsConfig)
    run: RunConfig = Field(default_factory=RunConfig)


#: Recipe sections holding one component, with the kind it must be.
SINGLE_SECTIONS = {"dataset": "dataset", "segmenter": "segmenter", "labeler": "labeler", "encoder": "encoder", "head": "head"}


class ResolvedComponent(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    path: str
    cls: Any
    config: Any

    def build(self) -> Component:
        return self.cls(self.config)


class ResolvedRecipe(BaseModel):
    """A validated recipe with each component's class and validated config."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    source: str
    raw: dict[str, Any]
    recipe: Recipe
    components: dict[str, ResolvedComponent]

    def component(self, path: str) -> ResolvedComponent | None:
        return self.components.get(path)

    def resolved_dict(self) -> dict[str, Any]:
        """The recipe with every component's defaults filled in."""
        out = self.recipe.model_dump(mode="json", exclude_none=True)
        for path, rc in self.components.items():
            entry = {"use": rc.cls.name, **rc.config.model_dump(mode="json")}
            _set_path(out, _split_path(path), entry)
        return out

    @property
    def name(self) -> str:
        return self.recipe.name or Path(self.source).stem


def format_loc(loc: tuple[Any, ...] | list[Any]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _split_path(path: str) -> list[Any]:
    parts: list[Any] = []
    for token in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        parts.append(int(token[1:-1]) if token.startswith("[") else token)
    return parts


def _set_path(data: Any, parts: list[Any], value: Any) -> None:
    for p in parts[:-1]:
        data = data[p]
    data[parts[-1]] = value


#: Keys that moved out of a recipe section, with where they went (an old recipe's error says so).
MOVED_KEYS = {
    ("clips", "sequence_length"): "clips.sequence_length was removed: a sequence length belongs to the encoder that "
    "groups clips into sequences; set it there once (mmx_gated: `encoder.clips_per_sequence`)",
}


def _allowed_keys(model: type[BaseModel]) -> list[str]:
    return list(model.model_fields)


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The recipe-level pydantic model that owns the key at ``loc`` (for allowed-key hints)."""
    models: dict[str, type[BaseModel]] = {"clips": ClipsConfig, "run": RunConfig}
    if len(loc) == 1:
        return Recipe
    if len(loc) == 2 and loc[0] in models:
        return models[loc[0]]
    return None


def _pydantic_problems(err: ValidationError, prefix: tuple[Any, ...], model_for: Any) -> list[tuple[str, str]]:
    problems = []
    for e in err.errors():
        loc = prefix + tuple(e["loc"])
        if e["type"] == "extra_forbidden":
            model = model_for(tuple(e["loc"]))
            key = str(e["loc"][-1])
            msg = f"unknown key '{key}'"
            moved = MOVED_KEYS.get(tuple(str(x) for x in e["loc"]))
            if moved:
                msg = moved
            elif model is not None:
                allowed = _allowed_keys(model)
                close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
                if close:
                    msg += f"; did you mean '{close[0]}'?"
                msg += f" Allowed keys: {', '.join(allowed)}"
        elif e["type"] == "missing":
            msg = "required key is missing"
        else:
            msg = e["msg"]
            if "input" in e and not isinstance(e["input"], (dict, list)):
                msg += f" (got {e['input']!r})"
            ctx = e.get("ctx") or {}
            if "expected" in ctx:
                msg += f"; allowed values: {ctx['expected']}"
        problems.append((format_loc(loc), msg))
    return problems


def parse_override(text: str) -> tuple[list[Any], Any]:
    """``a.b.c=value`` -> (path parts, YAML-typed value)."""
    if "=" not in text:
        raise RecipeError("--set", [(text, "an override must look like key.path=value")])
    key, _, value = text.partition("=")
    key = key.strip()
    if not key:
        raise RecipeError("--set", [(text, "empty key path")])
    parts: list[Any] = [int(p) if p.isdigit() else p for p in re.split(r"\.|\[|\]\.?", key) if p != ""]
    try:
        parsed = yaml.safe_load(value) if value.strip() else ""
    except yaml.YAMLError as e:
        raise RecipeError("--set", [(key, f"value is not valid YAML: {e}")]) from None
    return parts, parsed


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    for text in overrides:
        parts, value = parse_override(text)
        node: Any = data
        for i, p in enumerate(parts[:-1]):
            nxt = parts[i + 1]
            if isinstance(node, list):
                if not isinstance(p, int) or p >= len(node):
                    raise RecipeError("--set", [(format_loc(parts[: i + 1]), f"no list index {p} (list has {len(node)} entries)")])
                node = node[p]
                continue
            if node.get(p) is None:
                node[p] = [] if isinstance(nxt, int) else {}
            node = node[p]
        last = parts[-1]
        if isinstance(node, list):
            if not isinstance(last, int) or last >= len(node):
                raise RecipeError("--set", [(format_loc(parts), f"no list index {last}")])
        node[last] = value
    return data


def read_yaml(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.exists():
        raise RecipeError(str(p), [("", "file not found")])
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        raise RecipeError(str(p), [("", f"not valid YAML: {e}")]) from None
    if not isinstance(data, dict):
        raise RecipeError(str(p), [("", f"a recipe must be a mapping, got {type(data).__name__}")])
    return data


def validate(data: dict[str, Any], source: str = "<recipe>", registry: Registry | None = None) -> ResolvedRecipe:
    """Validate raw recipe data; raise :class:`RecipeError` listing every problem."""
    registry = registry or get_registry()
    problems: list[tuple[str, str]] = []
    try:
        recipe = Recipe.model_validate(data)
    except ValidationError as e:
        problems += _pydantic_problems(e, (), _model_at)
        # Drop the unknown keys and retry, so component names are still checked in the same report.
        pruned = copy.deepcopy(data)
        for err in e.errors():
            if err["type"] == "extra_forbidden":
                node: Any = pruned
                for part in err["loc"][:-1]:
                    node = node[part]
                node.pop(err["loc"][-1], None)
        try:
            recipe = Recipe.model_validate(pruned)
        except ValidationError:
            raise RecipeError(source, problems) from None

    components: dict[str, ResolvedComponent] = {}

    def resolve(path: tuple[Any, ...], spec: ComponentSpec, kind: str) -> None:
        dotted = format_loc(path)
        try:
            cls = registry.get(spec.use, kind)
        except (UnknownComponentError, PluginError) as e:
            problems.append((f"{dotted}.use", str(e)))
            return
        try:
            config = cls.Config(**spec.fields())
        except ValidationError as e:
            def model_for(loc: tuple[Any, ...], _cls: type[Component] = cls) -> type[BaseModel] | None:
                return _cls.Config if len(loc) == 1 else None

            for p, msg in _pydantic_problems(e, path, model_for):
                problems.append((p, msg + f" [{kind} '{spec.use}']"))
            return
        components[dotted] = ResolvedComponent(path=dotted, cls=cls, config=config)

    for section, kind in SINGLE_SECTIONS.items():
        spec = getattr(recipe, section)
        if spec is not None:
            resolve((section,), spec, kind)
    for key, spec in recipe.experts.items():
        resolve(("experts", key), spec, "expert")
    for i, spec in enumerate(recipe.tasks):
        resolve(("tasks", i), spec, "task")
    resolve(("run", "reader"), recipe.run.reader, "reader")

    for i, spec in enumerate(recipe.tasks):
        rc = components.get(f"tasks[{i}]")
        if rc is None:
            continue
        for section in sorted(rc.cls.requires):
            if not getattr(recipe, section, None):
                problems.append((f"tasks[{i}]", f"task '{spec.use}' needs a `{section}` section, which the recipe does not have"))
    for rc in components.values():
        problems += [(rc.path, f"{msg} [{rc.cls.kind} '{rc.cls.name}']") for msg in rc.cls.check_recipe(rc.config, recipe)]
    if recipe.experts and recipe.segmenter is None:
        problems.append(("segmenter", "experts pool features per clip, so the recipe needs a segmenter"))
    if problems:
        raise RecipeError(source, problems)
    return ResolvedRecipe(source=source, raw=data, recipe=recipe, components=components)


def load_recipe(path: str | Path, overrides: list[str] | None = None, registry: Registry | None = None) -> ResolvedRecipe:
    data = read_yaml(path)
    if overrides:
        try:
            apply_overrides(data, overrides)
        except RecipeError as e:
            raise RecipeError(f"{path} (--set)", e.problems) from None
    return validate(data, str(path), registry)
