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
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import numpy as np
from pydantic import Field, field_validator

from moviekit.components import Config, FrameNeed, Needs, Reader, Segmenter, Sink
from moviekit.hookspecs import hookimpl
from moviekit.records import FrameBatch, Shot, Video, VideoInfo

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

    threshold: float = Field(
        27.0, ge=0.0, le=255.0, description="frame score (content_val, 0-255) at or above which a cut is made; lower is more sensitive"
    )
    weights: Weights = Field(
        (1.0, 1.0, 1.0, 0.0),
        description="weights of (delta_hue, delta_sat, delta_lum, delta_edges) in the frame score (CLI -w)",
    )
    luma_only: bool = Field(False, description="use only the brightness channel; same as weights (0, 0, 1, 0) and overrides them")
    kernel_size: int | None = Field(
        None, description="odd size >= 3 of the kernel that dilates edges; None sizes it from the (downscaled) resolution"
    )
    filter_mode: Literal["merge", "suppress"] = Field(
        "merge", description="how min_scene_len is enforced: merge cuts closer than it, or suppress cuts until it has passed"
    )

    _weights = field_validator("weights")(_check_weights)
    _kernel = field_validator("kernel_size")(_check_kernel)


class AdaptiveParams(Config):
    """``detect-adaptive``: content score compared with the rolling average of its neighbours."""

    adaptive_threshold: float = Field(
        3.0, ge=0.0, le=255.0, description="ratio of a frame's score to the average of its window at or above which a cut is made (CLI -t)"
    )
    window_width: int = Field(2, ge=1, description="frames before and after each frame averaged for the comparison (CLI --frame-window)")
    min_content_val: float = Field(15.0, ge=0.0, le=255.0, description="minimum content score a frame also needs to be a cut")
    weights: Weights = Field(
        (1.0, 1.0, 1.0, 0.0), description="weights of (delta_hue, delta_sat, delta_lum, delta_edges) in the content score"
    )
    luma_only: bool = Field(False, description="use only the brightness channel; overrides weights")
    kernel_size: int | None = Field(None, description="odd size >= 3 of the edge dilation kernel; None sizes it from the resolution")

    _weights = field_validator("weights")(_check_weights)
    _kernel = field_validator("kernel_size")(_check_kernel)


class ThresholdParams(Config):
    """``detect-threshold``: fades to and from black (or white) by average frame brightness."""

    threshold: float = Field(
        12.0, ge=0.0, le=255.0, description="average pixel value (0-255, truncated to an integer) below which a frame counts as faded out"
    )
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

    threshold: float = Field(
        0.20, ge=0.0, le=1.0, description="histogram difference (1 - correlation, 0-1) at or above which a cut is made"
    )
    bins: int = Field(128, ge=1, le=256, description="number of histogram bins")


class HashParams(Config):
    """``detect-hash``: Hamming distance between perceptual (DCT) hashes of adjacent frames."""

    threshold: float = Field(0.35, ge=0.0, le=1.0, description="normalised Hamming distance (0-1) at or above which a cut is made")
    size: int = Field(8, ge=1, le=256, description="side of the square of low-frequency DCT coefficients that forms the hash")
    lowpass: int = Field(
        2, ge=1, le=256, description="keep 1/lowpass of the frequencies: frames are resized to size*lowpass before the DCT"
    )


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
        detector: DetectorName = Field(
            "content", description="which PySceneDetect detector to run; its parameters are the sub-config of the same name"
        )
        min_scene_len: TimecodeLike = Field(
            "0.6s",
            description="minimum shot length: frames (15), seconds (0.6 or '0.6s') or 'HH:MM:SS.nnn' "
            "(CLI -m, default 0.6s; the Python API's detectors default to 15 frames)",
        )
        drop_short_scenes: bool = Field(
            False, description="drop shots shorter than min_scene_len instead of merging them into neighbours (CLI --drop-short-scenes)"
        )
        merge_last_scene: bool = Field(
            False, description="merge the last shot into the previous one if shorter than min_scene_len (CLI --merge-last-scene)"
        )
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

    def open(self, video: Video, info: VideoInfo) -> Sink:
        return _SceneDetectSink(self, video, info)


def hsv_deltas(hsv: np.ndarray, previous: np.ndarray | None) -> np.ndarray:
    """``(n, 3)`` mean absolute differences of hue, saturation and value between each of the ``n``
    HSV frames ``(n, H, W, 3)`` and the one before it (``previous`` for the first; a first frame
    without one gets zeros), as PySceneDetect's content detector computes them: integer sums of
    the absolute differences (exact in float64), divided by the number of pixels."""
    import cv2

    out = np.zeros((len(hsv), 3), np.float64)
    pixels = float(hsv.shape[1] * hsv.shape[2])
    for i in range(len(hsv)):
        before = previous if i == 0 else hsv[i - 1]
        if before is not None:
            out[i] = cv2.sumElems(cv2.absdiff(hsv[i], before))[:3]
    return out / pixels


def content_scores(deltas: np.ndarray, weights: Sequence[float]) -> np.ndarray:
    """The content scores of ``(n, 3)`` (hue, saturation, value) deltas with no edges: their weighted sum over
    the sum of absolute weights, added element-wise in PySceneDetect's order (so each is the same float)."""
    terms = [deltas[:, 0] * weights[0], deltas[:, 1] * weights[1], deltas[:, 2] * weights[2], 0.0 * weights[3]]
    total = terms[0]
    for t in terms[1:]:
        total = total + t
    return total / sum(abs(w) for w in weights)


def _frame_rate(info: VideoInfo) -> Fraction:
    from scenedetect.common import framerate_to_fraction

    fps = float(info.fps or 0.0)
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

    def extend(self, indices: list[int], times: list[float]) -> None:
        self.indices.extend(indices)
        self.times.extend(times)

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
    def __init__(self, segmenter: SceneDetectSegmenter, video: Video, info: VideoInfo):
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
        w, h = info.width, info.height
        self.factor: float | None = segmenter.downscale_factor(int(w), int(h)) if w and h else None
        self.frame_shape: tuple[int, ...] | None = None
        self.size_errors = 0
        self.cuts: list[int] = []
        self.last_index: int | None = None
        # batched content scores: the last analysed HSV frame, and the score handed to the detector
        self.previous_hsv: np.ndarray | None = None
        self.score = 0.0
        self.batched: bool | None = None  # decided at the first batch (a stats manager may be attached after open)
        self.skip_quiet = False

    def _batched(self) -> bool:
        """Whether the content score can be computed a batch at a time (content and adaptive
        detectors without edges or stats): HSV conversion in one call and the frame differences
        vectorised, then handed to the detector as its frame score, frame by frame."""
        from scenedetect.detectors import ContentDetector

        d = self.detector
        return isinstance(d, ContentDetector) and d._weights.delta_edges == 0.0 and d.stats_manager is None

    def _skips_quiet_frames(self) -> bool:
        """Whether the detector is PySceneDetect's plain content detector, whose call on a frame scoring below
        its threshold changes nothing (and returns no cut) while its flash filter is at rest (see :meth:`_at_rest`)."""
        from scenedetect.detectors import ContentDetector

        return type(self.detector).process_frame is ContentDetector.process_frame

    def _at_rest(self) -> bool:
        """The content detector's flash filter has seen a frame and is not merging: a frame below the threshold
        then only returns ``[]`` (in both filter modes, as in PySceneDetect 0.7's ``FlashFilter``), so it need
        not be handed over (its FrameTimecode arithmetic is most of the detector's time per frame)."""
        f = self.detector._flash_filter
        return f._is_disabled or (f._last_above is not None and not f._merge_triggered)

    def frames(self, batch: FrameBatch) -> None:
        cv2 = self._cv2
        if self.batched is None:
            self.batched = self._batched()
            if self.batched:
                self.detector._calculate_frame_score = lambda timecode, frame_img: self.score
                self.skip_quiet = self._skips_quiet_frames()
        n = len(batch.indices)
        if n == 0:
            return
        indices = batch.indices.tolist()
        self.timeline.extend(indices, batch.times.tolist())
        self.last_index = indices[-1]
        imgs = batch.frames  # (n, H, W, 3): one picture size per batch
        if self.frame_shape is None:
            self.frame_shape = imgs.shape[1:]
            if self.factor is None:
                self.factor = self.seg.downscale_factor(imgs.shape[2], imgs.shape[1])
        elif imgs.shape[1:] != self.frame_shape:
            # Like the CLI: a frame whose size differs from the first one is not analysed.
            for index in indices:
                self.size_errors += 1
                if self.size_errors <= 16:
                    logger.warning("%s: frame %d has size %s, expected %s; skipped", self.video_id, index, imgs.shape[1:], self.frame_shape)
            return
        if self.factor is not None and self.factor > 1.0:
            h, w = imgs.shape[1:3]
            size = (max(1, round(w / self.factor)), max(1, round(h / self.factor)))
            small = np.empty((n, size[1], size[0], imgs.shape[3]), np.uint8)
            for i in range(n):
                cv2.resize(imgs[i], size, dst=small[i], interpolation=self.interp)
            imgs = small
        if not self.batched:
            for index, img in zip(indices, imgs, strict=True):
                # Frames arrive as RGB; PySceneDetect expects BGR.  The per-channel resize above
                # commutes with the channel swap, so this equals resizing the CLI's BGR frame.
                self._process(index, cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
            return
        stack = np.ascontiguousarray(imgs)
        _, h, w = stack.shape[:3]
        # RGB -> HSV equals the CLI's BGR -> HSV of the same pixels; one call for the batch
        hsv = cv2.cvtColor(stack.reshape(n * h, w, 3), cv2.COLOR_RGB2HSV).reshape(stack.shape)
        deltas = hsv_deltas(hsv, self.previous_hsv)
        first = self.previous_hsv is None
        self.previous_hsv = hsv[-1].copy()
        scores = content_scores(deltas, tuple(self.detector._weights))
        if first:
            scores[0] = 0.0  # the first frame of a video has no score (PySceneDetect's 0.0)
        quiet = (scores < self.detector._threshold).tolist() if self.skip_quiet else [False] * n
        for index, score, below in zip(indices, scores.tolist(), quiet, strict=True):
            if below and self._at_rest():
                continue
            self.score = score
            self._process(index, None)

    def _process(self, index: int, bgr: np.ndarray | None) -> None:
        for cut in self.detector.process_frame(self._FrameTimecode(index, fps=self.rate), bgr):
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
        # Every frame (its index and timestamp) is needed, its pixels are not.
        return Needs(frames=FrameNeed(fps=None, size=None, batch=64, pixels=False))

    def open(self, video: Video, info: VideoInfo) -> Sink:
        return _FixedLengthSink(self.config.seconds, video, info)


class _FixedLengthSink(Sink):
    def __init__(self, seconds: float, video: Video, info: VideoInfo):
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
