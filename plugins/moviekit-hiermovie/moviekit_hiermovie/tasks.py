"""VidSitu tasks: the heads of one setting (``hier_vidsitu``) and the slides' ablation (``hier_ablation``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from pydantic import Field

from moviekit import MoviekitError, Task, TaskResult

from .evaluate import Contextualizer, HeadsConfig, fit_and_score
from .report import write_csv, write_report

VERB_COLUMNS = {
    "verb_acc1": "Acc@1",
    "verb_acc5": "Acc@5",
    "verb_recall5": "Recall@5",
    "verb_acc1_context_dependent": "Acc@1 context-dependent",
    "verb_acc1_other": "Acc@1 other",
}
RELATION_COLUMNS = {"relation_mean_class": "Mean Accuracy", "relation_top1": "Top1 Accuracy"}
ROLE_COLUMNS = {"role_cider": "CIDEr", "role_cider_verb": "CIDEr-verb", "role_cider_arg": "CIDEr-arg", "role_rouge_l": "ROUGE-L"}


def _tiny_setup(tmp_path: Path) -> dict:
    return {
        "before": [
            {
                "use": "hier_context_pretrain",
                "backbones": ["features"],
                "tokens": "visual",
                "width": 16,
                "ffn": 32,
                "heads": 2,
                "layers": 1,
                "epochs": 1,
            }
        ]
    }


def _tiny_items_config() -> dict:
    return {"tokens": "visual", "epochs": 1, "hidden": 16, "role_dim": 8, "context_arch": {"width": 16, "ffn": 32, "heads": 2, "layers": 1}}


class VidSituHeads(Task):
    """Trains VidSitu's verb, relation and semantic-role heads on one backbone + contextualizer and
    scores them on the test split (Acc@1/5, Recall@5; relation accuracies; CIDEr, ROUGE-L); hands on `hier_vidsitu`."""

    name = "hier_vidsitu"

    class Config(HeadsConfig):
        backbone: str = Field("backbone", description="backbone model name ('features': the items' per-event features)")
        contextualizer: Contextualizer = Field("mask", description="none, mask (the pre-trained <context_prefix><backbone>) or scratch")
        model_name: str = Field("hier_vidsitu", description="name of the model handed on")

    @classmethod
    def example_config(cls, tmp_path: Path) -> dict:
        return {"backbone": "features", **_tiny_items_config()}

    @classmethod
    def example_setup(cls, tmp_path: Path) -> dict:
        return _tiny_setup(tmp_path)

    def run(self, ctx) -> TaskResult:
        cfg = self.config
        metrics, model = fit_and_score(
            ctx, cfg, cfg.backbone, cfg.contextualizer, ctx.seed, tag=f"vidsitu-{cfg.backbone}-{cfg.contextualizer}"
        )
        model.record.name = cfg.model_name
        model.record.task = self.name
        (ctx.out_dir / "vidsitu_metrics.json").write_text(json.dumps(metrics, indent=2))
        return TaskResult(metrics=metrics, files=["vidsitu_metrics.json", *ctx.put_model(model)])


class Ablation(Task):
    """The slides' ablation: every backbone x contextualizer row trained and scored with the same heads,
    seeds and splits; writes the verb, relation and role tables (mean and std over seeds) as CSV and report.html."""

    name = "hier_ablation"

    class Config(HeadsConfig):
        backbones: list[str] = Field(
            default_factory=lambda: ["backbone_random", "backbone"],
            description="backbone models, one row group each (e.g. random-init, contrastive, supervised)",
        )
        contextualizers: list[Contextualizer] = Field(
            default_factory=lambda: ["none", "mask"], description="contextualizer settings per backbone"
        )
        seeds: list[int] = Field(
            default_factory=lambda: [0], description="seeds of the heads' initialisation and batch order; tables give mean and std"
        )
        skip_missing: bool = Field(
            True,
            description="leave out backbones whose model is not in the run (e.g. the supervised row without Kinetics weights) and say so",
        )

    @classmethod
    def example_config(cls, tmp_path: Path) -> dict:
        return {"backbones": ["features"], "contextualizers": ["none", "mask"], **_tiny_items_config()}

    @classmethod
    def example_setup(cls, tmp_path: Path) -> dict:
        return _tiny_setup(tmp_path)

    def run(self, ctx) -> TaskResult:
        cfg = self.config
        notes = []
        backbones = []
        for bb in cfg.backbones:
            if bb != "features" and bb not in ctx.models:
                if not cfg.skip_missing:
                    raise MoviekitError(f"backbones: no model '{bb}' in the run (have: {', '.join(sorted(ctx.models)) or 'none'})")
                notes.append(f"backbone {bb}: not in this run, row left out")
                continue
            backbones.append(bb)
        for bb in backbones:
            if "mask" in cfg.contextualizers and f"{cfg.context_prefix}{bb}" not in ctx.models:
                raise MoviekitError(
                    f"contextualizer mask for backbone {bb} needs the model {cfg.context_prefix}{bb}: run hier_context_pretrain with backbones [{bb}] first"
                )
        rows = []
        for bb in backbones:
            label = ctx.models[bb].record.meta.get("objective", bb) if bb in ctx.models else "features"
            for kind in cfg.contextualizers:
                per_seed = []
                for seed in cfg.seeds:
                    m, _ = fit_and_score(ctx, cfg, bb, kind, seed, tag=f"ablation-{bb}-{kind}-{seed}")
                    per_seed.append(m)
                    ctx.log(f"{self.name}: {bb} / {kind} / seed {seed}: verb Acc@1 {m['verb_acc1']:.1f}")
                row = {"backbone": bb, "pre-training": label, "contextualizer": kind, "seeds": len(cfg.seeds)}
                for key in per_seed[0]:
                    vals = [p[key] for p in per_seed if isinstance(p.get(key), float)]
                    if vals:
                        row[key] = float(np.mean(vals))
                        row[f"{key}_std"] = float(np.std(vals))
                rows.append(row)
        tables = {"verbs": VERB_COLUMNS, "relations": RELATION_COLUMNS, "roles": ROLE_COLUMNS}
        files, sections = [], []
        for name, cols in tables.items():
            out = []
            for r in rows:
                t = {"Backbone": r["backbone"], "Pre-training": r["pre-training"], "Contextualizer": r["contextualizer"]}
                for key, title in cols.items():
                    if key in r:
                        t[title] = round(r[key], 2)
                        t[f"{title} std"] = round(r[f"{key}_std"], 2)
                out.append(t)
            write_csv(ctx.out_dir / f"ablation_{name}.csv", out)
            files.append(f"ablation_{name}.csv")
            sections.append((f"{name.capitalize()} (test split, mean over {len(cfg.seeds)} seed(s))", out, ""))
        notes.append("LEA is not reported: no maintained implementation installs from PyPI.")
        notes.append("CIDEr/ROUGE-L: pycocoevalcap on a regex tokenizer (lower case, alphanumeric runs) instead of the Java PTB tokenizer.")
        write_report(ctx.out_dir / "report.html", "Hierarchical movie model: ablation", sections, notes)
        (ctx.out_dir / "ablation.json").write_text(json.dumps(rows, indent=1))
        files += ["report.html", "ablation.json"]
        summary = {f"{r['backbone']}/{r['contextualizer']}/verb_acc1": round(r["verb_acc1"], 2) for r in rows}
        return TaskResult(metrics=summary, files=files, notes=notes)
