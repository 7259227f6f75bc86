"""Extraction executors (``run.executor``): where each video's one-pass extraction runs.

``local`` (the default) extracts the videos one after another in the runner's process.
``processes`` and ``ray`` run the *same* per-video function, :meth:`Runner._extract_one`, in
workers: a worker decodes the video once, feeds every consumer and writes the probe and each
consumer's stream result into the content-addressed store, and returns only a small
:class:`Outcome` (counts, or the error).  The runner then assembles the items from the store,
all cache hits on the serial code path, so artifacts, items and metrics are those of a serial
run by construction (the workers use the driver's component identities, so keys cannot differ).
Decoded frames never leave a worker.

* ``processes``: ``run.workers`` (0: one per CPU) spawned processes that die with the runner, each
  sent one video at a time; a worker that crashes (killed, out of memory) loses only the video it
  held: a fresh worker replaces it and that video is retried, up to ``run.ray.max_retries`` times.
* ``ray``: one Ray task per video on an existing cluster (``run.ray.address``) or a local one
  (``address="local"``, so a stale ``/tmp/ray`` session is never joined).  Ray retries a video
  whose worker died ``run.ray.max_retries`` times; an error the video raises is not retried.
  A video's task that raises (a full disk on the node it wrote from included) is that video's
  failure only.  Results are streamed with ``ray.wait`` from a bounded window of tasks in flight,
  so the driver's memory does not grow with the number of videos.

Under ``torchrun`` rank 0 extracts (with the configured executor) while the other ranks wait;
they then assemble the items from the shared store (see :mod:`moviekit.distributed`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ItemError, MoviekitError
from .location import scheme

if TYPE_CHECKING:  # pragma: no cover
    from .recipe import ResolvedRecipe
    from .records import Video
    from .runner import Runner, StageStats

RAY_MISSING = "run.executor is 'ray' but Ray is not installed: pip install 'moviekit[ray]' (or set run.executor: local or processes)"


@dataclass
class Outcome:
    """What a worker reports for one video (never its frames or features)."""

    video_id: str
    computed: int = 0
    reused: int = 0
    decodes: int = 0
    message: str | None = None  # the failure's message (an exception would not always survive pickling)

    @property
    def error(self) -> ItemError | None:
        """The failure, as the runner records it, or None."""
        return ItemError(self.video_id, "extract", self.message) if self.message is not None else None


@dataclass
class Job:
    """What every worker needs, sent once: the recipe, the store, and the driver's artifact identities."""

    resolved: ResolvedRecipe
    store_root: str | Path  # the workers open their own store on the driver's folder or URL
    store_read: bool
    reader_id: dict[str, Any]
    identities: dict[str, dict[str, Any]]
    token: str = field(default_factory=lambda: uuid.uuid4().hex)
    #: CPU threads of one worker ($MOVIEKIT_THREADS there): the run's budget shared by the workers of one machine
    threads: int | None = None


class Ahead(dict):
    """Outcomes by video id of an executor's pass; :meth:`restore` undoes the store's switch to
    reading (a ``--fresh`` run reads back what its workers have just computed)."""

    def __init__(self, store: Any, outcomes: Iterable[Outcome] = ()):
        super().__init__((o.video_id, o) for o in outcomes)
        self._store, self._read = store, getattr(store, "read", True)
        store.read = True

    def restore(self) -> None:
        self._store.read = self._read


# -- the worker side ----------------------------------------------------------------------------------

_WORKERS: dict[str, Any] = {}


def _worker_runner(job: Job) -> tuple[Any, Any, list[tuple[str, Any]]]:
    """A runner built once per worker process and job (components loaded once, not per video)."""
    if job.token not in _WORKERS:
        from .plugins import Registry

        if job.threads:
            os.environ["MOVIEKIT_THREADS"] = str(job.threads)
        from .runner import Runner

        runner = Runner(job.resolved, output=Path(tempfile.gettempdir()) / "moviekit-worker", registry=Registry())
        from .store import ArtifactStore

        runner.store = ArtifactStore(job.store_root, read=job.store_read)
        runner._item_keys = {}
        reader, consumers = runner.consumers()
        _WORKERS.clear()
        _WORKERS[job.token] = (runner, reader, consumers)
    return _WORKERS[job.token]


def error_message(err: BaseException) -> str:
    """A failure's message exactly as the runner records it in ``failures.jsonl``."""
    return err.message if isinstance(err, ItemError) else f"{type(err).__name__}: {err}"


def extract_video(job: Job, video: Video) -> Outcome:
    """Compute one video's artifacts into the store (the serial path's own function)."""
    from .device import seeded
    from .errors import DiskWriteError
    from .runner import StageStats

    runner, reader, consumers = _worker_runner(job)
    st, before = StageStats(), runner.decodes
    out = Outcome(video.id)
    try:
        with seeded(runner.recipe.run.seed, "extract", video.id):  # as the serial loop seeds it
            runner._extract_one(video, reader, job.reader_id, consumers, job.identities, st)
    except DiskWriteError:
        raise  # a full or read-only disk is the run's problem: it stops the run
    except Exception as e:  # noqa: BLE001 - one bad video never loses the others' work
        out.message = error_message(e)
    out.computed, out.reused, out.decodes = st.computed, st.reused, runner.decodes - before
    return out


def _die_with_parent() -> None:
    """Worker-process initialiser: SIGKILL this process when the runner dies (Linux), and
    ignore Ctrl-C (the runner handles it and stops the pool)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() == 1:  # the parent is already gone
        os._exit(1)


# -- executors ------------------------------------------------------------------------------------------


def extract_ahead(
    runner: Runner, videos: list[Video], reader_id: dict[str, Any], identities: dict[str, dict[str, Any]], st: StageStats
) -> Ahead | None:
    """Run the recipe's executor over ``videos``; None for ``local`` in one process (the runner's own loop)."""
    from . import distributed

    cfg = runner.recipe.run
    if cfg.executor == "local" and not distributed.is_distributed():
        return None
    todo = [v for v in videos if v.features is None and identities]  # precomputed features need no worker
    if cfg.executor != "local" and scheme(runner.store.root) == "memory":
        raise MoviekitError(
            f"run.cache_dir: {runner.store.root} lives in this process's memory, which run.executor '{cfg.executor}' workers "
            "cannot see: use a path on storage they share, or an object store URL (s3://...)"
        )
    outcomes: list[Outcome] = []
    if distributed.is_main() and todo:
        job = Job(runner.resolved, runner.store.root, runner.store.read, reader_id, identities)
        run = {"local": _run_local, "processes": _run_processes, "ray": _run_ray}[cfg.executor]

        def report(outcome: Outcome) -> None:
            runner.reporter.advance("extract")
            if outcome.message is not None:
                runner.reporter.log(f"[worker] {outcome.video_id}: {outcome.message}")

        outcomes = list(run(job, todo, cfg, report))
    if distributed.is_distributed():
        # rank 0 extracted; every rank skips the same failed videos and assembles from the shared store
        shared = distributed.broadcast_object([(o.video_id, o.message) for o in outcomes])
        if not distributed.is_main():
            outcomes = [Outcome(vid, message=msg) for vid, msg in shared]
    for o in outcomes:
        st.computed += o.computed
        st.reused += o.reused
        runner.decodes += o.decodes
    return Ahead(runner.store, outcomes)


def _run_local(job: Job, videos: list[Video], cfg: Any, report: Callable[[Outcome], None]) -> Iterator[Outcome]:
    for video in videos:
        out = extract_video(job, video)
        report(out)
        yield out


def _workers(cfg: Any) -> int:
    return cfg.workers or os.cpu_count() or 1


def _serve(conn: Any, job: Job) -> None:
    """A worker process: extract the videos the runner sends, one at a time, until it sends None."""
    _die_with_parent()
    while (video := conn.recv()) is not None:
        try:
            conn.send(extract_video(job, video))
        except BaseException as e:  # noqa: BLE001 - a disk error (the run's problem) is raised by the runner
            conn.send(e if isinstance(e, MoviekitError) else MoviekitError(error_message(e)))


@dataclass
class _Worker:
    process: Any
    conn: Any
    video: Video | None = None


def _run_processes(job: Job, videos: list[Video], cfg: Any, report: Callable[[Outcome], None]) -> Iterator[Outcome]:
    """``run.workers`` spawned processes, each sent one video at a time; a worker that dies (killed, out
    of memory) loses only the video it held, which is retried up to ``run.ray.max_retries`` times on a fresh worker."""
    import multiprocessing
    from collections import deque
    from multiprocessing.connection import wait

    from .threads import thread_budget

    mp = multiprocessing.get_context("spawn")
    job.threads = thread_budget(cfg.threads, _workers(cfg))  # N workers on one machine share its cores

    def start() -> _Worker:
        ours, theirs = mp.Pipe()
        process = mp.Process(target=_serve, args=(theirs, job), daemon=True)
        process.start()
        theirs.close()
        return _Worker(process, ours)

    pool = [start() for _ in range(min(_workers(cfg), len(videos)))]
    queue, attempts = deque(videos), {}
    try:
        while queue or any(w.video is not None for w in pool):
            for w in pool:
                if w.video is None and queue:
                    w.video = queue.popleft()
                    w.conn.send(w.video)
            busy = [w for w in pool if w.video is not None]
            wait([w.conn for w in busy] + [w.process.sentinel for w in busy])
            for i, w in enumerate(pool):
                if w.video is None:
                    continue
                video, answer = w.video, None
                if w.conn.poll():
                    try:
                        answer = w.conn.recv()
                    except (EOFError, OSError):  # it died while answering
                        answer = None
                elif w.process.is_alive():
                    continue
                if isinstance(answer, BaseException):
                    raise answer
                if isinstance(answer, Outcome):
                    w.video = None
                    report(answer)
                    yield answer
                    continue
                # the worker died holding this video: only this video is redone, on a fresh worker
                w.process.join()
                w.conn.close()
                pool[i] = start()
                attempts[video.id] = attempts.get(video.id, 0) + 1
                if attempts[video.id] > cfg.ray.max_retries:
                    out = Outcome(
                        video.id, message=f"its worker process died {attempts[video.id]} time(s) (exit code {w.process.exitcode})"
                    )
                    report(out)
                    yield out
                else:
                    queue.appendleft(video)
    finally:
        for w in pool:
            with contextlib.suppress(OSError):
                w.conn.send(None)
        for w in pool:
            w.process.join(timeout=10)
            if w.process.is_alive():
                w.process.kill()
                w.process.join()
            w.conn.close()


def _ray_init(cfg: Any) -> bool:
    """Connect to ``run.ray.address`` or start a local cluster; True when this call did (and must shut it down)."""
    try:
        import ray
    except ImportError:
        raise MoviekitError(RAY_MISSING) from None
    if ray.is_initialized():
        return False
    options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": True, "configure_logging": False}
    if cfg.ray.address:
        ray.init(address=cfg.ray.address, **options)
    else:
        # address="local": always a new local cluster (an existing /tmp/ray session would refuse num_cpus)
        ray.init(address="local", num_cpus=cfg.ray.num_cpus or os.cpu_count() or 1, **options)
    return True


def _run_ray(job: Job, videos: list[Video], cfg: Any, report: Callable[[Outcome], None]) -> Iterator[Outcome]:
    started = _ray_init(cfg)
    import ray

    try:
        rc = cfg.ray
        task = ray.remote(extract_video).options(
            num_cpus=rc.num_cpus_per_task, num_gpus=rc.num_gpus_per_task, max_retries=rc.max_retries, retry_exceptions=False
        )  # fmt: skip
        job.threads = max(1, int(rc.num_cpus_per_task))  # a task's threads: the CPUs it reserved
        job_ref = ray.put(job)
        window = max(2 * int(ray.cluster_resources().get("CPU", 1) / rc.num_cpus_per_task), 2)
        if cfg.workers:
            window = min(window, 2 * cfg.workers)
        queue, running = list(videos), {}
        while queue or running:
            while queue and len(running) < window:
                video = queue.pop(0)
                running[task.remote(job_ref, video)] = video
            ready, _ = ray.wait(list(running), num_returns=1)
            for ref in ready:
                video = running.pop(ref)
                try:
                    out = ray.get(ref)
                except ray.exceptions.RayTaskError as e:  # the video raised (a full disk where it wrote): its failure only
                    cause = e.cause if isinstance(e.cause, BaseException) else e
                    out = Outcome(video.id, message=error_message(cause))
                except Exception as e:  # noqa: BLE001 - the worker died more than max_retries times
                    out = Outcome(
                        video.id,
                        message=f"Ray task failed after {rc.max_retries} retries: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}",
                    )
                report(out)
                yield out
    finally:
        if started:
            ray.shutdown()
