"""Train VidSitu's heads on one (backbone, contextualizer) setting and score them: the shared core of
the ``hier_vidsitu`` task and every row of ``hier_ablation``.

Settings of the contextualizer: ``none`` (heads on the layer-normed low-level tokens),
``mask`` (the mask-prediction pre-trained contextualizer of that backbone, fine-tuned with the
heads) and ``scratch`` (the same transformer randomly initialised, trained with the heads only:
it separates what pre-training brings from what the architecture brings).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field

from moviekit import (
    Config,
    ModelPart,
    MoviekitError,
    TrainedModel,
    build_part,
    train_loop,
)

from .contextualizer import ContextConfig, HierContextualizer
from .heads import REL_SLOTS, build_heads, build_vocab, decode_text, encode_text
from .metrics import (
    macro_recall_at_k,
    relation_metrics,
    role_metrics,
    verb_accuracy_at_k,
)
from .tokens import event_tokens, movie_items
from .vidsitu import majority, roles_text

Contextualizer = Literal["none", "mask", "scratch"]


class HeadsConfig(Config):
    """Training of the heads (and fine-tuning of the contextualizer) on the annotated train split."""

    epochs: int = Field(30, ge=1)
    batch_size: int = Field(16, ge=1, description="clips per step")
    lr: float = Field(1e-3, gt=0, description="AdamW learning rate of the heads")
    context_lr: float = Field(1e-4, gt=0, description="learning rate of the contextualizer (fine-tuned with the heads)")
    weight_decay: float = Field(0.01, ge=0)
    hidden: int = Field(512, ge=1, description="hidden width of the verb and relation MLPs")
    role_dim: int = Field(256, ge=1, description="width of the role decoder (GRU)")
    role_max_len: int = Field(16, ge=2, description="longest role text in tokens")
    role_weight: float = Field(1.0, ge=0, description="weight of the role decoder's loss")
    dropout: float = Field(0.1, ge=0, lt=1)
    test_split: str = Field("test", description="split scored (falls back to val when it has no annotated clip)")
    frames: str = Field("frames", description="modality of the frame stacks")
    tokens: str = Field("tokens", description="modality of per-event features (backbone 'features')")
    context_prefix: str = Field("context_", description="the pre-trained contextualizer of backbone B is the model <prefix>B")
    context_arch: ContextConfig = Field(
        default_factory=ContextConfig, description="architecture of a `scratch` contextualizer (a `mask` one brings its own)"
    )
    checkpoint_every: int = Field(10, ge=1)


def _targets(items: list[Any], verbs: list[str], relations: list[str], role_index: dict[str, int], max_len: int) -> dict[str, np.ndarray]:
    vi, ri = {v: i for i, v in enumerate(verbs)}, {r: i for i, r in enumerate(relations)}
    V = np.full((len(items), 5), -100, np.int64)
    R = np.full((len(items), len(REL_SLOTS)), -100, np.int64)
    T = np.zeros((len(items), 5, max_len), np.int64)
    for n, it in enumerate(items):
        events = it.video.metadata["vidsitu"]["events"]
        for k, ev in enumerate(events[:5]):
            V[n, k] = vi.get(majority(ev["verbs"]), -100)
            T[n, k] = encode_text(roles_text(ev["args"][0]) if ev["args"] else "", role_index, max_len)
        for j, k in enumerate(REL_SLOTS):
            R[n, j] = ri.get(majority(events[k]["relations"]), -100)
    return {"verbs": V, "relations": R, "roles": T}


def fit_and_score(
    ctx: Any, cfg: HeadsConfig, backbone: str, contextualizer: Contextualizer, seed: int, tag: str
) -> tuple[dict[str, Any], TrainedModel]:
    """Train heads for one setting with ``seed``; returns the test metrics and the trained model."""
    import torch
    import torch.nn.functional as F

    train = movie_items(ctx, ["train"], annotated=True)
    test = movie_items(ctx, [cfg.test_split], annotated=True) or movie_items(ctx, ["val"], annotated=True)
    if not train or not test:
        raise MoviekitError(f"needs annotated train and {cfg.test_split} (or val) movie clips; got {len(train)} train, {len(test)} test")
    verbs = list(ctx.vocabulary) or sorted({v for it in train for ev in it.video.metadata["vidsitu"]["events"] for v in ev["verbs"]})
    relations = sorted({r for it in train + test for ev in it.video.metadata["vidsitu"]["events"] for r in ev["relations"] if r})
    role_vocab = build_vocab([roles_text(a) for it in train for ev in it.video.metadata["vidsitu"]["events"] for a in ev["args"]])
    role_index = {w: i for i, w in enumerate(role_vocab)}
    y = {k: torch.from_numpy(v) for k, v in _targets(train, verbs, relations, role_index, cfg.role_max_len).items()}
    x_train = torch.from_numpy(event_tokens(ctx, backbone, train, cfg.frames, cfg.tokens))
    x_test = torch.from_numpy(event_tokens(ctx, backbone, test, cfg.frames, cfg.tokens))
    dims = {"tokens": [int(x_train.shape[-1])]}

    torch.manual_seed(seed)
    ctx_part: ModelPart | None = None
    ctx_net = None
    if contextualizer == "mask":
        start = ctx.model(f"{cfg.context_prefix}{backbone}")
        ctx_part = start.record.parts["contextualizer"]
        if ctx_part.build["dims"] != dims:
            raise MoviekitError(f"model {start.name} takes tokens {ctx_part.build['dims']}, backbone {backbone} gives {dims}")
        ctx_net = build_part(ctx_part)
        ctx_net.load_state_dict(start.part_state("contextualizer"))
    elif contextualizer == "scratch":
        ctx_part = HierContextualizer(cfg.context_arch).part(dims)
        ctx_net = build_part(ctx_part)
    in_dim = ctx_net.out_dim if ctx_net is not None else dims["tokens"][0]
    head_build = {
        "in_dim": in_dim,
        "n_verbs": len(verbs),
        "n_relations": len(relations),
        "vocab_size": len(role_vocab),
        "hidden": cfg.hidden,
        "role_dim": cfg.role_dim,
        "dropout": cfg.dropout,
    }
    heads = build_heads(**head_build)
    modules = torch.nn.ModuleDict({"heads": heads, **({"contextualizer": ctx_net} if ctx_net is not None else {})}).to(ctx.device)

    def encode(x: torch.Tensor) -> torch.Tensor:
        x = x.to(ctx.device)
        if ctx_net is None:
            return F.layer_norm(x, x.shape[-1:])
        return ctx_net.contextualize(x, torch.ones(x.shape[:2], dtype=torch.bool, device=x.device))

    groups = [{"params": heads.parameters(), "lr": cfg.lr}]
    if ctx_net is not None:
        groups.append({"params": ctx_net.parameters(), "lr": cfg.context_lr if contextualizer == "mask" else cfg.lr})
    opt = torch.optim.AdamW(groups, weight_decay=cfg.weight_decay)

    def step(idx: list[int]) -> torch.Tensor:
        h = encode(x_train[idx])
        yv, yr, yt = (y[k][idx].to(ctx.device) for k in ("verbs", "relations", "roles"))
        loss = F.cross_entropy(heads.verbs(h).flatten(0, 1), yv.flatten(), ignore_index=-100)
        if (yr >= 0).any():
            loss = loss + F.cross_entropy(heads.relations(h).flatten(0, 1), yr.flatten(), ignore_index=-100)
        if cfg.role_weight:
            logits = heads.role_logits(h.flatten(0, 1), yt.flatten(0, 1))
            loss = loss + cfg.role_weight * F.cross_entropy(logits.flatten(0, 1), yt.flatten(), ignore_index=0)
        return loss

    hist = train_loop(
        modules, step, len(x_train), opt, cfg.epochs, cfg.batch_size, ctx, seed=seed, checkpoint_every=cfg.checkpoint_every, tag=tag
    )
    modules.eval()
    with torch.no_grad():
        h = torch.cat([encode(x_test[s : s + 64]) for s in range(0, len(x_test), 64)])
        verb_scores = torch.softmax(heads.verbs(h).float(), -1).flatten(0, 1).cpu().numpy()
        rel_pred = heads.relations(h).argmax(-1).cpu().numpy()
        role_ids = heads.generate(h.flatten(0, 1), cfg.role_max_len).cpu().numpy()
    metrics = score(test, verbs, relations, verb_scores, rel_pred, [decode_text(r.tolist(), role_vocab) for r in role_ids])
    metrics["train_loss"] = [round(hist["epoch_loss"][0], 4), round(hist["epoch_loss"][-1], 4)]
    parts = {"heads": (ModelPart(kind="module", build=head_build), heads)}
    if ctx_net is not None:
        parts["contextualizer"] = (ctx_part, ctx_net)
    model = TrainedModel.from_modules(
        "hier_vidsitu", parts, input_dims=dims, vocabulary=verbs,
        metrics={k: v for k, v in metrics.items() if isinstance(v, float)},
        meta={"backbone": backbone, "contextualizer": contextualizer, "relations": relations, "role_vocabulary": role_vocab, "seed": seed},
    )  # fmt: skip
    return metrics, model


def score(
    test: list[Any], verbs: list[str], relations: list[str], verb_scores: np.ndarray, rel_pred: np.ndarray, role_texts: list[str]
) -> dict[str, Any]:
    """All of VidSitu's metrics (x100) for predictions on ``test`` (events in clip order)."""
    vi = {v: i for i, v in enumerate(verbs)}
    refs, ctx_dep, rel_ann, rel_hat, role_refs, role_hyp, role_verb = [], [], [], [], {}, {}, {}
    for n, it in enumerate(test):
        events = it.video.metadata["vidsitu"]["events"]
        for k, ev in enumerate(events[:5]):
            refs.append([vi[v] for v in ev["verbs"] + ev.get("vb_lst", []) if v in vi])
            ctx_dep.append(ev.get("context_dependent"))
            key = (it.id, k)
            role_refs[key] = [roles_text(a) for a in ev["args"]] or [""]
            role_hyp[key] = role_texts[n * 5 + k]
            role_verb[key] = majority(ev["verbs"])
        for j, k in enumerate(REL_SLOTS):
            ann = [r for r in events[k]["relations"] if r]
            if ann:
                rel_ann.append(ann)
                rel_hat.append(relations[int(rel_pred[n, j])])
    out: dict[str, Any] = {
        "verb_acc1": 100 * verb_accuracy_at_k(verb_scores, refs, 1),
        "verb_acc5": 100 * verb_accuracy_at_k(verb_scores, refs, 5),
        "verb_recall5": 100 * macro_recall_at_k(verb_scores, refs, 5),
    }
    flags = np.array([bool(c) for c in ctx_dep])
    if any(c is not None for c in ctx_dep):
        for name, sel in (("context_dependent", flags), ("other", ~flags)):
            if sel.any():
                out[f"verb_acc1_{name}"] = 100 * verb_accuracy_at_k(verb_scores[sel], [r for r, s in zip(refs, sel) if s], 1)
    if rel_ann:
        rm = relation_metrics(rel_hat, rel_ann)
        out["relation_top1"], out["relation_mean_class"] = 100 * rm["top1"], 100 * rm["mean_class"]
    out.update({f"role_{k}": v for k, v in role_metrics(role_refs, role_hyp, role_verb).items()})
    out["test_clips"] = len(test)
    return out
