"""The synthetic VidSitu-like world: verbs as motion patterns, stories where context matters.

A movie clip is 10 s of five 2-s events.  In each event an *agent* (a coloured shape) does
something, often to a *patient* (another coloured shape), in a *place* (the background).
A clip tells one story of a hidden **theme** (conflict, friendship, play, work):

* each theme has four **own verbs**, each a motion pattern of its own (16 patterns);
* three **ambiguous motions** (approach, retreat, orbit) exist in every theme, and their verb
  depends on the theme (approach is *attack* in a conflict, *greet* between friends, *tag* in
  play and *deliver* at work): from its own 2 s such an event is one of four verbs, and only
  the other events of the clip (their own verbs give the theme away) decide it;
* two **idle verbs** (stand, wander) can happen in any story; they are unrelated to it.

Place and identities are drawn independently of the theme, so the theme can only be read
from the motions of the other events.  The **event relation** of events 1, 2, 4, 5 to event 3
is fixed by the theme and the slot (:data:`RELATIONS`), and is ``NoRel`` for an idle event:
it too needs the whole clip.  Three annotators label every event; each gives the true verb
with probability ``1 - annotator_noise`` and relations and role words likewise, so several
references exist as in VidSitu's validation set.

Everything here is pure numpy: :func:`draw_clip` draws a clip's spec from a seed and
:func:`render_events` paints its frames.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

THEMES = ("conflict", "friendship", "play", "work")

#: Motion pattern -> verb, per theme, for the themes' own verbs.
OWN_VERBS: dict[str, dict[str, str]] = {
    "conflict": {"push": "shove", "shake": "threaten", "pull": "drag", "swap": "ambush"},
    "friendship": {"jump": "celebrate", "grow": "embrace", "together": "walk with", "circle_cw": "dance"},
    "play": {"zigzag": "dodge", "circle_ccw": "twirl", "blink": "peek", "move_up": "climb"},
    "work": {"move_right": "carry", "move_left": "fetch", "move_down": "dig", "shrink": "pack"},
}
#: Ambiguous motion -> verb per theme: the same 2 s, four verbs.
AMBIGUOUS_VERBS: dict[str, dict[str, str]] = {
    "approach": {"conflict": "attack", "friendship": "greet", "play": "tag", "work": "deliver"},
    "retreat": {"conflict": "flee", "friendship": "part", "play": "hide", "work": "leave"},
    "orbit": {"conflict": "circle", "friendship": "admire", "play": "chase", "work": "inspect"},
}
#: Idle motions: any story, no relation to it.
IDLE_VERBS: dict[str, str] = {"still": "stand", "drift": "wander"}

#: Every motion pattern, in a fixed order.
MOTIONS: tuple[str, ...] = tuple(m for t in THEMES for m in OWN_VERBS[t]) + tuple(AMBIGUOUS_VERBS) + tuple(IDLE_VERBS)


def _verb_motion() -> dict[str, str]:
    out = {v: m for t in THEMES for m, v in OWN_VERBS[t].items()}
    out.update({v: m for m, per in AMBIGUOUS_VERBS.items() for v in per.values()})
    out.update({v: m for m, v in IDLE_VERBS.items()})
    return out


#: Verb -> its motion pattern.
VERB_MOTION: dict[str, str] = _verb_motion()
#: The verb vocabulary (30 verbs), sorted.
VERBS: tuple[str, ...] = tuple(sorted(VERB_MOTION))

RELATION_LABELS = ("Causes", "Enabled By", "NoRel", "Reaction To")
#: Relation of events 1, 2, 4, 5 to event 3, per theme (idle events: NoRel).
RELATIONS: dict[str, tuple[str, str, str, str]] = {
    "conflict": ("Causes", "Causes", "Reaction To", "Reaction To"),
    "friendship": ("Enabled By", "Causes", "Enabled By", "Reaction To"),
    "play": ("Causes", "Enabled By", "Reaction To", "Enabled By"),
    "work": ("Enabled By", "Enabled By", "Enabled By", "Reaction To"),
}

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (230, 40, 40), "green": (40, 210, 60), "blue": (50, 80, 240),
    "yellow": (240, 230, 40), "magenta": (230, 50, 220), "cyan": (40, 230, 230),
}  # fmt: skip
SHAPES = ("square", "disk", "diamond", "cross")
#: Place -> (sky colour, ground colour, horizon as a fraction of the height, stripe period in px or 0).
PLACES: dict[str, tuple[tuple[int, int, int], tuple[int, int, int], float, int]] = {
    "forest": ((70, 110, 80), (40, 70, 40), 0.55, 0),
    "beach": ((120, 160, 190), (190, 170, 120), 0.6, 0),
    "city": ((110, 110, 120), (70, 70, 75), 0.5, 6),
    "desert": ((170, 150, 110), (150, 110, 70), 0.45, 0),
    "snow": ((180, 185, 195), (215, 215, 220), 0.65, 0),
    "night": ((25, 25, 50), (45, 40, 60), 0.6, 4),
}
#: Words annotators sometimes use instead (so references differ as in VidSitu).
SYNONYMS: dict[str, str] = {
    "red": "crimson", "green": "lime", "blue": "navy", "yellow": "gold", "magenta": "pink", "cyan": "teal",
    "square": "box", "disk": "ball", "diamond": "gem", "cross": "plus",
    "forest": "woods", "beach": "shore", "city": "street", "desert": "dunes", "snow": "ice", "night": "dark",
}  # fmt: skip


@dataclass
class EventSpec:
    verb: str
    motion: str
    context_dependent: bool
    #: per annotator: verb, relation to event 3 (None for event 3), role dict
    verbs: list[str] = field(default_factory=list)
    relations: list[str | None] = field(default_factory=list)
    args: list[dict[str, str]] = field(default_factory=list)
    relation: str | None = None
    #: drawn motion parameters (start positions, speed, size)
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class ClipSpec:
    id: str
    theme: str
    place: str
    agent: tuple[str, str]  # (colour, shape)
    patient: tuple[str, str]
    events: list[EventSpec]


def _phrase(rng: np.random.Generator, words: list[str], noise: float) -> str:
    return " ".join(SYNONYMS[w] if w in SYNONYMS and rng.random() < noise else w for w in words)


def _motion_params(rng: np.random.Generator) -> dict[str, Any]:
    a = rng.uniform(0.25, 0.45, 2)
    p = rng.uniform(0.55, 0.75, 2)
    if rng.random() < 0.5:  # the agent on either side
        a[0], p[0] = 1 - a[0], 1 - p[0]
    return {"a0": a.tolist(), "p0": p.tolist(), "speed": float(np.exp(rng.normal(0, 0.15))), "size": float(np.exp(rng.normal(0, 0.1)))}


def draw_clip(
    seed: list[int] | int, clip_id: str, p_ambiguous: float = 0.35, p_idle: float = 0.1, annotators: int = 3, annotator_noise: float = 0.1
) -> ClipSpec:
    """The story of one clip: theme, identities, place and five annotated events."""
    rng = np.random.default_rng(seed)
    theme = THEMES[int(rng.integers(len(THEMES)))]
    place = list(PLACES)[int(rng.integers(len(PLACES)))]
    ids = rng.choice(len(COLOURS) * len(SHAPES), size=2, replace=False)
    agent, patient = ((list(COLOURS)[i // len(SHAPES)], SHAPES[i % len(SHAPES)]) for i in ids)
    while True:
        kinds = []
        for slot in range(5):
            r = rng.random()
            kind = "ambiguous" if r < p_ambiguous else "idle" if r < p_ambiguous + p_idle and slot != 2 else "own"
            kinds.append(kind)
        if kinds.count("own") >= 1:  # the theme shows somewhere
            break
    events = []
    for slot, kind in enumerate(kinds):
        if kind == "own":
            motion = list(OWN_VERBS[theme])[int(rng.integers(4))]
            verb = OWN_VERBS[theme][motion]
        elif kind == "ambiguous":
            motion = list(AMBIGUOUS_VERBS)[int(rng.integers(len(AMBIGUOUS_VERBS)))]
            verb = AMBIGUOUS_VERBS[motion][theme]
        else:
            motion = list(IDLE_VERBS)[int(rng.integers(len(IDLE_VERBS)))]
            verb = IDLE_VERBS[motion]
        relation = None if slot == 2 else ("NoRel" if kind == "idle" else RELATIONS[theme][slot if slot < 2 else slot - 1])
        ev = EventSpec(verb=verb, motion=motion, context_dependent=kind == "ambiguous", relation=relation, params=_motion_params(rng))
        for _ in range(annotators):
            v = verb
            if rng.random() < annotator_noise:
                v = VERBS[int(rng.integers(len(VERBS)))]
            ev.verbs.append(v)
            rel = relation
            if rel is not None and rng.random() < annotator_noise:
                rel = RELATION_LABELS[int(rng.integers(len(RELATION_LABELS)))]
            ev.relations.append(rel)
            args = {"Arg0": _phrase(rng, list(agent), 0.2)}
            if kind != "idle":
                args["Arg1"] = _phrase(rng, list(patient), 0.2)
            args["AScn"] = _phrase(rng, [place], 0.2)
            ev.args.append(args)
        events.append(ev)
    return ClipSpec(id=clip_id, theme=theme, place=place, agent=agent, patient=patient, events=events)


def _look(rng: np.random.Generator) -> tuple[str, tuple[str, str], tuple[str, str]]:
    place = list(PLACES)[int(rng.integers(len(PLACES)))]
    ids = rng.choice(len(COLOURS) * len(SHAPES), size=2, replace=False)
    agent, patient = ((list(COLOURS)[i // len(SHAPES)], SHAPES[i % len(SHAPES)]) for i in ids)
    return place, agent, patient


def draw_action_clip(seed: list[int] | int, clip_id: str, n_events: int = 3) -> ClipSpec:
    """A Kinetics-like unlabelled clip: one motion (any of :data:`MOTIONS`) in ``n_events`` 2-s shots,
    the same movement in every shot but each with a new look (place, agent and patient).

    What stays the same through such a clip is the action: two clips of it at a temporal
    distance (the positives of contrastive pre-training) share the motion, and the look only
    when they fall in one shot, so telling clips apart needs motion features.
    """
    rng = np.random.default_rng(seed)
    motion = MOTIONS[int(rng.integers(len(MOTIONS)))]
    events = []
    base = _motion_params(rng)
    for _ in range(n_events):
        params = {**base, "look": _look(rng)}
        events.append(EventSpec(verb=motion, motion=motion, context_dependent=False, params=params))
    place, agent, patient = events[0].params["look"]
    return ClipSpec(id=clip_id, theme="", place=place, agent=agent, patient=patient, events=events)


# ---------------------------------------------------------------------------
# Motions: positions of agent and patient over the phase u in [0, 1]


def motion_track(motion: str, u: np.ndarray, a0: np.ndarray, p0: np.ndarray, speed: float = 1.0) -> dict[str, np.ndarray]:
    """Agent and patient centres ``(T, 2)`` (x, y in [0, 1]), agent scale and visibility ``(T,)``."""
    T = len(u)
    a = np.repeat(a0[None], T, 0).astype(np.float64)
    p = np.repeat(p0[None], T, 0).astype(np.float64)
    scale = np.ones(T)
    visible = np.ones(T, bool)
    d = 0.35 * speed
    uu = u[:, None]
    to_p = (p0 - a0) / max(np.linalg.norm(p0 - a0), 1e-6)
    if motion == "move_right":
        a = a + uu * np.array([d, 0])
    elif motion == "move_left":
        a = a - uu * np.array([d, 0])
    elif motion == "move_up":
        a = a - uu * np.array([0, d])
    elif motion == "move_down":
        a = a + uu * np.array([0, d])
    elif motion == "approach":
        a = a0 + uu * (p0 - a0) * 0.75
    elif motion == "retreat":
        a = a0 - uu * to_p * d
    elif motion in ("circle_cw", "circle_ccw"):
        s = 1 if motion == "circle_cw" else -1
        ang = 2 * np.pi * u * speed
        a = a0 + 0.14 * np.stack([np.cos(ang) - 1, s * np.sin(ang)], 1)
    elif motion == "jump":
        a = a0 + np.stack([np.zeros(T), -0.22 * np.abs(np.sin(2 * np.pi * u * speed))], 1)
    elif motion == "shake":
        a = a0 + np.stack([0.07 * np.sin(2 * np.pi * 2 * u), np.zeros(T)], 1)
    elif motion == "grow":
        scale = 1 + 0.9 * u
    elif motion == "shrink":
        scale = 1.5 - 0.9 * u
    elif motion == "push":
        half = np.clip(u * 2, 0, 1)[:, None]
        rest = np.clip(u * 2 - 1, 0, 1)[:, None]
        a = a0 + half * (p0 - a0) * 0.7 + rest * to_p * d * 0.8
        p = p0 + rest * to_p * d * 0.8
    elif motion == "pull":
        a = a0 - uu * to_p * d
        p = p0 - np.clip(u * 1.5 - 0.5, 0, 1)[:, None] * to_p * d
    elif motion == "orbit":
        r = np.linalg.norm(p0 - a0)
        start = np.arctan2(a0[1] - p0[1], a0[0] - p0[0])
        ang = start + 2 * np.pi * u * 0.8
        a = p0 + r * np.stack([np.cos(ang), np.sin(ang)], 1)
    elif motion == "swap":
        a = a0 + uu * (p0 - a0)
        p = p0 + uu * (a0 - p0)
        a = a + np.stack([np.zeros(T), -0.12 * np.sin(np.pi * u)], 1)
        p = p + np.stack([np.zeros(T), 0.12 * np.sin(np.pi * u)], 1)
    elif motion == "blink":
        visible = np.floor(u * 3.99) % 2 == 0
    elif motion == "zigzag":
        a = a0 + np.stack([uu[:, 0] * d * np.sign(0.5 - a0[0]), 0.1 * np.sin(2 * np.pi * 2 * u)], 1)
    elif motion == "together":
        a = a + uu * np.array([0, d * 0.8])
        p = p + uu * np.array([0, d * 0.8])
    elif motion == "still":
        pass
    elif motion == "drift":
        a = a0 + np.stack([0.03 * np.sin(2 * np.pi * u), 0.03 * np.cos(2 * np.pi * u)], 1)
    else:
        raise ValueError(f"unknown motion {motion!r}")
    return {"agent": reflect(a), "patient": reflect(p), "scale": scale, "visible": visible}


def reflect(x: np.ndarray, lo: float = 0.08, hi: float = 0.92) -> np.ndarray:
    """Fold positions back into ``[lo, hi]`` (a triangle wave: the actor bounces off the border)."""
    span = hi - lo
    y = np.mod(x - lo, 2 * span)
    return lo + np.where(y > span, 2 * span - y, y)


def _shape_mask(shape: str, xx: np.ndarray, yy: np.ndarray, cx: float, cy: float, r: float) -> np.ndarray:
    dx, dy = xx - cx, yy - cy
    if shape == "square":
        return (np.abs(dx) <= r * 0.85) & (np.abs(dy) <= r * 0.85)
    if shape == "disk":
        return dx * dx + dy * dy <= r * r
    if shape == "diamond":
        return np.abs(dx) + np.abs(dy) <= r * 1.2
    if shape == "cross":
        return ((np.abs(dx) <= r * 0.35) & (np.abs(dy) <= r)) | ((np.abs(dy) <= r * 0.35) & (np.abs(dx) <= r))
    raise ValueError(f"unknown shape {shape!r}")


def background(place: str, width: int, height: int) -> np.ndarray:
    sky, ground, horizon, stripes = PLACES[place]
    img = np.empty((height, width, 3), np.float32)
    h = int(round(horizon * height))
    img[:h] = sky
    img[h:] = ground
    if stripes:
        cols = (np.arange(width) // stripes) % 2 == 0
        img[h:, cols] *= 0.8
    return img


def render_events(clip: ClipSpec, frames_per_event: int, width: int, height: int, seed: int = 0) -> np.ndarray:
    """``(5 * frames_per_event, height, width, 3) uint8`` frames of the clip's events in order.

    Each event starts where its own drawn parameters put the actors (a cut between events, as
    between shots); an event whose parameters hold a ``look`` is drawn with that place and actors.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    r0 = 0.11 * min(width, height)
    out = np.empty((len(clip.events) * frames_per_event, height, width, 3), np.uint8)
    u = np.arange(frames_per_event) / max(frames_per_event - 1, 1)
    for k, ev in enumerate(clip.events):
        place, agent, patient = ev.params.get("look") or (clip.place, clip.agent, clip.patient)
        bg = background(place, width, height)
        tr = motion_track(ev.motion, u, np.asarray(ev.params["a0"]), np.asarray(ev.params["p0"]), ev.params["speed"])
        r = r0 * ev.params["size"]
        for t in range(frames_per_event):
            img = bg.copy()
            px, py = tr["patient"][t] * [width, height]
            img[_shape_mask(patient[1], xx, yy, px, py, r)] = COLOURS[patient[0]]
            if tr["visible"][t]:
                ax, ay = tr["agent"][t] * [width, height]
                img[_shape_mask(agent[1], xx, yy, ax, ay, r * tr["scale"][t])] = COLOURS[agent[0]]
            img += rng.normal(0, 4.0, img.shape).astype(np.float32)
            out[k * frames_per_event + t] = np.clip(img + 0.5, 0, 255).astype(np.uint8)
    return out
