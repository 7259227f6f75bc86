import subprocess
import sys

import yaml
from mkhelpers import make_video_folder, run_cli

from moviekit.errors import MoviekitError
from moviekit.scaffold import create_plugin, names_for


def test_names_are_valid_python():
    n = names_for("moviekit-my-expert")
    assert n["pkg"] == "moviekit_my_expert" and n["pkg"].isidentifier()
    assert n["component"] == "my_expert_brightness"
    try:
        names_for("1bad name")
    except MoviekitError as e:
        assert "1bad name" in str(e)
    else:
        raise AssertionError("invalid name accepted")


def test_new_plugin_installs_lists_runs_and_its_tests_pass(tmp_path):
    r = run_cli("new-plugin", "moviekit-scaffoldtest", "--dir", str(tmp_path))
    assert r.returncode == 0, r.stderr
    root = tmp_path / "moviekit-scaffoldtest"
    target = tmp_path / "site"
    pip = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target", str(target), str(root)],
        capture_output=True,
        text=True,
    )
    assert pip.returncode == 0, pip.stderr
    listed = run_cli("list", "plugins", "--json", pythonpath=target)
    assert '"moviekit-scaffoldtest"' in listed.stdout and '"scaffoldtest_brightness"' in listed.stdout
    videos = make_video_folder(tmp_path / "videos", n=2)
    recipe = {
        "dataset": {"use": "video_folder", "root": str(videos)},
        "segmenter": {"use": "fixed_length", "seconds": 1.0},
        "experts": {"brightness": {"use": "scaffoldtest_brightness", "fps": 4}},
        "clips": {"min_clips": 1},
        "tasks": [{"use": "export_features"}],
        "run": {"device": "cpu"},
    }
    rp = tmp_path / "r.yaml"
    rp.write_text(yaml.safe_dump(recipe))
    run = run_cli("run", str(rp), "-o", str(tmp_path / "out"), pythonpath=target)
    assert run.returncode == 0, run.stdout + run.stderr
    import numpy as np

    feats = np.load(tmp_path / "out" / "features.npz")
    assert feats["v0/brightness"].shape[1] == 4
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(root / "tests")],
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "PYTHONPATH": str(target)},
        cwd=root,
    )
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "3 passed" in tests.stdout or "passed" in tests.stdout


def test_refuses_to_overwrite(tmp_path):
    create_plugin("moviekit-x", tmp_path)
    try:
        create_plugin("moviekit-x", tmp_path)
    except MoviekitError as e:
        assert "already exists" in str(e)
    else:
        raise AssertionError("overwrote an existing plugin folder")
