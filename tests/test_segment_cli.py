"""`moviekit segment`: shots as JSON/CSV, clip export, per-video failures and config errors."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

import numpy as np
import pytest

from moviekit.testing import write_test_video

# Dark, light, red, blue: every pair of neighbours differs enough for the content detector.
COLOURS = [(20, 20, 20), (230, 230, 230), (200, 30, 30), (30, 30, 200)]
BOUNDS = [(0, 12), (12, 24), (24, 36), (36, 48)]


def segment(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "moviekit", "segment", *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=120
    )


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return write_test_video(tmp_path_factory.mktemp("v") / "four.mp4", shots=COLOURS)


def test_json_and_csv_agree_on_the_known_cuts(video, tmp_path):
    js = segment(video)
    assert js.returncode == 0, js.stderr
    data = json.loads(js.stdout)
    assert data["errors"] == {}
    shots = data["videos"][str(video)]
    assert [(s["start_frame"], s["end_frame"]) for s in shots] == BOUNDS
    assert [s["index"] for s in shots] == [0, 1, 2, 3]
    assert [s["start_time"] for s in shots] == pytest.approx([0.0, 1.0, 2.0, 3.0])
    assert [s["end_time"] for s in shots] == pytest.approx([1.0, 2.0, 3.0, 4.0])

    out = tmp_path / "shots.csv"
    cs = segment(video, "--format", "csv", "--out", out)
    assert cs.returncode == 0, cs.stderr
    assert cs.stdout == ""
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert list(rows[0]) == ["video", "index", "start_frame", "end_frame", "start_time", "end_time"]
    as_json = [{k: (str(v) if k == "video" else float(v) if "time" in k else int(v)) for k, v in s.items()} for s in shots]
    as_csv = [{k: (v if k == "video" else float(v) if "time" in k else int(v)) for k, v in r.items()} for r in rows]
    assert as_csv == as_json


def test_set_and_other_segmenter(video):
    r = segment(video, "--segmenter", "fixed_length", "--set", "seconds=2", "--format", "csv")
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert [(int(x["start_frame"]), int(x["end_frame"])) for x in rows] == [(0, 24), (24, 48)]
    # A nested, YAML-typed setting: an impossible threshold finds no cut.
    r = segment(video, "--set", "content.threshold=255")
    assert r.returncode == 0, r.stderr
    assert [(s["start_frame"], s["end_frame"]) for s in json.loads(r.stdout)["videos"][str(video)]] == [(0, 48)]


def test_export_clips_have_exact_frames(video, tmp_path):
    import av

    clips = tmp_path / "clips"
    r = segment(video, "--export-clips", clips, "--out", tmp_path / "s.json")
    assert r.returncode == 0, r.stderr
    files = sorted((clips / "four").iterdir())
    assert [f.name for f in files] == [f"four-shot-{i:04d}.mp4" for i in range(4)]
    for f, (start, end), colour in zip(files, BOUNDS, COLOURS, strict=True):
        with av.open(str(f)) as c:
            assert c.streams.video[0].codec_context.name == "h264"
            assert c.streams.audio, "the source has audio, so the clip should too"
            frames = [fr.to_ndarray(format="rgb24") for fr in c.decode(video=0)]
        assert len(frames) == end - start
        # Every frame is from the right shot (flat colour, apart from a thin moving stripe).
        for img in frames:
            assert np.abs(np.median(img.reshape(-1, 3), axis=0) - colour).max() < 12


def test_unreadable_video_is_reported_and_others_written(video, tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video at all" * 64)
    missing = tmp_path / "missing.mp4"
    out = tmp_path / "s.json"
    r = segment(bad, video, missing, "--out", out)
    assert r.returncode == 1
    assert "broken.mp4" in r.stderr and "missing.mp4" in r.stderr
    data = json.loads(out.read_text())
    assert [(s["start_frame"], s["end_frame"]) for s in data["videos"][str(video)]] == BOUNDS
    assert set(data["errors"]) == {str(bad), str(missing)}
    # CSV too, on stdout.
    r = segment(bad, video, "--format", "csv")
    assert r.returncode == 1 and "broken.mp4" in r.stderr
    assert len(list(csv.DictReader(io.StringIO(r.stdout)))) == 4


def test_unknown_setting_is_named(video):
    r = segment(video, "--set", "content.thresold=20")
    assert r.returncode == 2
    assert "thresold" in r.stderr and "did you mean 'threshold'" in r.stderr
    assert r.stdout == ""
    r = segment(video, "--set", "min_scene_len=[1, 2]")
    assert r.returncode == 2 and "min_scene_len" in r.stderr


def test_unknown_segmenter_is_named(video):
    r = segment(video, "--segmenter", "scenedetekt")
    assert r.returncode == 2
    assert "scenedetekt" in r.stderr and "scenedetect" in r.stderr
    r = segment(video, "--segmenter", "pyav")
    assert r.returncode == 2 and "pyav" in r.stderr and "not a segmenter" in r.stderr
