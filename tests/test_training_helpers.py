"""The core's one way each: warm-up + cosine schedule, skipped batches and lr in the epoch loop,
the classification report layout, the CSV writer and the evaluated-split rule."""

import csv
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from moviekit import (
    Item,
    MoviekitError,
    Video,
    classification_report,
    evaluation_split,
    selection_split,
    train_loop,
    warmup_cosine,
    warmup_cosine_factor,
    write_classification_report,
    write_csv,
)


def test_warmup_cosine_is_linear_then_cosine_to_zero():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=2.0)
    sched = warmup_cosine(opt, warmup=3, total=10)
    lrs = []
    for _ in range(10):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    expected = [2.0 * (e + 1) / 4 for e in range(3)] + [2.0 * 0.5 * (1 + math.cos(math.pi * (e - 3) / 7)) for e in range(3, 10)]
    assert lrs == pytest.approx(expected)
    assert warmup_cosine_factor(3, 3, 10) == 1.0 and warmup_cosine_factor(10, 3, 10) == pytest.approx(0.0, abs=1e-12)
    assert warmup_cosine_factor(50, 3, 10) == pytest.approx(0.0, abs=1e-12)  # stays at 0 past the end
    # peak_in_warmup: the full rate on the last warm-up step; no warm-up: cosine from the first step
    assert [warmup_cosine_factor(s, 4, 8, peak_in_warmup=True) for s in range(5)] == [0.25, 0.5, 0.75, 1.0, 1.0]
    assert warmup_cosine_factor(0, 0, 8) == 1.0


def test_train_loop_skips_batches_without_a_loss_and_records_the_lr():
    torch.manual_seed(0)
    w = torch.nn.Linear(2, 1)
    x = torch.randn(5, 2)
    opt = torch.optim.SGD(w.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    calls = []

    def step(idx):
        calls.append(len(idx))
        return None if len(idx) < 2 else w(x[idx]).pow(2).mean()

    h = train_loop(torch.nn.ModuleDict({"w": w}), step, 5, opt, 3, 2, scheduler=sched)
    assert calls == [2, 2, 1] * 3
    assert len(h["step_loss"]) == 6  # the one-sample batches took no step
    assert h["lr"] == pytest.approx([0.1, 0.05, 0.025])


def test_classification_report_layout_and_csv(tmp_path):
    y = np.array([[1, 0], [0, 1], [1, 1], [0, 0]])
    s = np.array([[0.9, 0.2], [0.3, 0.8], [0.6, 0.4], [0.1, 0.3]], dtype=np.float32)
    metrics, rows = classification_report(y, s, ["x", "y"], 0.5)
    files = write_classification_report(tmp_path, metrics, rows, per_class_file="per_genre.csv", label_column="genre")
    assert files == ["metrics.json", "per_genre.csv"]
    table = list(csv.DictReader((tmp_path / "per_genre.csv").open()))
    assert list(table[0]) == ["genre", "support", "auprc", "precision", "recall", "f1", "random_auprc"]
    assert [(r["genre"], int(r["support"])) for r in table] == [("x", 2), ("y", 2)]
    write_csv(tmp_path / "empty.csv", [])
    assert (tmp_path / "empty.csv").read_text().strip() == "label"


def _ctx(splits):
    items = [Item(video=Video(id=f"v{i}", split=sp)) for i, sp in enumerate(splits)]
    return SimpleNamespace(items=items, split=lambda name: [it for it in items if it.video.split == name])


def test_evaluated_split_is_test_else_val_never_train():
    name, items = evaluation_split(_ctx(["train", "val", "test", "test"]))
    assert name == "test" and [it.id for it in items] == ["v2", "v3"]
    ctx = _ctx(["train", "val", "train"])
    name, items = evaluation_split(ctx)
    assert name == "val" and [it.id for it in items] == ["v1"]
    assert selection_split(ctx, "val") == [] and [it.id for it in selection_split(_ctx(["val", "test"]), "test")] == ["v0"]
    with pytest.raises(MoviekitError, match=r"no test or val items to evaluate on \(the items are: 2 train\)"):
        evaluation_split(_ctx(["train", "train"]))
    with pytest.raises(MoviekitError, match=r"no test items"):
        evaluation_split(_ctx(["train", "val"]), fallback=None)
    with pytest.raises(MoviekitError, match=r"no test items"):
        evaluation_split(_ctx(["train"]), fallback="train")
