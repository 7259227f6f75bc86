"""`moviekit new-plugin`: scaffold a third-party plugin package from templates."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from string import Template

from .errors import MoviekitError
from .plugins import PLUGIN_API_VERSION


def names_for(dist: str) -> dict[str, str]:
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_.-]*", dist):
        raise MoviekitError(f"plugin name {dist!r}: use letters, digits, '-', '_' or '.', starting with a letter")
    pkg = re.sub(r"[^a-z0-9]+", "_", dist.lower()).strip("_")
    short = pkg.removeprefix("moviekit_") or pkg
    cls = "".join(part.capitalize() for part in short.split("_")) + "Brightness"
    return {"dist": dist, "pkg": pkg, "entry": short, "component": f"{short}_brightness", "cls": cls, "api": PLUGIN_API_VERSION}


def create_plugin(dist: str, parent: Path) -> Path:
    names = names_for(dist)
    root = Path(parent) / dist
    if root.exists() and any(root.iterdir()):
        raise MoviekitError(f"{root} already exists and is not empty")
    base = resources.files("moviekit") / "templates" / "plugin"
    layout = {
        "pyproject.toml.tmpl": "pyproject.toml",
        "README.md.tmpl": "README.md",
        "package/__init__.py.tmpl": f"{names['pkg']}/__init__.py",
        "package/plugin.py.tmpl": f"{names['pkg']}/plugin.py",
        "tests/test_plugin.py.tmpl": "tests/test_plugin.py",
    }
    for src, dest in layout.items():
        text = Template((base / src).read_text()).substitute(names)
        out = root / dest
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
    return root
