"""Shot-scale classification and its join with the CLIP scene labels (supplementary Sec. 3.3.2).

Five MovieShots scale classes: ECS (extreme close-up), CS (close-up), MS (medium),
FS (full), LS (long).  The paper trains a 2-layer LSTM (hidden 512) on per-frame
features of pretrained ViT-B/16 sampled at 4 fps, then predicts the scale of
every MovieCLIP shot and compares the scale distribution of low-confidence
shots (top-1 CLIPSceneScore <= 0.2) with high-confidence ones (top-1 >= 0.4 and
top-k >= 0.1, k = 2..5).

Shot-scale labels file (``labels_file``): a UTF-8 CSV file.  Blank lines and
lines starting with ``#`` are ignored; the first other line is the header.
Columns:

* ``video`` (required): the video id (``Video.id`` of the run's items);
* ``shot``: the 0-based shot index in the video (``Shot.index``), or instead
* ``start`` and ``end``: the shot's time span in seconds (matched to the clip
  that overlaps it most);
* ``scale`` (required): one of ECS, CS, MS, FS, LS (case-insensitive);
* ``split`` (optional): train, val or test; empty or absent: the video's split
  (a video without a split trains).

Each row needs either ``shot`` or both ``start`` and ``end``.  Errors name the
file and line.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from moviekit import Item, Labels, ModelPart, MoviekitError, Task, TaskResult, TrainedModel, resolve_device, train_loop, write_csv

from .csvfile import iter_csv_records
from .framefeatures import Backbone, EncoderFields, MovieclipFrameFeatures, encoder_about, frame_encoder, sequence_lengths
from .videomodels import lstm_classifier, sequence_inputs

#: The MovieShots scale classes, from the closest to the widest framing.
SCALES = ("ECS", "CS", "MS", "FS", "LS")
SCALE_NAMES = {"ECS": "extreme close-up shot", "CS": "close-up shot", "MS": "medium shot", "FS": "full shot", "LS": "long shot"}


@dataclass(frozen=True)
class ScaleLabel:
    video: str
    scale: str
    shot: int | None = None
    start: float | None = None
    end: float | None = None
    split: str | None = None
    line: int = 0


def _shot_or_span(header: list[str]) -> str | None:
    if "shot" not in header and not {"start", "end"} <= set(header):
        return "the header needs a 'shot' column or both 'start' and 'end'"
    return None


def read_shot_scale_labels(path: str | Path) -> list[ScaleLabel]:
    """Parse a shot-scale labels file (format in the module docstring); errors name the file and line."""
    out: list[ScaleLabel] = []
    records = iter_csv_records(
        path, ("video", "scale"), what="shot-scale labels file", example="video,shot,scale",
        expected="video, shot or start/end, scale[, split]", check_header=_shot_or_span,
    )  # fmt: skip
    for rec in records:
        scale = rec["scale"].upper()
        if scale not in SCALES:
            raise rec.error(f"scale {rec['scale']!r} is not one of {', '.join(SCALES)}")
        shot = start = end = None
        if rec.get("shot"):
            shot = rec.shot_index()
        elif rec.get("start") and rec.get("end"):
            try:
                start, end = float(rec["start"]), float(rec["end"])
            except ValueError:
                raise rec.error(f"start/end {rec['start']!r}, {rec['end']!r} are not numbers (seconds)") from None
            if not end > start >= 0:
                raise rec.error(f"need 0 <= start < end, got start={start}, end={end}")
        else:
            raise rec.error("give the shot index or both start and end")
        split = rec.get("split") or None
        if split is not None and split not in ("train", "val", "test"):
            raise rec.error(f"split {split!r} is not train, val or test")
        out.append(ScaleLabel(rec["video"], scale, shot, start, end, split, rec.line))
    return out


def match_clip(item: Item, label: ScaleLabel) -> int | None:
    """Index in ``item.clips`` of the clip a label refers to (by shot index, or by largest time overlap)."""
    if label.shot is not None:
        return next((j for j, c in enumerate(item.clips) if c.shot_index == label.shot), None)
    best, best_overlap = None, 0.0
    for j, c in enumerate(item.clips):
        overlap = min(c.end_time, label.end) - max(c.start_time, label.start)
        if overlap > best_overlap:
            best, best_overlap = j, overlap
    return best


# -- joining with the CLIP scene labels --------------------------------------------------------


def join_scales_with_clip(predictions: Iterable[dict[str, Any]], shot_labels: Iterable[Labels]) -> list[dict[str, Any]]:
    """Per-shot scale predictions (dicts with ``video``, ``shot``, ``scale``) joined with the shots'
    CLIP :class:`~moviekit.Labels` (``movieclip_clip`` output: top-k CLIPSceneScores in ``scores``).

    Each joined row: video, shot, scale, top1_label, top1_score, topk_scores (ranks 2..k, best
    first) and labels (the CLIP multi-label assignment).  Shots without CLIP scores are left out.
    """
    by_key = {(lab.video_id, lab.shot_index): lab for lab in shot_labels}
    out = []
    for p in predictions:
        lab = by_key.get((p["video"], int(p["shot"])))
        if lab is None or not lab.scores:
            continue
        ranked = sorted(lab.scores.items(), key=lambda kv: -kv[1])
        out.append(
            {
                "video": p["video"],
                "shot": int(p["shot"]),
                "scale": p["scale"],
                "top1_label": ranked[0][0],
                "top1_score": float(ranked[0][1]),
                "topk_scores": [float(v) for _, v in ranked[1:]],
                "labels": list(lab.labels),
            }
        )
    return out


def confidence_group(
    row: dict[str, Any], low: float = 0.2, high: float = 0.4, topk: float = 0.1, rule: Literal["any", "all"] = "any"
) -> str | None:
    """``low`` (top-1 <= ``low``), ``high`` (top-1 >= ``high`` and ``rule`` of ranks 2..k >= ``topk``) or None."""
    if row["top1_score"] <= low:
        return "low"
    rest = row["topk_scores"]
    ok = (any if rule == "any" else all)(s >= topk for s in rest) if rest else False
    if row["top1_score"] >= high and ok:
        return "high"
    return None


def _counts_row(name: str, scales: list[str]) -> dict[str, Any]:
    n = len(scales)
    row: dict[str, Any] = {"group": name, "n": n}
    for s in SCALES:
        row[s] = scales.count(s)
    for s in SCALES:
        row[f"{s}_share"] = row[s] / n if n else 0.0
    row["CS+ECS_share"] = (row["CS"] + row["ECS"]) / n if n else 0.0
    row["FS+LS_share"] = (row["FS"] + row["LS"]) / n if n else 0.0
    return row


def scale_scene_tables(
    joined: list[dict[str, Any]], low: float = 0.2, high: float = 0.4, topk: float = 0.1, rule: Literal["any", "all"] = "any"
) -> dict[str, list[dict[str, Any]]]:
    """Scale statistics of joined shots, as in the supplementary's Fig. 7.

    ``by_confidence``: rows ``all``, ``low`` and ``high`` (see :func:`confidence_group`) with the
    count and share of each scale and the CS+ECS and FS+LS shares.  ``by_label``: the same per
    top-1 CLIP label (column ``group`` holds the label), most frequent label first.
    """
    groups: dict[str, list[str]] = {"all": [], "low": [], "high": []}
    labels: dict[str, list[str]] = {}
    for r in joined:
        groups["all"].append(r["scale"])
        g = confidence_group(r, low, high, topk, rule)
        if g:
            groups[g].append(r["scale"])
        labels.setdefault(r["top1_label"], []).append(r["scale"])
    by_conf = [_counts_row(name, scales) for name, scales in groups.items()]
    by_label = [_counts_row(lab, sc) for lab, sc in sorted(labels.items(), key=lambda kv: (-len(kv[1]), kv[0]))]
    return {"by_confidence": by_conf, "by_label": by_label}


# -- the task ----------------------------------------------------------------------------------


class MovieclipShotScale(Task):
    """Shot-scale classifier (ECS/CS/MS/FS/LS): a 2-layer LSTM (hidden 512) over per-frame features of each shot, trained from a MovieShots-style labels file; predicts every shot's scale and joins the predictions with the CLIP scene labels.

    Inputs come from the ``features`` modality: the paper's, each shot's own
    frames at 4 fps encoded by ViT-B/16, from a ``movieclip_frame_features``
    expert (zero-padded ``(L, D)``: the LSTM reads each shot's own length); or
    raw frame clips from a ``movieclip_frames`` expert encoded here by
    ``frame_encoder`` (``vit``: timm ViT-B/16, ``open_clip``: CLIP ViT-B/16, or
    ``thumbnail``, an 8x8 colour stand-in); or precomputed per-frame ``(T, D)``
    (zero rows at the end are padding) / per-clip ``(D,)`` features.  The
    metrics and the model record say which backbone made the features
    (``frame_features``).  Labels: ``labels_file``
    (format: module docstring of ``moviekit_movieclip.shotscale``).  Training:
    cross-entropy, Adam (lr 1e-3; the paper gives no optimiser), on the train
    rows; accuracy and macro F1 on the test rows.  Writes
    ``<out>_predictions.csv`` (every clip's scale and class probabilities),
    ``<out>_metrics.json`` and, when the items carry CLIP labels,
    ``<out>_by_confidence.csv`` and ``<out>_by_label.csv`` (scale shares of
    low / high CLIPSceneScore shots and per top-1 scene label).
    """

    name = "movieclip_shot_scale"
    version = "1"
    returns = "TaskResult; <out>_predictions.csv, <out>_metrics.json, <out>_by_confidence.csv, <out>_by_label.csv"

    class Config(EncoderFields):
        labels_file: str = Field(description="MovieShots-style CSV: video, shot (or start,end seconds), scale[, split]")
        features: str = Field(
            "frames",
            description="modality: (L, D) shot frame features (movieclip_frame_features, the paper's), per-clip frames (movieclip_frames), (T, D) or (D,) features",
        )
        frame_encoder: Backbone = Field(
            "vit",
            description="raw frames only: vit (timm ViT-B/16, the paper's), open_clip (CLIP ViT-B/16), or thumbnail (an 8x8 colour STAND-IN)",
        )
        hidden: int = Field(512, ge=1, description="LSTM hidden size (the paper: 512)")
        layers: int = Field(2, ge=1, description="LSTM layers (the paper: 2)")
        epochs: int = Field(30, ge=1, description="training epochs (not given in the paper)")
        lr: float = Field(1e-3, gt=0, description="Adam learning rate (not given in the paper)")
        batch_size: int = Field(32, ge=1, description="shots per training batch (not given in the paper)")
        checkpoint_every: int = Field(10, ge=1, description="epochs between mid-task checkpoints (a killed run resumes from the last one)")
        low_threshold: float = Field(0.2, ge=0, le=1, description="low-confidence shots: top-1 CLIPSceneScore <= this")
        high_threshold: float = Field(0.4, ge=0, le=1, description="high-confidence shots: top-1 CLIPSceneScore >= this ...")
        topk_threshold: float = Field(0.1, ge=0, le=1, description="... and ranks 2..k >= this")
        topk_rule: Literal["any", "all"] = Field(
            "any", description="high-confidence shots need any (or all) of ranks 2..k above topk_threshold"
        )
        out: str = Field("shot_scale", description="prefix of the output files")
        model_name: str | None = Field(
            None, description="name of the trained LSTM handed on (models/<name>.json + .safetensors, `ctx.model(name)`); default `out`"
        )

    @classmethod
    def example_config(cls, tmp_path: Path) -> dict[str, Any]:
        # the contract's items are v000..v011 with 10 clips (shot j = clip j) and 'visual' features
        path = Path(tmp_path) / "shot_scales.csv"
        rows = ["video,shot,scale"] + [f"v{i:03d},{j},{SCALES[(i + j) % 5]}" for i in range(12) for j in range(3)]
        path.write_text("\n".join(rows) + "\n")
        return {"labels_file": str(path), "features": "visual", "epochs": 2, "hidden": 8}

    def inputs(self, arrays: np.ndarray, encoder: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """Per-clip sequences ``(n, T, D)`` and their lengths: raw frames encoded by ``encoder`` (or thumbnails),
        features as they are (precomputed ``(T, D)``: zero rows at the end are padding)."""
        a = np.asarray(arrays)
        if a.ndim == 5 and encoder is not None:
            flat = a.reshape(-1, *a.shape[-3:])
            feats = np.concatenate([encoder.encode(flat[s : s + 64]) for s in range(0, len(flat), 64)]) if len(flat) else None
            x = feats.reshape(*a.shape[:2], -1).astype(np.float32) if feats is not None else np.zeros((0, 1, encoder.dim), np.float32)
            return x, np.full(len(x), x.shape[1], np.int64)
        x = sequence_inputs(a, self.config.grid)
        return x, (sequence_lengths(x) if a.ndim == 3 else np.full(len(x), x.shape[1], np.int64))

    def frame_features(self, ctx: Any, raw: bool, encoder: Any) -> dict[str, Any]:
        """Which backbone made the features the LSTM reads (for the metrics and the model record)."""
        cfg = self.config
        expert = getattr(ctx, "experts", {}).get(cfg.features)
        if isinstance(expert, MovieclipFrameFeatures):
            return {**expert.about(), "frames": "the shot's own frames"}
        if raw:
            about = dict(encoder.about) if encoder is not None else encoder_about(cfg.frame_encoder, cfg)
            return {**about, "frames": f"frame clips of '{cfg.features}' (movieclip_frames views, looped in short shots)"}
        return {"backbone": "precomputed", "modality": cfg.features, "stand_in": None}

    def run(self, ctx: Any) -> TaskResult:
        import torch

        cfg = self.config
        items = ctx.items
        if not items:
            raise MoviekitError(f"{self.name}: the run has no items (all failed or were excluded: see failures.jsonl and exclusions.json)")
        for it in items:
            if it.features is None or cfg.features not in it.features.arrays:
                has = sorted(it.features.arrays) if it.features else []
                raise MoviekitError(f"{self.name}: `features`: item {it.id} has no '{cfg.features}' features (has {has})")
        labels = read_shot_scale_labels(cfg.labels_file)
        by_id = {it.id: i for i, it in enumerate(items)}
        train, test, unmatched = [], [], 0
        for lab in labels:
            i = by_id.get(lab.video)
            j = match_clip(items[i], lab) if i is not None else None
            if j is None:
                unmatched += 1
                continue
            split = lab.split or items[i].video.split or "train"
            (test if split == "test" else train if split == "train" else []).append((i, j, SCALES.index(lab.scale)))
        notes = [f"{unmatched} of {len(labels)} labelled shots are not among the run's clips"] if unmatched else []
        if not train:
            raise MoviekitError(
                f"{self.name}: `labels_file`: no labelled training shot of {cfg.labels_file} is among the run's clips (check video ids, shot indices or times)"
            )

        # per-frame sequences of every clip, computed once
        raw = any(np.asarray(it.features.arrays[cfg.features]).ndim == 5 for it in items)
        encoder = None
        if raw and cfg.frame_encoder != "thumbnail":
            encoder = frame_encoder(cfg.frame_encoder, cfg, self.name, resolve_device(cfg.device))
        about = self.frame_features(ctx, raw, encoder)
        if about.get("stand_in"):
            ctx.log(f"{self.name}: the frame features are a STAND-IN ({about['model']}), not the paper's ViT-B/16")
        encoded = [self.inputs(np.asarray(it.features.arrays[cfg.features]), encoder) for it in items]
        del encoder  # the frame encoder is only needed here
        seqs, lens = [e[0] for e in encoded], [e[1] for e in encoded]
        width = max(s.shape[1] for s in seqs)  # videos padded to their own longest shot: pad to the run's
        seqs = [np.pad(s, ((0, 0), (0, width - s.shape[1]), (0, 0))) for s in seqs]
        x_train = torch.from_numpy(np.stack([seqs[i][j] for i, j, _ in train]))
        l_train = torch.from_numpy(np.stack([lens[i][j] for i, j, _ in train]))
        y_train = torch.tensor([y for *_, y in train])
        torch.manual_seed(ctx.seed)
        model = lstm_classifier(x_train.shape[-1], len(SCALES), cfg.hidden, cfg.layers).to(ctx.device)
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        loss_fn = torch.nn.CrossEntropyLoss()

        def step(idx: list[int]) -> Any:
            return loss_fn(model(x_train[idx].to(ctx.device), l_train[idx]).float(), y_train[idx].to(ctx.device))

        history = train_loop(
            model,
            step,
            len(x_train),
            opt,
            cfg.epochs,
            cfg.batch_size,
            ctx,
            ctx.seed,
            checkpoint_every=cfg.checkpoint_every,
            tag=f"{cfg.out}-train",
        )
        model.eval()
        predictions = []
        probs_all: dict[tuple[int, int], np.ndarray] = {}
        with torch.no_grad():
            for i, it in enumerate(items):
                if len(seqs[i]) == 0:
                    continue
                with ctx.autocast():
                    logits = model(torch.from_numpy(seqs[i]).to(ctx.device), torch.from_numpy(lens[i])).float()
                probs = torch.softmax(logits, -1).cpu().numpy()
                for j, c in enumerate(it.clips):
                    probs_all[(i, j)] = probs[j]
                    row = {
                        "video": it.id,
                        "shot": c.shot_index,
                        "clip": c.index,
                        "start": c.start_time,
                        "end": c.end_time,
                        "scale": SCALES[int(probs[j].argmax())],
                    }
                    row.update({f"p_{s}": float(probs[j][k]) for k, s in enumerate(SCALES)})
                    predictions.append(row)
        metrics: dict[str, Any] = {
            "n_train": len(train),
            "n_test": len(test),
            "train_loss_first": history["step_loss"][0],
            "train_loss_last": history["step_loss"][-1],
            "frame_features": about,
        }
        if test:
            from sklearn.metrics import accuracy_score, f1_score

            y_true = [y for *_, y in test]
            y_pred = [int(probs_all[(i, j)].argmax()) for i, j, _ in test]
            metrics["accuracy"] = float(accuracy_score(y_true, y_pred))
            metrics["f1_macro"] = float(f1_score(y_true, y_pred, average="macro", labels=list(range(len(SCALES))), zero_division=0))
        else:
            notes.append("no test rows in the labels file (split column or test-split videos): no accuracy")
        files = []
        pred_name = f"{cfg.out}_predictions.csv"
        write_csv(
            Path(ctx.out_dir) / pred_name, predictions, ["video", "shot", "clip", "start", "end", "scale", *[f"p_{s}" for s in SCALES]]
        )
        files.append(pred_name)
        shot_labels = [lab for it in items for lab in it.shot_labels]
        if shot_labels:
            joined = join_scales_with_clip(predictions, shot_labels)
            tables = scale_scene_tables(joined, cfg.low_threshold, cfg.high_threshold, cfg.topk_threshold, cfg.topk_rule)
            for key, rows in tables.items():
                name = f"{cfg.out}_{key}.csv"
                write_csv(Path(ctx.out_dir) / name, rows, empty_fields=("group",))
                files.append(name)
            metrics["joined_shots"] = len(joined)
            for row in tables["by_confidence"]:
                metrics[f"{row['group']}_n"] = row["n"]
        else:
            notes.append("the items have no CLIP shot labels (no movieclip_clip labeler): no scale-vs-scene tables")
        metrics_name = f"{cfg.out}_metrics.json"
        (Path(ctx.out_dir) / metrics_name).write_text(json.dumps(metrics, indent=2))
        files.append(metrics_name)
        build = {"in_dim": int(x_train.shape[-1]), "num_classes": len(SCALES), "hidden": cfg.hidden, "layers": cfg.layers}
        part = ModelPart(kind="module", component={"use": self.name, **cfg.model_dump(mode="json")}, build=build)
        trained = TrainedModel.from_modules(
            cfg.model_name or cfg.out, {"lstm": (part, model)}, task=self.name, vocabulary=list(SCALES),
            metrics={k: v for k, v in metrics.items() if isinstance(v, (int, float))}, meta={"frame_features": about},
        )  # fmt: skip
        files += ctx.put_model(trained)
        return TaskResult(metrics=metrics, files=files, notes=notes)


COMPONENTS = [MovieclipShotScale]
