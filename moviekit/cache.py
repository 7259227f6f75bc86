"""Size and pruning of an artifact store (``moviekit cache show`` / ``moviekit cache prune``).

Only files whose path has the shape of something the store writes are counted or deleted:
``v<N>/<kind>/<hh>/<key>.zip``, ``v<N>/filehash/<hh>/<key>``, ``v<N>/checkpoints/*.pt``, the
older pickle layout (``<kind>/<hh>/<key>.pkl``, ``filehash/...``, ``checkpoints/*.pt``) and
their hidden ``.*.tmp`` temporary files.  Anything else under the root (a user's own files,
symbolic links and what they point to) is never touched, and nothing outside the root is
ever deleted.  Temporary files younger than an hour are left alone: another run may be
writing them.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .codec import FORMAT_VERSION
from .errors import MoviekitError

_HEX2 = re.compile(r"[0-9a-f]{2}")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_KIND = re.compile(r"[a-z0-9][a-z0-9_.-]*")
_VERSION = re.compile(r"v(\d+)")
#: In-flight temporary files are younger than this and never pruned.
TEMP_GRACE_S = 3600


@dataclass
class Entry:
    path: Path
    rel: str  # relative to the root
    kind: str
    version: int  # 1 = the old pickle layout
    size: int
    mtime: float
    temp: bool

    @property
    def key(self) -> str:
        """Relative to ``v<N>/``: what ``<run>/artifacts.json`` lists."""
        return self.rel.split("/", 1)[1] if self.version != 1 else self.rel


def _classify(parts: tuple[str, ...]) -> tuple[str, int, bool] | None:
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


def scan(root: str | Path) -> list[Entry]:
    """Every store file under ``root`` (symbolic links are neither followed nor listed)."""
    root = Path(root)
    out: list[Entry] = []
    if not root.is_dir():
        return out
    for dirpath, _dirnames, filenames in os.walk(root, followlinks=False):
        for fn in filenames:
            p = Path(dirpath) / fn
            rel = p.relative_to(root)
            what = _classify(rel.parts)
            if what is None:
                continue
            st = p.lstat()
            if not os.path.isfile(p) or p.is_symlink():
                continue
            out.append(Entry(p, rel.as_posix(), what[0], what[1], st.st_size, st.st_mtime, what[2]))
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
    return {
        "root": str(Path(root).resolve()),
        "format": FORMAT_VERSION,
        "kinds": dict(sorted(kinds.items())),
        "artifacts": sum(g["artifacts"] for g in kinds.values()),
        "other_formats": other,
        "temporary": temp,
        "bytes": total,
    }


def read_manifest(run_dir: str | Path) -> dict[str, Any]:
    """``<run>/artifacts.json``, checked."""
    p = Path(run_dir) / "artifacts.json"
    try:
        data = json.loads(p.read_text())
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
    """Delete (or with ``dry_run`` only list) store files under ``root`` selected by exactly one rule:

    ``older_than_days`` (not written or read for that long), ``keep_runs`` (everything that
    none of these runs used: their ``artifacts.json``; the runs must have used this cache) or
    ``everything``.
    """
    root = Path(root)
    if sum([older_than_days is not None, bool(keep_runs), everything]) != 1:
        raise MoviekitError("choose one of --older-than DAYS, --run RUN_DIR or --all")
    keep: set[str] | None = None
    if keep_runs:
        keep = set()
        for run in keep_runs:
            m = read_manifest(run)
            if Path(m["cache"]).resolve() != root.resolve():
                raise MoviekitError(f"{run} used the cache {m['cache']}, not {root.resolve()}: pass --cache-dir {m['cache']}")
            keep.update(m["artifacts"])
    now = time.time()
    chosen: list[Entry] = []
    for e in scan(root):
        if e.temp:
            if now - e.mtime >= TEMP_GRACE_S:
                chosen.append(e)
        elif everything:
            chosen.append(e)
        elif older_than_days is not None:
            if now - e.mtime > older_than_days * 86400:
                chosen.append(e)
        elif keep is not None and not (e.version == FORMAT_VERSION and e.key in keep):
            chosen.append(e)
    by_kind: dict[str, dict[str, int]] = {}
    for e in chosen:
        g = by_kind.setdefault(e.kind if e.version == FORMAT_VERSION else f"v{e.version}", {"files": 0, "bytes": 0})
        g["files"] += 1
        g["bytes"] += e.size
    if not dry_run:
        resolved = root.resolve()
        deleted = []
        for e in chosen:
            if resolved not in e.path.resolve().parents:  # belt and braces: never outside the root
                continue
            e.path.unlink(missing_ok=True)
            deleted.append(e.path)
        _remove_empty_dirs(root, deleted)
    return {"root": str(root.resolve()), "dry_run": dry_run, "files": len(chosen), "bytes": sum(e.size for e in chosen), "by_kind": by_kind}


def _remove_empty_dirs(root: Path, deleted: list[Path]) -> None:
    """Remove the folders that held deleted files once empty, up to (never including) the root."""
    for d in sorted({p.parent for p in deleted}, key=lambda p: -len(p.parts)):
        while d != root and root in d.parents:
            try:
                d.rmdir()
            except OSError:
                break
            d = d.parent
