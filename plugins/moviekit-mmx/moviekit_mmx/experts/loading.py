"""What the MMX experts share: devices, reading state dicts safely, frame resizing and normalisation, batched
image encoding, and open_clip image towers through the core backend (:mod:`moviekit.backends.openclip`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from moviekit import MoviekitError
from moviekit.backends import openclip

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def torch_device(spec: str) -> Any:
    from moviekit import resolve_device

    return resolve_device(spec)


def load_state_dict(file: Path) -> dict[str, Any]:
    """A plain state dict from a ``.safetensors`` or ``torch.save`` file (tensors only, never pickled code)."""
    import torch

    if file.suffix == ".safetensors":
        from safetensors.torch import load_file

        sd: Any = load_file(str(file))
    else:
        try:
            sd = torch.load(str(file), map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - re-raised with the file name
            raise MoviekitError(
                f"{file}: cannot be read as a state dict with torch.load(weights_only=True) ({type(e).__name__}: {e}). "
                "Save the tensors alone (torch.save(model.state_dict()) or safetensors); a checkpoint that also holds "
                "Python objects (e.g. a training run's message hub) must be re-saved as its state_dict, once, by someone who trusts it"
            ) from e
    for wrapper in ("state_dict", "model", "model_state_dict"):
        if isinstance(sd, dict) and isinstance(sd.get(wrapper), dict):
            sd = sd[wrapper]
            break
    if not isinstance(sd, dict):
        raise MoviekitError(f"{file}: expected a state dict, got {type(sd).__name__}")
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module.") :]: v for k, v in sd.items()}
    return sd


def load_into(component: str, net: Any, file: Path, drop_prefixes: tuple[str, ...] = (), keep_prefix: str = "") -> None:
    """Load ``file``'s tensors into ``net``; keys under ``drop_prefixes`` are left out (a classifier), and when
    the file has keys under ``keep_prefix`` (``backbone.`` of a whole recognizer) the prefix is removed.  Any
    other missing or unexpected key, or a shape mismatch, is an error naming the file and the keys."""
    sd = {k: v for k, v in load_state_dict(file).items() if not k.startswith(drop_prefixes)}
    if keep_prefix and any(k.startswith(keep_prefix) for k in sd):
        sd = {(k[len(keep_prefix) :] if k.startswith(keep_prefix) else k): v for k, v in sd.items()}
    try:
        missing, unexpected = net.load_state_dict(sd, strict=False)
    except RuntimeError as e:  # shapes that do not match: another architecture or depth
        raise MoviekitError(f"{component}: {file} does not match the network ({e})") from e
    missing = [k for k in missing if not k.startswith(drop_prefixes)]
    if missing or unexpected:
        raise MoviekitError(
            f"{component}: {file} does not match the network: {len(missing)} missing key(s) {missing[:5]}"
            f"{'...' if len(missing) > 5 else ''}, {len(unexpected)} unexpected key(s) {list(unexpected)[:5]}"
            f"{'...' if len(unexpected) > 5 else ''} (is it a checkpoint of this architecture?)"
        )


def resize_frames(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Frames at ``size`` (width, height); a no-op when the reader already resized them."""
    w, h = size
    if frames.shape[1:3] == (h, w):
        return frames
    import cv2

    return np.stack([cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA) for f in frames])


def image_tensor(frames: np.ndarray, size: tuple[int, int], mean: Any, std: Any, device: Any) -> Any:
    """``(n, 3, H, W)`` float tensor normalised with ``mean``/``std`` (RGB in [0, 1])."""
    import torch

    frames = np.ascontiguousarray(resize_frames(frames, size))
    x = torch.from_numpy(frames).to(device).permute(0, 3, 1, 2).float().div_(255.0)
    m = torch.tensor(mean, dtype=x.dtype, device=device).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=x.dtype, device=device).view(1, 3, 1, 1)
    return (x - m) / s


def run_batches(fn: Any, frames: np.ndarray, batch: int, size: tuple[int, int], mean: Any, std: Any, device: Any, dim: int) -> np.ndarray:
    import torch

    out = []
    with torch.inference_mode():
        for s in range(0, len(frames), batch):
            x = image_tensor(frames[s : s + batch], size, mean, std, device)
            out.append(fn(x).float().cpu().numpy())
    return np.concatenate(out).astype(np.float32) if out else np.zeros((0, dim), np.float32)


# --- open_clip (the core's backend: moviekit.backends.openclip) --------------------------------


def build_open_clip(component: str, key: str, arch: str, pretrained: str | None, device: Any) -> tuple[Any, tuple[int, int], Any, Any]:
    """``(encode_fn, (w, h), mean, std)`` of an open_clip image tower from local (or cached/hub) weights."""
    clip = openclip.load(component, key, arch, pretrained, device)
    return clip.encode_images, clip.image_size, clip.mean, clip.std
