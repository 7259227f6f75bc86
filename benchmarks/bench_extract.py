#!/usr/bin/env python
"""Benchmark moviekit's one-pass extraction against the sequential peer pipeline users run today.

Both compute the same things on the same videos: shots (PySceneDetect's content detector with the
CLI's defaults) and the four MMX-Trailer-20 experts configured as ``recipes/mmx_trailer.yaml``
configures them (appearance: EfficientNet-Lite0 at 1 fps; scene: GIST at 1 fps; motion: DIS flow +
histogram of flow at 6 fps; audio: 16 kHz log-mel descriptors).

* **one pass** (moviekit): one process; every video decoded once by the PyAV reader and fanned out
  to the segmenter and the four experts, which run concurrently (``run.consumers: threads``); also
  measured with ``run.consumers: serial`` (one after another, as before this change).
* **peer pipeline**: PySceneDetect's own command line once per video
  (``scenedetect -i FILE -o DIR detect-content list-scenes``), then one process per expert that
  decodes every video again on its own (OpenCV ``VideoCapture``, full-size frames resized with
  ``cv2.resize`` to the expert's size, as v-iashin/video_features does; audio decoded with PyAV) and
  feeds the same expert code.

Every measurement is a whole process (start-up, imports, model loading included), timed from the
parent, with its own peak RSS (``os.wait4``).  The kinds of runs are alternated ``--repeats`` times
and medians reported, with ratios taken from the same run.  Also printed: each consumer alone vs
decode-only (in-process extraction time, start-up excluded, so the ratio is about the reader), the
start-up time and peak RSS of ``moviekit validate``, and the memory floor of a one-pass process with
no expert (segmenter only).

Usage: ``python benchmarks/bench_extract.py [--repeats 3] [--sets trailers,720p] [--trailers 20]``.
Videos: the embedded synthetic trailers (``synthetic_trailers``, default config, first N: 160x96,
12 fps, 10-20 s) and a 1-minute 1280x720 24 fps H.264 file with an AAC track (bench_segment.py's
textured shots plus a tone per shot); both are generated once into moviekit's cache.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "recipes" / "mmx_trailer.yaml"
EXPERTS = ("appearance", "scene", "motion", "audio")
LABELS = {
    "reader": "moviekit reader alone (probe + every frame as full-size RGB)",
    "segmenter": "segmenter alone (one pass, no expert)",
    **{k: f"{k} alone (one pass + fixed_length segmenter)" for k in EXPERTS},
}


# -- videos ------------------------------------------------------------------------------------


def trailer_videos(n: int) -> list[str]:
    from moviekit.default_plugins.synthetic import SyntheticTrailers

    src = SyntheticTrailers(n=max(n, 1))
    return [str(v.path) for v in src.items()][:n]


def video_720p(seconds: int = 60, fps: int = 24) -> list[str]:
    """A 1280x720 H.264 + AAC file: bench_segment.py's textured shots (a hard cut every 4 s, panned a
    few pixels per frame) with a different tone and noise level per shot; written once, then cached."""
    import av
    import numpy as np

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_segment import HEIGHT, WIDTH, _base_frames

    from moviekit.weights import cache_root

    path = cache_root() / "bench" / f"bench-extract-720p-{seconds}s-{fps}fps.mp4"
    if path.exists():
        return [str(path)]
    path.parent.mkdir(parents=True, exist_ok=True)
    print(f"generating {path} ...", flush=True)
    tmp = path.with_suffix(".part.mp4")
    bases, shot_len, rate = _base_frames(), 4 * fps, 16000
    rng = np.random.default_rng(0)
    with av.open(str(tmp), "w") as out:
        vs = out.add_stream("libx264", rate=fps, options={"preset": "ultrafast", "crf": "23"})
        vs.width, vs.height, vs.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        aus = out.add_stream("aac", rate=rate, layout="mono")
        n = seconds * fps
        for i in range(n):
            shot, j = divmod(i, shot_len)
            img = bases[shot % len(bases)].copy()
            img[:HEIGHT] = np.roll(img[:HEIGHT], 4 * j, axis=1)
            frame = av.VideoFrame.from_ndarray(img, format="yuv420p")
            frame.pts = i
            out.mux(vs.encode(frame))
        out.mux(vs.encode(None))
        t = np.arange(seconds * rate) / rate
        shot_of = (t // 4).astype(int)
        wave = (0.2 * np.sin(2 * np.pi * (220 + 55 * (shot_of % 7)) * t) + 0.02 * (1 + shot_of % 3) * rng.standard_normal(len(t))).astype(
            np.float32
        )
        step = aus.codec_context.frame_size or 1024
        for k in range(0, len(wave), step):
            af = av.AudioFrame.from_ndarray(wave[k : k + step].reshape(1, -1), format="fltp", layout="mono")
            af.sample_rate, af.pts = rate, k
            out.mux(aus.encode(af))
        out.mux(aus.encode(None))
    os.replace(tmp, path)
    return [str(path)]


# -- children: one measurement per process -------------------------------------------------------


def _recipe(cache: str, only: str | None, consumers: str) -> object:
    import yaml

    from moviekit.recipe import validate

    data = yaml.safe_load(RECIPE.read_text())
    data["tasks"] = []
    data.pop("encoder", None)
    data.pop("head", None)
    data.setdefault("run", {}).update({"cache_dir": cache, "consumers": consumers, "device": "cpu"})
    if only == "segmenter":
        data["experts"] = {}
    elif only:
        # experts need a segmenter: the content-blind fixed_length one asks for no pixels
        data["segmenter"] = {"use": "fixed_length"}
        data["experts"] = {only: data["experts"][only]}
    return validate(data, source=str(RECIPE))


def child_onepass(paths: list[str], only: str | None, consumers: str) -> dict:
    # Library imports are start-up, not extraction: done before the clock starts (torch only when
    # an expert runs, since the segmenter alone never imports it).
    import av  # noqa: F401
    import cv2  # noqa: F401
    import scenedetect.detectors  # noqa: F401

    from moviekit.records import Video
    from moviekit.runner import extract_videos

    if only != "segmenter":
        import torch  # noqa: F401
        import torchaudio  # noqa: F401

    cache = tempfile.mkdtemp(prefix="bench-extract-cache-")
    try:
        resolved = _recipe(cache, only, consumers)
        videos = [Video(id=Path(p).stem, path=p) for p in paths]
        t0 = time.perf_counter()
        extract_videos(resolved, videos, output=Path(cache) / "run")
        return {"seconds": time.perf_counter() - t0}
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def child_decode(paths: list[str]) -> dict:
    """Decode-only: PyAV demuxes and decodes every video and audio frame, no conversion."""
    import av

    t0 = time.perf_counter()
    n = 0
    for p in paths:
        with av.open(p) as c:
            streams = [*c.streams.video[:1], *c.streams.audio[:1]]
            c.streams.video[0].thread_type = "AUTO"
            for packet in c.demux(*streams):
                for _ in packet.decode():
                    n += 1
    return {"seconds": time.perf_counter() - t0, "frames": n}


def child_reader(paths: list[str]) -> dict:
    """moviekit's reader alone: probe + one decode per video with the segmenter's need (every frame, full-size RGB)."""
    import av  # noqa: F401

    from moviekit.components import Sink
    from moviekit.default_plugins.media import PyAVReader
    from moviekit.default_plugins.segmenters import SceneDetectSegmenter
    from moviekit.records import Video

    class Null(Sink):
        def close(self):
            return None

    reader, need = PyAVReader(), SceneDetectSegmenter().needs()
    t0 = time.perf_counter()
    for p in paths:
        video = Video(id=Path(p).stem, path=p)
        reader.probe(video)
        reader.read(video, [(need, Null())])
    return {"seconds": time.perf_counter() - t0}


def _sampled_frames(path: str, fps: float | None, size: tuple[int, int], batch: int):
    """The peer's decode: OpenCV full-size BGR frames, picked by time, converted and resized per frame."""
    import cv2
    import numpy as np

    from moviekit.records import FrameBatch

    cap = cv2.VideoCapture(path)
    rate = cap.get(cv2.CAP_PROP_FPS) or 25.0
    next_t, index = -1.0, 0
    frames, idx, times = [], [], []
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        t = index / rate
        if fps is None or t + 1e-6 >= next_t:
            next_t = (next_t if next_t >= 0 else t) + (1.0 / fps if fps else 0.0)
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            frames.append(cv2.resize(rgb, size, interpolation=cv2.INTER_AREA))
            idx.append(index)
            times.append(t)
            if len(frames) == batch:
                yield FrameBatch(frames=np.stack(frames), indices=np.asarray(idx), times=np.asarray(times))
                frames, idx, times = [], [], []
        index += 1
    cap.release()
    if frames:
        yield FrameBatch(frames=np.stack(frames), indices=np.asarray(idx), times=np.asarray(times))


def _audio_chunks(path: str, rate: int, seconds: float):
    import av
    import numpy as np

    from moviekit.records import AudioChunk

    with av.open(path) as c:
        if not c.streams.audio:
            return
        res = av.AudioResampler(format="flt", layout="mono", rate=rate)
        parts, count, start = [], 0, 0.0
        for frame in c.decode(c.streams.audio[0]):
            for out in res.resample(frame):
                parts.append(out.to_ndarray().reshape(-1))
                count += len(parts[-1])
                if count >= seconds * rate:
                    data = np.concatenate(parts)
                    yield AudioChunk(samples=data, sample_rate=rate, start_time=start)
                    start += len(data) / rate
                    parts, count = [], 0
        for out in res.resample(None):
            parts.append(out.to_ndarray().reshape(-1))
        if parts:
            yield AudioChunk(samples=np.concatenate(parts), sample_rate=rate, start_time=start)


def child_peer_expert(paths: list[str], key: str) -> dict:
    """One expert of the peer pipeline: its own process, its own decode of every video."""
    import numpy as np

    from moviekit.records import Video

    resolved = _recipe(tempfile.mkdtemp(prefix="bench-peer-"), key, "serial")
    expert = resolved.component(f"experts.{key}").build()
    needs = expert.needs()
    out_dir = Path(tempfile.mkdtemp(prefix=f"bench-peer-{key}-"))
    t0 = time.perf_counter()
    try:
        for p in paths:
            video = Video(id=Path(p).stem, path=p)
            sink = expert.open(video, {"fps": 0.0, "has_audio": True})
            if needs.frames is not None:
                f = needs.frames
                for batch in _sampled_frames(p, f.fps, tuple(f.size), f.batch):
                    sink.frames(batch)
            if needs.audio is not None:
                for chunk in _audio_chunks(p, needs.audio.sample_rate, needs.audio.chunk_seconds):
                    sink.audio(chunk)
            track = sink.close()
            np.save(out_dir / f"{video.id}.npy", track.values)
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)
    return {"seconds": time.perf_counter() - t0}


def child(args: argparse.Namespace) -> None:
    paths = json.loads(Path(args.videos).read_text())
    if args.child == "onepass":
        out = child_onepass(paths, args.only, args.consumers)
    elif args.child == "decode":
        out = child_decode(paths)
    elif args.child == "reader":
        out = child_reader(paths)
    elif args.child == "peer-expert":
        out = child_peer_expert(paths, args.only)
    else:  # pragma: no cover
        raise SystemExit(f"unknown child {args.child}")
    print("RESULT " + json.dumps(out), flush=True)


# -- parent ----------------------------------------------------------------------------------


def run_process(cmd: list[str], env: dict | None = None, cwd: str | None = None) -> dict:
    """Run one whole process; its wall time, peak RSS (MiB) and the RESULT line it printed."""
    t0 = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t0
        out.seek(0)
        text = out.read()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{text[-3000:]}")
    result = {}
    for line in text.splitlines():
        if line.startswith("RESULT "):
            result = json.loads(line[7:])
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "rss": usage.ru_maxrss / 1024, **result}


def me(child: str, videos: str, only: str | None = None, consumers: str = "threads") -> list[str]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", child, "--videos", videos, "--consumers", consumers]
    return cmd + (["--only", only] if only else [])


def peer_pipeline(paths: list[str], videos: str) -> dict:
    """The whole peer pipeline: the scenedetect CLI per video, then one process per expert."""
    scenedetect = shutil.which("scenedetect") or str(Path(sys.executable).with_name("scenedetect"))
    wall, cpu, rss, parts = 0.0, 0.0, 0.0, {}
    with tempfile.TemporaryDirectory() as tmp:
        t = c = 0.0
        for p in paths:
            r = run_process([scenedetect, "-i", p, "-o", tmp, "detect-content", "list-scenes"])
            t, c = t + r["wall"], c + r["cpu"]
            rss = max(rss, r["rss"])
        parts["scenedetect"] = {"wall": t, "cpu": c, "rss": rss}
        wall, cpu = wall + t, cpu + c
    for key in EXPERTS:
        r = run_process(me("peer-expert", videos, key))
        parts[key] = r
        wall, cpu = wall + r["wall"], cpu + r["cpu"]
        rss = max(rss, r["rss"])
    return {"wall": wall, "cpu": cpu, "rss": rss, "parts": parts}


def measure_set(name: str, paths: list[str], repeats: int, alone: tuple[str, ...] = EXPERTS, parts: str = "all") -> dict:
    videos = Path(tempfile.mkdtemp(prefix="bench-extract-")) / f"{name}.json"
    videos.write_text(json.dumps(paths))
    whole = {
        "onepass": lambda: run_process(me("onepass", str(videos))),
        "onepass_serial": lambda: run_process(me("onepass", str(videos), consumers="serial")),
        "peer": lambda: peer_pipeline(paths, str(videos)),
    }
    plans = {
        **(whole if parts == "all" else {}),
        "decode": lambda: run_process(me("decode", str(videos))),
        "reader": lambda: run_process(me("reader", str(videos))),
        "segmenter": lambda: run_process(me("onepass", str(videos), "segmenter")),
        **{k: (lambda k=k: run_process(me("onepass", str(videos), k))) for k in EXPERTS if k in alone},
    }
    runs: dict[str, list[dict]] = {k: [] for k in plans}
    names = list(plans)
    for rep in range(repeats):
        order = names[rep % len(names) :] + names[: rep % len(names)]  # rotate: no kind always runs first
        for k in order:
            runs[k].append(plans[k]())
            print(f"  [{name} {rep + 1}/{repeats}] {k}: {runs[k][-1]['wall']:.2f} s, {runs[k][-1]['rss']:.0f} MiB", flush=True)
    return runs


def med(rows: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in rows)


def report(name: str, paths: list[str], runs: dict) -> list[str]:
    lines = [f"\n### {name}: {len(paths)} video(s), medians of {len(runs['decode'])} alternated runs\n"]
    if "onepass" in runs:
        lines += report_whole(runs)
    lines += report_alone(runs)
    return lines


def report_whole(runs: dict) -> list[str]:
    lines = ["| whole process | wall s | CPU s | peak RSS MiB |", "|---|---|---|---|"]
    for k, label in (
        ("onepass", "moviekit one pass (consumers on threads)"),
        ("onepass_serial", "moviekit one pass (consumers serial)"),
        ("peer", "peer pipeline (total)"),
    ):
        lines.append(f"| {label} | {med(runs[k], 'wall'):.2f} | {med(runs[k], 'cpu'):.2f} | {max(r['rss'] for r in runs[k]):.0f} |")
    for part in ("scenedetect", *EXPERTS):
        pr = [r["parts"][part] for r in runs["peer"]]
        lines.append(f"| &nbsp; peer: {part} | {med(pr, 'wall'):.2f} | {med(pr, 'cpu'):.2f} | {max(r['rss'] for r in pr):.0f} |")
    peer, one, serial = med(runs["peer"], "wall"), med(runs["onepass"], "wall"), med(runs["onepass_serial"], "wall")
    lines.append("")
    lines.append(
        f"**peer / one pass: {peer / one:.2f}x** (target >= 2.5x); peer / one pass serial: {peer / serial:.2f}x; serial / threads: {serial / one:.2f}x"
    )
    lines.append("")
    return lines


def report_alone(runs: dict) -> list[str]:
    lines = [
        "| in-process extraction (start-up excluded) | s | decode-only / this | whole process s | peak RSS MiB |",
        "|---|---|---|---|---|",
    ]
    dec = med(runs["decode"], "seconds")
    for k in ("decode", "reader", "segmenter", *[e for e in EXPERTS if e in runs], *(["onepass"] if "onepass" in runs else [])):
        s = med(runs[k], "seconds")
        lines.append(
            f"| {LABELS.get(k, k + ' alone')} | {s:.2f} | {dec / s:.2f}x | {med(runs[k], 'wall'):.2f} | {max(r['rss'] for r in runs[k]):.0f} |"
            if k not in ("decode", "onepass")
            else f"| {'decode-only (PyAV, no conversion)' if k == 'decode' else 'one pass, all five'} | {s:.2f} | {dec / s:.2f}x | {med(runs[k], 'wall'):.2f} | {max(r['rss'] for r in runs[k]):.0f} |"
        )
    return lines


def startup(repeats: int) -> list[str]:
    # An installed package has its bytecode compiled (pip does it); without it every start compiles
    # each module again (about 0.4 s here).  So PYTHONDONTWRITEBYTECODE is dropped and one untimed run
    # writes the bytecode cache first.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    run_process([sys.executable, "-m", "moviekit", "validate", str(RECIPE)], env=env)
    rows = [run_process([sys.executable, "-m", "moviekit", "validate", str(RECIPE)], env=env) for _ in range(max(3, repeats))]
    scd = shutil.which("scenedetect") or str(Path(sys.executable).with_name("scenedetect"))
    ref = [run_process([scd, "version"], env=env) for _ in range(max(3, repeats))]
    return [
        "\n### start-up\n",
        f"`moviekit validate recipes/mmx_trailer.yaml`: {med(rows, 'wall'):.2f} s wall, {med(rows, 'cpu'):.2f} s CPU (medians of {len(rows)}; "
        f"target < 1 s), peak RSS {max(r['rss'] for r in rows):.0f} MiB; "
        f"`scenedetect version`: {med(ref, 'wall'):.2f} s wall, {med(ref, 'cpu'):.2f} s CPU, {max(r['rss'] for r in ref):.0f} MiB",
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3, help="alternated runs of each kind (medians are reported)")
    ap.add_argument("--sets", default="trailers,720p", help="comma-separated: trailers, 720p")
    ap.add_argument("--trailers", type=int, default=20, help="embedded synthetic trailers used")
    ap.add_argument("--alone", default=",".join(EXPERTS), help="experts also measured alone (comma-separated; the segmenter always is)")
    ap.add_argument(
        "--parts",
        choices=("all", "alone", "startup"),
        default="all",
        help="all; alone: only decode-only, the reader, the segmenter and the --alone experts (no one pass with every expert, "
        "no peer pipeline), then start-up; startup: only the start-up of moviekit validate",
    )
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--videos", help=argparse.SUPPRESS)
    ap.add_argument("--only", help=argparse.SUPPRESS)
    ap.add_argument("--consumers", default="threads", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return
    os.environ.setdefault("MOVIEKIT_OFFLINE", "1")
    load = os.getloadavg() if hasattr(os, "getloadavg") else ("?",)
    from moviekit.threads import available_cores

    lines = [
        f"cores available: {available_cores()}, load average at start: {', '.join(f'{x:.2f}' for x in load)}, python {sys.version.split()[0]}"
    ]
    for name in [s.strip() for s in args.sets.split(",") if s.strip()] if args.parts != "startup" else []:
        paths = trailer_videos(args.trailers) if name == "trailers" else video_720p()
        print(f"{name}: {len(paths)} video(s)", flush=True)
        alone = tuple(k.strip() for k in args.alone.split(",") if k.strip())
        lines += report(name, paths, measure_set(name, paths, args.repeats, alone, args.parts))
    lines += startup(args.repeats)
    lines.append(f"\nload average at the end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
