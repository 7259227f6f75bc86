"""Paper fidelity of the MovieCLIP video models (supplementary Sec. 4.1, 4.3, 5.1): frames that keep their aspect
ratio, Kinetics initialisation from local weights, and the penultimate features that feed M_scene / M_trailer."""

from __future__ import annotations

import numpy as np
import pytest
from test_movieclip_scenes import COLOURS, VOCAB, clip_labels

from moviekit import Clip, FeatureSet, FrameBatch, Item, MoviekitError, Track, Video
from moviekit.testing import make_context
from moviekit_movieclip.export import MovieclipExportFeatures
from moviekit_movieclip.frames import MovieclipFrames, short_side_size
from moviekit_movieclip.scenes import MovieclipSceneClassifier
from moviekit_movieclip.videomodels import build_recognizer

TINY_R2PLUS1D = {"depth": 18, "base_channels": 4}


@pytest.fixture(autouse=True)
def _offline_one_thread(monkeypatch, tmp_path):
    import torch

    from moviekit.testing import offline_env

    offline_env(monkeypatch, tmp_path)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_frames_keep_the_aspect_ratio_and_the_test_crop_is_a_centre_square():
    """Shorter side to N keeping the aspect ratio, then the centre crop of the test view: the same pixels as
    torchvision's own Resize(N) + CenterCrop(N) of the original (non-square) frame."""
    import torch
    import torchvision.transforms.functional as TF
    from PIL import Image

    assert short_side_size(1920, 1080, 256) == (455, 256) and short_side_size(1080, 1920, 256) == (256, 455)
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (36, 64, 3), dtype=np.uint8)  # 64 x 36 (16:9)
    assert TF.resize(Image.fromarray(frame), 18).size == (32, 18)  # PIL's own size rule agrees: 32 x 18

    expert = MovieclipFrames(clip_len=1, frame_interval=1, short_side=18, test_clips=1)
    assert expert.needs().frames.size is None  # the source frames, resized once the aspect ratio is known
    sink = expert.open(Video(id="v"), {"fps": 10.0})
    sink.frames(FrameBatch(frames=frame[None], indices=np.arange(1), times=np.zeros(1)))
    track = sink.close()
    assert track.values.shape == (1, 1, 18, 32, 3)
    ref = TF.resize(torch.from_numpy(frame).permute(2, 0, 1), 18, antialias=True)  # independent resize
    assert np.abs(track.values[0, 0].astype(int) - ref.permute(1, 2, 0).numpy().astype(int)).max() <= 1

    task = MovieclipSceneClassifier(model="r2plus1d", input_size=16, test_size=18, test_clips=1, test_crops=1)
    s = task.settings()
    (x,) = list(task.test_views([track.values[0]], s, 1, "cpu"))
    assert tuple(x.shape) == (1, 1, 3, 1, 18, 18)
    mean, std = torch.tensor(s["mean"]).view(3, 1, 1), torch.tensor(s["std"]).view(3, 1, 1)
    got = x[0, 0, :, 0] * std + mean
    want = TF.center_crop(torch.from_numpy(track.values[0, 0]).permute(2, 0, 1), 18).float()
    assert torch.allclose(got, want, atol=1e-3)
    assert torch.abs(got - TF.center_crop(ref, 18).float()).max() <= 1.0 + 1e-3


def shot_items(sizes=((16, 28), (16, 21), (16, 28)), t: int = 2, seed: int = 0) -> list[Item]:
    """Items of 4 shots with (t, h, w, 3) frames coloured by scene, video sizes differing (16:9 and 4:3)."""
    rng = np.random.default_rng(seed)
    items = []
    for v, (h, w) in enumerate(sizes):
        vid = f"v{v}"
        clips, frames, labels = [], [], []
        for j in range(4):
            scene = VOCAB[(v + j) % 3]
            frames.append(np.clip(np.asarray(COLOURS[scene], np.float32) + rng.normal(0, 25, (t, h, w, 3)), 0, 255).astype(np.uint8))
            clips.append(
                Clip(video_id=vid, index=j, shot_index=j, start_frame=10 * j, end_frame=10 * j + 9, start_time=j, end_time=j + 0.9)
            )
            others = [x for x in VOCAB if x != scene]
            labels.append(clip_labels(vid, j, {scene: 0.6, others[0]: 0.08, others[1]: 0.05}))
        split = "test" if v == len(sizes) - 1 else "train"
        video = Video(id=vid, split=split, labels=[VOCAB[v % 3]])
        items.append(
            Item(video=video, clips=clips, shot_labels=labels, features=FeatureSet(video_id=vid, arrays={"frames": np.stack(frames)}))
        )
    return items


def direct_penultimate(net, clip: np.ndarray, s: dict, side: int):
    """The pooled backbone feature of one shot's centre square, computed by hand (torchvision crop, mmaction2 backbone)."""
    import torch
    import torchvision.transforms.functional as TF

    x = torch.from_numpy(clip).permute(0, 3, 1, 2).float()  # T C H W
    x = TF.center_crop(x, min(x.shape[-2:]))
    x = TF.resize(x, [side, side], antialias=False)
    x = (x - torch.tensor(s["mean"]).view(1, 3, 1, 1)) / torch.tensor(s["std"]).view(1, 3, 1, 1)
    with torch.no_grad():
        feat = net.backbone(x.permute(1, 0, 2, 3)[None])
    return feat.mean((2, 3, 4))[0].numpy()


def read_back(root, modality):
    from moviekit import get_registry

    source = get_registry().create("features_dir", "dataset", root=str(root))
    return {v.id: v for v in source.items()}, source


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_export_writes_the_trained_classifiers_penultimate_features_as_a_features_dir(tmp_path):
    """The trained classifier comes from ctx.model; the features_dir reads back with the backbone's width and
    the values of a direct forward pass; the per-video folder holds the mean over the shots."""
    items = shot_items()
    ctx = make_context(tmp_path, items=items, vocabulary=VOCAB)
    common = {"model": "r2plus1d", "backbone": TINY_R2PLUS1D, "input_size": 16, "test_clips": 1, "test_crops": 1}
    MovieclipSceneClassifier(labels=VOCAB, epochs=1, batch_size=4, max_steps=2, train_crop="random_resized", **common).run(ctx)
    assert "scene" in ctx.models
    export = MovieclipExportFeatures(model_name="scene", video_features_dir="per_video")
    result = export.run(ctx)
    trained = ctx.model("scene")
    _, net = MovieclipSceneClassifier.rebuild(trained)
    dim = net.cls_head.fc_cls.in_features
    assert result.metrics["dim"] == dim == 32 and result.metrics["source"] == "trained"

    videos, source = read_back(ctx.out_dir / "movieclip_features", "movieclip")
    assert not source.problems and sorted(videos) == ["v0", "v1", "v2"]
    assert [v.split for v in videos.values()] == ["train", "train", "test"] and videos["v0"].labels == ["beach"]
    s = MovieclipSceneClassifier(**common).settings()
    for it in items:
        got = videos[it.id].features.arrays["movieclip"]
        assert got.shape == (4, dim)
        want = np.stack([direct_penultimate(net, clip, s, s["test_size"]) for clip in it.features.arrays["frames"]])
        assert np.allclose(got, want, atol=1e-4)
        assert [c.start_time for c in videos[it.id].clips] == [c.start_time for c in it.clips]
    per_video, _ = read_back(ctx.out_dir / "per_video", "movieclip")
    assert np.allclose(per_video["v1"].features.arrays["movieclip"][0], videos["v1"].features.arrays["movieclip"].mean(0), atol=1e-6)

    with pytest.raises(MoviekitError, match="no model named 'nope'"):
        MovieclipExportFeatures(model_name="nope").run(ctx)


def test_the_paper_swin_b_penultimate_is_1024_d():
    """Sec. 5.1: M_scene takes 1024-d Swin-B features; mmaction2's Swin-B ends in 8 x 128 = 1024 channels."""
    from mmaction.models.backbones.swin import SwinTransformer3D

    from moviekit_movieclip.heads import FEATURE_DIM
    from moviekit_movieclip.videomodels import HEADS, backbone_config

    base = SwinTransformer3D.arch_zoo[backbone_config("swin", 32, 224)["arch"]]
    assert base["embed_dims"] * 2 ** (len(base["depths"]) - 1) == HEADS["swin"][1] == FEATURE_DIM == 1024


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_kinetics_weights_from_a_local_folder_initialise_the_model_and_give_the_kin_features(tmp_path, monkeypatch):
    import torch

    kinetics = build_recognizer("r2plus1d", 400, 2, 16, backbone=TINY_R2PLUS1D)
    folder = tmp_path / "local" / "mmaction2-r2plus1d-kinetics400"
    folder.mkdir(parents=True)
    torch.save({"state_dict": kinetics.state_dict(), "meta": {"epoch": 40, "note": "mmaction2 layout"}}, folder / "r2plus1d_k400.pth")
    monkeypatch.setenv("MOVIEKIT_WEIGHTS", str(tmp_path / "local"))

    # the scene classifier starts from it: every backbone tensor loaded, the 400-class head skipped
    net = build_recognizer("r2plus1d", 3, 2, 16, backbone=TINY_R2PLUS1D, pretrained="kinetics")
    theirs = kinetics.state_dict()
    for k, v in net.state_dict().items():
        if k.startswith("backbone."):
            assert torch.equal(v, theirs[k]), k
    assert MovieclipSceneClassifier(model="r2plus1d", pretrained="kinetics").weights()[0].name == "mmaction2-r2plus1d-kinetics400"

    # M_scene(Kin): the Kinetics network's own penultimate features, no scene training
    items = shot_items(sizes=((16, 28), (16, 21)))
    ctx = make_context(tmp_path, items=items, vocabulary=VOCAB)
    export = MovieclipExportFeatures(source="kinetics", model="r2plus1d", backbone=TINY_R2PLUS1D, test_clips=1, test_crops=1)
    result = export.run(ctx)
    assert (result.metrics["source"], result.metrics["modality"], result.metrics["dim"]) == ("kinetics", "kinetics", 32)
    videos, _ = read_back(ctx.out_dir / "movieclip_features", "kinetics")
    s = MovieclipSceneClassifier(model="r2plus1d", input_size=224).settings()
    kinetics.eval()
    want = np.stack([direct_penultimate(kinetics, clip, s, s["test_size"]) for clip in items[1].features.arrays["frames"]])
    assert np.allclose(videos["v1"].features.arrays["kinetics"], want, atol=1e-4)


def test_checkpoints_are_never_unpickled(tmp_path):
    import argparse

    import torch

    bad = tmp_path / "bad.pth"
    torch.save({"state_dict": {}, "meta": argparse.Namespace(epoch=1)}, bad)  # an object only unpickling can rebuild
    with pytest.raises(MoviekitError, match=r"(?s)weights_only=True.*never unpickles.*safetensors"):
        build_recognizer("r2plus1d", 3, 2, 16, backbone=TINY_R2PLUS1D, pretrained=str(bad))
    missing = MovieclipExportFeatures(source="kinetics", model="swin")
    ctx = make_context(tmp_path, items=shot_items(sizes=((16, 28),)), vocabulary=VOCAB)
    with pytest.raises(MoviekitError, match=r"(?s)mmaction2-swin-kinetics400.*`pretrained`"):
        missing.run(ctx)


# -- the shot-scale model's input: ViT-B/16 features of each shot's own frames at 4 fps (Sec. 3.3.2) ------------


def test_shot_frames_are_the_shots_own_frames_by_time():
    from moviekit_movieclip.framefeatures import MovieclipFrameFeatures, sequence_lengths, shot_frame_indices

    times = np.arange(12) * 0.25  # 4 fps over 3 s: 0, 0.25, ..., 2.75
    assert shot_frame_indices(times, 0.6, 1.6).tolist() == [3, 4, 5, 6]  # 0.75, 1.0, 1.25, 1.5
    assert shot_frame_indices(times, 1.6, 1.7).tolist() == [7]  # between samples: nearest its middle (1.75)
    assert shot_frame_indices(times, 0.0, 3.0, max_frames=2).tolist() == [3, 9]  # evenly spaced

    expert = MovieclipFrameFeatures(backbone="thumbnail", grid=1)
    assert expert.needs().frames.fps == 4.0 and expert.about()["stand_in"] is True
    sink = expert.open(Video(id="v"), {"fps": 4.0})
    frames = np.stack([np.full((6, 10, 3), 10 * (k + 1), np.uint8) for k in range(12)])  # frame k's colour is 10 (k + 1)
    sink.frames(FrameBatch(frames=frames, indices=np.arange(12), times=times))
    track = sink.close()
    shots = [
        Clip(video_id="v", index=0, shot_index=0, start_frame=2, end_frame=7, start_time=0.6, end_time=1.6),
        Clip(video_id="v", index=1, shot_index=1, start_frame=7, end_frame=8, start_time=1.6, end_time=1.7),
    ]
    pooled = expert.pool(track, shots)
    assert pooled.shape == (2, 4, 3)
    assert np.allclose(pooled[0, :, 0] * 255, [40, 50, 60, 70]) and np.allclose(pooled[1, 0] * 255, 80)
    assert np.all(pooled[1, 1:] == 0) and sequence_lengths(pooled).tolist() == [4, 1]  # no looping: zero rows after


TINY_VIT = {"depth": 1, "embed_dim": 32, "num_heads": 2, "img_size": 32}


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_timm_vit_loads_a_local_state_dict_and_the_outputs_name_the_backbone(tmp_path, monkeypatch):
    import json

    import timm
    import timm.data
    import torch
    from PIL import Image
    from safetensors.torch import save_file

    from moviekit_movieclip.framefeatures import MovieclipFrameFeatures
    from moviekit_movieclip.shotscale import MovieclipShotScale

    torch.manual_seed(0)
    ref = timm.create_model("vit_base_patch16_224", pretrained=False, num_classes=5, **TINY_VIT).eval()  # with a head
    folder = tmp_path / "local" / "timm-vit_base_patch16_224"
    folder.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, str(folder / "model.safetensors"))

    expert = MovieclipFrameFeatures(vit_overrides=TINY_VIT, device="cpu")
    with pytest.raises(MoviekitError, match=r"(?s)timm-vit_base_patch16_224.*`weights`"):
        expert.encoder()  # offline, nothing in $MOVIEKIT_WEIGHTS yet
    monkeypatch.setenv("MOVIEKIT_WEIGHTS", str(tmp_path / "local"))
    frames = np.random.default_rng(0).integers(0, 256, (3, 40, 64, 3), dtype=np.uint8)
    got = expert.encoder().encode(frames)
    transform = timm.data.create_transform(**{**timm.data.resolve_model_data_config(ref), "input_size": (3, 32, 32)})
    x = torch.stack([transform(Image.fromarray(f)) for f in frames])
    with torch.no_grad():
        want = ref.forward_head(ref.forward_features(x), pre_logits=True).numpy()
    assert got.shape == (3, 32) and np.allclose(got, want, atol=1e-5)
    about = expert.about()
    assert (about["backbone"], about["model"], about["stand_in"], about["fps"]) == ("vit", "vit_base_patch16_224", False, 4.0)
    assert about["weights"].endswith("model.safetensors")

    # the shot-scale LSTM on those features says which backbone made them, in metrics.json and the model record
    clips = [
        Clip(video_id=f"m{v}", index=j, shot_index=j, start_frame=j, end_frame=j + 1, start_time=j, end_time=j + 1)
        for v in range(2)
        for j in range(3)
    ]
    items = []
    for v in range(2):
        own = [c for c in clips if c.video_id == f"m{v}"]
        times = np.arange(12) * 0.25
        seq = expert.pool(Track(times=times, values=got[np.arange(12) % 3][:, None, :]), own)
        items.append(Item(video=Video(id=f"m{v}", split="train"), clips=own, features=FeatureSet(video_id=f"m{v}", arrays={"shots": seq})))
    (tmp_path / "s.csv").write_text("video,shot,scale\nm0,0,CS\nm0,1,LS\nm1,2,MS\n")
    ctx = make_context(tmp_path, items=items, vocabulary=VOCAB)
    ctx.experts = {"shots": expert}
    result = MovieclipShotScale(labels_file=str(tmp_path / "s.csv"), features="shots", epochs=1, hidden=8).run(ctx)
    metrics = json.loads((ctx.out_dir / "shot_scale_metrics.json").read_text())
    assert metrics["frame_features"]["backbone"] == "vit" and metrics["frame_features"]["frames"] == "the shot's own frames"
    record = json.loads((ctx.out_dir / "models" / "shot_scale.json").read_text())
    assert record["meta"]["frame_features"]["model"] == "vit_base_patch16_224" and result.metrics["n_train"] == 3
