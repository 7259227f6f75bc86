"""Tiny VidSitu folders for tests and contract checks (drawn from the synthetic story world)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .story import draw_clip
from .vidsitu import write_vidsitu


def spec_events(spec) -> list[dict]:
    """A :class:`~moviekit_hiermovie.story.ClipSpec`'s events as the VidSitu reader returns them."""
    return [{"verbs": list(e.verbs), "relations": list(e.relations), "args": [dict(a) for a in e.args]} for e in spec.events]


def write_tiny_vidsitu(root: Path, n: int = 3, dim: int = 8, seed: int = 0) -> Path:
    """``root/vidsitu_annotations`` (train / valid split of ``n`` clips each) and ``root/features``
    with a random ``(5, dim)`` array per clip; returns ``root``."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    ann = root / "vidsitu_annotations"
    for s, name in enumerate(("train", "valid")):
        clips = []
        for i in range(n):
            vid = f"v_tiny{s}{i}_seg_{10 * i}_{10 * i + 10}"
            clips.append((vid, spec_events(draw_clip([seed, s, i], vid))))
            (root / "features").mkdir(parents=True, exist_ok=True)
            np.save(root / "features" / f"{vid}.npy", rng.standard_normal((5, dim)).astype(np.float32))
        write_vidsitu(ann, name, clips)
    return root
