"""Decoding with PyAV: one pass per video, fanned out to every consumer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from moviekit import hookimpl
from moviekit.components import AudioNeed, Config, FrameNeed, Needs, Reader, Sink
from moviekit.errors import ItemError
from moviekit.records import AudioChunk, FrameBatch, Video

#: Number of decode passes started, for tests that check one decode per video.
DECODE_PASSES = 0


class _FrameFan:
    """Collects sampled, resized frames for one consumer and flushes full batches."""

    def __init__(self, need: FrameNeed, sink: Sink):
        self.need = need
        self.sink = sink
        self.next_time = -np.inf
        self.frames: list[np.ndarray] = []
        self.indices: list[int] = []
        self.times: list[float] = []

    def wants(self, t: float) -> bool:
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
        self.frames.append(img)
        self.indices.append(index)
        self.times.append(t)
        if len(self.frames) >= self.need.batch:
            self.flush()

    def flush(self) -> None:
        if self.frames:
            self.sink.frames(
                FrameBatch(frames=np.stack(self.frames), indices=np.asarray(self.indices, np.int64), times=np.asarray(self.times, np.float64))
            )
            self.frames, self.indices, self.times = [], [], []


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


class PyAVReader(Reader):
    """Decodes video and audio with PyAV (bundled FFmpeg) in a single streaming pass.

    Frames carry exact presentation timestamps; each consumer gets frames at
    its own rate and size, and audio resampled to mono float32 at its rate.
    """

    name = "pyav"

    class Config(Config):
        threads: int = Field(0, ge=0, description="decoder threads; 0 lets FFmpeg choose")

    @staticmethod
    def _open(video: Video) -> Any:
        import av

        path = Path(str(video.path))
        try:
            return av.open(str(path))
        except (av.error.FFmpegError, OSError, UnicodeDecodeError) as e:
            raise ItemError(video.id, "decode", f"{path}: cannot open as a video ({type(e).__name__}: {e})") from e

    def probe(self, video: Video) -> dict[str, Any]:
        with self._open(video) as container:
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
            return {
                "fps": fps,
                "num_frames": int(vs.frames) if vs.frames else int(round(duration * fps)),
                "duration": duration,
                "width": vs.codec_context.width,
                "height": vs.codec_context.height,
                "has_audio": bool(container.streams.audio),
            }

    def read(self, video: Video, consumers: list[tuple[Needs, Sink]]) -> None:
        import av

        global DECODE_PASSES
        DECODE_PASSES += 1
        frame_fans = [_FrameFan(n.frames, s) for n, s in consumers if n.frames is not None]
        audio_fans = [_AudioFan(n.audio, s) for n, s in consumers if n.audio is not None]
        with self._open(video) as container:
            if not container.streams.video:
                raise ItemError(video.id, "decode", f"{video.path}: has no video stream")
            vs = container.streams.video[0]
            vs.thread_type = "AUTO"
            if self.config.threads:
                vs.codec_context.thread_count = self.config.threads
            streams = [vs] if frame_fans else []
            resamplers: dict[int, Any] = {}
            ast = container.streams.audio[0] if (audio_fans and container.streams.audio) else None
            if ast is not None:
                streams.append(ast)
                for rate in {f.need.sample_rate for f in audio_fans}:
                    resamplers[rate] = av.AudioResampler(format="flt", layout="mono", rate=rate)
            if not streams:
                return
            index = 0
            try:
                for packet in container.demux(*streams):
                    for frame in packet.decode():
                        if packet.stream.type == "video":
                            t = float(frame.time) if frame.time is not None else index / float(vs.average_rate or 25)
                            wanted = [f for f in frame_fans if f.wants(t)]
                            converted: dict[Any, np.ndarray] = {}
                            for fan in wanted:
                                size = fan.need.size
                                if size not in converted:
                                    if size is None:
                                        converted[size] = frame.to_ndarray(format="rgb24")
                                    else:
                                        converted[size] = frame.reformat(width=size[0], height=size[1], format="rgb24").to_ndarray()
                                fan.add(converted[size], index, t)
                            index += 1
                        else:
                            t = float(frame.time) if frame.time is not None else 0.0
                            for rate, res in resamplers.items():
                                for out in res.resample(frame):
                                    samples = out.to_ndarray().reshape(-1)
                                    for fan in audio_fans:
                                        if fan.need.sample_rate == rate:
                                            fan.add(samples, t)
            except av.error.FFmpegError as e:
                if index == 0:
                    raise ItemError(video.id, "decode", f"{video.path}: no frame could be decoded ({e})") from e
                raise ItemError(video.id, "decode", f"{video.path}: decoding failed after frame {index} ({e}); the file may be truncated") from e
            for rate, res in resamplers.items():
                for out in res.resample(None):
                    for fan in audio_fans:
                        if fan.need.sample_rate == rate:
                            fan.add(out.to_ndarray().reshape(-1), 0.0)
            if frame_fans and index == 0:
                raise ItemError(video.id, "decode", f"{video.path}: the video stream has no frames")
        for fan in frame_fans:
            fan.flush()
        for fan in audio_fans:
            fan.flush()


@hookimpl
def register_components(register):
    register(PyAVReader)
