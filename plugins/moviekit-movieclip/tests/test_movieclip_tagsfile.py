"""The MovieCLIP tags format (moviekit_movieclip.tagsfile) and its ``movieclip_json`` dataset source."""

import json

import pytest

from moviekit import Labels, MoviekitError, Shot
from moviekit.plugins import get_registry
from moviekit.testing import check_component
from moviekit_movieclip.tagsfile import MovieClipJSON, read_movieclip_json, read_movieclip_shots, write_movieclip_json


def test_registered_by_the_plugin():
    reg = get_registry()
    assert reg.get("movieclip_json", "dataset") is MovieClipJSON
    assert reg.plugin_of("movieclip_json").distribution == "moviekit-movieclip"


def test_contract_movieclip_json(tmp_path):
    videos = check_component("movieclip_json", tmp_path)
    assert [v.id for v in videos] == ["tt0000001", "tt0000002"]
    assert videos[0].labels == ["Car", "Interview"]
    assert len(videos[0].metadata["shot_labels"]) == 3


def _shots_and_labels():
    shots = {
        "tt01": [
            Shot(video_id="tt01", index=i, start_frame=10 * i, end_frame=10 * i + 9, start_time=i * 0.4, end_time=i * 0.4 + 0.36)
            for i in range(3)
        ],
        "tt02": [Shot(video_id="tt02", index=7, start_frame=0, end_frame=50, start_time=0.0, end_time=2.0833333333333335)],
    }
    labels = {
        "tt01": [
            Labels(video_id="tt01", shot_index=0, scores={"Car": 0.7123456789, "Road": 0.1}, labels=["Car", "Road"]),
            Labels(video_id="tt01", shot_index=2, scores={"Kitchen": 0.05}, labels=["Kitchen"]),
        ],
        "tt02": [Labels(video_id="tt02", shot_index=7, scores={"Interview": 0.9, "Car": 0.3}, labels=["Interview", "Car"])],
    }
    return shots, labels


def test_movieclip_json_round_trip(tmp_path):
    shots, labels = _shots_and_labels()
    path = write_movieclip_json(tmp_path / "tags.json", labels, shots)
    raw = json.loads(path.read_text())
    assert list(raw["tt01"]) == ["tt01_shot_0000.mp4", "tt01_shot_0002.mp4"]
    assert raw["tt02"]["tt02_shot_0007.mp4"] == {
        "start_frame": 0,
        "end_frame": 50,
        "start_time": 0.0,
        "end_time": 2.0833333333333335,
        "labels": {"Interview": 0.9, "Car": 0.3},
    }
    assert read_movieclip_json(path) == labels
    read_shots = read_movieclip_shots(path)
    assert read_shots["tt01"] == [shots["tt01"][0], shots["tt01"][2]]
    assert read_shots["tt02"] == shots["tt02"]
    # and file -> records -> file is byte-identical
    again = write_movieclip_json(tmp_path / "again.json", read_movieclip_json(path), read_movieclip_shots(path))
    assert again.read_text() == path.read_text()


def test_movieclip_writer_rejects_unmatched_labels(tmp_path):
    shots, labels = _shots_and_labels()
    labels["tt02"][0] = labels["tt02"][0].model_copy(update={"shot_index": 3})
    with pytest.raises(MoviekitError, match="no shot with index 3"):
        write_movieclip_json(tmp_path / "t.json", labels, shots)


def test_movieclip_source(tmp_path):
    shots, labels = _shots_and_labels()
    path = write_movieclip_json(tmp_path / "tags.json", labels, shots)
    data = json.loads(path.read_text())
    data["broken"] = {"broken_shot_0000.mp4": {"start_frame": 0, "labels": {"Car": 1.0}}}
    data["tt03"] = {"some_name.mp4": {"start_frame": 5, "end_frame": 9, "start_time": 0.2, "end_time": 0.4, "labels": {"Car": 0.5}}}
    path.write_text(json.dumps(data))
    videos_root = tmp_path / "videos"
    videos_root.mkdir()
    (videos_root / "tt01.mkv").write_bytes(b"x")
    src = MovieClipJSON(path=path, videos_root=videos_root, min_score=0.2)
    videos = src.items()
    assert [v.id for v in videos] == ["tt01", "tt02", "tt03"]
    assert "start_time" in src.problems["broken"]
    by_id = {v.id: v for v in videos}
    assert by_id["tt01"].labels == ["Car"]  # Road (0.1) and Kitchen (0.05) are below min_score
    assert by_id["tt02"].labels == ["Car", "Interview"]
    assert by_id["tt01"].path == videos_root / "tt01.mkv"
    assert by_id["tt02"].path is None
    assert [Labels(**d) for d in by_id["tt01"].metadata["shot_labels"]] == labels["tt01"]
    assert by_id["tt03"].metadata["shot_labels"][0]["shot_index"] == 0  # no _shot_N in the name: position
    assert all(v.split in ("train", "val", "test") for v in videos)
    assert src.vocabulary() == ["Car", "Interview"]
    assert {v.id: v.labels for v in MovieClipJSON(path=path).items()}["tt01"] == ["Car", "Kitchen", "Road"]
    # splits are deterministic
    assert [v.split for v in MovieClipJSON(path=path, seed=5).items()] == [v.split for v in MovieClipJSON(path=path, seed=5).items()]


def test_movieclip_bad_file(tmp_path):
    p = tmp_path / "bad.json"
    p.write_text("{not json")
    with pytest.raises(MoviekitError, match="not valid JSON"):
        MovieClipJSON(path=p).items()
    p.write_text("[1, 2]")
    with pytest.raises(MoviekitError, match="expected an object"):
        read_movieclip_json(p)
