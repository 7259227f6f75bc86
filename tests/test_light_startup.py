"""Start-up stays light: the registry, ``validate``, ``list``, ``show`` and ``segment`` import no torch
(nor other heavy stacks), with every installed plugin loaded.

Each check runs in a fresh interpreter (a subprocess), since this test process may have imported
torch already.  The CLI is run in-process there through :func:`moviekit.cli.main`, and the modules it
left in ``sys.modules`` are printed as JSON after it returns.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from moviekit.plugins import ENTRY_POINT_GROUP
from moviekit.testing import write_test_video

REPO = Path(__file__).resolve().parents[1]
#: Stacks a command that only reads recipes and the registry must not import.
HEAVY = ("torch", "torchaudio", "torchvision", "open_clip", "transformers", "faiss", "ray", "sklearn", "scipy")
#: What decoding and shot detection legitimately need (``segment`` only).
MEDIA = ("av", "cv2", "scenedetect")

_PROBE = r"""
import json, sys
from moviekit.cli import main
from moviekit.plugins import get_registry
sys.argv = ["moviekit", *json.loads(sys.argv[1])]
code = 0
try:
    main()
except SystemExit as e:
    code = e.code or 0
reg = get_registry()
print("MODULES " + json.dumps({
    "code": code,
    "modules": sorted(m for m in sys.modules if "." not in m),
    "plugins": {name: p.ok for name, p in reg.plugins.items()},
}))
"""


def _run(*args: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "MOVIEKIT_LOAD_PLUGINS"}  # every installed plugin
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(list(args))], capture_output=True, text=True, env=env, cwd=REPO, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = [x for x in proc.stdout.splitlines() if x.startswith("MODULES ")][-1]
    return json.loads(line[len("MODULES ") :])


def _installed_plugins() -> set[str]:
    return {ep.name for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}


def _check(out: dict, allowed: tuple[str, ...] = ()) -> None:
    assert out["code"] == 0
    # every installed plugin was loaded (and loaded fine), so their imports were exercised
    assert _installed_plugins() <= set(out["plugins"]), out["plugins"]
    assert all(out["plugins"].values()), out["plugins"]
    heavy = sorted(set(out["modules"]) & set(HEAVY + MEDIA) - set(allowed))
    assert not heavy, f"imported at start-up: {heavy}"


RECIPES = sorted(r.name for r in (REPO / "recipes").glob("*.yaml"))
#: Recipes whose weights report asks a hub library for a checkpoint's source: open_clip's and timm's
#: pretrained tables are only reachable by importing them, and both import torch.  Without the report
#: (``--no-weights``) they stay light like the others (checked below); with it they import torch (not run
#: here: importing torch and open_clip takes 10-20 s on a loaded CI machine).
HUB_TABLES = {
    "mmx_trailer_paper.yaml": "mmx_appearance.weights() imports timm for a timm backbone's pretrained config",
    "movieclip_scenes.yaml": "moviekit.backends.openclip.weights_spec imports open_clip for a pretrained tag's config",
}


@pytest.mark.parametrize(
    "args",
    [
        ("validate", "recipes/mmx_trailer.yaml"),
        ("list",),
        ("list", "experts"),
        ("show", "mmx_audio"),
        ("show", "scenedetect"),
    ],
    ids=lambda a: "-".join(Path(x).stem for x in a),
)
def test_commands_import_no_heavy_stack(args):
    _check(_run(*args))


_RECIPES = r"""
import json, sys
from pathlib import Path
from moviekit.cli import _weights_report
from moviekit.plugins import get_registry
from moviekit.recipe import load_recipe
report = []
for name in json.loads(sys.argv[1]):
    resolved = load_recipe(Path("recipes") / name, [])
    if name not in json.loads(sys.argv[2]):
        _weights_report(resolved)
    report.append(name)
print("MODULES " + json.dumps({
    "code": 0,
    "validated": report,
    "modules": sorted(m for m in sys.modules if "." not in m),
    "plugins": {name: p.ok for name, p in get_registry().plugins.items()},
}))
"""


def test_every_recipe_validates_without_heavy_stacks():
    """What ``validate`` does for every recipe in ``recipes/``, in one process: load and check it, and
    report its missing weights (not for :data:`HUB_TABLES`, whose report needs torch)."""
    proc = subprocess.run(
        [sys.executable, "-c", _RECIPES, json.dumps(RECIPES), json.dumps(sorted(HUB_TABLES))],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "MOVIEKIT_LOAD_PLUGINS"},
        cwd=REPO,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads([x for x in proc.stdout.splitlines() if x.startswith("MODULES ")][-1][len("MODULES ") :])
    assert out["validated"] == RECIPES and len(RECIPES) >= 5
    _check(out)


def test_show_every_plugin_component_imports_no_torch():
    """``show`` of each plugin's components (their config classes are read, nothing is built)."""
    from moviekit.plugins import get_registry

    reg = get_registry()
    names = [n for n, r in reg.components.items() if reg.plugin_of(n) is not None and not reg.plugin_of(n).default]
    assert names
    for name in names[:: max(1, len(names) // 3)][:3]:  # a spread over the plugins, to keep the test short
        _check(_run("show", name))


def test_segment_imports_media_but_not_torch(tmp_path):
    video = write_test_video(tmp_path / "two.mp4", shots=[(20, 20, 20), (230, 230, 230)])
    out = _run("segment", str(video))
    _check(out, allowed=MEDIA)
    assert "scenedetect" in out["modules"]  # it did segment
