"""VidSitu's metrics for verbs, event relations and semantic roles, and the LVU rank summary.

* Verbs: :func:`verb_accuracy_at_k` (an event is a hit if *any* annotator's verb is in the top k,
  as VidSitu scores Acc@1 / Acc@5 against its several verb annotations) and
  :func:`macro_recall_at_k` (per verb class, the share of its events whose top k holds it, the
  class of an event being every verb at least ``min_votes`` annotators gave, else the majority
  verb; averaged over classes that occur).
* Relations: :func:`relation_metrics`, top-1 accuracy against the majority label of the
  annotators and the mean over classes of the per-class accuracy.
* Roles: CIDEr and ROUGE-L from pycocoevalcap.  Its PTB tokenizer runs Java (Stanford CoreNLP),
  so the text is tokenized here by :func:`tokenize` instead: lower case, every run of letters or
  digits a token, punctuation dropped (what the PTB tokenizer plus pycocoevalcap's punctuation
  filter gives for plain role phrases).  LEA (a coreference metric) is left out: no maintained
  implementation installs from PyPI.
* LVU: :func:`rank_summary`, per setting the number of tasks it ranks first and its mean rank.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np


def tokenize(text: str) -> str:
    """``"The man, in a HAT!"`` -> ``"the man in a hat"`` (the stand-in for the Java PTB tokenizer)."""
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def verb_accuracy_at_k(scores: np.ndarray, references: list[list[int]], k: int) -> float:
    """Share of events whose ``k`` best-scored verbs contain any of their annotators' verbs."""
    if len(scores) == 0:
        return float("nan")
    top = top_k(scores, k)
    return float(np.mean([bool(set(top[i].tolist()) & set(refs)) for i, refs in enumerate(references)]))


def event_classes(references: list[int], min_votes: int = 2) -> set[int]:
    counts: dict[int, int] = {}
    for r in references:
        counts[r] = counts.get(r, 0) + 1
    chosen = {c for c, n in counts.items() if n >= min_votes}
    if not chosen and references:
        best = max(counts.values())
        chosen = {next(r for r in references if counts[r] == best)}
    return chosen


def macro_recall_at_k(scores: np.ndarray, references: list[list[int]], k: int, min_votes: int = 2) -> float:
    """Mean over verb classes of recall@k (see the module docstring for an event's classes)."""
    top = top_k(scores, k)
    hits: dict[int, list[bool]] = {}
    for i, refs in enumerate(references):
        for c in event_classes(refs, min_votes):
            hits.setdefault(c, []).append(c in top[i])
    return float(np.mean([np.mean(v) for v in hits.values()])) if hits else float("nan")


def relation_metrics(predicted: list[str], annotations: list[list[str]]) -> dict[str, float]:
    """``top1``: accuracy against each pair's majority label; ``mean_class``: per-class accuracy averaged."""
    from .vidsitu import majority

    truth = [majority(a) for a in annotations]
    ok = [p == t for p, t in zip(predicted, truth, strict=True)]
    per = {c: float(np.mean([o for o, t in zip(ok, truth) if t == c])) for c in sorted(set(truth))}
    return {
        "top1": float(np.mean(ok)) if ok else float("nan"),
        "mean_class": float(np.mean(list(per.values()))) if per else float("nan"),
        "per_class": per,
    }


def cider_scores(references: dict[Any, list[str]], hypotheses: dict[Any, str]) -> tuple[float, dict[Any, float]]:
    """pycocoevalcap's CIDEr-D over our tokenization: corpus score and per-item scores."""
    from pycocoevalcap.cider.cider import Cider

    keys = list(hypotheses)
    gts = {i: [tokenize(r) for r in references[k]] for i, k in enumerate(keys)}
    res = {i: [tokenize(hypotheses[k])] for i, k in enumerate(keys)}
    score, per = Cider().compute_score(gts, res)
    return float(score), {k: float(s) for k, s in zip(keys, per)}


def rouge_l(references: dict[Any, list[str]], hypotheses: dict[Any, str]) -> float:
    """pycocoevalcap's ROUGE-L (F-measure, beta 1.2) averaged over items, on our tokenization."""
    from pycocoevalcap.rouge.rouge import Rouge

    keys = list(hypotheses)
    gts = {i: [tokenize(r) for r in references[k]] for i, k in enumerate(keys)}
    res = {i: [tokenize(hypotheses[k])] for i, k in enumerate(keys)}
    score, _ = Rouge().compute_score(gts, res)
    return float(score)


def split_roles(text: str) -> dict[str, str]:
    """``"ARG0 red disk ASCN forest"`` -> ``{"ARG0": "red disk", "ASCN": "forest"}`` (role markers are upper case)."""
    out: dict[str, list[str]] = {}
    role = None
    for tok in text.split():
        if re.fullmatch(r"A[A-Z0-9]+", tok):
            role = tok
            out.setdefault(role, [])
        elif role is not None:
            out[role].append(tok)
    return {r: " ".join(w) for r, w in out.items()}


def role_metrics(references: dict[Any, list[str]], hypotheses: dict[Any, str], verbs: dict[Any, str]) -> dict[str, float]:
    """VidSitu's role scores: CIDEr of the whole role text, CIDEr-verb (per-event CIDEr averaged
    within each verb, then over verbs), CIDEr-arg (CIDEr of each role's phrase, averaged over
    roles) and ROUGE-L; all x100 as in the paper's tables."""
    cider, per = cider_scores(references, hypotheses)
    by_verb: dict[str, list[float]] = {}
    for k, s in per.items():
        by_verb.setdefault(verbs[k], []).append(s)
    arg_scores = []
    roles = sorted({r for refs in references.values() for ref in refs for r in split_roles(ref)})
    for role in roles:
        refs = {k: [split_roles(r).get(role, "") for r in v] for k, v in references.items()}
        keep = [k for k in hypotheses if any(refs[k])]
        if keep:
            hyp = {k: split_roles(hypotheses[k]).get(role, "") for k in keep}
            arg_scores.append(cider_scores({k: [r for r in refs[k] if r] for k in keep}, hyp)[0])
    return {
        "cider": 100 * cider,
        "cider_verb": 100 * float(np.mean([np.mean(v) for v in by_verb.values()])),
        "cider_arg": 100 * float(np.mean(arg_scores)) if arg_scores else float("nan"),
        "rouge_l": 100 * rouge_l(references, hypotheses),
    }


def rank_summary(scores: dict[str, dict[str, float]], higher_is_better: dict[str, bool]) -> dict[str, dict[str, float]]:
    """``{setting: {task: score}}`` -> ``{setting: {"top1": tasks ranked first, "mean_rank": ...}}``.

    Ranks are 1-based per task over the settings that have it (ties share the best rank), as in
    the LVU summary table (``top1`` of ``n`` tasks, mean rank)."""
    tasks = sorted({t for s in scores.values() for t in s})
    ranks: dict[str, list[int]] = {s: [] for s in scores}
    for t in tasks:
        have = {s: v[t] for s, v in scores.items() if t in v and v[t] == v[t]}
        sign = 1 if higher_is_better.get(t, True) else -1
        for s, v in have.items():
            ranks[s].append(1 + sum(sign * o > sign * v for o in have.values()))
    return {
        s: {"top1": sum(r == 1 for r in rs), "tasks": len(rs), "mean_rank": float(np.mean(rs)) if rs else float("nan")}
        for s, rs in ranks.items()
    }
