"""The artifact store and run directory on fsspec URLs (memory://, file://) give the local run's
artifacts and metrics byte for byte; concurrent writers of one artifact never leave a partial one;
an s3:// store without s3fs is one error naming the extra."""

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
from moviekit.location import RemoteFiles
from moviekit.recipe import validate
from moviekit.runner import Runner
from moviekit.store import ArtifactStore


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
