"""The synthetic movies and the user-data readers (movie table, co-watch pairs, MovieNet scene annotations)."""

import json

import numpy as np
import pytest

from moviekit import Clip, MoviekitError
from moviekit_movies2scenes.data import MovieFolder, read_cowatch, read_movie_table, read_movienet_scenes
from moviekit_movies2scenes.experts import keyframe_rows
from moviekit_movies2scenes.places import place_labels
from moviekit_movies2scenes.synthetic import SyntheticMovies
from moviekit_movies2scenes.train_shot import neighbour_positives


def test_places_are_movieclip_labels():
    import csv
    from pathlib import Path

    taxonomy = Path("/work/shared/data/movieclip_taxonomy.csv")
    labels = place_labels()
    assert len(labels) == 12 and labels[:6] == ["office", "airport", "school", "hotel", "prison", "restaurant"]
    if taxonomy.is_file():  # the check against the source taxonomy, where it is available
        assert set(labels) <= {r["label"] for r in csv.DictReader(taxonomy.open())}


def test_synthetic_movies_ground_truth(tmp_path):
    src = SyntheticMovies(n=6, min_scenes=2, max_scenes=3, root=tmp_path / "m", workers=1)
    items = src.items()
    assert len(items) == 6 and {v.split for v in items} == {"train", "val", "test"}
    for v in items:
        gt = json.loads((tmp_path / "m" / f"{v.id}.m2s.json").read_text())
        shots = gt["shots"]
        assert shots[0][0] == 0 and all(a[1] == b[0] for a, b in zip(shots, shots[1:]))  # shots tile the video
        scenes = gt["scenes"]
        assert scenes[0]["shots"][0] == 0 and scenes[-1]["shots"][1] == len(shots)
        assert all(s["places"] and set(s["places"]) <= set(place_labels()) for s in scenes)
        assert v.metadata["genres"] == v.labels and v.metadata["synopsis"]
        import av

        with av.open(str(v.path)) as c:
            assert sum(1 for _ in c.decode(video=0)) == gt["num_frames"]
    # co-watch pairs are symmetric and mostly inside a taste cluster
    clusters = src.clusters()
    for v in items:
        for other in v.metadata["cowatch"]:
            assert v.id in next(w for w in items if w.id == other).metadata["cowatch"]
    pairs = src.cowatch_pairs()
    assert pairs and sum(clusters[a] == clusters[b] for a, b in pairs) >= 0.5 * len(pairs)
    # same config, same dataset
    assert (
        SyntheticMovies(n=6, min_scenes=2, max_scenes=3, root=tmp_path / "m", workers=1).items()[0].metadata["scenes"]
        == items[0].metadata["scenes"]
    )


def test_movie_table_and_cowatch_errors_name_file_and_line(tmp_path):
    t = tmp_path / "movies.csv"
    t.write_text('movie,genres,synopsis,year\na,Drama,"x, y",1990\nb,Comedy,z,19x0\n')
    with pytest.raises(MoviekitError, match=r"movies.csv:3: year '19x0'"):
        read_movie_table(t)
    t.write_text("movie,genres,synopsis\na,Drama,x\na,Comedy,y\n")
    with pytest.raises(MoviekitError, match=r"movies.csv:3: movie 'a' already listed on line 2"):
        read_movie_table(t)
    t.write_text("movie,genres\na,Drama\n")
    with pytest.raises(MoviekitError, match=r"movies.csv:1: needs columns"):
        read_movie_table(t)
    c = tmp_path / "cowatch.csv"
    c.write_text("movie_a,movie_b\na,b\nb,zz\n")
    with pytest.raises(MoviekitError, match=r"cowatch.csv:3: movie 'zz' is not in the movie table"):
        read_cowatch(c, {"a", "b"})
    c.write_text("movie_a,movie_b\na,b,c\n")
    with pytest.raises(MoviekitError, match=r"cowatch.csv:2: expected 2 fields"):
        read_cowatch(c, {"a", "b"})


def test_movienet_scene_annotations(tmp_path):
    f = tmp_path / "tt0001.json"
    f.write_text(
        json.dumps(
            {
                "scene": [
                    {"id": 0, "shot": [0, 3], "frame": [0, 119], "place_tag": ["office"]},
                    {"id": 1, "shot": [4, 6], "frame": [120, 200], "place_tag": None},
                ]
            }
        )
    )
    s = read_movienet_scenes(f)
    assert s[0] == {"shots": [0, 4], "start_frame": 0, "end_frame": 120, "places": ["office"]}
    assert s[1]["places"] == [] and s[1]["end_frame"] == 201
    f.write_text(json.dumps({"scene": [{"shot": [0, 3]}]}))
    with pytest.raises(MoviekitError, match=r"scene\[0\] needs 'shot' and 'frame'"):
        read_movienet_scenes(f)
    f.write_text('{"scene": [\n  {"shot": [0, 1],,}]}')
    with pytest.raises(MoviekitError, match=r"tt0001.json:2: not JSON"):
        read_movienet_scenes(f)


def test_movie_folder_reads_table_cowatch_and_scenes(tmp_path):
    cfg = MovieFolder.example_config(tmp_path)
    scenes = tmp_path / "scenes"
    scenes.mkdir()
    (scenes / "a.json").write_text(json.dumps({"scene": [{"shot": [0, 0], "frame": [0, 11], "place_tag": ["bar"]}]}))
    items = MovieFolder(**cfg, scenes_dir=scenes).items()
    a = next(v for v in items if v.id == "a")
    assert a.labels == ["Drama", "Crime"] and a.metadata["year"] == 1999 and a.metadata["cowatch"] == ["b"]
    assert a.metadata["scenes"][0]["places"] == ["bar"] and a.path.name == "a.mp4"


def test_keyframe_rows_start_middle_end():
    times = np.arange(20) / 4.0  # 4 frames per second
    clips = [Clip(video_id="v", index=0, shot_index=0, start_frame=0, end_frame=8, start_time=0.0, end_time=2.0),
             Clip(video_id="v", index=1, shot_index=1, start_frame=8, end_frame=20, start_time=2.0, end_time=5.0)]  # fmt: skip
    rows = keyframe_rows(times, clips, (0.0, 0.5, 1.0))
    # clip 0 holds frames 0..7 (0 .. 1.75 s): start 0, middle 0.875 s -> frame 3 or 4 (nearest: 3.5 -> 3), end 7
    assert rows[0, 0] == 0 and rows[0, 2] == 7 and rows[0, 1] in (3, 4)
    assert rows[1, 0] == 8 and rows[1, 2] == 19


def test_neighbour_positives_pick_the_most_similar_neighbour():
    emb = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9], [1, 0.05]], float)
    assert neighbour_positives(emb, 1).tolist() == [1, 0, 3, 2, 3]
    assert neighbour_positives(emb, 4)[0] == 4  # with a wider neighbourhood shot 4 is closer to shot 0
    assert neighbour_positives(emb[:1], 2).tolist() == [0]
