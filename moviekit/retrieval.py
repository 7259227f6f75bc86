"""Nearest-neighbour search with faiss, exact or approximate, chosen by a config (``index:``).

:class:`IndexConfig` is the ``index:`` sub-config of every retrieval component:

* ``flat`` (the default): exact search, every query against every row (``IndexFlatIP`` / ``IndexFlatL2``).
* ``hnsw``: a graph of ``hnsw_m`` links per row built with ``ef_construction`` candidates; a query
  visits ``ef_search`` candidates (larger: slower, higher recall).
* ``ivf``: rows bucketed by k-means into ``nlist`` lists (default ``4 * sqrt(rows)``); a query scans
  the ``nprobe`` nearest lists (larger: slower, higher recall).  k-means is seeded, so a rebuilt
  index is the same index.

An approximate index trades recall for speed: :func:`recall_at_k` measures the share of the exact
top-k it finds (``benchmarks/bench_scale.py`` prints it next to the speed-up).  Queries are
searched in one batch; ``threads`` sets faiss's OpenMP threads (0: faiss's default).
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator


class IndexConfig(BaseModel):
    """Which faiss index a retrieval builds (``index: hnsw`` or ``index: {type: ivf, nprobe: 32}``)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["flat", "hnsw", "ivf"] = Field("flat", description="flat: exact; hnsw or ivf: approximate (faster on many rows)")
    hnsw_m: int = Field(32, ge=2, description="hnsw: links per row of the graph")
    ef_construction: int = Field(40, ge=1, description="hnsw: candidates kept while a row is linked in (build quality)")
    ef_search: int = Field(64, ge=1, description="hnsw: candidates a query visits (recall against speed)")
    nlist: int | None = Field(None, ge=1, description="ivf: k-means lists; None: 4 * sqrt(rows), at most the rows")
    nprobe: int = Field(8, ge=1, description="ivf: lists a query scans (recall against speed)")
    threads: int = Field(0, ge=0, description="faiss OpenMP threads while building and searching; 0: faiss's default")

    @model_validator(mode="before")
    @classmethod
    def _name_only(cls, v: Any) -> Any:
        return {"type": v} if isinstance(v, str) else v


def _metric(metric: str) -> int:
    import faiss

    if metric not in ("ip", "l2"):
        raise ValueError(f"metric must be 'ip' (inner product) or 'l2', got {metric!r}")
    return faiss.METRIC_INNER_PRODUCT if metric == "ip" else faiss.METRIC_L2


def _threads(config: IndexConfig) -> None:
    if config.threads:
        import faiss

        faiss.omp_set_num_threads(config.threads)


def build_index(vectors: np.ndarray, config: IndexConfig | None = None, metric: str = "ip") -> Any:
    """A faiss index of ``vectors`` (rows) for ``metric`` ``ip`` (inner product) or ``l2``."""
    import faiss

    config = config or IndexConfig()
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    n, dim = x.shape
    m = _metric(metric)
    _threads(config)
    if config.type == "flat":
        index = faiss.IndexFlat(dim, m)
    elif config.type == "hnsw":
        index = faiss.IndexHNSWFlat(dim, config.hnsw_m, m)
        index.hnsw.efConstruction = config.ef_construction
    else:
        nlist = max(1, min(config.nlist or round(4 * math.sqrt(n)), n))
        index = faiss.IndexIVFFlat(faiss.IndexFlat(dim, m), dim, nlist, m)
        index.cp.seed = 1234  # a rebuilt index is the same index
        index.cp.min_points_per_centroid = 1  # few rows per list is a warning in faiss, not a problem here
        index.train(x)
        index.make_direct_map()  # rows can be read back (reconstruct)
    index.add(x)
    _search_settings(index, config, 1)  # held by the index, and by the file faiss writes of it
    return index


def _search_settings(index: Any, config: IndexConfig, k: int) -> None:
    import faiss

    inner = faiss.downcast_index(index)
    if isinstance(inner, faiss.IndexHNSW):
        inner.hnsw.efSearch = max(config.ef_search, k)
    elif isinstance(inner, faiss.IndexIVF):
        inner.nprobe = min(config.nprobe, inner.nlist)


def search_index(index: Any, queries: np.ndarray, k: int, config: IndexConfig | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(scores, rows)`` of the ``k`` nearest rows of ``index`` to each query (one batch), at ``config``'s
    search settings (``ef_search`` / ``nprobe``; None: those the index holds, e.g. as read from a file);
    ``k`` is capped at the number of rows."""
    if config is not None:
        _threads(config)
        _search_settings(index, config, k)
    q = np.ascontiguousarray(queries, dtype=np.float32)
    return index.search(q, min(k, index.ntotal))


def recall_at_k(found: np.ndarray, exact: np.ndarray, k: int) -> float:
    """The mean share of each query's exact top-``k`` rows (``exact[:, :k]``) that ``found[:, :k]`` holds."""
    found, exact = np.asarray(found)[:, :k], np.asarray(exact)[:, :k]
    if found.shape[0] != exact.shape[0]:
        raise ValueError(f"{found.shape[0]} queries found against {exact.shape[0]} exact")
    if exact.size == 0:
        return 1.0
    hits = [len(set(f.tolist()) & set(e.tolist())) / len(e) for f, e in zip(found, exact)]
    return float(np.mean(hits))
