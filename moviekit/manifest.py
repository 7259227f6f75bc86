"""``<run>/manifest.json``: the files moviekit wrote into a run directory.

A run only ever replaces or deletes a file or folder of its directory that the manifest
lists with the size it had when moviekit wrote it; anything else there (a user's own
``features/`` in a project folder given as ``-o``) is left alone, and the step that would
have replaced it stops with a message instead.
"""

from __future__ import annotations

import json
from pathlib import Path

from .store import atomic_write_text

MANIFEST = "manifest.json"


def load(out_dir: Path) -> dict[str, int]:
    """Relative path -> size in bytes of every file moviekit wrote into ``out_dir``."""
    try:
        data = json.loads((Path(out_dir) / MANIFEST).read_text())
        return {str(k): int(v) for k, v in data.get("files", {}).items()}
    except (OSError, ValueError, AttributeError, TypeError):
        return {}


def record(out_dir: Path, rels: list[str]) -> None:
    """Add the files ``rels`` (relative to ``out_dir``; a folder adds the files under it) to the manifest."""
    out_dir = Path(out_dir)
    files = load(out_dir)
    for rel in rels:
        p = out_dir / rel
        if p.is_dir():
            for f in sorted(p.rglob("*")):
                if f.is_file():
                    files[f.relative_to(out_dir).as_posix()] = f.stat().st_size
        elif p.is_file():
            files[Path(rel).as_posix()] = p.stat().st_size
    atomic_write_text(out_dir / MANIFEST, json.dumps({"files": dict(sorted(files.items()))}, indent=0))


def owned(out_dir: Path, rel: str) -> bool:
    """Whether ``out_dir/rel`` (a file, or a folder and everything under it) was written by moviekit
    and is unchanged in size since; a path that does not exist counts as owned (nothing to lose)."""
    out_dir = Path(out_dir)
    p = out_dir / rel
    if not p.exists() and not p.is_symlink():
        return True
    if p.is_symlink():
        return False
    files = load(out_dir)
    targets = [f for f in p.rglob("*") if f.is_file() or f.is_symlink()] if p.is_dir() else [p]
    for f in targets:
        key = f.relative_to(out_dir).as_posix()
        if f.is_symlink() or key not in files or files[key] != f.stat().st_size:
            return False
    return True


def forget(out_dir: Path, rel: str) -> None:
    """Drop ``rel`` (a file or everything under a folder) from the manifest."""
    files = load(out_dir)
    prefix = Path(rel).as_posix().rstrip("/") + "/"
    kept = {k: v for k, v in files.items() if k != Path(rel).as_posix() and not k.startswith(prefix)}
    if kept != files:
        atomic_write_text(Path(out_dir) / MANIFEST, json.dumps({"files": dict(sorted(kept.items()))}, indent=0))
