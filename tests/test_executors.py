"""run.executor: processes and ray give the serial run's artifacts and metrics; a killed Ray worker
loses only its video; asking for Ray without it installed is one clear error."""

import importlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from mkhelpers import TESTKIT, make_fake_plugin, make_video_folder

from moviekit.default_plugins import media
from moviekit.errors import MoviekitError
from moviekit.plugins import Registry
from moviekit.recipe import validate
from moviekit.runner import Runner

#: An expert that logs every video it opens and, when MK_KILL_ON names a video, SIGKILLs its own
#: process the first time it opens it (the marker file MK_KILL_MARKER records that it did; without
#: one, every time); while
#: the video MK_ENOSPC_ON is extracted, every store write of its process fails with ENOSPC.
SCALEKIT = '''
import errno, os, signal
import moviekit
from moviekit import store
from mk_scale_testkit import Luma

moviekit_api = "1.0"
CURRENT = [None]
_real_write = store._write_fd


def _write_fd(fd, data):
    if CURRENT[0] is not None and CURRENT[0] == os.environ.get("MK_ENOSPC_ON"):
        CURRENT[0] = None  # its first write fails, which ends the video; the next video's writes succeed
        raise OSError(errno.ENOSPC, "No space left on device")
    return _real_write(fd, data)


store._write_fd = _write_fd


class Fragile(Luma):
    """The luma expert, logging opens and dying once on a chosen video."""
    name = "test_fragile"

    def open(self, video, info):
        CURRENT[0] = video.id
        log = os.environ.get("MK_OPEN_LOG")
        if log:
            with open(log, "a") as f:
                f.write(video.id + "\\n")
        kill, marker = os.environ.get("MK_KILL_ON"), os.environ.get("MK_KILL_MARKER")
        if kill and video.id == kill and not (marker and os.path.exists(marker)):
            if marker:  # die once only
                open(marker, "w").close()
            os.kill(os.getpid(), signal.SIGKILL)
        return super().open(video, info)


@moviekit.hookimpl
def register_components(register):
    register(Fragile)
'''


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """Importable test plugins (worker processes import the components by module name)."""
    root = tmp_path_factory.mktemp("site")
    make_fake_plugin(root, "moviekit-scale-testkit", "mk_scale_testkit", TESTKIT)
    make_fake_plugin(root, "moviekit-scale-fragile", "mk_scale_fragile", SCALEKIT)
    sys.path.insert(0, str(root))
    reg = Registry().load(entry_points=False)
    for dist, mod in (("moviekit-scale-testkit", "mk_scale_testkit"), ("moviekit-scale-fragile", "mk_scale_fragile")):
        assert reg.add_plugin(importlib.import_module(mod), distribution=dist).ok
    yield root, reg
    sys.path.remove(str(root))


@pytest.fixture(autouse=True)
def _worker_path(site, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", f"{site[0]}:{__import__('os').environ.get('PYTHONPATH', '')}")


def recipe(root: Path, cache: Path, **run) -> dict:
    return {
        "dataset": {"use": "video_folder", "root": str(root)},
        "segmenter": {"use": "every_n", "n": 12},
        "experts": {"luma": {"use": "test_fragile"}, "colour": {"use": "color_histogram", "fps": 4}},
        "clips": {"min_clips": 2},
        "encoder": {"use": "mean_pool", "dim": 8, "hidden": 16},
        "head": {"use": "mlp", "hidden": [8]},
        "tasks": [{"use": "export_features"}, {"use": "multilabel_classification", "epochs": 3, "batch_size": 2}],
        "run": {"device": "cpu", "cache_dir": str(cache), **run},
    }


def artifacts(cache: Path) -> dict[str, object]:
    """Every stored probe and stream artifact (its value, as plain data), by key."""
    from moviekit.store import ArtifactStore

    store = ArtifactStore(cache)
    out = {}
    for kind in ("probe", "stream"):
        for p in sorted((store.dir / kind).rglob("*")):
            if p.is_file():
                key = p.name.split(".")[0]
                out[f"{kind}/{key}"] = plain(store.get(kind, key))
    return out


def plain(value):
    """A value as comparable plain data (records as dicts, arrays as lists)."""
    from pydantic import BaseModel

    if isinstance(value, BaseModel):
        return plain(value.model_dump())
    if isinstance(value, np.ndarray):
        return ("array", value.dtype.str, value.shape, value.tolist())
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = make_video_folder(tmp_path_factory.mktemp("videos"), n=4)
    (root / "empty.mp4").write_bytes(b"")
    with open(root / "labels.csv", "a") as f:
        f.write("empty.mp4,Drama,train\n")
    return root


@pytest.fixture(scope="module")
def serial(site, videos, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("serial")
    runner = Runner(validate(recipe(videos, tmp / "cache"), registry=site[1]), output=tmp / "out", registry=site[1])
    summary = runner.run()
    assert summary["items"] == 4 and summary["failures"] == 1
    return tmp


def assert_same_as_serial(serial: Path, tmp: Path, summary: dict) -> None:
    assert artifacts(tmp / "cache") == artifacts(serial / "cache")
    assert artifacts(tmp / "cache")  # something was compared
    for name in ("metrics.json", "items.json"):
        assert (tmp / "out" / name).read_text() == (serial / "out" / name).read_text(), name
    with np.load(serial / "out" / "features.npz") as a, np.load(tmp / "out" / "features.npz") as b:
        assert sorted(a.files) == sorted(b.files) and all(np.array_equal(a[k], b[k]) for k in a.files)
    failures = [json.loads(line) for line in (tmp / "out" / "failures.jsonl").read_text().splitlines()]
    expected = [json.loads(line) for line in (serial / "out" / "failures.jsonl").read_text().splitlines()]
    assert [(f["item"], f["error"]) for f in failures] == [(f["item"], f["error"]) for f in expected]
    ext = summary["stages"]["extract"]
    assert (ext["computed"], ext["failed"], summary["decodes"]) == (4 * 3, 1, 4)


@pytest.mark.distributed
def test_processes_executor_equals_serial(site, videos, serial, tmp_path):
    rr = validate(recipe(videos, tmp_path / "cache", executor="processes", workers=2), registry=site[1])
    before = media.DECODE_PASSES
    summary = Runner(rr, output=tmp_path / "out", registry=site[1]).run()
    assert media.DECODE_PASSES == before  # the driver decoded nothing: the worker processes did
    assert_same_as_serial(serial, tmp_path, summary)


def assert_kept_all_but_one_videos_streams(serial: Path, tmp: Path) -> None:
    """The other videos' artifacts are the serial run's; only one video's stream results are missing
    (its probe was stored before its failure)."""
    kept, full = artifacts(tmp / "cache"), artifacts(serial / "cache")
    assert kept and all(full[k] == v for k, v in kept.items())
    missing = set(full) - set(kept)
    per_video = sum(k.startswith("stream/") for k in full) // 4
    assert per_video and len(missing) == per_video and all(k.startswith("stream/") for k in missing)


@pytest.mark.distributed
def test_a_killed_worker_process_redoes_only_its_video(site, videos, serial, tmp_path, monkeypatch):
    log = tmp_path / "opens.log"
    for k, v in {"MK_OPEN_LOG": log, "MK_KILL_ON": "v2", "MK_KILL_MARKER": tmp_path / "killed"}.items():
        monkeypatch.setenv(k, str(v))  # the spawned workers inherit them
    rr = validate(recipe(videos, tmp_path / "cache", executor="processes", workers=2), registry=site[1])
    summary = Runner(rr, output=tmp_path / "out", registry=site[1]).run()
    assert (tmp_path / "killed").exists()  # v2's worker did die mid-video
    assert sorted(log.read_text().split()) == ["v0", "v1", "v2", "v2", "v3"]  # only v2 was redone
    assert_same_as_serial(serial, tmp_path, summary)


@pytest.mark.distributed
def test_a_worker_process_dying_every_time_fails_only_its_video(site, videos, serial, tmp_path, monkeypatch):
    monkeypatch.setenv("MK_KILL_ON", "v1")
    monkeypatch.delenv("MK_KILL_MARKER", raising=False)  # no marker: it dies every time it opens v1
    rr = validate(recipe(videos, tmp_path / "cache", executor="processes", workers=2, ray={"max_retries": 1}), registry=site[1])
    summary = Runner(rr, output=tmp_path / "out", registry=site[1]).run()
    failures = {
        json.loads(line)["item"]: json.loads(line)["error"] for line in (tmp_path / "out" / "failures.jsonl").read_text().splitlines()
    }
    assert failures.keys() == {"empty", "v1"} and "worker process died 2 time(s)" in failures["v1"]
    assert summary["items"] == 3
    assert_kept_all_but_one_videos_streams(serial, tmp_path)


@pytest.fixture(scope="module")
def ray_cluster(site):
    """A local Ray cluster of two nodes with one CPU each."""
    import os

    pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    os.environ["PYTHONPATH"] = f"{site[0]}:{os.environ.get('PYTHONPATH', '')}"
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    yield cluster
    cluster.shutdown()
    os.environ["PYTHONPATH"] = os.environ["PYTHONPATH"].split(":", 1)[1]


@pytest.mark.slow
@pytest.mark.distributed
def test_ray_executor_on_two_nodes_equals_serial_and_a_killed_worker_redoes_only_its_video(site, videos, serial, ray_cluster, tmp_path):
    import os

    import ray

    log = tmp_path / "opens.log"
    env = {"MK_OPEN_LOG": str(log), "MK_KILL_ON": "v2", "MK_KILL_MARKER": str(tmp_path / "killed"), "PYTHONPATH": os.environ["PYTHONPATH"]}
    # connected here (the executor then uses this connection) to hand the workers the test's variables
    ray.init(address=ray_cluster.address, runtime_env={"env_vars": env}, include_dashboard=False)
    ray_cfg = {"address": ray_cluster.address, "max_retries": 2}
    rr = validate(recipe(videos, tmp_path / "cache", executor="ray", workers=2, ray=ray_cfg), registry=site[1])
    try:
        summary = Runner(rr, output=tmp_path / "out", registry=site[1]).run()
    finally:
        ray.shutdown()
    assert (tmp_path / "killed").exists()  # v2's first worker did die mid-video
    opens = log.read_text().split()
    assert sorted(opens) == ["v0", "v1", "v2", "v2", "v3"]  # only v2 was redone
    assert_same_as_serial(serial, tmp_path, summary)


@pytest.mark.slow
@pytest.mark.distributed
def test_ray_disk_full_in_one_video_is_only_that_videos_failure(site, videos, serial, ray_cluster, tmp_path):
    import os

    import ray

    env = {"MK_ENOSPC_ON": "v1", "PYTHONPATH": os.environ["PYTHONPATH"]}
    ray.init(address=ray_cluster.address, runtime_env={"env_vars": env}, include_dashboard=False)
    rr = validate(recipe(videos, tmp_path / "cache", executor="ray", workers=2, ray={"address": ray_cluster.address}), registry=site[1])
    try:
        summary = Runner(rr, output=tmp_path / "out", registry=site[1]).run()
    finally:
        ray.shutdown()
    failures = {
        json.loads(line)["item"]: json.loads(line)["error"] for line in (tmp_path / "out" / "failures.jsonl").read_text().splitlines()
    }
    assert failures.keys() == {"empty", "v1"} and "no space left" in failures["v1"] and "retries" not in failures["v1"]
    assert summary["items"] == 3
    assert_kept_all_but_one_videos_streams(serial, tmp_path)


def test_ray_missing_is_one_clear_error(site, videos, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    rr = validate(recipe(videos, tmp_path / "cache", executor="ray"), registry=site[1])
    with pytest.raises(MoviekitError, match=r"run.executor is 'ray' but Ray is not installed: pip install 'moviekit\[ray\]'"):
        Runner(rr, output=tmp_path / "out", registry=site[1]).run()
