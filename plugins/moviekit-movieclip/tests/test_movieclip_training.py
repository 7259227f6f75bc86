"""The core epoch loop (``moviekit.train_loop``) as the plugin's three tasks use it: mid-task checkpoints,
resume after a kill, mixed-precision plumbing."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_movieclip_scenes import VOCAB, frame_items

from moviekit import training
from moviekit.testing import make_context
from moviekit_movieclip.heads import MovieclipDownstream
from moviekit_movieclip.scenes import MovieclipSceneClassifier
from moviekit_movieclip.shotscale import MovieclipShotScale


class Killed(RuntimeError):
    pass


@pytest.fixture(autouse=True)
def _one_thread():
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def kill_after(monkeypatch, epoch: int) -> None:
    """Make the loop die right after finishing ``epoch`` (a simulated kill)."""

    def die(tag, done, history):
        if done == epoch:
            raise Killed(f"killed after epoch {done}")

    monkeypatch.setattr(training, "epoch_done", die)


def logged(ctx) -> list[str]:
    lines: list[str] = []
    ctx.log = lines.append
    return lines


def tiny_fit(ctx, epochs: int = 5, checkpoint_every: int = 2):
    """A small model with dropout, a scheduler and an extra generator, trained by ``train_loop``."""
    import torch

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Dropout(0.3), torch.nn.Linear(8, 1))
    x = torch.randn(20, 4, generator=torch.Generator().manual_seed(1))
    y = (x.sum(1, keepdim=True) > 0).float()
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    noise = torch.Generator().manual_seed(2)

    def step(idx):
        xb = x[idx] + 0.1 * torch.randn(len(idx), 4, generator=noise)  # augmentation drawn from the extra generator
        return torch.nn.functional.binary_cross_entropy_with_logits(model(xb), y[idx])

    history = training.train_loop(model, step, len(x), opt, epochs, 6, ctx, 0, sched, "epoch", 1.0, None, checkpoint_every, "tiny", [noise])
    return model, history


def test_train_loop_resumes_after_a_kill_with_the_same_weights(tmp_path, monkeypatch):
    ref_model, ref_history = tiny_fit(make_context(tmp_path / "ref"))
    assert ref_history["start_epoch"] == 0 and len(ref_history["epoch_loss"]) == 5

    ctx = make_context(tmp_path / "killed")
    kill_after(monkeypatch, 3)  # the checkpoint of epoch 2 is on disk, epoch 3 is lost
    with pytest.raises(Killed):
        tiny_fit(ctx)
    assert ctx.checkpoint_path("tiny").exists()
    monkeypatch.setattr(training, "epoch_done", lambda *a: None)
    lines = logged(ctx)
    model, history = tiny_fit(ctx)
    assert history["start_epoch"] == 2
    assert lines == ["tiny: resumed from the checkpoint at epoch 2"]
    assert not ctx.checkpoint_path("tiny").exists()  # removed once training finished
    assert history["epoch_loss"] == pytest.approx(ref_history["epoch_loss"], abs=1e-7)
    assert history["step_loss"] == pytest.approx(ref_history["step_loss"], abs=1e-7)
    for (name, a), (_, b) in zip(model.state_dict().items(), ref_model.state_dict().items()):
        assert np.allclose(a.numpy(), b.numpy(), atol=1e-7), name


def test_train_loop_checkpoints_only_every_n_epochs(tmp_path, monkeypatch):
    ctx = make_context(tmp_path)
    seen = []

    def record(tag, done, history):
        seen.append((done, ctx.checkpoint_path(tag).exists()))

    monkeypatch.setattr(training, "epoch_done", record)
    tiny_fit(ctx, epochs=5, checkpoint_every=3)
    # written after epoch 3 (not 1, 2); the last epoch never writes one
    assert seen == [(1, False), (2, False), (3, True), (4, True), (5, True)]
    assert not ctx.checkpoint_path("tiny").exists()


# -- the three tasks ---------------------------------------------------------------------------


def _scene(ctx):
    task = MovieclipSceneClassifier(
        model="lstm", labels=VOCAB, epochs=4, batch_size=8, lstm_hidden=8, checkpoint_every=2, clip_len=2, test_clips=2
    )
    task.run(ctx)
    return np.load(ctx.out_dir / "scene_scores.npz")["scores"]


def _shot_scale(ctx):
    labels = ctx.out_dir.parent / "scales.csv"
    labels.write_text("video,shot,scale\n" + "".join(f"v{v},{j},{('CS', 'LS', 'MS')[(v + j) % 3]}\n" for v in range(4) for j in range(4)))
    MovieclipShotScale(
        labels_file=str(labels), frame_encoder="thumbnail", grid=2, epochs=4, batch_size=4, hidden=8, checkpoint_every=2
    ).run(ctx)
    return np.loadtxt(ctx.out_dir / "shot_scale_predictions.csv", delimiter=",", skiprows=1, usecols=(6, 7, 8, 9, 10))


def _downstream(ctx):
    MovieclipDownstream(epochs=4, batch_size=2, checkpoint_every=2, warn_dim=False).run(ctx)
    metrics = json.loads((ctx.out_dir / "downstream_metrics.json").read_text())
    return np.asarray([metrics["final_train_loss"], *[v.numpy().ravel().sum() for v in ctx.model("downstream").state.values()]])


def _downstream_items():
    from moviekit.testing import tiny_items

    return tiny_items()


@pytest.mark.parametrize(
    "run, make_items",
    [
        (_scene, lambda: frame_items(n_videos=4, t=4, size=8)),
        (_shot_scale, lambda: frame_items(n_videos=4, t=3, size=8)),
        (_downstream, _downstream_items),
    ],
    ids=["scene_classifier", "shot_scale", "downstream"],
)
def test_tasks_resume_from_their_checkpoint_and_match_an_uninterrupted_run(run, make_items, tmp_path, monkeypatch):
    items = make_items()
    vocab = VOCAB if run is not _downstream else None
    reference = run(make_context(tmp_path / "ref", items=items, vocabulary=vocab))

    ctx = make_context(tmp_path / "killed", items=items, vocabulary=vocab)
    kill_after(monkeypatch, 3)
    with pytest.raises(Killed):
        run(ctx)
    monkeypatch.setattr(training, "epoch_done", lambda *a: None)
    lines = logged(ctx)
    resumed = run(ctx)
    assert any("resumed from the checkpoint at epoch 2" in line for line in lines), lines
    assert resumed.shape == reference.shape and np.allclose(resumed, reference, atol=1e-6)


@pytest.mark.parametrize(
    "run, make_items, name, part",
    [
        (_scene, lambda: frame_items(n_videos=4, t=4, size=8), "scene", "model"),
        (_shot_scale, lambda: frame_items(n_videos=4, t=3, size=8), "shot_scale", "lstm"),
        (_downstream, _downstream_items, "downstream", "head"),
    ],
    ids=["scene_classifier", "shot_scale", "downstream"],
)
def test_tasks_hand_on_their_trained_model_as_a_record(run, make_items, name, part, tmp_path):
    """The one hand-off: ctx.model(name) is the trained network, and the same record is on disk under models/."""
    import torch

    from moviekit import load_model

    items = make_items()
    ctx = make_context(tmp_path, items=items, vocabulary=VOCAB if run is not _downstream else None)
    run(ctx)
    trained = ctx.model(name)
    assert list(trained.record.parts) == [part] and trained.record.vocabulary
    assert trained.record.task in ("movieclip_scene_classifier", "movieclip_shot_scale", "movieclip_downstream")
    again = load_model(ctx.out_dir / "models" / name)
    assert again.record == trained.record and set(again.state) == set(trained.state)
    assert all(torch.equal(again.state[k], trained.state[k]) for k in trained.state)
    assert not ctx.shared  # nothing handed on through the untyped dict
    if run is _downstream:  # a head part rebuilds through its component and predicts as the trained one did
        head = again.build("head").eval()
        x = torch.from_numpy(MovieclipDownstream().inputs(items))
        with torch.no_grad():
            scores = torch.sigmoid(head(x)).numpy()
        rows = json.loads((ctx.out_dir / "downstream_metrics.json").read_text())
        assert scores.shape == (len(items), len(ctx.vocabulary)) and rows["in_dim"] == x.shape[1]
