"""The LVU label-file reader and the `lvu` source, on small files in the release's format."""

import pytest

from moviekit.default_plugins.lvu import LVU_TASKS, LVUSource, read_lvu_task
from moviekit.errors import MoviekitError


def _write(root, task, rows_by_split, header=None):
    (root / task).mkdir(parents=True, exist_ok=True)
    for split, rows in rows_by_split.items():
        head = header or f"{task} youtube_id imdb_id"
        (root / task / f"{split}.csv").write_text(head + "\n" + "\n".join(rows) + "\n")


def test_nine_tasks_with_their_kinds():
    assert len(LVU_TASKS) == 9
    assert sorted(k for k, v in LVU_TASKS.items() if v == "regression") == ["like_ratio", "view_count"]


def test_reads_classification_and_regression(tmp_path):
    _write(tmp_path, "scene", {"train": ["2 abc tt01", "0 def tt02"], "val": ["1 ghi tt03"], "test": ["3 jkl tt04"]})
    _write(tmp_path, "like_ratio", {"train": ["0.91 abc tt01"], "val": ["0.5 def tt02"], "test": ["0.25 x tt9"]})
    scene = read_lvu_task(tmp_path, "scene")
    assert [(r.id, r.target, r.line) for r in scene["train"]] == [("abc", "2", 2), ("def", "0", 3)]
    assert scene["train"][0].meta == {"imdb_id": "tt01"}
    like = read_lvu_task(tmp_path, "like_ratio")
    assert like["test"][0].target == pytest.approx(0.25)


def test_comma_separated_with_video_id_column(tmp_path):
    _write(tmp_path, "genre", {"train": ["4,tt1,vid_a"], "val": ["1,tt2,vid_b"], "test": ["0,tt3,vid_c"]}, header="genre,imdb_id,video_id")
    rows = read_lvu_task(tmp_path, "genre")
    assert rows["val"][0].id == "vid_b" and rows["val"][0].meta == {"imdb_id": "tt2"}


@pytest.mark.parametrize(
    "bad, message",
    [
        ("2 abc", "train.csv:3: 2 fields"),
        ("x abc tt1", "train.csv:3: target 'x' is not a number"),
        ("1.5 abc tt1", "train.csv:3: class id"),
    ],
)
def test_malformed_row_names_file_and_line(tmp_path, bad, message):
    _write(tmp_path, "scene", {"train": ["1 ok tt0", bad], "val": ["1 v tt1"], "test": ["1 t tt2"]})
    with pytest.raises(MoviekitError, match=message):
        read_lvu_task(tmp_path, "scene")


def test_unknown_task_and_missing_file(tmp_path):
    with pytest.raises(MoviekitError, match="unknown LVU task"):
        read_lvu_task(tmp_path, "places")
    with pytest.raises(MoviekitError, match="scene/train.csv"):
        read_lvu_task(tmp_path, "scene")


def test_source_takes_features_and_reports_missing_videos(tmp_path):
    import numpy as np

    _write(tmp_path, "view_count", {"train": ["3.5 a tt1", "1.0 gone tt2"], "val": ["2.0 b tt3"], "test": ["1.0 c tt4"]})
    for vid in "abc":
        (tmp_path / "feats" / "scene" / vid).mkdir(parents=True)
        np.save(tmp_path / "feats" / "scene" / vid / "0.npy", np.ones(4, np.float32))
    src = LVUSource(root=tmp_path, task="view_count", features=tmp_path / "feats")
    items = src.items()
    assert [v.id for v in items] == ["a", "b", "c"]
    assert items[0].metadata["target"] == pytest.approx(3.5) and items[0].labels == []
    assert items[0].features.arrays["scene"].shape == (1, 4)
    assert "gone" in src.problems and "train.csv:3" in src.problems["gone"]
    assert src.vocabulary() == []
