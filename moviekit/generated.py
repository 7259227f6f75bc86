"""Datasets generated once into a folder named by their configuration's key.

A generator writes into a temporary sibling folder, which is renamed into place whole once a
``complete`` marker holding the key is written: a folder with the marker is a finished dataset of
that configuration; a killed generation leaves only a temporary folder, removed by a later run once
it is an hour old.  Two processes generating the same dataset at once both succeed (the first
rename wins, the second uses it).  The synthetic data sources of the core and of plugins share
this, so they cache, check and recover the same way.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import MoviekitError
from .store import atomic_write_text
from .weights import cache_root

log = logging.getLogger("moviekit.generated")

#: How old (seconds) a temporary generation folder must be before a later run removes it.
STALE_SECONDS = 3600.0


def generated_dataset_dir(name: str, key: str, root: Path | str | None = None) -> Path:
    """Where dataset ``name`` of configuration ``key`` lives: ``root`` when the user set one, else
    ``<cache>/datasets/<name>/<key[:16]>``."""
    if root is not None:
        return Path(root).expanduser()
    return cache_root() / "datasets" / name / key[:16]


def ensure_generated(
    name: str,
    key: str,
    generate: Callable[[Path], None],
    *,
    root: Path | str | None = None,
    info: dict[str, Any] | None = None,
) -> Path:
    """The folder of dataset ``name`` with configuration ``key``, generated first unless complete.

    ``generate(folder)`` writes the dataset's files into an empty folder.  ``root`` is the user's
    ``dataset.root`` (``None``: the cache); a user folder that is not empty and holds no complete
    dataset is refused, never deleted, and one that holds a dataset of another key is refused.
    ``info`` (the component's configuration, versions) is written with the key and the generation
    time to ``dataset.json``.
    """
    final = generated_dataset_dir(name, key, root)
    if (final / "complete").exists():
        return _checked(final, name, key)
    if final.exists() and any(final.iterdir()):
        if root is not None:
            raise MoviekitError(
                f"dataset.root: {final} exists, is not empty and holds no complete {name} dataset; point `root` at a new or empty folder"
            )
        shutil.rmtree(final)  # our own cache folder without its marker: a generation that never completed
    final.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(final)
    tmp = final.parent / f".{final.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        t0 = time.perf_counter()
        log.info("%s: generating in %s", name, final)
        generate(tmp)
        seconds = round(time.perf_counter() - t0, 2)
        atomic_write_text(tmp / "dataset.json", json.dumps({"component": name, "key": key, **(info or {}), "seconds": seconds}, indent=1))
        atomic_write_text(tmp / "complete", key + "\n")
        try:
            if final.exists():
                final.rmdir()  # only succeeds when empty
            os.rename(tmp, final)
        except OSError:
            if not (final / "complete").exists():
                raise
            # another process finished the same dataset first: use theirs
        log.info("%s: generated in %.1f s", name, seconds)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return _checked(final, name, key)


def _checked(folder: Path, name: str, key: str) -> Path:
    if (folder / "complete").read_text().strip() != key:
        raise MoviekitError(
            f"dataset.root: {folder} holds a {name} dataset generated with a different config or generator version; "
            "delete it or choose another root"
        )
    return folder


def _remove_stale(final: Path) -> None:
    now = time.time()
    for p in final.parent.glob(f".{final.name}.tmp-*"):
        try:
            if now - p.stat().st_mtime > STALE_SECONDS:
                shutil.rmtree(p, ignore_errors=True)
        except OSError:
            pass
