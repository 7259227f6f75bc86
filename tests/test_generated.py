"""The generate-once folder every synthetic data source uses (moviekit.generated)."""

from __future__ import annotations

import json
import os
import time

import pytest

from moviekit import MoviekitError, ensure_generated, generated_dataset_dir


def _writer(calls: list):
    def generate(folder):
        calls.append(folder)
        (folder / "data.txt").write_text("x")

    return generate


def test_generates_once_and_records_key(tmp_path):
    calls: list = []
    root = tmp_path / "ds"
    a = ensure_generated("toy", "k1", _writer(calls), root=root, info={"config": {"n": 1}})
    b = ensure_generated("toy", "k1", _writer(calls), root=root)
    assert a == b == root and len(calls) == 1
    info = json.loads((root / "dataset.json").read_text())
    assert info["key"] == "k1" and info["config"] == {"n": 1} and (root / "data.txt").read_text() == "x"
    assert not list(tmp_path.glob(".ds.tmp-*"))


def test_other_key_and_foreign_folder_are_refused_not_deleted(tmp_path):
    root = tmp_path / "ds"
    ensure_generated("toy", "k1", _writer([]), root=root)
    with pytest.raises(MoviekitError, match="different config"):
        ensure_generated("toy", "k2", _writer([]), root=root)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(MoviekitError, match="dataset.root: .*not empty"):
        ensure_generated("toy", "k1", _writer([]), root=mine)
    assert (mine / "notes.txt").read_text() == "keep me"


def test_failed_generation_leaves_nothing_and_next_run_completes(tmp_path, monkeypatch):
    monkeypatch.setenv("MOVIEKIT_CACHE", str(tmp_path / "cache"))

    def boom(folder):
        (folder / "half.txt").write_text("half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        ensure_generated("toy", "abc", boom)
    final = generated_dataset_dir("toy", "abc")
    assert final.parent == tmp_path / "cache" / "datasets" / "toy"
    assert not final.exists() and not list(final.parent.iterdir())
    stale = final.parent / f".{final.name}.tmp-1-dead"
    stale.mkdir()
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    fresh = final.parent / f".{final.name}.tmp-2-live"
    fresh.mkdir()
    assert ensure_generated("toy", "abc", _writer([])) == final
    assert (final / "complete").read_text().strip() == "abc"
    assert not stale.exists() and fresh.exists()  # only an hour-old temporary folder is removed
