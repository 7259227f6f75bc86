"""The artifact store and run directory on fsspec URLs (memory://, file://, s3:// on moto's local S3
server) give the local run's artifacts and metrics byte for byte; `moviekit cache show | prune` work on
them and delete only the store's own files; concurrent writers of one artifact never leave a partial
one; an s3:// store without s3fs is one error naming the extra; a remote run's local staging folder is
removed when it completes, kept for an interrupted one (which resumes), and pruned by age."""

import importlib.util
import json
import logging
import os
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import fsspec
import numpy as np
import pytest
from mkhelpers import make_video_folder

from moviekit import codec
from moviekit.errors import MoviekitError
from moviekit.location import RemoteFiles, is_remote, local_path
from moviekit.recipe import validate
from moviekit.runner import Runner
from moviekit.store import ArtifactStore, local_companion


def recipe(root: Path, cache: str) -> dict:
    return {
        "dataset": {"use": "video_folder", "root": str(root)},
        "segmenter": {"use": "fixed_length", "seconds": 0.5},
        "experts": {"colour": {"use": "color_histogram", "fps": 4}},
        "clips": {"min_clips": 2},
        "encoder": {"use": "mean_pool", "dim": 8, "hidden": 16},
        "head": {"use": "mlp", "hidden": [8]},
        "tasks": [{"use": "export_features"}, {"use": "multilabel_classification", "epochs": 2, "batch_size": 2}],
        "run": {"device": "cpu", "cache_dir": cache},
    }


def store_files(url: str) -> dict[str, bytes]:
    """Every artifact file under a store (a path or URL) by its path relative to the store."""
    fs, root = fsspec.core.url_to_fs(url)
    return {p[len(root) :].lstrip("/"): fs.cat_file(p) for p in fs.find(root) if p.endswith(".zip")}


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("local")
    videos = make_video_folder(tmp / "videos", n=3)
    summary = Runner(validate(recipe(videos, str(tmp / "cache"))), output=tmp / "out").run()
    assert summary["items"] == 3 and summary["failures"] == 0
    return tmp, videos


def test_memory_url_store_and_run_directory_equal_the_local_run(local_run):
    tmp, videos = local_run
    base = f"memory://mk-{uuid.uuid4().hex}"
    summary = Runner(validate(recipe(videos, f"{base}/cache")), output=f"{base}/out").run()
    assert summary["output"] == f"{base}/out" and summary["failures"] == 0
    local = store_files(str(tmp / "cache"))
    assert local and store_files(f"{base}/cache") == local  # same keys, same bytes
    fs = fsspec.filesystem("memory")
    for name in ("metrics.json", "items.json", "features.npz", "failures.jsonl"):
        assert fs.cat_file(f"{base[len('memory://') :]}/out/{name}") == (tmp / "out" / name).read_bytes(), name
    # a second run on the remote store reuses every extraction artifact: nothing is decoded again
    again = Runner(validate(recipe(videos, f"{base}/cache")), output=f"{base}/out").run()
    assert again["decodes"] == 0 and again["stages"]["extract"]["computed"] == 0


def test_file_url_store_is_the_local_store(local_run, tmp_path):
    tmp, videos = local_run
    Runner(validate(recipe(videos, f"file://{tmp_path / 'cache'}")), output=tmp_path / "out").run()
    assert store_files(str(tmp_path / "cache")) == store_files(str(tmp / "cache"))
    assert (tmp_path / "out" / "metrics.json").read_bytes() == (tmp / "out" / "metrics.json").read_bytes()


def _hammer(store: ArtifactStore, values: list[np.ndarray], rounds: int, seen: list[str]) -> None:
    """Write one artifact again and again while reading it back; record anything but a whole copy."""
    for _ in range(rounds):
        for v in values:
            store.put("stream", "same-key", v)
            got = store.get("stream", "same-key")
            if got is not None and not any(got.shape == w.shape and np.array_equal(got, w) for w in values):
                seen.append("a partial or mixed artifact was read")


@pytest.mark.parametrize("where", ["local", "memory", "memory-rename"])
def test_concurrent_writers_of_one_artifact_never_leave_a_partial_one(where, tmp_path):
    root = str(tmp_path / "store") if where == "local" else f"memory://mk-{uuid.uuid4().hex}"
    stores = [ArtifactStore(root) for _ in range(4)]
    if where == "memory-rename":  # the temporary-object-and-rename path that non-object filesystems take
        for s in stores:
            s.files.put_whole = False
    rng = np.random.default_rng(0)
    # the writers' values differ here (the worst case: a real key's writers all write the same bytes)
    values = [rng.standard_normal(200_000).astype(np.float32), rng.standard_normal(150_000).astype(np.float32)]
    seen: list[str] = []
    threads = [threading.Thread(target=_hammer, args=(s, values, 8, seen)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not seen
    final = codec.decode(stores[0].files.read_bytes(stores[0].rel("stream", "same-key")))
    assert any(np.array_equal(final, v) for v in values)
    if where != "local":  # no temporary object is left behind
        fs, path = fsspec.core.url_to_fs(root)
        assert [p for p in fs.find(path) if p.endswith(".zip")] == [p for p in fs.find(path)]


def test_s3_without_s3fs_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "s3fs", None)  # import s3fs -> ImportError
    with pytest.raises(MoviekitError, match=r"run.cache_dir: s3://bucket/x needs the fsspec driver .* pip install 'moviekit\[s3\]'"):
        RemoteFiles("s3://bucket/x")
    with pytest.raises(MoviekitError, match=r"run.cache_dir: .*nosuchfs://x.*fsspec knows no such filesystem"):
        ArtifactStore("nosuchfs://x")


# -- cache show / prune on a URL store ------------------------------------------------------------------


def cli(*args: str) -> str:
    """``moviekit ARGS`` in this process (a memory:// store lives in one process), its output."""
    from typer.testing import CliRunner

    from moviekit.cli import app

    r = CliRunner().invoke(app, list(args))
    assert r.exit_code == 0 and r.exception is None, f"{r.output}{r.exception!r}"
    return r.output


def check_cache_commands(cache: str, run: str, videos: Path) -> None:
    """`cache show` counts the store's files, `cache prune` (a dry run unless --yes) deletes only them."""
    fs, root = fsspec.core.url_to_fs(cache)
    used = json.loads(fsspec.open(f"{run}/artifacts.json").open().read())["artifacts"]
    version = f"v{codec.FORMAT_VERSION}"
    ArtifactStore(cache).put("stream", "f" * 64, {"stale": np.zeros(3)})  # an artifact no run used
    mine = {  # a user's own objects, inside the store's tree and beside it (a prefix that merely starts alike)
        f"{root}/notes.txt": b"mine",
        f"{root}/{version}/stream/ab/notes.zip": b"mine",
        f"{root}/{version}/mine/ab/{'c' * 64}": b"mine",
        f"{root}-other/{version}/stream/ab/{'d' * 64}.zip": b"not this store's",
    }
    for path, data in mine.items():
        fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)  # a local folder needs its parents
        fs.pipe_file(path, data)

    shown = json.loads(cli("cache", "show", "--json", "--cache-dir", cache))
    n_stream = sum(a.startswith("stream/") for a in used) + 1
    assert (
        shown["root"] == (cache if is_remote(cache) else str(local_path(cache).resolve()))
        and shown["kinds"]["stream"]["artifacts"] == n_stream
        and shown["artifacts"] == len(used) + 1
    )
    if is_remote(cache):  # a remote store's file-hash memos are this machine's, counted with it
        assert shown["local"] == str(local_companion(cache)) and shown["kinds"]["filehash"]["artifacts"] == len(list(videos.glob("*.mp4")))

    out = cli("cache", "prune", "--run", run)  # the store named by the run's artifacts.json; a dry run
    assert "would delete 1 file(s)" in out and "dry run" in out, out
    assert ArtifactStore(cache).has("stream", "f" * 64)
    out = cli("cache", "prune", "--run", run, "--cache-dir", cache, "--yes")
    assert "deleted 1 file(s)" in out, out
    assert ArtifactStore(cache).get("stream", "f" * 64) is None
    again = Runner(validate(recipe(videos, cache)), output=run).run()  # kept what the run used
    assert again["decodes"] == 0 and again["stages"]["extract"]["computed"] == 0
    assert again["stages"]["task 2/2: multilabel_classification"]["reused"] == 1

    cli("cache", "prune", "--all", "--cache-dir", cache, "--yes")
    assert json.loads(cli("cache", "show", "--json", "--cache-dir", cache))["bytes"] == 0
    assert not [p for p in fs.find(root) if p.endswith(".zip") and p not in mine]
    assert {p: fs.cat_file(p) for p in mine} == mine


@pytest.mark.parametrize("where", ["memory", "file"])
def test_cache_show_and_prune_on_a_url_store_delete_only_its_files(where, local_run, tmp_path):
    tmp, videos = local_run
    base = f"memory://mk-{uuid.uuid4().hex}" if where == "memory" else f"file://{tmp_path}"
    cache, run = f"{base}/cache", f"{base}/run"
    Runner(validate(recipe(videos, cache)), output=run).run()
    check_cache_commands(cache, run, videos)


# -- s3:// on moto's local S3 server ----------------------------------------------------------------


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory):
    """moto's S3 server on 127.0.0.1 (a free port), with a bucket ``bucket``; the AWS variables a user of
    an S3-compatible endpoint (MinIO...) would set, and nothing read from this machine's AWS config."""
    for module in ("moto", "s3fs"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed: the s3:// test needs moto[server] and s3fs (pip install -r requirements.txt)")
    import s3fs
    from moto.server import ThreadedMotoServer

    werkzeug_log = logging.getLogger("werkzeug")
    level = werkzeug_log.level
    werkzeug_log.setLevel(logging.WARNING)  # not one line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    nowhere = tmp_path_factory.mktemp("aws") / "none"
    env = {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "moviekit-test",
        "AWS_SECRET_ACCESS_KEY": "moviekit-test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(nowhere),
        "AWS_SHARED_CREDENTIALS_FILE": str(nowhere),
    }
    try:
        with pytest.MonkeyPatch.context() as mp:
            for k, v in env.items():
                mp.setenv(k, v)
            for k in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"):
                mp.delenv(k, raising=False)
            s3fs.S3FileSystem.clear_instance_cache()  # a client made before these variables would not see them
            s3fs.S3FileSystem().mkdir("bucket")
            yield endpoint
            s3fs.S3FileSystem.clear_instance_cache()
    finally:
        server.stop()
        werkzeug_log.setLevel(level)


def test_s3_store_and_run_directory_equal_the_local_run(s3_endpoint, local_run):  # skips before the local run
    tmp, videos = local_run
    cache, run = "s3://bucket/cache", "s3://bucket/run"
    summary = Runner(validate(recipe(videos, cache)), output=run).run()
    assert summary["output"] == run and summary["failures"] == 0
    local = store_files(str(tmp / "cache"))
    assert local and store_files(cache) == local  # same keys, same bytes
    fs = fsspec.filesystem("s3")
    for name in ("metrics.json", "items.json", "features.npz", "failures.jsonl"):
        assert fs.cat_file(f"bucket/run/{name}") == (tmp / "out" / name).read_bytes(), name
    again = Runner(validate(recipe(videos, cache)), output=run).run()
    assert again["decodes"] == 0 and again["stages"]["extract"]["computed"] == 0
    assert again["stages"]["task 2/2: multilabel_classification"]["reused"] == 1

    # `moviekit cache show` in a fresh process pointed at the endpoint through fsspec's configuration alone
    env = {k: v for k, v in os.environ.items() if k != "AWS_ENDPOINT_URL"} | {"FSSPEC_S3_ENDPOINT_URL": s3_endpoint}
    cmd = [sys.executable, "-m", "moviekit", "cache", "show", "--json", "--cache-dir", cache]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == json.loads(cli("cache", "show", "--json", "--cache-dir", cache))
    assert json.loads(r.stdout)["kinds"]["stream"]["artifacts"] == sum(p.startswith(f"v{codec.FORMAT_VERSION}/stream/") for p in local)

    check_cache_commands(cache, run, videos)


# -- local staging folders of remote run directories -----------------------------------------------


def test_a_completed_remote_run_leaves_no_staging_folder_and_an_interrupted_one_resumes(local_run, monkeypatch):
    import signal

    from moviekit import runner as runner_mod
    from moviekit.errors import RunInterrupted
    from moviekit.staging import in_use, staging_dir, staging_root

    tmp, videos = local_run
    base = f"memory://mk-{uuid.uuid4().hex}"
    run = f"{base}/out"
    put = runner_mod.ArtifactStore.put

    def put_then_die(self, kind, key, value):  # SIGTERM just after the first task is stored
        put(self, kind, key, value)
        if kind == "task":
            raise RunInterrupted(signal.SIGTERM)

    monkeypatch.setattr(runner_mod.ArtifactStore, "put", put_then_die)
    with pytest.raises(RunInterrupted):
        Runner(validate(recipe(videos, f"{base}/cache")), output=run).run()
    monkeypatch.setattr(runner_mod.ArtifactStore, "put", put)
    staged = staging_dir(run)
    assert (staged / "features.npz").is_file() and not in_use(staged)  # kept, and unlocked

    again = Runner(validate(recipe(videos, f"{base}/cache")), output=run).run()
    assert again["stages"]["task 1/2: export_features"]["reused"] == 1
    assert not staged.exists() and list(staging_root().iterdir()) == []  # removed, nothing left aside
    fs = fsspec.filesystem("memory")
    for name in ("metrics.json", "items.json", "features.npz"):
        assert fs.cat_file(f"{run[len('memory://') :]}/{name}") == (tmp / "out" / name).read_bytes(), name


def _age(path: Path, days: float) -> None:
    """Set the modification time of ``path`` and everything under it ``days`` days back."""
    import time

    then = time.time() - days * 86400
    for p in [*path.rglob("*"), path]:
        os.utime(p, (then, then), follow_symlinks=False)


def test_cache_prune_removes_only_old_staging_folders(tmp_path):
    from moviekit.runlock import RunLock
    from moviekit.staging import staging_root

    root = staging_root()
    folders = {name: root / name for name in ("a" * 16, "b" * 16, "c" * 16, "mine")}
    for p in folders.values():
        (p / "models").mkdir(parents=True)
        (p / "models" / "m.json").write_bytes(b"x" * 1000)
    (root / "notes.txt").write_text("mine")
    held = RunLock(folders["c" * 16]).acquire()  # a run in progress on an old folder
    for name in ("a" * 16, "c" * 16, "mine", "notes.txt"):
        _age(root / name, 3)
    _age(folders["b" * 16], 0.5)

    shown = json.loads(cli("cache", "show", "--json"))["remote_run_staging"]
    assert shown["folders"] == 3 and shown["bytes"] >= 3000
    other = cli("cache", "prune", "--older-than", "1", "--cache-dir", str(tmp_path / "other"), "--yes")
    assert "staging" not in other and folders["a" * 16].exists()  # another store's prune leaves them
    out = cli("cache", "prune", "--older-than", "1")
    assert "would delete 1 staging folder(s)" in out and folders["a" * 16].exists(), out
    out = cli("cache", "prune", "--older-than", "1", "--yes")
    assert "deleted 1 staging folder(s)" in out, out
    assert sorted(p.name for p in root.iterdir()) == sorted(["b" * 16, "c" * 16, "mine", "notes.txt"])
    assert all((p / "models" / "m.json").read_bytes() == b"x" * 1000 for n, p in folders.items() if n != "a" * 16)
    held.release()
