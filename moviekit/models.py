"""The one typed hand-off of a trained model: between tasks, between runs, to commands.

A :class:`TrainedModel` is a JSON-able :class:`ModelRecord` (what built the model, its
input dims, vocabulary, metrics and any small JSON metadata) plus a flat state dict of
tensors.  On disk it is two files side by side, ``<stem>.json`` and
``<stem>.safetensors``: data only, so loading a model (from a run directory, a shared
cache or a download) can never execute code.

Tasks hand models on with ``ctx.put_model(model)`` and take them with
``ctx.model(name)``; a recipe's ``models:`` section loads models trained by an earlier
run (``{run: DIR, name: NAME}``) or from a file (``{file: PATH}``) under a name tasks
can start from.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import MoviekitError

#: Version of the on-disk model format (``format`` in the JSON file).
MODEL_FORMAT = 1


class ModelPart(BaseModel):
    """One module of a trained model and how to build it again.

    ``component`` is the recipe entry (``{use: NAME, **config}``) of the encoder or head
    component that builds it; ``build`` the arguments its ``build`` took (``dims`` for an
    encoder, ``in_dim``/``out_dim`` for a head).  A part that no component builds (a
    plugin's own network) has ``kind: module`` and is rebuilt by its plugin from ``build``.
    """

    model_config = ConfigDict(extra="forbid")

    kind: Literal["encoder", "head", "module"]
    component: dict[str, Any] = Field(default_factory=dict)
    build: dict[str, Any] = Field(default_factory=dict)


class ModelRecord(BaseModel):
    """What a trained model is, apart from its weights (the JSON half on disk)."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    format: int = MODEL_FORMAT
    name: str = Field(description="the name tasks and recipes refer to, e.g. 'coarse' or 'scene_encoder'")
    task: str = Field("", description="the task (component name) that trained it")
    parts: dict[str, ModelPart] = Field(description="the modules, by prefix of their keys in the state dict")
    input_dims: dict[str, list[int]] = Field(default_factory=dict, description="per-modality feature shapes it takes")
    vocabulary: list[str] = Field(default_factory=list)
    metrics: dict[str, Any] = Field(default_factory=dict)
    meta: dict[str, Any] = Field(default_factory=dict, description="small JSON metadata (threshold, training settings, ...)")


class TrainedModel:
    """A :class:`ModelRecord` with its state dict (CPU tensors keyed ``<part>.<param>``)."""

    def __init__(self, record: ModelRecord, state: dict[str, Any]):
        self.record = record
        self.state = state

    @property
    def name(self) -> str:
        return self.record.name

    @classmethod
    def from_modules(cls, name: str, modules: dict[str, tuple[ModelPart, Any]], **fields: Any) -> TrainedModel:
        """A record of ``{part: (ModelPart, torch module)}``, the weights copied to the CPU."""
        state: dict[str, Any] = {}
        for part, (_, module) in modules.items():
            for k, v in module.state_dict().items():
                state[f"{part}.{k}"] = v.detach().cpu().clone()
        record = ModelRecord(name=name, parts={p: spec for p, (spec, _) in modules.items()}, **fields)
        return cls(record, state)

    def part_state(self, part: str) -> dict[str, Any]:
        """The state dict of one part, its prefix stripped."""
        if part not in self.record.parts:
            raise MoviekitError(f"model '{self.name}' has no part '{part}' (it has: {', '.join(self.record.parts)})")
        prefix = part + "."
        return {k[len(prefix) :]: v for k, v in self.state.items() if k.startswith(prefix)}

    def load_part(self, part: str, module: Any) -> Any:
        """Load the weights of ``part`` into ``module`` (built by the caller); returns it.
        A module of another shape is a clear error naming the model and part, not a torch traceback."""
        state = self.part_state(part)
        try:
            module.load_state_dict(state)
        except RuntimeError as e:
            detail = " ".join(str(e).split())[:400]
            raise MoviekitError(f"model '{self.name}': its '{part}' weights do not fit the module built here ({detail})") from None
        return module

    def build(self, part: str, registry: Any = None) -> Any:
        """Build the module of an encoder or head part from its component and load its weights."""
        spec = self.record.parts.get(part)
        if spec is None:
            raise MoviekitError(f"model '{self.name}' has no part '{part}' (it has: {', '.join(self.record.parts)})")
        if spec.kind == "module":
            raise MoviekitError(f"model '{self.name}': part '{part}' is a plugin module; its plugin rebuilds it")
        return self.load_part(part, build_part(spec, registry))

    def save(self, stem: str | Path) -> list[Path]:
        """Write ``<stem>.json`` and ``<stem>.safetensors`` atomically; returns both paths."""
        from safetensors.torch import save as st_save

        from .store import atomic_write_bytes

        stem = Path(stem)
        tensors = {k: v.contiguous() for k, v in self.state.items()}
        paths = [stem.with_name(stem.name + ".safetensors"), stem.with_name(stem.name + ".json")]
        atomic_write_bytes(paths[0], st_save(tensors))
        atomic_write_bytes(paths[1], self.record.model_dump_json(indent=2).encode())
        return paths

    def __repr__(self) -> str:
        return f"<TrainedModel {self.name} parts={list(self.record.parts)} tensors={len(self.state)}>"


def build_part(spec: ModelPart, registry: Any = None) -> Any:
    """A fresh (untrained) module for an encoder or head part."""
    from .plugins import get_registry

    reg = registry or get_registry()
    fields = dict(spec.component)
    name = fields.pop("use", None)
    if not name:
        raise MoviekitError(f"a {spec.kind} part without a component name cannot be built")
    comp = reg.create(name, spec.kind, **fields)
    if spec.kind == "encoder":
        return comp.build({k: tuple(v) for k, v in spec.build["dims"].items()})
    return comp.build(int(spec.build["in_dim"]), int(spec.build["out_dim"]))


def init_from(
    model: TrainedModel,
    modules: dict[str, tuple[ModelPart, Any]],
    required: tuple[str, ...] = ("encoder",),
    vocabulary: list[str] | None = None,
) -> list[str]:
    """Start the freshly built ``{part: (ModelPart, module)}`` of a task from ``model``'s weights.

    A ``required`` part (the encoder, by default) must be in ``model`` and built by the same
    component with weights of the same shapes, else a clear error.  Any other part is loaded
    only when it fits exactly (same component, build arguments and, for a head, the same
    ``vocabulary``), and otherwise left as built: a head trained on other classes starts afresh.
    Returns the parts loaded.
    """
    loaded = []
    have = ", ".join(model.record.parts) or "none"
    for part, (spec, module) in modules.items():
        theirs = model.record.parts.get(part)
        if part in required:
            if theirs is None:
                raise MoviekitError(f"model '{model.name}' has no part '{part}' to start from (it has: {have})")
            if theirs.component.get("use") != spec.component.get("use"):
                raise MoviekitError(
                    f"model '{model.name}': its '{part}' was built by '{theirs.component.get('use')}', this task builds '{spec.component.get('use')}'"
                )
            model.load_part(part, module)
            loaded.append(part)
        elif theirs is not None and theirs.component == spec.component and theirs.build == spec.build:
            if spec.kind == "head" and vocabulary is not None and list(model.record.vocabulary) != list(vocabulary):
                continue
            model.load_part(part, module)
            loaded.append(part)
    return loaded


def model_stem(path: str | Path) -> Path:
    """``x.json``, ``x.safetensors`` or ``x`` → the stem ``x``."""
    p = Path(path)
    if p.suffix in (".json", ".safetensors"):
        return p.with_suffix("")
    return p


def load_model(path: str | Path) -> TrainedModel:
    """Read a model written by :meth:`TrainedModel.save` (data only: JSON + safetensors).

    Errors name the file: a missing half, JSON that is not a model record, or a weights file
    that is not safetensors (a pickled ``.pt`` is refused, never unpickled).
    """
    from safetensors import SafetensorError
    from safetensors.torch import load as st_load

    if Path(path).suffix in (".pt", ".pth", ".pkl", ".ckpt"):
        raise MoviekitError(
            f"{path}: a pickled checkpoint is not loaded (it could run code); a moviekit model is a .json record beside a .safetensors file"
        )
    stem = model_stem(path)
    meta, weights = stem.with_name(stem.name + ".json"), stem.with_name(stem.name + ".safetensors")
    for f in (meta, weights):
        if not f.is_file():
            raise MoviekitError(f"{f}: model file not found (a model is a .json record beside a .safetensors file)")
    try:
        record = ModelRecord.model_validate_json(meta.read_bytes())
    except ValidationError as e:
        first = e.errors()[0]
        loc = ".".join(str(x) for x in first["loc"]) or "(top level)"
        raise MoviekitError(f"{meta}: not a moviekit model record: {loc}: {first['msg']}") from None
    if record.format > MODEL_FORMAT:
        raise MoviekitError(f"{meta}: model format {record.format} is newer than this moviekit reads ({MODEL_FORMAT}); upgrade moviekit")
    try:
        state = st_load(weights.read_bytes())
    except (SafetensorError, ValueError, OSError) as e:
        raise MoviekitError(f"{weights}: not a safetensors weights file ({e})") from None
    return TrainedModel(record, state)


def find_run_model(run_dir: str | Path, name: str) -> Path:
    """The stem of model ``name`` in a finished run directory (``<run>/models/<name>``)."""
    run = Path(run_dir)
    if not run.is_dir():
        raise MoviekitError(f"{run}: run directory not found")
    stem = run / "models" / name
    if not stem.with_name(name + ".json").is_file():
        have = sorted(p.stem for p in (run / "models").glob("*.json")) if (run / "models").is_dir() else []
        hint = f"; it has: {', '.join(have)}" if have else "; it has no models/ (did that run finish a training task?)"
        raise MoviekitError(f"{run}: no model named '{name}'{hint}")
    return stem


def model_digest(model: TrainedModel) -> str:
    """A content hash of a model (record and weights), for the keys of the tasks that use it."""
    import hashlib

    from safetensors.torch import save as st_save

    h = hashlib.sha256(json.dumps(model.record.model_dump(mode="json"), sort_keys=True).encode())
    h.update(st_save({k: v.contiguous() for k, v in sorted(model.state.items())}))
    return h.hexdigest()
