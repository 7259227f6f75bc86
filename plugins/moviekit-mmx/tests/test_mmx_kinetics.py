"""mmx_motion_kinetics: the paper's Kinetics motion networks built from mmaction2's configs (random weights here:
no Kinetics weights are installable), their clip protocol, safe checkpoint loading, windows and pooling."""

import argparse
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from moviekit import Clip, FrameBatch, MoviekitError, Video, VideoInfo, WeightsNotFoundError
from moviekit.testing import offline_env
from moviekit_mmx.experts.kinetics import (
    BACKBONES,
    MmxMotionKinetics,
    build_backbone,
    clip_positions,
    clip_tensor,
    global_pool,
    load_backbone,
    pool_windows,
    resize_crop,
)

REAL = [b for b, n in BACKBONES.items() if not n.test_only]
TINY = "tiny_r3d_TEST-ONLY"
ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path):
    offline_env(monkeypatch, tmp_path)


@pytest.mark.parametrize("name", REAL)
def test_protocol_is_the_mmaction2_configs(name):
    """The clip protocol and feature size in the table are those of the config file the wheel ships."""
    from moviekit.backends import mmaction

    net = BACKBONES[name]
    cfg = mmaction.load_config(net.config)
    steps = {s["type"]: s for s in cfg["val_pipeline"]}
    assert (steps["SampleFrames"]["clip_len"], steps["SampleFrames"]["frame_interval"]) == (net.clip_len, net.frame_interval)
    assert tuple(steps["Resize"]["scale"]) == (-1, net.short_side)
    assert steps["CenterCrop"]["crop_size"] == net.crop
    pre = cfg["model"]["data_preprocessor"]
    assert tuple(pre["mean"]) == net.mean and tuple(pre["std"]) == net.std and pre["format_shape"] == "NCTHW"
    assert cfg["model"]["cls_head"]["in_channels"] == net.dim
    assert net.checkpoint.rsplit("/", 1)[-1].startswith(Path(net.config).stem)


@pytest.mark.parametrize("name", REAL)
def test_real_backbone_from_config_feature_dim_and_checkpoint_round_trip(name, tmp_path):
    """Built from its config with random init at a tiny input: the pooled vector has the documented size, and a
    recognizer checkpoint saved from it (mmaction2's layout) loads back to the same features."""
    torch.manual_seed(0)
    net = build_backbone(name)
    x = torch.randn(1, 3, 8, 16, 16)
    with torch.no_grad():
        want = global_pool(net(x))
    assert tuple(want.shape) == (1, BACKBONES[name].dim)
    sd = {f"backbone.{k}": v for k, v in net.state_dict().items()}
    sd["cls_head.fc_cls.weight"] = torch.zeros(400, BACKBONES[name].dim)
    torch.save({"meta": {"epoch": 100, "env_info": "text"}, "state_dict": sd}, tmp_path / "zoo.pth")
    del sd
    torch.manual_seed(1)
    net.init_weights()  # other random weights
    with torch.no_grad():
        assert not torch.allclose(global_pool(net(x)), want)
    load_backbone("mmx_motion_kinetics", f"weights.{name}", net, tmp_path / "zoo.pth")
    with torch.no_grad():
        assert torch.equal(global_pool(net(x)), want)


def test_bare_state_dict_loads_and_mismatches_are_named(tmp_path):
    torch.manual_seed(0)
    net = build_backbone(TINY)
    x = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        want = global_pool(net(x))
    torch.save(net.state_dict(), tmp_path / "bare.pt")
    other = build_backbone(TINY)
    load_backbone("mmx_motion_kinetics", f"weights.{TINY}", other, tmp_path / "bare.pt")
    with torch.no_grad():
        assert torch.equal(global_pool(other(x)), want)
    sd = dict(net.state_dict())
    sd["extra.weight"] = sd.pop("conv1.conv.weight")
    torch.save(sd, tmp_path / "bad.pt")
    with pytest.raises(
        MoviekitError,
        match=r"weights\.tiny_r3d_TEST-ONLY[\s\S]*1 missing key\(s\) \['conv1\.conv\.weight'\][\s\S]*1 unexpected key\(s\) \['extra\.weight'\]",
    ):
        load_backbone("mmx_motion_kinetics", f"weights.{TINY}", other, tmp_path / "bad.pt")


def test_checkpoint_with_python_objects_is_refused(tmp_path):
    """weights_only=True: a checkpoint that would unpickle an arbitrary object is not read."""
    net = build_backbone(TINY)
    torch.save({"meta": {"cfg": argparse.Namespace(a=1)}, "state_dict": net.state_dict()}, tmp_path / "objects.pth")
    with pytest.raises(MoviekitError, match=r"objects\.pth: cannot be read as a state dict with torch\.load\(weights_only=True\)"):
        load_backbone("mmx_motion_kinetics", f"weights.{TINY}", net, tmp_path / "objects.pth")


def test_missing_weights_name_the_recipe_key_and_the_model_zoo():
    e = MmxMotionKinetics(backbones=["r2plus1d_r34_kinetics400"])
    with pytest.raises(WeightsNotFoundError) as err:
        e._load()
    msg = str(err.value)
    assert "weights.r2plus1d_r34_kinetics400" in msg and "mmaction2-r2plus1d_r34_kinetics400" in msg
    assert BACKBONES["r2plus1d_r34_kinetics400"].checkpoint in msg


def test_config_errors_name_the_key():
    with pytest.raises(ValueError, match="weights for \\['i3d_r50_kinetics400'\\]"):
        MmxMotionKinetics(backbones=["r2plus1d_r34_kinetics400"], weights={"i3d_r50_kinetics400": "/x.pth"})
    with pytest.raises(ValueError, match="listed twice"):
        MmxMotionKinetics(backbones=["i3d_r50_kinetics400", "i3d_r50_kinetics400"])
    assert MmxMotionKinetics().feature_shape() == (2048 + 512,)


def test_resize_crop_keeps_the_aspect_and_crops_the_centre():
    frame = np.zeros((1080, 1920, 3), np.uint8)
    frame[:, 960:] = 200  # right half bright: the centre crop straddles the middle
    out = resize_crop(frame, 256, 224)
    assert out.shape == (224, 224, 3)  # 1920x1080 -> 455x256 -> centre 224x224 from x=115
    # resized edge at 960 * 256 / 1080 = 227.6, minus the crop's left (455 - 224) // 2 = 115: column 112.6
    assert (out[:, :112] == 0).all() and (out[:, 114:] == 200).all()


def test_clip_positions_centre_and_loop():
    assert clip_positions(10, 64, 8, 8) == [10 + 8 * j for j in range(8)]
    assert clip_positions(0, 64, 4, 2) == [28, 30, 32, 34]  # (64 - 8) // 2 = 28
    assert clip_positions(0, 8, 8, 1, total=3) == [0, 1, 2, 0, 1, 2, 0, 1]


def test_pool_windows_takes_windows_inside_the_clip():
    fps = 10.0
    span = 8  # window of 8 frames: centre at start + 3.5 frames
    starts = np.arange(0, 40, 2)
    times = (starts + 3.5) / fps
    values = starts[:, None].astype(np.float32) * np.ones((1, 3), np.float32)
    clips = [
        Clip(video_id="v", index=0, shot_index=0, start_frame=4, end_frame=20, start_time=0.4, end_time=2.0),
        Clip(video_id="v", index=1, shot_index=1, start_frame=21, end_frame=25, start_time=2.1, end_time=2.5),
    ]
    out = pool_windows(times, values, clips, span, 3)
    inside = [s for s in starts if s >= 4 and s + span <= 20]  # 4, 6, ..., 12
    assert out[0, 0] == pytest.approx(np.mean(inside))
    # 4 frames < one window: the window centred nearest the clip's middle (2.3 s): start 20 (centre 2.35 s)
    assert out[1, 0] == 20.0
    assert pool_windows(np.zeros(0), np.zeros((0, 3)), clips, span, 3).shape == (2, 3)


def _batch(frames, start, fps):
    idx = np.arange(start, start + len(frames))
    return FrameBatch(frames=frames, indices=idx, times=idx / fps)


def test_sink_rows_are_the_network_on_the_windows(tmp_path):
    """Each row is the network applied to the clip cut from its window (an independent forward pass), at the
    window's centre time; the tail gets an end-aligned window; a short video loops."""
    cfg = MmxMotionKinetics.example_config(tmp_path)
    cfg["stride"] = 3
    e = MmxMotionKinetics(cfg)
    rng = np.random.default_rng(0)
    video = rng.integers(0, 255, (11, 48, 64, 3), dtype=np.uint8)
    info = VideoInfo(fps=10.0, num_frames=11, duration=1.1, width=64, height=48, has_audio=False)
    sink = e.open(Video(id="v", path=tmp_path / "v.mp4"), info)
    for s in range(0, 11, 4):
        sink.frames(_batch(video[s : s + 4], s, 10.0))
    track = sink.close()
    starts = [0, 3, 6, 7]  # span 4: windows at 0, 3, 6, then the tail [7, 11)
    assert np.allclose(track.times, [(s + 1.5) / 10.0 for s in starts])
    net = build_backbone("tiny_r3d_TEST-ONLY")
    load_backbone(e.name, "weights", net, Path(cfg["weights"]["tiny_r3d_TEST-ONLY"]))
    mean, std = BACKBONES["tiny_r3d_TEST-ONLY"].mean, BACKBONES["tiny_r3d_TEST-ONLY"].std
    clips = [np.stack([resize_crop(f, 40, 32) for f in video[s : s + 4]]) for s in starts]
    with torch.no_grad():
        want = global_pool(net(clip_tensor(clips, mean, std, "cpu"))).numpy()
    np.testing.assert_allclose(track.values, want, rtol=1e-4, atol=1e-5)

    short = e.open(Video(id="s", path=tmp_path / "s.mp4"), info)
    short.frames(_batch(video[:3], 0, 10.0))
    one = short.close()
    looped = np.stack([resize_crop(video[i], 40, 32) for i in (0, 1, 2, 0)])
    with torch.no_grad():
        want = global_pool(net(clip_tensor([looped], mean, std, "cpu"))).numpy()
    assert one.times.tolist() == [0.1] and np.allclose(one.values, want, rtol=1e-4, atol=1e-5)


def test_paper_recipe_validates_and_reports_missing_weights(tmp_path):
    env = {
        **os.environ,
        "MOVIEKIT_OFFLINE": "1",
        "MOVIEKIT_WEIGHTS": str(tmp_path / "w"),
        "MOVIEKIT_CACHE": str(tmp_path / "c"),
        "COLUMNS": "400",
    }
    out = subprocess.run(
        [sys.executable, "-m", "moviekit", "validate", str(ROOT / "recipes" / "mmx_trailer_paper.yaml")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "component(s) valid" in text
    for key in (
        "experts.motion.weights.i3d_r50_kinetics400",
        "experts.motion.weights.r2plus1d_r34_kinetics400",
        "experts.scene.pretrained",
    ):
        assert f"--set {key}=" in text
    assert BACKBONES["i3d_r50_kinetics400"].checkpoint in text


def test_through_the_core_reader_and_segmenter(tmp_path):
    """A recipe run: weights are checked before anything is decoded (the error names the recipe key), then
    every clip of every shot gets a finite feature row of the network's size."""
    from moviekit import extract_videos
    from moviekit.recipe import validate
    from moviekit.testing import write_test_video

    video = write_test_video(tmp_path / "v.mp4")  # flat-coloured shots of 12 frames at 12 fps
    motion = MmxMotionKinetics.example_config(tmp_path)

    def recipe(expert):
        return validate(
            {
                "dataset": {"use": "synthetic_trailers"},
                "segmenter": {"use": "scenedetect", "detector": "content"},
                "experts": {"motion": expert},
                "clips": {"min_clips": 0},
                "run": {"device": "cpu"},
            }
        )

    missing = {"use": "mmx_motion_kinetics", "backbones": ["i3d_r50_kinetics400"]}
    with pytest.raises(WeightsNotFoundError, match=r"experts\.motion \(mmx_motion_kinetics\)[\s\S]*weights\.i3d_r50_kinetics400"):
        extract_videos(recipe(missing), [Video(id="v", path=video)], output=tmp_path / "missing")
    assert (tmp_path / "missing" / "failures.jsonl").read_text() == ""  # the run stopped, no video failed
    (item,) = extract_videos(recipe({"use": "mmx_motion_kinetics", **motion}), [Video(id="v", path=video)], output=tmp_path / "out")
    feats = item.features.arrays["motion"]
    assert len(item.clips) >= 2 and feats.shape == (len(item.clips), 64) and np.isfinite(feats).all()
    assert not np.allclose(feats[0], feats[1])  # shots of other colours give other features
