"""The open_clip back-end: one way for every plugin to name, find and load an open_clip model.

* :func:`weights_spec`: a pretrained *tag* (``openai``, ``laion2b_s34b_b79k``, ...) or a local path ->
  the :class:`~moviekit.WeightsSpec` that :func:`moviekit.resolve_checkpoint` resolves (a tag is looked
  up in ``$MOVIEKIT_WEIGHTS/open_clip-<arch>-<tag>`` and the moviekit cache, and downloaded from the
  tag's Hugging Face repository only when online).
* :func:`model_config`, :func:`embed_dim`, :func:`image_size`: what an architecture is, before loading it.
* :func:`load`: both towers in eval mode with the tokenizer and the evaluation image transform
  (:class:`OpenClip`); errors name the component, its config key and where to put the files.
* :data:`TINY_MODEL`: a tiny architecture with RANDOM weights **for tests only** (its name carries
  :data:`TEST_ONLY_MARK`, and :func:`load` warns when it loads it); :func:`tiny_checkpoint` writes
  a seeded random state dict for it.  It is known to open_clip as soon as :func:`model_config`
  (or :func:`load`) names it, so a recipe's ``--set ...model=open_clip-tiny-random-TEST-ONLY`` works.

open_clip itself is imported only inside these functions.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..components import WeightsSpec
from ..errors import MoviekitError
from ..weights import resolve_checkpoint

#: Marker in a model name that says it is a random model for tests.
TEST_ONLY_MARK = "TEST-ONLY"
#: Name of the test-only architecture (random weights; its outputs mean nothing).
TINY_MODEL = "open_clip-tiny-random-TEST-ONLY"
TINY_CONFIG = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 8},
    # the real BPE vocabulary size, so that open_clip's default tokenizer can be used unchanged
    "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 16, "heads": 2, "layers": 1},
}


def is_test_only(arch: str) -> bool:
    """Whether ``arch`` names a random test-only model."""
    return TEST_ONLY_MARK in arch


def register_tiny_model(folder: str | Path | None = None) -> str:
    """Register the test-only architecture with open_clip (its JSON config written to ``folder``, or a
    temporary folder: open_clip keeps the config in memory); returns its name."""
    import open_clip

    if folder is None:
        with tempfile.TemporaryDirectory(prefix="open_clip-tiny-") as tmp:
            return register_tiny_model(tmp)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cfg = folder / f"{TINY_MODEL}.json"
    cfg.write_text(json.dumps(TINY_CONFIG))
    open_clip.add_model_config(cfg)
    return TINY_MODEL


def tiny_checkpoint(folder: str | Path, seed: int = 0) -> Path:
    """FOR TESTS ONLY: a random state dict of :data:`TINY_MODEL` seeded with ``seed``, saved under ``folder``."""
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


def model_config(arch: str) -> dict[str, Any]:
    """open_clip's config of ``arch`` (registering the test-only model when it is named); a clear error for an unknown one."""
    import open_clip

    cfg = open_clip.get_model_config(arch)
    if cfg is None and arch == TINY_MODEL:
        register_tiny_model()
        cfg = open_clip.get_model_config(arch)
    if cfg is None:
        raise MoviekitError(
            f"open_clip has no architecture {arch!r}: pick one of open_clip.list_models() (e.g. 'ViT-B-32'), "
            "or register a JSON config with open_clip.add_model_config"
        )
    return cfg


def embed_dim(arch: str) -> int:
    """Size of ``arch``'s (image and text) embeddings."""
    return int(model_config(arch)["embed_dim"])


def image_size(arch: str) -> tuple[int, int]:
    """``(width, height)`` of ``arch``'s image tower input, from its config."""
    size = model_config(arch).get("vision_cfg", {}).get("image_size", 224)
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    return (int(w), int(h))


def weights_spec(arch: str, pretrained: str | None, config_key: str = "pretrained") -> tuple[WeightsSpec, dict]:
    """The weights spec of ``arch`` with ``pretrained`` (a tag or a local path), and the tag's pretrained
    config (empty for a path).

    A tag becomes ``open_clip-<arch>-<tag>`` (so ``$MOVIEKIT_WEIGHTS/open_clip-<arch>-<tag>``) with the
    tag's Hugging Face repository or URL as the hub source; anything else is taken as a local path, which
    :func:`moviekit.resolve_weights` reports when it does not exist.
    """
    import open_clip

    tag_cfg: dict = {}
    if pretrained and not Path(pretrained).expanduser().exists():
        tag_cfg = dict(open_clip.get_pretrained_cfg(arch, pretrained) or {})
    if not tag_cfg:
        return WeightsSpec(name=f"open_clip-{arch}", description=f"open_clip {arch} checkpoint", path=pretrained, config_key=config_key), {}
    hub, filenames = None, ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
    hf = str(tag_cfg.get("hf_hub") or "")
    if hf.endswith("/"):  # 'org/repo/': the default file names
        hub = hf.rstrip("/")
    elif hf:  # 'org/repo/filename'
        hub, fname = os.path.split(hf)
        filenames = (fname,)
    elif tag_cfg.get("url"):
        hub, filenames = tag_cfg["url"], (tag_cfg["url"].rsplit("/", 1)[-1],)
    tag = pretrained.replace("/", "-")
    spec = WeightsSpec(
        name=f"open_clip-{arch}-{tag}",
        description=f"open_clip {arch} pretrained '{pretrained}'",
        hub=hub,
        filenames=filenames,
        config_key=config_key,
    )
    return spec, tag_cfg


@dataclass
class OpenClip:
    """An open_clip model (both towers) in eval mode, its tokenizer, and its evaluation preprocessing.

    ``preprocess`` is open_clip's PIL image transform; ``image_size`` ``(w, h)``, ``mean`` and ``std``
    are the same preprocessing for callers that resize and normalise frame arrays themselves.
    """

    model: Any
    tokenizer: Any
    preprocess: Any
    device: Any
    checkpoint: Path
    image_size: tuple[int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    dim: int

    def encode_images(self, x: Any) -> Any:
        """L2-normalised image embeddings of a normalised ``(n, 3, H, W)`` tensor."""
        return self.model.encode_image(x, normalize=True)


def load(component: str, key: str, arch: str, pretrained: str | None, device: Any, resize_mode: str | None = None) -> OpenClip:
    """Build ``arch`` with weights from ``pretrained`` (tag or local path) for ``component`` (whose config
    key ``key`` names the weights); never downloads when offline.  ``resize_mode`` overrides the tag's."""
    import open_clip

    model_config(arch)
    if not pretrained:
        raise MoviekitError(
            f"{component}: open_clip {arch}: `{key}` is required (a pretrained tag such as 'openai', or a local checkpoint)"
        )
    spec, tag_cfg = weights_spec(arch, pretrained, key)
    hint = ""
    if not tag_cfg and not Path(pretrained).expanduser().exists():
        hint = f"\n'{pretrained}' is neither an existing path nor a pretrained tag of {arch} (tags: {open_clip.list_pretrained_tags_by_model(arch)})."
    file = resolve_checkpoint(spec, component, hint)
    pp = {k: tag_cfg[k] for k in ("mean", "std", "interpolation", "resize_mode") if k in tag_cfg}
    if is_test_only(arch):
        warnings.warn(f"{component}: {arch} is a tiny RANDOM open_clip model for tests only; its outputs mean nothing", stacklevel=2)
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
    size = cfg.get("size", model.visual.image_size)
    preprocess = open_clip.image_transform(
        size,
        is_train=False,
        mean=cfg.get("mean"),
        std=cfg.get("std"),
        resize_mode=resize_mode or cfg.get("resize_mode"),
        interpolation=cfg.get("interpolation"),
        fill_color=cfg.get("fill_color", 0),
    )
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    return OpenClip(
        model=model,
        tokenizer=open_clip.get_tokenizer(arch),
        preprocess=preprocess,
        device=device,
        checkpoint=file,
        image_size=(int(w), int(h)),
        mean=tuple(cfg.get("mean", open_clip.OPENAI_DATASET_MEAN)),
        std=tuple(cfg.get("std", open_clip.OPENAI_DATASET_STD)),
        dim=embed_dim(arch),
    )
