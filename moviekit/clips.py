"""Shots to clips, and clips to sequences (MMX-Trailer-20 §4.2; reused for scenes of shots)."""

from __future__ import annotations

from .records import Clip, Sequence, Shot


def make_clips(shots: list[Shot], fps: float, trim_start: int = 1, trim_end: int = 1, min_frames: int = 1) -> list[Clip]:
    """Each shot minus ``trim_start``/``trim_end`` frames; shorter results are dropped.

    Clip times are the shot's times moved by the trimmed frames at ``fps``.
    """
    clips: list[Clip] = []
    for shot in shots:
        start = shot.start_frame + trim_start
        end = shot.end_frame - trim_end
        if end - start < min_frames:
            continue
        clips.append(
            Clip(
                video_id=shot.video_id,
                index=len(clips),
                shot_index=shot.index,
                start_frame=start,
                end_frame=end,
                start_time=shot.start_time + trim_start / fps,
                end_time=max(shot.start_time + trim_start / fps, shot.end_time - trim_end / fps),
            )
        )
    return clips


def make_sequences(clips: list[Clip], length: int) -> list[Sequence]:
    """Consecutive, non-overlapping runs of ``length`` clips; a trailing remainder is dropped."""
    if not clips:
        return []
    vid = clips[0].video_id
    return [
        Sequence(video_id=vid, index=i, clip_indices=[c.index for c in clips[i * length : (i + 1) * length]])
        for i in range(len(clips) // length)
    ]


def group_windows(n: int, size: int, stride: int | None = None) -> list[tuple[int, int]]:
    """``[start, end)`` windows of ``size`` over ``n`` elements (scenes of shots, sliding windows)."""
    stride = stride or size
    return [(s, s + size) for s in range(0, max(n - size, -1) + 1, stride)] if n >= size else []
