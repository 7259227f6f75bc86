"""Downstream evaluation of the learnt scene representation against the frame-average and random baselines.

* ``m2s_place_retrieval``: Table 2, validation scenes query training scenes by L2 distance (faiss), P@1/5/10.
* ``m2s_place_tagging``: MovieNet place tagging, multi-label MLP, mAP.
* ``m2s_sbd``: MovieNet scene boundary detection, MLP on the scenes either side of each shot transition; AP, mIoU, Recall@3s.
* ``m2s_scene_heads``: LVU-style heads (Table 1 defaults) and the age-appropriateness style multi-class head.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from moviekit import Config, IndexConfig, MoviekitError, Task, TaskResult, multi_hot

from .common import Scene, clip_scene_ids, frame_baseline, item_scenes, random_baseline, scene_embeddings, shot_embeddings
from .heads import LVU_TABLE1, fit_head
from .metrics import mean_ap, mse, precision_at_k, sbd_metrics, top1
from .train_scene import scene_model

REPRESENTATIONS = ("learned", "frame_average", "random")


class EvalConfig(Config):
    model: str = Field("m2s_scene_cowatch", description="the trained scene model (m2s_scene_encoder) to evaluate")
    baselines: bool = Field(True, description="also evaluate the frame-average and random baselines")


def _split(ctx: Any, name: str) -> list[Any]:
    items = ctx.split(name)
    if not items and name == "val":
        items = ctx.split("test")
    if not items and name == "test":
        items = ctx.split("val")
    return items


def representations(
    ctx: Any, model: str, items: list[Any], scenes: list[Scene], baselines: bool = True, stream: str = ""
) -> dict[str, np.ndarray]:
    """Each scene embedded by the learnt scene encoder, and (with ``baselines``) the frame-average and random
    baselines; ``stream`` (the split's name) gives each split its own random vectors."""
    shot_net, scene_net, modality = scene_model(ctx, model)
    emb = shot_embeddings(shot_net, items, modality)
    out = {"learned": scene_embeddings(scene_net, emb, scenes)}
    if baselines:
        out["frame_average"] = frame_baseline(items, scenes, modality)
        out["random"] = random_baseline(len(scenes), out["learned"].shape[1], ctx.seed, stream)
    return out


def _example_setup(metadata: str = "genre") -> dict[str, Any]:
    return {"before": [{"use": "m2s_shot_encoder", "modality": "visual", "epochs": 1, "queue": 64},
                       {"use": "m2s_movie_encoder", "metadata": metadata, "epochs": 1, "max_shots": 16},
                       {"use": "m2s_scene_pairs", "movie_model": f"m2s_movie_{metadata}", "window": 3},
                       {"use": "m2s_scene_encoder", "metadata": metadata, "epochs": 1, "warmup_epochs": 0, "queue": 32, "width": 16, "heads": 2}]}  # fmt: skip


class PlaceRetrieval(Task):
    """Place retrieval (supplementary Table 2): each validation scene queries the training scenes by L2 distance; precision at 1, 5, 10 per place and over all queries.

    A retrieved scene is a hit when it carries the query's place (its first tag).  The same table is
    computed for the backbone's keyframe embeddings averaged over the scene (the paper's CLIP
    baseline, average-pooled) and for random vectors.  Writes `place_retrieval.json` and `.csv`.
    """

    name = "m2s_place_retrieval"

    class Config(EvalConfig):
        ks: tuple[int, ...] = Field((1, 5, 10), min_length=1, description="retrieved-set sizes")
        query_split: str = Field("val", description="the queries' split (the paper: validation)")
        gallery_split: str = Field("train", description="the retrieved scenes' split (the paper: training)")
        index: IndexConfig = Field(
            default_factory=IndexConfig,
            description="the faiss index: flat (exact, the default), hnsw or ivf (approximate: faster on many scenes)",
        )

    @classmethod
    def example_config(cls, tmp_path: Any) -> dict[str, Any]:
        return {"model": "m2s_scene_genre"}

    @classmethod
    def example_setup(cls, tmp_path: Any) -> dict[str, Any]:
        return _example_setup()

    def run(self, ctx: Any) -> TaskResult:
        c = self.config
        gallery_items, query_items = _split(ctx, c.gallery_split), _split(ctx, c.query_split)
        gs = [s for s in item_scenes(gallery_items) if s.places]
        qs = [s for s in item_scenes(query_items) if s.places]
        if not gs or not qs:
            raise MoviekitError(
                f"place retrieval needs place-tagged scenes in {c.gallery_split} and {c.query_split}; got {len(gs)} and {len(qs)}"
            )
        reps_g = representations(ctx, c.model, gallery_items, gs, c.baselines, c.gallery_split)
        reps_q = representations(ctx, c.model, query_items, qs, c.baselines, c.query_split)
        table = {
            name: precision_at_k(reps_g[name], [s.places for s in gs], reps_q[name], [s.places[0] for s in qs], c.ks, c.index)
            for name in reps_g
        }
        (ctx.out_dir / "place_retrieval.json").write_text(json.dumps(table, indent=1))
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["place", "queries", *[f"{name} p@{k}" for name in table for k in c.ks]])
        for place in [*sorted(table["learned"]["per_place"]), "all"]:
            rows = {name: (t["all"] if place == "all" else t["per_place"][place]) for name, t in table.items()}
            w.writerow([place, rows["learned"]["queries"], *[round(rows[name][f"p@{k}"], 2) for name in table for k in c.ks]])
        (ctx.out_dir / "place_retrieval.csv").write_text(buf.getvalue())
        metrics = {f"{name}_p@{k}": t["all"][f"p@{k}"] for name, t in table.items() for k in c.ks}
        metrics["queries"] = len(qs)
        return TaskResult(metrics=metrics, files=["place_retrieval.json", "place_retrieval.csv"])


class PlaceTagging(Task):
    """MovieNet place tagging: a multi-label MLP (two 512-d hidden layers, BCEWithLogits, SGD lr 5.0, dropout 0.25, 200 epochs, batch 512) on scene representations; mAP on the test split.

    Trained on the training scenes, the epoch kept by validation mAP; the same head is trained on
    the frame-average baseline, and random scores give the chance mAP.
    """

    name = "m2s_place_tagging"

    class Config(EvalConfig):
        hidden: list[int] = Field([512, 512], description="the paper's two 512-d hidden layers")
        lr: float = Field(5.0, gt=0, description="SGD learning rate (the paper's 5.0)")
        dropout: float = Field(0.25, ge=0, lt=1)
        epochs: int = Field(200, ge=1)
        batch_size: int = Field(512, ge=1)
        clip_grad: float | None = Field(None, gt=0, description="gradient-norm clipping (the paper gives none)")
        eval_every: int = Field(10, ge=1, description="epochs between validation checks")

    @classmethod
    def example_config(cls, tmp_path: Any) -> dict[str, Any]:
        return {"model": "m2s_scene_genre", "epochs": 2}

    @classmethod
    def example_setup(cls, tmp_path: Any) -> dict[str, Any]:
        return _example_setup()

    def run(self, ctx: Any) -> TaskResult:
        c = self.config
        parts = {s: _split(ctx, s) for s in ("train", "val", "test")}
        scenes = {s: [x for x in item_scenes(items) if x.places] for s, items in parts.items()}
        vocab = sorted({p for x in scenes["train"] for p in x.places})
        if not vocab or not scenes["test"]:
            raise MoviekitError("place tagging needs place-tagged scenes in train and test (or val)")
        reps = {s: representations(ctx, c.model, parts[s], scenes[s], c.baselines, s) for s in parts}
        ys = {s: multi_hot([x.places for x in scenes[s]], vocab) for s in parts}
        metrics: dict[str, Any] = {"places": len(vocab), "test_scenes": len(scenes["test"])}
        for name in reps["train"]:
            if name == "random":
                continue
            val_ok = len(scenes["val"]) and ys["val"].sum() > 0
            head = fit_head(reps["train"][name], ys["train"], "bce", c.hidden, c.dropout, c.lr, c.batch_size, c.epochs, ctx.seed,
                            reps["val"][name] if val_ok else None, (lambda p: mean_ap(ys["val"], p)) if val_ok else None, c.eval_every,
                            ctx=ctx, tag=f"m2s_tag_{name}", clip_grad=c.clip_grad)  # fmt: skip
            metrics[f"{name}_map"] = mean_ap(ys["test"], head.predict(reps["test"][name]))
            metrics[f"{name}_best_epoch"] = head.best_epoch
        metrics["random_map"] = mean_ap(ys["test"], np.random.default_rng([ctx.seed, 5]).uniform(size=ys["test"].shape))
        (ctx.out_dir / "place_tagging.json").write_text(json.dumps(metrics, indent=1))
        return TaskResult(metrics=metrics, files=["place_tagging.json"])


def transitions(item: Any) -> tuple[np.ndarray, np.ndarray]:
    """Ground truth of each shot transition (1 where the scene changes) and the transition times."""
    ids = clip_scene_ids(item)
    gt = ((ids[1:] != ids[:-1]) & (ids[1:] >= 0) & (ids[:-1] >= 0)).astype(np.int64)
    times = np.array([c.start_time for c in item.clips[1:]], np.float64)
    return gt, times


class SceneBoundaries(Task):
    """MovieNet scene boundary detection: for each shot transition, an MLP (two 512-d hidden layers; SGD lr 0.03, dropout 0.8, 800 epochs, batch 4096) on the scenes of the `context` shots before and after it; AP, mIoU, Recall@3s.

    The same head is trained on the frame-average baseline; random scores give the chance figures.
    Writes `sbd.json` and the test precision-recall curves to `sbd_pr.json`.
    """

    name = "m2s_sbd"

    class Config(EvalConfig):
        context: int = Field(4, ge=1, description="shots either side of a transition that make its two scenes")
        hidden: list[int] = Field([512, 512])
        lr: float = Field(0.03, gt=0, description="the paper's 0.03")
        dropout: float = Field(0.8, ge=0, lt=1, description="the paper's 0.8")
        epochs: int = Field(800, ge=1, description="the paper's 800")
        batch_size: int = Field(4096, ge=1, description="the paper's 4096")
        threshold: float = Field(0.5, gt=0, lt=1, description="boundary threshold for mIoU and Recall@3s")
        eval_every: int = Field(20, ge=1)

    @classmethod
    def example_config(cls, tmp_path: Any) -> dict[str, Any]:
        return {"model": "m2s_scene_genre", "epochs": 2, "context": 2}

    @classmethod
    def example_setup(cls, tmp_path: Any) -> dict[str, Any]:
        return _example_setup()

    def _features(self, ctx: Any, items: list[Any]) -> tuple[dict[str, np.ndarray], list[dict[str, Any]]]:
        k = self.config.context
        windows, movies = [], []
        for i, it in enumerate(items):
            n = len(it.clips)
            if n < 2:
                continue
            gt, times = transitions(it)
            frames = np.array([[c.start_frame, c.end_frame] for c in it.clips])
            movies.append({"id": it.id, "gt": gt, "times": times, "shot_frames": frames})
            for t in range(n - 1):
                windows.append(Scene(i, 2 * t, list(range(max(0, t - k + 1), t + 1))))
                windows.append(Scene(i, 2 * t + 1, list(range(t + 1, min(n, t + 1 + k)))))
        if not windows:
            return {}, movies
        reps = representations(ctx, self.config.model, items, windows, self.config.baselines)
        return {name: np.concatenate([r[0::2], r[1::2]], axis=1) for name, r in reps.items()}, movies

    def run(self, ctx: Any) -> TaskResult:
        from scipy.special import expit
        from sklearn.metrics import precision_recall_curve

        c = self.config
        feats, movies = {}, {}
        for s in ("train", "val", "test"):
            feats[s], movies[s] = self._features(ctx, _split(ctx, s))
        if not feats["train"] or not feats["test"]:
            raise MoviekitError("scene boundary detection needs movies of at least 2 shots in train and test (or val)")
        y = {s: np.concatenate([m["gt"] for m in movies[s]]) if movies[s] else np.zeros(0) for s in movies}
        if not y["train"].any() or not y["test"].any():
            note = "no ground-truth scene boundary in the train or test movies (items need metadata['scenes']); nothing to evaluate"
            return TaskResult(metrics={"test_transitions": int(len(y["test"]))}, notes=[note])

        def attach(s: str, scores: np.ndarray) -> list[dict[str, Any]]:
            out, o = [], 0
            for m in movies[s]:
                out.append({**m, "scores": scores[o : o + len(m["gt"])]})
                o += len(m["gt"])
            return out

        from sklearn.metrics import average_precision_score

        metrics: dict[str, Any] = {}
        curves = {}
        for name in feats["train"]:
            if name == "random":
                scores = np.random.default_rng([ctx.seed, 6]).uniform(size=len(y["test"]))
            else:
                val_ok = len(y["val"]) and y["val"].any()
                head = fit_head(feats["train"][name], y["train"], "bce", c.hidden, c.dropout, c.lr, c.batch_size, c.epochs, ctx.seed,
                                feats["val"][name] if val_ok else None, (lambda p: average_precision_score(y["val"], p.ravel())) if val_ok else None,
                                c.eval_every, ctx=ctx, tag=f"m2s_sbd_{name}")  # fmt: skip
                scores = expit(head.predict(feats["test"][name]).ravel())  # a stable sigmoid: no overflow on large logits
            m = sbd_metrics(attach("test", scores), c.threshold)
            metrics.update({f"{name}_{k}": v for k, v in m.items() if k in ("ap", "miou", "recall_at_3s")})
            p, r, _ = precision_recall_curve(y["test"], scores)
            curves[name] = {"precision": p[:: max(1, len(p) // 200)].tolist(), "recall": r[:: max(1, len(r) // 200)].tolist()}
        metrics["test_transitions"] = int(len(y["test"]))
        metrics["test_positive_rate"] = float(y["test"].mean())
        (ctx.out_dir / "sbd.json").write_text(json.dumps(metrics, indent=1))
        (ctx.out_dir / "sbd_pr.json").write_text(json.dumps(curves))
        return TaskResult(metrics=metrics, files=["sbd.json", "sbd_pr.json"])


class HeadSpec(BaseModel):
    """One scene-level head: which label it predicts and how it is trained (defaults: Table 1 for LVU task names)."""

    model_config = ConfigDict(extra="forbid")

    label: str | None = Field(None, description="scene label key (scene, genre, year, like_ratio, activity, ...); default the head's name")
    kind: Literal["classification", "regression"] = "classification"
    hidden: list[int] = Field([512], description="hidden layers (LVU heads: one; the age-appropriateness head: [512, 512])")
    lr: float | None = Field(None, gt=0, description="default Table 1's for an LVU task name, else 0.1")
    batch_size: int | None = Field(None, ge=1)
    epochs: int | None = Field(None, ge=1)
    dropout: float | None = Field(None, ge=0, lt=1)
    clip_grad: float | None = Field(
        None,
        ge=0,
        description="gradient-norm clipping per step (0: none); default 0.1 for regression (MSE at Table 1's lr 0.1 diverges to NaN "
        "without it), none for classification",
    )


#: Regression heads' default gradient-norm clip: at Table 1's lr 0.1 (SGD, momentum 0.9, batch 16) an MSE head on standardised
#: 256-d inputs diverges to NaN in its first epoch; a clip of 1.0 still oscillates above the chance MSE, 0.1 converges.
REGRESSION_CLIP = 0.1


class SceneHeads(Task):
    """LVU-style heads on scene representations: one MLP per task (Table 1's lr, batch, epochs, dropout by default), top-1 accuracy or MSE on test, the epoch selected on validation only.

    Regression heads learn train-standardised targets with the gradient norm clipped (`clip_grad`);
    their MSE is reported in the targets' own units.

    Also the age-appropriateness style classifier: a generic multi-class head (3-layer MLP, 512
    hidden) on any scene label, e.g. `age: {label: activity, hidden: [512, 512]}`.  Every head is
    also trained on the frame-average baseline; the majority class (or the train mean) is the chance
    figure.
    """

    name = "m2s_scene_heads"

    class Config(EvalConfig):
        heads: dict[str, HeadSpec] = Field(
            default_factory=lambda: {
                "scene": HeadSpec(),
                "genre": HeadSpec(),
                "year": HeadSpec(),
                "like_ratio": HeadSpec(kind="regression"),
            },
            description="head name -> spec; LVU task names (scene, genre, year, director, writer, relationship, way_speaking, like_ratio, view_count) default to Table 1",
        )
        epochs_scale: float = Field(1.0, gt=0, le=1, description="multiply every head's epochs (CPU runs); 1 keeps Table 1's")
        eval_every: int = Field(10, ge=1)

    @classmethod
    def example_config(cls, tmp_path: Any) -> dict[str, Any]:
        return {"model": "m2s_scene_genre", "heads": {"genre": {"epochs": 2}}}

    @classmethod
    def example_setup(cls, tmp_path: Any) -> dict[str, Any]:
        return _example_setup()

    def run(self, ctx: Any) -> TaskResult:
        c = self.config
        parts = {s: _split(ctx, s) for s in ("train", "val", "test")}
        scenes = {s: item_scenes(items) for s, items in parts.items()}
        reps = {s: representations(ctx, c.model, parts[s], scenes[s], c.baselines, s) for s in parts}
        metrics: dict[str, Any] = {}
        for hname, spec in c.heads.items():
            label = spec.label or hname
            table = LVU_TABLE1.get(hname, {"lr": 0.1, "batch_size": 128, "epochs": 400, "dropout": 0.1})
            lr, bs = spec.lr or table["lr"], spec.batch_size or int(table["batch_size"])
            epochs = max(1, round((spec.epochs or int(table["epochs"])) * c.epochs_scale))
            dropout = spec.dropout if spec.dropout is not None else table["dropout"]
            clip = spec.clip_grad if spec.clip_grad is not None else (REGRESSION_CLIP if spec.kind == "regression" else 0.0)
            idx = {s: [k for k, x in enumerate(scenes[s]) if x.labels.get(label) is not None] for s in parts}
            if not idx["train"] or not idx["test"]:
                metrics[f"{hname}_skipped"] = f"no '{label}' labels in train or test"
                continue
            vals = {s: [scenes[s][k].labels[label] for k in idx[s]] for s in parts}
            if spec.kind == "classification":
                classes = sorted({str(v) for v in vals["train"]})
                cid = {v: i for i, v in enumerate(classes)}
                ys = {s: np.array([cid.get(str(v), -1) for v in vals[s]]) for s in parts}
                score = top1
                loss = "ce"
                chance = float(np.mean(ys["test"] == np.bincount(ys["train"]).argmax()))
            else:
                ys = {s: np.array(vals[s], np.float64) for s in parts}
                score = lambda p, yv: -mse(p, yv)  # noqa: E731  (higher is better for validation selection)
                loss = "mse"
                chance = float(((ys["test"] - ys["train"].mean()) ** 2).mean())
            for name in reps["train"]:
                if name == "random":
                    continue
                xs = {s: reps[s][name][idx[s]] for s in parts}
                train_mask = ys["train"] >= 0 if loss == "ce" else np.ones(len(ys["train"]), bool)
                val_ok = len(idx["val"]) > 0
                yv = ys["val"]
                head = fit_head(xs["train"][train_mask], ys["train"][train_mask], loss, spec.hidden, dropout, lr, bs, epochs, ctx.seed,
                                xs["val"] if val_ok else None, (lambda p, yv=yv, score=score: score(p, yv)) if val_ok else None, c.eval_every,
                                ctx=ctx, tag=f"m2s_head_{hname}_{name}", clip_grad=clip or None)  # fmt: skip
                s = score(head.predict(xs["test"]), ys["test"])
                metrics[f"{hname}_{name}_{'top1' if loss == 'ce' else 'mse'}"] = s if loss == "ce" else -s
            metrics[f"{hname}_chance_{'top1' if spec.kind == 'classification' else 'mse'}"] = chance
        (ctx.out_dir / "scene_heads.json").write_text(json.dumps(metrics, indent=1))
        return TaskResult(metrics=metrics, files=["scene_heads.json"])


COMPONENTS = [PlaceRetrieval, PlaceTagging, SceneBoundaries, SceneHeads]
