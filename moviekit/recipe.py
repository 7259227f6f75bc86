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
    num_gpus_per_task: float = Field(
        0.0, ge=0, description="GPUs reserved by each video's task (set >0 on a cluster with CUDA workers; experts then find CUDA)"
    )
    max_retries: int = Field(
        2, ge=0, description="retries of a video whose worker died (a raised error is not retried: it is recorded in failures.jsonl)"
    )


class RunConfig(BaseModel):
    """Where and how a run executes."""

    model_config = ConfigDict(extra="forbid")

    output: Path | str | None = Field(
        None,
        description="run directory (a path, or an fsspec URL such as s3://bucket/runs/x: written locally, then uploaded); default runs/<recipe name>",
    )
    device: str = Field("auto", description="auto | cpu | cuda | cuda:N")
    seed: int = 0
    workers: int = Field(
        0,
        ge=0,
        description="data-loader worker processes; with executor processes or ray, also the videos extracted at once (0: one per CPU)",
    )
    executor: Literal["local", "processes", "ray"] = Field(
        "local",
        description="how videos are extracted: local (one after another in this process), processes (run.workers local processes), ray (Ray tasks, see run.ray)",
    )
    ray: RayConfig = Field(default_factory=RayConfig)
    precision: Literal["fp32", "bf16", "fp16"] = Field("fp32", description="autocast precision on CUDA")
    cache_dir: Path | str | None = Field(
        None,
        description="artifact store: a path (a shared mount for many machines) or an fsspec URL (s3://bucket/prefix needs "
        "moviekit[s3]); default <user cache>/moviekit/artifacts",
    )
    reader: ComponentSpec = Field(default_factory=lambda: ComponentSpec(use="pyav"))
    strict: bool = Field(False, description="stop at the first failed item")
    threads: int = Field(
        0,
        ge=0,
        description="CPU threads the run may use; consumers of one decode running at once share them (torch and OpenCV get "
        "threads // consumers each); 0: $MOVIEKIT_THREADS, else the cores available",
    )
    consumers: Literal["threads", "serial"] = Field(
        "threads", description="'threads': the consumers of a decode run concurrently, one thread each; 'serial': one after another"
    )

    @field_validator("output", "cache_dir", mode="before")
    @classmethod
    def _location(cls, v: Any) -> Any:
        from .location import as_location

        return as_location(v) if isinstance(v, (str, Path)) else v

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


_OVERRIDE_KEY = re.compile(r"^[A-Za-z_][\w\-]*(\[\d+\])*(\.[A-Za-z_][\w\-]*(\[\d+\])*|\.\d+)*$")


def parse_override(text: str) -> tuple[list[Any], Any]:
    """``a.b.c=value`` (or ``tasks[0].epochs=3``, ``tasks.0.epochs=3``) -> (path parts, YAML-typed value)."""
    if "=" not in text:
        raise RecipeError("--set", [(text, "an override must look like key.path=value")])
    key, _, value = text.partition("=")
    key = key.strip()
    if not key:
        raise RecipeError("--set", [(text, "empty key path (an override looks like key.path=value)")])
    if not _OVERRIDE_KEY.match(key):
        raise RecipeError(
            "--set", [(key, f"malformed key path in {text!r}: use names joined by '.', list entries as [N] (e.g. tasks[0].epochs=3)")]
        )
    parts: list[Any] = [int(p) if p.isdigit() else p for p in re.split(r"\.|\[|\]\.?", key) if p != ""]
    try:
        parsed = yaml.safe_load(value) if value.strip() else ""
    except yaml.YAMLError as e:
        raise RecipeError("--set", [(key, f"value is not valid YAML: {str(e).splitlines()[0]}")]) from None
    return parts, parsed


def _a(word: str) -> str:
    return ("an " if word[:1] in "aeiou" else "a ") + word


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``--set`` overrides to raw recipe data; a key path that runs into a value that is not
    a section (``name.sub=1`` when ``name`` is a string) or past a list's end is a :class:`RecipeError`."""
    for text in overrides:
        parts, value = parse_override(text)
        node: Any = data
        for i, p in enumerate(parts):
            here = format_loc(parts[: i + 1])
            last = i == len(parts) - 1
            if isinstance(node, list):
                if not isinstance(p, int) or p >= len(node):
                    what = (
                        f"no list index {p}"
                        if isinstance(p, int)
                        else f"'{format_loc(parts[:i]) or '<root>'}' is a list; index it as [N], not .{p}"
                    )
                    raise RecipeError("--set", [(here, f"{what} (list has {len(node)} entries)")])
            elif isinstance(node, dict):
                if isinstance(p, int):
                    raise RecipeError(
                        "--set", [(here, f"'{format_loc(parts[:i]) or '<root>'}' is a section, not a list; use a key name, not [{p}]")]
                    )
            else:
                parent = format_loc(parts[:i])
                raise RecipeError(
                    "--set",
                    [
                        (
                            here,
                            f"'{parent}' is {_a(type(node).__name__)} ({node!r}), not a section, so it has no key '{p}'; set '{parent}=...' instead",
                        )
                    ],
                )
            if last:
                node[p] = value
                break
            nxt = parts[i + 1]
            if isinstance(node, dict) and node.get(p) is None:
                node[p] = [] if isinstance(nxt, int) else {}
            node = node[p]
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


def _prune(data: Any, errors: list[dict[str, Any]]) -> bool:
    """Remove the values pydantic rejected (so the rest can still be checked); True if any was removed."""
    removed = False
    for err in errors:
        loc = list(err["loc"])
        node: Any = data
        for part in loc[:-1]:
            try:
                node = node[part]
            except (KeyError, IndexError, TypeError):
                node = None
                break
        if node is None or not loc:
            continue
        last = loc[-1]
        if isinstance(node, dict) and last in node:
            node.pop(last)
            removed = True
        elif isinstance(node, list) and isinstance(last, int) and last < len(node):
            node[last] = None
            removed = True
    return removed


def _raw_specs(data: dict[str, Any]) -> list[tuple[tuple[Any, ...], ComponentSpec, str]]:
    """The component entries of raw recipe data that parse as ``{use: ...}`` (when the recipe as a
    whole does not validate, its components are still checked)."""
    out: list[tuple[tuple[Any, ...], ComponentSpec, str]] = []

    def add(path: tuple[Any, ...], raw: Any, kind: str) -> None:
        if isinstance(raw, dict):
            try:
                out.append((path, ComponentSpec.model_validate(raw), kind))
            except ValidationError:
                pass

    for section, kind in SINGLE_SECTIONS.items():
        add((section,), data.get(section), kind)
    experts = data.get("experts")
    if isinstance(experts, dict):
        for key, raw in experts.items():
            add(("experts", key), raw, "expert")
    tasks = data.get("tasks")
    if isinstance(tasks, list):
        for i, raw in enumerate(tasks):
            add(("tasks", i), raw, "task")
    run = data.get("run")
    add(("run", "reader"), run.get("reader") if isinstance(run, dict) else None, "reader")
    return out


def validate(data: dict[str, Any], source: str = "<recipe>", registry: Registry | None = None) -> ResolvedRecipe:
    """Validate raw recipe data; raise :class:`RecipeError` listing every problem.

    Every problem is reported at once: recipe-level ones (unknown keys, wrong types), each
    component's (unknown name, bad config fields, a constructor that raises) and the checks that
    need the whole recipe (a task's required sections, ``check_recipe``).
    """
    registry = registry or get_registry()
    problems: list[tuple[str, str]] = []
    recipe: Recipe | None = None
    try:
        recipe = Recipe.model_validate(data)
    except ValidationError as e:
        problems += _pydantic_problems(e, (), _model_at)
        # Drop what was rejected and retry, so components are still checked in the same report.
        pruned = copy.deepcopy(data)
        errors = e.errors()
        for _ in range(5):
            if not _prune(pruned, errors):
                break
            try:
                recipe = Recipe.model_validate(pruned)
                break
            except ValidationError as again:
                errors = again.errors()
        if recipe is None:
            specs = _raw_specs(data)
    if recipe is not None:
        specs = [
            ((section,), getattr(recipe, section), kind)
            for section, kind in SINGLE_SECTIONS.items()
            if getattr(recipe, section) is not None
        ]
        specs += [(("experts", key), spec, "expert") for key, spec in recipe.experts.items()]
        specs += [(("tasks", i), spec, "task") for i, spec in enumerate(recipe.tasks)]
        specs.append((("run", "reader"), recipe.run.reader, "reader"))

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
        except Exception as e:  # noqa: BLE001 - a config validator that raises something else
            problems.append((dotted, f"config rejected: {type(e).__name__}: {e} [{kind} '{spec.use}']"))
            return
        rc = ResolvedComponent(path=dotted, cls=cls, config=config)
        try:
            rc.build()
        except Exception as e:  # noqa: BLE001 - a constructor that raises is a problem at its key
            problems.append((dotted, f"could not be created: {type(e).__name__}: {e} [{kind} '{spec.use}']"))
            return
        components[dotted] = rc

    for path, spec, kind in specs:
        resolve(path, spec, kind)

    if recipe is not None:
        for i, spec in enumerate(recipe.tasks):
            rc = components.get(f"tasks[{i}]")
            if rc is None:
                continue
            for section in sorted(rc.cls.requires):
                if not getattr(recipe, section, None):
                    problems.append((f"tasks[{i}]", f"task '{spec.use}' needs a `{section}` section, which the recipe does not have"))
        for rc in components.values():
            try:
                found = rc.cls.check_recipe(rc.config, recipe)
            except Exception as e:  # noqa: BLE001 - a broken check is reported at its key
                found = [f"check_recipe raised {type(e).__name__}: {e}"]
            problems += [(rc.path, f"{msg} [{rc.cls.kind} '{rc.cls.name}']") for msg in found]
        if recipe.experts and recipe.segmenter is None:
            problems.append(("segmenter", "experts pool features per clip, so the recipe needs a segmenter"))
    if problems or recipe is None:
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
