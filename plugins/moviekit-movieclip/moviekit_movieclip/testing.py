"""FOR TESTS ONLY: a tiny open_clip model with RANDOM weights.

It shows that the plumbing works (weights resolution, prompts, batching,
scoring) without any download; its labels are meaningless.  The architecture
name carries ``TEST-ONLY`` so it is recognisable wherever it appears, and the
labeler warns when it loads it.
"""

from __future__ import annotations

import json
from pathlib import Path

#: Name of the test-only architecture registered with open_clip.
TINY_MODEL = "movieclip-tiny-random-TEST-ONLY"
TINY_CONFIG = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 8},
    # the real BPE vocabulary size, so that open_clip's default tokenizer can be used unchanged
    "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 16, "heads": 2, "layers": 1},
}


def register_tiny_model(folder: str | Path) -> str:
    """Write the test-only JSON config into ``folder`` and register it with open_clip; returns its name."""
    import open_clip

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cfg = folder / f"{TINY_MODEL}.json"
    cfg.write_text(json.dumps(TINY_CONFIG))
    open_clip.add_model_config(cfg)
    return TINY_MODEL


def tiny_clip_checkpoint(folder: str | Path, seed: int = 0) -> Path:
    """Register the test-only model and save a random state dict for it; returns the checkpoint path."""
    import open_clip
    import torch

    register_tiny_model(folder)
    path = Path(folder) / f"{TINY_MODEL}-seed{seed}.pt"
    if not path.is_file():
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = open_clip.create_model(TINY_MODEL)
        torch.save(model.state_dict(), path)
    return path
