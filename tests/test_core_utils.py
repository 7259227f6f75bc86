import os

import numpy as np
import pytest
from mkhelpers import run_cli

from moviekit.clips import make_clips
from moviekit.components import WeightsSpec, pool_track
from moviekit.errors import MoviekitError, WeightsNotFoundError
from moviekit.groups import gather, group_at, group_by_time, group_windows
from moviekit.metrics import multilabel_metrics, random_baseline
from moviekit.records import Clip, FeatureSet, Shot, Track
from moviekit.store import ArtifactStore, file_hash, hash_key
from moviekit.weights import available_offline, resolve_weights


def test_store_roundtrip_and_corrupt_artifact_is_recomputed(tmp_path):
    s = ArtifactStore(tmp_path)
    key = hash_key("content", {"a": 1})
    assert s.get("k", key) is None
    s.put("k", key, {"x": np.arange(3)})
    assert s.get("k", key)["x"].tolist() == [0, 1, 2]
    p = s.path("k", key)
    assert p.is_relative_to(tmp_path / "v2" / "k")
    p.write_bytes(b"garbage")
    assert s.get("k", key) is None and not p.exists()
    assert not list(tmp_path.rglob("*.tmp"))
    assert ArtifactStore(tmp_path, read=False).get("k", key) is None


def test_hash_key_is_order_independent_for_dicts_and_sensitive_to_values():
    assert hash_key({"a": 1, "b": 2}) == hash_key({"b": 2, "a": 1})
    assert hash_key({"a": 1}) != hash_key({"a": 2})


def test_file_hash_memo(tmp_path):
    f = tmp_path / "v.bin"
    f.write_bytes(b"abc")
    h1 = file_hash(f, memo_dir=tmp_path / "m")
    assert h1 == file_hash(f)
    f.write_bytes(b"abd")
    os.utime(f, ns=(1, 1))
    assert file_hash(f, memo_dir=tmp_path / "m") != h1


def test_clips_trim():
    shots = [
        Shot(video_id="v", index=i, start_frame=s, end_frame=e, start_time=s / 10, end_time=e / 10)
        for i, (s, e) in enumerate([(0, 10), (10, 12), (12, 40)])
    ]
    clips = make_clips(shots, fps=10, trim_start=1, trim_end=1, min_frames=2)
    assert [(c.start_frame, c.end_frame, c.shot_index) for c in clips] == [(1, 9, 0), (13, 39, 2)]
    assert clips[0].start_time == pytest.approx(0.1) and clips[0].end_time == pytest.approx(0.9)


def test_groups_windows_scenes_and_time_bins():
    # sequences of clips: whole windows, the remainder dropped; a stride makes them slide
    assert group_windows(10, 9, 1) == [(0, 9), (1, 10)]
    assert group_windows(3, 9) == [] and group_windows(7, 3) == [(0, 3), (3, 6)]
    assert gather(list("abcdefg"), group_windows(7, 3)) == [list("abc"), list("def")]
    # shots into scenes at boundary indices: every shot in exactly one scene
    assert group_at(6, [2, 5]) == [(0, 2), (2, 5), (5, 6)]
    assert group_at(4, [0, 2, 2, 9]) == [(0, 2), (2, 4)] and group_at(0, [1]) == [] and group_at(3, []) == [(0, 3)]
    # time into 2-s events: bin b is group b, empty bins included; brute force over random times
    rng = np.random.default_rng(0)
    times = np.sort(rng.uniform(0, 11, 40))
    spans = group_by_time(times, 2.0)
    assert len(spans) == int(times[-1] // 2) + 1
    for b, (s, e) in enumerate(spans):
        assert list(range(s, e)) == [i for i, t in enumerate(times) if 2 * b <= t < 2 * (b + 1)]
    assert group_by_time([0.5, 1.0], 2.0, end=5.0) == [(0, 2), (2, 2), (2, 2)]
    assert group_by_time([0.5, 3.0], 1.0, origin=1.0) == [(1, 1), (1, 1), (1, 2)]
    with pytest.raises(ValueError, match="ascending"):
        group_by_time([1.0, 0.5], 2.0)


def test_pool_track_means_within_clip_and_falls_back_to_nearest():
    track = Track(times=np.array([0.0, 0.5, 1.0, 1.5]), values=np.array([[1.0], [3.0], [10.0], [20.0]], dtype=np.float32))
    clips = [
        Clip(video_id="v", index=0, shot_index=0, start_frame=0, end_frame=10, start_time=0.0, end_time=1.0),
        Clip(video_id="v", index=1, shot_index=1, start_frame=10, end_frame=11, start_time=1.2, end_time=1.3),
    ]
    out = pool_track(track, clips)
    assert out[0, 0] == pytest.approx(2.0)
    assert out[1, 0] == pytest.approx(10.0)  # nearest to 1.25 is t=1.0 (tie broken to first)


def test_records_validate_shapes():
    with pytest.raises(ValueError):
        FeatureSet(video_id="v", arrays={"a": np.zeros((3, 2)), "b": np.zeros((4, 2))})
    with pytest.raises(ValueError):
        Shot(video_id="v", index=0, start_frame=5, end_frame=2, start_time=0, end_time=0)
    fs = FeatureSet(video_id="v", arrays={"a": np.zeros((3, 2), np.float32)})
    assert fs.spec() == {"a": {"shape": [2], "dtype": "float32"}}
    from moviekit.codec import decode, encode

    assert decode(encode(fs)).num_clips == 3


def test_metrics_match_sklearn_definitions():
    from sklearn.metrics import average_precision_score

    rng = np.random.default_rng(0)
    y = (rng.random((40, 5)) < 0.3).astype(int)
    y[0] = 1
    s = rng.random((40, 5))
    m = multilabel_metrics(y, s, 0.5)
    assert m["auprc_macro"] == pytest.approx(average_precision_score(y, s, average="macro"))
    assert m["auprc_micro"] == pytest.approx(average_precision_score(y, s, average="micro"))
    perfect = multilabel_metrics(y, y.astype(float), 0.5)
    assert perfect["auprc_macro"] == pytest.approx(1.0) and perfect["f1_weighted"] == pytest.approx(1.0)
    rb = random_baseline(y)
    assert rb["auprc_macro"] < 0.6


@pytest.mark.parametrize("n,k", [(6, 1), (14, 3), (40, 20), (1, 1)])
def test_expected_random_ap_matches_simulated_sklearn(n, k):
    from sklearn.metrics import average_precision_score

    from moviekit.metrics import expected_random_ap

    rng = np.random.default_rng(n * 100 + k)
    y = np.zeros(n, int)
    y[:k] = 1
    sims = [average_precision_score(y, rng.random(n)) for _ in range(2000)]
    assert expected_random_ap(n, k) == pytest.approx(np.mean(sims), abs=4 * np.std(sims) / np.sqrt(len(sims)) + 1e-9)
    if n > 1:
        assert expected_random_ap(n, k) > k / n  # on small sets random ranking beats the prevalence


def test_random_baseline_is_the_expectation_of_random_scores():
    rng = np.random.default_rng(1)
    y = (rng.random((12, 5)) < 0.3).astype(int)
    y[0] = 1
    y[:, 4] = 0  # a class without positives is left out, as for the model
    rb = random_baseline(y, threshold=0.3, draws=200)
    sims = [multilabel_metrics(y, rng.random(y.shape), 0.3) for _ in range(600)]
    for key in ("auprc_micro", "auprc_macro", "auprc_weighted", "recall_weighted", "f1_weighted"):
        vals = [m[key] for m in sims]
        # AUPRC is exact; the thresholded metrics are themselves means of 200 draws
        error = np.std(vals) * np.sqrt(1 / len(vals) + (1 / 200 if key.startswith(("recall", "f1")) else 0))
        assert rb[key] == pytest.approx(np.mean(vals), abs=4 * error + 1e-9), key
    assert rb["classes_scored"] == 4 and rb["draws"] == 200


def test_weights_resolution_and_actionable_error(tmp_path, monkeypatch):
    spec = WeightsSpec(name="tiny-net", description="a test net", hub="org/tiny-net")
    monkeypatch.setenv("MOVIEKIT_OFFLINE", "1")
    with pytest.raises(WeightsNotFoundError) as e:
        resolve_weights(spec)
    msg = str(e.value)
    assert "tiny-net" in msg and "Looked in" in msg and "MOVIEKIT_OFFLINE" in msg and "MOVIEKIT_WEIGHTS" in msg
    (tmp_path / "w" / "tiny-net").mkdir(parents=True)
    monkeypatch.setenv("MOVIEKIT_WEIGHTS", str(tmp_path / "w"))
    assert resolve_weights(spec) == tmp_path / "w" / "tiny-net"
    assert available_offline(spec)[0]
    with pytest.raises(WeightsNotFoundError, match="does not exist"):
        resolve_weights(spec.model_copy(update={"path": str(tmp_path / "nope.pt")}))
    pkg = WeightsSpec(name="numpy-as-weights", package="numpy")
    assert resolve_weights(pkg).name == "numpy"


def test_device_auto_is_cpu_without_cuda_and_cuda_request_fails_clearly():
    import torch

    from moviekit.device import effective_precision, resolve_device

    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    assert resolve_device("auto").type == "cpu"
    with pytest.raises(MoviekitError, match="no CUDA device"):
        resolve_device("cuda:0")
    assert effective_precision(torch.device("cpu"), "bf16") == "fp32"


def test_doctor_and_show_run():
    r = run_cli("doctor")
    assert r.returncode == 0, r.stderr
    assert "torch" in r.stdout and "PyAV" in r.stdout
    r = run_cli("show", "mean_pool")
    assert r.returncode == 0 and "dim" in r.stdout and "256" in r.stdout
    r = run_cli("show", "mean_pool", "--json")
    assert '"dim"' in r.stdout
    r = run_cli("show", "mean_pol")
    assert r.returncode == 2 and "did you mean 'mean_pool'" in r.stderr


def test_resolve_checkpoint_picks_the_file_and_names_component_and_key(tmp_path, monkeypatch):
    from moviekit import WeightsNotFoundError, WeightsSpec, resolve_checkpoint

    monkeypatch.setenv("MOVIEKIT_OFFLINE", "1")
    folder = tmp_path / "w"
    folder.mkdir()
    (folder / "notes.txt").write_text("x")
    (folder / "model.pt").write_bytes(b"1")
    (folder / "model.safetensors").write_bytes(b"2")
    assert resolve_checkpoint(WeightsSpec(name="w", path=str(folder)), "my_expert").name == "model.safetensors"
    assert resolve_checkpoint(WeightsSpec(name="w", path=str(folder), filenames=("model.pt",)), "my_expert").name == "model.pt"
    (tmp_path / "empty").mkdir()
    with pytest.raises(WeightsNotFoundError, match=r"my_expert[\s\S]*holds no checkpoint[\s\S]*`ckpt`[\s\S]*\$MOVIEKIT_WEIGHTS/w"):
        resolve_checkpoint(WeightsSpec(name="w", path=str(tmp_path / "empty"), config_key="ckpt"), "my_expert")
    with pytest.raises(WeightsNotFoundError, match=r"my_expert: cannot load[\s\S]*extra hint"):
        resolve_checkpoint(WeightsSpec(name="w", path=str(tmp_path / "missing")), "my_expert", hint=" extra hint")


def test_fit_multilabel_resumes_its_best_on_val_selection_after_a_kill(tmp_path, monkeypatch):
    import torch

    from moviekit import TrainConfig, fit_multilabel, training
    from moviekit.default_plugins.generic import MeanPoolEncoder, MLPHead
    from moviekit.testing import make_context, tiny_items

    def fit(run: str):
        torch.manual_seed(0)
        items = tiny_items(n=30, vocabulary=tuple("abcd"), seed=5)
        for i, it in enumerate(items):
            if i % 5 == 1:
                it.video.split = "val"
        ctx = make_context(tmp_path / run, items, encoder=MeanPoolEncoder(dim=8, hidden=16), head=MLPHead(hidden=[8]))
        ctx.store = make_context(tmp_path / "shared", items).store  # both attempts see one checkpoint folder
        encoder = ctx.encoder.build({"visual": (16,), "audio": (8,)})
        head = ctx.head.build(ctx.encoder.output_dim(), 4)
        cfg = TrainConfig(epochs=9, lr=0.05, batch_size=6, checkpoint_every=3)
        history = fit_multilabel(ctx, encoder, head, ctx.split("train"), ctx.split("val"), cfg, tag=run)
        return history, torch.cat([p.detach().flatten() for p in list(encoder.parameters()) + list(head.parameters())])

    straight, w_straight = fit("straight")

    def die(tag, epoch, history):
        if tag == "killed" and epoch == 5:
            raise KeyboardInterrupt

    monkeypatch.setattr(training, "epoch_done", die)
    with pytest.raises(KeyboardInterrupt):
        fit("killed")
    monkeypatch.setattr(training, "epoch_done", lambda *a: None)
    resumed, w_resumed = fit("killed")  # picks up the checkpoint of epoch 3, with the best model kept so far
    assert resumed["val_auprc_macro"] == straight["val_auprc_macro"] and len(straight["val_auprc_macro"]) == 9
    assert resumed["best_epoch"] == straight["best_epoch"] is not None
    assert torch.equal(w_resumed, w_straight)
