"""The PyAV reader on hard inputs: rotation metadata, variable frame rate, odd sizes, no audio.

Every file is generated here with PyAV.  The reader's fast path (one swscale context per
output size, batches filled in place) is also checked against plain PyAV conversion, which
is what the ``scenedetect`` segmenter's frame-exactness with the PySceneDetect CLI rests on.
"""

from __future__ import annotations

import threading
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from moviekit.components import AudioNeed, FrameNeed, Needs
from moviekit.default_plugins import media
from moviekit.default_plugins.media import Orientation, PyAVReader, orientation_from_matrix
from moviekit.default_plugins.segmenters import SceneDetectSegmenter
from moviekit.records import Video
from moviekit.testing import RecordingSink, write_test_video

W, H = 64, 48


def picture(i: int, w: int = W, h: int = H) -> np.ndarray:
    """An asymmetric RGB test picture (so every rotation and mirror looks different)."""
    rng = np.random.default_rng(i)
    blocks = rng.integers(0, 256, size=(h // 8 + 1, w // 8 + 1, 3), dtype=np.uint8)
    img = np.ascontiguousarray(np.repeat(np.repeat(blocks, 8, axis=0), 8, axis=1)[:h, :w])
    img[: h // 3, : w // 3] = (250, 20, 20)  # red corner: top left
    img[-(h // 4) :, -(w // 6) :] = (20, 250, 20)  # green corner: bottom right
    return img


def write(
    path: Path,
    n: int = 6,
    size: tuple[int, int] = (W, H),
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    rotation: int | None = None,
    hflip: bool = False,
    pts: list[int] | None = None,
    time_base: Fraction = Fraction(1, 12),
    options: dict[str, str] | None = None,
) -> Path:
    """Encode ``n`` test pictures (or one per entry of ``pts``, in ``time_base`` units)."""
    w, h = size
    stamps = pts if pts is not None else list(range(n))
    with av.open(str(path), "w") as out:
        vs = out.add_stream(codec, rate=12, options=options or {})
        vs.width, vs.height, vs.pix_fmt = w, h, pix_fmt
        vs.time_base = vs.codec_context.time_base = time_base
        if rotation is not None:
            vs.set_display_rotation(rotation, hflip=hflip)
        for i, t in enumerate(stamps):
            frame = av.VideoFrame.from_ndarray(picture(i, w, h), format="rgb24")
            frame.pts, frame.time_base = t, time_base
            out.mux(vs.encode(frame))
        out.mux(vs.encode(None))
    return path


def read(path: Path, *needs: Needs) -> list[RecordingSink]:
    sinks = [RecordingSink() for _ in needs]
    PyAVReader({}).read(Video(id=path.stem, path=path), list(zip(needs, sinks, strict=True)))
    return sinks


def frames_of(sink: RecordingSink) -> np.ndarray:
    return np.concatenate([b.frames for b in sink.batches])


def times_of(sink: RecordingSink) -> list[float]:
    return [float(t) for b in sink.batches for t in b.times]


def every_frame(size: tuple[int, int] | None = None, batch: int = 4) -> Needs:
    return Needs(frames=FrameNeed(fps=None, size=size, batch=batch))


# -- the fast path gives what plain PyAV conversion gives ---------------------------------


def test_frames_equal_plain_pyav_conversion(tmp_path):
    path = write(tmp_path / "ref.mp4", n=20, size=(320, 240), options={"bf": "3"})
    seg_need = SceneDetectSegmenter({}).needs()
    assert seg_need.frames.size is None and seg_need.frames.fps is None
    full, small, sampled = read(path, seg_need, every_frame((56, 40), batch=3), Needs(frames=FrameNeed(fps=5, size=(56, 40), batch=2)))
    ref_full, ref_small, ref_times = [], [], []
    with av.open(str(path)) as c:
        for frame in c.decode(video=0):
            ref_full.append(frame.to_ndarray(format="rgb24"))
            ref_small.append(frame.reformat(width=56, height=40, format="rgb24").to_ndarray())
            ref_times.append(float(frame.time))
    assert all(b.frames.flags.c_contiguous for s in (full, small, sampled) for b in s.batches)
    assert [len(b) for b in full.batches] == [8, 8, 4]
    np.testing.assert_array_equal(frames_of(full), np.stack(ref_full))
    np.testing.assert_array_equal(frames_of(small), np.stack(ref_small))
    assert times_of(full) == ref_times
    assert [int(i) for b in full.batches for i in b.indices] == list(range(20))
    # 5 of 12 frames per second, picked by time, share the small conversion
    picked = [int(i) for b in sampled.batches for i in b.indices]
    assert picked == [0, 3, 5, 8, 10, 12, 15, 17]  # first frame at or after each 0.2 s
    np.testing.assert_array_equal(frames_of(sampled), np.stack(ref_small)[picked])


# -- rotation ------------------------------------------------------------------------------


@pytest.mark.parametrize("degrees", [90, 180, 270])
def test_rotated_video_comes_out_upright(tmp_path, degrees):
    plain = write(tmp_path / "plain.mp4")
    rotated = write(tmp_path / f"rot{degrees}.mp4", rotation=degrees)
    reader = PyAVReader({})
    info = reader.probe(Video(id="r", path=rotated))
    quarter = degrees in (90, 270)
    assert (info.width, info.height) == ((H, W) if quarter else (W, H))
    assert info.rotation == degrees
    (upright, small) = read(rotated, every_frame(), every_frame((20, 30)))
    (reference,) = read(plain, every_frame())
    # PyAV's rotation is counter-clockwise, as np.rot90's
    expected = np.rot90(frames_of(reference), k=degrees // 90, axes=(1, 2))
    np.testing.assert_array_equal(frames_of(upright), expected)
    assert frames_of(upright).shape == (6, *((W, H) if quarter else (H, W)), 3)
    assert frames_of(small).shape == (6, 30, 20, 3)  # size is (width, height) as displayed
    # the red corner is where a player shows it
    red = np.argwhere((expected[0, ..., 0] > 200) & (expected[0, ..., 1] < 60)).mean(0)
    red_small = np.argwhere((frames_of(small)[0, ..., 0] > 200) & (frames_of(small)[0, ..., 1] < 60)).mean(0)
    assert np.allclose(red / expected.shape[1:3], red_small / (30, 20), atol=0.12)


@pytest.mark.parametrize("degrees", [0, 90])
def test_frame_at_is_the_read_frame_upright_by_seek_and_by_the_generic_default(tmp_path, degrees):
    """frame_at (what reports take keyframes from) gives the frame read() delivers: first at or after the time."""
    from moviekit.components import Reader

    path = write(tmp_path / f"f{degrees}.mp4", n=20, rotation=degrees or None)
    video = Video(id="f", path=path)
    reader = PyAVReader({})
    (every,) = read(path, every_frame())
    frames, times = frames_of(every), times_of(every)
    for t, want in (
        (0.0, 0),
        (0.26, int(np.searchsorted(times, 0.26 - 1e-3))),
        (None, int(np.searchsorted(times, reader.probe(video).duration / 2 - 1e-3))),
        (99.0, len(times) - 1),
    ):
        np.testing.assert_array_equal(reader.frame_at(video, t), frames[want])
        np.testing.assert_array_equal(Reader.frame_at(reader, video, t), frames[want])  # the decode-everything default


def test_rotated_frames_match_opencv(tmp_path):
    """OpenCV (the PySceneDetect CLI's backend) applies rotation too: same pixels."""
    cv2 = pytest.importorskip("cv2")
    path = write(tmp_path / "rot90.mp4", rotation=90)
    (ours,) = read(path, every_frame())
    cap = cv2.VideoCapture(str(path))
    theirs = []
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        theirs.append(bgr[:, :, ::-1])
    cap.release()
    np.testing.assert_array_equal(frames_of(ours), np.stack(theirs))


def test_mirrored_rotation_is_applied(tmp_path):
    plain = write(tmp_path / "plain.mp4", n=2)
    mirrored = write(tmp_path / "mirror.mp4", n=2, rotation=90, hflip=True)
    (a,) = read(mirrored, every_frame())
    (b,) = read(plain, every_frame())
    # rotate a quarter turn counter-clockwise, then mirror left-right
    np.testing.assert_array_equal(frames_of(a), np.rot90(frames_of(b), 1, axes=(1, 2))[:, :, ::-1])


def test_orientation_helper():
    one = 1 << 16
    assert orientation_from_matrix([one, 0, 0, 0, one, 0, 0, 0, 1 << 30]) == Orientation()
    assert orientation_from_matrix([0] * 9) == Orientation()  # unset: leave frames alone
    # av_display_rotation_set(m, -90): what a phone held upright writes (rotate 90 counter-clockwise)
    rot90 = orientation_from_matrix([0, -one, 0, one, 0, 0, 0, 0, 1 << 30])
    assert rot90 == Orientation(transpose=True, flip_rows=True)
    img = np.arange(2 * 3 * 1).reshape(2, 3, 1)
    np.testing.assert_array_equal(rot90.apply(img), np.rot90(img))
    assert rot90.display_size(1920, 1080) == (1080, 1920)
    assert orientation_from_matrix([-one, 0, 0, 0, -one, 0, 0, 0, 1 << 30]) == Orientation(flip_rows=True, flip_cols=True)
    assert orientation_from_matrix([one, 0, 0, 0, -one, 0, 0, 0, 1 << 30]) == Orientation(flip_rows=True)
    # an odd angle snaps to the nearest quarter turn
    c, s = int(one * np.cos(np.radians(80))), int(one * np.sin(np.radians(80)))
    assert orientation_from_matrix([c, -s, 0, s, c, 0, 0, 0, 1 << 30]) == rot90


# -- variable frame rate ---------------------------------------------------------------------


#: Presentation times in milliseconds: bursts and gaps, nothing like a constant rate.
VFR_MS = [0, 40, 80, 200, 240, 250, 260, 700, 740, 1000, 1500, 1540, 1580, 1620, 2000]


@pytest.mark.parametrize("container", ["mp4", "mkv"])
def test_variable_frame_rate_times_are_presentation_times(tmp_path, container):
    path = write(tmp_path / f"vfr.{container}", pts=VFR_MS, time_base=Fraction(1, 1000))
    every, two_fps = read(path, every_frame(batch=5), Needs(frames=FrameNeed(fps=2, size=(16, 16), batch=3)))
    assert times_of(every) == [t / 1000 for t in VFR_MS]
    assert [int(i) for b in every.batches for i in b.indices] == list(range(len(VFR_MS)))
    # 2 fps picks the first frame at or after 0, 0.5, 1.0, 1.5 and 2.0 s, whatever its index
    assert times_of(two_fps) == [0.0, 0.7, 1.0, 1.5, 2.0]
    assert [int(i) for b in two_fps.batches for i in b.indices] == [0, 7, 9, 10, 14]


# -- odd sizes -------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "codec", "pix_fmt"), [("x264-444.mp4", "libx264", "yuv444p"), ("ffv1-420.mkv", "ffv1", "yuv420p")])
def test_odd_sized_frames(tmp_path, name, codec, pix_fmt):
    w, h = 161, 97
    path = write(tmp_path / name, n=5, size=(w, h), codec=codec, pix_fmt=pix_fmt, options={"crf": "0"} if codec == "libx264" else None)
    info = PyAVReader({}).probe(Video(id="odd", path=path))
    assert (info.width, info.height, info.num_frames) == (w, h, 5)
    full, small = read(path, every_frame(batch=2), every_frame((33, 17)))
    frames = frames_of(full)
    assert frames.shape == (5, h, w, 3)
    assert frames_of(small).shape == (5, 17, 33, 3)
    # the decoded picture is the one written, in place, to the last column and row
    err = np.abs(frames[0].astype(int) - picture(0, w, h).astype(int))
    assert np.median(err) <= (2 if pix_fmt == "yuv444p" else 8)  # 4:2:0 blurs the colour edges
    assert np.abs(frames[0, : h // 3 - 4, : w // 3 - 4].astype(int) - (250, 20, 20)).max() <= 12
    assert np.abs(frames[0, -2:, -2:].astype(int) - (20, 250, 20)).max() <= 12


# -- no audio --------------------------------------------------------------------------------


def test_audio_less_file(tmp_path):
    path = write_test_video(tmp_path / "silent.mp4", audio=False)
    info = PyAVReader({}).probe(Video(id="silent", path=path))
    assert info.has_audio is False
    (audio_only,) = read(path, Needs(audio=AudioNeed()))
    assert audio_only.chunks == [] and audio_only.batches == []
    both, frames = read(path, Needs(frames=FrameNeed(fps=6, size=(16, 16)), audio=AudioNeed()), every_frame())
    assert both.chunks == []
    assert sum(len(b) for b in both.batches) == 24 and sum(len(b) for b in frames.batches) == 48
    # with audio, the same reader does deliver it
    (heard,) = read(write_test_video(tmp_path / "loud.mp4"), Needs(audio=AudioNeed(chunk_seconds=1.0)))
    assert sum(len(c.samples) for c in heard.chunks) >= 3 * 16000


# -- probe and read share one open ------------------------------------------------------------


def test_read_after_probe_reuses_the_open_file_and_gives_the_same_stream(tmp_path):
    files = [
        write(tmp_path / "bframes.mp4", n=20, size=(96, 64), options={"bf": "3"}),
        write(tmp_path / "rot90.mp4", n=8, rotation=90),
        write(tmp_path / "vfr.mkv", pts=[0, 1, 3, 4, 9, 10, 11, 15]),
        write(tmp_path / "ffv1.mkv", n=8, codec="ffv1"),
        write_test_video(tmp_path / "audio.mp4"),
    ]
    needs = (every_frame(), every_frame((24, 16), batch=3), Needs(audio=AudioNeed(sample_rate=16000, chunk_seconds=0.5)))
    for path in files:
        video = Video(id=path.stem, path=path)
        fresh = read(path, *needs)
        reader = PyAVReader({})
        reader.probe(video)
        assert reader._held is not None  # kept open for the read
        sinks = [RecordingSink() for _ in needs]
        reader.read(video, list(zip(needs, sinks)))
        assert reader._held is None
        for a, b in zip(fresh[:2], sinks[:2]):
            np.testing.assert_array_equal(frames_of(a), frames_of(b))
            assert times_of(a) == times_of(b)
        assert [c.samples.tobytes() for c in fresh[2].chunks] == [c.samples.tobytes() for c in sinks[2].chunks]
        assert [c.start_time for c in fresh[2].chunks] == [c.start_time for c in sinks[2].chunks]
    # a read of another file closes the held one and opens its own
    reader = PyAVReader({})
    reader.probe(Video(id="a", path=files[0]))
    other = read(files[3], every_frame())[0]
    sink = RecordingSink()
    reader.read(Video(id="b", path=files[3]), [(every_frame(), sink)])
    np.testing.assert_array_equal(frames_of(sink), frames_of(other))
    assert reader._held is None


# -- the conversion thread ---------------------------------------------------------------------


class _OrderSink(RecordingSink):
    """Keeps every call in order, with the thread it came on."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, str, bytes]] = []

    def frames(self, batch):
        super().frames(batch)
        self.calls.append(("frames", threading.current_thread().name, batch.frames.tobytes() + batch.indices.tobytes()))

    def audio(self, chunk):
        super().audio(chunk)
        self.calls.append(("audio", threading.current_thread().name, chunk.samples.tobytes() + str(chunk.start_time).encode()))


def _read_calls(path: Path, small: int, monkeypatch) -> list[_OrderSink]:
    monkeypatch.setattr(media._ConvertThread, "SMALL", small)
    needs = [
        Needs(frames=FrameNeed(fps=None, size=None, batch=3), audio=AudioNeed(sample_rate=16000, chunk_seconds=0.25)),
        Needs(frames=FrameNeed(fps=5, size=(40, 30), batch=2)),
        Needs(audio=AudioNeed(sample_rate=8000, chunk_seconds=0.1)),
    ]
    sinks = [_OrderSink() for _ in needs]
    PyAVReader({}).read(Video(id=path.stem, path=path), list(zip(needs, sinks, strict=True)))
    return sinks


def test_conversion_thread_gives_the_same_calls_in_the_same_order(tmp_path, monkeypatch):
    """Large pictures are converted, batched and handed out on a thread of their own: every sink gets
    the same frames and audio, interleaved in the same order, as when all runs on the reader's thread."""
    path = write_test_video(tmp_path / "av.mp4", size=(96, 64), audio=True)
    inline = _read_calls(path, 10**9, monkeypatch)
    threaded = _read_calls(path, 0, monkeypatch)
    for a, b in zip(inline, threaded, strict=True):
        assert [c[0] for c in a.calls] == [c[0] for c in b.calls] and len(a.calls) > 3
        assert [c[2] for c in a.calls] == [c[2] for c in b.calls]
    assert {c[1] for s in inline for c in s.calls} == {threading.current_thread().name}
    # (what comes before the first picture and the last flushes stay on the reader's thread)
    assert [c[1] for c in threaded[1].calls].count("moviekit-pyav-convert") >= len(threaded[1].calls) - 1
    assert {"frames", "audio"} <= {c[0] for c in threaded[0].calls}


def test_conversion_thread_raises_a_sink_error_on_the_readers_thread(tmp_path, monkeypatch):
    monkeypatch.setattr(media._ConvertThread, "SMALL", 0)
    path = write(tmp_path / "v.mp4", n=30, size=(64, 48))

    class Boom(RecordingSink):
        def frames(self, batch):
            super().frames(batch)
            if len(self.batches) == 2:
                raise ValueError("sink failed")

    sink = Boom()
    with pytest.raises(ValueError, match="sink failed"):
        PyAVReader({}).read(Video(id="v", path=path), [(every_frame(batch=2), sink)])
    assert len(sink.batches) == 2  # nothing after the failure
    assert not [t for t in threading.enumerate() if t.name == "moviekit-pyav-convert"]
