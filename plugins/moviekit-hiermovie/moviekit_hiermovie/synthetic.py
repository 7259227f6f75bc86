"""``synthetic_vidsitu``: the embedded VidSitu-like movie clips and Kinetics-like action clips.

Generated once into a cache folder keyed by the config (like the core's synthetic trailers) in
the VidSitu release's layout, and read back through the :class:`~moviekit_hiermovie.vidsitu.VidSitu`
reader, so the embedded data and a user's VidSitu folder take one code path::

    <root>/videos/<id>.mp4                         # 10-s movie clips, five 2-s events
    <root>/vidsitu_annotations/split_files/...     # train / valid / test / unlabelled
    <root>/vidsitu_annotations/vseg_ann_files/...  # three annotators per clip
    <root>/truth.json                              # per clip: theme, per event context_dependent
    <root>/actions/<id>.mp4                        # unlabelled single-motion clips (backbone pre-training)

See :mod:`moviekit_hiermovie.story` for what the clips show and why context matters.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field, field_validator

import moviekit
from moviekit import Config, DatasetSource, Video

from .fixtures import spec_events
from .story import VERBS, draw_action_clip, draw_clip, render_events
from .vidsitu import VidSitu, write_vidsitu

GENERATOR_VERSION = "2"


def write_mp4(path: Path, frames: np.ndarray, fps: int, crf: int = 12) -> None:
    """``(T, H, W, 3) uint8`` frames as an H.264 mp4 (no audio): the core's shared writer at this source's quality."""
    moviekit.write_mp4(path, frames, fps, crf)


class SyntheticVidSitu(DatasetSource):
    """Synthetic VidSitu-like 10-s movie clips (five 2-s events: verb, roles, relation to event 3)
    plus unlabelled Kinetics-like action clips, generated once and cached.

    30 verbs are motion patterns of a coloured-shape agent toward a patient in a place; a clip's
    hidden theme decides the verb of its ambiguous motions (so context matters) and the event
    relations.  Items: movie clips (`metadata["hier_kind"] == "movie"`, splits train / val / test,
    and unlabelled ones with split None) and action clips (`"action"`, split None).
    """

    name = "synthetic_vidsitu"
    version = GENERATOR_VERSION

    class Config(Config):
        n_train: int = Field(120, ge=1, description="annotated training clips")
        n_val: int = Field(20, ge=0, description="annotated validation clips")
        n_test: int = Field(60, ge=1, description="annotated test clips")
        n_unlabelled: int = Field(120, ge=0, description="movie clips without annotations (contextualizer pre-training)")
        n_actions: int = Field(200, ge=0, description="Kinetics-like single-motion clips without labels (backbone pre-training)")
        action_seconds: int = Field(6, ge=2, description="length of an action clip: 2-s shots of one motion, each with a new look")
        size: int = Field(32, ge=16, le=256, description="frame width and height in pixels (even)")
        fps: int = Field(8, ge=4, le=30, description="frames per second")
        p_ambiguous: float = Field(
            0.35, ge=0, le=1, description="chance that an event's motion is ambiguous (its verb decided by the clip's theme)"
        )
        p_idle: float = Field(0.1, ge=0, le=1, description="chance that an event (not event 3) is an idle verb unrelated to the story")
        annotator_noise: float = Field(0.1, ge=0, le=1, description="chance that an annotator gives a random verb / relation")
        annotators: int = Field(3, ge=1, le=10, description="annotators per clip")
        seed: int = Field(0, description="seed of everything drawn")
        root: Path | None = Field(None, description="dataset folder; default <cache>/datasets/synthetic_vidsitu/<hash of this config>")

        @field_validator("size")
        @classmethod
        def _even(cls, v: int) -> int:
            if v % 2:
                raise ValueError(f"must be even (H.264 yuv420p), got {v}")
            return v

    @classmethod
    def example_config(cls, tmp_path: Path) -> dict[str, Any]:
        return {"n_train": 2, "n_val": 1, "n_test": 1, "n_unlabelled": 1, "n_actions": 1, "root": str(Path(tmp_path) / "synthetic_vidsitu")}

    def key(self) -> str:
        import hashlib

        cfg = self.config.model_dump(mode="json", exclude={"root"})
        return hashlib.sha256(json.dumps([self.name, GENERATOR_VERSION, cfg], sort_keys=True).encode()).hexdigest()

    def dataset_dir(self) -> Path:
        return moviekit.generated_dataset_dir(self.name, self.key(), self.config.root)

    def ensure(self) -> Path:
        """Generate the dataset unless a complete copy exists; returns its folder."""
        return moviekit.ensure_generated(self.name, self.key(), self._generate, root=self.config.root)

    def _generate(self, folder: Path) -> None:
        c = self.config
        per_event = 2 * c.fps
        truth: dict[str, Any] = {}
        groups = (("train", c.n_train), ("valid", c.n_val), ("test", c.n_test), ("unlabelled", c.n_unlabelled))
        for g, (name, n) in enumerate(groups):
            clips = []
            for i in range(n):
                vid = f"v_syn{g}{i:04d}_seg_0_10"
                spec = draw_clip([c.seed, g, i], vid, c.p_ambiguous, c.p_idle, c.annotators, c.annotator_noise)
                write_mp4(
                    folder / "videos" / f"{vid}.mp4",
                    render_events(spec, per_event, c.size, c.size, seed=c.seed * 1_000_003 + g * 10_007 + i),
                    c.fps,
                )
                clips.append((vid, spec_events(spec) if name != "unlabelled" else None))
                truth[vid] = {
                    "theme": spec.theme,
                    "verbs": [e.verb for e in spec.events],
                    "context_dependent": [e.context_dependent for e in spec.events],
                }
            write_vidsitu(folder / "vidsitu_annotations", name, clips)
        for i in range(c.n_actions):
            vid = f"action_{i:04d}"
            spec = draw_action_clip([c.seed, 99, i], vid, n_events=c.action_seconds // 2)
            write_mp4(folder / "actions" / f"{vid}.mp4", render_events(spec, per_event, c.size, c.size, seed=i), c.fps)
            truth[vid] = {"motion": spec.events[0].motion}
        moviekit.atomic_write_text(folder / "truth.json", json.dumps(truth, indent=1))

    def items(self) -> list[Video]:
        folder = self.ensure()
        truth = json.loads((folder / "truth.json").read_text())
        reader = VidSitu(root=folder / "vidsitu_annotations", videos=folder / "videos")
        out = []
        for vid, split, events in reader.clips():
            t = truth.get(vid, {})
            if events is not None:
                for ev, cd in zip(events, t.get("context_dependent", [])):
                    ev["context_dependent"] = bool(cd)
            v = reader._video(vid, split, events, {"synthetic": True, "theme": t.get("theme")})
            if v is not None:
                out.append(v)
        for p in sorted((folder / "actions").glob("*.mp4")):
            out.append(
                Video(
                    id=p.stem,
                    path=p,
                    split=None,
                    metadata={"hier_kind": "action", "synthetic": True, "motion": truth.get(p.stem, {}).get("motion")},
                )
            )
        return out

    def vocabulary(self) -> list[str]:
        return list(VERBS)
