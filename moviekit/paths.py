"""Path safety: names made from data never escape their folder, and outputs stay in the run.

* :func:`safe_component` turns an item id (or any name from the data) into one path
  component: ids that are already plain file names are kept as they are, anything else
  (``/``, ``..``, a leading dot, control characters, an over-long name) is escaped and
  suffixed with a short hash of the original, so two different ids never share a name.
* :func:`output_path` resolves an output-relative recipe value (e.g. ``export_features``'
  ``features_dir``) inside the run directory, or raises an error naming the recipe key.
* :func:`inside` says whether a path lies under a root (after resolving links).
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path, PurePosixPath, PureWindowsPath

from .errors import MoviekitError

_PLAIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+\-=@,]{0,119}$")
_UNSAFE = re.compile(r"[^A-Za-z0-9._+\-=@,]")


def safe_component(name: str) -> str:
    """``name`` as one safe path component (unchanged when it already is one)."""
    if _PLAIN.match(name) and name not in (".", ".."):
        return name
    escaped = _UNSAFE.sub("_", name).lstrip("._")[:80] or "item"
    return f"{escaped}-{hashlib.sha256(name.encode()).hexdigest()[:10]}"


def inside(path: Path, root: Path) -> bool:
    """Whether ``path`` is ``root`` or lies under it, once both are resolved (links followed)."""
    try:
        resolved = Path(path).resolve()
    except (RuntimeError, OSError):  # a symlink loop: judged by the path as written (reading it fails later, clearly)
        resolved = Path(os.path.abspath(path))
    try:
        resolved.relative_to(Path(root).resolve())
    except ValueError:
        return False
    return True


def relative_problem(text: str) -> str | None:
    """Why ``text`` cannot be an output path relative to the run directory (None when it can)."""
    text = str(text)
    if not text.strip() or text.strip() in (".", "./"):
        return f"must name a file or folder inside the run directory, got {text!r}"
    if PurePosixPath(text).is_absolute() or PureWindowsPath(text).is_absolute() or text.startswith("~"):
        return f"must be relative to the run directory, got the absolute path {text!r}"
    if ".." in PurePosixPath(text.replace("\\", "/")).parts:
        return f"must stay inside the run directory ('..' is not allowed), got {text!r}"
    return None


def output_path(out_dir: Path, rel: str, key: str) -> Path:
    """``out_dir / rel`` for an output-relative recipe value ``rel`` given at recipe key ``key``.

    Rejected, with a message naming ``key``: an absolute path, a ``..`` component, an empty
    value or ``.`` (the run directory itself), and a path that leaves ``out_dir`` through a link.
    """
    text = str(rel)
    problem = relative_problem(text)
    if problem:
        raise MoviekitError(f"{key}: {problem}")
    path = Path(out_dir) / text
    if not inside(path, out_dir) or Path(os.path.abspath(path)) == Path(os.path.abspath(out_dir)):
        raise MoviekitError(f"{key}: {text!r} leads outside the run directory {out_dir} (through a link)")
    return path
