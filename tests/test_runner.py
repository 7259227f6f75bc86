import json
import os
import re
import signal
import subprocess
import sys
import time
import types

import numpy as np
import pytest
import yaml
from mkhelpers import TESTKIT, make_fake_plugin, make_video_folder, run_cli

from moviekit.default_plugins import media
from moviekit.errors import MoviekitError
from moviekit.plugins import Registry
from moviekit.recipe import validate
from moviekit.runner import Runner


@pytest.fixture
def registry():
    reg = Registry().load(entry_points=False)
    mod = types.ModuleType("mk_testkit")
    exec(compile(TESTKIT, "mk_testkit", "exec"), mod.__dict__)
    info = reg.add_plugin(mod, distribution="moviekit-testkit")
    assert info.ok, info.errors
    return reg


def recipe(root, cache, **extra):
    data = {
        "dataset": {"use": "video_folder", "root": str(root)},
        "segmenter": {"use": "every_n", "n": 12},
        "experts": {"luma": {"use": "test_luma"}, "colour": {"use": "color_histogram", "fps": 4}},
        "clips": {"min_clips": 2, "sequence_length": 2},
        "encoder": {"use": "mean_pool", "dim": 8, "hidden": 16},
        "head": {"use": "mlp", "hidden": [8]},
        "tasks": [{"use": "export_features"}, {"use": "multilabel_classification", "epochs": 3, "batch_size": 2}],
        "run": {"device": "cpu", "cache_dir": str(cache)},
    }
    for k, v in extra.items():
        data[k] = v
    return data


def test_end_to_end_one_decode_per_video(tmp_path, registry):
    root = make_video_folder(tmp_path / "videos", n=4)
    rr = validate(recipe(root, tmp_path / "cache"), registry=registry)
    before = media.DECODE_PASSES
    runner = Runner(rr, output=tmp_path / "out", registry=registry)
    summary = runner.run()
    assert summary["failures"] == 0
    assert summary["items"] == 4
    # one decode per video, shared by the segmenter and both experts
    assert runner.decodes == 4
    assert media.DECODE_PASSES - before == 4
    feats = np.load(tmp_path / "out" / "features.npz")
    assert feats["v0/luma"].shape == (6, 2)  # 6 shots of 12 frames, each a 10-frame clip
    assert feats["v0/colour"].shape == (6, 8 * 4 * 4)
    items = json.loads((tmp_path / "out" / "items.json").read_text())
    assert [c["start_frame"] for c in items[0]["clips"]][:2] == [1, 13]
    for name in ("recipe.yaml", "resolved.yaml", "versions.json", "summary.json", "metrics.json"):
        assert (tmp_path / "out" / name).exists() or name == "recipe.yaml"
    versions = json.loads((tmp_path / "out" / "versions.json").read_text())
    assert "torch" in versions and "moviekit" in versions and "mk_testkit" in versions["plugins"]

    # a second run reuses every artifact and decodes nothing
    runner2 = Runner(rr, output=tmp_path / "out2", registry=registry)
    s2 = runner2.run()
    assert runner2.decodes == 0
    assert s2["stages"]["extract"]["reused"] == 4 * 3
    assert s2["stages"]["extract"]["computed"] == 0
    assert (tmp_path / "out2" / "metrics.json").read_text() == (tmp_path / "out" / "metrics.json").read_text()


def test_changed_config_recomputes_only_that_component(tmp_path, registry):
    root = make_video_folder(tmp_path / "videos", n=2)
    data = recipe(root, tmp_path / "cache", tasks=[{"use": "export_features"}])
    Runner(validate(data, registry=registry), output=tmp_path / "a", registry=registry).run()
    data["experts"]["colour"]["fps"] = 2
    r = Runner(validate(data, registry=registry), output=tmp_path / "b", registry=registry)
    s = r.run()
    assert s["stages"]["extract"]["computed"] == 2  # only the colour expert, once per video
    assert s["stages"]["extract"]["reused"] == 4
    assert r.decodes == 2


def test_bad_items_are_recorded_and_the_rest_finishes(tmp_path, registry):
    root = make_video_folder(tmp_path / "videos", n=3)
    (root / "empty.mp4").write_bytes(b"")
    (root / "corrupt.mp4").write_bytes(os.urandom(5000))
    good = (root / "v0.mp4").read_bytes()
    (root / "truncated.mp4").write_bytes(good[: len(good) // 3])
    from moviekit.testing import write_test_video

    write_test_video(root / "exploding.mp4", shots=[(5, 5, 5), (250, 250, 250)] * 3)
    with open(root / "labels.csv", "a") as f:
        f.write("empty.mp4,Drama,train\ncorrupt.mp4,Drama,train\ntruncated.mp4,Drama,train\nexploding.mp4,Drama,train\nmissing.mp4,Drama,train\n")
    data = recipe(root, tmp_path / "cache", tasks=[{"use": "export_features"}])
    data["experts"]["luma"]["explode_on"] = "exploding"
    runner = Runner(validate(data, registry=registry), output=tmp_path / "out", registry=registry)
    summary = runner.run()
    failures = {f["item"]: f for f in map(json.loads, (tmp_path / "out" / "failures.jsonl").read_text().splitlines())}
    assert {"empty", "corrupt", "exploding", "missing"} <= set(failures)
    assert "empty (0 bytes)" in failures["empty"]["error"]
    assert "corrupt.mp4" in failures["corrupt"]["error"]
    assert "exploded on exploding" in failures["exploding"]["error"]
    assert "not found" in failures["missing"]["error"]
    good_ids = {x["id"] for x in json.loads((tmp_path / "out" / "items.json").read_text())}
    # the truncated file either yields what it has or is a failure that names the file
    assert "truncated" in good_ids or "truncated.mp4" in failures["truncated"]["error"]
    assert {"v0", "v1", "v2"} <= good_ids
    assert summary["failures"] == len(failures)


def test_strict_stops_at_first_failure(tmp_path, registry):
    root = make_video_folder(tmp_path / "videos", n=2)
    (root / "corrupt.mp4").write_bytes(b"not a video at all" * 100)
    with open(root / "labels.csv", "a") as f:
        f.write("corrupt.mp4,Drama,train\n")
    data = recipe(root, tmp_path / "cache", tasks=[{"use": "export_features"}])
    with pytest.raises(MoviekitError, match="corrupt"):
        Runner(validate(data, registry=registry), output=tmp_path / "out", strict=True, registry=registry).run()


def test_cli_exit_code_is_nonzero_when_an_item_failed(tmp_path):
    site = make_fake_plugin(tmp_path / "site", "moviekit-testkit", "mk_testkit", TESTKIT)
    root = make_video_folder(tmp_path / "videos", n=2)
    (root / "zero.mp4").write_bytes(b"")
    with open(root / "labels.csv", "a") as f:
        f.write("zero.mp4,Drama,train\n")
    rp = tmp_path / "r.yaml"
    rp.write_text(yaml.safe_dump(recipe(root, tmp_path / "cache", tasks=[{"use": "export_features"}])))
    r = run_cli("run", str(rp), "-o", str(tmp_path / "out"), pythonpath=site)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "1 item(s) failed" in r.stderr
    assert (tmp_path / "out" / "features.npz").exists()


def test_killed_run_resumes_from_finished_artifacts(tmp_path):
    site = make_fake_plugin(tmp_path / "site", "moviekit-testkit", "mk_testkit", TESTKIT)
    root = make_video_folder(tmp_path / "videos", n=6)
    cache = tmp_path / "cache"
    data = recipe(root, cache)
    data["experts"]["luma"]["sleep"] = 0.15  # ~1 s per video
    rp = tmp_path / "r.yaml"
    rp.write_text(yaml.safe_dump(data))
    env = dict(os.environ, PYTHONPATH=f"{site}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    proc = subprocess.Popen([sys.executable, "-m", "moviekit", "run", str(rp), "-o", str(tmp_path / "killed")], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    stream = cache / "stream"
    deadline = time.time() + 120
    while time.time() < deadline:
        done = len(list(stream.rglob("*.pkl"))) if stream.exists() else 0
        if done >= 6:  # two videos' three consumers
            break
        if proc.poll() is not None:
            pytest.fail("run finished before it could be killed")
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = len(list(stream.rglob("*.pkl")))
    assert 6 <= finished < 18, finished
    assert not list(cache.rglob("*.tmp")), "a killed write left a temporary file visible as an artifact"

    r = subprocess.run([sys.executable, "-m", "moviekit", "run", str(rp), "-o", str(tmp_path / "killed")], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    reused = int(re.search(r"reused (\d+) finished artifact", r.stdout).group(1))
    assert reused >= finished
    # an uninterrupted run from scratch gives the same outputs
    data["run"]["cache_dir"] = str(tmp_path / "cache2")
    rp2 = tmp_path / "r2.yaml"
    rp2.write_text(yaml.safe_dump(data))
    r2 = subprocess.run([sys.executable, "-m", "moviekit", "run", str(rp2), "-o", str(tmp_path / "clean")], env=env, capture_output=True, text=True)
    assert r2.returncode == 0, r2.stderr
    assert "reused 0 finished artifact" in r2.stdout
    a = np.load(tmp_path / "killed" / "features.npz")
    b = np.load(tmp_path / "clean" / "features.npz")
    assert sorted(a.files) == sorted(b.files)
    for k in a.files:
        np.testing.assert_array_equal(a[k], b[k])
    ma = json.loads((tmp_path / "killed" / "metrics.json").read_text())
    mb = json.loads((tmp_path / "clean" / "metrics.json").read_text())
    assert ma == mb
