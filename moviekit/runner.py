"""Executes a validated recipe: dataset, one-pass extraction per video, then tasks.

Every expensive result is an artifact in the content-addressed store, so a run
that was killed resumes from what had finished.  A failing item is written to
``failures.jsonl`` and the run goes on (unless ``strict``).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from . import manifest
from .clips import make_clips
from .components import Component, DatasetSource, Expert, Labeler, Reader, Segmenter, Sink, Task, TaskResult, shape_matches
from .context import Reporter, TaskContext
from .errors import DiskWriteError, ItemError, MoviekitError, RunInterrupted, WeightsNotFoundError
from .fanout import Fanout
from .location import RemoteFiles, as_location
from .models import TrainedModel, load_model, model_digest
from .paths import safe_component
from .plugins import Registry, get_registry
from .recipe import ResolvedRecipe
from .records import FeatureSet, Item, Shot, Track, Video, VideoInfo
from .runlock import RunLock
from .staging import discard, staging_dir
from .store import ArtifactStore, atomic_write_bytes, atomic_write_text, file_hash, hash_key
from .weights import CHECKPOINT_SUFFIXES, cache_root, resolve_weights


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
    # torch is not imported (about 0.9 GB and 2 s) nor CUDA initialised just to record versions: a
    # run whose components never import torch stays light; device names only once CUDA is in use.
    torch = sys.modules.get("torch")
    try:
        if torch is None:
            out["torch"] = metadata.version("torch")
        else:
            out["torch"] = torch.__version__
            out["cuda"] = torch.version.cuda
            if torch.cuda.is_initialized():
                out["cuda_devices"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except Exception as e:  # noqa: BLE001
        out["torch"] = f"unavailable ({e})"
    out["plugins"] = {p.name: {"distribution": p.distribution, "version": p.version, "ok": p.ok} for p in registry.plugins.values()}
    return out


class ItemFailure(Exception):
    """An item failed in ``stage`` (``input``, ``probe``, ``decode`` or ``consumer``) at the
    component under recipe key ``component``; ``cause`` is what it raised."""

    def __init__(self, stage: str, component: str | None, component_name: str | None, cause: BaseException, message: str | None = None):
        self.stage, self.component, self.component_name = stage, component, component_name
        self.original = cause
        self.cause = cause if message is None else ItemError("", stage, message)
        if message is not None:
            self.cause.__traceback__ = cause.__traceback__
        super().__init__(f"{stage} ({component}): {cause}")


class _GuardedSink(Sink):
    """A consumer's sink whose exceptions are told apart from the decoder's: it names the consumer."""

    def __init__(self, sink: Sink, path: str, component_name: str):
        self.sink, self.path, self.component_name = sink, path, component_name

    def frames(self, batch: Any) -> None:
        try:
            self.sink.frames(batch)
        except Exception as e:
            raise ItemFailure("consumer", self.path, self.component_name, e) from e

    def audio(self, chunk: Any) -> None:
        try:
            self.sink.audio(chunk)
        except Exception as e:
            raise ItemFailure("consumer", self.path, self.component_name, e) from e

    def close(self) -> Any:
        return self.sink.close()

    def __getattr__(self, name: str) -> Any:  # anything else a reader may use goes to the real sink
        if name == "sink":
            raise AttributeError(name)
        return getattr(self.sink, name)


def build_component(rc: Any) -> Component:
    """``rc.build()``; a constructor that raises becomes a message naming the recipe key."""
    try:
        return rc.build()
    except MoviekitError as e:
        raise MoviekitError(f"{rc.path} ({rc.cls.name}): {e}") from e
    except Exception as e:
        raise MoviekitError(f"{rc.path} ({rc.cls.name}): could not be created: {type(e).__name__}: {e}") from e


def check_video_file(video: Video) -> None:
    """An :class:`ItemError` (stage ``input``) saying why ``video.path`` cannot be read as a file:
    missing, a dangling link, a symlink loop, a folder, empty, or unreadable."""
    if video.path is None:
        raise ItemError(video.id, "input", "the item has no video file (and no precomputed features)")
    p = Path(video.path)
    try:
        p.stat()
    except OSError as e:
        import errno

        if e.errno == errno.ELOOP:
            raise ItemError(video.id, "input", f"{p}: symbolic link loop") from None
        if p.is_symlink():
            raise ItemError(video.id, "input", f"{p}: broken symbolic link (points to {os.readlink(p)}, which does not exist)") from None
        if e.errno == errno.ENOENT:
            raise ItemError(video.id, "input", f"video file not found: {p}") from None
        raise ItemError(video.id, "input", f"{p}: cannot be read ({e.strerror or e})") from None
    if p.is_dir():
        raise ItemError(video.id, "input", f"{p} is a folder, not a video file")
    if not p.is_file():
        raise ItemError(video.id, "input", f"{p} is not a regular file")
    if p.stat().st_size == 0:
        raise ItemError(video.id, "input", f"{p}: file is empty (0 bytes)")
    if not os.access(p, os.R_OK):
        raise ItemError(video.id, "input", f"{p}: no permission to read it")


def check_unique_ids(videos: list[Video]) -> None:
    """Two items with one id would overwrite each other's artifacts and outputs: an error naming both."""
    seen: dict[str, Video] = {}
    for v in videos:
        if v.id in seen:
            a, b = seen[v.id], v
            raise MoviekitError(
                f"dataset: two items have the id '{v.id}': {a.path or a.metadata.get('source', '?')} and {b.path or b.metadata.get('source', '?')}"
            )
        seen[v.id] = v


def features_digest(features: FeatureSet) -> str:
    """A content hash of precomputed features (names, shapes, dtypes and bytes)."""
    import hashlib

    import numpy as np

    h = hashlib.sha256()
    for name in sorted(features.arrays):
        a = np.ascontiguousarray(features.arrays[name])
        h.update(f"{name}:{a.dtype.str}:{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _content_or_none(path: Path, memo_dir: Path) -> str | None:
    try:
        return file_hash(path, memo_dir=memo_dir)
    except OSError:
        return None


def _check_writable(folder: Path, what: str) -> None:
    import tempfile

    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".moviekit-write-check-")
    except OSError as e:
        raise MoviekitError(f"{what} {folder} is not writable: {e.strerror or e}") from None
    os.close(fd)
    os.unlink(tmp)


def check_weights_file(path: Path, filenames: tuple[str, ...] = ()) -> str | None:
    """Why a resolved weights path cannot be a checkpoint (None when it looks loadable).

    A cheap structural check, not a full load: a folder must hold a checkpoint file; a file must
    not be empty; a ``.safetensors`` file needs a readable header; a torch file (``.pt``, ``.pth``,
    ``.bin``, ``.ckpt``, ``.tar``) must be a zip archive or a pickle stream.
    """
    if path.is_dir():
        named = [path / n for n in filenames if (path / n).is_file()]
        found = named or sorted(
            (p for p in path.rglob("*") if p.is_file() and p.suffix in CHECKPOINT_SUFFIXES),
            key=lambda p: (p.suffix != ".safetensors", str(p)),
        )
        if not found:
            return f"the weights folder {path} holds no checkpoint file ({', '.join('*' + s for s in CHECKPOINT_SUFFIXES)})"
        path = found[0]
    if not path.is_file():
        return None
    size = path.stat().st_size
    if size == 0:
        return f"the weights file {path} is empty (0 bytes)"
    with path.open("rb") as f:
        head = f.read(8)
        if path.suffix == ".safetensors":
            n = int.from_bytes(head, "little") if len(head) == 8 else -1
            if n <= 0 or n > size - 8:
                return f"the weights file {path} is not a safetensors file (bad header)"
            try:
                json.loads(f.read(n))
            except (ValueError, UnicodeDecodeError):
                return f"the weights file {path} is not a safetensors file (unreadable header)"
        elif path.suffix in (".pt", ".pth", ".bin", ".ckpt", ".tar"):
            import zipfile

            if not (head.startswith(b"\x80") or zipfile.is_zipfile(path)):
                return f"the weights file {path} is not a torch checkpoint (neither a zip archive nor a pickle stream)"
    return None


@contextmanager
def _signals_end_the_run() -> Iterator[None]:
    """SIGTERM (and SIGINT) raise :class:`RunInterrupted` in the main thread, so the run unwinds:
    temporary files are removed, finished artifacts stay, and the next run resumes from them."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: Any) -> None:
        raise RunInterrupted(signum)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


class Runner:
    def __init__(
        self,
        resolved: ResolvedRecipe,
        output: str | Path | None = None,
        fresh: bool = False,
        strict: bool | None = None,
        reporter: Reporter | None = None,
        registry: Registry | None = None,
    ):
        self.resolved = resolved
        self.recipe = resolved.recipe
        self.registry = registry or get_registry()
        target = as_location(output or self.recipe.run.output or Path("runs") / resolved.name)
        #: where the run directory is published when -o / run.output is a remote URL (None: out_dir itself)
        self.publish = RemoteFiles(target, "the output directory (-o / run.output)") if isinstance(target, str) else None
        # a remote run directory is written in a local folder named after its URL, then uploaded file by file
        # (moviekit.staging: the folder is removed once the run has completed and been uploaded)
        self.out_dir = staging_dir(target) if self.publish else target
        self.strict = self.recipe.run.strict if strict is None else strict
        self.reporter = reporter or Reporter()
        cache = self.recipe.run.cache_dir or cache_root() / "artifacts"
        self.store = ArtifactStore(cache, read=not fresh, log=self.reporter.log)
        self.lock = RunLock(self.out_dir)
        self.stats: dict[str, StageStats] = {}
        self.failures: list[dict[str, Any]] = []
        self.exclusions: list[dict[str, Any]] = []
        self.decodes = 0

    # -- helpers -----------------------------------------------------------
    def build(self, path: str) -> Any:
        """The component at recipe key ``path`` (None when the recipe has none), built under its
        own seeded RNG (``seeded(run.seed, "build", path)``) so a random initialisation does not
        depend on what the process did before; a constructor that raises is named by its key."""
        from .device import seeded

        rc = self.resolved.component(path)
        if rc is None:
            return None
        with seeded(self.recipe.run.seed, "build", path):
            return build_component(rc)

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
        """Record one failed item (see the README for the ``failures.jsonl`` record format)."""
        where = err if isinstance(err, ItemFailure) else None
        if where is not None:
            stage, component, err = where.stage, where.component, where.cause
        message = err.message if isinstance(err, ItemError) else f"{type(err).__name__}: {err}"
        if isinstance(err, ItemError) and stage == "extract":
            stage = err.stage
        record = {
            "item": item,
            "stage": stage,
            "component": component,
            "component_name": where.component_name if where is not None else None,
            "error": message,
            "error_type": type(err).__name__,
        }
        original = where.original if where is not None else err
        if not isinstance(original, MoviekitError):
            record["error_type"] = type(original).__name__
            record["traceback"] = "".join(traceback.format_exception(type(original), original, original.__traceback__))[-4000:]
        self.failures.append(record)
        with (self.out_dir / "failures.jsonl").open("a") as f:
            f.write(json.dumps(record) + "\n")
        self.reporter.log(f"[failed] {item}: {stage}: {message}")
        if self.strict:
            raise MoviekitError(f"{item}: {stage} failed (--strict): {message}") from err

    # -- run -----------------------------------------------------------------
    def prepare(self) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.lock.acquire()  # before anything is written: a second run on this folder stops here
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
                    found = resolve_weights(spec, key=path)
                except WeightsNotFoundError as e:
                    raise WeightsNotFoundError(f"{path} ({comp.name}): {e}") from None
                problem = check_weights_file(Path(found), tuple(spec.filenames))
                if problem:
                    key = f"--set {path}.{spec.config_key}=..." if spec.config_key else f"$MOVIEKIT_WEIGHTS/{spec.name}"
                    raise WeightsNotFoundError(
                        f"{path} ({comp.name}): cannot load its weights '{spec.name}': {problem}; replace it or point {key} at a good checkpoint"
                    )

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

    def preflight(self) -> None:
        """Run-wide checks before any data work, each stopping the run once with its cause:
        the output directory is a folder this process can write, and the artifact store is writable."""
        out = self.out_dir
        where = "the output directory (-o / run.output)"
        if self.publish is not None:
            self.publish.check_writable(where)
        if out.exists() and not out.is_dir():
            raise MoviekitError(f"{where} {out} exists and is not a folder")
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise MoviekitError(f"{where} {out} cannot be created: {e.strerror or e}") from None
        _check_writable(out, where)
        if self.store.remote:
            self.store.files.check_writable("the artifact cache (run.cache_dir / $MOVIEKIT_CACHE)")
            return
        if self.store.root.exists() and not self.store.root.is_dir():
            raise MoviekitError(f"the artifact cache (run.cache_dir / $MOVIEKIT_CACHE) {self.store.root} exists and is not a folder")
        try:
            self.store.root.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise MoviekitError(
                f"the artifact cache (run.cache_dir / $MOVIEKIT_CACHE) {self.store.root} cannot be created: {e.strerror or e}"
            ) from None
        _check_writable(self.store.root, "the artifact cache (run.cache_dir / $MOVIEKIT_CACHE)")

    def run(self) -> dict[str, Any]:
        """Run the recipe; SIGTERM/SIGINT end it with :class:`RunInterrupted` (finished work stays stored)."""
        from .distributed import run_ranks

        # under torchrun: the process group, rank 0 the only writer (a no-op in one process)
        with run_ranks(self), _signals_end_the_run():
            completed = False
            try:
                self.preflight()
                self.prepare()
                summary = self._run()
                completed = True
                return summary
            finally:
                self.close(completed)

    def close(self, completed: bool = False) -> None:
        """Record the artifacts this run used (``artifacts.json``, for ``moviekit cache prune --run``) and unlock.

        A remote run directory is uploaded; when the run ``completed`` and the upload succeeded, its
        local staging folder is removed (that of a failed or interrupted run stays, see :mod:`moviekit.staging`)."""
        if self.lock.held:
            try:
                atomic_write_text(self.out_dir / "artifacts.json", json.dumps(self.store.manifest(), indent=1))
                if self.publish is not None:
                    self.publish.upload_tree(self.out_dir)
                    if completed:
                        discard(self.out_dir, self.lock)
            finally:
                self.lock.release()

    def _run(self) -> dict[str, Any]:
        from .device import resolve_device, seed_everything, seeded

        manifest.record(self.out_dir, ["recipe.yaml", "resolved.yaml", "versions.json", "failures.jsonl"])
        self.check_weights()
        start_models = self.load_models()
        seed_everything(self.recipe.run.seed)
        # torch is imported for the device only when a task will use it (or to check an explicit
        # accelerator exists): an extraction whose components never need torch never imports it.
        spec = self.recipe.run.device
        device = resolve_device(spec) if self.recipe.tasks or spec not in ("auto", "cpu") else None
        dataset: DatasetSource = self.build("dataset")
        with self._stage("dataset", None) as st, seeded(self.recipe.run.seed, "dataset"):
            try:
                videos = list(dataset.items())
                vocabulary = dataset.vocabulary()
            except MoviekitError:
                raise
            except Exception as e:
                raise MoviekitError(f"dataset '{dataset.name}' failed: {type(e).__name__}: {e}") from e
            check_unique_ids(videos)
            st.computed = len(videos)
        items = self.extract(videos)
        self.check_some_items_left(videos, items)
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
        upstream = self.upstream_key(items, vocabulary, start_models, device)
        self.run_tasks(ctx, upstream)
        return self.finish(ctx)

    def upstream_key(self, items: list[Item], vocabulary: list[str], start_models: dict[str, TrainedModel], device: Any) -> str:
        """What every task's key starts from: each item's whole Video record (id, labels, split,
        metadata; content instead of the file path) with its features key, the vocabulary, the
        models loaded by the recipe's ``models:``, and the device kind and effective precision."""
        from .device import effective_precision

        records = []
        for it in items:
            record = it.video.model_dump(mode="json", exclude={"features", "clips", "path"})
            records.append([record, self._item_keys.get(it.video.id)])
        return hash_key(
            "items-v2", records, list(vocabulary),
            {k: model_digest(m) for k, m in sorted(start_models.items())},
            getattr(device, "type", str(device)), effective_precision(device, self.recipe.run.precision),
        )  # fmt: skip

    def check_some_items_left(self, videos: list[Video], items: list[Item]) -> None:
        """When every video failed, stop with the reason (once) instead of a task's 'no items'."""
        if items or not videos or not self.failures or len(self.failures) < len(videos):
            return
        reasons: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
        for f in self.failures:
            reasons.setdefault((f["stage"], f.get("component"), f.get("error_type")), []).append(f)
        log = self.out_dir / "failures.jsonl"
        if len(reasons) == 1:
            first = self.failures[0]
            where = f"{first['stage']}" + (f" ({first['component']})" if first.get("component") else "")
            raise MoviekitError(f"all {len(videos)} video(s) failed in {where} for the same reason: {first['error']} (details in {log})")
        listed = "; ".join(f"{len(fs)} in {st}{f' ({c})' if c else ''}: {fs[0]['error']}" for (st, c, _), fs in list(reasons.items())[:3])
        raise MoviekitError(f"all {len(videos)} video(s) failed: {listed} (details in {log})")

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
        from .device import seeded
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
                    with seeded(self.recipe.run.seed, "extract", video.id):
                        item = self._extract_one(video, reader, reader_id, consumers, identities, st if done is None else StageStats())
                except DiskWriteError:
                    raise  # a full or read-only disk is the run's problem, not this video's
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
            self._item_keys[video.id] = hash_key(
                video.model_dump(mode="json", exclude={"features", "path"}), features_digest(video.features) if video.features else None,
                None if video.features is not None or video.path is None else _content_or_none(video.path, self.store.local_dir),
            )  # fmt: skip
            return Item(video=video, clips=clips, features=video.features)
        check_video_file(video)
        content = self.store.file_hash(video.path)
        info_key = hash_key(content, reader_id)
        cached = self.store.get("probe", info_key, check=probe_check)
        if cached is None:
            try:
                info = reader.probe(video)
            except Exception as e:
                raise ItemFailure("probe", "run.reader", reader.name, e) from e
            self.store.put("probe", info_key, info.model_dump(mode="json"))
        else:  # stored as plain data; an older cache entry (a dict) validates the same way
            info = VideoInfo.model_validate(cached)
        keys = {path: hash_key(content, identities[path], reader_id) for path, _ in consumers}
        self._item_keys[video.id] = hash_key(keys, cfg)
        results: dict[str, Any] = {}
        missing: list[tuple[str, Component]] = []
        for path, comp in consumers:
            value = self.store.get("stream", keys[path], check=stream_check(comp))
            if value is None:
                missing.append((path, comp))
            else:
                results[path] = value
                st.reused += 1
        if missing:
            sinks = []
            for path, comp in missing:
                try:
                    sinks.append((path, comp.needs(), _GuardedSink(comp.open(video, info), path, comp.name)))
                except Exception as e:
                    raise ItemFailure("consumer", path, comp.name, e, f"could not start: {type(e).__name__}: {e}") from e
            self.decodes += 1
            from .memory import keep_freed_memory

            keep_freed_memory()  # consumers' per-batch buffers reused, not page-faulted afresh (moviekit.memory)
            # The consumers run concurrently (moviekit.fanout); one that raises fails this item after
            # the others' results are stored, so a rerun recomputes only the failed consumer.
            run_cfg = self.recipe.run
            with Fanout(
                [s for _, _, s in sinks], concurrent=run_cfg.consumers == "threads", threads=run_cfg.threads, names=[p for p, _, _ in sinks]
            ) as fan:
                try:
                    reader.read(video, [(needs, wrapped) for (_, needs, _), wrapped in zip(sinks, fan.sinks)])
                except ItemFailure:
                    raise
                except Exception as e:
                    raise ItemFailure("decode", "run.reader", reader.name, e) from e
                outcomes = fan.close()
            errors: list[ItemFailure] = []
            for (path, _, sink), (value, error) in zip(sinks, outcomes):
                if error is not None:
                    errors.append(error if isinstance(error, ItemFailure) else ItemFailure("consumer", path, sink.component_name, error))
                    continue
                results[path] = value
                self.store.put("stream", keys[path], value)
                st.computed += 1
            if errors:
                raise errors[0]
        shots = results.get("segmenter") or []
        clips = make_clips(shots, info.fps, cfg.trim_start, cfg.trim_end, cfg.min_frames)
        arrays = {}
        for path, comp in consumers:
            if isinstance(comp, Expert):
                try:
                    arrays[path.split(".", 1)[1]] = comp.pool(results[path], clips)
                except Exception as e:
                    raise ItemFailure("consumer", path, comp.name, e) from e
        labels = []
        labeler = dict(consumers).get("labeler")
        if labeler is not None:
            try:
                labels = labeler.label(video, results["labeler"], shots)
            except Exception as e:
                raise ItemFailure("consumer", "labeler", labeler.name, e) from e
        return Item(
            video=video,
            shots=shots,
            clips=clips,
            features=FeatureSet(video_id=video.id, arrays=arrays) if arrays else None,
            shot_labels=labels,
        )

    def _task_traceback(self, i: int, name: str, err: BaseException) -> Path:
        """Keep a failed task's traceback in ``<run>/task_errors/<i>-<name>.txt``."""
        path = self.out_dir / "task_errors" / f"{i}-{safe_component(name)}.txt"
        atomic_write_text(path, "".join(traceback.format_exception(type(err), err, err.__traceback__)))
        return path

    def run_tasks(self, ctx: TaskContext, upstream: str) -> None:
        from .device import seeded

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
                cached = self.store.get("task", key, check=task_artifact_check)
                if cached is not None:
                    result, files, model_names = cached["result"], cached["files"], cached["models"]
                    for rel, data in files.items():
                        dest = self.out_dir / rel
                        if not dest.exists() or dest.read_bytes() != data:
                            atomic_write_bytes(dest, data)
                    ctx.shared.update(cached["shared"])
                    for k in cached["removed"]:
                        ctx.shared.pop(k, None)
                    for name in model_names:
                        ctx.models[name] = load_model(self.out_dir / "models" / name)
                    st.reused += 1
                else:
                    before = dict(ctx.models)
                    shared_before = _snapshot(ctx.shared)
                    try:
                        with seeded(self.recipe.run.seed, "task", f"tasks[{i}]"):
                            result = task.run(ctx)
                    except MoviekitError as e:
                        log = self._task_traceback(i, task.name, e)
                        raise MoviekitError(f"tasks[{i}] ({task.name}) failed: {e} (traceback in {log})") from e
                    except Exception as e:
                        log = self._task_traceback(i, task.name, e)
                        raise MoviekitError(f"tasks[{i}] ({task.name}) raised {type(e).__name__}: {e} (traceback in {log})") from e
                    model_names = [n for n, m in ctx.models.items() if before.get(n) is not m]
                    model_files = [f"models/{n}{ext}" for n in model_names for ext in (".json", ".safetensors")]
                    rels = list(dict.fromkeys([*result.files, *model_files]))
                    files = {rel: (self.out_dir / rel).read_bytes() for rel in rels if (self.out_dir / rel).is_file()}
                    shared, removed = _shared_delta(shared_before, ctx.shared)
                    # only what this task adds: its files, its models' files and the shared state it changed
                    self.store.put(
                        "task", key, {"result": result, "shared": shared, "removed": removed, "files": files, "models": model_names}
                    )
                    st.computed += 1
                ctx.results[f"{i}:{task.name}"] = result
                manifest.record(self.out_dir, list(files))
            prev = key

    def finish(self, ctx: TaskContext) -> dict[str, Any]:
        summary = {
            "recipe": self.resolved.source,
            "output": self.publish.url if self.publish is not None else str(self.out_dir),
            "items": len(ctx.items),
            "decodes": self.decodes,
            "failures": len(self.failures),
            "exclusions": len(self.exclusions),
            "reused_artifacts": sum(s.reused for s in self.stats.values()),
            "stages": {k: vars(v) for k, v in self.stats.items()},
            "tasks": {k: r.metrics for k, r in ctx.results.items()},
            "cache": self.cache_summary(),
        }
        atomic_write_text(self.out_dir / "summary.json", json.dumps(summary, indent=2, default=str))
        manifest.record(self.out_dir, ["summary.json", "exclusions.json", "failures.jsonl"])
        return summary

    def cache_summary(self) -> dict[str, Any]:
        """The artifact store's size, and what this run used and wrote."""
        from .cache import usage

        if self.store.remote:  # an object store is not walked: only what this run did
            return {"root": self.store.root, "used_by_run": len(self.store.used), "written_bytes": self.store.bytes_written}
        u = usage(self.store.root)
        return {
            "root": u["root"],
            "bytes": u["bytes"],
            "artifacts": u["artifacts"],
            "used_by_run": len(self.store.used),
            "written_bytes": self.store.bytes_written,
        }


_PROBE_KEYS = ("fps", "num_frames", "duration", "width", "height", "has_audio")


def probe_check(value: Any) -> bool:
    """A stored probe is a dict with the keys of the reader contract."""
    return isinstance(value, dict) and all(k in value for k in _PROBE_KEYS)


def stream_check(comp: Component) -> Any:
    """The check of a stored consumer output against the consumer's contract (wrong type: recomputed)."""
    if isinstance(comp, Segmenter):
        return lambda v: isinstance(v, list) and all(isinstance(s, Shot) for s in v)
    if isinstance(comp, Expert):
        return lambda v: isinstance(v, Track) and shape_matches(tuple(v.values.shape[1:]), tuple(comp.feature_shape()))
    if isinstance(comp, Labeler):
        return lambda v: isinstance(v, Track)
    return None


def task_artifact_check(value: Any) -> bool:
    """A stored task is ``{result, shared, removed, files, models}`` of the right types, its files inside the run."""
    return (
        isinstance(value, dict)
        and set(value) == {"result", "shared", "removed", "files", "models"}
        and isinstance(value["result"], TaskResult)
        and isinstance(value["shared"], dict)
        and isinstance(value["removed"], list)
        and isinstance(value["files"], dict)
        and all(_inside(k) and isinstance(b, bytes) for k, b in value["files"].items())
        and isinstance(value["models"], list)
        and all(_inside(n) and "/" not in n for n in value["models"])
    )


def _inside(rel: Any) -> bool:
    """A relative path that stays inside the run directory (a tampered cache must not write elsewhere)."""
    return isinstance(rel, str) and bool(rel) and not Path(rel).is_absolute() and ".." not in Path(rel).parts and "\\" not in rel


def _json_or_none(v: Any) -> str | None:
    try:
        return json.dumps(v, sort_keys=True)
    except (TypeError, ValueError):
        return None


def _snapshot(shared: dict[str, Any]) -> dict[str, tuple[Any, str | None]]:
    return {k: (v, _json_or_none(v)) for k, v in shared.items()}


def _shared_delta(before: dict[str, tuple[Any, str | None]], after: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The entries of ``ctx.shared`` a task set or changed (a new object, or JSON data that changed), and those it removed."""
    changed = {k: v for k, v in after.items() if k not in before or before[k][0] is not v or before[k][1] != _json_or_none(v)}
    return changed, [k for k in before if k not in after]


def extract_videos(resolved: ResolvedRecipe, videos: list[Video], output: Path | None = None, **options: Any) -> list[Item]:
    """Shots, clips and expert features of ``videos`` with a recipe's components (cached like a run).

    Failed or excluded videos are left out of the result; the reasons are in
    ``output``'s ``failures.jsonl`` and ``exclusions.json``.  Used to embed a new
    video with a finished run's recipe (for example to query a retrieval index).
    """
    import tempfile

    out = Path(output) if output is not None else Path(tempfile.mkdtemp(prefix="moviekit-extract-"))
    runner = Runner(resolved, output=out, **options)
    try:
        runner.preflight()
        runner.prepare()
        runner.check_weights()
        return runner.extract(videos)
    finally:
        runner.close()


def run_recipe(resolved: ResolvedRecipe, **options: Any) -> dict[str, Any]:
    """Run a validated recipe; ``options`` are :class:`Runner`'s keyword arguments."""
    return Runner(resolved, **options).run()
