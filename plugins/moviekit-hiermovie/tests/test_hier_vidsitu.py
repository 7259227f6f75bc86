import json

import numpy as np
import pytest

from moviekit import MoviekitError
from moviekit_hiermovie.fixtures import write_tiny_vidsitu
from moviekit_hiermovie.vidsitu import (
    VidSitu,
    majority,
    read_annotations,
    role_name,
    roles_text,
)


def _ann(vid, verbs, rel="Causes", args=None):
    return {
        e: {
            "vid_seg_int": vid,
            "Verb": v,
            "Args": args or {"Arg0 (pusher)": "Man", "Scene of the Event": "street"},
            **({} if e == "Ev3" else {"EvRel": rel}),
        }
        for e, v in zip(("Ev1", "Ev2", "Ev3", "Ev4", "Ev5"), verbs)
    }


def _folder(tmp_path, anns, split=("v_a_seg_0_10",), name="valid"):
    root = tmp_path / "vidsitu_annotations"
    (root / "split_files").mkdir(parents=True)
    (root / "vseg_ann_files").mkdir()
    (root / "split_files" / f"vseg_split_{name}_lb.json").write_text(json.dumps(list(split)))
    (root / "vseg_ann_files" / f"vsann_{name}_lb.json").write_text(json.dumps(anns, indent=1))
    return root


def test_several_annotators_are_grouped_per_clip(tmp_path):
    vid = "v_a_seg_0_10"
    anns = [
        [_ann(vid, ["push", "run", "talk", "look", "sit"]), _ann(vid, ["shove", "run", "talk", "look", "stand"], rel="NoRel")],
        _ann(vid, ["push", "walk", "talk", "look", "sit"]),
    ]
    root = _folder(tmp_path, anns)
    (root / "vinfo_files").mkdir()
    (root / "vinfo_files" / "vinfo_valid_lb.json").write_text(json.dumps([{"vid_seg_int": vid, "vb_lst": {"Ev1": ["hit"] * 10}}]))
    feats = tmp_path / "features"
    feats.mkdir()
    np.save(feats / f"{vid}.npy", np.ones((5, 4), np.float32))
    src = VidSitu(root=root, features_dir=feats)
    (item,) = src.items()
    assert item.split == "val" and item.features.arrays["tokens"].shape == (5, 4) and len(item.clips) == 5
    ev = item.metadata["vidsitu"]["events"]
    assert ev[0]["verbs"] == ["push", "shove", "push"] and ev[0]["vb_lst"] == ["hit"] * 10
    assert ev[0]["relations"] == ["Causes", "NoRel", "Causes"] and ev[2]["relations"] == [None, None, None]
    assert majority(ev[0]["relations"]) == "Causes"
    assert roles_text(ev[0]["args"][0]) == "ARG0 man ASCN street"
    assert src.vocabulary() == sorted({"push", "shove", "run", "walk", "talk", "look", "sit", "stand"})


def test_role_names():
    assert role_name("Arg0 (pusher)") == "Arg0" and role_name("AScn") == "AScn" and role_name("Scene of the Event") == "AScn"
    assert majority(["a", "b"]) == "a" and majority(["a", "b", "b"]) == "b" and majority([None]) is None


def test_invalid_json_names_file_and_line(tmp_path):
    root = _folder(tmp_path, [])
    bad = root / "vseg_ann_files" / "vsann_valid_lb.json"
    bad.write_text('[\n {"Ev1": \n  {"Verb": "push",}\n]')
    with pytest.raises(MoviekitError, match=r"vsann_valid_lb\.json:3: invalid JSON"):
        read_annotations(bad)


def test_missing_verb_names_file_and_line_of_the_clip(tmp_path):
    good = _ann("v_a_seg_0_10", ["a"] * 5)
    broken = _ann("v_b_seg_0_10", ["a"] * 5)
    del broken["Ev4"]["Verb"]
    root = _folder(tmp_path, [good, broken], split=("v_a_seg_0_10", "v_b_seg_0_10"))
    path = root / "vseg_ann_files" / "vsann_valid_lb.json"
    line = next(i for i, t in enumerate(path.read_text().splitlines(), 1) if "v_b_seg_0_10" in t)
    with pytest.raises(MoviekitError, match=rf"vsann_valid_lb\.json:{line}: clip v_b_seg_0_10 Ev4: missing 'Verb'"):
        read_annotations(path)
    del good["Ev5"]["EvRel"]
    path.write_text(json.dumps([good], indent=1))
    with pytest.raises(MoviekitError, match=r"Ev5: missing 'EvRel'"):
        read_annotations(path)


def test_bad_feature_shape_is_a_problem_not_a_crash(tmp_path):
    root = write_tiny_vidsitu(tmp_path / "t", n=2, dim=6)
    np.save(root / "features" / "v_tiny01_seg_10_20.npy", np.zeros((4, 6), np.float32))
    src = VidSitu(root=root / "vidsitu_annotations", features_dir=root / "features")
    items = src.items()
    assert len(items) == 3 and "v_tiny01_seg_10_20" in src.problems and "(5, D)" in src.problems["v_tiny01_seg_10_20"]
    assert {it.split for it in items} == {"train", "val"}


def test_missing_split_files_is_an_error(tmp_path):
    (tmp_path / "split_files").mkdir()
    with pytest.raises(MoviekitError, match="none of the split files"):
        VidSitu(root=tmp_path).items()
