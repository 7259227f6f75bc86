"""LVU heads (Wu & Krähenbühl, CVPR 2021) on the hierarchical model's tokens, and the slides' rank table.

An LVU run reads one of the nine tasks with the core's ``lvu`` source (classification: the
clip's class id is its label; regression: ``metadata["target"]``).  For every setting
(backbone x contextualizer) each video becomes one vector: its 2-s clip tokens, contextualized
window by window (``window`` tokens, the length the contextualizer was pre-trained on) by the
frozen pre-trained contextualizer (or just layer-normed for ``none``), averaged.  A small MLP
head is trained on the train split and scored on the test split: top-1 accuracy (%) or MSE.
``lvu.json`` holds the scores; given other runs' ``lvu.json`` (``summary_from``: one run per
LVU task), ``lvu_ranks.csv`` is the slides' summary: per setting, the tasks where it ranks
first and its mean rank.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from moviekit import Config, MoviekitError, Task, TaskResult, mlp, train_loop

from .metrics import rank_summary
from .report import write_csv
from .tokens import clip_tokens


class LVUHeads(Task):
    """LVU heads (top-1 for the classification tasks, MSE for the regression ones) on contextualized clip
    tokens, per backbone x contextualizer setting; with other runs' results, the rank table (top-1 count, mean rank)."""

    name = "hier_lvu"

    class Config(Config):
        backbones: list[str] = Field(
            default_factory=lambda: ["backbone"], description="backbone models ('features': the items' own per-clip features)"
        )
        contextualizers: list[Literal["none", "mask"]] = Field(
            default_factory=lambda: ["none", "mask"],
            description="none: layer-normed tokens; mask: the frozen pre-trained <context_prefix><backbone>",
        )
        context_prefix: str = Field("context_", description="the contextualizer of backbone B is the model <prefix>B")
        window: int = Field(5, ge=1, description="tokens contextualized together (the pre-training length: 5 events)")
        epochs: int = Field(50, ge=1)
        batch_size: int = Field(16, ge=1)
        lr: float = Field(1e-3, gt=0)
        hidden: int = Field(256, ge=1)
        test_split: str = Field("test", description="split scored (val when it is empty)")
        frames: str = Field("frames", description="modality of the frame stacks")
        tokens: str = Field("tokens", description="modality of per-clip features (backbone 'features')")
        summary_from: list[Path] = Field(
            default_factory=list, description="lvu.json files of other LVU runs (other tasks) for the rank table"
        )

    @classmethod
    def example_config(cls, tmp_path: Path) -> dict:
        return {"backbones": ["features"], "contextualizers": ["none"], "tokens": "visual", "epochs": 2}

    def _embed(self, ctx, backbone: str, kind: str, items: list) -> np.ndarray:
        import torch
        import torch.nn.functional as F

        toks = clip_tokens(ctx, backbone, items, self.config.frames, self.config.tokens)
        if kind == "none":
            return np.stack([F.layer_norm(torch.from_numpy(t), t.shape[-1:]).mean(0).numpy() for t in toks])
        model = ctx.model(f"{self.config.context_prefix}{backbone}")
        from moviekit import build_part

        net = build_part(model.record.parts["contextualizer"])
        net.load_state_dict(model.part_state("contextualizer"))
        net = net.to(ctx.device).eval()
        out = []
        w = self.config.window
        with torch.no_grad():
            for t in toks:
                x = torch.from_numpy(t).to(ctx.device)
                pad = (-len(x)) % w
                x = torch.cat([x, x.new_zeros(pad, x.shape[1])]).view(-1, w, x.shape[1])
                valid = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
                if pad:
                    valid[-1, w - pad :] = False
                h = net.contextualize(x, valid)
                out.append(h[valid].mean(0).float().cpu().numpy())
        return np.stack(out)

    def run(self, ctx) -> TaskResult:
        import torch
        import torch.nn.functional as F

        cfg = self.config
        train = [it for it in ctx.split("train") if it.features is not None]
        test = [it for it in (ctx.split(cfg.test_split) or ctx.split("val")) if it.features is not None]
        if not train or not test:
            raise MoviekitError(f"needs train and {cfg.test_split} (or val) items; got {len(train)} train, {len(test)} test")
        regression = any("target" in it.video.metadata for it in train)
        task = next((it.video.metadata.get("lvu_task") for it in train if it.video.metadata.get("lvu_task")), "lvu")
        classes = sorted({lab for it in train for lab in it.video.labels}) if not regression else []

        def targets(items):
            if regression:
                return torch.tensor([float(it.video.metadata["target"]) for it in items])
            index = {c: i for i, c in enumerate(classes)}
            return torch.tensor([index.get(it.video.labels[0], -100) if it.video.labels else -100 for it in items])

        y_train, y_test = targets(train), targets(test)
        mu, sd = (y_train.mean(), y_train.std().clamp_min(1e-6)) if regression else (0.0, 1.0)
        scores = {}
        for bb in cfg.backbones:
            for kind in cfg.contextualizers:
                x_train = torch.from_numpy(self._embed(ctx, bb, kind, train))
                x_test = torch.from_numpy(self._embed(ctx, bb, kind, test))
                torch.manual_seed(ctx.seed)
                head = mlp([x_train.shape[1], cfg.hidden, 1 if regression else len(classes)]).to(ctx.device)
                opt = torch.optim.AdamW(head.parameters(), lr=cfg.lr)

                def step(idx, head=head, x_train=x_train):
                    out = head(x_train[idx].to(ctx.device))
                    y = y_train[idx].to(ctx.device)
                    return F.mse_loss(out.squeeze(1), (y - mu) / sd) if regression else F.cross_entropy(out, y, ignore_index=-100)

                train_loop(head, step, len(x_train), opt, cfg.epochs, cfg.batch_size, ctx, seed=ctx.seed, tag=f"lvu-{bb}-{kind}")
                head.eval()
                with torch.no_grad():
                    out = head(x_test.to(ctx.device)).cpu()
                if regression:
                    scores[f"{bb}/{kind}"] = float(F.mse_loss(out.squeeze(1) * sd + mu, y_test))
                else:
                    ok = (out.argmax(1) == y_test)[y_test >= 0]
                    scores[f"{bb}/{kind}"] = 100 * float(ok.float().mean()) if len(ok) else float("nan")
        record = {
            "task": task,
            "kind": "regression" if regression else "classification",
            "higher_is_better": not regression,
            "scores": scores,
        }
        (ctx.out_dir / "lvu.json").write_text(json.dumps(record, indent=1))
        files = ["lvu.json"]
        runs = [record]
        for p in cfg.summary_from:
            try:
                runs.append(json.loads(Path(p).read_text()))
            except (OSError, json.JSONDecodeError) as e:
                raise MoviekitError(f"summary_from: {p}: not a readable lvu.json ({e})") from None
        per_setting: dict[str, dict[str, float]] = {}
        for r in runs:
            for s, v in r["scores"].items():
                per_setting.setdefault(s, {})[r["task"]] = v
        ranks = rank_summary(per_setting, {r["task"]: r["higher_is_better"] for r in runs})
        write_csv(
            ctx.out_dir / "lvu_ranks.csv",
            [{"setting": s, "top1_rank": f"{v['top1']}/{v['tasks']}", "mean_rank": round(v["mean_rank"], 2)} for s, v in ranks.items()],
        )
        files.append("lvu_ranks.csv")
        metric = "mse" if regression else "top1"
        return TaskResult(metrics={f"{task}_{metric}/{s}": round(v, 3) for s, v in scores.items()}, files=files)
