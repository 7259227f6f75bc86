"""The component contract for every component of moviekit-hiermovie.

Most components take the core's generic contract (`check_component`).  Two kinds need inputs the
generic one does not make: the backbone encoder takes frame stacks (not flat features), and the
VidSitu tasks take annotated clips; they get the same checks on those inputs here.
"""

from pathlib import Path

import numpy as np
import pytest
import torch

from moviekit import Item, MoviekitError, TaskResult, get_registry
from moviekit.testing import check_component, components_of, make_context, tiny_items

NEEDS_FRAMES = {"hier_backbone"}
NEEDS_VIDSITU = {"hier_vidsitu", "hier_ablation"}
ALL = components_of("moviekit-hiermovie")


def test_every_kind_is_registered():
    assert set(ALL) >= {"synthetic_vidsitu", "vidsitu", "hier_frames", "hier_backbone_features", "hier_backbone", "hier_contextualizer",
                        "hier_backbone_pretrain", "hier_context_pretrain", "hier_vidsitu", "hier_ablation"}  # fmt: skip


@pytest.mark.parametrize("name", [n for n in ALL if n not in NEEDS_FRAMES | NEEDS_VIDSITU])
def test_contract(name, tmp_path):
    check_component(name, tmp_path)


def test_backbone_encoder_contract(tmp_path):
    comp = get_registry().create("hier_backbone", "encoder")
    module = comp.build({"frames": (8, 32, 32, 3)}).eval()
    frames = torch.randint(0, 256, (3, 5, 8, 32, 32, 3)).float()
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 0, 0, 0, 0]], dtype=torch.bool)
    with torch.no_grad():
        out = module({"frames": frames}, mask)
        first = module.embed(frames[2, :1])
    assert out.shape == (3, comp.output_dim())
    assert torch.allclose(out[2], first[0], atol=1e-5)  # padding clips are ignored
    with pytest.raises(MoviekitError, match="hier_frames"):
        comp.build({m: a.shape[1:] for m, a in tiny_items(n=1)[0].features.arrays.items()})


def vidsitu_context(tmp_path: Path):
    from moviekit_hiermovie.fixtures import write_tiny_vidsitu
    from moviekit_hiermovie.vidsitu import VidSitu

    root = write_tiny_vidsitu(tmp_path / "vs", n=4, dim=12)
    src = VidSitu(root=root / "vidsitu_annotations", features_dir=root / "features")
    items = [Item(video=v, clips=v.clips, features=v.features) for v in src.items()]
    return make_context(tmp_path, items=items, vocabulary=src.vocabulary())


TINY = {"epochs": 2, "hidden": 16, "role_dim": 8, "context_arch": {"width": 16, "ffn": 32, "heads": 2, "layers": 1}}


@pytest.mark.parametrize("name", sorted(NEEDS_VIDSITU))
def test_vidsitu_task_contract(name, tmp_path):
    reg = get_registry()
    cls = reg.get(name)
    assert cls.describe()
    ctx = vidsitu_context(tmp_path)
    reg.create("hier_context_pretrain", "task", backbones=["features"], width=16, ffn=32, heads=2, layers=1, epochs=1).run(ctx)
    extra = (
        {"backbone": "features"}
        if name == "hier_vidsitu"
        else {"backbones": ["features", "absent"], "contextualizers": ["none", "mask", "scratch"], "seeds": [0, 1]}
    )
    result = cls({**TINY, **extra}).run(ctx)
    assert isinstance(result, TaskResult)
    for rel in result.files:
        assert (ctx.out_dir / rel).exists(), rel
    if name == "hier_ablation":
        assert "backbone absent: not in this run, row left out" in result.notes
        rows = (ctx.out_dir / "ablation_verbs.csv").read_text().splitlines()
        assert len(rows) == 1 + 3 and rows[0].startswith("Backbone,Pre-training,Contextualizer,Acc@1,Acc@1 std")
        assert "Relations" in (ctx.out_dir / "report.html").read_text()
    else:
        assert 0 <= result.metrics["verb_acc1"] <= result.metrics["verb_acc5"] <= 100
        assert "hier_vidsitu" in ctx.models and ctx.models["hier_vidsitu"].record.meta["contextualizer"] == "mask"


def test_contrastive_pretraining_on_frames_hands_on_a_backbone(tmp_path):
    from moviekit import FeatureSet, Video

    rng = np.random.default_rng(0)
    items = []
    for i in range(4):
        frames = rng.integers(0, 256, (2, 4, 16, 16, 3), dtype=np.uint8)
        v = Video(id=f"a{i}", split=None, metadata={"hier_kind": "action"})
        items.append(Item(video=v, features=FeatureSet(video_id=v.id, arrays={"frames": frames})))
    ctx = make_context(tmp_path, items=items, vocabulary=["x"])
    task = get_registry().create("hier_backbone_pretrain", "task", width=4, clip_frames=4, epochs=2, batch_size=2, projection_hidden=32)
    result = task.run(ctx)
    model = ctx.model("backbone")
    assert model.record.meta["objective"] == "contrastive" and len(model.record.meta["epoch_loss"]) == 2
    assert not any(k.startswith("projection") for k in model.state)  # the projection is dropped
    net = model.build("backbone").eval()
    with torch.no_grad():
        assert net.embed(torch.zeros(1, 4, 16, 16, 3)).shape == (1, 32)
    assert all((ctx.out_dir / f).exists() for f in result.files)


def test_lvu_heads_on_lvu_files_with_a_rank_table(tmp_path):
    """The LVU heads over the core's `lvu` reader (per-clip features), ranked with another run's results."""
    import json

    from moviekit.default_plugins.formats import write_features_dir

    root = tmp_path / "lvu"
    items = tiny_items(n=24, vocabulary=("a",), modalities={"tokens": (6,)}, n_clips=7)
    write_features_dir(tmp_path / "feats", items)
    for split, ids in (("train", range(16)), ("val", range(16, 20)), ("test", range(20, 24))):
        (root / "scene").mkdir(parents=True, exist_ok=True)
        lines = ["scene youtube_id imdb_id"] + [f"{i % 3} {items[i].id} tt{i}" for i in ids]
        (root / "scene" / f"{split}.csv").write_text("\n".join(lines) + "\n")
    src = get_registry().create("lvu", "dataset", root=root, task="scene", features=tmp_path / "feats")
    lvu_items = [Item(video=v, clips=v.clips, features=v.features) for v in src.items()]
    ctx = make_context(tmp_path, items=lvu_items, vocabulary=src.vocabulary())
    get_registry().create(
        "hier_context_pretrain", "task", backbones=["features"], splits=["train"], width=16, ffn=32, heads=2, layers=1, epochs=1
    ).run(ctx)
    other = tmp_path / "other.json"
    other.write_text(
        json.dumps(
            {"task": "like_ratio", "kind": "regression", "higher_is_better": False, "scores": {"features/none": 1.0, "features/mask": 2.0}}
        )
    )
    result = get_registry().create("hier_lvu", "task", backbones=["features"], epochs=3, summary_from=[other]).run(ctx)
    scores = json.loads((ctx.out_dir / "lvu.json").read_text())
    assert scores["task"] == "scene" and set(scores["scores"]) == {"features/none", "features/mask"}
    assert all(0 <= v <= 100 for v in scores["scores"].values())
    ranks = (ctx.out_dir / "lvu_ranks.csv").read_text().splitlines()
    assert ranks[0] == "setting,top1_rank,mean_rank" and any(r.startswith("features/none,") and "/2," in r for r in ranks)
    assert set(result.files) == {"lvu.json", "lvu_ranks.csv"}
