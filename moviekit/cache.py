"""Size and pruning of an artifact store (``moviekit cache show`` / ``moviekit cache prune``).

The store is a local folder or an fsspec URL (:mod:`moviekit.location`: ``file://``, ``s3://``,
``memory://``...); a remote store's file-hash memos and checkpoints, kept in a local folder of this
machine (:func:`moviekit.store.local_companion`), are counted and pruned with it.

Only files whose path has the shape of something the store writes are counted or deleted:
``v<N>/<kind>/<hh>/<key>.zip``, ``v<N>/filehash/<hh>/<key>``, ``v<N>/checkpoints/*.pt``, the
older pickle layout (``<kind>/<hh>/<key>.pkl``, ``filehash/...``, ``checkpoints/*.pt``) and
their hidden ``.*.tmp`` temporary files.  Anything else under the root (a user's own files,
symbolic links and what they point to) is never touched, and nothing outside the root is
ever deleted.  Temporary files younger than an hour (or of unknown age) are left alone: another
run may be writing them.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .codec import FORMAT_VERSION
from .errors import MoviekitError
from .location import LocalFiles, RemoteFiles, is_remote, local_path, normalise, open_files

_HEX2 = re.compile(r"[0-9a-f]{2}")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_KIND = re.compile(r"[a-z0-9][a-z0-9_.-]*")
_VERSION = re.compile(r"v(\d+)")
#: In-flight temporary files are younger than this and never pruned.
TEMP_GRACE_S = 3600


@dataclass
class Entry:
    files: Any  # the LocalFiles / RemoteFiles folder it lies in
    rel: str  # relative to that folder (the store's root)
    kind: str
    version: int  # 1 = the old pickle layout
    size: int
    mtime: float | None  # None: the filesystem gives none (never old enough to prune by age)
    temp: bool

    @property
    def key(self) -> str:
        """Relative to ``v<N>/``: what ``<run>/artifacts.json`` lists."""
        return self.rel.split("/", 1)[1] if self.version != 1 else self.rel


def _classify(parts: tuple[str, ...] | list[str]) -> tuple[str, int, bool] | None:
    name = parts[-1]
    temp = name.startswith(".") and name.endswith(".tmp")
    m = _VERSION.fullmatch(parts[0])
    version, rest = (int(m[1]), parts[1:]) if m and int(m[1]) >= 2 else (1, parts)
    if len(rest) == 2 and rest[0] == "checkpoints" and (name.endswith(".pt") or temp or (version == 1 and name.endswith(".tmp"))):
        return "checkpoints", version, temp or name.endswith(".tmp")
    if len(rest) != 3 or not _KIND.fullmatch(rest[0]) or not _HEX2.fullmatch(rest[1]):
        return None
    if temp:
        return rest[0], version, True
    if rest[0] == "filehash":
        return ("filehash", version, False) if _HEX64.fullmatch(name) else None
    ext = ".zip" if version >= 2 else ".pkl"
    return (rest[0], version, False) if name.endswith(ext) and _HEX64.fullmatch(name[: -len(ext)]) else None


def _folders(root: str | Path) -> list[Any]:
    """The folders a store's files lie in: a local store's root; a remote store's root (an fsspec URL)
    and this machine's folder of its file-hash memos and checkpoints."""
    if is_remote(root):
        from .store import local_companion

        return [RemoteFiles(str(root), "--cache-dir"), LocalFiles(local_companion(str(root)))]
    return [LocalFiles(local_path(root))]


def _where(root: str | Path) -> str:
    """The store's root as messages and ``artifacts.json`` name it: a URL, or a resolved local path."""
    return normalise(str(root)) if is_remote(root) else str(local_path(root).resolve())


def scan(root: str | Path) -> list[Entry]:
    """Every store file under ``root``, a local path or fsspec URL (symbolic links are neither followed nor listed)."""
    out: list[Entry] = []
    for files in _folders(root):
        for rel, size, mtime in files.list_files():
            what = _classify(rel.split("/"))
            if what is not None:
                out.append(Entry(files, rel, what[0], what[1], size, mtime, what[2]))
    return out


def usage(root: str | Path) -> dict[str, Any]:
    """Size per kind of the current format, of older formats, and of leftover temporary files."""
    kinds: dict[str, dict[str, int]] = {}
    other: dict[str, dict[str, int]] = {}
    temp = {"files": 0, "bytes": 0}
    for e in scan(root):
        if e.temp:
            temp["files"] += 1
            temp["bytes"] += e.size
            continue
        group = (
            kinds.setdefault(e.kind, {"artifacts": 0, "bytes": 0})
            if e.version == FORMAT_VERSION
            else other.setdefault(f"v{e.version}", {"artifacts": 0, "bytes": 0})
        )
        group["artifacts"] += 1
        group["bytes"] += e.size
    total = sum(g["bytes"] for g in kinds.values()) + sum(g["bytes"] for g in other.values()) + temp["bytes"]
    out = {
        "root": _where(root),
        "format": FORMAT_VERSION,
        "kinds": dict(sorted(kinds.items())),
        "artifacts": sum(g["artifacts"] for g in kinds.values()),
        "other_formats": other,
        "temporary": temp,
        "bytes": total,
    }
    if is_remote(root):
        out["local"] = str(_folders(root)[1].root)
    return out


def read_manifest(run_dir: str | Path) -> dict[str, Any]:
    """``<run>/artifacts.json`` of a run directory (a local path or fsspec URL), checked."""
    folder = open_files(run_dir, "--run")
    p = folder.where("artifacts.json")
    try:
        data = json.loads(folder.read_bytes("artifacts.json"))
    except FileNotFoundError:
        raise MoviekitError(f"{p} not found: is {run_dir} a run directory of this moviekit version?") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise MoviekitError(f"{p} is not readable: {e}") from None
    ok = isinstance(data, dict) and isinstance(data.get("cache"), str) and isinstance(data.get("artifacts"), list)
    if not ok or not all(isinstance(a, str) for a in data["artifacts"]):
        raise MoviekitError(f"{p} is not a moviekit artifacts list")
    if data.get("format") != FORMAT_VERSION:
        raise MoviekitError(
            f"{p} lists artifacts of format {data.get('format')!r}, this moviekit stores format {FORMAT_VERSION}: rerun it first"
        )
    return data


def prune(
    root: str | Path,
    older_than_days: float | None = None,
    keep_runs: list[str | Path] | None = None,
    everything: bool = False,
    dry_run: bool = True,
) -> dict[str, Any]:
    """Delete (or with ``dry_run`` only list) store files under ``root`` (a local path or fsspec URL)
    selected by exactly one rule:

    ``older_than_days`` (not written or read for that long; on an object store, not written),
    ``keep_runs`` (everything that none of these runs used: their ``artifacts.json``; the runs must
    have used this cache) or ``everything``.
    """
    if sum([older_than_days is not None, bool(keep_runs), everything]) != 1:
        raise MoviekitError("choose one of --older-than DAYS, --run RUN_DIR or --all")
    where = _where(root)
    keep: set[str] | None = None
    if keep_runs:
        keep = set()
        for run in keep_runs:
            m = read_manifest(run)
            if _where(m["cache"]) != where:
                raise MoviekitError(f"{run} used the cache {m['cache']}, not {where}: pass --cache-dir {m['cache']}")
            keep.update(m["artifacts"])
    now = time.time()
    chosen: list[Entry] = []
    for e in scan(root):
        age = now - e.mtime if e.mtime is not None else 0.0
        if e.temp:
            if age >= TEMP_GRACE_S:
                chosen.append(e)
        elif everything:
            chosen.append(e)
        elif older_than_days is not None:
            if age > older_than_days * 86400:
                chosen.append(e)
        elif keep is not None and not (e.version == FORMAT_VERSION and e.key in keep):
            chosen.append(e)
    by_kind: dict[str, dict[str, int]] = {}
    for e in chosen:
        g = by_kind.setdefault(e.kind if e.version == FORMAT_VERSION else f"v{e.version}", {"files": 0, "bytes": 0})
        g["files"] += 1
        g["bytes"] += e.size
    if not dry_run:
        doomed: dict[int, tuple[Any, list[str]]] = {}
        for e in chosen:
            if e.files.contains(e.rel):  # belt and braces: never outside the root, never through a link
                doomed.setdefault(id(e.files), (e.files, []))[1].append(e.rel)
        for files, rels in doomed.values():
            files.remove_files(rels)
            files.remove_empty_dirs(rels)
    return {"root": where, "dry_run": dry_run, "files": len(chosen), "bytes": sum(e.size for e in chosen), "by_kind": by_kind}


# -- staging folders of remote run directories (moviekit.staging) ----------------------------------


def is_default_store(root: str | Path) -> bool:
    """Whether ``root`` is this machine's default store, ``$MOVIEKIT_CACHE/artifacts``: its commands
    also count and prune the staging folders of remote runs, which lie beside it."""
    from .weights import cache_root

    return not is_remote(root) and local_path(root).resolve() == (cache_root() / "artifacts").resolve()


def staging_usage() -> dict[str, Any]:
    """Folder, count and size of the local staging folders of remote run directories."""
    from .staging import list_staging, staging_root

    found = list_staging()
    return {"root": str(staging_root()), "folders": len(found), "bytes": sum(size for _p, size, _t in found)}


def prune_staging(older_than_days: float, dry_run: bool = True) -> dict[str, Any]:
    """Delete (or with ``dry_run`` only list) the staging folders of remote runs in which nothing was
    written for ``older_than_days`` days; a folder that a run in progress holds is left alone."""
    from .staging import in_use, list_staging, remove_if_idle, staging_root

    now = time.time()
    old = [(p, size) for p, size, newest in list_staging() if now - newest > older_than_days * 86400 and not in_use(p)]
    if not dry_run:
        old = [(p, size) for p, size in old if remove_if_idle(p)]
    return {"root": str(staging_root()), "dry_run": dry_run, "folders": len(old), "bytes": sum(s for _p, s in old)}
