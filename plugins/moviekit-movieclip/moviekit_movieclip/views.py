"""Spatial augmentation and test-time views of the scene classifier: torch ops on the stored frame clips
(training crops, ThreeCrop boxes, crop-and-resize, evenly spaced temporal views)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from moviekit import (
    MoviekitError,
)

# -- spatial augmentation and test-time views (torch ops on the stored frames) -----------------

#: A crop window ``(top, left, height, width)`` in pixels of the stored frame.
Box = tuple[int, int, int, int]


def _uniform(gen: Any, low: float, high: float) -> float:
    import torch

    return low + (high - low) * float(torch.rand(1, generator=gen))


def _randint(gen: Any, n: int) -> int:
    import torch

    return int(torch.randint(n, (1,), generator=gen))


def train_crop_box(
    h: int,
    w: int,
    mode: str,
    gen: Any,
    scales: Sequence[float] = (1.0, 0.8),
    area: tuple[float, float] = (0.08, 1.0),
    rescale: tuple[int, int] = (256, 320),
    crop: int = 224,
) -> Box:
    """A random training crop of an ``h`` x ``w`` frame (the whole frame for ``none``).

    * ``multiscale`` (I3D, mmaction2's MultiScaleCrop): height and width are each a scale of
      ``scales`` times the shorter side (at most one step apart in the list), placed at one of
      five fixed positions (the four corners and the centre);
    * ``random_resized`` (RandomResizedCrop): a window of ``area`` fraction of the frame and aspect
      ratio in [3/4, 4/3] (log-uniform), anywhere; the whole frame after 10 failed draws;
    * ``rescale_crop`` (TimeSformer, RandomRescale(256, 320) + RandomCrop(224)): a square of
      ``crop / r`` times the shorter side, ``r`` uniform in ``rescale``, anywhere.

    The window is then resized to the model's input size by :func:`crop_resize`.
    """
    if mode == "multiscale":
        base = min(h, w)
        sizes = [max(1, int(base * sc)) for sc in scales]
        pairs = [(i, j) for i in range(len(sizes)) for j in range(len(sizes)) if abs(i - j) <= 1]
        i, j = pairs[_randint(gen, len(pairs))]
        ch, cw = min(sizes[i], h), min(sizes[j], w)
        dy, dx = h - ch, w - cw
        y, x = [(0, 0), (0, dx), (dy, 0), (dy, dx), (dy // 2, dx // 2)][_randint(gen, 5)]
        return y, x, ch, cw
    if mode == "random_resized":
        for _ in range(10):
            target = h * w * _uniform(gen, *area)
            ratio = math.exp(_uniform(gen, math.log(3 / 4), math.log(4 / 3)))
            cw, ch = int(round(math.sqrt(target * ratio))), int(round(math.sqrt(target / ratio)))
            if 0 < cw <= w and 0 < ch <= h:
                return _randint(gen, h - ch + 1), _randint(gen, w - cw + 1), ch, cw
        return 0, 0, h, w
    if mode == "rescale_crop":
        side = min(h, w, max(1, int(round(min(h, w) * crop / _uniform(gen, *rescale)))))
        return _randint(gen, h - side + 1), _randint(gen, w - side + 1), side, side
    if mode == "none":
        return 0, 0, h, w
    raise MoviekitError(f"unknown training crop {mode!r}; choose multiscale, random_resized, rescale_crop or none")


def three_crop_boxes(h: int, w: int, n_crops: int = 3, aspect: float | None = None) -> list[Box]:
    """Test-time crops of an ``h`` x ``w`` frame: mmaction2's ThreeCrop (``n_crops`` 3) or its centre crop (1).

    ThreeCrop takes squares of the original frame's shorter side at the start, centre and end of
    its longer side.  ``aspect`` is the original frame's width / height; the stored frame may be
    squashed (``movieclip_frames`` stores squares), so a square of the original is the window of
    the stored frame's full height and ``w / aspect`` of its width (landscape), or full width and
    ``h * aspect`` of its height (portrait).  Unset ``aspect``: ``w / h`` (frames not squashed).
    """
    a = aspect if aspect is not None else w / h
    ch, cw = (h, max(1, min(w, int(round(w / a))))) if a >= 1 else (max(1, min(h, int(round(h * a)))), w)
    along_width = cw < w or ch == h
    span = (w - cw) if along_width else (h - ch)
    offsets = [span // 2] if n_crops == 1 else [0, span // 2, span]
    return [(0, o, ch, cw) if along_width else (o, 0, ch, cw) for o in offsets]


def crop_resize(x: Any, box: Box, size: int) -> Any:
    """The ``box`` window of float frames ``x`` (``(..., C, H, W)``) bilinearly resized to ``size`` x ``size``."""
    import torch.nn.functional as F

    y0, x0, ch, cw = box
    win = x[..., y0 : y0 + ch, x0 : x0 + cw]
    if (ch, cw) == (size, size):
        return win
    lead = win.shape[:-3]
    out = F.interpolate(win.reshape(-1, *win.shape[-3:]), size=(size, size), mode="bilinear", align_corners=False)
    return out.reshape(*lead, *out.shape[-3:])


def view_starts(n_frames: int, clip_len: int, n_clips: int) -> list[int]:
    """First frames of the temporal views to score: the stored views are ``clip_len`` frames each; ``n_clips``
    of them, evenly spaced (all when fewer are stored)."""
    stored = max(1, n_frames // clip_len)
    if n_clips >= stored:
        return [v * clip_len for v in range(stored)]
    return [int((j + 0.5) * stored / n_clips) * clip_len for j in range(n_clips)]
