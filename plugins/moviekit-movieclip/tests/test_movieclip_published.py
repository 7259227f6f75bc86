"""Readers of the files the MovieCLIP authors published (usc-sail/mica-MovieCLIP ``split_files/``).

The label map below is the published ``multi_label_thresh_0_4_0_1_label_map.json`` (data, in its
own layout) and the list lines are copied from the published ``test_shots_human_verified_...``
and ``train_..._labels.txt`` files; the expected labels were read off the map by hand.
"""

from __future__ import annotations

import pytest

from moviekit import MoviekitError
from moviekit_movieclip import published
from moviekit_movieclip.published import (
    PublishedShot,
    detect_format,
    read_label_map,
    read_published_list,
    read_published_splits,
    read_shot_labels,
    read_verified_list,
    shot_index_from_name,
)
from moviekit_movieclip.scenes import VerifiedShot, write_test_list
from moviekit_movieclip.taxonomy import resolve_taxonomy

LABEL_MAP_JSON = """{
    "courtroom": 0,
    "police station": 1,
    "mountain": 2,
    "swamp": 3,
    "train": 4,
    "corridor": 5,
    "baseball field": 6,
    "garage": 7,
    "bakery": 8,
    "stairs": 9,
    "pool": 10,
    "road": 11,
    "park": 12,
    "church": 13,
    "desert": 14,
    "makeup studio": 15,
    "arena": 16,
    "archaeological site": 17,
    "bedroom": 18,
    "downtown": 19,
    "room": 20,
    "helicopter": 21,
    "closet": 22,
    "penthouse": 23,
    "concert hall": 24,
    "market": 25,
    "dining room": 26,
    "studio": 27,
    "river": 28,
    "laboratory": 29,
    "race track": 30,
    "yard": 31,
    "cafe": 32,
    "library": 33,
    "factory": 34,
    "ballroom": 35,
    "prison": 36,
    "stage": 37,
    "dorm": 38,
    "boxing ring": 39,
    "office": 40,
    "clinic": 41,
    "forest": 42,
    "morgue": 43,
    "attic": 44,
    "shore": 45,
    "balcony": 46,
    "conference room": 47,
    "automotive repair": 48,
    "subway": 49,
    "banquet": 50,
    "gas station": 51,
    "fire station": 52,
    "mall": 53,
    "walkway": 54,
    "farm": 55,
    "harbor": 56,
    "salon": 57,
    "bowling alley": 58,
    "restaurant": 59,
    "art gallery": 60,
    "sea": 61,
    "pond": 62,
    "cockpit": 63,
    "ship": 64,
    "castle": 65,
    "bathroom": 66,
    "tower": 67,
    "plane": 68,
    "beach": 69,
    "agriculture field": 70,
    "grassland": 71,
    "bridge": 72,
    "batting cage": 73,
    "tent": 74,
    "car": 75,
    "cabin": 76,
    "living room": 77,
    "loft": 78,
    "battlefield": 79,
    "graveyard": 80,
    "gym": 81,
    "lake": 82,
    "chapel": 83,
    "classroom": 84,
    "theater": 85,
    "suburban": 86,
    "garden": 87,
    "stadium": 88,
    "valley": 89,
    "retail": 90,
    "hangar": 91,
    "boat": 92,
    "bus": 93,
    "war room": 94,
    "bar": 95,
    "kindergarten": 96,
    "apartment": 97,
    "construction site": 98,
    "fair": 99,
    "booth": 100,
    "locker room": 101,
    "kitchen": 102,
    "alley": 103,
    "cab": 104,
    "hospital": 105,
    "casino": 106,
    "parking": 107,
    "overpass": 108,
    "airport": 109,
    "waterfall": 110,
    "ice rink": 111,
    "shuttle": 112,
    "wagon": 113,
    "cave": 114,
    "lounge": 115,
    "press room": 116,
    "bullring": 117,
    "tunnel": 118,
    "shooting range": 119,
    "club": 120,
    "sandbank": 121,
    "skyline": 122,
    "playground": 123,
    "auditorium": 124,
    "school": 125,
    "elevator": 126,
    "inn": 127,
    "hot spring": 128,
    "plaza": 129,
    "mansion": 130,
    "tennis court": 131,
    "control room": 132,
    "zoo": 133,
    "grove": 134,
    "basement": 135,
    "lobby": 136,
    "foundry": 137,
    "street": 138,
    "deck": 139,
    "hall": 140,
    "golf course": 141,
    "truck": 142,
    "animal shelter": 143,
    "basketball court": 144,
    "station": 145,
    "amusement park": 146,
    "funeral": 147,
    "computer room": 148,
    "cellar": 149
}"""

VERIFIED_LINES = """v_O0gse4WDTrY_seg_100_110/v_O0gse4WDTrY_seg_100_110-Scene-004.mp4 42
v_vLw24Xr1zKo_seg_60_70/v_vLw24Xr1zKo_seg_60_70-Scene-003.mp4 31 96 123
v_2nC7GyHvy0w_seg_0_10/v_2nC7GyHvy0w_seg_0_10-Scene-001.mp4 118
v_-ZxtmDbqDRc_seg_135_145/v_-ZxtmDbqDRc_seg_135_145-Scene-002.mp4 54
v_t1V-lbe6gII_seg_10_20/v_t1V-lbe6gII_seg_10_20-Scene-006.mp4 139 92 46 64
v_F9ScROJxATc_seg_90_100/v_F9ScROJxATc_seg_90_100-Scene-006.mp4 0
v__OabFZytcp8_seg_20_30/v__OabFZytcp8_seg_20_30-Scene-002.mp4 142
"""

TRAIN_LINES = """rAchA32z2zM/rAchA32z2zM-Scene-009.mp4 63
u74DpEZeHbg/u74DpEZeHbg-Scene-046.mp4 0 147
Vje8Fp3yQFM/Vje8Fp3yQFM-Scene-049.mp4 88 16 30
-yPwW5V4mhI/-yPwW5V4mhI-Scene-004.mp4 84 0
_ghkHlthIqM/_ghkHlthIqM-Scene-105.mp4 35 147 140
"""


@pytest.fixture
def split_files(tmp_path):
    d = tmp_path / "split_files"
    d.mkdir()
    (d / published.LABEL_MAP_FILE).write_text(LABEL_MAP_JSON)
    (d / published.VERIFIED_TEST_FILE).write_text(VERIFIED_LINES)
    (d / published.SPLIT_FILES["train"]).write_text(TRAIN_LINES)
    return d


def test_label_map_is_read_in_index_order(split_files):
    labels = read_label_map(split_files / published.LABEL_MAP_FILE)
    assert len(labels) == 150
    assert labels[:4] == ["courtroom", "police station", "mountain", "swamp"] and labels[149] == "cellar"
    # Every published label is one of the packaged 179-label taxonomy's.
    assert set(labels) <= set(resolve_taxonomy(None, None).labels)


@pytest.mark.parametrize(
    "content,message",
    [
        ('{"a": 0, "b": 2}', "indices must be 0..1"),
        ('{"a": 0, "b": 0}', "index 0 is given to both"),
        ('{"a": "0"}', "indices must be integers"),
        ('{"a": 0,\n "b": }', ":2: not valid JSON"),
        ('"courtroom"', "JSON object"),
        ('["a", "a"]', "appears twice"),
    ],
)
def test_bad_label_maps_name_the_file(tmp_path, content, message):
    p = tmp_path / "map.json"
    p.write_text(content)
    with pytest.raises(MoviekitError, match=message) as e:
        read_label_map(p)
    assert str(p) in str(e.value)


def test_the_pickle_map_is_refused(tmp_path):
    p = tmp_path / "label_2_ind_multi_label_thresh_0_4_0_1_150_label_map.pkl"
    p.write_bytes(b"not read")
    with pytest.raises(MoviekitError, match="pickle files are not read"):
        read_label_map(p)


def test_verified_list_lines_in_the_published_format(split_files):
    shots = read_published_list(split_files / published.VERIFIED_TEST_FILE)  # the map beside it is found
    assert [(s.video, s.shot, s.labels) for s in shots] == [
        ("v_O0gse4WDTrY_seg_100_110", 3, ("forest",)),
        ("v_vLw24Xr1zKo_seg_60_70", 2, ("yard", "kindergarten", "playground")),
        ("v_2nC7GyHvy0w_seg_0_10", 0, ("tunnel",)),
        ("v_-ZxtmDbqDRc_seg_135_145", 1, ("walkway",)),
        ("v_t1V-lbe6gII_seg_10_20", 5, ("deck", "boat", "balcony", "ship")),
        ("v_F9ScROJxATc_seg_90_100", 5, ("courtroom",)),
        ("v__OabFZytcp8_seg_20_30", 1, ("truck",)),
    ]
    assert shots[1].line == 2 and shots[1].shot_file == "v_vLw24Xr1zKo_seg_60_70-Scene-003.mp4"


def test_formats_are_detected_and_both_read_the_same(split_files, tmp_path):
    pub = split_files / published.VERIFIED_TEST_FILE
    assert detect_format(pub) == "published"
    vocab = resolve_taxonomy(None, None).labels
    theirs = read_verified_list(pub, vocab)
    assert all(isinstance(s, VerifiedShot) for s in theirs)
    ours = write_test_list(tmp_path / "ours.csv", [(s.video, s.shot, s.labels) for s in theirs])
    assert detect_format(ours) == "moviekit"
    assert [(s.video, s.shot, s.labels) for s in read_verified_list(ours, vocab)] == [(s.video, s.shot, s.labels) for s in theirs]
    assert read_shot_labels(ours, vocab) == read_shot_labels(pub, vocab) == {(s.video, s.shot): s.labels for s in theirs}
    # Declared formats are taken as given: a published file declared moviekit fails on its header.
    with pytest.raises(MoviekitError, match="header"):
        read_shot_labels(pub, vocab, format="moviekit")
    odd = tmp_path / "odd.txt"
    odd.write_text("# a comment\n\nsomething else\n")
    with pytest.raises(MoviekitError, match=r"odd.txt:3: cannot tell the format"):
        detect_format(odd)


def test_training_lists_and_splits(split_files):
    splits = read_published_splits(split_files)
    assert set(splits) == {"train", "test_verified"}
    train = {(s.video, s.shot): s.labels for s in splits["train"]}
    assert train[("-yPwW5V4mhI", 3)] == ("classroom", "courtroom")  # label order as published
    assert train[("_ghkHlthIqM", 104)] == ("ballroom", "funeral", "hall")
    assert train[("Vje8Fp3yQFM", 48)] == ("stadium", "arena", "race track")


@pytest.mark.parametrize(
    "line,message",
    [
        ("a/a-Scene-001.mp4 150", "outside the label map"),
        ("a/a-Scene-001.mp4 x", "is not an integer"),
        ("a-Scene-001.mp4 3", "is not '<video folder>/<shot file>'"),
        ("a/a-shot-1.mp4 3", "cannot read a shot number"),
        ("a/a-Scene-000.mp4 3", "cannot read a shot number"),
        ("a/a-Scene-001.mp4", "expected '<video folder>"),
    ],
)
def test_bad_published_lines_name_file_and_line(split_files, line, message):
    p = split_files / "list.txt"
    p.write_text("v/v-Scene-001.mp4 1\n\n" + line + "\n")
    with pytest.raises(MoviekitError, match=message) as e:
        read_published_list(p, split_files / published.LABEL_MAP_FILE)
    assert str(e.value).startswith(f"{p}:3: ")


def test_duplicates_and_vocabulary(split_files):
    p = split_files / "dups.txt"
    p.write_text("v/v-Scene-002.mp4 1 2\nv/v-Scene-002.mp4 2 1\n")
    assert [s.labels for s in read_published_list(p)] == [("police station", "mountain")]
    p.write_text("v/v-Scene-002.mp4 1 2\nv/v-Scene-002.mp4 3\n")
    with pytest.raises(MoviekitError, match=r"dups.txt:2: .*already listed on line 1"):
        read_published_list(p)
    with pytest.raises(MoviekitError, match="not in the classifier's vocabulary"):
        read_published_list(p, vocabulary=["courtroom"])
    lonely = split_files.parent / "elsewhere.txt"
    lonely.write_text("v/v-Scene-002.mp4 1\n")
    with pytest.raises(MoviekitError, match="give its label map"):
        read_published_list(lonely)
    assert read_published_list(lonely, ["x", "y"]) == [PublishedShot("v", 1, ("y",), str(lonely), 1, "v-Scene-002.mp4")]


def test_shot_numbers_are_pyscenedetects_from_one():
    assert shot_index_from_name("abc-Scene-001.mp4") == 0
    assert shot_index_from_name("a-Scene-b-Scene-120.mp4") == 119
