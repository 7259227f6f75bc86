"""Fault injection on the artifact store, checkpoints and run directories.

Planted code in the cache or a checkpoint never runs; a full disk gives one message and leaves
no temporary file; two runs never share an output directory, and runs sharing a cache both
finish with the results of a run alone; an artifact of the wrong type is recomputed; cache
pruning never deletes what is not the store's.
"""

import errno
import json
import os
import pickle
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import yaml
from mkhelpers import TESTKIT, make_fake_plugin, make_video_folder, run_cli

from moviekit.context import Reporter
from moviekit.errors import MoviekitError
from moviekit.plugins import Registry
from moviekit.recipe import validate
from moviekit.runner import Runner


class Log(Reporter):
    def __init__(self):
        self.lines = []

    def log(self, message):
        self.lines.append(message)


class Payload:
    """Unpickling this creates ``marker`` (a directory): proof that planted code ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


@pytest.fixture
def registry():
    reg = Registry().load(entry_points=False)
    mod = types.ModuleType("mk_testkit")
    exec(compile(TESTKIT, "mk_testkit", "exec"), mod.__dict__)
    assert reg.add_plugin(mod, distribution="moviekit-testkit").ok
    return reg


def recipe(root, cache, epochs=3, **run):
    return {
        "dataset": {"use": "video_folder", "root": str(root)},
        "segmenter": {"use": "every_n", "n": 12},
        "experts": {"luma": {"use": "test_luma"}, "colour": {"use": "color_histogram", "fps": 4}},
        "clips": {"min_clips": 2},
        "encoder": {"use": "mean_pool", "dim": 8, "hidden": 16},
        "head": {"use": "mlp", "hidden": [8]},
        "tasks": [
            {"use": "export_features"},
            {"use": "multilabel_classification", "epochs": epochs, "batch_size": 2, "checkpoint_every": 1},
        ],
        "run": {"device": "cpu", "cache_dir": str(cache), **run},
    }


def artifact_files(cache):
    """The cached artifacts (probe, stream, task) whatever the store's file layout."""
    return [p for p in Path(cache).rglob("*") if p.is_file() and not p.name.startswith(".") and "filehash" not in p.parts]


def outputs(out):
    feats = np.load(Path(out) / "features.npz")
    return {k: feats[k].tolist() for k in feats.files}, json.loads((Path(out) / "metrics.json").read_text())


# -- planted code ---------------------------------------------------------------------------


def test_planted_pickle_in_the_cache_never_runs_and_is_recomputed(tmp_path, registry):
    root = make_video_folder(tmp_path / "videos", n=4)
    cache = tmp_path / "cache"
    rr = validate(recipe(root, cache), registry=registry)
    Runner(rr, output=tmp_path / "a", registry=registry).run()
    before = outputs(tmp_path / "a")
    planted = artifact_files(cache)
    assert len(planted) >= 4 * 4 + 2  # probes and streams of 4 videos, two tasks
    marker = tmp_path / "pwned"
    for p in planted:
        p.write_bytes(pickle.dumps(Payload(marker)))
    log = Log()
    summary = Runner(rr, output=tmp_path / "b", registry=registry, reporter=log).run()
    assert not marker.exists(), "a planted pickle in the cache was executed"
    assert summary["failures"] == 0 and summary["reused_artifacts"] == 0
    text = "\n".join(log.lines)
    assert all(str(p) in text for p in planted), "every refused file is named in the log"
    assert outputs(tmp_path / "b") == before


def test_planted_checkpoint_never_runs_and_training_starts_over(tmp_path):
    import torch

    from moviekit.testing import make_context
    from moviekit.training import train_loop

    ctx = make_context(tmp_path)
    ctx.reporter = log = Log()
    ckpt = ctx.checkpoint_path("t")
    marker = tmp_path / "pwned"
    torch.save({"model": Payload(marker), "optimizer": {}, "epoch": 1, "history": {}}, ckpt)
    model = torch.nn.Linear(3, 1)
    x = torch.randn(8, 3)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    history = train_loop(model, lambda idx: model(x[idx]).pow(2).mean(), 8, opt, 2, 4, ctx, tag="t")
    assert not marker.exists(), "a planted checkpoint was executed"
    assert history["start_epoch"] == 0 and len(history["epoch_loss"]) == 2
    assert any(str(ckpt) in line for line in log.lines), log.lines
    assert not ckpt.exists()


def test_checkpoint_round_trip_is_data_only_and_resumes(tmp_path):
    """What train_loop saves loads with weights_only=True (RNG states, optimizer, a kept best state)."""
    import torch

    from moviekit.testing import make_context
    from moviekit.training import load_checkpoint, train_loop

    ctx = make_context(tmp_path)
    model = torch.nn.Linear(3, 1)
    x = torch.randn(8, 3)
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    kept = {"best_state": {k: v.clone() for k, v in model.state_dict().items()}, "best_ap": np.float64(0.5), "aps": [np.float32(0.25)]}
    seen = []

    from moviekit import training

    def stop_after_first(tag, epoch, history):
        seen.append(load_checkpoint(ctx.checkpoint_path("r")))
        raise KeyboardInterrupt

    orig = training.epoch_done
    training.epoch_done = stop_after_first
    try:
        with pytest.raises(KeyboardInterrupt):
            train_loop(model, lambda idx: model(x[idx]).pow(2).mean(), 8, opt, 3, 4, ctx, tag="r", checkpoint_every=1, extra_state=kept)
    finally:
        training.epoch_done = orig
    state = seen[0]
    assert state["epoch"] == 1 and state["extra"]["best_ap"] == 0.5 and isinstance(state["rng"]["cpu"], torch.Tensor)
    resumed = train_loop(model, lambda idx: model(x[idx]).pow(2).mean(), 8, opt, 3, 4, ctx, tag="r", checkpoint_every=1, extra_state={})
    assert resumed["start_epoch"] == 1 and len(resumed["epoch_loss"]) == 3


def test_a_checkpoint_saved_without_extra_state_resumes_with_one(tmp_path):
    import torch

    from moviekit import training
    from moviekit.testing import make_context
    from moviekit.training import train_loop

    ctx = make_context(tmp_path)
    model = torch.nn.Linear(3, 1)
    x = torch.randn(8, 3)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)

    def stop(tag, epoch, history):
        raise KeyboardInterrupt

    orig, training.epoch_done = training.epoch_done, stop
    try:
        with pytest.raises(KeyboardInterrupt):
            train_loop(model, lambda idx: model(x[idx]).pow(2).mean(), 8, opt, 3, 4, ctx, tag="r", checkpoint_every=1)
    finally:
        training.epoch_done = orig
    extra = {"keys": None}
    resumed = train_loop(model, lambda idx: model(x[idx]).pow(2).mean(), 8, opt, 3, 4, ctx, tag="r", checkpoint_every=1, extra_state=extra)
    assert resumed["start_epoch"] == 1 and extra == {"keys": None}


def test_a_record_tag_is_resolved_against_the_allow_list_only(tmp_path, monkeypatch):
    import io
    import zipfile

    from moviekit.codec import CodecError, decode, encode, register_record
    from moviekit.records import Record

    marker = tmp_path / "imported"
    (tmp_path / "mk_evil_records.py").write_text(f"import os\nos.mkdir({str(marker)!r})\nclass Evil:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("value.json", json.dumps({"moviekit_artifact": 2, "value": {"$record": "mk_evil_records.Evil", "fields": {}}}))
    with pytest.raises(CodecError, match="not on the allow-list"):
        decode(buf.getvalue())
    assert not marker.exists() and "mk_evil_records" not in sys.modules

    class Mine(Record):
        x: int

    with pytest.raises(CodecError, match="register_record"):
        encode(Mine(x=1))
    register_record(Mine)
    assert decode(encode([Mine(x=3)])) == [Mine(x=3)]


# -- a full disk ------------------------------------------------------------------------------


def _no_space(fd, data):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_disk_full_on_a_checkpoint_is_one_message_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    import torch

    import moviekit.store
    from moviekit.errors import DiskWriteError
    from moviekit.testing import make_context
    from moviekit.training import train_loop

    ctx = make_context(tmp_path)
    ckpt = ctx.checkpoint_path("full")
    monkeypatch.setattr(moviekit.store, "_write_fd", _no_space)
    model = torch.nn.Linear(3, 1)
    x = torch.randn(8, 3)
    with pytest.raises(DiskWriteError) as e:
        train_loop(
            model,
            lambda idx: model(x[idx]).pow(2).mean(),
            8,
            torch.optim.SGD(model.parameters(), lr=0.1),
            3,
            4,
            ctx,
            tag="full",
            checkpoint_every=1,
        )
    msg = str(e.value)
    assert str(ckpt.parent) in msg and "no space left" in msg and "bytes" in msg
    assert int(msg.split(" needs ")[1].split(" bytes")[0].replace(",", "")) > 0
    assert list(ckpt.parent.iterdir()) == [], "a failed checkpoint write left a file behind"


def test_disk_full_on_an_artifact_stops_the_run_once_and_leaves_no_temporary_file(tmp_path, registry, monkeypatch):
    import moviekit.store
    from moviekit.codec import encode
    from moviekit.errors import DiskWriteError
    from moviekit.store import ArtifactStore

    store = ArtifactStore(tmp_path / "s")
    value = {"x": np.arange(10)}
    monkeypatch.setattr(moviekit.store, "_write_fd", _no_space)
    with pytest.raises(DiskWriteError) as e:
        store.put("stream", "a" * 64, value)
    folder = store.path("stream", "a" * 64).parent
    assert str(folder) in str(e.value) and f"{len(encode(value)):,} bytes" in str(e.value)
    assert list(folder.iterdir()) == []

    root = make_video_folder(tmp_path / "videos", n=3)
    runner = Runner(validate(recipe(root, tmp_path / "cache"), registry=registry), output=tmp_path / "out", registry=registry)
    with pytest.raises(DiskWriteError, match="no space left"):
        runner.run()
    assert runner.failures == [] and (tmp_path / "out" / "failures.jsonl").read_text() == ""
    assert not [p for p in (tmp_path / "cache").rglob("*.tmp")]


# -- concurrent runs ------------------------------------------------------------------------


#: A first "run": holds the output directory's lock, has written a failure, waits for its stdin to close.
HOLD_LOCK = """import sys
from moviekit.runlock import RunLock
RunLock({out!r}).acquire()
open(sys.argv[1] + '/failures.jsonl', 'w').write('{{"item": "first"}}\\n')
print('locked', flush=True)
sys.stdin.read()
"""


def test_a_second_run_on_the_same_output_directory_is_refused_and_truncates_nothing(tmp_path, registry):
    root = make_video_folder(tmp_path / "videos", n=2)
    out = tmp_path / "out"
    out.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK.format(out=str(out)), str(out)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "locked"
        rr = validate(recipe(root, tmp_path / "cache"), registry=registry)
        with pytest.raises(MoviekitError) as e:
            Runner(rr, output=out, registry=registry).run()
        assert str(out) in str(e.value) and f"pid {holder.pid}" in str(e.value)
        assert (out / "failures.jsonl").read_text() == '{"item": "first"}\n', "the refused run truncated the first run's failures"
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
    # once the first run has ended (however it ended), the folder is free again
    assert Runner(rr, output=out, registry=registry).run()["failures"] == 0


def test_two_runs_sharing_a_cache_both_finish_with_the_results_of_a_run_alone(tmp_path):
    site = make_fake_plugin(tmp_path / "site", "moviekit-testkit", "mk_testkit", TESTKIT)
    root = make_video_folder(tmp_path / "videos", n=4)
    env = dict(os.environ, PYTHONPATH=f"{site}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")

    def start(cache, out):
        rp = tmp_path / f"{out}.yaml"
        rp.write_text(yaml.safe_dump(recipe(root, tmp_path / cache, epochs=4)))
        return subprocess.Popen(
            [sys.executable, "-m", "moviekit", "run", str(rp), "-o", str(tmp_path / out)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    procs = [start("shared", "one"), start("shared", "two")]
    results = [p.communicate(timeout=900) for p in procs]
    for p, (o, e) in zip(procs, results):
        assert p.returncode == 0, o + e
    alone = start("alone", "alone")
    o, e = alone.communicate(timeout=900)
    assert alone.returncode == 0, o + e
    ref = outputs(tmp_path / "alone")
    assert outputs(tmp_path / "one") == ref and outputs(tmp_path / "two") == ref
    from moviekit.store import ArtifactStore

    for p in (tmp_path / "shared").rglob("*.zip"):  # every artifact the two wrote is whole
        from moviekit.codec import decode

        decode(p.read_bytes())
    assert not [p for p in (tmp_path / "shared").rglob("*") if p.name.startswith(".") and p.name.endswith(".tmp")]
    assert ArtifactStore(tmp_path / "shared").dir.is_dir()


# -- wrong type -----------------------------------------------------------------------------


def test_a_valid_artifact_of_the_wrong_type_is_recomputed(tmp_path, registry):
    from moviekit.components import TaskResult

    def plant(path, value):
        if path.suffix == ".pkl":  # the store's old format
            path.write_bytes(pickle.dumps(value))
        else:
            from moviekit.codec import encode

            path.write_bytes(encode(value))

    root = make_video_folder(tmp_path / "videos", n=4)
    cache = tmp_path / "cache"
    rr = validate(recipe(root, cache), registry=registry)
    Runner(rr, output=tmp_path / "a", registry=registry).run()
    before = outputs(tmp_path / "a")
    wrong = {"fps": "x", "values": [1, 2]}
    escaping = {
        "result": TaskResult(),
        "shared": {},
        "removed": [],
        "files": {"../escape.txt": b"x", str(tmp_path / "abs.txt"): b"x"},
        "models": ["../m"],
    }
    planted = artifact_files(cache)
    tasks = iter([(TaskResult(), wrong, {}, []), escaping])  # the old tuple layout; files outside the run
    for p in planted:  # valid data in the format the store reads, of the wrong type for every consumer
        plant(p, next(tasks) if "task" in p.parts else wrong)
    log = Log()
    summary = Runner(rr, output=tmp_path / "b", registry=registry, reporter=log).run()
    assert summary["failures"] == 0, (tmp_path / "b" / "failures.jsonl").read_text()
    assert outputs(tmp_path / "b") == before
    assert sum("discarded" in line for line in log.lines) == len(planted)
    assert not (tmp_path / "escape.txt").exists() and not (tmp_path / "abs.txt").exists()


# -- cache commands ---------------------------------------------------------------------------


def test_cache_show_and_prune_delete_only_the_stores_files(tmp_path, registry):
    from moviekit.store import ArtifactStore

    root = make_video_folder(tmp_path / "videos", n=2)
    cache = tmp_path / "cache"
    rr = validate(recipe(root, cache), registry=registry)
    summary = Runner(rr, output=tmp_path / "run", registry=registry).run()
    used = json.loads((tmp_path / "run" / "artifacts.json").read_text())["artifacts"]
    assert used and summary["cache"]["bytes"] == sum(p.stat().st_size for p in cache.rglob("*") if p.is_file())
    # an artifact no run used, the user's own files, and a link to a folder outside the cache
    ArtifactStore(cache).put("stream", "f" * 64, {"stale": np.zeros(3)})
    (cache / "notes.txt").write_text("mine")
    (cache / "mine" / "ab").mkdir(parents=True)
    (cache / "mine" / "ab" / ("c" * 64)).write_text("mine too")
    outside = tmp_path / "outside" / "v2" / "stream" / "ab"
    outside.mkdir(parents=True)
    (outside / ("d" * 64 + ".zip")).write_bytes(b"not the cache's")
    (cache / "v2" / "link").symlink_to(tmp_path / "outside", target_is_directory=True)
    (cache / "linked").symlink_to(tmp_path / "outside", target_is_directory=True)

    r = run_cli("cache", "show", "--json", "--cache-dir", str(cache))
    assert r.returncode == 0, r.stderr
    shown = json.loads(r.stdout)
    n_stream = sum(a.startswith("stream/") for a in used) + 1
    assert shown["kinds"]["stream"]["artifacts"] == n_stream and shown["artifacts"] == len(used) + 1

    r = run_cli("cache", "prune", "--run", str(tmp_path / "run"), "--cache-dir", str(cache))  # dry run by default
    assert r.returncode == 0 and "dry run" in r.stdout, r.stdout + r.stderr
    assert ArtifactStore(cache).path("stream", "f" * 64).exists()
    r = run_cli("cache", "prune", "--run", str(tmp_path / "run"), "--cache-dir", str(cache), "--yes")
    assert r.returncode == 0, r.stderr
    assert not ArtifactStore(cache).path("stream", "f" * 64).exists()
    again = Runner(rr, output=tmp_path / "run2", registry=registry).run()
    assert again["decodes"] == 0 and again["stages"]["task 2/2: multilabel_classification"]["reused"] == 1  # kept what the run used

    r = run_cli("cache", "prune", "--all", "--cache-dir", str(cache), "--yes")
    assert r.returncode == 0, r.stderr
    assert ArtifactStore(cache).path("stream", "f" * 64).parent.exists() is False or not any(ArtifactStore(cache).dir.rglob("*.zip"))
    assert not [p for p in cache.rglob("*.zip") if "link" not in p.parts and "linked" not in p.parts]
    assert (cache / "notes.txt").read_text() == "mine" and (cache / "mine" / "ab" / ("c" * 64)).exists()
    assert (outside / ("d" * 64 + ".zip")).read_bytes() == b"not the cache's"
    r = run_cli("cache", "prune", "--cache-dir", str(cache), "--yes")
    assert r.returncode == 2 and "--older-than" in r.stderr


def test_prune_by_age_and_of_the_old_pickle_layout(tmp_path):
    import time

    from moviekit.cache import TEMP_GRACE_S, prune, usage
    from moviekit.store import ArtifactStore

    store = ArtifactStore(tmp_path)
    old, new = store.put("probe", "1" * 64, {"fps": 1.0}), store.put("probe", "2" * 64, {"fps": 2.0})
    legacy = tmp_path / "stream" / "ab" / ("a" * 64 + ".pkl")  # the pickle layout of earlier versions
    legacy.parent.mkdir(parents=True)
    legacy.write_bytes(b"old")
    fresh_tmp = store.path("probe", "3" * 64).with_name(".x.zip.abc.tmp")  # a write in flight
    stale_tmp = store.path("probe", "4" * 64).with_name(".y.zip.def.tmp")  # left by a killed run
    for p in (fresh_tmp, stale_tmp):
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"partial")
    week = time.time() - 7 * 86400
    for p in (old, legacy, stale_tmp):
        os.utime(p, (week, week))
    u = usage(tmp_path)
    assert u["kinds"]["probe"]["artifacts"] == 2 and u["other_formats"]["v1"]["artifacts"] == 1 and u["temporary"]["files"] == 2
    res = prune(tmp_path, older_than_days=3, dry_run=False)
    assert res["files"] == 3 and not old.exists() and not legacy.exists() and not stale_tmp.exists()
    assert new.exists() and fresh_tmp.exists() and TEMP_GRACE_S >= 600
    assert store.get("probe", "2" * 64) == {"fps": 2.0}
    prune(tmp_path, everything=True, dry_run=False)
    assert not new.exists() and fresh_tmp.exists(), "an in-flight temporary file is never pruned"


SHARED_TASKS = '''
import numpy as np
import moviekit
from moviekit import Task, TaskResult

moviekit_api = "1.0"


class PutBig(Task):
    """Puts a large array in the shared state."""
    name = "put_big"

    def run(self, ctx):
        ctx.shared["big"] = np.arange(200_000, dtype=np.float32)
        return TaskResult(metrics={"n": 1})


class PutSmall(Task):
    """Adds one small value."""
    name = "put_small"

    def run(self, ctx):
        ctx.shared["small"] = float(ctx.shared["big"][:10].sum())
        return TaskResult(metrics={"small": ctx.shared["small"]})


class ReadShared(Task):
    """Reads what the earlier tasks shared."""
    name = "read_shared"

    def run(self, ctx):
        return TaskResult(metrics={"big_sum": float(ctx.shared["big"].sum()), "small": ctx.shared["small"]})


@moviekit.hookimpl
def register_components(register):
    for c in (PutBig, PutSmall, ReadShared):
        register(c)
'''


def test_each_task_stores_only_what_it_adds(tmp_path, registry):
    mod = types.ModuleType("mk_shared_tasks")
    exec(compile(SHARED_TASKS, "mk_shared_tasks", "exec"), mod.__dict__)
    assert registry.add_plugin(mod, distribution="moviekit-shared-tasks").ok
    root = make_video_folder(tmp_path / "videos", n=2)
    cache = tmp_path / "cache"
    data = recipe(root, cache)
    data["tasks"] = [{"use": "put_big"}, {"use": "put_small"}]
    r1 = Runner(validate(data, registry=registry), output=tmp_path / "a", registry=registry)
    r1.run()
    tasks = sorted((p for p in cache.rglob("*") if p.is_file() and "task" in p.relative_to(cache).parts), key=lambda p: p.stat().st_size)
    assert len(tasks) == 2
    assert tasks[1].stat().st_size > 800_000 and tasks[0].stat().st_size < 20_000, (
        "a later task stored the earlier task's shared array again"
    )
    data["tasks"].append({"use": "read_shared"})  # the first two are reused: their shared state is restored
    summary = Runner(validate(data, registry=registry), output=tmp_path / "b", registry=registry).run()
    assert summary["stages"]["task 1/3: put_big"]["reused"] == 1 and summary["stages"]["task 2/3: put_small"]["reused"] == 1
    assert summary["tasks"]["2:read_shared"] == {"big_sum": float(np.arange(200_000, dtype=np.float32).sum()), "small": 45.0}
