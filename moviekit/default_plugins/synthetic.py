"""A synthetic, MMX-Trailer-20-style dataset of short movie trailers, generated on the fly.

This is the toolkit's embedded default dataset: it needs no download, builds in
seconds on a CPU and is big enough to train a multi-modal genre classifier end
to end.  Every trailer is an H.264 mp4 (yuv420p) with a mono AAC track, written
with PyAV (no system ffmpeg), together with its shot-boundary ground truth.

How genre shows up.  Each of the 20 genres (:data:`GENRES`) has a style in four
groups:

* appearance: palette hue, saturation and brightness, texture period and strength;
* layout: horizon height and tilt, skyline, number, shape and size of objects;
* motion: camera pan speed and direction, zoom, object speed and shot length;
* audio: chord and pitch, timbre, noise level and colour, beat rate and kind.

A trailer has 1 to 4 genres.  Each shot takes its style from one of them (a
per-trailer mixture), and each style group of a shot independently comes from
a random genre with probability ``style_noise``; on top of that every trailer
and every shot jitters the style.  So each modality alone is a noisy cue and
the modalities together are a strong one.

Shots last 0.6 to 2.5 s.  Transitions are hard cuts, plus some dissolves
(cross-fades of 6 to 10 frames).  Consecutive shots are checked to differ
strongly (an HSV frame difference like PySceneDetect's ``ContentDetector``,
well above its default threshold of 27, and a large mean RGB difference), while
within a shot the camera and the objects move smoothly.

Ground truth, ``<id>.cuts.json`` beside each ``<id>.mp4``::

    {"fps": 12, "num_frames": 180,
     "hard_cuts": [14, 27, ...],          # first frame of each shot that follows a hard cut
     "dissolves": [[60, 68], ...],        # blended frames, half-open [first, last + 1)
     "shots": [[0, 14], [14, 27], ...],   # half-open frame ranges that tile the video
     "shot_genres": ["Drama", ...]}       # the genre each shot's style was drawn from

Shots tile the video: the boundary between the two shots of a dissolve is the
middle of the dissolve.  Frame ``f`` of a dissolve ``[d0, d1)`` shows
``(1 - a) * A + a * B`` with ``a = (f - d0 + 1) / (d1 - d0 + 1)``.

The dataset folder also holds ``labels.csv`` (``video,labels,split``; labels
``|``-separated), the format the ``video_folder`` source reads, so the folder
can also be used with ``video_folder``.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field, field_validator, model_validator

from moviekit.components import Config, DatasetSource
from moviekit.generated import ensure_generated, generated_dataset_dir
from moviekit.hookspecs import hookimpl
from moviekit.records import Video
from moviekit.store import atomic_write_text, hash_key

log = logging.getLogger(__name__)

#: The 20 genres of MMX-Trailer-20 (§4.1 and the columns of Table 2), in vocabulary (alphabetical) order.
GENRES: tuple[str, ...] = (
    "Action",
    "Adventure",
    "Animation",
    "Biography",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Family",
    "Fantasy",
    "History",
    "Horror",
    "Music",
    "Mystery",
    "Science-Fiction",
    "Short",
    "Sport",
    "Thriller",
    "War",
    "Western",
)

#: Bump when the generator's output changes, so cached datasets are rebuilt.
#: 3: the paper's genre list (Western and Short instead of Musical and Romance; Science-Fiction spelled out).
GENERATOR_VERSION = "3"

#: Shot length bounds in seconds.
MIN_SHOT_SECONDS = 0.6
MAX_SHOT_SECONDS = 2.5
#: Dissolve length bounds in frames.
DISSOLVE_FRAMES = (6, 10)
#: Minimum frame difference (HSV, ContentDetector scale) required across a transition.
MIN_CUT_SCORE = 45.0
#: Minimum mean absolute RGB difference (0-255) required across a transition.
MIN_CUT_RGB = 25.0

# Hand-made core of each genre's style.  Spatial values are for a 96 px high
# frame at 12 fps and are rescaled to the configured size and rate.
#   hue (deg), saturation, brightness, horizon (fraction from top), pan (px/frame),
#   object speed (px/frame), mean shot length (s), root pitch (Hz), chord (semitones),
#   noise level, tempo (beats/min)
_CORE: dict[str, tuple[float, float, float, float, float, float, float, float, tuple[int, ...], float, float]] = {
    "Action": (25, 0.75, 0.70, 0.55, 2.2, 3.0, 0.75, 110, (0, 7, 12), 0.35, 150),
    "Adventure": (95, 0.60, 0.65, 0.45, 1.4, 1.8, 1.00, 196, (0, 4, 7), 0.15, 120),
    "Animation": (300, 0.90, 0.88, 0.60, -0.8, 2.5, 0.85, 523, (0, 4, 7, 12), 0.05, 132),
    "Biography": (40, 0.35, 0.55, 0.50, 0.3, 0.5, 1.45, 262, (0, 4, 7, 11), 0.08, 72),
    "Comedy": (58, 0.70, 0.86, 0.66, -0.5, 1.6, 0.95, 440, (0, 4, 7), 0.05, 112),
    "Crime": (212, 0.45, 0.40, 0.58, 0.9, 1.0, 1.05, 147, (0, 3, 7), 0.20, 96),
    "Documentary": (150, 0.30, 0.60, 0.40, 0.2, 0.3, 1.50, 330, (0, 7), 0.25, 60),
    "Drama": (18, 0.40, 0.50, 0.48, -0.2, 0.4, 1.40, 220, (0, 3, 7), 0.06, 66),
    "Family": (190, 0.60, 0.82, 0.70, 0.6, 1.0, 1.15, 392, (0, 4, 7), 0.04, 100),
    "Fantasy": (272, 0.65, 0.60, 0.35, -1.0, 1.2, 1.20, 294, (0, 5, 7), 0.10, 84),
    "History": (35, 0.55, 0.45, 0.52, -0.6, 0.6, 1.35, 165, (0, 3, 7, 10), 0.12, 76),
    "Horror": (0, 0.55, 0.30, 0.72, 0.1, 0.4, 1.30, 82, (0, 3, 6), 0.45, 54),
    "Music": (322, 0.80, 0.75, 0.50, 0.8, 2.0, 0.80, 349, (0, 4, 7, 12), 0.05, 128),
    "Mystery": (242, 0.50, 0.36, 0.38, -0.3, 0.8, 1.25, 185, (0, 3, 7), 0.22, 70),
    "Science-Fiction": (176, 0.80, 0.55, 0.30, 1.2, 2.4, 0.90, 587, (0, 6, 7), 0.18, 140),
    "Short": (340, 0.45, 0.75, 0.55, -0.15, 0.3, 1.30, 311, (0, 4, 7, 11), 0.03, 64),
    "Sport": (120, 0.70, 0.72, 0.30, 2.0, 2.8, 0.75, 247, (0, 7, 12), 0.30, 160),
    "Thriller": (200, 0.35, 0.42, 0.62, 1.6, 1.4, 0.80, 123, (0, 1, 7), 0.30, 116),
    "War": (75, 0.40, 0.40, 0.68, -1.8, 2.2, 0.85, 98, (0, 6), 0.50, 88),
    "Western": (46, 0.85, 0.80, 0.42, -0.7, 1.5, 1.05, 466, (0, 4, 7, 9), 0.03, 104),
}

# Genres that often come together in trailers: secondary genres are drawn with extra weight.
_AFFINITY = [
    ("Action", "Adventure"),
    ("Action", "Science-Fiction"),
    ("Action", "Thriller"),
    ("Action", "Crime"),
    ("Action", "War"),
    ("Adventure", "Fantasy"),
    ("Adventure", "Family"),
    ("Animation", "Family"),
    ("Animation", "Comedy"),
    ("Biography", "Drama"),
    ("Biography", "History"),
    ("Biography", "Sport"),
    ("Comedy", "Short"),
    ("Comedy", "Drama"),
    ("Crime", "Thriller"),
    ("Crime", "Drama"),
    ("Crime", "Mystery"),
    ("Drama", "Short"),
    ("Drama", "History"),
    ("Drama", "War"),
    ("Fantasy", "Family"),
    ("Horror", "Mystery"),
    ("Horror", "Thriller"),
    ("Action", "Western"),
    ("Music", "Documentary"),
    ("Adventure", "Western"),
    ("Mystery", "Thriller"),
    ("Science-Fiction", "Thriller"),
    ("History", "War"),
    ("Documentary", "History"),
    ("Sport", "Drama"),
]


@dataclass(frozen=True)
class GenreStyle:
    """The style of one genre (spatial units: px of a 96 px high frame at 12 fps)."""

    # appearance
    hue: float
    sat: float
    val: float
    ground_hue: float
    accent_hue: float
    tex_period: float
    tex_angle: float
    tex_amp: float
    checker: bool
    cloud_amp: float
    # layout
    horizon: float
    tilt: float
    n_objects: int
    shape: int
    obj_size: float
    objects_in_sky: bool
    skyline: int
    skyline_height: float
    # motion
    pan: float
    pan_vy: float
    zoom: float
    obj_speed: float
    shot_seconds: float
    # audio
    f0: float
    chord: tuple[int, ...]
    harmonics: int
    noise: float
    noise_smooth: int
    bpm: float
    beat_kind: int
    tremolo: float
    loudness: float


#: Scales the table's mean shot lengths (so a 10-20 s trailer has 10-25 shots).
_SHOT_SCALE = 0.85


def _build_styles() -> dict[str, GenreStyle]:
    styles = {}
    for i, g in enumerate(GENRES):
        hue, sat, val, horizon, pan, speed, shot_s, f0, chord, noise, bpm = _CORE[g]
        r = np.random.default_rng(9000 + i)  # fixed: the genre styles never depend on the dataset seed
        styles[g] = GenreStyle(
            hue=float(hue),
            sat=float(sat),
            val=float(val),
            ground_hue=float(r.choice([-1, 1]) * r.uniform(25, 70)),
            accent_hue=float(r.uniform(120, 240)),
            tex_period=float(r.uniform(18, 44)),
            tex_angle=float(r.uniform(0, np.pi)),
            tex_amp=float(r.uniform(0.05, 0.16)),
            checker=bool(r.random() < 0.4),
            cloud_amp=float(r.uniform(0.0, 0.12)),
            horizon=float(horizon),
            tilt=float(r.uniform(-0.3, 0.3)),
            n_objects=int(r.integers(1, 5)),
            shape=int(r.integers(0, 3)),
            obj_size=float(r.uniform(5, 15)),
            objects_in_sky=bool(r.random() < 0.5),
            skyline=int(r.integers(0, 7)),
            skyline_height=float(r.uniform(8, 30)),
            pan=float(pan),
            pan_vy=float(r.uniform(-0.25, 0.25)),
            zoom=float(r.choice([0.0, r.uniform(0.002, 0.006)])),
            obj_speed=float(speed),
            shot_seconds=float(shot_s) * _SHOT_SCALE,
            f0=float(f0),
            chord=tuple(chord),
            harmonics=int(r.integers(1, 5)),
            noise=float(noise),
            noise_smooth=int(r.choice([1, 3, 9, 25])),
            bpm=float(bpm),
            beat_kind=int(r.integers(0, 2)),
            tremolo=float(r.choice([0.0, r.uniform(2, 8)])),
            loudness=float(r.uniform(0.5, 1.0)),
        )
    return styles


STYLES: dict[str, GenreStyle] = _build_styles()


# ---------------------------------------------------------------------------
# Specs: everything that determines a trailer, drawn from a seed


@dataclass
class ShotSpec:
    """One shot: its tile ``[start, end)`` of the video and the fully drawn style."""

    start: int
    end: int
    genre: str
    modality_genres: dict[str, str]
    style: dict[str, Any]


@dataclass
class TrailerSpec:
    """Everything :func:`write_trailer` needs to render one trailer."""

    id: str
    labels: list[str]
    fps: int
    width: int
    height: int
    audio_rate: int
    shots: list[ShotSpec]
    #: ``(d0, d1)`` of the dissolve ending shot ``i``, or None for a hard cut; one per boundary.
    transitions: list[tuple[int, int] | None] = field(default_factory=list)

    @property
    def num_frames(self) -> int:
        return self.shots[-1].end if self.shots else 0

    def ground_truth(self) -> dict[str, Any]:
        hard, dissolves = [], []
        for i, tr in enumerate(self.transitions):
            if tr is None:
                hard.append(self.shots[i + 1].start)
            else:
                dissolves.append([int(tr[0]), int(tr[1])])
        return {
            "fps": self.fps,
            "num_frames": self.num_frames,
            "hard_cuts": hard,
            "dissolves": dissolves,
            "shots": [[s.start, s.end] for s in self.shots],
            "shot_genres": [s.genre for s in self.shots],
        }


def _wrap_hue(h: float) -> float:
    return float(h % 360.0)


def _draw_labels(rng: np.random.Generator, primary: str | None = None) -> list[str]:
    k = int(rng.choice([1, 2, 3, 4], p=[0.22, 0.40, 0.26, 0.12]))
    first = primary or GENRES[int(rng.integers(len(GENRES)))]
    chosen = [first]
    while len(chosen) < k:
        w = np.ones(len(GENRES))
        for a, b in _AFFINITY:
            for x, y in ((a, b), (b, a)):
                if x in chosen:
                    w[GENRES.index(y)] += 3.0
        for c in chosen:
            w[GENRES.index(c)] = 0.0
        chosen.append(GENRES[int(rng.choice(len(GENRES), p=w / w.sum()))])
    return chosen  # primary first


def _trailer_jitter(rng: np.random.Generator) -> dict[str, float]:
    return {
        "hue": rng.normal(0, 12),
        "sat": rng.normal(0, 0.05),
        "val": rng.normal(0, 0.05),
        "horizon": rng.normal(0, 0.04),
        "pan": float(np.exp(rng.normal(0, 0.2))),
        "speed": float(np.exp(rng.normal(0, 0.2))),
        "shot": float(np.exp(rng.normal(0, 0.1))),
        "pitch": rng.normal(0, 1.0),
        "tempo": float(np.exp(rng.normal(0, 0.08))),
        "noise": rng.normal(0, 0.04),
    }


def _sample_appearance(rng: np.random.Generator, g: GenreStyle, jit: dict[str, float]) -> dict[str, Any]:
    return {
        "hue": _wrap_hue(g.hue + jit["hue"] + rng.normal(0, 10)),
        "sat": float(np.clip(g.sat + jit["sat"] + rng.normal(0, 0.06), 0.28, 1.0)),
        "val": float(np.clip(g.val + jit["val"] + rng.normal(0, 0.06), 0.24, 0.95)),
        "ground_hue": float(g.ground_hue + rng.normal(0, 8)),
        "accent_hue": float(g.accent_hue + rng.normal(0, 15)),
        "tex_period": float(g.tex_period * np.exp(rng.normal(0, 0.15))),
        "tex_angle": float(g.tex_angle + rng.normal(0, 0.2)),
        "tex_amp": float(np.clip(g.tex_amp * np.exp(rng.normal(0, 0.2)), 0.02, 0.2)),
        "checker": bool(g.checker),
        "cloud_amp": float(max(0.0, g.cloud_amp + rng.normal(0, 0.02))),
        "tex_phase": float(rng.uniform(0, 2 * np.pi)),
        "cloud_phase": float(rng.uniform(0, 2 * np.pi)),
    }


def _sample_layout(rng: np.random.Generator, g: GenreStyle, jit: dict[str, float]) -> dict[str, Any]:
    n_obj = int(np.clip(g.n_objects + rng.integers(-1, 2), 1, 5))
    n_sky = int(np.clip(g.skyline + rng.integers(-1, 2), 0, 8))
    return {
        "horizon": float(np.clip(g.horizon + jit["horizon"] + rng.normal(0, 0.05), 0.2, 0.8)),
        "tilt": float(g.tilt + rng.normal(0, 0.06)),
        "shape": int(g.shape),
        "objects_in_sky": bool(g.objects_in_sky),
        # objects: relative start positions in their band, size (ref px), colour jitter
        "objects": [
            (float(rng.random()), float(rng.random()), float(g.obj_size * np.exp(rng.normal(0, 0.2))), float(rng.normal(0, 12)))
            for _ in range(n_obj)
        ],
        # skyline blocks: relative x position (over 3 frame widths), width and height (ref px)
        "skyline": [
            (float(rng.random()), float(rng.uniform(6, 22)), float(g.skyline_height * np.exp(rng.normal(0, 0.3)))) for _ in range(n_sky)
        ],
    }


def _sample_motion(rng: np.random.Generator, g: GenreStyle, jit: dict[str, float]) -> dict[str, Any]:
    pan = g.pan * jit["pan"] * np.exp(rng.normal(0, 0.2))
    if rng.random() < 0.2:
        pan = -pan
    return {
        "pan": float(np.clip(pan, -3.0, 3.0)),
        "pan_vy": float(np.clip(g.pan_vy + rng.normal(0, 0.1), -0.5, 0.5)),
        "zoom": float(max(0.0, g.zoom * np.exp(rng.normal(0, 0.3)))),
        "obj_speed": float(np.clip(g.obj_speed * jit["speed"] * np.exp(rng.normal(0, 0.2)), 0.1, 4.0)),
        "obj_dirs": [float(rng.uniform(0, 2 * np.pi)) for _ in range(5)],
        "shot_seconds": float(g.shot_seconds * jit["shot"] * np.exp(rng.normal(0, 0.25))),
    }


def _sample_audio(rng: np.random.Generator, g: GenreStyle, jit: dict[str, float]) -> dict[str, Any]:
    return {
        "f0": float(g.f0 * 2 ** ((jit["pitch"] + rng.normal(0, 0.7)) / 12)),
        "chord": list(g.chord),
        "harmonics": int(g.harmonics),
        "noise": float(np.clip(g.noise + jit["noise"] + rng.normal(0, 0.04), 0.0, 0.7)),
        "noise_smooth": int(g.noise_smooth),
        "bpm": float(g.bpm * jit["tempo"] * np.exp(rng.normal(0, 0.05))),
        "beat_kind": int(g.beat_kind),
        "beat_phase": float(rng.random()),
        "tremolo": float(g.tremolo),
        "loudness": float(np.clip(g.loudness * np.exp(rng.normal(0, 0.1)), 0.3, 1.0)),
        "noise_seed": int(rng.integers(2**31)),
    }


_SAMPLERS = {"appearance": _sample_appearance, "layout": _sample_layout, "motion": _sample_motion, "audio": _sample_audio}


class _ShotDrawer:
    """Draws shot styles for one trailer: a genre mixture, distractors and jitter."""

    def __init__(self, rng: np.random.Generator, labels: list[str], style_noise: float):
        self.rng = rng
        self.labels = labels
        self.style_noise = style_noise
        w = rng.dirichlet(np.full(len(labels), 2.0)) + 0.15
        w[0] += 0.3  # the first (primary) genre a bit more often
        self.weights = w / w.sum()
        self.jit = _trailer_jitter(rng)

    def genre(self) -> str:
        return self.labels[int(self.rng.choice(len(self.labels), p=self.weights))]

    def modality_genre(self, main: str) -> str:
        if self.rng.random() < self.style_noise:
            return GENRES[int(self.rng.integers(len(GENRES)))]
        return main

    def draw(self, start: int, fps: int, min_len: int, max_len: int) -> tuple[ShotSpec, int]:
        main = self.genre()
        mg = {m: self.modality_genre(main) for m in _SAMPLERS}
        style: dict[str, Any] = {}
        for m, sampler in _SAMPLERS.items():
            style.update(sampler(self.rng, STYLES[mg[m]], self.jit))
        length = int(np.clip(round(style["shot_seconds"] * fps), min_len, max_len))
        return ShotSpec(start, start, main, mg, style), length

    def redraw_look(self, shot: ShotSpec) -> None:
        """New appearance and layout for a shot (to make a transition stronger)."""
        for m in ("appearance", "layout"):
            g = self.modality_genre(self.genre())
            shot.modality_genres[m] = g
            shot.style.update(_SAMPLERS[m](self.rng, STYLES[g], self.jit))


def shot_bounds(fps: int) -> tuple[int, int]:
    """Shortest and longest shot in frames at ``fps``."""
    return max(2, int(np.ceil(MIN_SHOT_SECONDS * fps))), max(3, int(np.floor(MAX_SHOT_SECONDS * fps)))


def make_trailer_spec(
    trailer_id: str,
    seed: Any,
    fps: int = 12,
    size: tuple[int, int] = (160, 96),
    audio_rate: int = 16000,
    num_frames: int | None = None,
    n_shots: int | None = None,
    labels: list[str] | None = None,
    primary: str | None = None,
    dissolve_prob: float = 0.15,
    style_noise: float = 0.25,
) -> TrailerSpec:
    """Draw a trailer: labels, shots (length ``num_frames`` or exactly ``n_shots`` shots) and transitions.

    ``seed`` is anything :func:`numpy.random.default_rng` takes (an int or a
    list of ints); the same arguments always give the same spec.
    """
    if (num_frames is None) == (n_shots is None):
        raise ValueError("give exactly one of num_frames and n_shots")
    width, height = size
    rng = np.random.default_rng(seed)
    labels = list(dict.fromkeys(labels)) if labels else _draw_labels(rng, primary)
    if primary is not None and primary in labels:
        labels = [primary] + [g for g in labels if g != primary]
    drawer = _ShotDrawer(rng, labels, style_noise)
    min_len, max_len = shot_bounds(fps)
    shots: list[ShotSpec] = []
    pos = 0
    if n_shots is not None:
        for _ in range(n_shots):
            shot, length = drawer.draw(pos, fps, min_len, max_len)
            shot.end = pos = pos + length
            shots.append(shot)
    else:
        remaining = int(num_frames)
        while remaining > max_len:
            shot, length = drawer.draw(pos, fps, min_len, max_len)
            length = min(length, remaining - min_len)
            shot.end = pos = pos + length
            remaining -= length
            shots.append(shot)
        if remaining > 0:
            shot, _ = drawer.draw(pos, fps, min_len, max_len)
            shot.end = pos + remaining
            shots.append(shot)
    labels_sorted = [g for g in GENRES if g in labels]

    # transitions: mostly hard cuts, some dissolves where both shots are long enough
    transitions: list[tuple[int, int] | None] = []
    used_head = 0  # frames at the start of the current shot taken by the previous dissolve
    clean = 3
    for i in range(len(shots) - 1):
        a, b = shots[i], shots[i + 1]
        tr = None
        if rng.random() < dissolve_prob:
            n = int(rng.integers(DISSOLVE_FRAMES[0], DISSOLVE_FRAMES[1] + 1))
            left, right = n // 2, n - n // 2
            if (a.end - a.start) - used_head - left >= clean and (b.end - b.start) - right >= clean + 5:
                tr = (b.start - left, b.start - left + n)
        transitions.append(tr)
        used_head = 0 if tr is None else tr[1] - b.start

    spec = TrailerSpec(trailer_id, labels_sorted, fps, width, height, audio_rate, shots, transitions)
    _strengthen_transitions(spec, drawer)
    return spec


def _strengthen_transitions(spec: TrailerSpec, drawer: _ShotDrawer) -> None:
    """Redraw the look of a shot that is too similar to the one before it."""
    for i in range(len(spec.shots) - 1):
        a, b = spec.shots[i], spec.shots[i + 1]
        tr = spec.transitions[i]
        fa, fb = (b.start - 1, b.start) if tr is None else (b.start, b.start)
        img_a = _to_uint8(render_shot(a.style, np.array([fa - a.start], float), spec.width, spec.height, spec.fps))[0]
        for attempt in range(12):
            img_b = _to_uint8(render_shot(b.style, np.array([fb - b.start], float), spec.width, spec.height, spec.fps))[0]
            rgb = float(np.abs(img_a.astype(np.float32) - img_b.astype(np.float32)).mean())
            if rgb >= MIN_CUT_RGB and content_score(img_a, img_b) >= MIN_CUT_SCORE:
                break
            if attempt < 8:
                drawer.redraw_look(b)
            else:  # last resort: opposite hue and brightness
                b.style["hue"] = _wrap_hue(a.style["hue"] + 180 + drawer.rng.normal(0, 20))
                b.style["val"] = float(np.clip(1.15 - a.style["val"], 0.24, 0.95))
                b.style["horizon"] = float(np.clip(1.0 - a.style["horizon"], 0.2, 0.8))


# ---------------------------------------------------------------------------
# Rendering


def hsv_to_rgb(h: Any, s: Any, v: Any) -> np.ndarray:
    """HSV (hue in degrees, s and v in [0, 1]) to RGB in [0, 255]; broadcasts, last axis RGB."""
    h = (np.asarray(h, np.float64) % 360.0) / 60.0
    s = np.asarray(s, np.float64)
    v = np.asarray(v, np.float64)
    i = np.floor(h).astype(int) % 6
    f = h - np.floor(h)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    r = np.choose(i, [v, q, p, p, t, v])
    g = np.choose(i, [t, v, v, q, p, p])
    b = np.choose(i, [p, p, t, v, v, q])
    return np.stack([r, g, b], axis=-1) * 255.0


def _rgb_to_hsv_cv(img: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """OpenCV-style 8-bit HSV (H in [0, 180), S and V in [0, 255]) of an RGB uint8 image."""
    x = img.astype(np.float32)
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    v = x.max(axis=-1)
    c = v - x.min(axis=-1)
    s = np.where(v > 0, 255.0 * c / np.maximum(v, 1e-6), 0.0)
    cc = np.maximum(c, 1e-6)
    h = np.where(v == r, 60.0 * (g - b) / cc, np.where(v == g, 120.0 + 60.0 * (b - r) / cc, 240.0 + 60.0 * (r - g) / cc))
    h = np.where(c > 0, h % 360.0, 0.0) / 2.0
    return np.round(h), np.round(s), v


def content_score(a: np.ndarray, b: np.ndarray) -> float:
    """Mean HSV difference of two RGB uint8 frames, on the scale of PySceneDetect's ContentDetector."""
    ha, sa, va = _rgb_to_hsv_cv(a)
    hb, sb, vb = _rgb_to_hsv_cv(b)
    return float((np.abs(ha - hb).mean() + np.abs(sa - sb).mean() + np.abs(va - vb).mean()) / 3.0)


def _reflect(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Bounce ``x`` back and forth inside ``[lo, hi]`` (continuous, like a ball between walls)."""
    span = max(hi - lo, 1e-6)
    u = np.mod(x - lo, 2 * span)
    return lo + span - np.abs(u - span)


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(x + 0.5, 0, 255).astype(np.uint8)


def render_shot(style: dict[str, Any], t: np.ndarray, width: int, height: int, fps: int) -> np.ndarray:
    """Frames of one shot at local frame times ``t`` (frames since the shot's start), float ``(T, H, W, 3)``."""
    H, W = height, width
    sp = H / 96.0  # spatial scale
    tp = 12.0 / fps  # per-frame scale
    t = np.asarray(t, np.float32)
    T = len(t)
    tt = t[:, None, None]
    ys = np.arange(H, dtype=np.float32)[None, :, None]
    xs = np.arange(W, dtype=np.float32)[None, None, :]
    zoom = 1.0 + style["zoom"] * tp * np.maximum(tt, 0)
    vx, vy = style["pan"] * sp * tp, style["pan_vy"] * sp * tp
    X = (xs - W / 2) / zoom + W / 2 + vx * tt  # (T, 1, W) world x
    Y = (ys - H / 2) / zoom + H / 2 + vy * tt  # (T, H, 1) world y
    hor = H * style["horizon"]
    hY = hor + np.tan(style["tilt"]) * (X - W / 2)  # (T, 1, W)

    # colours
    hue, sat, val = style["hue"], style["sat"], style["val"]
    sky_top = hsv_to_rgb(hue, sat, val * 0.8).astype(np.float32)
    sky_bot = hsv_to_rgb(hue + 20, sat * 0.6, min(1.0, val * 1.15)).astype(np.float32)
    ground = hsv_to_rgb(hue + style["ground_hue"], sat * 0.9, val * 0.7).astype(np.float32)
    ground_far = hsv_to_rgb(hue + style["ground_hue"], sat * 0.7, min(1.0, val * 0.95)).astype(np.float32)
    block = hsv_to_rgb(hue + style["ground_hue"] / 2, sat * 0.5, val * 0.38).astype(np.float32)

    # sky: vertical gradient (T, H, 1, 3) times soft clouds
    s = np.clip(Y / max(hor, 1.0), 0, 1)[..., None]
    sky = sky_top + (sky_bot - sky_top) * s
    if style["cloud_amp"] > 0:
        cx = np.sin(2 * np.pi * X / (70 * sp) + style["cloud_phase"])  # (T, 1, W)
        cy = np.sin(2 * np.pi * Y / (31 * sp))  # (T, H, 1)
        sky = sky * (1.0 + style["cloud_amp"] * (cx * cy))[..., None]
    # ground: depth gradient times a sinusoidal texture (separable products, so no big sin)
    g = np.clip((Y - hor) / max(H - hor, 1.0), 0, 1)[..., None]
    grd = ground_far + (ground - ground_far) * g
    k = 2 * np.pi / (style["tex_period"] * sp)
    ca, sa = np.cos(style["tex_angle"]) * k, np.sin(style["tex_angle"]) * k
    ph = style["tex_phase"]
    ux, uy = ca * X + ph, sa * Y
    tex = np.sin(ux) * np.cos(uy) + np.cos(ux) * np.sin(uy)  # sin(ux + uy)
    if style["checker"]:
        vx_, vy_ = -sa * X, ca * Y
        tex = tex * (np.sin(vx_) * np.cos(vy_) + np.cos(vx_) * np.sin(vy_))
    grd = grd * (1.0 + style["tex_amp"] * tex)[..., None]

    sky_alpha = np.clip(hY - Y + 0.5, 0, 1)  # (T, H, W): 1 above the horizon
    img = grd + (sky - grd) * sky_alpha[..., None]

    # skyline: a height profile along x (cheap), then one soft mask
    if style["skyline"]:
        prof = np.zeros_like(X)
        for rx, bw, bh in style["skyline"]:
            cxb = (rx * 3 - 1) * W
            edge = np.clip(bw * sp / 2 - np.abs(X - cxb) + 0.5, 0, 1)
            prof = np.maximum(prof, edge * bh * sp)
        balpha = np.clip(Y - (hY - prof) + 0.5, 0, 1) * sky_alpha * (prof > 0.5)
        img = img + (block - img) * balpha[..., None]

    # objects: bouncing soft shapes, drawn per frame inside their bounding box
    band = (0.08 * H, hor - 4 * sp) if style["objects_in_sky"] else (hor + 4 * sp, 0.96 * H)
    if band[1] - band[0] < 6:
        band = (0.08 * H, 0.96 * H)
    speed = style["obj_speed"] * sp * tp
    for j, (rx, ry, size, dh) in enumerate(style["objects"]):
        r = size * sp
        d = style["obj_dirs"][j % len(style["obj_dirs"])]
        colour = hsv_to_rgb(hue + style["accent_hue"] + dh, min(1.0, sat + 0.25), min(1.0, val + 0.25)).astype(np.float32)
        shade = colour * 0.6
        px = _reflect(r + rx * (W - 2 * r) + speed * np.cos(d) * t, r, W - r)
        py = _reflect(band[0] + ry * (band[1] - band[0]) + 0.5 * speed * np.sin(d) * t, band[0], band[1])
        for fi in range(T):
            x0, x1 = int(max(0, np.floor(px[fi] - r - 2))), int(min(W, np.ceil(px[fi] + r + 2)))
            y0, y1 = int(max(0, np.floor(py[fi] - r - 2))), int(min(H, np.ceil(py[fi] + r + 2)))
            if x1 <= x0 or y1 <= y0:
                continue
            dx = np.arange(x0, x1, dtype=np.float32)[None, :] - px[fi]
            dy = np.arange(y0, y1, dtype=np.float32)[:, None] - py[fi]
            if style["shape"] == 0:
                dist = np.sqrt(dx * dx + dy * dy)
            elif style["shape"] == 1:
                dist = np.maximum(np.abs(dx), np.abs(dy))
            else:
                dist = (np.abs(dx) + np.abs(dy)) * 0.75
            a = np.clip(r - dist + 0.5, 0, 1)[..., None]
            lit = colour + (shade - colour) * np.clip((dx + dy)[..., None] / (2 * r) + 0.5, 0, 1)
            patch = img[fi, y0:y1, x0:x1]
            img[fi, y0:y1, x0:x1] = patch + (lit - patch) * a
    return img


def render_audio(style: dict[str, Any], n: int, rate: int, t0: float) -> np.ndarray:
    """``n`` mono samples of a shot's sound, starting ``t0`` seconds after the shot starts."""
    t = t0 + np.arange(n, dtype=np.float64) / rate
    tone = np.zeros(n)
    nyq = rate * 0.45
    for semi in style["chord"]:
        f = style["f0"] * 2 ** (semi / 12)
        for h in range(1, style["harmonics"] + 1):
            if f * h < nyq:
                tone += np.sin(2 * np.pi * f * h * t + 0.7 * semi) / (h * h)
    tone /= max(1.0, np.abs(tone).max() if n else 1.0)
    if style["tremolo"] > 0:
        tone *= 0.75 + 0.25 * np.sin(2 * np.pi * style["tremolo"] * t)
    rng = np.random.default_rng(style["noise_seed"] + int(round(t0 * rate)))
    noise = rng.standard_normal(n)
    k = style["noise_smooth"]
    if k > 1 and n > k:
        c = np.cumsum(np.concatenate([[0.0], noise]))
        noise = np.concatenate([noise[: k - 1], (c[k:] - c[:-k]) / np.sqrt(k)])
    period = 60.0 / style["bpm"]
    phase = np.mod(t + style["beat_phase"] * period, period)
    if style["beat_kind"] == 0:  # low kick
        env = np.exp(-phase * 18.0)
        beat = np.sin(2 * np.pi * (55.0 * phase + 40.0 * (1 - np.exp(-phase * 30.0)))) * env
    else:  # noisy snare-like click
        env = np.exp(-phase * 35.0)
        beat = noise * env * 1.5
    mix = 0.45 * tone + 0.5 * beat + style["noise"] * 0.6 * noise
    return (style["loudness"] * 0.5 * mix).astype(np.float32)


def _frame_weights(spec: TrailerSpec, i: int) -> tuple[int, int, list[float], list[float]]:
    """Render range ``[r0, r1)`` of shot ``i`` and its blending weight as knots in frame time."""
    shot = spec.shots[i]
    eps = 0.005 * spec.fps  # 5 ms audio ramps at hard cuts, in frames
    r0, r1 = shot.start, shot.end
    xs: list[float] = []
    ws: list[float] = []
    if i > 0:
        tr = spec.transitions[i - 1]
        if tr is None:
            xs += [shot.start - eps, shot.start + eps]
        else:
            r0 = tr[0]
            xs += [tr[0] - 1.0, float(tr[1])]
        ws += [0.0, 1.0]
    if i < len(spec.shots) - 1:
        tr = spec.transitions[i]
        if tr is None:
            xs += [shot.end - eps, shot.end + eps]
        else:
            r1 = tr[1]
            xs += [tr[0] - 1.0, float(tr[1])]
        ws += [1.0, 0.0]
    if not xs:
        xs, ws = [0.0], [1.0]
    return r0, r1, xs, ws


def render_trailer(spec: TrailerSpec) -> tuple[np.ndarray, np.ndarray]:
    """The trailer's frames ``(N, H, W, 3) uint8`` and mono float32 audio at ``spec.audio_rate``."""
    N, W, H, fps, rate = spec.num_frames, spec.width, spec.height, spec.fps, spec.audio_rate
    frames = np.empty((N, H, W, 3), np.uint8)
    n_samples = int(round(N / fps * rate))
    audio = np.zeros(n_samples, np.float32)
    prev: tuple[int, np.ndarray] | None = None
    for i, shot in enumerate(spec.shots):
        r0, r1, xs, ws = _frame_weights(spec, i)
        imgs = render_shot(shot.style, np.arange(r0, r1, dtype=np.float32) - shot.start, W, H, fps)
        lo = shot.start if i == 0 or spec.transitions[i - 1] is None else spec.transitions[i - 1][1]
        hi = shot.end if i == len(spec.shots) - 1 or spec.transitions[i] is None else spec.transitions[i][0]
        frames[lo:hi] = _to_uint8(imgs[lo - r0 : hi - r0])
        if i > 0 and spec.transitions[i - 1] is not None and prev is not None:
            d0, d1 = spec.transitions[i - 1]
            p0, pimgs = prev
            alpha = ((np.arange(d0, d1) - d0 + 1) / (d1 - d0 + 1)).astype(np.float32)[:, None, None, None]
            a_part, b_part = pimgs[d0 - p0 : d1 - p0], imgs[d0 - r0 : d1 - r0]
            frames[d0:d1] = _to_uint8(a_part + (b_part - a_part) * alpha)
        prev = (r0, imgs)
        # audio over the shot's range, widened by the hard-cut ramps
        s0 = max(0, int(np.floor((min(xs[0], r0) - 1) / fps * rate)))
        s1 = min(n_samples, int(np.ceil((max(xs[-1], r1) + 1) / fps * rate)))
        if s1 > s0:
            pos = np.arange(s0, s1) / rate * fps  # in frames
            w = np.interp(pos, xs, ws).astype(np.float32)
            nz = np.nonzero(w)[0]
            if len(nz):
                a0, a1 = s0 + nz[0], s0 + nz[-1] + 1
                snd = render_audio(shot.style, a1 - a0, rate, a0 / rate - shot.start / fps)
                audio[a0:a1] += snd * w[nz[0] : nz[-1] + 1]
    fade = min(len(audio) // 2, int(0.02 * rate))
    if fade:
        ramp = np.linspace(0, 1, fade, dtype=np.float32)
        audio[:fade] *= ramp
        audio[-fade:] *= ramp[::-1]
    np.clip(audio, -1, 1, out=audio)
    return frames, audio


def rgb_to_yuv420p(frames: np.ndarray) -> np.ndarray:
    """RGB uint8 ``(N, H, W, 3)`` to planar yuv420p ``(N, H * 3 // 2, W)`` (BT.601, limited range).

    Done here so the encoder gets exactly these samples, whatever the
    FFmpeg/swscale build would pick for an implicit conversion.
    """
    x = frames.astype(np.float32)
    n, h, w, _ = x.shape
    hw = h * w
    flat = np.empty((n, hw * 3 // 2), np.uint8)  # Y plane, then U and V planes at half size

    def put(lo: int, hi: int, v: np.ndarray) -> None:
        np.clip(v + 0.5, 0, 255, out=v)
        flat[:, lo:hi] = v.reshape(n, hi - lo)  # truncation after +0.5 rounds

    put(0, hw, 16.0 + x @ (np.array([65.481, 128.553, 24.966], np.float32) / 255))
    # chroma from the 2x2 block means (the transform is linear, so average first)
    m = (x[:, 0::2, 0::2] + x[:, 1::2, 0::2] + x[:, 0::2, 1::2] + x[:, 1::2, 1::2]) * 0.25
    q = hw // 4
    put(hw, hw + q, 128.0 + m @ (np.array([-37.797, -74.203, 112.0], np.float32) / 255))
    put(hw + q, hw + 2 * q, 128.0 + m @ (np.array([112.0, -93.786, -18.214], np.float32) / 255))
    return flat.reshape(n, h * 3 // 2, w)


def write_trailer(path: str | Path, spec: TrailerSpec, crf: int = 20, cuts: bool = True) -> dict[str, Any]:
    """Render ``spec`` to an H.264/AAC mp4 at ``path`` (and ``<stem>.cuts.json`` beside it); returns the ground truth."""
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if spec.width % 2 or spec.height % 2:
        raise ValueError(f"width and height must be even for yuv420p, got {spec.width}x{spec.height}")
    frames, audio = render_trailer(spec)
    rate = spec.audio_rate
    with av.open(str(path), "w", format="mp4") as out:
        # mbtree off: with it, this x264 build's output varies from call to call
        # (history dependent); without it, files are bit-exact for a given spec.
        options = {"crf": str(crf), "preset": "veryfast", "x264-params": "mbtree=0"}
        vs = out.add_stream("libx264", rate=Fraction(spec.fps), options=options)
        vs.width, vs.height, vs.pix_fmt = spec.width, spec.height, "yuv420p"
        vs.codec_context.thread_count = 1
        vs.codec_context.time_base = Fraction(1, spec.fps)
        ast = out.add_stream("aac", rate=rate, layout="mono")
        # Encode the whole video, then the whole audio, then mux the packets in time order.
        yuv = rgb_to_yuv420p(frames)
        vframes = []
        packets = []
        for fi in range(len(yuv)):
            vf = av.VideoFrame.from_ndarray(yuv[fi], format="yuv420p")
            vf.pts = fi
            vframes.append(vf)  # alive until the encoder is flushed
            packets += vs.encode(vf)
        packets += vs.encode()
        step = ast.codec_context.frame_size or 1024
        for s0 in range(0, len(audio), step):
            af = av.AudioFrame.from_ndarray(audio[s0 : s0 + step].reshape(1, -1), format="fltp", layout="mono")
            af.sample_rate = rate
            af.pts = s0
            packets += ast.encode(af)
        packets += ast.encode()
        packets.sort(key=lambda pk: (float(pk.dts * pk.time_base) if pk.dts is not None else 0.0, pk.stream.index))
        for pk in packets:
            out.mux(pk)
        del vframes
    truth = spec.ground_truth()
    if cuts:
        atomic_write_text(cuts_path(path), json.dumps(truth))
    return truth


def cuts_path(video_path: str | Path) -> Path:
    """``<dir>/<stem>.cuts.json`` for ``<dir>/<stem>.mp4``."""
    p = Path(video_path)
    return p.with_name(p.stem + ".cuts.json")


def generate_cut_video(
    path: str | Path,
    n_shots: int = 12,
    fps: int = 12,
    size: tuple[int, int] = (160, 96),
    seed: int = 0,
    dissolves: bool = True,
    dissolve_prob: float = 0.3,
    audio_rate: int = 16000,
) -> dict[str, Any]:
    """A trailer-like video with exactly ``n_shots`` shots, for testing shot segmenters.

    Writes ``path`` and ``<stem>.cuts.json`` and returns the ground truth (see
    the module docstring for its format).
    """
    spec = make_trailer_spec(
        Path(path).stem,
        [seed, 1_000_003],
        fps=fps,
        size=size,
        audio_rate=audio_rate,
        n_shots=n_shots,
        dissolve_prob=dissolve_prob if dissolves else 0.0,
    )
    return write_trailer(path, spec)


# ---------------------------------------------------------------------------
# The dataset source


def _split_names(n: int, seed: int, fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)) -> list[str]:
    n_val, n_test = round(n * fractions[1]), round(n * fractions[2])
    if n >= 3:
        n_val, n_test = max(1, n_val), max(1, n_test)
    order = np.random.default_rng([seed, 424242]).permutation(n)
    names = ["train"] * n
    for rank, idx in enumerate(order):
        if rank < n_val:
            names[idx] = "val"
        elif rank < n_val + n_test:
            names[idx] = "test"
    return names


class SyntheticTrailers(DatasetSource):
    """Synthetic MMX-Trailer-20-style trailers (20 genres, 1-4 per trailer), generated once and cached.

    Each trailer is a sequence of short shots (hard cuts and some dissolves)
    whose look, layout, motion and sound follow the styles of its genres, with
    noise, so genre is learnable from every modality but given away by none.
    Videos are H.264/AAC mp4 files written with PyAV; beside each one is
    ``<id>.cuts.json`` with the exact shot boundaries, and the folder holds a
    ``labels.csv`` (`video,labels,split`).  Needs no download; the default 96
    trailers (enough for about 14 test trailers) build in about 30 s on 2 CPU cores.
    """

    name = "synthetic_trailers"
    version = GENERATOR_VERSION

    class Config(Config):
        n: int = Field(96, ge=1, le=100_000, description="number of trailers")
        seed: int = Field(0, description="seed of everything drawn: genres, shots, styles, splits")
        min_seconds: float = Field(10.0, gt=0, description="shortest trailer in seconds")
        max_seconds: float = Field(20.0, gt=0, description="longest trailer in seconds")
        width: int = Field(160, ge=32, le=1920, description="frame width in pixels (even)")
        height: int = Field(96, ge=32, le=1080, description="frame height in pixels (even)")
        fps: int = Field(12, ge=4, le=60, description="frames per second")
        audio_rate: int = Field(16000, ge=8000, le=48000, description="audio sample rate in Hz (mono AAC)")
        dissolve_prob: float = Field(
            0.15,
            ge=0,
            le=1,
            description="chance that a transition is a dissolve, where both shots are long enough for one; else a hard cut",
        )
        style_noise: float = Field(
            0.25, ge=0, le=1, description="probability that a style group (look, layout, motion, audio) of a shot comes from a random genre"
        )
        root: Path | None = Field(
            None,
            description="dataset folder (new, empty, or holding this same dataset); "
            "default <cache>/datasets/synthetic_trailers/<hash of this config>",
        )
        workers: int = Field(0, ge=0, le=64, description="processes used to generate; 0 uses up to 2 (output does not depend on it)")

        @field_validator("width", "height")
        @classmethod
        def _even(cls, v: int) -> int:
            if v % 2:
                raise ValueError(f"must be even (H.264 yuv420p), got {v}")
            return v

        @model_validator(mode="after")
        def _durations(self) -> SyntheticTrailers.Config:
            if self.max_seconds < self.min_seconds:
                raise ValueError(f"max_seconds ({self.max_seconds}) < min_seconds ({self.min_seconds})")
            if self.min_seconds < MIN_SHOT_SECONDS:
                raise ValueError(f"min_seconds must be at least one shot ({MIN_SHOT_SECONDS} s), got {self.min_seconds}")
            return self

    @classmethod
    def example_config(cls, tmp_path: Path) -> dict[str, Any]:
        return {"n": 3, "min_seconds": 3.0, "max_seconds": 4.0, "root": str(Path(tmp_path) / "synthetic_trailers")}

    # -- location ------------------------------------------------------------
    def key(self) -> str:
        """Hash of everything that determines the generated files."""
        return hash_key(self.name, GENERATOR_VERSION, self.config.model_dump(mode="json", exclude={"root", "workers"}))

    def dataset_dir(self) -> Path:
        return generated_dataset_dir(self.name, self.key(), self.config.root)

    def trailer_spec(self, index: int) -> TrailerSpec:
        """The spec of trailer ``index`` (independent of ``n``)."""
        c = self.config
        rng = np.random.default_rng([c.seed, index, 17])
        frames = int(round(rng.uniform(c.min_seconds, c.max_seconds) * c.fps))
        primary = GENRES[int(np.random.default_rng([c.seed, 99]).permutation(len(GENRES))[index % len(GENRES)])]
        return make_trailer_spec(
            f"trailer_{index:04d}",
            [c.seed, index],
            fps=c.fps,
            size=(c.width, c.height),
            audio_rate=c.audio_rate,
            num_frames=max(frames, 1),
            primary=primary,
            dissolve_prob=c.dissolve_prob,
            style_noise=c.style_noise,
        )

    # -- generation ----------------------------------------------------------
    def ensure(self) -> Path:
        """Generate the dataset unless a complete copy exists; returns its folder."""
        info = {"generator_version": GENERATOR_VERSION, "config": self.config.model_dump(mode="json", exclude={"root", "workers"})}
        return ensure_generated(self.name, self.key(), self._generate, root=self.config.root, info=info)

    def _generate(self, folder: Path) -> None:
        n = self.config.n
        workers = self.config.workers or min(2, os.cpu_count() or 1)
        workers = max(1, min(workers, n))
        if workers > 1:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor
            from concurrent.futures.process import BrokenProcessPool

            ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else None
            try:
                pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=die_with_parent, initargs=(os.getpid(),))
                try:
                    results = list(pool.map(_write_one, [(self.config, i, str(folder)) for i in range(n)], chunksize=1))
                except BaseException:
                    # SIGTERM/SIGINT (or an error) in the parent: stop the workers now instead of
                    # waiting for their trailers; the temporary folder is removed by ensure().
                    _terminate_pool(pool)
                    raise
                pool.shutdown(wait=True)
            except (OSError, BrokenProcessPool) as e:  # no usable process pool here: do it in this process
                log.warning("synthetic_trailers: process pool failed (%s); generating in one process", e)
                workers = 1
        if workers <= 1:
            results = [_write_one((self.config, i, str(folder))) for i in range(n)]
        splits = _split_names(n, self.config.seed)
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["video", "labels", "split"])
        for (vid, labels), split in zip(results, splits, strict=True):
            w.writerow([f"{vid}.mp4", "|".join(labels), split])
        atomic_write_text(folder / "labels.csv", buf.getvalue())

    # -- DatasetSource ---------------------------------------------------------
    def items(self) -> list[Video]:
        folder = self.ensure()
        out = []
        with open(folder / "labels.csv", newline="") as f:
            for row in csv.DictReader(f):
                path = folder / row["video"]
                vid = Path(row["video"]).stem
                out.append(
                    Video(
                        id=vid,
                        path=path,
                        labels=[x for x in row["labels"].split("|") if x],
                        split=row["split"] or None,
                        metadata={"cuts": str(cuts_path(path)), "synthetic": True},
                    )
                )
        return out

    def vocabulary(self) -> list[str]:
        return list(GENRES)


def die_with_parent(parent_pid: int) -> None:
    """Worker initializer: the worker gets SIGKILL when the parent dies, even by SIGKILL
    (Linux ``prctl(PR_SET_PDEATHSIG)``); elsewhere a watchdog thread exits once the parent is gone."""
    import signal
    import sys
    import threading

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to the parent, which stops the pool
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG = 1
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent_pid:
                os._exit(1)

    threading.Thread(target=watch, daemon=True, name="moviekit-parent-watch").start()


def _terminate_pool(pool: Any) -> None:
    """Cancel what is queued and kill the pool's worker processes at once."""
    processes = list(getattr(pool, "_processes", {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for p in processes:
        if p.is_alive():
            p.kill()
    for p in processes:
        p.join(timeout=5)


def _write_one(args: tuple[SyntheticTrailers.Config, int, str]) -> tuple[str, list[str]]:
    config, index, folder = args
    src = SyntheticTrailers(config)
    spec = src.trailer_spec(index)
    write_trailer(Path(folder) / f"{spec.id}.mp4", spec)
    return spec.id, spec.labels


@hookimpl
def register_components(register):
    register(SyntheticTrailers)
