"""Decoding with PyAV: one pass per video, fanned out to every consumer.

Each distinct output size is converted from the decoded picture once per frame by its own
swscale context (kept for the whole video), straight to RGB at the consumer's size, and
copied once into the batch handed to the consumers of that need (consumers with the same
``FrameNeed`` share one read-only batch).  ``read()`` reuses the container ``probe()`` opened
for the same file, rewound to the start, so a video is opened once.  Rotation metadata (the display matrix a
phone writes) is applied, so frames come out upright, as players and OpenCV show them.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from moviekit.components import AudioNeed, Config, FrameNeed, Needs, Reader, Sink
from moviekit.errors import ItemError
from moviekit.hookspecs import hookimpl
from moviekit.records import AudioChunk, FrameBatch, Video, VideoInfo

logger = logging.getLogger(__name__)

#: Number of decode passes started, for tests that check one decode per video.
DECODE_PASSES = 0

#: Packets probe() demuxes at most while looking for the first frame (for its display matrix).
_PROBE_PACKETS = 64
#: Frames decoded forward from a seek before frame_at() takes the one it reached.
_SEEK_DECODE_LIMIT = 600


# -- orientation (display matrix) ------------------------------------------------------------


@dataclass(frozen=True)
class Orientation:
    """How to turn a decoded ``(H, W, C)`` picture upright: transpose, then flip axes.

    The flips are applied after the transpose, to the rows and columns of the result.
    """

    transpose: bool = False
    flip_rows: bool = False
    flip_cols: bool = False

    @property
    def identity(self) -> bool:
        return not (self.transpose or self.flip_rows or self.flip_cols)

    def display_size(self, width: int, height: int) -> tuple[int, int]:
        """``(width, height)`` as shown, for a coded picture of ``width`` x ``height``."""
        return (height, width) if self.transpose else (width, height)

    def apply(self, img: np.ndarray) -> np.ndarray:
        """The upright picture (a view of ``img``; not contiguous unless this is the identity)."""
        out = img.swapaxes(0, 1) if self.transpose else img
        if self.flip_rows:
            out = out[::-1]
        if self.flip_cols:
            out = out[:, ::-1]
        return out


def orientation_from_matrix(matrix: Sequence[int]) -> Orientation:
    """The :class:`Orientation` of an FFmpeg display matrix (9 ints, ``AV_PKT_DATA_DISPLAYMATRIX``).

    FFmpeg maps a source point ``(x, y)`` to ``(a*x + c*y, b*x + d*y)`` (plus a translation),
    with ``a, b, c, d = m[0], m[1], m[3], m[4]`` in 16.16 fixed point.  Quarter turns and
    mirrors are exact; any other angle is snapped to the nearest quarter turn (with a warning).
    """
    a, b, c, d = (float(matrix[i]) for i in (0, 1, 3, 4))
    straight, crossed = abs(a) + abs(d), abs(b) + abs(c)
    if straight == 0.0 and crossed == 0.0:
        return Orientation()
    if min(abs(a), abs(d)) > 1e-3 * straight and min(abs(b), abs(c)) > 1e-3 * crossed:
        degrees = math.degrees(math.atan2(b, a))
        logger.warning("display matrix rotates by %.1f degrees; using the nearest quarter turn", degrees)
    if straight >= crossed:
        # x' = a*x, y' = d*y: a negative coefficient mirrors that axis.
        return Orientation(transpose=False, flip_rows=d < 0, flip_cols=a < 0)
    # x' = c*y, y' = b*x: rows become columns; the signs say which way each runs.
    return Orientation(transpose=True, flip_rows=b < 0, flip_cols=c < 0)


def frame_orientation(frame: Any) -> Orientation:
    """The orientation of a decoded PyAV frame, from its display-matrix side data."""
    from av.sidedata.sidedata import Type

    try:
        sd = frame.side_data.get(Type.DISPLAYMATRIX)
    except (AttributeError, KeyError):  # pragma: no cover - older PyAV
        sd = None
    if sd is None:
        return Orientation()
    raw = bytes(sd)
    if len(raw) < 36:
        return Orientation()
    return orientation_from_matrix(np.frombuffer(raw[:36], dtype=np.int32).tolist())


def rotation_degrees(o: Orientation) -> int:
    """Counter-clockwise rotation of ``o`` ignoring mirroring (0, 90, 180 or 270), for probe()."""
    if o.transpose:
        return 90 if o.flip_rows else 270
    return 180 if (o.flip_rows and o.flip_cols) else 0


# -- fan-out ---------------------------------------------------------------------------------


class _Converter:
    """Decoded picture -> upright RGB at one output size, with its own swscale context.

    Reusing one context per size saves setting swscale up again for every frame (what
    ``frame.to_ndarray(format=...)`` does); the pixels are the same.  ``threads`` is swscale's threads
    per conversion: 1 by default, since FFmpeg's automatic choice (one per core, started and joined for
    every frame) costs more than it saves below HD (107 vs 14 us a 160x96 frame, 443 vs 503 us at 720p,
    on 2 cores); the pixels do not depend on it.
    """

    def __init__(self, size: tuple[int, int] | None, orientation: Orientation, threads: int = 1):
        from av.video.reformatter import VideoReformatter

        self.reformatter = VideoReformatter()
        self.orientation = orientation
        self.threads = threads
        if size is None:
            self.width = self.height = None
        else:
            # The consumer's size is as displayed; swscale works on the coded picture.
            self.width, self.height = orientation.display_size(*size)

    def __call__(self, frame: Any) -> np.ndarray:
        rgb = self.reformatter.reformat(frame, width=self.width, height=self.height, format="rgb24", threads=self.threads).to_ndarray()
        return self.orientation.apply(rgb)


#: The picture of a frame whose consumers asked for no pixels (``FrameNeed(pixels=False)``).
_NO_PIXELS = np.zeros((0, 0, 3), np.uint8)
_NO_PIXELS.flags.writeable = False


class _FrameFan:
    """Collects sampled frames for the consumers of one :class:`FrameNeed` into a preallocated
    batch and flushes it when full.

    Consumers asking for the same need (rate, size and batch length) share one fan, so the
    frames are sampled and copied once and every one of them gets the same batch; a shared
    batch is made read-only, so a consumer that writes into it fails loudly instead of
    changing what the others see.
    """

    def __init__(self, need: FrameNeed, sinks: list[Sink]):
        self.need = need
        self.sinks = sinks
        self.next_time = -np.inf
        self.buf: np.ndarray | None = None
        self.n = 0
        self.indices = np.empty(need.batch, np.int64)
        self.times = np.empty(need.batch, np.float64)

    def wants(self, t: float) -> bool:
        """Frames are picked by presentation time: the first at or after each ``1/fps`` step."""
        if self.need.fps is None:
            return True
        if t + 1e-6 >= self.next_time:
            step = 1.0 / self.need.fps
            self.next_time = (self.next_time if np.isfinite(self.next_time) else t) + step
            while self.next_time <= t + 1e-6:
                self.next_time += step
            return True
        return False

    def add(self, img: np.ndarray, index: int, t: float) -> None:
        if self.buf is not None and self.buf.shape[1:] != img.shape:
            self.flush()  # the picture size changed mid-stream: a batch holds one size
        if self.buf is None:
            self.buf = np.empty((self.need.batch, *img.shape), np.uint8)
        self.buf[self.n] = img
        self.indices[self.n] = index
        self.times[self.n] = t
        self.n += 1
        if self.n >= self.need.batch:
            self.flush()

    def flush(self) -> None:
        if self.n and self.buf is not None:
            n = self.n
            # A new buffer for every batch: a sink may keep the one it was given (or, with
            # consumers on threads, still be working on it while the next batch fills).
            batch = FrameBatch(frames=self.buf[:n], indices=self.indices[:n].copy(), times=self.times[:n].copy())
            if len(self.sinks) > 1:
                for a in (batch.frames, batch.indices, batch.times):
                    a.flags.writeable = False
            for sink in self.sinks:
                sink.frames(batch)
        self.buf, self.n = None, 0


class _AudioFan:
    def __init__(self, need: AudioNeed, sink: Sink):
        self.need = need
        self.sink = sink
        self.parts: list[np.ndarray] = []
        self.count = 0
        self.start: float | None = None

    def add(self, samples: np.ndarray, t: float) -> None:
        if self.start is None:
            self.start = max(t, 0.0)
        self.parts.append(samples)
        self.count += len(samples)
        if self.count >= self.need.chunk_seconds * self.need.sample_rate:
            self.flush()

    def flush(self) -> None:
        if self.parts:
            data = np.concatenate(self.parts).astype(np.float32)
            self.sink.audio(AudioChunk(samples=data, sample_rate=self.need.sample_rate, start_time=float(self.start or 0.0)))
            self.start = (self.start or 0.0) + len(data) / self.need.sample_rate
            self.parts, self.count = [], 0


class _ConvertThread:
    """Runs the consumer side of a decode on its own thread: converting each picture, filling the
    batches and handing them (and the audio chunks) to the consumers, while the reader's thread goes on
    demuxing and decoding.  PyAV's decoding and swscale release the GIL, so on two cores the conversion
    and the copies overlap the decoding instead of adding to it.

    Work items run one after another in the order they were put, all on this one thread, so every
    consumer gets the same calls in the same order as when they run on the reader's thread (frames and
    audio interleaved as decoded).  At most ``depth`` items wait, so the reader blocks on a full queue
    (bounded memory: ``depth`` decoded pictures).  Used for pictures larger than :attr:`SMALL`: smaller
    ones cost less to convert on the reader's thread than to hand over (14 us a 160x96 frame).  An
    exception raised by a work item (a consumer's ``frames()``) stops the work (later items are
    dropped) and is raised again on the reader's thread by :meth:`put` or :meth:`close`.
    """

    #: pictures of at most this many pixels are converted on the reader's thread
    SMALL = 320 * 240

    def __init__(self, depth: int = 8):
        import queue
        import threading

        self.error: BaseException | None = None
        self.failed = False
        self.queue: queue.Queue[tuple[Any, ...] | None] = queue.Queue(maxsize=depth)
        self.thread = threading.Thread(target=self._run, name="moviekit-pyav-convert", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                return
            if self.failed:
                continue  # drain: the reader stops at its next put()
            try:
                item[0](*item[1:])
            except BaseException as e:  # noqa: BLE001 - raised again on the reader's thread
                self.error, self.failed = e, True

    def _raise(self) -> None:
        if self.error is not None:
            error, self.error = self.error, None
            raise error

    def put(self, work: Any, *args: Any) -> None:
        """Queue ``work(*args)`` (raising first what an earlier item raised)."""
        self._raise()
        self.queue.put((work, *args))

    def close(self) -> None:
        """Run what is left, wait for the thread, and raise what it raised."""
        self.queue.put(None)
        self.thread.join()
        self._raise()

    def abort(self) -> None:
        """Stop the thread without converting what waits (the decode failed)."""
        if not self.thread.is_alive():
            return
        import queue

        while True:
            try:
                self.queue.get_nowait()
            except queue.Empty:
                break
        self.queue.put(None)
        self.thread.join()


class PyAVReader(Reader):
    """Decodes video and audio with PyAV (bundled FFmpeg) in a single streaming pass.

    Frames carry exact presentation timestamps (variable frame rate included: ``fps``
    sampling picks frames by time); each consumer gets frames at its own rate and size,
    upright when the file has rotation metadata, and audio resampled to mono float32 at
    its rate.  A file without audio gives audio consumers nothing, and no error.

    Truncation rule: every stream that is decoded (video when a consumer wants frames, audio
    when one wants audio) must reach the end its container states.  When the decoded stream
    stops more than ``max(truncation_tolerance * stated duration, 2 frame intervals)`` (audio:
    ``max(tolerance * duration, 0.1 s)``) before the stated end, the item fails at the decode
    stage with a message giving both times.  Streams whose container states no duration are
    not checked.
    """

    name = "pyav"
    #: 2: rotation metadata is applied (frames and probe()'s width/height).
    #: 3: a decode ending early against the stated duration is a failure (truncation rule).
    version = "3"

    class Config(Config):
        threads: int = Field(0, ge=0, description="decoder threads; 0 lets FFmpeg choose")
        truncation_tolerance: float = Field(
            0.02,
            ge=0,
            le=1,
            description="fraction of a stream's stated duration that may be missing at its end before the item fails as truncated",
        )

    @staticmethod
    def _open(video: Video) -> Any:
        import av

        path = Path(str(video.path))
        try:
            return av.open(str(path))
        except (av.error.FFmpegError, OSError, UnicodeDecodeError) as e:
            raise ItemError(video.id, "decode", f"{path}: cannot open as a video ({type(e).__name__}: {e})") from e

    def _threading(self, vs: Any) -> None:
        """Decoder threading (fixed once the codec is open, so set before the first decode)."""
        vs.thread_type = "AUTO"
        if self.config.threads:
            vs.codec_context.thread_count = self.config.threads

    @contextlib.contextmanager
    def _probe_open(self, video: Video) -> Iterator[Any]:
        """Opens for probe() and, when it succeeds, keeps the container for the read() that follows."""
        self._release()
        container = self._open(video)
        try:
            if container.streams.video:
                self._threading(container.streams.video[0])
            yield container
        except BaseException:
            container.close()
            raise
        self._held = (str(video.path), container)

    def _read_open(self, video: Video) -> tuple[Any, bool]:
        """``(container, reused)``: probe()'s container of this file rewound to the start, else a new one."""
        import av

        held, self._held = getattr(self, "_held", None), None
        if held is not None:
            if held[0] == str(video.path):
                try:
                    held[1].seek(0)  # also flushes the decoders
                    return held[1], True
                except av.error.FFmpegError:
                    pass
            held[1].close()
        return self._open(video), False

    def _release(self) -> None:
        held, self._held = getattr(self, "_held", None), None
        if held is not None:
            held[1].close()

    @staticmethod
    def _first_frame(container: Any, vs: Any) -> Any:
        """The first decoded frame (for its display matrix), or None if none comes soon."""
        import av

        try:
            for i, packet in enumerate(container.demux(vs)):
                for frame in packet.decode():
                    return frame
                if i >= _PROBE_PACKETS:
                    break
        except av.error.FFmpegError:
            pass  # read() reports undecodable files
        return None

    def _check_complete(self, video: Video, container: Any, stream: Any, end: float, floor: float, what: str) -> None:
        """Raise when ``stream`` was decoded up to ``end`` seconds, short of its stated end (truncation rule)."""
        start, duration = stated_span(container, stream)
        if duration is None or duration <= 0:
            return
        missing = start + duration - end
        if missing > max(self.config.truncation_tolerance * duration, floor):
            kind = stream.type
            stated = f", {stream.frames} stated" if kind == "video" and stream.frames else ""
            raise ItemError(
                video.id,
                "decode",
                f"{video.path}: truncated: the {kind} stream ends at {end - start:.2f} s but the container states {duration:.2f} s "
                f"({what}{stated}); the file is probably cut short (a partial download or copy)",
            )

    def probe(self, video: Video) -> VideoInfo:
        with self._probe_open(video) as container:
            if not container.streams.video:
                raise ItemError(video.id, "decode", f"{video.path}: has no video stream")
            vs = container.streams.video[0]
            rate = vs.average_rate or vs.guessed_rate or vs.base_rate
            fps = float(rate) if rate else 25.0
            if vs.duration is not None and vs.time_base is not None:
                duration = float(vs.duration * vs.time_base)
            elif container.duration is not None:
                duration = container.duration / 1_000_000
            else:
                duration = 0.0
            width, height, rotation = vs.codec_context.width, vs.codec_context.height, 0
            first = self._first_frame(container, vs)
            if first is not None:
                if not width or not height:
                    width, height = first.width, first.height
                orientation = frame_orientation(first)
                width, height = orientation.display_size(width, height)
                rotation = rotation_degrees(orientation)
            return VideoInfo(
                fps=fps,
                num_frames=int(vs.frames) if vs.frames else int(round(duration * fps)),
                duration=max(duration, 0.0),
                width=width or 0,
                height=height or 0,
                has_audio=bool(container.streams.audio),
                rotation=rotation,
            )

    def frame_at(self, video: Video, time: float | None = None) -> np.ndarray:
        """The upright RGB frame at ``time`` seconds (the middle when None), by seeking: decodes forward from the
        keyframe before ``time`` to the first frame at or after it (the last frame when ``time`` is past the end)."""
        with self._open(video) as container:
            if not container.streams.video:
                raise ItemError(video.id, "decode", f"{video.path}: has no video stream")
            stream = container.streams.video[0]
            tb = stream.time_base
            start = float(stream.start_time * tb) if stream.start_time is not None and tb else 0.0
            duration = float(stream.duration * tb) if stream.duration and tb else (container.duration or 0) / 1e6
            if time is None:
                time = duration / 2
            if duration > 0:
                time = min(max(time, 0.0), duration)
            target = start + time
            best = None
            if tb and target > 0:
                try:
                    container.seek(int(target / tb), stream=stream, backward=True)
                except Exception:  # noqa: BLE001 - unseekable: decode from the start
                    pass
            for n, frame in enumerate(container.decode(stream)):
                best = frame
                if frame.time is None or frame.time + 1e-3 >= target or n > _SEEK_DECODE_LIMIT:
                    break
            if best is None:  # a seek past the last keyframe: decode from the start
                container.seek(0, stream=stream)
                for best in container.decode(stream):  # noqa: B007 - keeps the last frame
                    pass
            if best is None:
                raise ItemError(video.id, "decode", f"{video.path}: no video frames")
            return _Converter(None, frame_orientation(best))(best)

    def read(self, video: Video, consumers: list[tuple[Needs, Sink]]) -> None:
        import av

        global DECODE_PASSES
        DECODE_PASSES += 1
        by_need: dict[FrameNeed, list[Sink]] = {}
        for n, s in consumers:
            if n.frames is not None:
                by_need.setdefault(n.frames, []).append(s)
        frame_fans = [_FrameFan(need, sinks) for need, sinks in by_need.items()]
        audio_fans = [_AudioFan(n.audio, s) for n, s in consumers if n.audio is not None]
        container, reused = self._read_open(video)
        with container:
            if not container.streams.video:
                raise ItemError(video.id, "decode", f"{video.path}: has no video stream")
            vs = container.streams.video[0]
            if not reused:
                self._threading(vs)
            streams = [vs] if frame_fans else []
            resamplers: dict[int, Any] = {}
            ast = container.streams.audio[0] if (audio_fans and container.streams.audio) else None
            if ast is not None:
                streams.append(ast)
                for rate in {f.need.sample_rate for f in audio_fans}:
                    resamplers[rate] = av.AudioResampler(format="flt", layout="mono", rate=rate)
            if not streams:
                return
            fallback_rate = float(vs.average_rate or 25)
            # One converter per distinct output size, made when the first frame shows the orientation.
            converters: dict[tuple[int, int] | None, _Converter] = {}

            def convert(frame: Any, index: int, t: float, fans: list[_FrameFan]) -> None:
                if not converters:
                    orientation = frame_orientation(frame)
                    converters.update({size: _Converter(size, orientation) for size in {f.need.size for f in frame_fans}})
                converted: dict[tuple[int, int] | None, np.ndarray] = {}
                for fan in fans:
                    if not fan.need.pixels:
                        fan.add(_NO_PIXELS, index, t)
                        continue
                    size = fan.need.size
                    img = converted.get(size)
                    if img is None:
                        img = converted[size] = converters[size](frame)
                    fan.add(img, index, t)

            # Pictures larger than _ConvertThread.SMALL are converted on a thread of their own (and from then on
            # the audio is handed over there too, to keep the order); smaller ones cost less to convert here
            # than to hand over.
            pipeline: _ConvertThread | None = None

            index = 0
            ends: dict[str, float] = {}
            try:
                for packet in container.demux(*streams):
                    for frame in packet.decode():
                        if packet.stream.type == "video":
                            t = float(frame.time) if frame.time is not None else index / fallback_rate
                            ends["video"] = max(ends.get("video", 0.0), t + 1.0 / fallback_rate)
                            wanted = [fan for fan in frame_fans if fan.wants(t)]
                            if wanted:
                                if (
                                    pipeline is None
                                    and frame.width * frame.height > _ConvertThread.SMALL
                                    and any(f.need.pixels for f in wanted)
                                ):
                                    pipeline = _ConvertThread()
                                if pipeline is None:
                                    convert(frame, index, t, wanted)
                                else:
                                    pipeline.put(convert, frame, index, t, wanted)
                            index += 1
                        else:
                            t = float(frame.time) if frame.time is not None else 0.0
                            if frame.sample_rate:
                                ends["audio"] = max(ends.get("audio", 0.0), t + frame.samples / frame.sample_rate)
                            for rate, res in resamplers.items():
                                for out in res.resample(frame):
                                    samples = out.to_ndarray().reshape(-1)
                                    for fan in audio_fans:
                                        if fan.need.sample_rate == rate:
                                            if pipeline is None:
                                                fan.add(samples, t)
                                            else:
                                                pipeline.put(fan.add, samples, t)
                if pipeline is not None:
                    pipeline.close()
            except av.error.FFmpegError as e:
                if index == 0:
                    raise ItemError(video.id, "decode", f"{video.path}: no frame could be decoded ({e})") from e
                raise ItemError(
                    video.id, "decode", f"{video.path}: decoding failed after frame {index} ({e}); the file may be truncated"
                ) from e
            finally:
                if pipeline is not None:
                    pipeline.abort()
            for rate, res in resamplers.items():
                for out in res.resample(None):
                    for fan in audio_fans:
                        if fan.need.sample_rate == rate:
                            fan.add(out.to_ndarray().reshape(-1), 0.0)
            if frame_fans and index == 0:
                raise ItemError(video.id, "decode", f"{video.path}: the video stream has no frames")
            if frame_fans:
                self._check_complete(video, container, vs, ends.get("video", 0.0), 2.0 / fallback_rate, f"{index} frames decoded")
            if ast is not None:
                self._check_complete(video, container, ast, ends.get("audio", 0.0), 0.1, "audio")
        for fan in frame_fans:
            fan.flush()
        for fan in audio_fans:
            fan.flush()


def stated_span(container: Any, stream: Any) -> tuple[float, float | None]:
    """``(start, duration)`` in seconds that the container states for ``stream`` (duration None when unknown)."""
    tb = stream.time_base
    start = float(stream.start_time * tb) if stream.start_time is not None and tb is not None else 0.0
    if stream.duration is not None and tb is not None:
        return start, float(stream.duration * tb)
    if container.duration is not None:
        c_start = container.start_time / 1_000_000 if container.start_time is not None else 0.0
        return start, container.duration / 1_000_000 - max(start - c_start, 0.0)
    return start, None


@hookimpl
def register_components(register):
    register(PyAVReader)
