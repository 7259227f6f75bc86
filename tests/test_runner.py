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
        "clips": {"min_clips": 2},
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


#: An expert that needs audio: RMS loudness of every quarter second.
AUDIOKIT = '''
import numpy as np
import moviekit
from moviekit import AudioNeed, Expert, Needs

moviekit_api = "1.0"


class Loudness(Expert):
    """RMS loudness of every quarter second of audio."""
    name = "test_loudness"

    def needs(self):
        return Needs(audio=AudioNeed(sample_rate=16000, chunk_seconds=1.0))

    def feature_shape(self):
        return (1,)

    def encode_audio(self, chunk):
        n = chunk.sample_rate // 4
        k = len(chunk.samples) // n
        if k == 0:
            return None
        rms = np.sqrt((chunk.samples[: k * n].reshape(k, n) ** 2).mean(axis=1))
        return chunk.start_time + (np.arange(k) + 0.5) * n / chunk.sample_rate, rms[:, None]


@moviekit.hookimpl
def register_components(register):
    register(Loudness)
'''


def test_bad_items_are_recorded_and_the_rest_finishes(tmp_path, registry):
    audiokit = types.ModuleType("mk_testaudio")
    exec(compile(AUDIOKIT, "mk_testaudio", "exec"), audiokit.__dict__)
    assert registry.add_plugin(audiokit, distribution="moviekit-testaudio").ok
    root = make_video_folder(tmp_path / "videos", n=3)
    (root / "empty.mp4").write_bytes(b"")
    (root / "corrupt.mp4").write_bytes(os.urandom(5000))
    good = (root / "v0.mp4").read_bytes()
    (root / "truncated.mp4").write_bytes(good[: len(good) // 3])
    from moviekit.testing import write_test_video

    write_test_video(root / "exploding.mp4", shots=[(5, 5, 5), (250, 250, 250)] * 3)
    write_test_video(root / "silent.mp4", shots=[(200, 30, 30), (30, 30, 200)] * 2, audio=False)
    with open(root / "labels.csv", "a") as f:
        f.write(
            "empty.mp4,Drama,train\ncorrupt.mp4,Drama,train\ntruncated.mp4,Drama,train\nexploding.mp4,Drama,train\nmissing.mp4,Drama,train\n"
        )
        f.write("silent.mp4,Drama,train\n")
    data = recipe(root, tmp_path / "cache", tasks=[{"use": "export_features"}])
    data["experts"]["luma"]["explode_on"] = "exploding"
    data["experts"]["loudness"] = {"use": "test_loudness"}
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
    # a video without an audio track keeps its visual features; the audio expert's are zeros
    assert "silent" in good_ids and "silent" not in failures
    feats = np.load(tmp_path / "out" / "features.npz")
    assert feats["silent/loudness"].shape == (4, 1)
    assert not feats["silent/loudness"].any()
    assert feats["silent/luma"].shape == (4, 2) and feats["silent/luma"].any()
    assert feats["v0/loudness"].shape == (6, 1) and (feats["v0/loudness"] > 0.05).all()


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
    proc = subprocess.Popen(
        [sys.executable, "-m", "moviekit", "run", str(rp), "-o", str(tmp_path / "killed")],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    stream = cache / "v2" / "stream"
    # Wait (generously: start-up is slow on a loaded machine) until two videos' three
    # consumers have finished, then kill the run while it works on the others.
    deadline = time.monotonic() + 600
    done = 0
    while done < 6:  # two videos' three consumers
        if proc.poll() is not None:
            pytest.fail(f"run finished before it could be killed (exit code {proc.returncode})")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"no two videos finished within 600 s ({done} artifacts)")
        time.sleep(0.05)
        done = len(list(stream.rglob("*.zip"))) if stream.exists() else 0
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    finished = len(list(stream.rglob("*.zip")))
    assert 6 <= finished < 18, finished
    # The kill may land in the middle of a write (the next video's probe or file hash is
    # written right after these artifacts): that write's temporary file stays behind, hidden
    # and never read as an artifact; every visible artifact is complete.
    from moviekit.codec import decode

    for path in cache.rglob("*.zip"):
        decode(path.read_bytes())
    for path in (cache / "v2" / "filehash").rglob("*"):
        assert path.name.startswith(".") or not path.is_file() or re.fullmatch(r"[0-9a-f]{64}", path.read_text()), path
    leftovers = [p for p in cache.rglob("*") if p.is_file() and (p.name.startswith(".") or p.suffix == ".tmp")]
    assert len(leftovers) <= 1, leftovers  # at most the one write the kill interrupted
    assert all(p.name.startswith(".") and p.suffix == ".tmp" for p in leftovers), (
        "a killed write left a temporary file visible as an artifact"
    )

    r = subprocess.run(
        [sys.executable, "-m", "moviekit", "run", str(rp), "-o", str(tmp_path / "killed")], env=env, capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    reused = int(re.search(r"reused (\d+) finished artifact", r.stdout).group(1))
    assert reused >= finished
    # an uninterrupted run from scratch gives the same outputs
    data["run"]["cache_dir"] = str(tmp_path / "cache2")
    rp2 = tmp_path / "r2.yaml"
    rp2.write_text(yaml.safe_dump(data))
    r2 = subprocess.run(
        [sys.executable, "-m", "moviekit", "run", str(rp2), "-o", str(tmp_path / "clean")], env=env, capture_output=True, text=True
    )
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


def test_default_min_clips_excludes_short_videos(tmp_path, registry):
    """Under the default ``clips`` config (min_clips=10) a video with 9 clips is excluded and reported."""
    from moviekit.testing import write_test_video

    root = tmp_path / "videos"
    root.mkdir()
    palette = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (220, 220, 40)]
    for name, n_shots in (("nine", 9), ("ten", 10), ("twelve", 12)):
        # every_n (n=12) cuts one shot per colour; trimming a frame each side leaves one clip per shot
        write_test_video(root / f"{name}.mp4", shots=[palette[k % len(palette)] for k in range(n_shots)], audio=False)
    (root / "labels.csv").write_text("video,labels,split\nnine.mp4,Drama,train\nten.mp4,Comedy,train\ntwelve.mp4,Drama,test\n")
    data = recipe(root, tmp_path / "cache", tasks=[{"use": "export_features"}])
    del data["clips"]  # the defaults
    rr = validate(data, registry=registry)
    assert rr.recipe.clips.min_clips == 10
    summary = Runner(rr, output=tmp_path / "out", registry=registry).run()
    assert summary["failures"] == 0
    assert summary["exclusions"] == 1 and summary["items"] == 2
    exclusions = json.loads((tmp_path / "out" / "exclusions.json").read_text())
    assert exclusions == [{"item": "nine", "reason": "9 clips < clips.min_clips=10"}]
    items = {x["id"]: x for x in json.loads((tmp_path / "out" / "items.json").read_text())}
    assert set(items) == {"ten", "twelve"}
    assert len(items["ten"]["clips"]) == 10 and len(items["twelve"]["clips"]) == 12
    assert (tmp_path / "out" / "failures.jsonl").read_text() == ""


def test_missing_weights_stop_the_run_before_any_data_work(tmp_path, registry, monkeypatch):
    from moviekit.components import WeightsSpec
    from moviekit.errors import WeightsNotFoundError

    monkeypatch.setenv("MOVIEKIT_OFFLINE", "1")
    monkeypatch.setenv("MOVIEKIT_WEIGHTS", str(tmp_path / "weights"))
    luma = registry.get("test_luma", "expert")
    spec = WeightsSpec(name="luma-net", hub="org/luma-net", config_key="checkpoint")
    monkeypatch.setattr(luma, "weights", lambda self: [spec])
    root = make_video_folder(tmp_path / "videos", n=2)
    runner = Runner(validate(recipe(root, tmp_path / "cache"), registry=registry), output=tmp_path / "out", registry=registry)
    with pytest.raises(WeightsNotFoundError) as e:
        runner.run()
    msg = str(e.value)
    assert msg.startswith("experts.luma (test_luma):") and "luma-net" in msg and "--set experts.luma.checkpoint=" in msg
    assert runner.decodes == 0 and "dataset" not in runner.stats
    # weights the component marks optional do not stop it
    monkeypatch.setattr(luma, "weights", lambda self: [spec.model_copy(update={"required": False})])
    assert (
        Runner(validate(recipe(root, tmp_path / "cache"), registry=registry), output=tmp_path / "out2", registry=registry).run()["failures"]
        == 0
    )
