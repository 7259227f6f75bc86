#!/usr/bin/env python
"""Scale-out figures: extraction executors, their memory, and faiss against brute-force retrieval.

1. **Executors.**  The same extraction (PySceneDetect shots and the ``--experts``) of the same
   synthetic trailers (15-25 s) with ``run.executor`` ``local`` (serial), ``processes`` and ``ray`` at 1 and
   2 workers, each from an empty artifact store, each in its own subprocess (imports excluded
   from the time).  Configurations are alternated round by round (the machine is shared: a
   ratio is only taken between measurements of one run) and the median of ``--repeats`` rounds
   is reported with speed-up over serial and scaling efficiency (speed-up / workers).
2. **Memory against the number of videos.**  Peak RSS of the driver (``ru_maxrss``) and of the
   largest worker (``processes``: ``RUSAGE_CHILDREN``; ``ray``: ``VmHWM`` of the Ray worker
   processes, read before the local cluster stops) at 2 workers for each ``--rss-videos`` count.
3. **Retrieval.**  Top-``k`` cosine search of ``--queries`` queries (one batch) among 10k and 100k
   clustered ``--dim``-d embeddings (like trained embeddings): brute-force NumPy (one matrix
   product, ``argpartition``, sort) against every ``index:`` setting of :data:`INDEXES` (built and
   searched by ``moviekit.build_index`` / ``search_index``, what ``mmx_retrieval`` and
   ``m2s_place_retrieval`` use), each with its build time and recall@k against the exact result.
   Medians of ``--repeats``, brute force and the indexes alternated within each round.

Usage: ``python benchmarks/bench_scale.py [--videos 8] [--repeats 3] [--rss-videos 2,4,8]``
(``--skip-executors`` / ``--skip-retrieval`` run one part).  Needs the moviekit-mmx plugin for
its experts and ``moviekit[ray]`` for the Ray rows (skipped without it).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CONFIGS = [("local", 1), ("processes", 1), ("processes", 2), ("ray", 1), ("ray", 2)]


def make_videos(root: Path, n: int) -> Path:
    from moviekit import get_registry

    src = get_registry().create(
        "synthetic_trailers", "dataset", n=n, min_seconds=15.0, max_seconds=25.0, seed=11, root=str(root / f"trailers-{n}")
    )
    return src.ensure()


def recipe(folder: Path, cache: Path, experts: list[str], executor: str, workers: int) -> dict:
    return {
        "name": "bench_scale",
        "dataset": {"use": "video_folder", "root": str(folder)},
        "segmenter": {"use": "scenedetect", "detector": "content"},
        "experts": {e: {"use": e} for e in experts},
        "clips": {"min_clips": 1},
        "run": {"device": "cpu", "cache_dir": str(cache), "executor": executor, "workers": workers, "ray": {"num_cpus": max(workers, 1)}},
    }


def ray_worker_peak_kib() -> int:
    """The largest VmHWM (KiB) among this machine's Ray worker processes."""
    peak = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
            if b"default_worker.py" not in cmd and not cmd.startswith(b"ray::"):
                continue
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]))
        except OSError:
            continue
    return peak


def measure(args: argparse.Namespace) -> None:
    """One extraction (in this fresh process): prints seconds and peak RSS as JSON."""
    from moviekit.recipe import validate
    from moviekit.runner import Runner

    folder = Path(args.folder)
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        rr = validate(recipe(folder, Path(tmp) / "cache", args.experts.split(","), args.executor, args.workers))
        runner = Runner(rr, output=Path(tmp) / "run")
        runner.prepare()
        worker_kib = 0
        if args.executor == "ray":
            import ray

            ray.init(address="local", num_cpus=args.workers, include_dashboard=False, log_to_driver=False)
        t0 = time.perf_counter()
        videos = list(runner.build("dataset").items())
        items = runner.extract(videos)
        seconds = time.perf_counter() - t0
        if args.executor == "ray":
            worker_kib = ray_worker_peak_kib()
            ray.shutdown()
        elif args.executor == "processes":
            worker_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    out = {
        "seconds": seconds,
        "items": len(items),
        "failures": len(runner.failures),
        "driver_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "worker_mib": worker_kib / 1024,
    }
    print("RESULT " + json.dumps(out))


def run_one(folder: Path, experts: str, executor: str, workers: int) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--measure",
        "--folder",
        str(folder),
        "--experts",
        experts,
        "--executor",
        executor,
        "--workers",
        str(workers),
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=3600, check=False)
    for line in r.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"{executor}/{workers} failed:\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}")


def executors(args: argparse.Namespace, root: Path) -> None:
    try:
        import ray  # noqa: F401

        configs = CONFIGS
    except ImportError:
        print("(ray is not installed: its rows are skipped; pip install 'moviekit[ray]')")
        configs = [c for c in CONFIGS if c[0] != "ray"]
    folder = make_videos(root, args.videos)
    times: dict[tuple[str, int], list[float]] = {c: [] for c in configs}
    for rnd in range(args.repeats):
        order = configs[rnd % len(configs) :] + configs[: rnd % len(configs)]  # alternate who goes first
        for c in order:
            res = run_one(folder, args.experts, *c)
            assert res["failures"] == 0 and res["items"] == args.videos, res
            times[c].append(res["seconds"])
    base = statistics.median(times[("local", 1)])
    print(f"\n## Executors: {args.videos} synthetic trailers (15-25 s), segmenter scenedetect + {args.experts}; median of {args.repeats}")
    print("| executor | workers | seconds (median) | all runs | speed-up vs serial | efficiency |")
    print("|---|---|---|---|---|---|")
    for c in configs:
        med = statistics.median(times[c])
        print(f"| {c[0]} | {c[1]} | {med:.1f} | {', '.join(f'{t:.1f}' for t in times[c])} | {base / med:.2f}x | {base / med / c[1]:.0%} |")
    print("\n## Peak memory at 2 workers against the number of videos (MiB)")
    print("| executor | videos | driver RSS | largest worker RSS |")
    print("|---|---|---|---|")
    for ex in [e for e in ("processes", "ray") if (e, 2) in configs]:
        for n in args.rss_videos:
            res = run_one(make_videos(root, n), args.experts, ex, 2)
            print(f"| {ex} | {n} | {res['driver_mib']:.0f} | {res['worker_mib']:.0f} |")


#: The indexes timed against brute force: (label, ``index:`` config of the retrieval components)
INDEXES = [
    ("flat", {"type": "flat"}),
    ("hnsw ef_search 128", {"type": "hnsw", "ef_search": 128}),
    ("hnsw ef_search 64", {"type": "hnsw", "ef_search": 64}),
    ("hnsw ef_search 32", {"type": "hnsw", "ef_search": 32}),
    ("ivf nprobe 32", {"type": "ivf", "nprobe": 32}),
    ("ivf nprobe 16", {"type": "ivf", "nprobe": 16}),
    ("ivf nprobe 8", {"type": "ivf", "nprobe": 8}),
]


def retrieval(args: argparse.Namespace) -> None:
    import faiss

    from moviekit import IndexConfig, build_index, recall_at_k, search_index

    rng = np.random.default_rng(0)
    print(
        f"\n## Retrieval: top-{args.k} cosine of {args.queries} queries (one batch), {args.dim}-d float32, "
        f"faiss threads {faiss.omp_get_max_threads()}; median of {args.repeats}; recall@{args.k} against the exact result"
    )
    print("| embeddings | index (`index:`) | build (s) | search (s) | NumPy brute force (s) | speed-up | recall@k |")
    print("|---|---|---|---|---|---|---|")
    for n in (10_000, 100_000):
        # clustered like trained embeddings (uniform random high-dimensional points have no neighbours
        # worth the name): n // 50 centres, points and queries scattered around them
        centres = rng.standard_normal((n // 50, args.dim)).astype(np.float32)

        def draw(m: int, centres: np.ndarray = centres) -> np.ndarray:
            v = centres[rng.integers(0, len(centres), m)] + 0.5 * rng.standard_normal((m, args.dim)).astype(np.float32)
            return v / np.linalg.norm(v, axis=1, keepdims=True)

        x, q = draw(n), draw(args.queries)

        def brute(q: np.ndarray = q, x: np.ndarray = x) -> np.ndarray:
            s = q @ x.T
            top = np.argpartition(-s, args.k, axis=1)[:, : args.k]
            return np.take_along_axis(top, np.argsort(-np.take_along_axis(s, top, 1), axis=1), 1)

        built = {}
        for label, spec in INDEXES:
            cfg = IndexConfig.model_validate(spec)
            t0 = time.perf_counter()
            built[label] = (cfg, build_index(x, cfg, metric="ip"), time.perf_counter() - t0)
        t: dict[str, list[float]] = {"brute": [], **{label: [] for label in built}}
        found: dict[str, np.ndarray] = {}
        for _ in range(args.repeats):  # brute force and every index alternated within each round
            for name in t:
                t0 = time.perf_counter()
                if name == "brute":
                    exact = brute()
                else:
                    cfg, index, _ = built[name]
                    found[name] = search_index(index, q, args.k, cfg)[1]
                t[name].append(time.perf_counter() - t0)
        b = statistics.median(t["brute"])
        for label, (_cfg, _index, build_s) in built.items():
            s = statistics.median(t[label])
            print(
                f"| {n:,} | {label} | {build_s:.2f} | {s:.4f} | {b:.3f} | {b / s:.1f}x | {recall_at_k(found[label], exact, args.k):.3f} |"
            )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--videos", type=int, default=8)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--rss-videos", type=lambda s: [int(x) for x in s.split(",")], default=[2, 4, 8])
    p.add_argument("--experts", default="mmx_scene,mmx_audio,color_histogram")
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--queries", type=int, default=200)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "moviekit-bench-scale")
    p.add_argument("--skip-executors", action="store_true")
    p.add_argument("--skip-retrieval", action="store_true")
    p.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--folder", help=argparse.SUPPRESS)
    p.add_argument("--executor", help=argparse.SUPPRESS)
    p.add_argument("--workers", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.measure:
        return measure(args)
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start, Python {sys.version.split()[0]}")
    if not args.skip_retrieval:
        retrieval(args)
    if not args.skip_executors:
        args.cache.mkdir(parents=True, exist_ok=True)
        executors(args, args.cache)
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
