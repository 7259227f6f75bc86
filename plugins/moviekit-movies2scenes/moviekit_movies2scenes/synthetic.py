"""``synthetic_movies``: seeded movies made of scenes made of shots, with the metadata Movies2Scenes learns from.

What is drawn, per dataset seed:

* **Places** (:func:`places.place_labels`, a subset of the MovieCLIP taxonomy) each have a look:
  sky and floor hues, a floor texture (stripe frequency and orientation), a landmark (shape,
  hue, position) and a horizon height.  Every scene jitters the look and every shot has its own
  camera (zoom, pan, brightness), so a place is recognisable but varied.
* **Taste clusters** (latent, ``n_clusters``): each has preferred places, core genres, synopsis
  vocabulary and a *theme*: how the characters move (chase, orbit, bounce, pulse) and how fast the
  scene is cut.  The theme is in the motion between frames and the rhythm of shots, which a single
  frame (and so an average of per-frame embeddings) does not show.
* **Movies** belong to a cluster.  Each has a colour grading (per-channel gains and an offset: the
  film stock / colour timing) and a cast colour: movie-level appearance that is *not* about the
  place or the theme, so that appearance similarity favours scenes of the same movie.  A scene's
  place comes from the cluster's preferred places with probability ``theme_strength``; some scenes
  end in a second place (two place tags).  Genres (1-3), year, a synopsis sentence and a like ratio
  follow the cluster, with noise.  Co-watch pairs are drawn within a cluster with probability
  ``cowatch_in`` and across clusters with ``cowatch_out``.

Ground truth beside each ``<id>.mp4`` in ``<id>.m2s.json``::

    {"fps": 8, "num_frames": 380, "cluster": 2,
     "shots": [[0, 12], [12, 25], ...],            # half-open frame ranges tiling the video
     "scenes": [{"shots": [0, 4], "start_frame": 0, "end_frame": 50, "places": ["prison"], "activity": "chase"}, ...],
     "genres": [...], "synopsis": "...", "year": 1994, "like_ratio": 0.71}

The folder also holds ``movies.csv`` (``movie,genres,synopsis,year,split``; the table the
``movie_folder`` source reads), ``cowatch.csv`` (``movie_a,movie_b``) and ``labels.csv``
(``video,labels,split``; ``video_folder``'s format).  Generated once per config and cached like the
core's ``synthetic_trailers`` (``<cache>/datasets/synthetic_movies/<hash>``).
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field, field_validator

import moviekit
from moviekit import Config, DatasetSource, Video

from .places import place_labels

#: Bump when the generated files change, so cached datasets are rebuilt.
GENERATOR_VERSION = "1"

GENRES = ("Action", "Comedy", "Crime", "Drama", "Horror", "Romance", "Sci-Fi", "Thriller", "War", "Sport")
MOTIONS = ("chase", "orbit", "bounce", "pulse")
TOPICS = (
    ("heist", "crew", "vault", "getaway", "safecracker", "double-cross"),
    ("romance", "letters", "summer", "heart", "wedding", "reunion"),
    ("war", "soldiers", "front", "honour", "platoon", "ceasefire"),
    ("haunting", "house", "curse", "night", "ghost", "ritual"),
    ("space", "station", "signal", "astronaut", "orbit", "colony"),
    ("match", "team", "coach", "final", "season", "rival"),
)
ADJECTIVES = ("gripping", "quiet", "sprawling", "tender", "bleak", "playful", "tense", "sweeping")


@dataclass
class PlaceStyle:
    sky_hue: float
    floor_hue: float
    stripe_freq: float
    stripe_angle: float
    landmark: str
    landmark_hue: float
    landmark_pos: tuple[float, float]
    horizon: float


@dataclass
class ClusterTheme:
    places: list[int]
    genres: list[int]
    topic: int
    motion: str
    speed: float
    shot_seconds: tuple[float, float]


@dataclass
class MovieSpec:
    id: str
    cluster: int
    genres: list[str]
    synopsis: str
    year: int
    like_ratio: float
    gain: np.ndarray
    offset: float
    cast_hue: float
    fps: int
    width: int
    height: int
    shots: list[tuple[int, int]] = field(default_factory=list)
    shot_looks: list[dict[str, Any]] = field(default_factory=list)
    scenes: list[dict[str, Any]] = field(default_factory=list)

    @property
    def num_frames(self) -> int:
        return self.shots[-1][1] if self.shots else 0

    def ground_truth(self) -> dict[str, Any]:
        return {
            "fps": self.fps, "num_frames": self.num_frames, "cluster": self.cluster,
            "shots": [list(s) for s in self.shots], "scenes": self.scenes,
            "genres": self.genres, "synopsis": self.synopsis, "year": self.year, "like_ratio": self.like_ratio,
        }  # fmt: skip


def place_styles(n: int, seed: int) -> list[PlaceStyle]:
    """The look of each of ``n`` places (spread hues so places differ, seeded)."""
    rng = np.random.default_rng([seed, 7001])
    hues = (np.arange(n) / n + rng.uniform(0, 1)) % 1.0
    floor = rng.permutation(hues)
    shapes = ("rect", "disc", "tri", "bar")
    return [
        PlaceStyle(
            sky_hue=float(hues[i]),
            floor_hue=float(floor[i]),
            stripe_freq=float(rng.uniform(2, 9)),
            stripe_angle=float(rng.uniform(0, np.pi)),
            landmark=shapes[i % len(shapes)],
            landmark_hue=float(rng.uniform()),
            landmark_pos=(float(rng.uniform(0.2, 0.8)), float(rng.uniform(0.25, 0.6))),
            horizon=float(rng.uniform(0.3, 0.7)),
        )  # fmt: skip
        for i in range(n)
    ]


def cluster_themes(n_clusters: int, n_places: int, seed: int, places_per_cluster: int = 3) -> list[ClusterTheme]:
    rng = np.random.default_rng([seed, 7002])
    order = rng.permutation(n_places)
    themes = []
    for c in range(n_clusters):
        prefs = [int(order[(c * places_per_cluster + k) % n_places]) for k in range(places_per_cluster)]
        lo = float(rng.uniform(0.8, 1.6))
        themes.append(
            ClusterTheme(
                places=prefs,
                genres=[int(g) for g in rng.choice(len(GENRES), 2, replace=False)],
                topic=c % len(TOPICS),
                motion=MOTIONS[c % len(MOTIONS)],
                speed=float(rng.uniform(0.6, 1.4)),
                shot_seconds=(lo, lo + 0.6),
            )  # fmt: skip
        )
    return themes


def _synopsis(rng: np.random.Generator, theme: ClusterTheme, noise: float) -> str:
    def word(k: int) -> str:
        topic = theme.topic if rng.uniform() > noise else int(rng.integers(len(TOPICS)))
        return TOPICS[topic][int(rng.integers(len(TOPICS[topic])))] if k >= 0 else ""

    adj = ADJECTIVES[int(rng.integers(len(ADJECTIVES)))]
    return f"A {adj} story of {word(0)} and {word(1)}, where the {word(2)} leads to a {word(3)} before the {word(4)}."


def hsv(h: Any, s: Any, v: Any) -> np.ndarray:
    """HSV in [0, 1] to RGB in [0, 1] (broadcasting)."""
    h = np.asarray(h, dtype=np.float32) % 1.0
    s, v = np.asarray(s, np.float32), np.asarray(v, np.float32)
    i = np.floor(h * 6).astype(int) % 6
    f = h * 6 - np.floor(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    r = np.choose(i, [v, q, p, p, t, v])
    g = np.choose(i, [t, v, v, q, p, p])
    b = np.choose(i, [p, p, t, v, v, q])
    return np.stack([r, g, b], axis=-1)


def render_shot(look: dict[str, Any], style: PlaceStyle, spec: MovieSpec, n_frames: int, motion: str, speed: float) -> np.ndarray:
    """``(n, H, W, 3) uint8`` frames of one shot."""
    h, w = spec.height, spec.width
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    u = (xx / w - 0.5) / look["zoom"] + 0.5 + look["pan"]
    v = (yy / h - 0.5) / look["zoom"] + 0.5
    hue = look["hue_shift"]
    sky = hsv(style.sky_hue + hue, 0.45, 0.55 + 0.4 * (1 - v))
    stripes = 0.5 + 0.5 * np.sin(
        2 * np.pi * style.stripe_freq * (u * np.cos(style.stripe_angle) + v * np.sin(style.stripe_angle)) + look["phase"]
    )
    floor = hsv(style.floor_hue + hue, 0.6, 0.35 + 0.35 * stripes)
    img = np.where((v > style.horizon)[..., None], floor, sky)
    lx, ly = style.landmark_pos
    du, dv = u - lx, v - ly
    if style.landmark == "rect":
        m = (np.abs(du) < 0.12) & (np.abs(dv) < 0.16)
    elif style.landmark == "disc":
        m = du**2 + dv**2 < 0.13**2
    elif style.landmark == "tri":
        m = (dv > -0.15) & (dv < 0.15) & (np.abs(du) < (dv + 0.15) * 0.6)
    else:
        m = (np.abs(du) < 0.04) & (np.abs(dv) < 0.3)
    img = np.where(m[..., None], hsv(style.landmark_hue + hue, 0.8, 0.85), img)
    img = img * look["brightness"]
    frames = np.repeat(img[None], n_frames, axis=0)
    # the characters: discs of the cast colour moving as the theme says
    t = np.arange(n_frames, dtype=np.float32) / spec.fps
    cast = hsv(spec.cast_hue, 0.9, 0.95)
    for k in range(look["characters"]):
        ph = look["start"] + 0.5 * k
        s = speed * look["tempo"]
        if motion == "chase":
            cx, cy = (ph + 0.35 * s * t + 0.12 * k) % 1.2 - 0.1, np.full_like(t, 0.7 - 0.05 * k)
        elif motion == "orbit":
            cx, cy = 0.5 + 0.25 * np.cos(2 * np.pi * (0.4 * s * t + ph)), 0.55 + 0.2 * np.sin(2 * np.pi * (0.4 * s * t + ph))
        elif motion == "bounce":
            cx, cy = np.full_like(t, 0.3 + 0.4 * (ph % 1.0)), 0.45 + 0.3 * np.abs(np.sin(2 * np.pi * 0.5 * s * t + ph))
        else:  # pulse: still, growing and shrinking
            cx, cy = np.full_like(t, 0.3 + 0.4 * (ph % 1.0)), np.full_like(t, 0.6)
        r = look["size"] * (1 + (0.5 * np.sin(2 * np.pi * 0.7 * s * t + ph) if motion == "pulse" else np.zeros_like(t)))
        for i in range(n_frames):
            m = ((xx / w - cx[i]) ** 2 + ((yy / h - cy[i]) * h / w) ** 2) < r[i] ** 2
            frames[i][m] = cast
    graded = frames * spec.gain + spec.offset
    return (np.clip(graded, 0, 1) * 255 + 0.5).astype(np.uint8)


def make_movie_spec(index: int, cfg: SyntheticMovies.Config, cluster: int, themes: list[ClusterTheme]) -> MovieSpec:
    rng = np.random.default_rng([cfg.seed, index, 7003])
    theme = themes[cluster]
    n_places = len(place_labels(cfg.places))
    grad = cfg.grading
    genres = [GENRES[theme.genres[0] if rng.uniform() < 0.8 else int(rng.integers(len(GENRES)))]]
    for _ in range(int(rng.integers(0, 3))):
        g = GENRES[int(rng.choice(theme.genres)) if rng.uniform() < 0.7 else int(rng.integers(len(GENRES)))]
        if g not in genres:
            genres.append(g)
    spec = MovieSpec(
        id=f"movie_{index:04d}", cluster=cluster, genres=genres, synopsis=_synopsis(rng, theme, cfg.synopsis_noise),
        year=int(rng.integers(1970, 2021)), like_ratio=float(np.clip(0.5 + 0.1 * (cluster % 4) + rng.normal(0, 0.08), 0, 1)),
        gain=(1 + grad * rng.uniform(-0.35, 0.35, 3)).astype(np.float32), offset=float(grad * rng.uniform(-0.12, 0.12)),
        cast_hue=float(rng.uniform()), fps=cfg.fps, width=cfg.width, height=cfg.height,
    )  # fmt: skip
    n_scenes = int(rng.integers(cfg.min_scenes, cfg.max_scenes + 1))
    frame = 0
    for _ in range(n_scenes):

        def draw_place() -> int:
            return int(rng.choice(theme.places)) if rng.uniform() < cfg.theme_strength else int(rng.integers(n_places))

        place = draw_place()
        n_shots = int(rng.integers(cfg.min_shots, cfg.max_shots + 1))
        second = None
        if rng.uniform() < cfg.two_place_prob and n_shots >= 3:
            second = draw_place()
            second = None if second == place else second
        scene_look = {"hue_shift": float(rng.normal(0, 0.03)), "phase": float(rng.uniform(0, 2 * np.pi))}
        first_shot, start = len(spec.shots), frame
        for k in range(n_shots):
            lo, hi = theme.shot_seconds
            length = max(4, int(round(rng.uniform(lo, hi) * cfg.fps)))
            p = second if (second is not None and k >= n_shots - 1) else place
            look = {
                **scene_look, "place": p, "zoom": float(rng.uniform(0.75, 1.35)), "pan": float(rng.uniform(-0.2, 0.2)),
                "brightness": float(rng.uniform(0.75, 1.1)), "characters": int(rng.integers(1, 3)),
                "start": float(rng.uniform()), "tempo": float(rng.uniform(0.8, 1.25)), "size": float(rng.uniform(0.05, 0.09)),
            }  # fmt: skip
            spec.shots.append((frame, frame + length))
            spec.shot_looks.append(look)
            frame += length
        labels = place_labels(cfg.places)
        tags = [labels[place]] + ([labels[second]] if second is not None else [])
        spec.scenes.append(
            {"shots": [first_shot, len(spec.shots)], "start_frame": start, "end_frame": frame, "places": tags, "activity": theme.motion}
        )
    return spec


def render_movie(spec: MovieSpec, cfg: SyntheticMovies.Config, themes: list[ClusterTheme]) -> np.ndarray:
    styles = place_styles(len(place_labels(cfg.places)), cfg.seed)
    theme = themes[spec.cluster]
    parts = []
    for (s, e), look in zip(spec.shots, spec.shot_looks, strict=True):
        parts.append(render_shot(look, styles[look["place"]], spec, e - s, theme.motion, theme.speed))
    return np.concatenate(parts)


def write_mp4(path: Path, frames: np.ndarray, fps: int, crf: int = 23) -> None:
    """``(T, H, W, 3) uint8`` frames as an H.264 mp4 (no audio): the core's shared writer at this source's quality."""
    moviekit.write_mp4(path, frames, fps, crf)


class SyntheticMovies(DatasetSource):
    """Synthetic movies (scenes of shots at MovieCLIP places) with genres, synopses and co-watch pairs; generated once and cached.

    Movies of a latent taste cluster share places, genres, synopsis words and a *theme* (how the
    characters move, how fast scenes are cut) that single frames do not show, while each movie has
    its own colour grading and cast, so appearance alone points to the same movie rather than to a
    similar one.  Ground truth (shots, scenes, place tags per scene) is in `<id>.m2s.json` beside each
    video; item metadata carries `genres`, `synopsis`, `year`, `cowatch` (ids) and `scenes`.
    The default 48 movies (about 1,500 shots) build in about a minute on 2 CPU cores.
    """

    name = "synthetic_movies"
    version = GENERATOR_VERSION
    returns = "Video items (movies) with metadata: genres, synopsis, year, cowatch, scenes"

    class Config(Config):
        n: int = Field(48, ge=2, le=100_000, description="number of movies")
        seed: int = Field(0, description="seed of everything drawn")
        n_clusters: int = Field(4, ge=1, le=64, description="latent taste clusters")
        places: int = Field(12, ge=2, le=12, description="number of place labels used (from the plugin's MovieCLIP subset)")
        min_scenes: int = Field(6, ge=1)
        max_scenes: int = Field(9, ge=1)
        min_shots: int = Field(3, ge=1, description="fewest shots per scene")
        max_shots: int = Field(5, ge=1, description="most shots per scene")
        theme_strength: float = Field(0.7, ge=0, le=1, description="chance that a scene's place is one of its cluster's preferred places")
        two_place_prob: float = Field(0.2, ge=0, le=1, description="chance that a scene's last shot is at a second place (two tags)")
        grading: float = Field(1.0, ge=0, le=3, description="strength of each movie's colour grading (0: none)")
        synopsis_noise: float = Field(0.25, ge=0, le=1, description="chance that a synopsis word comes from another cluster's topic")
        cowatch_in: float = Field(0.5, ge=0, le=1, description="chance that two movies of one cluster are a co-watch pair")
        cowatch_out: float = Field(0.02, ge=0, le=1, description="chance that two movies of different clusters are a co-watch pair")
        width: int = Field(64, ge=32, le=1920, description="frame width (even)")
        height: int = Field(48, ge=32, le=1080, description="frame height (even)")
        fps: int = Field(8, ge=4, le=60)
        split_fractions: tuple[float, float, float] = Field((0.7, 0.15, 0.15), description="train/val/test fractions of the movies")
        root: Path | None = Field(None, description="dataset folder; default <cache>/datasets/synthetic_movies/<hash of this config>")
        workers: int = Field(0, ge=0, le=64, description="processes used to generate; 0 uses up to 2 (output does not depend on it)")

        @field_validator("width", "height")
        @classmethod
        def _even(cls, v: int) -> int:
            if v % 2:
                raise ValueError(f"must be even (H.264 yuv420p), got {v}")
            return v

    @classmethod
    def example_config(cls, tmp_path: Path) -> dict[str, Any]:
        return {"n": 4, "min_scenes": 2, "max_scenes": 2, "root": str(Path(tmp_path) / "synthetic_movies")}

    def key(self) -> str:
        import hashlib

        payload = json.dumps(
            [self.name, GENERATOR_VERSION, self.config.model_dump(mode="json", exclude={"root", "workers"})], sort_keys=True
        )
        return hashlib.sha256(payload.encode()).hexdigest()

    def dataset_dir(self) -> Path:
        return moviekit.generated_dataset_dir(self.name, self.key(), self.config.root)

    def clusters(self) -> list[int]:
        """The taste cluster of each movie (balanced, seeded)."""
        c = self.config
        return [int(x) for x in np.random.default_rng([c.seed, 7004]).permutation(np.arange(c.n) % c.n_clusters)]

    def themes(self) -> list[ClusterTheme]:
        c = self.config
        return cluster_themes(c.n_clusters, len(place_labels(c.places)), c.seed)

    def spec(self, index: int) -> MovieSpec:
        return make_movie_spec(index, self.config, self.clusters()[index], self.themes())

    def cowatch_pairs(self) -> list[tuple[int, int]]:
        c = self.config
        rng = np.random.default_rng([c.seed, 7005])
        cl = self.clusters()
        pairs = []
        for i in range(c.n):
            for j in range(i + 1, c.n):
                if rng.uniform() < (c.cowatch_in if cl[i] == cl[j] else c.cowatch_out):
                    pairs.append((i, j))
        linked = {x for p in pairs for x in p}
        for i in range(c.n):  # everyone watched something like it
            mates = [j for j in range(c.n) if j != i and cl[j] == cl[i]]
            if i not in linked and mates:
                j = int(rng.choice(mates))
                pairs.append((min(i, j), max(i, j)))
        return sorted(set(pairs))

    def splits(self) -> list[str]:
        c = self.config
        order = np.random.default_rng([c.seed, 7006]).permutation(c.n)
        n_val, n_test = max(1, round(c.n * c.split_fractions[1])), max(1, round(c.n * c.split_fractions[2]))
        out = ["train"] * c.n
        for rank, i in enumerate(order):
            out[i] = "val" if rank < n_val else "test" if rank < n_val + n_test else "train"
        return out

    # -- generation ----------------------------------------------------------------------
    def ensure(self) -> Path:
        """Generate the dataset unless a complete copy exists; returns its folder."""
        info = {"generator_version": GENERATOR_VERSION, "config": self.config.model_dump(mode="json", exclude={"root", "workers"})}
        return moviekit.ensure_generated(self.name, self.key(), self._generate, root=self.config.root, info=info)

    def _generate(self, folder: Path) -> None:
        n = self.config.n
        workers = max(1, min(self.config.workers or min(2, os.cpu_count() or 1), n))
        args = [(self.config, i, str(folder)) for i in range(n)]
        if workers > 1:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor

            ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else None
            with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
                specs = list(pool.map(_write_one, args, chunksize=1))
        else:
            specs = [_write_one(a) for a in args]
        splits = self.splits()
        movies, labels = io.StringIO(), io.StringIO()
        wm, wl = csv.writer(movies, lineterminator="\n"), csv.writer(labels, lineterminator="\n")
        wm.writerow(["movie", "genres", "synopsis", "year", "like_ratio", "split"])
        wl.writerow(["video", "labels", "split"])
        for gt, split in zip(specs, splits, strict=True):
            wm.writerow([gt["id"], "|".join(gt["genres"]), gt["synopsis"], gt["year"], round(gt["like_ratio"], 4), split])
            wl.writerow([f"{gt['id']}.mp4", "|".join(gt["genres"]), split])
        moviekit.atomic_write_text(folder / "movies.csv", movies.getvalue())
        moviekit.atomic_write_text(folder / "labels.csv", labels.getvalue())
        ids = [gt["id"] for gt in specs]
        moviekit.atomic_write_text(
            folder / "cowatch.csv", "movie_a,movie_b\n" + "".join(f"{ids[i]},{ids[j]}\n" for i, j in self.cowatch_pairs())
        )

    # -- DatasetSource -------------------------------------------------------------------
    def items(self) -> list[Video]:
        from .data import read_movie_table, videos_from_table

        folder = self.ensure()
        table = read_movie_table(folder / "movies.csv")
        videos = videos_from_table(folder, table, folder / "cowatch.csv")
        for v in videos:
            gt = json.loads((folder / f"{v.id}.m2s.json").read_text())
            v.metadata["scenes"] = scenes_in_seconds(gt)
            v.metadata["ground_truth"] = str(folder / f"{v.id}.m2s.json")
        return videos

    def vocabulary(self) -> list[str]:
        return sorted(GENRES)


def scenes_in_seconds(gt: dict[str, Any]) -> list[dict[str, Any]]:
    """The ground truth's scenes as ``{start, end (seconds), places}``, the form tasks read."""
    fps = float(gt["fps"])
    return [
        {
            "start": s["start_frame"] / fps,
            "end": s["end_frame"] / fps,
            "places": list(s["places"]),
            **({"activity": s["activity"]} if "activity" in s else {}),
        }
        for s in gt["scenes"]
    ]


def _write_one(args: tuple[SyntheticMovies.Config, int, str]) -> dict[str, Any]:
    cfg, index, folder = args
    src = SyntheticMovies(cfg)
    themes = src.themes()
    spec = make_movie_spec(index, cfg, src.clusters()[index], themes)
    frames = render_movie(spec, cfg, themes)
    write_mp4(Path(folder) / f"{spec.id}.mp4", frames, cfg.fps)
    gt = {"id": spec.id, **spec.ground_truth()}
    moviekit.atomic_write_text(Path(folder) / f"{spec.id}.m2s.json", json.dumps(gt))
    return gt
