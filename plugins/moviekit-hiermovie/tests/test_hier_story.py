import numpy as np

from moviekit_hiermovie.story import (
    AMBIGUOUS_VERBS,
    COLOURS,
    MOTIONS,
    OWN_VERBS,
    RELATIONS,
    THEMES,
    VERB_MOTION,
    VERBS,
    ClipSpec,
    EventSpec,
    draw_clip,
    reflect,
    render_events,
)  # fmt: skip


def test_vocabulary_and_ambiguity():
    assert len(VERBS) == len(set(VERBS)) == 30 and len(MOTIONS) == len(set(MOTIONS)) == 21
    for motion, per_theme in AMBIGUOUS_VERBS.items():
        assert set(per_theme) == set(THEMES) and len(set(per_theme.values())) == 4
        assert all(VERB_MOTION[v] == motion for v in per_theme.values())
    own = [m for t in THEMES for m in OWN_VERBS[t]]
    assert len(own) == len(set(own)) == 16  # an own motion names one verb in one theme


def test_clips_follow_the_story_rules():
    for i in range(200):
        spec = draw_clip([3, i], f"c{i}")
        own = set(OWN_VERBS[spec.theme].values())
        assert any(e.verb in own for e in spec.events)  # the theme shows
        for k, e in enumerate(spec.events):
            assert len(e.verbs) == len(e.relations) == len(e.args) == 3
            if e.context_dependent:
                assert e.verb == AMBIGUOUS_VERBS[e.motion][spec.theme]
            if k == 2:
                assert e.relation is None and e.verb not in ("stand", "wander")
            elif e.verb in ("stand", "wander"):
                assert e.relation == "NoRel" and "Arg1" not in e.args[0]
            else:
                assert e.relation == RELATIONS[spec.theme][k if k < 2 else k - 1]


def _centroid(frames, colour):
    m = np.all(np.abs(frames[0].astype(int) - np.array(colour)) < 40, axis=-1)
    ys, xs = np.nonzero(m)
    return xs.mean(), ys.mean()


def test_rendered_motion_goes_where_it_says():
    params = {"a0": [0.5, 0.5], "p0": [0.8, 0.2], "speed": 1.0, "size": 1.0}
    for motion, axis, sign in (("move_right", 0, 1), ("move_left", 0, -1), ("move_down", 1, 1), ("move_up", 1, -1)):
        clip = ClipSpec(
            "x",
            "work",
            "snow",
            ("red", "square"),
            ("blue", "disk"),
            [EventSpec(verb=motion, motion=motion, context_dependent=False, params=params)],
        )
        f = render_events(clip, 8, 32, 32)
        assert f.shape == (8, 32, 32, 3) and f.dtype == np.uint8
        start, end = _centroid(f[:1], COLOURS["red"]), _centroid(f[-1:], COLOURS["red"])
        assert sign * (end[axis] - start[axis]) > 5, motion


def test_reflect_folds_into_the_frame():
    x = np.array([0.5, 0.95, 1.0, 0.0, -0.3, 2.5])
    y = reflect(x)
    assert np.all((y >= 0.08) & (y <= 0.92))
    assert y[0] == 0.5 and abs(y[1] - 0.89) < 1e-9
