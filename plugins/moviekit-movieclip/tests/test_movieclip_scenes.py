"""Scene classifiers on CLIP shot labels, the human-verified test list, shot scale, and the downstream heads."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from moviekit import Clip, FeatureSet, FrameBatch, Item, Labels, MoviekitError, Needs, Video
from moviekit.testing import check_component, make_context
from moviekit_movieclip.frames import MovieclipFrames
from moviekit_movieclip.heads import DOWNSTREAM_SETTINGS, PRESET_OUTPUTS, MovieclipDownstream, MovieclipFC, downstream_optimizer
from moviekit_movieclip.scenes import MovieclipSceneClassifier
from moviekit_movieclip.shotscale import (
    SCALES,
    MovieclipShotScale,
    join_scales_with_clip,
    read_shot_scale_labels,
    scale_scene_tables,
)
from moviekit_movieclip.testlist import VerifiedShot, mean_average_precision, read_test_list, write_test_list
from moviekit_movieclip.videomodels import PAPER_SETTINGS, backbone_config, cheap_frame_features
from moviekit_movieclip.views import crop_resize, three_crop_boxes, train_crop_box, view_starts

NEW_COMPONENTS = [
    "movieclip_frames",
    "movieclip_scene_classifier",
    "movieclip_shot_scale",
    "movieclip_fc",
    "movieclip_downstream",
    "movieclip_export_features",
    "movieclip_frame_features",
]
VOCAB = ["beach", "forest", "office"]
COLOURS = {"beach": (230, 200, 80), "forest": (30, 140, 40), "office": (110, 110, 150)}


@pytest.fixture(autouse=True)
def _offline_one_thread(monkeypatch, tmp_path):
    """Offline, and one torch thread: tiny models train far faster without thread contention."""
    import torch

    from moviekit.testing import offline_env

    offline_env(monkeypatch, tmp_path)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def clip_labels(video: str, shot: int, scores: dict[str, float]) -> Labels:
    ranked = sorted(scores.items(), key=lambda kv: -kv[1])
    labels = [ranked[0][0]] if ranked[0][1] >= 0.4 else []
    labels += [k for k, v in ranked[1:] if labels and v >= 0.1]
    return Labels(video_id=video, shot_index=shot, scores=dict(ranked), labels=labels)


def frame_items(n_videos: int = 6, shots: int = 4, t: int = 4, size: int = 16, seed: int = 0, n_test: int = 1) -> list[Item]:
    """Items whose shots hold (t, size, size, 3) frame clips coloured by their scene, with CLIP-style labels."""
    rng = np.random.default_rng(seed)
    items = []
    for v in range(n_videos):
        vid = f"v{v}"
        clips, frames, labels = [], [], []
        for j in range(shots):
            scene = VOCAB[(v + j) % len(VOCAB)]
            frames.append(np.clip(np.asarray(COLOURS[scene], np.float32) + rng.normal(0, 25, (t, size, size, 3)), 0, 255).astype(np.uint8))
            clips.append(
                Clip(video_id=vid, index=j, shot_index=j, start_frame=10 * j, end_frame=10 * j + 9, start_time=j, end_time=j + 0.9)
            )
            others = [s for s in VOCAB if s != scene]
            labels.append(clip_labels(vid, j, {scene: 0.6, others[0]: 0.08, others[1]: 0.05}))  # one label per shot
        split = "test" if v >= n_videos - n_test else "train"
        items.append(
            Item(
                video=Video(id=vid, split=split),
                clips=clips,
                shot_labels=labels,
                features=FeatureSet(video_id=vid, arrays={"frames": np.stack(frames)}),
            )
        )
    return items


# -- contract -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NEW_COMPONENTS)
def test_contract(name, tmp_path):
    check_component(name, tmp_path)


# -- frames expert --------------------------------------------------------------------------------


def test_frames_expert_keeps_every_nth_frame_and_centres_clips():
    expert = MovieclipFrames(clip_len=4, frame_interval=2, resize="squash", size=8, test_clips=1)
    assert expert.needs() == Needs(frames={"fps": None, "size": (8, 8), "batch": 16})
    sink = expert.open(Video(id="v"), {"fps": 10.0})
    n = 40  # 4 s at 10 fps; frame k is filled with the value k so that it can be recognised
    frames = np.stack([np.full((8, 8, 3), k, np.uint8) for k in range(n)])
    for s in range(0, n, 16):
        idx = np.arange(s, min(s + 16, n))
        sink.frames(FrameBatch(frames=frames[idx], indices=idx, times=idx / 10.0))
    track = sink.close()
    assert track.values.shape == (5, 4, 8, 8, 3)  # 20 kept frames in windows of 4
    long_shot = Clip(video_id="v", index=0, shot_index=0, start_frame=0, end_frame=30, start_time=0.0, end_time=3.0)
    short_shot = Clip(video_id="v", index=1, shot_index=1, start_frame=30, end_frame=34, start_time=3.0, end_time=3.4)
    pooled = expert.pool(track, [long_shot, short_shot])
    assert pooled.shape == (2, 4, 8, 8, 3) and pooled.dtype == np.uint8
    # the long shot has the kept frames 0,2,...,28 (15); the centred 4 start at offset (15 - 4) // 2 = 5
    assert pooled[0, :, 0, 0, 0].tolist() == [10, 12, 14, 16]
    # the short shot has frames 30 and 32 only: looped to 4
    assert pooled[1, :, 0, 0, 0].tolist() == [30, 32, 30, 32]


def test_frames_expert_keeps_evenly_spaced_views_for_multi_clip_testing():
    assert MovieclipFrames().config.test_clips == 10  # the paper's I3D / SlowFast / R(2+1)D
    expert = MovieclipFrames(clip_len=2, frame_interval=1, resize="squash", size=8, test_clips=3)
    sink = expert.open(Video(id="v"), {"fps": 10.0})
    frames = np.stack([np.full((8, 8, 3), k, np.uint8) for k in range(30)])
    sink.frames(FrameBatch(frames=frames, indices=np.arange(30), times=np.arange(30) / 10.0))
    track = sink.close()
    assert track.values.shape[1:] == expert.feature_shape() == (6, 8, 8, 3)
    shot = Clip(video_id="v", index=0, shot_index=0, start_frame=0, end_frame=12, start_time=0.0, end_time=1.2)
    pooled = expert.pool(track, [shot])
    # 12 frames in 3 segments of 4: each 2-frame view is centred in its segment
    assert pooled.shape == (1, 6, 8, 8, 3) and pooled[0, :, 0, 0, 0].tolist() == [1, 2, 5, 6, 9, 10]


def test_cheap_frame_features_are_thumbnails():
    frames = np.zeros((2, 3, 16, 16, 3), np.uint8)
    frames[1, :, :8] = 255  # top half white
    f = cheap_frame_features(frames, grid=2)
    assert f.shape == (2, 3, 12)
    assert (
        np.allclose(f[0], 0)
        and np.allclose(f[1].reshape(3, 3, 2, 2)[:, :, 0, :], 1)
        and np.allclose(f[1].reshape(3, 3, 2, 2)[:, :, 1, :], 0)
    )


# -- scene classifiers ----------------------------------------------------------------------------


def test_mmaction_r2plus1d_trains_on_cpu_and_map_matches_sklearn(tmp_path):
    from sklearn.metrics import average_precision_score

    items = frame_items()
    test_video = items[-1]
    # verified labels for 3 of the 4 test shots (one marked "Not relevant" is left out), one with two labels
    verified = [("v5", 0, ["forest"]), ("v5", 1, ["office", "beach"]), ("v5", 3, ["forest"])]
    tl = write_test_list(tmp_path / "verified.csv", verified)
    ctx = make_context(tmp_path, items=items, vocabulary=VOCAB)
    task = MovieclipSceneClassifier(
        model="r2plus1d",
        labels=VOCAB,
        test_list=str(tl),
        backbone={"depth": 18, "base_channels": 4},
        input_size=16,
        epochs=2,
        batch_size=4,
        max_steps=5,
        clip_len=2,
        test_clips=2,
        test_crops=3,
    )
    result = task.run(ctx)
    metrics = json.loads((ctx.out_dir / "scene_metrics.json").read_text())
    losses = metrics["step_loss"]
    assert len(losses) == 5 and np.isfinite(losses).all()
    assert losses[0] != losses[-1]
    assert metrics["n_test"] == 3 and metrics["test_source"] == "test_list"
    assert metrics["n_train"] == 20  # 5 training videos x 4 shots; the test video's shots are held out
    # the paper's R(2+1)D settings where not overridden
    assert metrics["settings"]["lr"] == 1e-4 and metrics["settings"]["clip_grad"] == 40.0 and metrics["settings"]["milestones"] == [20, 40]
    assert metrics["settings"]["train_crop"] == "random_resized" and metrics["settings"]["test_size"] == 18  # 16 * 256 / 224
    assert (metrics["settings"]["test_clips"], metrics["settings"]["test_crops"]) == (2, 3)
    saved = np.load(ctx.out_dir / "scene_scores.npz")
    assert saved["video"].tolist() == ["v5"] * 3 and saved["shot"].tolist() == [0, 1, 3]
    y = saved["y_true"]
    assert y.tolist() == [[0, 1, 0], [1, 0, 1], [0, 1, 0]]
    expected = np.mean([average_precision_score(y[:, j], saved["scores"][:, j]) for j in range(3) if y[:, j].any()])
    assert metrics["map"] == pytest.approx(expected) and result.metrics["map"] == pytest.approx(expected)
    with (ctx.out_dir / "scene_per_class.csv").open() as f:
        assert [r["label"] for r in csv.DictReader(f)] == VOCAB
    assert test_video.id == "v5"


def test_lstm_baseline_learns_better_than_random(tmp_path):
    items = frame_items(n_videos=9, seed=1, n_test=3)
    ctx = make_context(tmp_path, items=items, vocabulary=VOCAB)
    result = MovieclipSceneClassifier(model="lstm", labels=VOCAB, epochs=15, batch_size=8, lstm_hidden=32).run(ctx)
    metrics = json.loads((ctx.out_dir / "scene_metrics.json").read_text())
    random_map = metrics["random_baseline"]["auprc_macro"]
    assert result.metrics["n_test"] == 12 and random_map < 0.6
    assert result.metrics["map"] > max(0.9, random_map + 0.3)
    assert metrics["train_loss_last"] < metrics["train_loss_first"]
    assert metrics["settings"]["clip_grad"] is None  # the baseline does not clip unless asked


# -- augmentation and multi-view testing -------------------------------------------------------


def test_paper_crops_and_test_views_per_model():
    expect = {
        "i3d": ("multiscale", 10, 3),
        "slowfast": ("random_resized", 10, 3),
        "r2plus1d": ("random_resized", 10, 3),
        "timesformer": ("rescale_crop", 1, 3),
        "swin": ("random_resized", 4, 3),
    }
    for model, (crop, clips, crops) in expect.items():
        s = MovieclipSceneClassifier(model=model).settings()
        assert (s["train_crop"], s["test_clips"], s["test_crops"]) == (crop, clips, crops), model
    assert (
        MovieclipSceneClassifier(model="i3d").settings()["test_size"] == 256
        and MovieclipSceneClassifier(model="swin").settings()["test_size"] == 224
    )
    small = MovieclipSceneClassifier(model="swin", train_crop="none", test_clips=2, test_crops=1, input_size=16, test_size=20).settings()
    assert (small["train_crop"], small["test_clips"], small["test_crops"], small["test_size"]) == ("none", 2, 1, 20)


def test_training_crop_boxes_follow_the_paper_rules():
    import torch

    gen = torch.Generator().manual_seed(0)
    corners = {(0, 0), (0, 20), (20, 0), (20, 20), (10, 10)}  # 100x120 frame, 80x100 crop: the 5 fixed positions
    seen = set()
    for _ in range(200):
        y, x, h, w = train_crop_box(100, 120, "multiscale", gen, (1.0, 0.8))
        assert h in (100, 80) and w in (100, 80) and y + h <= 100 and x + w <= 120
        seen.add((h, w))
        if (h, w) == (80, 100):
            assert (y, x) in corners
    assert seen == {(100, 100), (100, 80), (80, 100), (80, 80)}
    for _ in range(200):
        y, x, h, w = train_crop_box(64, 64, "random_resized", gen, area=(0.2, 0.5))
        assert 0 <= y and y + h <= 64 and 0 <= x and x + w <= 64
        assert 0.2 * 0.9 <= h * w / 64**2 <= 0.5 * 1.1 and 3 / 4 - 0.1 <= w / h <= 4 / 3 + 0.1
    sides = {train_crop_box(64, 64, "rescale_crop", gen, rescale=(256, 320))[2] for _ in range(200)}
    assert min(sides) >= round(64 * 224 / 320) and max(sides) <= round(64 * 224 / 256) and len(sides) > 1
    assert train_crop_box(10, 12, "none", gen) == (0, 0, 10, 12)


def test_crop_is_a_rescaled_sub_window_and_flip_mirrors():
    import torch
    import torch.nn.functional as F

    x = torch.arange(2 * 3 * 12 * 12, dtype=torch.float32).reshape(2, 3, 12, 12)
    assert torch.equal(crop_resize(x, (2, 3, 8, 8), 8), x[..., 2:10, 3:11])  # same size: the window itself
    expected = F.interpolate(x[..., 0:6, 4:12], size=(4, 4), mode="bilinear", align_corners=False)
    assert torch.allclose(crop_resize(x, (0, 4, 6, 8), 4), expected)
    # the task's training batch: flip mirrors a sample's (cropped, normalised) view, the rest is untouched
    clips = np.random.default_rng(0).integers(0, 255, (6, 4, 12, 12, 3), dtype=np.uint8)
    task = MovieclipSceneClassifier(model="r2plus1d", train_crop="none", input_size=12)
    s = task.settings()
    plain = task._video_batch(clips[:, :2], s, "cpu", [(0, 0, 12, 12)] * 6, 12)
    assert plain.shape == (6, 1, 3, 2, 12, 12)
    out = task._train_inputs(clips, s, 2, "cpu", torch.Generator().manual_seed(3))
    assert out.shape == plain.shape
    # each sample is one of its two stored views, as is or mirrored, and both happen
    second = task._video_batch(clips[:, 2:], s, "cpu", [(0, 0, 12, 12)] * 6, 12)
    kinds = set()
    for b in range(6):
        for _name, view in (("first", plain[b]), ("second", second[b])):
            if torch.allclose(out[b], view):
                kinds.add("as is")
            elif torch.allclose(out[b], view.flip(-1)):
                kinds.add("flipped")
            else:
                continue
            break
        else:
            raise AssertionError(f"sample {b} is neither view nor its mirror")
    assert kinds == {"as is", "flipped"}


def test_three_crop_windows_are_squares_of_the_original_frame():
    # a 16:9 frame squashed to 16x16: a square of the original is 9 columns wide; left, centre, right
    assert three_crop_boxes(16, 16, 3, 16 / 9) == [(0, 0, 16, 9), (0, 3, 16, 9), (0, 7, 16, 9)]
    assert three_crop_boxes(16, 16, 1, 16 / 9) == [(0, 3, 16, 9)]
    assert three_crop_boxes(9, 16, 3, None) == [(0, 0, 9, 9), (0, 3, 9, 9), (0, 7, 9, 9)]  # frames not squashed
    assert three_crop_boxes(16, 9, 3, None) == [(0, 0, 9, 9), (3, 0, 9, 9), (7, 0, 9, 9)]  # portrait: along the height
    assert (
        view_starts(40, 4, 10) == [4 * v for v in range(10)] and view_starts(40, 4, 4) == [4, 12, 24, 32] and view_starts(8, 8, 10) == [0]
    )


def test_test_score_of_a_shot_is_the_mean_of_its_view_scores():
    import torch
    import torch.nn.functional as F

    clips = np.random.default_rng(1).integers(0, 255, (3, 6, 16, 16, 3), dtype=np.uint8)  # 3 shots, 3 stored views of 2
    task = MovieclipSceneClassifier(model="r2plus1d", input_size=12, test_size=10, test_clips=2, test_crops=3, source_aspect=16 / 9)
    s = task.settings()

    def forward(x):  # a stand-in model: 3 "class" logits from the view's pixels
        return torch.stack([x.mean((1, 2, 3, 4, 5)), x[..., :5].mean((1, 2, 3, 4, 5)), x.std((1, 2, 3, 4, 5))], 1)

    scores, per_view = task.shot_scores(forward, clips, s, 2, "cpu")
    assert per_view.shape == (3, 6, 3) and scores.shape == (3, 3)  # 2 clips x 3 crops
    assert np.allclose(scores, per_view.mean(1))
    mean, std = np.asarray(s["mean"]), np.asarray(s["std"])
    views = []
    for start in (0, 4):  # stored views 0 and 2 of 3 (evenly spaced)
        for left in (0, 3, 7):  # ThreeCrop of a 16:9 frame squashed to 16x16
            win = torch.from_numpy(clips[:, start : start + 2, :, left : left + 9].astype(np.float32)).permute(0, 1, 4, 2, 3)
            win = F.interpolate(win.reshape(-1, 3, 16, 9), size=(10, 10), mode="bilinear", align_corners=False).reshape(3, 2, 3, 10, 10)
            win = (win - torch.from_numpy(mean).float().view(1, 1, 3, 1, 1)) / torch.from_numpy(std).float().view(1, 1, 3, 1, 1)
            views.append(torch.sigmoid(forward(win.permute(0, 2, 1, 3, 4).unsqueeze(1))).numpy())
    assert np.allclose(per_view, np.stack(views, 1), atol=1e-5)
    assert np.allclose(scores, np.mean(views, 0), atol=1e-5)
    assert not np.allclose(per_view[:, 0], per_view[:, 1])  # the views differ


def test_scene_classifier_needs_clip_labels_and_frames(tmp_path):
    items = frame_items(n_videos=2)
    for it in items:
        it.shot_labels = []
    ctx = make_context(tmp_path, items=items, vocabulary=VOCAB)
    with pytest.raises(MoviekitError, match="movieclip_clip labeler"):
        MovieclipSceneClassifier(model="lstm", labels=VOCAB).run(ctx)
    with pytest.raises(MoviekitError, match="`frames`: item v0 has no 'clips' features"):
        MovieclipSceneClassifier(model="r2plus1d", labels=VOCAB, frames="clips").run(ctx)


def test_missing_pretrained_checkpoint_is_actionable(tmp_path):
    ctx = make_context(tmp_path, items=frame_items(n_videos=3), vocabulary=VOCAB)
    missing = tmp_path / "nope" / "r2plus1d_kinetics.pth"
    with pytest.raises(MoviekitError, match=r"(?s)r2plus1d_kinetics.pth does not exist.*leave `pretrained` unset.*set `pretrained`"):
        MovieclipSceneClassifier(model="r2plus1d", labels=VOCAB, pretrained=str(missing), input_size=16).run(ctx)
    # `kinetics`: the model's Kinetics-400 checkpoint, looked up by name; absent offline -> where to put it
    with pytest.raises(MoviekitError, match=r"(?s)mmaction2-r2plus1d-kinetics400.*Kinetics-400 checkpoint.*set `pretrained`"):
        MovieclipSceneClassifier(model="r2plus1d", labels=VOCAB, pretrained="kinetics", input_size=16).run(ctx)


def test_paper_settings_and_backbones():
    assert (
        PAPER_SETTINGS["i3d"]["clip_len"] == 32 and PAPER_SETTINGS["i3d"]["frame_interval"] == 2 and PAPER_SETTINGS["i3d"]["epochs"] == 38
    )
    assert PAPER_SETTINGS["r2plus1d"]["clip_len"] == 8 and PAPER_SETTINGS["r2plus1d"]["frame_interval"] == 8
    assert PAPER_SETTINGS["timesformer"]["frame_interval"] == 32 and PAPER_SETTINGS["timesformer"]["nesterov"]
    assert (
        PAPER_SETTINGS["swin"]["optimizer"] == "adamw"
        and PAPER_SETTINGS["swin"]["weight_decay"] == 0.05
        and PAPER_SETTINGS["swin"]["warmup_epochs"] == 2.5
    )
    assert backbone_config("i3d", 32, 224)["depth"] == 50 and backbone_config("r2plus1d", 8, 224)["depth"] == 34
    swin = backbone_config("swin", 32, 224)
    assert swin["arch"] == "base" and swin["window_size"] == (8, 7, 7) and swin["patch_size"] == (2, 4, 4)
    tsf = backbone_config("timesformer", 8, 224)
    assert (tsf["num_frames"], tsf["patch_size"], tsf["embed_dims"], tsf["num_heads"], tsf["num_transformer_layers"]) == (
        8,
        16,
        768,
        12,
        12,
    )
    assert MovieclipSceneClassifier().config.model == "swin"


#: Tiny versions of the paper's backbones (the defaults are the full-size configs), with clip length and input size.
TINY_BACKBONES = {
    "i3d": ({"depth": 18, "base_channels": 4, "inflate": ((1, 1), (1, 0), (1, 0), (0, 1)), "conv1_kernel": (3, 7, 7)}, 8, 32),
    "slowfast": (
        {
            "resample_rate": 4,
            "speed_ratio": 4,
            "channel_ratio": 4,
            "slow_pathway": {"depth": 18, "base_channels": 8},
            "fast_pathway": {"depth": 18, "base_channels": 2},
        },
        8,
        32,
    ),
    "r2plus1d": ({"depth": 18, "base_channels": 4}, 4, 16),
    "timesformer": ({"embed_dims": 32, "num_heads": 2, "num_transformer_layers": 1}, 4, 32),
    "swin": (
        {"arch": {"embed_dims": 8, "depths": [1, 1, 1, 1], "num_heads": [1, 1, 1, 1]}, "window_size": (2, 2, 2), "drop_path_rate": 0.0},
        4,
        64,
    ),
}


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("model", sorted(TINY_BACKBONES))
def test_every_paper_model_builds_and_backpropagates(model):
    import torch

    from moviekit_movieclip.videomodels import build_recognizer

    backbone, t, size = TINY_BACKBONES[model]
    net = build_recognizer(model, 3, t, size, backbone=backbone)
    logits = net(torch.randn(2, 1, 3, t, size, size), mode="tensor", stage="head")
    assert tuple(logits.shape) == (2, 3)
    torch.nn.functional.binary_cross_entropy_with_logits(logits, torch.ones(2, 3)).backward()
    grads = [p.grad for p in net.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


# -- the human-verified test list -----------------------------------------------------------------


def test_test_list_round_trips(tmp_path):
    shots = [
        VerifiedShot("tt01_c3", 0, ("cafe", "restaurant")),
        VerifiedShot("tt01_c3", 7, ("lounge",)),
        VerifiedShot("m,2", 1, ("beach",)),
    ]
    path = write_test_list(tmp_path / "v.csv", shots)
    back = read_test_list(path, vocabulary=["cafe", "restaurant", "lounge", "beach"])
    assert [(s.video, s.shot, s.labels) for s in back] == [(s.video, s.shot, s.labels) for s in shots]
    assert [s.line for s in back] == [2, 3, 4]


@pytest.mark.parametrize(
    "body, line, message",
    [
        ("video,shot,labels\nv1,0,cafe\nv1,x,cafe\n", 3, "not an integer"),
        ("video,shot,labels\nv1,0,cafe\n\n# comment\nv1,1,spaceship\n", 5, "'spaceship' not in the classifier's vocabulary"),
        ("video,shot,labels\nv1,0,cafe\nv1,0,bar\n", 3, "already listed on line 2"),
        ("video,shot,labels\nv1,0,\n", 2, "no labels"),
        ("video,labels\nv1,cafe\n", 1, "missing shot"),
        ("video,shot,labels\nv1,0\n", 2, "2 fields but the header has 3"),
    ],
)
def test_test_list_rejects_bad_lines_naming_file_and_line(tmp_path, body, line, message):
    path = tmp_path / "bad_list.csv"
    path.write_text(body)
    with pytest.raises(MoviekitError, match=rf"bad_list\.csv:{line}: .*{message}"):
        read_test_list(path, vocabulary=["cafe", "bar"])


def test_map_is_macro_over_classes_with_positives():
    y = np.array([[1, 0, 0], [0, 1, 0], [1, 0, 0]])
    s = np.array([[0.9, 0.1, 0.5], [0.8, 0.7, 0.1], [0.2, 0.3, 0.9]])
    # class 0: positives ranked 1 and 3 -> (1 + 2/3) / 2; class 1: ranked 1 -> 1; class 2 has no positive
    assert mean_average_precision(y, s) == pytest.approx(((1 + 2 / 3) / 2 + 1) / 2)


# -- shot scale ------------------------------------------------------------------------------------


def scale_items(n_videos: int = 6, shots: int = 5, t: int = 4, dim: int = 6, seed: int = 0) -> list[Item]:
    """Items with per-frame (t, dim) features whose pattern depends on the shot's scale (scale = (v + j) % 5)."""
    rng = np.random.default_rng(seed)
    items = []
    for v in range(n_videos):
        vid = f"m{v}"
        feats, clips, labels = [], [], []
        for j in range(shots):
            k = (v + j) % len(SCALES)
            base = np.zeros(dim, np.float32)
            base[k] = 3.0
            feats.append(base + 0.3 * rng.standard_normal((t, dim)).astype(np.float32))
            clips.append(
                Clip(
                    video_id=vid,
                    index=j,
                    shot_index=j,
                    start_frame=20 * j,
                    end_frame=20 * j + 19,
                    start_time=2.0 * j,
                    end_time=2.0 * j + 1.9,
                )
            )
            # shots of scale ECS/CS get low CLIP confidence, FS/LS high, MS in between
            top1 = {0: 0.15, 1: 0.18, 2: 0.3, 3: 0.5, 4: 0.7}[k]
            labels.append(clip_labels(vid, j, {VOCAB[j % 3]: top1, VOCAB[(j + 1) % 3]: 0.12, VOCAB[(j + 2) % 3]: 0.05}))
        items.append(
            Item(
                video=Video(id=vid, split="train"),
                clips=clips,
                shot_labels=labels,
                features=FeatureSet(video_id=vid, arrays={"frames_vit": np.stack(feats)}),
            )
        )
    return items


def test_shot_scale_lstm_trains_from_labels_file_and_joins_with_clip_scores(tmp_path):
    items = scale_items()
    rows = ["# MovieShots-style labels", "video,shot,start,end,scale,split"]
    for v in range(6):
        for j in range(5):
            split = "test" if v == 5 else ""
            if j == 4:  # by time instead of shot index
                rows.append(f"m{v},,{2.0 * j + 0.1},{2.0 * j + 1.5},{SCALES[(v + j) % 5].lower()},{split}")
            else:
                rows.append(f"m{v},{j},,,{SCALES[(v + j) % 5]},{split}")
    (tmp_path / "scales.csv").write_text("\n".join(rows) + "\n")
    ctx = make_context(tmp_path, items=items, vocabulary=VOCAB)
    task = MovieclipShotScale(labels_file=str(tmp_path / "scales.csv"), features="frames_vit", epochs=25, batch_size=8)
    assert (task.config.hidden, task.config.layers) == (512, 2)
    result = task.run(ctx)
    assert result.metrics["n_train"] == 25 and result.metrics["n_test"] == 5
    assert result.metrics["accuracy"] >= 0.8  # 5 classes: random is 0.2
    with (ctx.out_dir / "shot_scale_predictions.csv").open() as f:
        preds = list(csv.DictReader(f))
    assert len(preds) == 30
    correct = sum(p["scale"] == SCALES[(int(p["video"][1:]) + int(p["shot"])) % 5] for p in preds)
    assert correct >= 27
    # the tables agree with the same statistics computed from the predictions file
    joined = join_scales_with_clip(preds, [lab for it in items for lab in it.shot_labels])
    expected = scale_scene_tables(joined)
    with (ctx.out_dir / "shot_scale_by_confidence.csv").open() as f:
        table = list(csv.DictReader(f))
    assert [r["group"] for r in table] == ["all", "low", "high"]
    assert [int(r["n"]) for r in table] == [r["n"] for r in expected["by_confidence"]]
    assert (ctx.out_dir / "shot_scale_by_label.csv").is_file()


def test_scale_scene_table_from_known_predictions():
    labels = [
        clip_labels("a", 0, {"office": 0.15, "bar": 0.1}),  # low
        clip_labels("a", 1, {"office": 0.18, "bar": 0.1}),  # low
        clip_labels("a", 2, {"beach": 0.5, "sea": 0.2}),  # high (rank 2 >= 0.1)
        clip_labels("a", 3, {"beach": 0.45, "sea": 0.05}),  # top-1 >= 0.4 but no rank 2..k >= 0.1: neither
        clip_labels("a", 4, {"forest": 0.6, "park": 0.3}),  # high
    ]
    preds = [{"video": "a", "shot": i, "scale": s} for i, s in enumerate(["CS", "ECS", "LS", "MS", "FS"])]
    preds.append({"video": "b", "shot": 0, "scale": "LS"})  # no CLIP labels: left out
    joined = join_scales_with_clip(preds, labels)
    assert len(joined) == 5 and joined[2]["top1_label"] == "beach" and joined[2]["topk_scores"] == [0.2]
    tables = scale_scene_tables(joined)
    conf = {r["group"]: r for r in tables["by_confidence"]}
    assert conf["all"]["n"] == 5
    assert (conf["low"]["n"], conf["low"]["CS"], conf["low"]["ECS"], conf["low"]["CS+ECS_share"]) == (2, 1, 1, 1.0)
    assert (conf["high"]["n"], conf["high"]["LS"], conf["high"]["FS"], conf["high"]["FS+LS_share"]) == (2, 1, 1, 1.0)
    by_label = {r["group"]: r for r in tables["by_label"]}
    assert by_label["office"]["n"] == 2 and by_label["beach"]["LS"] == 1 and by_label["beach"]["MS"] == 1
    assert [r["group"] for r in tables["by_label"]][:2] == ["beach", "office"]  # most frequent first, then by name


def test_shot_scale_labels_file_errors_name_file_and_line(tmp_path):
    bad = tmp_path / "movieshots.csv"
    bad.write_text("video,shot,scale\nm1,0,CS\nm1,1,XL\n")
    with pytest.raises(MoviekitError, match=r"movieshots\.csv:3: scale 'XL' is not one of ECS, CS, MS, FS, LS"):
        read_shot_scale_labels(bad)
    bad.write_text("video,start,end,scale\nm1,2.0,1.0,CS\n")
    with pytest.raises(MoviekitError, match=r"movieshots\.csv:2: need 0 <= start < end"):
        read_shot_scale_labels(bad)
    bad.write_text("video,scale\n")
    with pytest.raises(MoviekitError, match=r"movieshots\.csv:1: the header needs a 'shot' column"):
        read_shot_scale_labels(bad)


# -- downstream heads -----------------------------------------------------------------------------


def test_downstream_heads_have_the_paper_sizes_and_settings():
    import torch

    for preset, n_out in (("scene", 248), ("trailer", 13)):
        head = MovieclipFC(preset=preset)
        assert head.paper_output_dim() == n_out == PRESET_OUTPUTS[preset]
        module = head.build(1024, n_out)
        linears = [m for m in module if isinstance(m, torch.nn.Linear)]
        assert [(m.in_features, m.out_features) for m in linears] == [(1024, 512), (512, 256), (256, n_out)]
    opt, sched = downstream_optimizer(MovieclipFC().build(1024, 13))
    assert isinstance(opt, torch.optim.AdamW) and opt.defaults["lr"] == 1e-4
    assert isinstance(sched, torch.optim.lr_scheduler.MultiStepLR) and dict(sched.milestones) == {5: 1, 50: 1} and sched.gamma == 0.85
    lrs = []
    for _ in range(60):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[4] == pytest.approx(1e-4) and lrs[5] == pytest.approx(0.85e-4) and lrs[50] == pytest.approx(0.85**2 * 1e-4)
    cfg = MovieclipDownstream().config
    assert (
        (cfg.batch_size, cfg.lr, cfg.gamma, cfg.milestones)
        == (256, 1e-4, 0.85, [5, 50])
        == (
            DOWNSTREAM_SETTINGS["batch_size"],
            DOWNSTREAM_SETTINGS["lr"],
            DOWNSTREAM_SETTINGS["gamma"],
            list(DOWNSTREAM_SETTINGS["milestones"]),
        )
    )
    with pytest.raises(ValueError):
        MovieclipFC(hidden=[512])


# -- end to end: one decode per video feeds the segmenter, the CLIP labeler and the frames expert ---------


@pytest.mark.filterwarnings("ignore:.*TEST-ONLY.*:UserWarning")
def test_recipe_run_decodes_once_and_trains_on_clip_labels(tmp_path):
    import yaml

    from moviekit import load_recipe, run_recipe
    from moviekit.backends.openclip import TINY_MODEL
    from moviekit.backends.openclip import tiny_checkpoint as tiny_clip_checkpoint
    from moviekit.default_plugins.synthetic import generate_cut_video

    videos = tmp_path / "videos"
    videos.mkdir()
    for i in range(3):
        generate_cut_video(videos / f"c{i}.mp4", n_shots=6, seed=i, size=(64, 48), dissolves=False)
    (videos / "labels.csv").write_text("video,labels,split\nc0.mp4,x,train\nc1.mp4,x,train\nc2.mp4,x,test\n")
    tiny = tiny_clip_checkpoint(tmp_path / "tiny_clip")
    recipe = {
        "name": "scenes_e2e",
        "dataset": {"use": "video_folder", "root": str(videos), "labels_csv": str(videos / "labels.csv")},
        "segmenter": {"use": "scenedetect", "detector": "content"},
        "experts": {"frames": {"use": "movieclip_frames", "clip_len": 4, "frame_interval": 3, "short_side": 16}},
        # a tiny RANDOM CLIP with 3 inline labels and no thresholds: every shot gets its top-1 label (plumbing only)
        "labeler": {
            "use": "movieclip_clip",
            "model": TINY_MODEL,
            "pretrained": str(tiny),
            "device": "cpu",
            "fps": 2,
            "labels": VOCAB,
            "top_k": 1,
            "top1_threshold": 0.0,
            "topk_threshold": 0.0,
        },
        "tasks": [
            {
                "use": "movieclip_scene_classifier",
                "model": "r2plus1d",
                "labels": VOCAB,
                "backbone": {"depth": 18, "base_channels": 4},
                "input_size": 16,
                "epochs": 1,
                "batch_size": 4,
                "max_steps": 2,
            }
        ],
        "clips": {"min_clips": 1},
        "run": {"device": "cpu", "seed": 0},
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    summary = run_recipe(load_recipe(path), output=tmp_path / "run")
    assert summary["items"] == 3 and summary["failures"] == 0
    assert summary["decodes"] == 3  # one decode per video, shared by the segmenter, labeler and frames expert
    metrics = json.loads((tmp_path / "run" / "scene_metrics.json").read_text())
    assert metrics["n_train"] > 0 and metrics["n_test"] > 0 and np.isfinite(metrics["step_loss"]).all()
    assert 0.0 <= metrics["map"] <= 1.0


def test_new_components_are_registered_and_document_their_configs():
    from moviekit import get_registry
    from moviekit.testing import components_of

    reg = get_registry()
    assert set(NEW_COMPONENTS) <= set(components_of("moviekit-movieclip"))
    for name in NEW_COMPONENTS:
        cls = reg.get(name)
        missing = [f for f, info in cls.Config.model_fields.items() if not info.description]
        assert not missing, f"{name}: fields without a description: {missing}"


@pytest.mark.filterwarnings("ignore:.*TEST-ONLY.*:UserWarning")
def test_shot_scale_encodes_raw_frames_with_open_clip(tmp_path):
    from moviekit.backends.openclip import TINY_MODEL
    from moviekit.backends.openclip import tiny_checkpoint as tiny_clip_checkpoint
    from moviekit_movieclip.framefeatures import ClipEncoder

    tiny = tiny_clip_checkpoint(tmp_path / "tiny_clip")
    items = frame_items(n_videos=2, t=3, size=32)
    emb = ClipEncoder(TINY_MODEL, str(tiny), "cpu").encode(items[0].features.arrays["frames"].reshape(-1, 32, 32, 3))
    assert emb.shape == (12, 16) and np.allclose(np.linalg.norm(emb, axis=-1), 1, atol=1e-4)
    (tmp_path / "s.csv").write_text("video,shot,scale\nv0,0,CS\nv0,1,LS\nv1,2,MS\n")
    ctx = make_context(tmp_path, items=items, vocabulary=VOCAB)
    task = MovieclipShotScale(
        labels_file=str(tmp_path / "s.csv"), frame_encoder="open_clip", clip_model=TINY_MODEL, clip_pretrained=str(tiny),
        device="cpu", epochs=1, hidden=8,
    )  # fmt: skip
    result = task.run(ctx)
    assert (result.metrics["n_train"], result.metrics["n_test"]) == (2, 1) and "shot_scale_predictions.csv" in result.files
    about = result.metrics["frame_features"]
    assert (about["backbone"], about["model"], about["stand_in"]) == ("open_clip", TINY_MODEL, True)  # a test-only model
    missing = MovieclipShotScale(
        labels_file=str(tmp_path / "s.csv"), frame_encoder="open_clip", clip_pretrained=str(tmp_path / "nope.pt"), epochs=1
    )
    with pytest.raises(MoviekitError, match="clip_pretrained"):
        missing.run(ctx)


# -- the authors' published list format drives the classifier ------------------------------------


def _published_files(tmp_path, order=("office", "beach", "forest")):
    """A label map in the published JSON form (indices not in VOCAB's order) and a writer of published lines."""
    label_map = tmp_path / "label_map.json"
    label_map.write_text(json.dumps({lab: i for i, lab in enumerate(order)}))
    index = {lab: i for i, lab in enumerate(order)}

    def line(video: str, shot: int, labels: list[str]) -> str:
        # PySceneDetect's split-video names are numbered from 1: shot index 0 is Scene-001
        return f"{video}/{video}-Scene-{shot + 1:03d}.mp4 " + " ".join(str(index[lab]) for lab in labels)

    return label_map, line


def test_published_test_list_drives_the_map(tmp_path):
    """The human-verified list in the authors' format (with its label map) selects and labels the test
    shots exactly like the same list in moviekit's CSV, and the mAP matches scikit-learn's."""
    from sklearn.metrics import average_precision_score

    items = frame_items()
    label_map, line = _published_files(tmp_path)
    verified = [("v5", 0, ["forest"]), ("v5", 1, ["office", "beach"]), ("v5", 3, ["forest"])]
    published = tmp_path / "test_shots_human_verified.txt"
    published.write_text("\n".join(line(*v) for v in verified) + "\n")
    common = {"model": "lstm", "labels": VOCAB, "epochs": 2, "batch_size": 8, "lstm_hidden": 8}
    ctx = make_context(tmp_path / "pub", items=items, vocabulary=VOCAB)
    result = MovieclipSceneClassifier(**common, test_list=str(published), label_map=str(label_map)).run(ctx)
    metrics = json.loads((ctx.out_dir / "scene_metrics.json").read_text())
    assert metrics["test_source"] == "test_list" and metrics["test_list_format"] == "published" and metrics["n_test"] == 3
    saved = np.load(ctx.out_dir / "scene_scores.npz")
    assert saved["video"].tolist() == ["v5"] * 3 and saved["shot"].tolist() == [0, 1, 3]
    y = saved["y_true"]
    assert y.tolist() == [[0, 1, 0], [1, 0, 1], [0, 1, 0]]  # VOCAB order, whatever the map's indices
    expected = np.mean([average_precision_score(y[:, j], saved["scores"][:, j]) for j in range(3) if y[:, j].any()])
    assert result.metrics["map"] == pytest.approx(expected)
    # the same list as moviekit's CSV gives the same scores (same seed, same training shots)
    csv_list = write_test_list(tmp_path / "verified.csv", verified)
    ctx2 = make_context(tmp_path / "csv", items=items, vocabulary=VOCAB)
    again = MovieclipSceneClassifier(**common, test_list=str(csv_list)).run(ctx2)
    assert json.loads((ctx2.out_dir / "scene_metrics.json").read_text())["test_list_format"] == "moviekit"
    np.testing.assert_array_equal(np.load(ctx2.out_dir / "scene_scores.npz")["y_true"], y)
    assert again.metrics["map"] == pytest.approx(result.metrics["map"])
    # declared in the wrong format: an error naming the file and line
    with pytest.raises(MoviekitError, match=r"verified\.csv"):
        MovieclipSceneClassifier(**common, test_list=str(csv_list), test_list_format="published", label_map=str(label_map)).run(ctx2)


def test_published_train_labels_with_label_source_file(tmp_path):
    """label_source file trains on the shots listed in a published label list, with the label map as vocabulary."""
    items = frame_items()
    label_map, line = _published_files(tmp_path)

    def scene(it, c):  # frame_items' scene of a shot
        return [VOCAB[(int(it.id[1:]) + c.shot_index) % 3]]

    listed = [(it.id, c.shot_index, scene(it, c)) for it in items[:3] for c in it.clips[:3]]
    held = [(items[-1].id, c.shot_index, scene(items[-1], c)) for c in items[-1].clips[:2]]  # the test split's
    train = tmp_path / "train_multi_label.txt"
    train.write_text("\n".join(line(*x) for x in listed + held) + "\n")
    ctx = make_context(tmp_path, items=items, vocabulary=VOCAB)
    task = MovieclipSceneClassifier(
        model="lstm", label_source="file", train_labels=str(train), label_map=str(label_map), epochs=2, batch_size=8, lstm_hidden=8
    )
    assert task.vocabulary(ctx) == ["office", "beach", "forest"]  # the label map, in index order
    result = task.run(ctx)
    metrics = json.loads((ctx.out_dir / "scene_metrics.json").read_text())
    assert metrics["n_train"] == len(listed) == 9 and metrics["train_labels_format"] == "published"
    assert result.metrics["n_test"] == 2 and metrics["test_source"] == "test_split"
    y = np.load(ctx.out_dir / "scene_scores.npz")["y_true"]
    assert y.tolist() == [[1 if lab in x[2] else 0 for lab in ["office", "beach", "forest"]] for x in held]
    with pytest.raises(Exception, match="train_labels"):
        MovieclipSceneClassifier(model="lstm", label_source="file")
