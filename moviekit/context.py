"""What a task sees while it runs: :class:`TaskContext` (items, models, settings) and the
:class:`Reporter` that shows progress.  Kept apart from the runner that executes tasks, so
component interfaces import it without importing the executor."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import MoviekitError
from .models import TrainedModel
from .records import Item
from .store import ArtifactStore

if TYPE_CHECKING:  # pragma: no cover - annotations only; importing them here would make a cycle
    from .components import Encoder, Expert, Head, TaskResult
    from .recipe import ResolvedRecipe


class Reporter:
    """Progress callbacks; the CLI shows them with rich, tests leave them silent."""

    def stage(self, name: str, total: int | None) -> None: ...

    def advance(self, name: str, n: int = 1) -> None: ...

    def done(self, name: str) -> None: ...

    def log(self, message: str) -> None: ...


@dataclass
class TaskContext:
    """What a task sees: the extracted items, the shared models and the run's settings."""

    recipe: ResolvedRecipe
    out_dir: Path
    items: list[Item]
    vocabulary: list[str]
    device: Any
    precision: str
    seed: int
    workers: int
    store: ArtifactStore
    encoder: Encoder | None = None
    head: Head | None = None
    experts: dict[str, Expert] = field(default_factory=dict)
    #: Trained models handed from task to task (and loaded from earlier runs by the recipe's ``models:``).
    models: dict[str, TrainedModel] = field(default_factory=dict)
    #: Small JSON-able state passed from task to task; persisted with each task.
    shared: dict[str, Any] = field(default_factory=dict)
    results: dict[str, TaskResult] = field(default_factory=dict)
    reporter: Reporter = field(default_factory=Reporter)
    task_key: str = ""

    def autocast(self) -> Any:
        from .device import autocast

        return autocast(self.device, self.precision)

    def grad_scaler(self) -> Any:
        from .device import grad_scaler

        return grad_scaler(self.device, self.precision)

    def log(self, message: str) -> None:
        self.reporter.log(message)

    def checkpoint_path(self, name: str = "checkpoint") -> Path:
        """A per-task file for mid-task checkpoints in the store, keyed like the task's artifact."""
        return self.store.file_path("checkpoints", f"{self.task_key}-{name}.pt")

    def put_model(self, model: TrainedModel) -> list[str]:
        """Hand ``model`` on to later tasks and write it to ``<run>/models/<name>.{json,safetensors}``
        (the one copy on disk); returns those files relative to the run directory, for ``TaskResult.files``."""
        self.models[model.name] = model
        paths = model.save(self.out_dir / "models" / model.name)
        return [str(p.relative_to(self.out_dir)) for p in paths]

    def model(self, name: str) -> TrainedModel:
        """A model put by an earlier task or loaded by the recipe's ``models:`` section."""
        if name not in self.models:
            have = ", ".join(sorted(self.models)) or "none"
            raise MoviekitError(
                f"no model named '{name}' in this run (models available: {have}); train it in an earlier task or load it under `models:` in the recipe"
            )
        return self.models[name]

    def split(self, name: str) -> list[Item]:
        return [it for it in self.items if it.video.split == name]
