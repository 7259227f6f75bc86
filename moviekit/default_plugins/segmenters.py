"""Shot segmenters: PySceneDetect's detectors run on the shared decode, and a fixed-length baseline.

``scenedetect`` feeds every decoded frame to one of PySceneDetect 0.7's detectors as the
frame arrives, so no second decode of the video is needed.  It reproduces what the
``scenedetect`` command line does with the same settings:

* the CLI decodes with its OpenCV backend, whose BGR frames are pixel-identical to PyAV's
  ``rgb24`` frames with the channels reversed (both use FFmpeg's decoder and swscale; the
  tests check the per-frame scores against the CLI's stats file);
* the CLI downscales every frame before detection; by default by ``max(width, height) / 256``
  when that side is at least 256 pixels (``cv2.resize`` with linear interpolation),
  or by an integer factor given with ``-d N``;
* ``-m/--min-scene-len`` (default ``0.6s``) is turned into a frame count at the video's frame
  rate and handed to the detector, and ``detect-threshold`` always adds the last scene when the
  video ends faded out, with a ``0.1s`` minimum fade;
* scenes run from the first frame to one past the last frame read; a video with no cut is one
  scene (the CLI's ``start_in_scene=True``).

The config defaults follow the CLI, so ``{use: scenedetect}`` gives the same boundaries as
``scenedetect -i FILE detect-content list-scenes``; where the Python API of PySceneDetect
has another default the field's description says so.

Frame numbers are the reader's decode-order indices, while the CLI derives them from
timestamps (``round(t * fps)``); the two agree for constant-frame-rate video, not always for
variable-rate video.  Both apply rotation metadata (the reader rotates frames upright as OpenCV does).
"""

from __future__ import annotations

import logging
import math
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import numpy as np
import typer  # for `moviekit segment`: annotations are evaluated in this module's namespace
from pydantic import Field, field_validator

from moviekit.hookspecs import hookimpl
from moviekit.components import Config, FrameNeed, Needs, Reader, Segmenter, Sink
from moviekit.records import FrameBatch, Shot, Video

if TYPE_CHECKING:  # pragma: no cover
    from scenedetect.detector import SceneDetector

logger = logging.getLogger(__name__)

#: A length of time as PySceneDetect reads one: an int is frames, a float seconds, a string
#: frames (``"15"``), seconds (``"0.6s"``, ``"0.6"``) or a timecode (``"00:00:00.600"``).
TimecodeLike = int | float | str

#: PySceneDetect's minimum processing width for automatic downscaling.
AUTO_DOWNSCALE_WIDTH = 256


def _check_timecode(value: Any) -> Any:
    """Reject lengths PySceneDetect could not parse, at config time rather than per video."""
    from scenedetect.common import FrameTimecode

    if isinstance(value, bool):
        raise ValueError("expected frames (int), seconds (float) or a timecode string, got a bool")
    try:
        FrameTimecode(timecode=value, fps=24.0)
    except (ValueError, TypeError) as e:
        raise ValueError(f"{value!r} is not a valid length: use frames (15), seconds (0.6 or '0.6s') or 'HH:MM:SS[.nnn]' ({e})") from None
    return value


def to_frames(value: TimecodeLike, fps: Fraction | float) -> int:
    """A length given as frames, seconds or timecode, in frames at ``fps`` (as the CLI rounds it)."""
    from scenedetect.common import FrameTimecode, framerate_to_fraction

    rate = fps if isinstance(fps, Fraction) else framerate_to_fraction(float(fps))
    return FrameTimecode(timecode=value, fps=rate).frame_num


Weights = tuple[float, float, float, float]


def _check_weights(w: Weights) -> Weights:
    if sum(abs(x) for x in w) <= 0:
        raise ValueError("at least one weight must be non-zero")
    return w


def _check_kernel(k: int | None) -> int | None:
    if k is not None and (k < 3 or k % 2 == 0):
        raise ValueError("kernel_size must be an odd integer >= 3, or None to size it from the resolution")
    return k


class ContentParams(Config):
    """``detect-content``: HSV (and optionally edge) difference between adjacent frames."""

    threshold: float = Field(27.0, ge=0.0, le=255.0, description="frame score (content_val, 0-255) at or above which a cut is made; lower is more sensitive")
    weights: Weights = Field(
        (1.0, 1.0, 1.0, 0.0),
        description="weights of (delta_hue, delta_sat, delta_lum, delta_edges) in the frame score (CLI -w)",
    )
    luma_only: bool = Field(False, description="use only the brightness channel; same as weights (0, 0, 1, 0) and overrides them")
    kernel_size: int | None = Field(None, description="odd size >= 3 of the kernel that dilates edges; None sizes it from the (downscaled) resolution")
    filter_mode: Literal["merge", "suppress"] = Field(
        "merge", description="how min_scene_len is enforced: merge cuts closer than it, or suppress cuts until it has passed"
    )

    _weights = field_validator("weights")(_check_weights)
    _kernel = field_validator("kernel_size")(_check_kernel)


class AdaptiveParams(Config):
    """``detect-adaptive``: content score compared with the rolling average of its neighbours."""

    adaptive_threshold: float = Field(3.0, ge=0.0, le=255.0, description="ratio of a frame's score to the average of its window at or above which a cut is made (CLI -t)")
    window_width: int = Field(2, ge=1, description="frames before and after each frame averaged for the comparison (CLI --frame-window)")
    min_content_val: float = Field(15.0, ge=0.0, le=255.0, description="minimum content score a frame also needs to be a cut")
    weights: Weights = Field((1.0, 1.0, 1.0, 0.0), description="weights of (delta_hue, delta_sat, delta_lum, delta_edges) in the content score")
    luma_only: bool = Field(False, description="use only the brightness channel; overrides weights")
    kernel_size: int | None = Field(None, description="odd size >= 3 of the edge dilation kernel; None sizes it from the resolution")

    _weights = field_validator("weights")(_check_weights)
    _kernel = field_validator("kernel_size")(_check_kernel)


class ThresholdParams(Config):
    """``detect-threshold``: fades to and from black (or white) by average frame brightness."""

    threshold: float = Field(12.0, ge=0.0, le=255.0, description="average pixel value (0-255, truncated to an integer) below which a frame counts as faded out")
    fade_bias: float = Field(
        0.0,
        ge=-1.0,
        le=1.0,
        description="where the cut goes between fade-out and fade-in: -1 at the fade-out, 0 in the middle, +1 at the fade-in "
        "(the CLI's --fade-bias is documented in percent but passed through unscaled)",
    )
    add_final_scene: bool = Field(
        True, description="when the video ends faded out, cut at the fade-out (the CLI always does; the Python API defaults to False)"
    )
    min_out_length: TimecodeLike = Field(
        "0.1s", description="minimum time faded out before a cut is made: frames, seconds or timecode (CLI default 0.1s; Python API 0)"
    )
    method: Literal["floor", "ceiling"] = Field("floor", description="floor: faded out means darker than threshold; ceiling: brighter")

    _length = field_validator("min_out_length", mode="before")(_check_timecode)


class HistogramParams(Config):
    """``detect-hist``: correlation of luma (Y) histograms of adjacent frames."""

    threshold: float = Field(0.20, ge=0.0, le=1.0, description="histogram difference (1 - correlation, 0-1) at or above which a cut is made")
    bins: int = Field(128, ge=1, le=256, description="number of histogram bins")


class HashParams(Config):
    """``detect-hash``: Hamming distance between perceptual (DCT) hashes of adjacent frames."""

    threshold: float = Field(0.35, ge=0.0, le=1.0, description="normalised Hamming distance (0-1) at or above which a cut is made")
    size: int = Field(8, ge=1, le=256, description="side of the square of low-frequency DCT coefficients that forms the hash")
    lowpass: int = Field(2, ge=1, le=256, description="keep 1/lowpass of the frequencies: frames are resized to size*lowpass before the DCT")


DetectorName = Literal["content", "adaptive", "threshold", "histogram", "hash"]


class SceneDetectSegmenter(Segmenter):
    """Shot boundaries from PySceneDetect (content, adaptive, threshold, histogram or hash detector).

    Frames are streamed to the detector as they are decoded.  With the same settings the
    boundaries are the ones ``scenedetect -i FILE detect-<name> list-scenes`` writes: frames are
    downscaled like the CLI does (``downscale``), lengths are turned into frames at the video's
    rate like the CLI does, and the defaults are the CLI's.
    """

    name = "scenedetect"
    version = "1"

    class Config(Config):
        detector: DetectorName = Field("content", description="which PySceneDetect detector to run; its parameters are the sub-config of the same name")
        min_scene_len: TimecodeLike = Field(
            "0.6s",
            description="minimum shot length: frames (15), seconds (0.6 or '0.6s') or 'HH:MM:SS.nnn' "
            "(CLI -m, default 0.6s; the Python API's detectors default to 15 frames)",
        )
        drop_short_scenes: bool = Field(False, description="drop shots shorter than min_scene_len instead of merging them into neighbours (CLI --drop-short-scenes)")
        merge_last_scene: bool = Field(False, description="merge the last shot into the previous one if shorter than min_scene_len (CLI --merge-last-scene)")
        downscale: Literal["auto"] | Annotated[int, Field(ge=1)] = Field(
            "auto",
            description="'auto' (the CLI default) divides both sides by max(width, height)/256 when that side is >= 256 px; "
            "an integer N divides them by N (CLI -d N); 1 analyses frames at full size",
        )
        interpolation: Literal["nearest", "linear", "cubic", "area", "lanczos4"] = Field(
            "linear", description="OpenCV interpolation used to downscale (the CLI's downscale-method setting)"
        )
        content: ContentParams = Field(default_factory=ContentParams, description="parameters of the content detector")
        adaptive: AdaptiveParams = Field(default_factory=AdaptiveParams, description="parameters of the adaptive detector")
        threshold: ThresholdParams = Field(default_factory=ThresholdParams, description="parameters of the threshold (fade) detector")
        histogram: HistogramParams = Field(default_factory=HistogramParams, description="parameters of the histogram detector")
        hash: HashParams = Field(default_factory=HashParams, description="parameters of the perceptual hash detector")

        _length = field_validator("min_scene_len", mode="before")(_check_timecode)

    def needs(self) -> Needs:
        # Every frame at source size: downscaling must be PySceneDetect's own (cv2.resize) to
        # give the same frame scores as the CLI, not the reader's swscale.
        return Needs(frames=FrameNeed(fps=None, size=None, batch=8))

    def downscale_factor(self, width: int, height: int) -> float:
        """The factor frames of this size are divided by, as the CLI computes it."""
        d = self.config.downscale
        if d == "auto":
            side = max(width, height)
            return 1.0 if side < AUTO_DOWNSCALE_WIDTH else side / float(AUTO_DOWNSCALE_WIDTH)
        return float(d)

    def build_detector(self, fps: Fraction | float) -> SceneDetector:
        """The PySceneDetect detector for this config at a video's frame rate."""
        from scenedetect.detector import FlashFilter
        from scenedetect.detectors import AdaptiveDetector, ContentDetector, HashDetector, HistogramDetector, ThresholdDetector

        cfg = self.config
        msl = 0 if cfg.drop_short_scenes else to_frames(cfg.min_scene_len, fps)
        if cfg.detector == "content":
            p = cfg.content
            return ContentDetector(
                threshold=p.threshold,
                min_scene_len=msl,
                weights=ContentDetector.Components(*p.weights),
                luma_only=p.luma_only,
                kernel_size=p.kernel_size,
                filter_mode=FlashFilter.Mode[p.filter_mode.upper()],
            )
        if cfg.detector == "adaptive":
            a = cfg.adaptive
            return AdaptiveDetector(
                adaptive_threshold=a.adaptive_threshold,
                min_scene_len=msl,
                window_width=a.window_width,
                min_content_val=a.min_content_val,
                weights=ContentDetector.Components(*a.weights),
                luma_only=a.luma_only,
                kernel_size=a.kernel_size,
            )
        if cfg.detector == "threshold":
            t = cfg.threshold
            return ThresholdDetector(
                threshold=t.threshold,
                min_scene_len=msl,
                fade_bias=t.fade_bias,
                add_final_scene=t.add_final_scene,
                method=ThresholdDetector.Method[t.method.upper()],
                min_out_length=to_frames(t.min_out_length, fps),
            )
        if cfg.detector == "histogram":
            h = cfg.histogram
            return HistogramDetector(threshold=h.threshold, bins=h.bins, min_scene_len=msl)
        if cfg.detector == "hash":
            h = cfg.hash
            return HashDetector(threshold=h.threshold, size=h.size, lowpass=h.lowpass, min_scene_len=msl)
        raise ValueError(f"unknown detector {cfg.detector!r}")  # pragma: no cover - Literal guards it

    def open(self, video: Video, info: dict[str, Any]) -> Sink:
        return _SceneDetectSink(self, video, info)


def _frame_rate(info: dict[str, Any]) -> Fraction:
    from scenedetect.common import framerate_to_fraction

    fps = float(info.get("fps") or 0.0)
    return framerate_to_fraction(fps if fps > 0 else 25.0)


class _Timeline:
    """Indices and presentation times of every frame seen, for turning cuts into shots."""

    def __init__(self, fps: float):
        self.fps = fps
        self.indices: list[int] = []
        self.times: list[float] = []

    def add(self, index: int, t: float) -> None:
        self.indices.append(int(index))
        self.times.append(float(t))

    def __len__(self) -> int:
        return len(self.indices)

    def shots(self, video_id: str, bounds: list[tuple[int, int]]) -> list[Shot]:
        """Shots for ``[start, end)`` frame-number pairs; times are the frames' timestamps."""
        if not self.indices:
            return []
        idx = np.asarray(self.indices, dtype=np.int64)
        times = np.asarray(self.times, dtype=np.float64)
        stop = int(idx[-1]) + 1
        stop_time = float(times[-1]) + 1.0 / self.fps

        def time_of(frame: int) -> float:
            if frame >= stop:
                return stop_time
            pos = int(np.searchsorted(idx, frame, side="left"))
            return float(times[min(pos, len(times) - 1)])

        out = []
        for start, end in bounds:
            if end <= start:
                continue
            out.append(
                Shot(video_id=video_id, index=len(out), start_frame=start, end_frame=end, start_time=time_of(start), end_time=time_of(end))
            )
        return out


class _SceneDetectSink(Sink):
    def __init__(self, segmenter: SceneDetectSegmenter, video: Video, info: dict[str, Any]):
        import cv2
        from scenedetect.common import FrameTimecode

        self._FrameTimecode = FrameTimecode
        self._cv2 = cv2
        self.seg = segmenter
        self.cfg = segmenter.config
        self.video_id = video.id
        self.rate = _frame_rate(info)
        self.detector = segmenter.build_detector(self.rate)
        self.timeline = _Timeline(float(self.rate))
        self.interp = getattr(cv2, f"INTER_{self.cfg.interpolation.upper()}")
        w, h = info.get("width"), info.get("height")
        self.factor: float | None = segmenter.downscale_factor(int(w), int(h)) if w and h else None
        self.frame_shape: tuple[int, ...] | None = None
        self.size_errors = 0
        self.cuts: list[int] = []
        self.last_index: int | None = None

    def frames(self, batch: FrameBatch) -> None:
        cv2 = self._cv2
        for img, index, t in zip(batch.frames, batch.indices, batch.times, strict=True):
            index = int(index)
            self.timeline.add(index, float(t))
            self.last_index = index
            if self.frame_shape is None:
                self.frame_shape = img.shape
                if self.factor is None:
                    self.factor = self.seg.downscale_factor(img.shape[1], img.shape[0])
            elif img.shape != self.frame_shape:
                # Like the CLI: a frame whose size differs from the first one is not analysed.
                self.size_errors += 1
                if self.size_errors <= 16:
                    logger.warning("%s: frame %d has size %s, expected %s; skipped", self.video_id, index, img.shape, self.frame_shape)
                continue
            if self.factor is not None and self.factor > 1.0:
                h, w = img.shape[:2]
                size = (max(1, round(w / self.factor)), max(1, round(h / self.factor)))
                img = cv2.resize(img, size, interpolation=self.interp)
            # Frames arrive as RGB; PySceneDetect expects BGR.  The per-channel resize above
            # commutes with the channel swap, so this equals resizing the CLI's BGR frame.
            bgr = np.ascontiguousarray(img[:, :, ::-1])
            timecode = self._FrameTimecode(index, fps=self.rate)
            for cut in self.detector.process_frame(timecode, bgr):
                self.cuts.append(cut.frame_num)

    def close(self) -> list[Shot]:
        if self.last_index is None:
            return []
        for cut in self.detector.post_process(self._FrameTimecode(self.last_index, fps=self.rate)):
            self.cuts.append(cut.frame_num)
        first = self.timeline.indices[0]
        stop = self.last_index + 1
        cuts = sorted({c for c in self.cuts if first < c < stop})
        edges = [first, *cuts, stop]
        bounds = list(zip(edges[:-1], edges[1:]))
        cfg = self.cfg
        min_len = to_frames(cfg.min_scene_len, self.rate)
        if cfg.merge_last_scene and min_len > 0 and len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] < min_len:
            bounds = [*bounds[:-2], (bounds[-2][0], bounds[-1][1])]
        if cfg.drop_short_scenes and min_len > 0:
            bounds = [b for b in bounds if b[1] - b[0] >= min_len]
        return self.timeline.shots(self.video_id, bounds)


class FixedLengthSegmenter(Segmenter):
    """Cuts a video every ``seconds`` of presentation time: a content-blind baseline.

    Shot ``k`` holds the frames whose timestamps fall in ``[t0 + k*seconds, t0 + (k+1)*seconds)``,
    where ``t0`` is the first frame's timestamp; every frame is counted, so shots cover the video.
    """

    name = "fixed_length"
    version = "1"

    class Config(Config):
        seconds: float = Field(2.0, gt=0.0, description="length of each shot in seconds; the last shot holds what is left")

    def needs(self) -> Needs:
        # Every frame (its index and timestamp) is needed, its pixels are not: ask for tiny ones.
        return Needs(frames=FrameNeed(fps=None, size=(32, 32), batch=64))

    def open(self, video: Video, info: dict[str, Any]) -> Sink:
        return _FixedLengthSink(self.config.seconds, video, info)


class _FixedLengthSink(Sink):
    def __init__(self, seconds: float, video: Video, info: dict[str, Any]):
        self.seconds = seconds
        self.video_id = video.id
        self.timeline = _Timeline(float(_frame_rate(info)))
        self.t0: float | None = None
        self.segment = -1
        self.starts: list[int] = []

    def frames(self, batch: FrameBatch) -> None:
        for index, t in zip(batch.indices, batch.times, strict=True):
            index, t = int(index), float(t)
            self.timeline.add(index, t)
            if self.t0 is None:
                self.t0 = t
            k = math.floor((t - self.t0) / self.seconds + 1e-6)
            if k > self.segment:
                self.segment = k
                self.starts.append(index)

    def close(self) -> list[Shot]:
        if not self.starts:
            return []
        stop = self.timeline.indices[-1] + 1
        edges = [*self.starts, stop]
        return self.timeline.shots(self.video_id, list(zip(edges[:-1], edges[1:])))


def segment_file(path: str | Path, segmenter: Segmenter | str, reader: Reader | None = None, **config: Any) -> list[Shot]:
    """Shots of one video file: decode it once with the PyAV reader and run ``segmenter`` on it.

    ``segmenter`` is a component instance, or the name of a registered segmenter built with
    ``config`` (``segment_file(p, "scenedetect", detector="adaptive")``).
    """
    from moviekit.default_plugins.media import PyAVReader

    if isinstance(segmenter, str):
        local = {c.name: c for c in (SceneDetectSegmenter, FixedLengthSegmenter)}
        if segmenter in local:
            segmenter = local[segmenter](**config)
        else:
            from moviekit.plugins import get_registry

            segmenter = get_registry().create(segmenter, "segmenter", **config)
    elif config:
        raise TypeError("config fields are only accepted with a segmenter name")
    path = Path(path)
    video = Video(id=path.stem, path=path)
    reader = reader or PyAVReader()
    info = reader.probe(video)
    sink = segmenter.open(video, info)
    reader.read(video, [(segmenter.needs(), sink)])
    return sink.close()


@hookimpl
def register_components(register):
    register(SceneDetectSegmenter)
    register(FixedLengthSegmenter)


# -- `moviekit segment` ------------------------------------------------------------------

SHOT_FIELDS = ("video", "index", "start_frame", "end_frame", "start_time", "end_time")


def _config_model_at(model: type, loc: tuple[Any, ...]) -> type | None:
    """The pydantic model that owns the key at ``loc`` inside ``model`` (for allowed-key hints)."""
    from pydantic import BaseModel

    for part in loc[:-1]:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        ann = getattr(field, "annotation", None)
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return None
        model = ann
    return model


def build_segmenter_config(cls: type, overrides: list[str]) -> Any:
    """``--set key.path=value`` overrides (YAML-typed) validated against ``cls.Config``."""
    from pydantic import ValidationError

    from moviekit.errors import MoviekitError
    from moviekit.recipe import _pydantic_problems, format_loc, parse_override

    data: dict[str, Any] = {}
    for text in overrides:
        parts, value = parse_override(text)
        node: Any = data
        for i, p in enumerate(parts[:-1]):
            nxt = node.setdefault(p, {}) if isinstance(node, dict) else None
            if not isinstance(nxt, dict):
                raise MoviekitError(f"--set {text}: '{format_loc(parts[: i + 1])}' is not a group of settings")
            node = nxt
        node[parts[-1]] = value
    try:
        return cls.Config.model_validate(data)
    except ValidationError as e:
        problems = _pydantic_problems(e, (), lambda loc: _config_model_at(cls.Config, loc))
        lines = [f"--set: invalid settings for segmenter '{cls.name}' (see `moviekit show {cls.name}`)"]
        lines += [f"  {path or '<root>'}: {msg}" for path, msg in problems]
        raise MoviekitError("\n".join(lines)) from None


def shot_rows(video: str, shots: list[Shot]) -> list[dict[str, Any]]:
    return [
        {
            "video": video,
            "index": s.index,
            "start_frame": s.start_frame,
            "end_frame": s.end_frame,
            "start_time": round(s.start_time, 6),
            "end_time": round(s.end_time, 6),
        }
        for s in shots
    ]


def export_clips(path: str | Path, shots: list[Shot], out_dir: str | Path, codec: str = "libx264") -> list[Path]:
    """Re-encode each shot's frames ``[start_frame, end_frame)`` to ``out_dir/<stem>-shot-NNNN.mp4``.

    One more decode of the video: video frames are counted in decode order (as the reader
    numbers them); audio, when the file has some, is cut at the shots' start and end times.
    """
    import av

    path = Path(path)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    shots = sorted(shots, key=lambda s: s.start_frame)
    written: list[Path] = []
    if not shots:
        return written
    with av.open(str(path)) as src:
        vin = src.streams.video[0]
        vin.thread_type = "AUTO"
        rate = vin.average_rate or vin.guessed_rate or Fraction(25)
        ain = src.streams.audio[0] if src.streams.audio else None
        audio = _AudioCutter(str(path), ain) if ain is not None else None
        current: dict[str, Any] | None = None
        k = 0  # next shot to open

        def close(cur: dict[str, Any]) -> None:
            out = cur["out"]
            for p in cur["vs"].encode():
                out.mux(p)
            if audio is not None:
                audio.write(out, cur["as"], cur["shot"].start_time, cur["shot"].end_time)
            out.close()
            written.append(cur["path"])

        try:
            index = 0
            for frame in src.decode(vin):
                if current is not None and index >= current["shot"].end_frame:
                    close(current)
                    current = None
                while current is None and k < len(shots) and shots[k].end_frame <= index:
                    k += 1
                if current is None and k < len(shots) and shots[k].start_frame <= index:
                    shot = shots[k]
                    k += 1
                    dest = out_dir / f"{path.stem}-shot-{shot.index:04d}.mp4"
                    out = av.open(str(dest), "w")
                    vs = out.add_stream(codec, rate=rate)
                    vs.width, vs.height, vs.pix_fmt = frame.width, frame.height, "yuv420p"
                    as_ = None
                    if audio is not None:
                        as_ = out.add_stream("aac", rate=audio.rate, layout=audio.layout)
                    current = {"shot": shot, "out": out, "vs": vs, "as": as_, "path": dest, "n": 0}
                if current is not None:
                    img = frame.reformat(format="yuv420p")
                    img.pts = current["n"]
                    img.time_base = 1 / Fraction(rate)
                    current["n"] += 1
                    for p in current["vs"].encode(img):
                        current["out"].mux(p)
                index += 1
            if current is not None:
                close(current)
                current = None
        finally:
            if current is not None:
                current["out"].close()
            if audio is not None:
                audio.container.close()
    return written


class _AudioCutter:
    """Streams a file's first audio stream (own demuxer) and hands out samples by time range."""

    def __init__(self, path: str, stream: Any):
        import av

        self.container = av.open(path)
        ain = self.container.streams.audio[0]
        self.rate = ain.codec_context.sample_rate or stream.rate or 48000
        self.layout = "mono" if ain.codec_context.layout.nb_channels == 1 else "stereo"
        self.resampler = av.AudioResampler(format="fltp", layout=self.layout, rate=self.rate)
        self.frames = self._iter(ain)
        self.buf = np.zeros((1 if self.layout == "mono" else 2, 0), np.float32)
        self.buf_start = 0.0  # time of buf[:, 0]

    def _iter(self, ain: Any) -> Any:
        first = True
        for frame in self.container.decode(ain):
            t = float(frame.time) if frame.time is not None else None
            for out in self.resampler.resample(frame):
                if first:
                    self.buf_start = max(t or 0.0, 0.0)
                    first = False
                yield out.to_ndarray()
        for out in self.resampler.resample(None):
            yield out.to_ndarray()

    def take(self, start: float, end: float) -> np.ndarray:
        """Samples in ``[start, end)``; earlier ones are dropped for good."""
        need_end = int(round((end - self.buf_start) * self.rate))
        while self.buf.shape[1] < need_end:
            chunk = next(self.frames, None)
            if chunk is None:
                break
            self.buf = np.concatenate([self.buf, chunk.astype(np.float32)], axis=1)
        a = max(0, int(round((start - self.buf_start) * self.rate)))
        b = max(a, min(need_end, self.buf.shape[1]))
        out = self.buf[:, a:b]
        self.buf = self.buf[:, b:]
        self.buf_start += b / self.rate
        return out

    def write(self, out: Any, stream: Any, start: float, end: float) -> None:
        import av

        samples = self.take(start, end)
        step = stream.codec_context.frame_size or 1024
        for i in range(0, samples.shape[1], step):
            af = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples[:, i : i + step]), format="fltp", layout=self.layout)
            af.sample_rate = self.rate
            af.pts = i
            for p in stream.encode(af):
                out.mux(p)
        for p in stream.encode():
            out.mux(p)


SEGMENT_HELP = """Find the shots of one or more videos and write them as JSON or CSV.

Each video is decoded once.  Every shot has: video (the path as given), index, start_frame,
end_frame (exclusive), start_time and end_time (seconds).  JSON is
{"videos": {VIDEO: list of shots}, "errors": {VIDEO: reason}}; CSV has one row per shot with
a header line.  Settings of the segmenter are given with --set key=value (YAML-typed, nested
keys with dots, e.g. --set content.threshold=20; see `moviekit show NAME`).

--export-clips DIR re-encodes every shot to DIR/<stem>/<stem>-shot-NNNN.mp4 (H.264, with the
audio of its time range when the video has audio); this decodes the video a second time.

A video that cannot be read is reported on stderr and skipped; the others are still written
and the exit code is then 1.  Bad settings or an unknown segmenter exit with code 2.
"""


@hookimpl
def register_commands(cli):
    import csv
    import io
    import json
    import sys

    from moviekit.errors import MoviekitError

    @cli.command("segment", help=SEGMENT_HELP)
    def segment(
        videos: Annotated[list[Path], typer.Argument(help="video files")],
        segmenter: Annotated[str, typer.Option("--segmenter", "-s", help="segmenter component name")] = "scenedetect",
        set_: Annotated[list[str] | None, typer.Option("--set", help="segmenter setting key.path=value (YAML-typed)")] = None,
        fmt: Annotated[str, typer.Option("--format", "-f", help="json or csv")] = "json",
        out: Annotated[Path | None, typer.Option("--out", "-o", help="output file (default stdout)")] = None,
        export: Annotated[Path | None, typer.Option("--export-clips", help="write each shot to DIR/<stem>/<stem>-shot-NNNN.mp4")] = None,
    ) -> None:
        from rich.console import Console
        from rich.markup import escape

        from moviekit.plugins import get_registry

        fmt = fmt.lower()
        if fmt not in ("json", "csv"):
            raise MoviekitError(f"--format must be json or csv, not '{fmt}'")
        cls = get_registry().get(segmenter, "segmenter")
        config = build_segmenter_config(cls, set_ or [])
        seg = cls(config)
        err = Console(stderr=True)
        results: dict[str, list[dict[str, Any]]] = {}
        errors: dict[str, str] = {}
        for video in videos:
            key = str(video)
            try:
                if not video.is_file():
                    raise MoviekitError(f"{video}: no such file")
                shots = segment_file(video, seg)
            except MoviekitError as e:
                reason = e.message if hasattr(e, "message") else str(e)
                reason = reason.removeprefix(f"{video}: ")
                errors[key] = reason
                err.print(f"[bold red]error:[/] {escape(key)}: {escape(reason)}", highlight=False, soft_wrap=True)
                continue
            results[key] = shot_rows(key, shots)
            if export is not None:
                try:
                    export_clips(video, shots, export / video.stem)
                except Exception as e:  # noqa: BLE001 - reported per video
                    errors[key] = f"exporting clips failed: {type(e).__name__}: {e}"
                    err.print(f"[bold red]error:[/] {escape(key)}: {escape(errors[key])}", highlight=False, soft_wrap=True)
        if fmt == "json":
            text = json.dumps({"videos": results, "errors": errors}, indent=2) + "\n"
        else:
            buf = io.StringIO()
            w = csv.DictWriter(buf, fieldnames=SHOT_FIELDS, lineterminator="\n")
            w.writeheader()
            for rows in results.values():
                w.writerows(rows)
            text = buf.getvalue()
        if out is None:
            sys.stdout.write(text)
            sys.stdout.flush()
        else:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(text)
        if errors:
            raise typer.Exit(1)
