"""MovieCLIP's prompt templates and CLIPSceneScore, as plain functions (no model needed).

From the supplementary (Sec. 3) and the issue:

* **Prompts** (Sec. 3.1): two background templates and two people-centric ones;
  the final choice is ``"A photo of {}, a type of background location"``.
  Several templates can be *ensembled*: each label's text embeddings under the
  templates are L2-normalised, averaged and L2-normalised again.  The authors'
  tagging script words it ``"a photo of a {}, a type of background location"``
  (with "a", lower case) and scores every frame of a shot: that is the
  ``reference`` preset (:data:`REFERENCE_TEMPLATE`; with the labeler's ``fps: null``).
* **CLIPSceneScore**: for a frame, the cosine similarities between its image
  embedding and every label's text embedding (both L2-normalised) are scaled by
  the logit scale 100 and soft-maxed over the labels of the taxonomy; a shot's
  score of a label is the mean of that label's per-frame probability over the
  shot's sampled frames.  Scores therefore lie in [0, 1] and sum to 1 over the
  taxonomy, per frame and per shot.
* **Top-k**: each shot keeps its k = 5 best labels with their scores (Fig. 3, 8).
* **Multi-label assignment** (Sec. 3.3.1, Fig. 6, 7b): the top-1 label needs a
  score >= 0.4 and the labels ranked 2..k a score >= 0.1.  Fig. 7b defines the
  multi-label set as the shots whose top-1 score is >= 0.4 *and* whose top-2..5
  labels are >= 0.1, so by default a shot whose top-1 is below 0.4 gets no labels
  (``require_top1=False`` judges ranks 2..k on their own instead).  Both
  comparisons are inclusive.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: The four prompt templates of Sec. 3.1, the paper's final choice first.
TEMPLATES: tuple[str, ...] = (
    "A photo of {}, a type of background location",
    "A photo of {}, a type of location",
    "People at {}, a type of background location",
    "People at {}, a type of location",
)
#: The template the paper settles on.
DEFAULT_TEMPLATE = TEMPLATES[0]
#: The prompt of the authors' published tagging script (usc-sail/mica-MovieCLIP), which differs
#: from the paper's wording by "a" and the capital; it scores every frame of a shot.
REFERENCE_TEMPLATE = "a photo of a {}, a type of background location"
#: Short names for the templates, usable in configs instead of the full text.
TEMPLATE_NAMES: dict[str, str] = {
    "reference": REFERENCE_TEMPLATE,
    "background": TEMPLATES[0],
    "location": TEMPLATES[1],
    "people_background": TEMPLATES[2],
    "people_location": TEMPLATES[3],
}
#: Logit scale applied to cosine similarities before the softmax over labels.
LOGIT_SCALE = 100.0
#: Labels kept per shot.
TOP_K = 5
#: Minimum CLIPSceneScore of the top-1 label for multi-label assignment.
TOP1_THRESHOLD = 0.4
#: Minimum CLIPSceneScore of the labels ranked 2..k.
TOPK_THRESHOLD = 0.1


def check_template(template: str) -> str:
    """The full template text for a template or a name of :data:`TEMPLATE_NAMES`; it must hold one ``{}``."""
    template = TEMPLATE_NAMES.get(template, template)
    rest = template.replace("{}", "", 1)
    if "{}" not in template or "{" in rest or "}" in rest:
        raise ValueError(f"a prompt template needs exactly one '{{}}' for the label and no other braces, got {template!r}")
    return template


def make_prompts(labels: Sequence[str], template: str = DEFAULT_TEMPLATE) -> list[str]:
    """One prompt per label: the template with ``{}`` replaced by the label."""
    template = check_template(template)
    return [template.replace("{}", label) for label in labels]


def ensemble_text_embeddings(per_template: np.ndarray) -> np.ndarray:
    """``(C, d)`` label embeddings from ``(n_templates, C, d)`` ones: normalise, average over templates, normalise."""
    x = np.asarray(per_template, dtype=np.float64)
    if x.ndim != 3:
        raise ValueError(f"expected (n_templates, n_labels, dim) embeddings, got shape {x.shape}")
    x = x / np.linalg.norm(x, axis=-1, keepdims=True)
    mean = x.mean(axis=0)
    return mean / np.linalg.norm(mean, axis=-1, keepdims=True)


def cosine_similarity(image_embeddings: np.ndarray, text_embeddings: np.ndarray) -> np.ndarray:
    """``(T, C)`` cosine similarities between ``(T, d)`` image and ``(C, d)`` text embeddings."""
    a = np.asarray(image_embeddings, dtype=np.float64)
    b = np.asarray(text_embeddings, dtype=np.float64)
    a = a / np.linalg.norm(a, axis=-1, keepdims=True)
    b = b / np.linalg.norm(b, axis=-1, keepdims=True)
    return a @ b.T


def frame_probabilities(similarity: np.ndarray, logit_scale: float = LOGIT_SCALE) -> np.ndarray:
    """Per-frame softmax over labels of ``logit_scale * similarity``; ``similarity`` is ``(T, C)`` cosine."""
    s = np.asarray(similarity, dtype=np.float64)
    if s.ndim != 2:
        raise ValueError(f"expected a (frames, labels) similarity matrix, got shape {s.shape}")
    z = logit_scale * s
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def aggregate_shot(frame_probs: np.ndarray) -> np.ndarray:
    """A shot's CLIPSceneScores: the mean of its frames' label probabilities (zeros when it has no frame)."""
    p = np.asarray(frame_probs, dtype=np.float64)
    if len(p) == 0:
        return np.zeros(p.shape[1:], np.float64)
    return p.mean(axis=0)


def clip_scene_scores(similarity: np.ndarray, logit_scale: float = LOGIT_SCALE) -> np.ndarray:
    """``(C,)`` CLIPSceneScores of a shot from the ``(T, C)`` cosine similarities of its sampled frames."""
    return aggregate_shot(frame_probabilities(similarity, logit_scale))


def top_k(scores: np.ndarray, labels: Sequence[str], k: int | None = TOP_K) -> list[tuple[str, float]]:
    """The ``k`` best ``(label, score)`` pairs, best first (ties keep taxonomy order); ``None`` keeps all."""
    s = np.asarray(scores, dtype=np.float64)
    if s.shape != (len(labels),):
        raise ValueError(f"{s.shape[0] if s.ndim else 0} scores for {len(labels)} labels")
    order = np.argsort(-s, kind="stable")
    if k is not None:
        order = order[:k]
    return [(labels[i], float(s[i])) for i in order]


def assign_labels(
    ranked: Sequence[tuple[str, float]],
    top1_threshold: float = TOP1_THRESHOLD,
    topk_threshold: float = TOPK_THRESHOLD,
    require_top1: bool = True,
) -> list[str]:
    """Multi-label assignment from a best-first ``[(label, score), ...]`` top-k list.

    The top-1 label is kept when its score is >= ``top1_threshold``; each label
    ranked 2..k when its score is >= ``topk_threshold``.  With ``require_top1``
    (the paper's reading) the shot gets no label at all unless its top-1 passes.
    """
    if not ranked:
        return []
    top1_ok = ranked[0][1] >= top1_threshold
    if require_top1 and not top1_ok:
        return []
    out = [ranked[0][0]] if top1_ok else []
    out += [label for label, score in ranked[1:] if score >= topk_threshold]
    return out
