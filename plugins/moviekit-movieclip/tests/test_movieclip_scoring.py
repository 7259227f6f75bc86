"""Prompt templates, CLIPSceneScore, top-k and the multi-label thresholds on hand-made similarity matrices."""

from __future__ import annotations

import math

import numpy as np
import pytest

from moviekit_movieclip import scoring
from moviekit_movieclip.scoring import (
    aggregate_shot,
    assign_labels,
    check_template,
    clip_scene_scores,
    cosine_similarity,
    ensemble_text_embeddings,
    frame_probabilities,
    make_prompts,
    top_k,
)

LABELS = ["kitchen", "restaurant", "desert"]


def test_templates_are_the_papers():
    assert scoring.TEMPLATES == (
        "A photo of {}, a type of background location",
        "A photo of {}, a type of location",
        "People at {}, a type of background location",
        "People at {}, a type of location",
    )
    assert scoring.DEFAULT_TEMPLATE == "A photo of {}, a type of background location"
    assert make_prompts(["kitchen", "war room"]) == [
        "A photo of kitchen, a type of background location",
        "A photo of war room, a type of background location",
    ]
    assert make_prompts(["bar"], "people_location") == ["People at bar, a type of location"]
    assert (scoring.LOGIT_SCALE, scoring.TOP_K, scoring.TOP1_THRESHOLD, scoring.TOPK_THRESHOLD) == (100.0, 5, 0.4, 0.1)


@pytest.mark.parametrize("bad", ["a photo", "{} and {}", "a {0} photo {}", "photo of {label}"])
def test_bad_templates_are_refused(bad):
    with pytest.raises(ValueError, match="exactly one"):
        check_template(bad)


def test_frame_probabilities_by_hand():
    # logits 30, 29, 20 -> softmax [1, e^-1, e^-10] / (1 + e^-1 + e^-10)
    p = frame_probabilities(np.array([[0.30, 0.29, 0.20]]))
    np.testing.assert_allclose(p[0], [0.7310343156, 0.2689324955, 3.318890658e-05], rtol=1e-8)
    # at logit scale 1 the same similarities are nearly uniform
    q = frame_probabilities(np.array([[0.30, 0.29, 0.20]]), logit_scale=1.0)
    assert q[0].max() - q[0].min() < 0.05
    # a constant shift of a frame's similarities changes nothing; rows sum to 1
    np.testing.assert_allclose(frame_probabilities(np.array([[0.30, 0.29, 0.20]]) - 0.25), p, rtol=1e-12)
    np.testing.assert_allclose(frame_probabilities(np.random.default_rng(0).uniform(-1, 1, (7, 179))).sum(axis=1), 1.0)


def test_clip_scene_score_is_the_mean_of_per_frame_softmaxes():
    ln2 = math.log(2) / 100
    sims = np.array(
        [
            [0.3, 0.3, 0.3],  # -> 1/3, 1/3, 1/3
            [0.2 + ln2, 0.2, 0.2],  # -> 1/2, 1/4, 1/4
        ]
    )
    s = clip_scene_scores(sims)
    np.testing.assert_allclose(s, [5 / 12, 7 / 24, 7 / 24], rtol=1e-9)
    assert s.sum() == pytest.approx(1.0)
    # averaging probabilities, not similarities: [0.05, 0] and [0, 0] give (0.99331 + 0.5) / 2, not softmax(2.5)
    s2 = clip_scene_scores(np.array([[0.05, 0.0], [0.0, 0.0]]))
    assert s2[0] == pytest.approx(0.7466535745, rel=1e-8)
    assert abs(s2[0] - 0.9241418200) > 0.1
    assert aggregate_shot(np.zeros((0, 3))).tolist() == [0.0, 0.0, 0.0]


def test_cosine_similarity_normalises():
    img = np.array([[3.0, 0.0], [1.0, 1.0]])
    txt = np.array([[0.0, 5.0], [2.0, 0.0]])
    np.testing.assert_allclose(cosine_similarity(img, txt), [[0.0, 1.0], [math.sqrt(0.5), math.sqrt(0.5)]], atol=1e-12)


def test_template_ensembling_averages_normalised_embeddings():
    per_template = np.array(
        [
            [[2.0, 0.0], [0.0, 3.0]],  # template 1: label 0, label 1
            [[0.0, 1.0], [0.0, 1.0]],  # template 2
        ]
    )
    e = ensemble_text_embeddings(per_template)
    r = math.sqrt(0.5)
    np.testing.assert_allclose(e, [[r, r], [0.0, 1.0]], atol=1e-12)
    # a single template is just normalised
    np.testing.assert_allclose(ensemble_text_embeddings(per_template[:1]), [[1.0, 0.0], [0.0, 1.0]])


def test_top_k_order_and_ties():
    scores = np.array([0.1, 0.5, 0.1, 0.3])
    assert top_k(scores, ["a", "b", "c", "d"], 3) == [("b", 0.5), ("d", 0.3), ("a", 0.1)]
    assert [lab for lab, _ in top_k(scores, ["a", "b", "c", "d"], None)] == ["b", "d", "a", "c"]
    with pytest.raises(ValueError):
        top_k(scores, ["a", "b"], 2)


def test_multilabel_thresholds_are_inclusive_and_by_rank():
    ranked = [("a", 0.40), ("b", 0.10), ("c", 0.0999), ("d", 0.2), ("e", 0.15)]
    assert assign_labels(ranked) == ["a", "b", "d", "e"]
    # top-1 below 0.4: the shot gets nothing (paper's reading) ...
    weak = [("a", 0.39), ("b", 0.3), ("c", 0.2), ("d", 0.05)]
    assert assign_labels(weak) == []
    # ... unless ranks 2..k are judged on their own
    assert assign_labels(weak, require_top1=False) == ["b", "c"]
    # the 0.1 rule applies to ranks 2..k only, never to the top-1
    assert assign_labels([("a", 0.35), ("b", 0.3)], top1_threshold=0.3, topk_threshold=0.31) == ["a"]
    assert assign_labels([]) == []


def test_only_the_top_five_can_be_labels():
    labels = [f"l{i}" for i in range(7)]
    scores = np.array([0.4] + [0.1] * 6)  # ranks 2..7 all reach 0.1, but only ranks 2..5 are candidates
    ranked = top_k(scores, labels, 5)
    assert len(ranked) == 5
    assert assign_labels(ranked) == ["l0", "l1", "l2", "l3", "l4"]


def test_end_to_end_on_a_similarity_matrix():
    # two frames of one shot: the shot's scores, its top-k and its labels follow the spec
    sims = np.array([[0.30, 0.29, 0.20], [0.30, 0.29, 0.20]])
    ranked = top_k(clip_scene_scores(sims), LABELS, 5)
    assert [lab for lab, _ in ranked] == ["kitchen", "restaurant", "desert"]
    assert assign_labels(ranked) == ["kitchen", "restaurant"]  # desert: 3.3e-5 < 0.1
