"""The ``reference`` preset: the authors' tagging script's prompt, every frame of a shot scored."""

from __future__ import annotations

import numpy as np
import pytest

from moviekit import Shot, Track
from moviekit_movieclip import scoring
from moviekit_movieclip.labeler import MovieclipClip
from moviekit_movieclip.scoring import check_template, make_prompts


def test_reference_prompt_is_the_tagging_scripts_wording():
    assert check_template("reference") == "a photo of a {}, a type of background location" == scoring.REFERENCE_TEMPLATE
    assert make_prompts(["war room", "kitchen"], "reference") == [
        "a photo of a war room, a type of background location",
        "a photo of a kitchen, a type of background location",
    ]
    # The paper's wording stays the default.
    assert MovieclipClip.Config().templates == ["A photo of {}, a type of background location"]
    assert MovieclipClip.Config(templates=["reference"]).templates == [scoring.REFERENCE_TEMPLATE]


def test_fps_null_scores_every_frame_of_the_shot():
    lab = MovieclipClip(templates=["reference"], fps=None, labels=["kitchen", "bar", "desert"])
    assert lab.needs().frames.fps is None  # every decoded frame is handed to the labeler
    times = np.arange(10) / 10.0  # 10 frames at 10 fps
    values = np.zeros((10, 3), np.float32)
    values[np.arange(10), np.arange(10) % 3] = 1.0
    track = Track(times=times, values=values)
    shot = Shot(video_id="v", index=0, start_frame=2, end_frame=7, start_time=0.2, end_time=0.7)
    # frames 2..6: labels 2, 0, 1, 2, 0 -> means 2/5, 1/5, 2/5
    np.testing.assert_allclose(lab.shot_scores(track, shot), [0.4, 0.2, 0.4])
    empty = Shot(video_id="v", index=1, start_frame=20, end_frame=21, start_time=2.0, end_time=2.1)
    assert lab.shot_scores(track, empty) is None
    with pytest.raises(ValueError):
        MovieclipClip.Config(fps=0)
