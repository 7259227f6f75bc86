"""Executes a validated recipe: dataset, one-pass extraction per video, then tasks.

Every expensive result is an artifact in the content-addressed store, so a run
that was killed resumes from what had finished.  A failing item is written to
``failures.jsonl`` and the run goes on (unless ``strict``).
"""

from __future__ import annotations

import json
import platform
import shutil
import sys
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from .clips import make_clips
from .components import Component, DatasetSource, Encoder, Expert, Head, Labeler, Reader, Segmenter, Task, TaskResult
from .errors import ItemError, MoviekitError, WeightsNotFoundError
from .models import TrainedModel, load_model, model_digest
from .plugins import Registry, get_registry
from .recipe import ResolvedRecipe
from .records import FeatureSet, Item, Video
from .context import Reporter, TaskContext
from .store import ArtifactStore, atomic_write_text, file_hash, hash_key
from .weights import cache_root, resolve_weights


@dataclass
class StageStats:
    computed: int = 0
    reused: int = 0
    failed: int = 0
    excluded: int = 0
    seconds: float = 0.0


def component_identity(registry: Registry, comp: Component) -> dict[str, Any]:
    """What goes into an artifact key for a component."""
    plugin = registry.plugin_of(comp.name) if comp.name in registry.components else None
    return {
        "name": comp.name,
        "version": comp.version,
        "config": comp.config.model_dump(mode="json"),
        "plugin": plugin.distribution if plugin else "local",
        "plugin_version": plugin.version if plugin else "0",
    }


def environment_versions(registry: Registry) -> dict[str, Any]:
    out: dict[str, Any] = {"python": sys.version.split()[0], "platform": platform.platform()}
    try:
        out["moviekit"] = metadata.version("moviekit")
    except metadata.PackageNotFoundError:
        out["moviekit"] = "unknown"
    try:
        import torch

        out["torch"] = torch.__version__
        out["cuda"] = torch.version.cuda if torch.cuda.is_available() else None
        out["cuda_devices"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except Exception as e:  # noqa: BLE001
        out["torch"] = f"unavailable ({e})"
    out["plugins"] = {p.name: {"distribution": p.distribution, "version": p.version, "ok": p.ok} for p in registry.plugins.values()}
    return out


class Runner:
    def __init__(
        self,
        resolved: ResolvedRecipe,
        output: Path | None = None,
        fresh: bool = False,
        strict: bool | None = None,
        reporter: Reporter | None = None,
        registry: Registry | None = None,
    ):
        self.resolved = resolved
        self.recipe = resolved.recipe
        self.registry = registry or get_registry()
        self.out_dir = Path(output or self.recipe.run.output or Path("runs") / resolved.name)
        self.strict = self.recipe.run.strict if strict is None else strict
        self.reporter = reporter or Reporter()
        cache = self.recipe.run.cache_dir or cache_root() / "artifacts"
        self.store = ArtifactStore(cache, read=not fresh)
        self.stats: dict[str, StageStats] = {}
        self.failures: list[dict[str, Any]] = []
        self.exclusions: list[dict[str, Any]] = []
        self.decodes = 0

    # -- helpers -----------------------------------------------------------
    def build(self, path: str) -> Any:
        rc = self.resolved.component(path)
        return rc.build() if rc else None

    @contextmanager
    def _stage(self, name: str, total: int | None) -> Iterator[StageStats]:
        st = self.stats.setdefault(name, StageStats())
        self.reporter.stage(name, total)
        t0 = time.perf_counter()
        try:
            yield st
        finally:
            st.seconds += time.perf_counter() - t0
            self.reporter.done(name)

    def _fail(self, item: str, stage: str, err: BaseException, component: str | None = None) -> None:
        message = err.message if isinstance(err, ItemError) else f"{type(err).__name__}: {err}"
        record = {"item": item, "stage": stage, "component": component, "error": message}
        if not isinstance(err, MoviekitError):
            record["traceback"] = "".join(traceback.format_exception(type(err), err, err.__traceback__))[-4000:]
        self.failures.append(record)
        with (self.out_dir / "failures.jsonl").open("a") as f:
            f.write(json.dumps(record) + "\n")
        self.reporter.log(f"[failed] {item}: {stage}: {message}")
        if self.strict:
            raise MoviekitError(f"{item}: {stage} failed (--strict): {message}") from err

    # -- run -----------------------------------------------------------------
    def prepare(self) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        (self.out_dir / "failures.jsonl").write_text("")
        src = Path(self.resolved.source)
        if src.exists():
            shutil.copyfile(src, self.out_dir / "recipe.yaml")
        atomic_write_text(self.out_dir / "resolved.yaml", yaml.safe_dump(self.resolved.resolved_dict(), sort_keys=False))
        atomic_write_text(self.out_dir / "versions.json", json.dumps(environment_versions(self.registry), indent=2))

    def check_weights(self) -> None:
        """Resolve the weights of every component that reads the videos, before any data work.

        Missing weights are a problem of the whole run, not of one video: the run stops at once
        with the actionable message, prefixed by the recipe key, instead of failing every video.
        (A rerun whose features are all cached still needs the weights to be findable.)
        """
        paths = ["segmenter", "labeler", *(f"experts.{k}" for k in self.recipe.experts)]
        for path in paths:
            comp = self.build(path)
            if comp is None:
                continue
            for spec in comp.weights():
                if not spec.required:
                    continue
                try:
                    resolve_weights(spec, key=path)
                except WeightsNotFoundError as e:
                    raise WeightsNotFoundError(f"{path} ({comp.name}): {e}") from None

    def load_models(self) -> dict[str, TrainedModel]:
        """The recipe's ``models:``, loaded (and so checked) before any data work."""
        out: dict[str, TrainedModel] = {}
        for key, source in self.recipe.models.items():
            try:
                model = load_model(source.stem())
            except MoviekitError as e:
                raise MoviekitError(f"models.{key}: {e}") from None
            model.record.name = key
            out[key] = model
        return out

    def run(self) -> dict[str, Any]:
        from .distributed import run_ranks

        with run_ranks(self):  # torchrun: the process group, rank 0 the only writer (no-op in one process)
            return self._run()

    def _run(self) -> dict[str, Any]:
        from .device import resolve_device, seed_everything

        self.prepare()
        self.check_weights()
        start_models = self.load_models()
        seed_everything(self.recipe.run.seed)
        device = resolve_device(self.recipe.run.device)
        dataset: DatasetSource = self.build("dataset")
        with self._stage("dataset", None) as st:
            try:
                videos = list(dataset.items())
                vocabulary = dataset.vocabulary()
            except MoviekitError:
                raise
            except Exception as e:
                raise MoviekitError(f"dataset '{dataset.name}' failed: {type(e).__name__}: {e}") from e
            st.computed = len(videos)
        items = self.extract(videos)
        ctx = TaskContext(
            recipe=self.resolved,
            out_dir=self.out_dir,
            items=items,
            vocabulary=vocabulary,
            device=device,
            precision=self.recipe.run.precision,
            seed=self.recipe.run.seed,
            workers=self.recipe.run.workers,
            store=self.store,
            encoder=self.build("encoder"),
            head=self.build("head"),
            reporter=self.reporter,
            models=dict(start_models),
        )
        upstream = hash_key(
            [it.video.id for it in items], [self._item_keys.get(it.video.id) for it in items], vocabulary,
            {k: model_digest(m) for k, m in sorted(start_models.items())},
        )  # fmt: skip
        self.run_tasks(ctx, upstream)
        return self.finish(ctx)

    def consumers(self) -> tuple[Reader, list[tuple[str, Component]]]:
        """The run's reader and the components that read the videos, by recipe key (segmenter, experts, labeler)."""
        segmenter: Segmenter | None = self.build("segmenter")
        experts: dict[str, Expert] = {k: self.build(f"experts.{k}") for k in self.recipe.experts}
        labeler: Labeler | None = self.build("labeler")
        self.experts = experts
        consumers: list[tuple[str, Component]] = []
        if segmenter:
            consumers.append(("segmenter", segmenter))
        consumers += [(f"experts.{k}", e) for k, e in experts.items()]
        if labeler:
            consumers.append(("labeler", labeler))
        return self.build("run.reader"), consumers

    def extract(self, videos: list[Video]) -> list[Item]:
        from .executors import extract_ahead

        reader, consumers = self.consumers()
        self._item_keys: dict[str, str] = {}
        identities = {path: component_identity(self.registry, c) for path, c in consumers}
        reader_id = component_identity(self.registry, reader)
        items: list[Item] = []
        with self._stage("extract", len(videos)) as st:
            # run.executor processes/ray: workers compute every video's artifacts into the store first,
            # then the loop below assembles the items from the store (cache hits, the serial code path)
            ahead = extract_ahead(self, videos, reader_id, identities, st)
            for video in videos:
                done = ahead.get(video.id) if ahead is not None else None
                try:
                    if done is not None and done.error is not None:
                        raise done.error
                    item = self._extract_one(video, reader, reader_id, consumers, identities, st if done is None else StageStats())
                except Exception as e:
                    st.failed += 1
                    self._fail(video.id, "extract", e)
                    if done is None:
                        self.reporter.advance("extract")
                    continue
                cfg = self.recipe.clips
                if consumers and len(item.clips) < cfg.min_clips:
                    st.excluded += 1
                    self.exclusions.append({"item": video.id, "reason": f"{len(item.clips)} clips < clips.min_clips={cfg.min_clips}"})
                else:
                    items.append(item)
                if done is None:
                    self.reporter.advance("extract")
            if ahead is not None:
                ahead.restore()
        if self.exclusions:
            atomic_write_text(self.out_dir / "exclusions.json", json.dumps(self.exclusions, indent=2))
        return items

    def _extract_one(self, video, reader, reader_id, consumers, identities, st) -> Item:
        cfg = self.recipe.clips
        if video.features is not None or not consumers:
            clips = video.clips or []
            self._item_keys[video.id] = hash_key(video.model_dump(mode="json", exclude={"features"}), video.features.spec() if video.features else None)
            return Item(video=video, clips=clips, features=video.features)
        if video.path is None or not Path(video.path).is_file():
            raise ItemError(video.id, "extract", f"video file not found: {video.path}")
        if Path(video.path).stat().st_size == 0:
            raise ItemError(video.id, "extract", f"{video.path}: file is empty (0 bytes)")
        content = file_hash(video.path, memo_dir=self.store.root)
        info_key = hash_key(content, reader_id)
        info = self.store.get("probe", info_key)
        if info is None:
            info = reader.probe(video)
            self.store.put("probe", info_key, info)
        keys = {path: hash_key(content, identities[path], reader_id) for path, _ in consumers}
        self._item_keys[video.id] = hash_key(keys, cfg)
        results: dict[str, Any] = {}
        missing: list[tuple[str, Component]] = []
        for path, comp in consumers:
            value = self.store.get("stream", keys[path])
            if value is None:
                missing.append((path, comp))
            else:
                results[path] = value
                st.reused += 1
        if missing:
            sinks = []
            for path, comp in missing:
                try:
                    sinks.append((path, comp.needs(), comp.open(video, info)))
                except Exception as e:
                    raise ItemError(video.id, f"extract/{path}", f"{comp.name} could not start: {type(e).__name__}: {e}") from e
            self.decodes += 1
            reader.read(video, [(needs, sink) for _, needs, sink in sinks])
            for path, _, sink in sinks:
                try:
                    results[path] = sink.close()
                except Exception as e:
                    raise ItemError(video.id, f"extract/{path}", f"{type(e).__name__}: {e}") from e
                self.store.put("stream", keys[path], results[path])
                st.computed += 1
        shots = results.get("segmenter") or []
        clips = make_clips(shots, info["fps"], cfg.trim_start, cfg.trim_end, cfg.min_frames)
        arrays = {}
        for path, comp in consumers:
            if isinstance(comp, Expert):
                arrays[path.split(".", 1)[1]] = comp.pool(results[path], clips)
        labels = []
        labeler = dict(consumers).get("labeler")
        if labeler is not None:
            labels = labeler.label(video, results["labeler"], shots)
        return Item(
            video=video,
            shots=shots,
            clips=clips,
            features=FeatureSet(video_id=video.id, arrays=arrays) if arrays else None,
            shot_labels=labels,
        )

    def run_tasks(self, ctx: TaskContext, upstream: str) -> None:
        ctx.experts = getattr(self, "experts", {})
        prev = upstream
        models = {
            "encoder": component_identity(self.registry, ctx.encoder) if ctx.encoder else None,
            "head": component_identity(self.registry, ctx.head) if ctx.head else None,
        }
        for i, _spec in enumerate(self.recipe.tasks):
            task: Task = self.build(f"tasks[{i}]")
            label = f"task {i + 1}/{len(self.recipe.tasks)}: {task.name}"
            key = hash_key(prev, component_identity(self.registry, task), models, self.recipe.run.seed, i)
            ctx.task_key = key
            with self._stage(label, None) as st:
                cached = self.store.get("task", key)
                if cached is not None:
                    result, shared, files, model_names = cached
                    for rel, data in files.items():
                        dest = self.out_dir / rel
                        if not dest.exists() or dest.read_bytes() != data:
                            dest.parent.mkdir(parents=True, exist_ok=True)
                            dest.write_bytes(data)
                    ctx.shared = shared
                    for name in model_names:
                        ctx.models[name] = load_model(self.out_dir / "models" / name)
                    st.reused += 1
                else:
                    before = dict(ctx.models)
                    try:
                        result = task.run(ctx)
                    except MoviekitError as e:
                        raise MoviekitError(f"tasks[{i}] ({task.name}) failed: {e}") from e
                    except Exception as e:
                        raise MoviekitError(f"tasks[{i}] ({task.name}) raised {type(e).__name__}: {e}") from e
                    model_names = [n for n, m in ctx.models.items() if before.get(n) is not m]
                    model_files = [f"models/{n}{ext}" for n in model_names for ext in (".json", ".safetensors")]
                    rels = list(dict.fromkeys([*result.files, *model_files]))
                    files = {rel: (self.out_dir / rel).read_bytes() for rel in rels if (self.out_dir / rel).is_file()}
                    self.store.put("task", key, (result, ctx.shared, files, model_names))
                    st.computed += 1
                ctx.results[f"{i}:{task.name}"] = result
            prev = key

    def finish(self, ctx: TaskContext) -> dict[str, Any]:
        summary = {
            "recipe": self.resolved.source,
            "output": str(self.out_dir),
            "items": len(ctx.items),
            "decodes": self.decodes,
            "failures": len(self.failures),
            "exclusions": len(self.exclusions),
            "reused_artifacts": sum(s.reused for s in self.stats.values()),
            "stages": {k: vars(v) for k, v in self.stats.items()},
            "tasks": {k: r.metrics for k, r in ctx.results.items()},
        }
        atomic_write_text(self.out_dir / "summary.json", json.dumps(summary, indent=2, default=str))
        return summary


def extract_videos(resolved: ResolvedRecipe, videos: list[Video], output: Path | None = None, **options: Any) -> list[Item]:
    """Shots, clips and expert features of ``videos`` with a recipe's components (cached like a run).

    Failed or excluded videos are left out of the result; the reasons are in
    ``output``'s ``failures.jsonl`` and ``exclusions.json``.  Used to embed a new
    video with a finished run's recipe (for example to query a retrieval index).
    """
    import tempfile

    out = Path(output) if output is not None else Path(tempfile.mkdtemp(prefix="moviekit-extract-"))
    runner = Runner(resolved, output=out, **options)
    runner.prepare()
    runner.check_weights()
    return runner.extract(videos)


def run_recipe(resolved: ResolvedRecipe, **options: Any) -> dict[str, Any]:
    """Run a validated recipe; ``options`` are :class:`Runner`'s keyword arguments."""
    return Runner(resolved, **options).run()
