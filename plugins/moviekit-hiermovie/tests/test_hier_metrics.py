import numpy as np
import pytest

from moviekit_hiermovie.metrics import (
    cider_scores,
    macro_recall_at_k,
    rank_summary,
    relation_metrics,
    role_metrics,
    rouge_l,
    split_roles,
    tokenize,
    verb_accuracy_at_k,
)


def test_acc_at_k_counts_any_annotator():
    scores = np.array([[0.5, 0.3, 0.2, 0.0], [0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1]])
    refs = [[1, 1, 0], [3], [2, 3, 3]]  # event 0: annotator 3 says 0 (top-1) -> hit
    assert verb_accuracy_at_k(scores, refs, 1) == pytest.approx(2 / 3)
    assert verb_accuracy_at_k(scores, refs, 2) == pytest.approx(2 / 3)
    assert verb_accuracy_at_k(scores, refs, 3) == pytest.approx(1.0)


def test_macro_recall_by_hand():
    scores = np.array([[0.9, 0.1, 0.0], [0.1, 0.9, 0.0], [0.8, 0.2, 0.0], [0.0, 0.1, 0.9]])
    refs = [[0, 0, 1], [1, 1, 1], [1, 1, 2], [2, 2, 0]]  # classes (>= 2 votes): {0}, {1}, {1}, {2}
    # k=1: class 0: 1/1; class 1: events 1 (hit), 2 (miss) -> 1/2; class 2: 1/1 -> mean 5/6
    assert macro_recall_at_k(scores, refs, 1) == pytest.approx(5 / 6)
    # no verb with 2 votes: the majority (first given on ties) is the class
    assert macro_recall_at_k(np.array([[0.1, 0.9]]), [[0, 1]], 1) == pytest.approx(0.0)


def test_relation_metrics_by_hand():
    ann = [["Causes", "Causes", "NoRel"], ["NoRel", "NoRel", "Causes"], ["Enables", "Causes", "Enables"], ["Causes"]]
    pred = ["Causes", "Causes", "Enables", "NoRel"]
    m = relation_metrics(pred, ann)
    assert m["top1"] == pytest.approx(0.5)
    # per majority class: Causes 1/2, NoRel 0/1, Enables 1/1
    assert m["mean_class"] == pytest.approx((0.5 + 0.0 + 1.0) / 3)


def test_tokenizer():
    assert tokenize("The man, in a HAT!  (left)") == "the man in a hat left"


def test_cider_equals_pycocoevalcap_on_a_tiny_corpus():
    from pycocoevalcap.cider.cider import Cider

    refs = {
        "a": ["ARG0 red disk ARG1 blue box", "ARG0 crimson disk ARG1 blue box"],
        "b": ["ARG0 green cross ASCN forest"],
        "c": ["ARG0 gold gem ARG1 red disk"],
    }
    hyps = {"a": "ARG0 red disk ARG1 blue box", "b": "ARG0 green plus ASCN woods", "c": "ARG0 red disk"}
    score, per = cider_scores(refs, hyps)
    gts = {i: [r.lower() for r in refs[k]] for i, k in enumerate(hyps)}
    res = {i: [hyps[k].lower()] for i, k in enumerate(hyps)}
    expected, expected_per = Cider().compute_score(gts, res)
    assert score == pytest.approx(expected)
    assert [per[k] for k in hyps] == pytest.approx(list(expected_per))
    assert per["a"] > per["b"] > 0


def _lcs(a, b):
    t = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            t[i + 1][j + 1] = t[i][j] + 1 if x == y else max(t[i][j + 1], t[i + 1][j])
    return t[-1][-1]


def test_rouge_l_by_hand():
    ref, hyp = "arg0 red disk arg1 blue box", "arg0 red box"
    lcs = _lcs(ref.split(), hyp.split())  # 3
    p, r, beta = lcs / 3, lcs / 6, 1.2
    f = (1 + beta**2) * p * r / (r + beta**2 * p)
    assert rouge_l({"x": [ref]}, {"x": hyp}) == pytest.approx(f)


def test_role_metrics_split_and_perfect_score():
    assert split_roles("ARG0 red disk ASCN the forest") == {"ARG0": "red disk", "ASCN": "the forest"}
    refs = {
        i: [f"ARG0 {c} disk ARG1 blue box ASCN {p}"] for i, (c, p) in enumerate([("red", "forest"), ("green", "beach"), ("cyan", "city")])
    }
    good = role_metrics(refs, {k: v[0] for k, v in refs.items()}, {0: "push", 1: "push", 2: "dig"})
    bad = role_metrics(refs, {k: "ARG0 yellow cross" for k in refs}, {0: "push", 1: "push", 2: "dig"})
    assert good["rouge_l"] == pytest.approx(100.0)
    assert good["cider"] > bad["cider"] and good["cider_arg"] > bad["cider_arg"] and good["cider_verb"] > bad["cider_verb"]


def test_rank_summary_by_hand():
    scores = {"A": {"t1": 0.9, "t2": 0.5, "mse": 2.0}, "B": {"t1": 0.8, "t2": 0.6, "mse": 1.0}, "C": {"t1": 0.9, "t2": 0.1, "mse": 3.0}}
    out = rank_summary(scores, {"mse": False})
    # t1: A 1, C 1 (tie), B 3; t2: B 1, A 2, C 3; mse (lower better): B 1, A 2, C 3
    assert out["A"] == {"top1": 1, "tasks": 3, "mean_rank": pytest.approx(5 / 3)}
    assert out["B"]["top1"] == 2 and out["B"]["mean_rank"] == pytest.approx(5 / 3)
    assert out["C"]["top1"] == 1 and out["C"]["mean_rank"] == pytest.approx(7 / 3)
