"""The ``index:`` option of retrieval (flat | hnsw | ivf): on well-separated points the approximate
indexes find the exact top-k (checked against a NumPy brute force), settings survive faiss's file,
and recall@k counts what it should."""

import numpy as np
import pytest
from pydantic import ValidationError

from moviekit import IndexConfig, build_index, recall_at_k, search_index


def separated(k: int = 5, groups: int = 40, dim: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``groups`` tight groups of ``k`` unit rows, far apart; one query per group; each query's exact top-k is its group."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((groups, dim)) * 10
    rows = np.repeat(centres, k, axis=0) + 0.01 * rng.standard_normal((groups * k, dim))
    queries = centres + 0.01 * rng.standard_normal((groups, dim))
    unit = lambda a: (a / np.linalg.norm(a, axis=1, keepdims=True)).astype(np.float32)  # noqa: E731
    return unit(rows), unit(queries), np.arange(groups * k).reshape(groups, k)


def brute(rows: np.ndarray, queries: np.ndarray, k: int, metric: str) -> np.ndarray:
    score = queries @ rows.T if metric == "ip" else -((queries[:, None, :] - rows[None, :, :]) ** 2).sum(-1)
    return np.argsort(-score, axis=1, kind="stable")[:, :k]


@pytest.mark.parametrize("metric", ["ip", "l2"])
@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf"])
def test_every_index_finds_the_exact_top_k_of_well_separated_points(kind, metric):
    rows, queries, groups = separated()
    config = IndexConfig(type=kind, ef_search=16, nprobe=4)
    scores, found = search_index(build_index(rows, config, metric=metric), queries, 5, config)
    exact = brute(rows, queries, 5, metric)
    np.testing.assert_array_equal(np.sort(exact, 1), groups)  # the set really is separated
    np.testing.assert_array_equal(np.sort(found, 1), np.sort(exact, 1))
    assert recall_at_k(found, exact, 5) == 1.0
    assert scores.shape == (len(queries), 5)


def test_k_is_capped_at_the_rows_and_settings_are_kept_by_the_index_file(tmp_path):
    import faiss

    rows, queries, _ = separated(k=2, groups=3)
    index = build_index(rows, IndexConfig(type="ivf", nlist=2, nprobe=2))
    faiss.write_index(index, str(tmp_path / "i.faiss"))
    again = faiss.read_index(str(tmp_path / "i.faiss"))
    assert faiss.downcast_index(again).nprobe == 2
    _, found = search_index(again, queries, 50)  # no config: the file's own settings
    assert found.shape == (3, 6) and sorted(found[0]) == list(range(6))
    np.testing.assert_allclose(again.reconstruct(4), rows[4])


def test_recall_at_k_counts_the_shared_rows():
    found = np.array([[1, 2, 3], [4, 5, 6]])
    exact = np.array([[3, 2, 9], [7, 8, 6]])
    assert recall_at_k(found, exact, 3) == pytest.approx((2 / 3 + 1 / 3) / 2)
    assert recall_at_k(found, exact, 1) == 0.0  # 1 vs 3, 4 vs 7
    assert recall_at_k(exact, exact, 3) == 1.0
    with pytest.raises(ValueError, match="2 queries found against 1 exact"):
        recall_at_k(found, exact[:1], 3)


def test_index_config_takes_a_name_and_rejects_others():
    assert IndexConfig.model_validate("hnsw").type == "hnsw"
    assert IndexConfig.model_validate({"type": "ivf", "nprobe": 32}).nprobe == 32
    with pytest.raises(ValidationError, match="type"):
        IndexConfig.model_validate("annoy")
    with pytest.raises(ValidationError, match="ef_serch"):
        IndexConfig.model_validate({"type": "hnsw", "ef_serch": 8})
