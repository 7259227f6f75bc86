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

Usage: ``python benchmarks/bench_segment.py [--minutes 30] [--fps 24] [--cut-every 4]``.
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
        print(f"  {info['frames']} frames, {info['shots']} shots, {info['seconds']:.1f} s ({info['frames'] / info['seconds']:.0f} frames/s)", flush=True)
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


def run_child(which: str, path: Path) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--measure", which, str(path)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{which} measurement failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=30.0, help="length of the long video (default 30)")
    ap.add_argument("--fps", type=int, default=24)
    ap.add_argument("--cut-every", type=float, default=4.0, help="seconds between cuts (default 4)")
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "moviekit-bench", help="where generated videos are kept")
    ap.add_argument("--measure", nargs=2, metavar=("WHICH", "FILE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure:
        print(json.dumps(measure(*args.measure)))
        return

    full = cached_video(args.cache, args.minutes, args.fps, args.cut_every)
    quarter = cached_video(args.cache, args.minutes / 4, args.fps, args.cut_every)
    expected = -(-int(round(args.minutes * 60 * args.fps)) // max(1, int(round(args.cut_every * args.fps))))
    print(f"\nvideo: {full} ({WIDTH}x{HEIGHT}, {args.minutes:g} min at {args.fps} fps, cut every {args.cut_every:g} s, {expected} shots)")
    print(f"cpu cores: {os.cpu_count()}\n")

    mk = run_child("moviekit", full)
    sd = run_child("pyscenedetect", full)
    mk_q = run_child("moviekit", quarter)
    rd = run_child("reader", full)

    def line(label: str, r: dict) -> str:
        return f"{label:<34} {r['frames']:>8} frames {r['seconds']:>8.1f} s {r['frames'] / r['seconds']:>8.1f} frames/s  {r['shots']:>5} shots  peak RSS {r['maxrss_mib']:>7.1f} MiB"

    print(line("moviekit (PyAV + scenedetect)", mk))
    print(line("PySceneDetect alone (detect())", sd))
    label = "moviekit's PyAV reader alone"
    print(f"{label:<34} {rd['frames']:>8} frames {rd['seconds']:>8.1f} s {rd['frames'] / rd['seconds']:>8.1f} frames/s  (decoding + RGB frames, no detection)")
    print(f"\nspeed ratio moviekit / PySceneDetect: {(mk['frames'] / mk['seconds']) / (sd['frames'] / sd['seconds']):.2f}x")
    same = mk["shots"] == sd["shots"]
    print(f"same number of shots: {'yes' if same else 'NO'} (moviekit {mk['shots']}, PySceneDetect {sd['shots']}, generated {expected})")
    print("\npeak RSS of moviekit by video length:")
    print(line(f"  {args.minutes / 4:g} min", mk_q))
    print(line(f"  {args.minutes:g} min", mk))
    print(f"  ratio (full / quarter): {mk['maxrss_mib'] / mk_q['maxrss_mib']:.2f} for a 4x longer video")


if __name__ == "__main__":
    main()
