"""Fault injection (issue 11): hostile or careless input and interrupted runs.

Each test names the issue item it covers.  Small recipes (a frame-count segmenter, a luma
expert, a few epochs), so the whole file runs in well under two minutes.
"""

import csv
import json
import os
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np
import pytest
import yaml
from mkhelpers import TESTKIT, make_fake_plugin, make_video_folder, run_cli

from moviekit.errors import MoviekitError, RecipeError, WeightsNotFoundError
from moviekit.plugins import Registry
from moviekit.recipe import apply_overrides, validate
from moviekit.runner import Runner

#: A test expert that draws from the global torch RNG when it opens a video (like an expert that
#: builds its network lazily), so a run whose extraction is cached consumes less randomness.
RNGKIT = '''
import numpy as np
import moviekit
from moviekit import Config, Expert, FrameNeed, Needs

moviekit_api = "1.0"


class Greedy(Expert):
    """Mean red per frame; draws from the global RNGs in open()."""
    name = "test_greedy"

    def needs(self):
        return Needs(frames=FrameNeed(fps=6, size=(8, 8), batch=4))

    def feature_shape(self):
        return (1,)

    def open(self, video, info):
        import random
        import torch
        torch.rand(1000)
        np.random.rand(1000)
        random.random()
        return super().open(video, info)

    def encode_frames(self, batch):
        return batch.frames[..., 0].astype(np.float32).mean(axis=(1, 2))[:, None] / 255.0


class Raiser(Expert):
    """Raises in its constructor when `explode` is set."""
    name = "test_raiser"

    class Config(Config):
        explode: bool = True

    def __init__(self, config=None, **fields):
        super().__init__(config, **fields)
        if self.config.explode:
            raise RuntimeError("no GPU driver in this constructor")


@moviekit.hookimpl
def register_components(register):
    register(Greedy)
    register(Raiser)
'''


def _module(name, source):
    mod = types.ModuleType(name)
    exec(compile(source, name, "exec"), mod.__dict__)
    return mod


@pytest.fixture
def registry():
    reg = Registry().load(entry_points=False)
    for name, src in (("mk_testkit", TESTKIT), ("mk_rngkit", RNGKIT)):
        info = reg.add_plugin(_module(name, src), distribution=name.replace("_", "-"))
        assert info.ok, info.errors
    return reg


def recipe(root, cache, tasks=None, **extra):
    data = {
        "dataset": {"use": "video_folder", "root": str(root)},
        "segmenter": {"use": "every_n", "n": 12},
        "experts": {"luma": {"use": "test_luma"}, "greedy": {"use": "test_greedy"}},
        "clips": {"min_clips": 2},
        "encoder": {"use": "mean_pool", "dim": 8, "hidden": 16, "dropout": 0.3},
        "head": {"use": "mlp", "hidden": [8], "dropout": 0.3},
        "tasks": tasks if tasks is not None else [{"use": "multilabel_classification", "epochs": 3, "batch_size": 2}],
        "run": {"device": "cpu", "cache_dir": str(cache)},
    }
    data.update(extra)
    return data


def run(registry, data, out, **kw):
    runner = Runner(validate(data, registry=registry), output=out, registry=registry, **kw)
    return runner, runner.run()


def task_stats(runner):
    return {k: (v.computed, v.reused) for k, v in runner.stats.items() if k.startswith("task")}


def failures(out):
    return [json.loads(line) for line in (Path(out) / "failures.jsonl").read_text().splitlines()]


# -- 1. task keys see every input ------------------------------------------------------------


def test_task_keys_see_labels_splits_metadata_and_seed(tmp_path, registry):
    """Item 1: a labels.csv row, dataset.seed, split_fractions, a metadata column or the run seed
    changes the task key (recompute); an identical rerun reuses."""
    root = make_video_folder(tmp_path / "videos", n=6)
    rows = ["video,labels,note"] + [f"v{i}.mp4,{('Drama', 'Comedy')[i % 2]},a" for i in range(6)]
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    cache = tmp_path / "cache"
    tasks = [{"use": "multilabel_classification", "epochs": 1, "batch_size": 4}]
    base = recipe(root, cache, tasks)
    base["dataset"]["split_fractions"] = [0.5, 0.0, 0.5]
    r, _ = run(registry, base, tmp_path / "o0")
    assert list(task_stats(r).values()) == [(1, 0)]
    r, _ = run(registry, base, tmp_path / "o1")
    assert list(task_stats(r).values()) == [(0, 1)], "an identical rerun reuses the task"
    per_class = list(csv.DictReader((tmp_path / "o1" / "per_class.csv").open()))

    def changed(name, data, csv_text=None):
        if csv_text is not None:
            (root / "labels.csv").write_text(csv_text)
        r, _ = run(registry, data, tmp_path / name)
        assert list(task_stats(r).values()) == [(1, 0)], f"{name}: the task was reused"
        (root / "labels.csv").write_text("\n".join(rows) + "\n")

    relabelled = list(rows)
    relabelled[1] = "v0.mp4,Comedy,a"
    changed("labels", base, "\n".join(relabelled) + "\n")
    changed("seed", {**base, "dataset": {**base["dataset"], "seed": 7}})
    changed("fractions", {**base, "dataset": {**base["dataset"], "split_fractions": [0.67, 0.0, 0.33]}})
    changed("metadata", base, "\n".join(rows).replace(",a", ",b") + "\n")
    changed("runseed", {**base, "run": {**base["run"], "seed": 3}})
    # an explicit split column: moving two videos into test with new labels shows in per_class
    moved = ["video,labels,split"] + [f"v{i}.mp4,{('Drama', 'Comedy')[i % 2]},{'test' if i in (0, 1) else 'train'}" for i in range(6)]
    (root / "labels.csv").write_text("\n".join(moved) + "\n")
    r, _ = run(registry, base, tmp_path / "moved")
    assert list(task_stats(r).values()) == [(1, 0)]
    support = {row["label"]: row.get("support") for row in csv.DictReader((tmp_path / "moved" / "per_class.csv").open())}
    assert support != {row["label"]: row.get("support") for row in per_class}


def test_task_key_sees_precomputed_feature_values(tmp_path, registry):
    """Item 1: a features_dir whose array values change (same shapes) recomputes the task."""
    from moviekit.default_plugins.formats import write_features_dir
    from moviekit.testing import tiny_items

    items = tiny_items(n=6, n_clips=3, modalities={"visual": (4,)})
    write_features_dir(tmp_path / "f", items)
    data = {
        "dataset": {"use": "features_dir", "root": str(tmp_path / "f")},
        "encoder": {"use": "mean_pool", "dim": 4, "hidden": 8},
        "head": {"use": "mlp", "hidden": [4]},
        "tasks": [{"use": "multilabel_classification", "epochs": 1, "batch_size": 4}],
        "run": {"device": "cpu", "cache_dir": str(tmp_path / "cache")},
    }
    r, _ = run(registry, data, tmp_path / "a")
    r, _ = run(registry, data, tmp_path / "b")
    assert list(task_stats(r).values()) == [(0, 1)]
    some = next((tmp_path / "f" / "visual").iterdir()) / "0.npy"
    np.save(some, np.load(some) + 1.0)
    r, _ = run(registry, data, tmp_path / "c")
    assert list(task_stats(r).values()) == [(1, 0)]


# -- 2. exact resume -------------------------------------------------------------------------


class Killed(BaseException):
    """Stands in for a SIGKILL at an exact point (BaseException: nothing catches it)."""


def _kill_at(monkeypatch, where):
    """Make the run die once at ``where``; returns the undo."""
    import moviekit.runner as runner_mod
    import moviekit.training as training

    if where == "after_extract":
        orig = runner_mod.Runner.upstream_key

        def boom(self, *a, **k):
            raise Killed(where)

        monkeypatch.setattr(runner_mod.Runner, "upstream_key", boom)
        return lambda: monkeypatch.setattr(runner_mod.Runner, "upstream_key", orig)
    if where == "after_first_task":
        orig = runner_mod.ArtifactStore.put

        def put(self, kind, key, value):
            path = orig(self, kind, key, value)
            if kind == "task":
                raise Killed(where)
            return path

        monkeypatch.setattr(runner_mod.ArtifactStore, "put", put)
        return lambda: monkeypatch.setattr(runner_mod.ArtifactStore, "put", orig)
    if where == "after_checkpoint":
        orig = training.epoch_done

        def done(tag, epoch, history):
            if epoch == 2:
                raise Killed(where)

        monkeypatch.setattr(training, "epoch_done", done)
        return lambda: monkeypatch.setattr(training, "epoch_done", orig)
    raise AssertionError(where)


@pytest.mark.parametrize("where", ["after_extract", "after_first_task", "after_checkpoint"])
def test_resumed_run_gives_the_uninterrupted_metrics_byte_for_byte(tmp_path, registry, monkeypatch, where):
    """Item 2: killed at a stage boundary or just after a mid-task checkpoint, the rerun's
    metrics.json equals an uninterrupted run's byte for byte, although the killed process's
    RNGs were consumed differently (an expert draws randomness only when it extracts)."""
    import torch

    root = make_video_folder(tmp_path / "videos", n=4)
    tasks = [{"use": "export_features"}, {"use": "multilabel_classification", "epochs": 4, "batch_size": 2, "checkpoint_every": 1}]
    run(registry, recipe(root, tmp_path / "clean-cache", tasks), tmp_path / "clean")
    reference = (tmp_path / "clean" / "metrics.json").read_bytes()

    data = recipe(root, tmp_path / "cache", tasks)
    undo = _kill_at(monkeypatch, where)
    with pytest.raises(Killed):
        run(registry, data, tmp_path / "killed")
    undo()
    if where == "after_checkpoint":
        assert list((tmp_path / "cache").rglob("checkpoints/*.pt")), "the kill came after a checkpoint"
    torch.manual_seed(12345)  # whatever the process did before, the result must not depend on it
    np.random.seed(4321)
    r, _ = run(registry, data, tmp_path / "killed")
    assert (tmp_path / "killed" / "metrics.json").read_bytes() == reference
    assert sum(s.reused for s in r.stats.values()) > 0


def test_seeded_restores_the_global_rng_state():
    """Item 2: device.seeded gives the same draws for one scope and leaves the global state as it was."""
    import random

    import torch

    from moviekit.device import derive_seed, seeded

    torch.manual_seed(1)
    before = torch.get_rng_state().clone()
    py = random.getstate()
    with seeded(0, "task", "tasks[0]"):
        a = torch.rand(3)
    with seeded(0, "task", "tasks[0]"):
        b = torch.rand(3)
    with seeded(0, "task", "tasks[1]"):
        c = torch.rand(3)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(torch.get_rng_state(), before) and random.getstate() == py
    assert derive_seed(0, "x") != derive_seed(1, "x")


# -- 3. truncation ---------------------------------------------------------------------------


def _front_indexed(src: Path, dst: Path) -> Path:
    """Remux ``src`` with the index (moov) at the front, as web-ready mp4s are."""
    import av

    with av.open(str(src)) as i, av.open(str(dst), "w", options={"movflags": "faststart"}) as o:
        streams = {s.index: o.add_stream_from_template(s) for s in i.streams}
        for pkt in i.demux():
            if pkt.dts is None:
                continue
            pkt.stream = streams[pkt.stream.index]
            o.mux(pkt)
    return dst


def test_truncated_front_indexed_mp4_is_an_item_failure(tmp_path, registry):
    """Item 3: cut to 30% of its bytes, a front-indexed mp4 decodes a few frames without an
    FFmpeg error; with only frame consumers it still fails, at the decode stage."""
    root = make_video_folder(tmp_path / "videos", n=3)
    full = _front_indexed(root / "v0.mp4", tmp_path / "front.mp4").read_bytes()
    assert full.find(b"moov") < full.find(b"mdat")
    (root / "cut.mp4").write_bytes(full[: int(len(full) * 0.3)])
    with open(root / "labels.csv", "a") as f:
        f.write("cut.mp4,Drama,train\n")
    data = recipe(root, tmp_path / "cache", [{"use": "export_features"}])
    data["experts"] = {"luma": {"use": "test_luma"}}
    _, summary = run(registry, data, tmp_path / "out")
    (rec,) = [f for f in failures(tmp_path / "out") if f["item"] == "cut"]
    assert rec["stage"] == "decode" and rec["component"] == "run.reader"
    assert "truncated" in rec["error"] and "cut.mp4" in rec["error"]
    assert summary["items"] == 3


# -- 4. export_features never deletes what it did not create --------------------------------


@pytest.mark.parametrize("bad", ["/abs/elsewhere", "..", ".", "../sibling", "a/../../x"])
def test_features_dir_outside_the_run_is_rejected_by_validate(tmp_path, registry, bad):
    root = make_video_folder(tmp_path / "videos", n=1)
    with pytest.raises(RecipeError) as e:
        validate(recipe(root, tmp_path / "cache", [{"use": "export_features", "features_dir": bad}]), registry=registry)
    assert "tasks[0]" in str(e.value) and "features_dir" in str(e.value)


def test_features_dir_checked_at_run_time_too(tmp_path):
    """Item 4: the task itself refuses an escaping folder (a recipe that skipped validate)."""
    from moviekit.default_plugins.generic import ExportFeatures

    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("mine")
    out = tmp_path / "run"
    out.mkdir()
    task = ExportFeatures()
    task.config = task.config.model_copy(update={"features_dir": str(victim)})
    ctx = types.SimpleNamespace(out_dir=out, items=[])
    with pytest.raises(MoviekitError, match="features_dir"):
        task.run(ctx)
    assert (victim / "keep.txt").read_text() == "mine"


def test_existing_project_folder_keeps_its_files(tmp_path, registry):
    """Item 4: -o into a folder whose features/ the user made: the run stops, nothing is deleted;
    a features/ that moviekit wrote is replaced (stale videos gone) and listed in manifest.json."""
    root = make_video_folder(tmp_path / "videos", n=2)
    project = tmp_path / "project"
    (project / "features").mkdir(parents=True)
    (project / "features" / "notes.txt").write_text("my notes")
    data = recipe(root, tmp_path / "cache", [{"use": "export_features"}])
    with pytest.raises(MoviekitError, match="not written by moviekit"):
        run(registry, data, project)
    assert (project / "features" / "notes.txt").read_text() == "my notes"

    out = tmp_path / "out"
    run(registry, data, out)
    manifest = json.loads((out / "manifest.json").read_text())["files"]
    assert "features/labels.csv" in manifest and "features.npz" in manifest
    (root / "labels.csv").write_text("video,labels,split\nv0.mp4,Drama,train\n")
    run(registry, data, out)
    assert sorted(p.name for p in (out / "features" / "luma").iterdir()) == ["v0"]
    assert not [p for p in out.iterdir() if p.name.startswith(".features")], "temporary folders are cleaned up"


# -- 5./6. paths in labels.csv, ids, duplicates ----------------------------------------------


def test_labels_rows_stay_inside_the_root(tmp_path, registry):
    root = make_video_folder(tmp_path / "videos", n=2)
    outside = tmp_path / "elsewhere.mp4"
    (root / "v0.mp4").rename(outside)
    for row in ("../elsewhere.mp4", str(outside)):
        (root / "labels.csv").write_text(f"video,labels,split\n{row},Drama,train\nv1.mp4,Comedy,test\n")
        data = recipe(root, tmp_path / "cache", [{"use": "export_features"}])
        with pytest.raises(MoviekitError) as e:
            run(registry, data, tmp_path / "out")
        assert f"{root / 'labels.csv'}:2" in str(e.value) and "allow_outside_root" in str(e.value)
        data["dataset"]["allow_outside_root"] = True
        _, summary = run(registry, data, tmp_path / "ok")
        assert summary["failures"] == 0 and summary["items"] == 2


def test_item_ids_are_never_raw_path_components(tmp_path):
    from moviekit.paths import safe_component

    for raw in ("../x", "..", ".", "/etc/passwd", "a/b", ".hidden", "a\\b", "x" * 300, "tt\x00y"):
        name = safe_component(raw)
        assert "/" not in name and "\\" not in name and name not in (".", "..") and not name.startswith(".")
        assert len(name) < 130 and "\x00" not in name
    assert safe_component("v0") == "v0" and safe_component("a/b") != safe_component("a_b")


def test_ids_with_slashes_write_features_inside_the_folder(tmp_path, registry):
    """Item 5: a video in a subfolder (id `sub/v0`) is written as one escaped folder, and read back."""
    root = make_video_folder(tmp_path / "videos", n=3)
    (root / "sub").mkdir()
    (root / "v0.mp4").rename(root / "sub" / "v0.mp4")
    (root / "labels.csv").write_text("video,labels,split\nsub/v0.mp4,Drama,train\nv1.mp4,Comedy,test\nv2.mp4,Drama,train\n")
    run(registry, recipe(root, tmp_path / "cache", [{"use": "export_features"}]), tmp_path / "out")
    folders = [p.name for p in (tmp_path / "out" / "features" / "luma").iterdir()]
    assert len(folders) == 3 and all("/" not in f for f in folders) and "v1" in folders
    back = validate({"dataset": {"use": "features_dir", "root": str(tmp_path / "out" / "features")}, "tasks": []}, registry=registry)
    ids = {v.id for v in back.component("dataset").build().items()}
    assert ids == {"sub/v0", "v1", "v2"}


@pytest.mark.parametrize("case", ["twice", "train_and_test", "two_extensions", "dot_slash"])
def test_duplicate_ids_are_an_error_naming_both_rows(tmp_path, registry, case):
    root = make_video_folder(tmp_path / "videos", n=2)
    csv = root / "labels.csv"
    if case == "two_extensions":
        os.link(root / "v0.mp4", root / "v0.mkv")
        csv.unlink()
    elif case == "twice":
        csv.write_text("video,labels,split\nv0.mp4,Drama,train\nv1.mp4,Comedy,test\nv0.mp4,Drama,train\n")
    elif case == "train_and_test":
        csv.write_text("video,labels,split\nv0.mp4,Drama,train\nv1.mp4,Comedy,test\nv0.mp4,Drama,test\n")
    else:
        csv.write_text("video,labels,split\nv0.mp4,Drama,train\nv1.mp4,Comedy,test\n./v0.mp4,Drama,test\n")
    with pytest.raises(MoviekitError) as e:
        run(registry, recipe(root, tmp_path / "cache", [{"use": "export_features"}]), tmp_path / "out")
    msg = str(e.value)
    assert "duplicate item id 'v0'" in msg
    if case == "two_extensions":
        assert "v0.mkv" in msg and "v0.mp4" in msg
    else:
        assert f"{csv}:2" in msg and f"{csv}:4" in msg


# -- 7. signals and children -----------------------------------------------------------------


def _env(site):
    env = dict(os.environ, PYTHONPATH=f"{site}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    env.pop("MOVIEKIT_LOAD_PLUGINS", None)
    return env


def test_sigterm_ends_the_run_cleanly_and_it_resumes(tmp_path):
    """Item 7: SIGTERM mid-extraction: exit 143 with a message, no traceback; the rerun resumes."""
    site = make_fake_plugin(tmp_path / "site", "moviekit-testkit", "mk_testkit", TESTKIT)
    root = make_video_folder(tmp_path / "videos", n=4)
    data = recipe(root, tmp_path / "cache", [{"use": "export_features"}])
    data["experts"] = {"luma": {"use": "test_luma", "sleep": 0.1}}
    rp = tmp_path / "r.yaml"
    rp.write_text(yaml.safe_dump(data))
    cmd = [sys.executable, "-m", "moviekit", "run", str(rp), "-o", str(tmp_path / "out")]
    proc = subprocess.Popen(cmd, env=_env(site), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stream = tmp_path / "cache" / "v2" / "stream"
    deadline = time.monotonic() + 300
    while not (stream.exists() and list(stream.rglob("*.zip"))):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert "interrupted by SIGTERM" in err and "Traceback" not in err
    assert not list(tmp_path.joinpath("cache").rglob("*.tmp"))
    r = subprocess.run(cmd, env=_env(site), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "reused 0 finished" not in r.stdout


def _children(pid):
    out = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                stat = (p / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(p.name))
    return out


def _alive(pid):
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc to find the worker processes")
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_generator_workers_die_with_the_parent(tmp_path, sig):
    """Item 7: the synthetic generator's worker processes do not outlive a killed parent."""
    data = {
        "dataset": {
            "use": "synthetic_trailers",
            "n": 40,
            "workers": 2,
            "min_seconds": 4,
            "max_seconds": 6,
            "root": str(tmp_path / "synth"),
        },
        "tasks": [],
        "run": {"device": "cpu", "cache_dir": str(tmp_path / "cache")},
    }
    rp = tmp_path / "r.yaml"
    rp.write_text(yaml.safe_dump(data))
    env = dict(os.environ)
    env.pop("MOVIEKIT_LOAD_PLUGINS", None)
    proc = subprocess.Popen([sys.executable, "-m", "moviekit", "run", str(rp), "-o", str(tmp_path / "out")], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.monotonic() + 300
    kids = []
    while len(kids) < 2:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no worker processes appeared"
        time.sleep(0.1)
        kids = [k for k in _children(proc.pid) if _alive(k)]
    time.sleep(0.5)
    proc.send_signal(sig)
    proc.wait(timeout=60)
    deadline = time.monotonic() + 30
    while any(_alive(k) for k in kids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(k) for k in kids), f"workers {kids} outlived the parent ({sig.name})"
    if sig == signal.SIGTERM:
        assert proc.returncode == 143
        assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name], "the temporary dataset folder is removed"


# -- 10. run-wide problems stated once --------------------------------------------------------


def test_unusable_output_or_cache_stops_before_data_work(tmp_path, registry):
    root = make_video_folder(tmp_path / "videos", n=1)
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    runner = Runner(validate(recipe(root, tmp_path / "cache"), registry=registry), output=a_file, registry=registry)
    with pytest.raises(MoviekitError, match="output directory .* is not a folder"):
        runner.run()
    assert runner.decodes == 0 and a_file.read_text() == "x"
    runner = Runner(validate(recipe(root, a_file), registry=registry), output=tmp_path / "out", registry=registry)
    with pytest.raises(MoviekitError, match="artifact cache"):
        runner.run()
    assert "dataset" not in runner.stats


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root can write to read-only folders")
def test_read_only_cache_is_one_message(tmp_path, registry):
    root = make_video_folder(tmp_path / "videos", n=2)
    cache = tmp_path / "cache"
    cache.mkdir()
    cache.chmod(0o500)
    try:
        with pytest.raises(MoviekitError, match="not writable"):
            run(registry, recipe(root, cache), tmp_path / "out")
    finally:
        cache.chmod(0o700)


@pytest.mark.parametrize("kind", ["corrupt_file", "empty_folder", "folder_without_checkpoint", "empty_file"])
def test_bad_weights_stop_the_run_once(tmp_path, registry, monkeypatch, kind):
    """Item 10: a corrupt weights file or a folder without a checkpoint: one message, before decoding."""
    from moviekit.components import WeightsSpec

    weights = tmp_path / "w"
    if kind == "corrupt_file":
        weights = tmp_path / "model.safetensors"
        weights.write_bytes(os.urandom(200))
    elif kind == "empty_file":
        weights = tmp_path / "model.pth"
        weights.write_bytes(b"")
    else:
        weights.mkdir()
        if kind == "folder_without_checkpoint":
            (weights / "README.md").write_text("download the weights here")
    luma = registry.get("test_luma", "expert")
    monkeypatch.setattr(luma, "weights", lambda self: [WeightsSpec(name="luma-net", path=str(weights), config_key="checkpoint")])
    root = make_video_folder(tmp_path / "videos", n=2)
    runner = Runner(validate(recipe(root, tmp_path / "cache"), registry=registry), output=tmp_path / "out", registry=registry)
    with pytest.raises(WeightsNotFoundError) as e:
        runner.run()
    assert str(e.value).startswith("experts.luma (test_luma):") and str(weights) in str(e.value)
    assert runner.decodes == 0


def test_every_item_failing_for_one_reason_says_that_reason(tmp_path, registry):
    root = make_video_folder(tmp_path / "videos", n=3)
    data = recipe(root, tmp_path / "cache")
    data["experts"]["luma"]["explode_on"] = "v"
    with pytest.raises(MoviekitError) as e:
        run(registry, data, tmp_path / "out")
    msg = str(e.value)
    assert "all 3 video(s) failed" in msg and "exploded on" in msg and "experts.luma" in msg
    assert "needs train and test" not in msg


# -- 12. reused export_features recreates features/ ------------------------------------------


def test_reused_export_recreates_the_features_folder(tmp_path, registry):
    root = make_video_folder(tmp_path / "videos", n=2)
    data = recipe(root, tmp_path / "cache", [{"use": "export_features"}])
    run(registry, data, tmp_path / "a")
    r, _ = run(registry, data, tmp_path / "b")
    assert list(task_stats(r).values()) == [(0, 1)]
    a = sorted(p.relative_to(tmp_path / "a").as_posix() for p in (tmp_path / "a" / "features").rglob("*") if p.is_file())
    b = sorted(p.relative_to(tmp_path / "b").as_posix() for p in (tmp_path / "b" / "features").rglob("*") if p.is_file())
    assert a == b and len(a) > 4
    for rel in a:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes()


# -- 13.-16. messages ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "override,key",
    [
        ("name.sub=1", "name.sub"),
        ("experts.colour.fps.x=3", "experts.colour.fps.x"),
        (".=1", "."),
        ("tasks[5].epochs=1", "tasks[5]"),
        ("a..b=1", "a..b"),
    ],
)
def test_malformed_set_is_a_recipe_error_naming_the_key(override, key):
    data = {"name": "q", "experts": {"colour": {"use": "color_histogram", "fps": 2}}, "tasks": [{"use": "export_features"}]}
    with pytest.raises(RecipeError) as e:
        apply_overrides(data, [override])
    assert key in str(e.value) and "\n" not in str(e.value)


def test_cli_messages_exit_2_with_one_line(tmp_path):
    root = make_video_folder(tmp_path / "videos", n=1)
    rp = tmp_path / "r.yaml"
    rp.write_text(yaml.safe_dump({"name": "q", "dataset": {"use": "video_folder", "root": str(root)}, "tasks": [{"use": "export_features"}],
                                  "run": {"cache_dir": str(tmp_path / "cache")}}))  # fmt: skip
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    for args, named in ((["--set", "name.sub=1"], "name.sub"), (["-o", str(a_file)], str(a_file))):
        r = run_cli("run", str(rp), *args, env_extra={"MOVIEKIT_LOAD_PLUGINS": ""})
        assert r.returncode == 2, r.stderr
        lines = [x for x in r.stderr.splitlines() if x.strip()]
        assert len(lines) == 1 and named in lines[0] and "Traceback" not in r.stderr, r.stderr


def test_component_whose_constructor_raises_is_named_by_validate(tmp_path, registry):
    root = make_video_folder(tmp_path / "videos", n=1)
    data = recipe(root, tmp_path / "cache")
    data["experts"]["bad"] = {"use": "test_raiser"}
    data["tasks"] = [{"use": "nonexistent_task"}]
    data["run"]["seed"] = "not a number"
    with pytest.raises(RecipeError) as e:
        validate(data, registry=registry)
    msg = str(e.value)
    # every problem at once: the top-level one, the unknown task and the raising constructor
    assert "run.seed" in msg and "tasks[0].use" in msg and "experts.bad" in msg and "no GPU driver" in msg


def test_csv_bom_encoding_and_missing_labels_column(tmp_path, registry):
    root = make_video_folder(tmp_path / "videos", n=2)
    csv = root / "labels.csv"
    text = csv.read_text()
    csv.write_bytes(b"\xef\xbb\xbf" + text.encode())
    ds = validate(recipe(root, tmp_path / "cache"), registry=registry).component("dataset").build()
    assert [v.id for v in ds.items()] == ["v0", "v1"] and ds.items()[0].labels == ["Drama"]
    csv.write_bytes(b"video,labels,split\nv0.mp4,Dr\xe9ma,train\nv1.mp4,Comedy,test\n")
    with pytest.raises(MoviekitError, match=rf"{csv}:2: not UTF-8"):
        ds.items()
    csv.write_text("video,genre,split\nv0.mp4,Drama,train\nv1.mp4,Comedy,test\n")
    runner = Runner(validate(recipe(root, tmp_path / "cache"), registry=registry), output=tmp_path / "out", registry=registry)
    with pytest.raises(MoviekitError, match="'labels'"):
        runner.run()
    assert runner.decodes == 0 and "extract" not in runner.stats


def test_failure_records_name_stage_and_component(tmp_path, registry):
    """Item 16: decode vs consumer failures, symlink loops, folders named like videos."""
    root = make_video_folder(tmp_path / "videos", n=2)
    (root / "corrupt.mp4").write_bytes(os.urandom(4000))
    (root / "folder.mp4").mkdir()
    os.symlink(root / "loop_b.mp4", root / "loop_a.mp4")
    os.symlink(root / "loop_a.mp4", root / "loop_b.mp4")
    from moviekit.testing import write_test_video

    write_test_video(root / "boom.mp4", shots=[(5, 5, 5), (250, 250, 250)] * 2, audio=False)
    with open(root / "labels.csv", "a") as f:
        f.write("corrupt.mp4,Drama,train\nfolder.mp4,Drama,train\nloop_a.mp4,Drama,train\nboom.mp4,Drama,train\n")
    data = recipe(root, tmp_path / "cache", [{"use": "export_features"}])
    data["experts"]["luma"]["explode_on"] = "boom"
    run(registry, data, tmp_path / "out")
    recs = {f["item"]: f for f in failures(tmp_path / "out")}
    assert recs["corrupt"]["stage"] in ("probe", "decode") and recs["corrupt"]["component"] == "run.reader"
    assert recs["folder"]["stage"] == "input" and "is a folder" in recs["folder"]["error"]
    assert recs["loop_a"]["stage"] == "input" and "symbolic link loop" in recs["loop_a"]["error"]
    assert recs["boom"]["stage"] == "consumer" and recs["boom"]["component"] == "experts.luma"
    assert recs["boom"]["component_name"] == "test_luma" and "traceback" in recs["boom"]


def test_a_consumer_raising_mid_stream_is_not_a_decode_failure(tmp_path, registry):
    root = make_video_folder(tmp_path / "videos", n=2)
    greedy = registry.get("test_greedy", "expert")

    def encode(self, batch):
        raise ValueError("bad batch")

    greedy.encode_frames = encode
    try:
        run(registry, recipe(root, tmp_path / "cache", [{"use": "export_features"}]), tmp_path / "out")
    except MoviekitError:
        pass  # every item failed: stated once
    recs = failures(tmp_path / "out")
    assert recs and all(r["stage"] == "consumer" and r["component"] == "experts.greedy" for r in recs)


def test_a_raising_task_keeps_its_traceback(tmp_path, registry):
    root = make_video_folder(tmp_path / "videos", n=2)
    (root / "labels.csv").write_text("video,labels,split\nv0.mp4,Drama,train\nv1.mp4,Comedy,train\n")  # no test split
    with pytest.raises(MoviekitError) as e:
        run(registry, recipe(root, tmp_path / "cache"), tmp_path / "out")
    (log,) = (tmp_path / "out" / "task_errors").iterdir()
    assert log.name == "0-multilabel_classification.txt" and str(log) in str(e.value)
    assert "Traceback" in log.read_text() and "never evaluates on its training split" in log.read_text()


# -- 17. duplicate component names -----------------------------------------------------------


def test_plugin_reusing_a_core_name_breaks_only_itself():
    import moviekit

    mod = types.ModuleType("plug_dup")
    mod.moviekit_api = "1.0"

    class Fake(moviekit.Expert):
        name = "color_histogram"

    @moviekit.hookimpl
    def register_components(register):
        register(Fake)

    mod.register_components = register_components
    reg = Registry().load(entry_points=False)
    info = reg.add_plugin(mod)
    assert not info.ok and "color_histogram" in info.errors[0]
    owner = reg.plugin_of("color_histogram")
    assert owner.ok and owner.default
    assert reg.get("color_histogram", "expert") is not Fake
