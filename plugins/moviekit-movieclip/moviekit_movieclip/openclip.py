"""Loading an open_clip model (both towers) from local weights, or from the hub only when online.

Resolution goes through :func:`moviekit.resolve_weights`: a ``pretrained`` that is
an existing file or folder is used as is; a pretrained *tag* (``openai``,
``laion2b_s34b_b79k``, ...) is looked up in ``$MOVIEKIT_WEIGHTS/open_clip-<model>-<tag>``
and the moviekit cache, and downloaded from the tag's Hugging Face repository
only when online.  Errors name the component, its config key and where to put
the files.
"""

from __future__ import annotations

import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from moviekit import MoviekitError, WeightsSpec, open_clip_weights_spec, resolve_checkpoint

from .testing import TINY_MODEL

#: Marker in a model name that says it is a random model for tests (see :mod:`.testing`).
TEST_ONLY_MARK = "TEST-ONLY"


def model_config(arch: str) -> dict[str, Any]:
    import open_clip

    cfg = open_clip.get_model_config(arch)
    if cfg is None and arch == TINY_MODEL:
        # the random test-only model is selectable by name wherever a model is named (a recipe's
        # `--set labeler.model=...` included), as in `moviekit movieclip label`; open_clip keeps the
        # config in memory, so the folder it is read from can go at once
        from .testing import register_tiny_model

        with tempfile.TemporaryDirectory(prefix="movieclip-tiny-") as tmp:
            register_tiny_model(tmp)
        cfg = open_clip.get_model_config(arch)
    if cfg is None:
        raise MoviekitError(
            f"open_clip has no architecture {arch!r}: pick one of open_clip.list_models() (e.g. 'ViT-B-32'), "
            "or register a JSON config with open_clip.add_model_config"
        )
    return cfg


def weights_spec(arch: str, pretrained: str | None, key: str = "pretrained") -> tuple[WeightsSpec, dict[str, Any]]:
    """The weights spec of ``arch`` with ``pretrained`` (a tag or a local path) and the tag's config (empty for a path)."""
    if not pretrained:
        raise MoviekitError(f"open_clip {arch}: `pretrained` is required (a pretrained tag such as 'openai', or a local checkpoint)")
    return open_clip_weights_spec(arch, pretrained, key)


@dataclass
class LoadedClip:
    """An open_clip model in eval mode with its tokenizer and evaluation image transform."""

    model: Any
    tokenizer: Any
    preprocess: Any
    device: Any
    checkpoint: Path


def load_open_clip(component: str, key: str, arch: str, pretrained: str | None, device: Any, resize_mode: str | None = None) -> LoadedClip:
    """Build ``arch`` with weights from ``pretrained`` (tag or local path); never downloads when offline."""
    import open_clip

    model_config(arch)
    spec, tag_cfg = weights_spec(arch, pretrained, key)
    hint = ""
    if not tag_cfg and pretrained and not Path(pretrained).expanduser().exists():
        hint = f"\n'{pretrained}' is neither an existing path nor a pretrained tag of {arch} (tags: {open_clip.list_pretrained_tags_by_model(arch)})."
    file = resolve_checkpoint(spec, component, hint)
    pp = {k: tag_cfg[k] for k in ("mean", "std", "interpolation", "resize_mode") if k in tag_cfg}
    if TEST_ONLY_MARK in arch:
        warnings.warn(f"{component}: {arch} is a tiny RANDOM open_clip model for tests only; its labels mean nothing", stacklevel=2)
    try:
        model = open_clip.create_model(
            arch,
            pretrained=str(file),
            device=device,
            force_quick_gelu=bool(tag_cfg.get("quick_gelu", False)),
            force_preprocess_cfg=pp or None,
        )
    except Exception as e:  # noqa: BLE001 - re-raised with what to do
        raise MoviekitError(
            f"{component}: {file} could not be loaded into open_clip {arch} ({type(e).__name__}: {e}). "
            "It must be an open_clip state dict of that architecture (.safetensors, or torch.save(model.state_dict()); "
            "TorchScript archives such as OpenAI's original ViT-B-32.pt are not read)."
        ) from e
    model.eval()
    cfg = dict(open_clip.get_model_preprocess_cfg(model))
    preprocess = open_clip.image_transform(
        cfg.get("size", model.visual.image_size),
        is_train=False,
        mean=cfg.get("mean"),
        std=cfg.get("std"),
        resize_mode=resize_mode or cfg.get("resize_mode"),
        interpolation=cfg.get("interpolation"),
        fill_color=cfg.get("fill_color", 0),
    )
    return LoadedClip(model=model, tokenizer=open_clip.get_tokenizer(arch), preprocess=preprocess, device=device, checkpoint=file)
