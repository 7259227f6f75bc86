"""A content-addressed artifact store with atomic writes.

An artifact's key hashes what determines it: the input's content hash, the
component's name, config and plugin version.  Values are pickled; a write goes
to a temporary file that is renamed into place, so a killed process never
leaves a half-written artifact behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

from pydantic import BaseModel


def stable_json(obj: Any) -> str:
    def default(o: Any) -> Any:
        if isinstance(o, BaseModel):
            return o.model_dump(mode="json")
        if isinstance(o, Path):
            return str(o)
        if isinstance(o, (set, frozenset)):
            return sorted(o)
        raise TypeError(f"cannot hash {type(o).__name__}")

    return json.dumps(obj, sort_keys=True, default=default, separators=(",", ":"))


def hash_key(*parts: Any) -> str:
    """A hex digest of JSON-serialisable parts (pydantic models allowed)."""
    return hashlib.sha256(stable_json(list(parts)).encode()).hexdigest()


def file_hash(path: str | Path, memo_dir: Path | None = None, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes, memoised by (path, size, mtime) when ``memo_dir`` is given."""
    p = Path(path)
    st = p.stat()
    memo = None
    if memo_dir is not None:
        tag = hash_key(str(p.resolve()), st.st_size, st.st_mtime_ns)
        memo = memo_dir / "filehash" / tag[:2] / tag
        if memo.exists():
            return memo.read_text().strip()
    h = hashlib.sha256()
    with p.open("rb") as f:
        while block := f.read(chunk):
            h.update(block)
    digest = h.hexdigest()
    if memo is not None:
        atomic_write_bytes(memo, digest.encode())
    return digest


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


class ArtifactStore:
    """Pickled artifacts under ``root/<kind>/<key[:2]>/<key>.pkl``."""

    def __init__(self, root: str | Path, read: bool = True):
        self.root = Path(root)
        self.read = read
        self.hits = 0
        self.writes = 0

    def _path(self, kind: str, key: str) -> Path:
        return self.root / kind / key[:2] / f"{key}.pkl"

    def has(self, kind: str, key: str) -> bool:
        return self.read and self._path(kind, key).exists()

    def get(self, kind: str, key: str, default: Any = None) -> Any:
        """The stored value, or ``default`` when missing or unreadable."""
        if not self.read:
            return default
        p = self._path(kind, key)
        try:
            with p.open("rb") as f:
                value = pickle.load(f)
        except FileNotFoundError:
            return default
        except Exception:  # noqa: BLE001 - a corrupt artifact is recomputed, not fatal
            p.unlink(missing_ok=True)
            return default
        self.hits += 1
        return value

    def put(self, kind: str, key: str, value: Any) -> Path:
        p = self._path(kind, key)
        atomic_write_bytes(p, pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))
        self.writes += 1
        return p
