"""Helpers shared by moviekit's own tests."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def make_fake_plugin(root: Path, dist: str, module: str, source: str, version: str = "0.1.0") -> Path:
    """A real installed-looking distribution (dist-info + entry point) under ``root``.

    Put ``root`` on PYTHONPATH and importlib.metadata discovers its entry point.
    """
    root.mkdir(parents=True, exist_ok=True)
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[moviekit]\n{module} = {module}\n")
    return root


def run_cli(*args: str, env_extra: dict | None = None, pythonpath: Path | None = None, cwd: Path | None = None, timeout: int = 300):
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "moviekit", *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout)
