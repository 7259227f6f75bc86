"""A content-addressed artifact store with atomic, data-only writes.

An artifact's key hashes what determines it: the input's content hash, the component's name,
config and plugin version.  Values are encoded by :mod:`moviekit.codec` (JSON, ``.npy``,
safetensors: nothing in the store can run code when read) and live under
``<root>/v<FORMAT_VERSION>/<kind>/<key[:2]>/<key>.zip``, so a format change starts a fresh
tree and recomputes once.  A write goes to a uniquely named temporary file that is renamed
into place, so a killed process never leaves a half-written artifact, and two processes
never share a temporary name.  An artifact that cannot be read, or is not what the reader
expects, is deleted, logged with its path and recomputed.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from . import codec
from .errors import DiskWriteError

_HEX64 = re.compile(r"[0-9a-f]{64}")
_KIND = re.compile(r"[a-z0-9][a-z0-9_.-]*")
#: Errors that mean "no room": one message naming the folder and the bytes needed.
_NO_SPACE = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


_UMASK = os.umask(0o022)
os.umask(_UMASK)


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
    memo = _memo_path(p, memo_dir) if memo_dir is not None else None
    if memo is not None:
        try:
            known = memo.read_text().strip()
        except (OSError, UnicodeDecodeError):
            known = ""
        if _HEX64.fullmatch(known):  # anything else (garbage, a planted file) is recomputed
            return known
    h = hashlib.sha256()
    with p.open("rb") as f:
        while block := f.read(chunk):
            h.update(block)
    digest = h.hexdigest()
    if memo is not None:
        atomic_write_bytes(memo, digest.encode())
    return digest


def _memo_path(p: Path, memo_dir: Path) -> Path:
    st = p.stat()
    tag = hash_key(str(p.resolve()), st.st_size, st.st_mtime_ns)
    return memo_dir / "filehash" / tag[:2] / tag


def _write_fd(fd: int, data: bytes) -> None:
    """Write all of ``data`` to ``fd`` (a seam: fault-injection tests make it raise ENOSPC)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def write_error(err: OSError, path: Path, needed: int) -> DiskWriteError:
    """The one message for a failed write: the folder, the bytes needed and (when full) the free space."""
    folder = path.parent
    if err.errno in _NO_SPACE:
        try:
            free = f"; {shutil.disk_usage(folder).free:,} bytes are free there"
        except OSError:
            free = ""
        return DiskWriteError(
            f"no space left in {folder}: writing {path.name} needs {needed:,} bytes ({needed / 2**20:.1f} MiB){free}. "
            "Free some space (for example `moviekit cache prune`) or point run.cache_dir / --output elsewhere"
        )
    return DiskWriteError(f"cannot write {path.name} in {folder} ({needed:,} bytes): {err.strerror or err}")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a unique temporary file renamed into place.

    On any failure the temporary file is removed; an ``OSError`` (disk full, read-only
    folder...) becomes one :class:`~moviekit.errors.DiskWriteError` naming the folder and the
    number of bytes needed.
    """
    path = Path(path)
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp's 0600 would hide a shared cache from its other users
            _write_fd(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as e:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise write_error(e, path, len(data)) from e
    except BaseException:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def _passes(check: Callable[[Any], bool], value: Any) -> bool:
    try:
        return bool(check(value))
    except Exception:  # noqa: BLE001 - a value the check cannot even inspect is of the wrong type
        return False


def local_companion(url: str) -> Path:
    """The local folder that holds a remote store's file-hash memos and checkpoints on this machine."""
    from .location import normalise
    from .weights import cache_root

    return cache_root() / "remote-stores" / hash_key(normalise(url))[:16]


class ArtifactStore:
    """Data-only artifacts under ``root/v<FORMAT_VERSION>/<kind>/<key[:2]>/<key>.zip``.

    ``root`` is a local folder (or shared mount) or an fsspec URL (:mod:`moviekit.location`): the
    same keys, the same bytes, and every write atomic.  ``get``/``put`` encode with
    :mod:`moviekit.codec`.  Every artifact the store reads or writes is remembered in :attr:`used`
    (paths relative to :attr:`dir`), which the runner writes to ``<run>/artifacts.json`` for
    ``moviekit cache prune --run``.  A read artifact's modification time is refreshed (locally), so
    ``prune --older-than`` means "not used for".  File-hash memos and checkpoints are files of this
    machine: for a remote store they live in a local folder named after its URL (:attr:`local_dir`).
    """

    def __init__(self, root: str | Path, read: bool = True, log: Callable[[str], None] | None = None):
        from .location import as_location, normalise, open_files

        where = as_location(root)
        self.remote = isinstance(where, str)
        self.root: str | Path = normalise(where) if isinstance(where, str) else where
        version = f"v{codec.FORMAT_VERSION}"
        self.files = open_files(f"{self.root}/{version}" if self.remote else Path(self.root) / version)
        if self.remote:
            self.local_dir = local_companion(str(self.root)) / version
        else:
            self.local_dir = Path(self.root) / version
        self.dir = self.local_dir if not self.remote else self.files.where("")
        self.read = read
        self.log = log or (lambda message: None)
        self.hits = 0
        self.writes = 0
        self.bytes_written = 0
        self.used: set[str] = set()
        #: ``(path, reason)`` of every artifact discarded as unreadable or of the wrong type.
        self.discarded: list[tuple[Path | str, str]] = []

    @staticmethod
    def rel(kind: str, key: str) -> str:
        """An artifact's path relative to :attr:`dir`; a key that is not a hex digest is hashed."""
        if not _KIND.fullmatch(kind):
            raise ValueError(f"artifact kind '{kind}' must be lower-case letters, digits, '_', '.' or '-'")
        name = key if _HEX64.fullmatch(key) else hash_key(key)
        return f"{kind}/{name[:2]}/{name}.zip"

    def path(self, kind: str, key: str) -> Path | str:
        """Where the artifact ``(kind, key)`` lives (a URL for a remote store)."""
        return self.files.where(self.rel(kind, key))

    def file_path(self, kind: str, name: str) -> Path:
        """A plain local file of the store (checkpoints), its folder created."""
        if not _KIND.fullmatch(kind) or "/" in name or name in ("", ".", ".."):
            raise ValueError(f"bad store file {kind}/{name}")
        p = self.local_dir / kind / name
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def file_hash(self, path: str | Path) -> str:
        """:func:`file_hash` memoised in this store (its local folder)."""
        digest = file_hash(path, memo_dir=self.local_dir)
        self.used.add(_memo_path(Path(path), self.local_dir).relative_to(self.local_dir).as_posix())
        return digest

    def has(self, kind: str, key: str) -> bool:
        return self.read and self.files.exists(self.rel(kind, key))

    def discard(self, rel: str, reason: str) -> None:
        """Delete an artifact that cannot be used, saying which file and why."""
        self.files.remove(rel)
        self.used.discard(rel)
        where = self.files.where(rel)
        self.discarded.append((where, reason))
        self.log(f"[cache] discarded {where}: {reason}; it is recomputed")

    def get(self, kind: str, key: str, default: Any = None, check: Callable[[Any], bool] | None = None) -> Any:
        """The stored value, or ``default`` when missing, unreadable or rejected by ``check``.

        An unreadable artifact (corrupt, an older format, a planted pickle) or one for which
        ``check(value)`` is false (the wrong type) is deleted and logged, so it is recomputed.
        """
        if not self.read:
            return default
        rel = self.rel(kind, key)
        try:
            data = self.files.read_bytes(rel)
        except FileNotFoundError:
            return default
        except OSError as e:
            self.log(f"[cache] cannot read {self.files.where(rel)}: {e.strerror or e}; it is recomputed")
            return default
        try:
            value = codec.decode(data)
        except codec.CodecError as e:
            self.discard(rel, str(e))
            return default
        if check is not None and not _passes(check, value):
            self.discard(rel, f"not a valid '{kind}' artifact (a {type(value).__name__} of the wrong shape or type)")
            return default
        self.files.touch(rel)
        self.used.add(rel)
        self.hits += 1
        return value

    def put(self, kind: str, key: str, value: Any) -> Path | str:
        rel = self.rel(kind, key)
        data = codec.encode(value)
        self.files.write_bytes(rel, data)
        self.used.add(rel)
        self.writes += 1
        self.bytes_written += len(data)
        return self.files.where(rel)

    def manifest(self) -> dict[str, Any]:
        """What ``<run>/artifacts.json`` records: the store and the artifacts this run used."""
        where = self.root if self.remote else str(Path(self.root).resolve())
        return {"format": codec.FORMAT_VERSION, "cache": where, "artifacts": sorted(self.used)}
