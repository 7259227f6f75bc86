"""Where the artifact store and a run directory live: a local folder, or a folder of an fsspec URL.

``run.cache_dir`` and ``run.output`` (``-o``) take a local path, a ``file://`` URL (the same as the
path), or any URL fsspec knows (``s3://bucket/prefix`` with ``pip install 'moviekit[s3]'``,
``gs://``, ``memory://`` in tests...).  An NFS or other shared POSIX mount is a local path.

:class:`LocalFiles` and :class:`RemoteFiles` give the store one interface over a folder:
``read_bytes``, ``write_bytes`` (atomic), ``exists``, ``remove``, ``touch``, by path relative to
the folder, and for ``moviekit cache show | prune`` ``list_files`` (every regular file below the
folder, never through a symbolic link), ``contains`` and ``remove_empty_dirs``.  A write is never seen half done:

* a local folder, and a remote filesystem with a rename (sftp, hdfs, ...): the bytes go to a
  uniquely named temporary file that is then renamed over the target;
* an object store (s3, gcs, azure, memory): one put of the complete object, which the store
  makes visible whole or not at all.

Two writers of the same artifact write the same content (its name is its content's key), so
whichever rename or put lands last, readers only ever see one complete copy.
"""

from __future__ import annotations

import os
import stat
import uuid
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from .errors import DiskWriteError, MoviekitError
from .runlock import LOCK_NAME

#: fsspec protocols whose put of a whole object is atomic (written once, visible whole).
OBJECT_STORES = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "memory"})
#: The optional extra that installs a protocol's fsspec driver.
EXTRAS = {"s3": "s3", "s3a": "s3"}
_LOCAL = ("file", "local")


def scheme(text: str | os.PathLike) -> str | None:
    """The URL scheme of ``text`` (``s3``, ``memory``...), None for a plain path."""
    s = str(text)
    head, sep, _ = s.partition("://")
    return head.lower() if sep and head.isidentifier() else None


def is_remote(text: str | os.PathLike | None) -> bool:
    """Whether ``text`` is a URL of a filesystem other than this machine's (``file://`` is local)."""
    return text is not None and scheme(text) not in (None, *_LOCAL)


def normalise(url: str) -> str:
    """A URL without trailing slashes (``s3://bucket/cache/`` is ``s3://bucket/cache``; ``s3://`` stays)."""
    head, sep, tail = str(url).partition("://")
    return f"{head}{sep}{tail.rstrip('/')}" if sep else str(url)


def local_path(text: str | os.PathLike) -> Path:
    """A local path, or a ``file://`` URL as a path."""
    s = str(text)
    return Path(s.partition("://")[2]) if scheme(s) in _LOCAL else Path(s)


def as_location(text: str | os.PathLike | None) -> str | Path | None:
    """A recipe's folder value: a remote URL kept as text, anything else a :class:`Path`."""
    if text is None or is_remote(text):
        return None if text is None else str(text)
    return local_path(text)


class LocalFiles:
    """A local folder (or a shared POSIX mount): temporary file + rename."""

    remote = False

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def where(self, rel: str) -> Path:
        return self.root / rel

    def read_bytes(self, rel: str) -> bytes:
        return self.where(rel).read_bytes()

    def write_bytes(self, rel: str, data: bytes) -> None:
        from .store import atomic_write_bytes

        atomic_write_bytes(self.where(rel), data)

    def exists(self, rel: str) -> bool:
        return self.where(rel).exists()

    def remove(self, rel: str) -> None:
        self.where(rel).unlink(missing_ok=True)

    def remove_files(self, rels: list[str]) -> None:
        for rel in rels:
            self.remove(rel)

    def touch(self, rel: str) -> None:
        try:
            os.utime(self.where(rel))
        except OSError:
            pass

    def list_files(self) -> Iterator[tuple[str, int, float | None]]:
        """``(rel, size, mtime)`` of every regular file below the folder; symbolic links are neither
        followed nor listed."""
        if not self.root.is_dir():
            return
        for dirpath, _dirnames, filenames in os.walk(self.root, followlinks=False):
            for fn in filenames:
                p = Path(dirpath) / fn
                try:
                    st = p.lstat()
                except OSError:  # removed meanwhile
                    continue
                if stat.S_ISREG(st.st_mode):
                    yield p.relative_to(self.root).as_posix(), st.st_size, st.st_mtime

    def contains(self, rel: str) -> bool:
        """Whether ``rel`` is a file of this folder itself: not a link, not outside it once resolved."""
        p = self.where(rel)
        return _plain_rel(rel) and not p.is_symlink() and self.root.resolve() in p.resolve().parents

    def remove_empty_dirs(self, rels: Iterable[str]) -> None:
        """Remove the folders that held ``rels`` once empty, up to (never including) the root."""
        for d in sorted({self.where(r).parent for r in rels}, key=lambda p: -len(p.parts)):
            while d != self.root and self.root in d.parents:
                try:
                    d.rmdir()
                except OSError:
                    break
                d = d.parent


class RemoteFiles:
    """A folder of an fsspec filesystem given by URL (``s3://bucket/prefix``, ``memory://x``...)."""

    remote = True

    def __init__(self, url: str, key: str = "run.cache_dir"):
        import fsspec

        self.url = normalise(str(url))
        proto = scheme(self.url) or ""
        try:
            self.fs, self.root = fsspec.core.url_to_fs(self.url)
        except ImportError:
            extra = EXTRAS.get(proto)
            how = f"pip install 'moviekit[{extra}]'" if extra else f"install the fsspec driver for '{proto}://'"
            raise MoviekitError(f"{key}: {self.url} needs the fsspec driver for '{proto}://', which is not installed: {how}") from None
        except ValueError as e:
            raise MoviekitError(f"{key}: {self.url}: {e} (fsspec knows no such filesystem)") from None
        self.root = self.root.rstrip("/")
        #: object stores get one put of the whole object; other filesystems a temporary file and a rename
        self.put_whole = proto in OBJECT_STORES

    def where(self, rel: str) -> str:
        """The URL of ``rel`` (what messages and manifests show)."""
        return f"{self.url}/{rel}"

    def _path(self, rel: str) -> str:
        return f"{self.root}/{rel}"

    def read_bytes(self, rel: str) -> bytes:
        return self.fs.cat_file(self._path(rel))

    def write_bytes(self, rel: str, data: bytes) -> None:
        path = self._path(rel)
        try:
            if self.put_whole:
                self.fs.pipe_file(path, data)
                return
            parent = path.rsplit("/", 1)[0]
            self.fs.makedirs(parent, exist_ok=True)
            tmp = f"{parent}/.{path.rsplit('/', 1)[1]}.{uuid.uuid4().hex}.tmp"
            try:
                self.fs.pipe_file(tmp, data)
                self.fs.mv(tmp, path)
            finally:
                if self.fs.exists(tmp):
                    self.fs.rm_file(tmp)
        except OSError as e:
            raise DiskWriteError(f"cannot write {self.where(rel)} ({len(data):,} bytes): {e.strerror or e}") from e

    def exists(self, rel: str) -> bool:
        return self.fs.exists(self._path(rel))

    def remove(self, rel: str) -> None:
        try:
            self.fs.rm_file(self._path(rel))
        except FileNotFoundError:
            pass

    def remove_files(self, rels: list[str]) -> None:
        """Delete many files, in batches where the filesystem has a bulk delete (s3: 1000 objects a request)."""
        for i in range(0, len(rels), 1000):
            batch = rels[i : i + 1000]
            try:
                self.fs.rm([self._path(r) for r in batch])
            except FileNotFoundError:  # one already gone: the rest one by one
                for rel in batch:
                    self.remove(rel)

    def touch(self, rel: str) -> None:
        """Nothing: an object store has no modification time to refresh without rewriting the object, so
        ``cache prune --older-than`` counts from an artifact's last write there."""

    def list_files(self) -> Iterator[tuple[str, int, float | None]]:
        """``(rel, size, mtime)`` of every file below the folder (mtime None where the filesystem gives none)."""
        try:
            found = self.fs.find(self.root, detail=True)
        except FileNotFoundError:
            return
        prefix = f"{self.root}/"
        for path, info in sorted(found.items()):
            path = path.rstrip("/")
            if info.get("type") == "file" and path.startswith(prefix):
                yield path[len(prefix) :], int(info.get("size") or 0), _mtime(info)

    def contains(self, rel: str) -> bool:
        """Whether ``rel`` names a file below this folder (no ``..``, no absolute part)."""
        return _plain_rel(rel)

    def remove_empty_dirs(self, rels: Iterable[str]) -> None:
        """Remove the emptied folders of a filesystem that has folders, never the root; an object store has none."""
        if self.put_whole:
            return
        for d in sorted({r.rsplit("/", 1)[0] for r in rels if "/" in r}, key=lambda r: -r.count("/")):
            while d:
                try:
                    if self.fs.ls(self._path(d), detail=False):
                        break
                    self.fs.rmdir(self._path(d))
                except OSError:
                    break
                d = d.rsplit("/", 1)[0] if "/" in d else ""

    def check_writable(self, what: str) -> None:
        """Stop the run at once when ``what`` (the folder's recipe key) cannot be written."""
        rel = f".moviekit-write-check-{uuid.uuid4().hex}"
        try:
            self.write_bytes(rel, b"")
            self.remove(rel)
        except (OSError, DiskWriteError) as e:
            raise MoviekitError(f"{what} {self.url} is not writable: {e}") from None

    def upload_tree(self, folder: Path) -> None:
        """Copy every file under the local ``folder`` to this location, each as one complete write."""
        for dirpath, _dirs, files in os.walk(folder):
            for name in files:
                p = Path(dirpath) / name
                if name == LOCK_NAME or (name.startswith(".") and name.endswith(".tmp")):
                    continue
                self.write_bytes(p.relative_to(folder).as_posix(), p.read_bytes())


def _plain_rel(rel: str) -> bool:
    parts = rel.split("/")
    return not rel.startswith("/") and all(p not in ("", ".", "..") for p in parts)


def _mtime(info: dict[str, Any]) -> float | None:
    """The modification time in an fsspec ``info`` dict, whichever key its driver uses (s3: ``LastModified``)."""
    for key in ("mtime", "LastModified", "last_modified", "modified", "updated", "created"):
        v = info.get(key)
        if isinstance(v, datetime):
            return v.timestamp()
        if isinstance(v, (int, float)):
            return float(v)
        if isinstance(v, str):
            try:
                return datetime.fromisoformat(v.replace("Z", "+00:00")).timestamp()
            except ValueError:
                continue
    return None


def open_files(root: str | os.PathLike, key: str = "run.cache_dir") -> Any:
    """The :class:`LocalFiles` or :class:`RemoteFiles` of a folder value."""
    return RemoteFiles(str(root), key) if is_remote(root) else LocalFiles(local_path(root))
