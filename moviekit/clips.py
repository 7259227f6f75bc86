"""Shots to clips (MMX-Trailer-20 §4.2).  Groups of clips (sequences), of shots (scenes) and of
time (events) are :mod:`moviekit.groups`."""

from __future__ import annotations

from .records import Clip, Shot


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
