"""``movieclip_scene_classifier`` (Task): video scene recognition trained on the CLIP shot labels (supplementary Sec. 4.1-4.2).

Multi-label scene classifiers trained on the shots' CLIP labels: the paper's mmaction2 recognizers
(I3D, SlowFast, R(2+1)D, TimeSformer, Video Swin; :mod:`.videomodels`) with its settings as defaults,
and a light 2-layer LSTM baseline; BCE with per-class positive weights; mAP on a human-verified test
list (:mod:`.testlist`, which documents the format).  The frame clips come from the ``movieclip_frames``
expert (:mod:`.frames`); training crops and test views from :mod:`.views`.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from moviekit import (
    Config,
    Item,
    ModelPart,
    MoviekitError,
    Task,
    TaskResult,
    TrainedModel,
    WeightsSpec,
    classification_report,
    multi_hot,
    pos_weights,
    train_loop,
    warmup_cosine,
)
from moviekit.backends.openclip import is_test_only

from .frames import MovieclipFrames
from .heads import write_report
from .testlist import VerifiedShot, mean_average_precision, read_test_list, write_test_list  # noqa: F401 - re-exported (the test-list format is documented here)
from .videomodels import PAPER_SETTINGS, STEP_GAMMA, build_recognizer, kinetics_spec, lstm_classifier, sequence_inputs
from .views import Box, crop_resize, three_crop_boxes, train_crop_box, view_starts

# -- the task ---------------------------------------------------------------------------------


def label_provenance(resolved: Any) -> dict[str, Any] | None:
    """Which labeler (and model) made a run's shot labels, from its resolved recipe; None without a labeler.

    A test-only model (name with ``TEST-ONLY``) is flagged, so that the metrics of a classifier trained
    on its meaningless labels say so where the model is named.
    """
    rc = resolved.component("labeler") if resolved is not None and hasattr(resolved, "component") else None
    if rc is None:
        return None
    out: dict[str, Any] = {"labeler": rc.cls.name}
    model = getattr(rc.config, "model", None)
    if model is None:
        return out
    out["model"] = str(model)
    out["pretrained"] = getattr(rc.config, "pretrained", None)
    out["test_only"] = is_test_only(str(model))
    if out["test_only"]:
        out["warning"] = (
            f"the shot labels come from {model}, a tiny RANDOM open_clip model for tests only: they and these scores are meaningless"
        )
    return out


def _list_format(path: str, declared: str) -> str:
    """The format a shot list was read in: the declared one, or the detected one under ``auto``."""
    from .published import detect_format

    return detect_format(path) if declared == "auto" else declared


@dataclass
class _Sample:
    item: int
    clip: int
    video: str
    shot: int
    labels: list[str]


class MovieclipSceneClassifier(Task):
    """MovieCLIP video scene recognition: a multi-label scene classifier trained on the shots' CLIP labels (mmaction2 I3D / SlowFast / R(2+1)D / TimeSformer / Video Swin, or a 2-layer LSTM baseline), scored by mAP on a human-verified test list.

    Training samples are the clips of the training items whose shot has CLIP
    labels (``Item.shot_labels[*].labels`` from ``movieclip_clip``;
    ``label_source: video`` uses each video's labels for all its shots;
    ``label_source: file`` the shot labels of ``train_labels``).  Shots in
    ``test_list`` (moviekit's CSV, module docstring of ``moviekit_movieclip.testlist``,
    or the authors' published lines with their label map, ``moviekit_movieclip.published``;
    ``test_list_format`` detects or declares which) are held out and scored against their verified labels; without a list the
    test split's shots are scored against their CLIP labels.  Loss: BCE with
    per-class positive weights (negatives/positives on the training shots).
    The mmaction2 models read the ``frames`` modality (``movieclip_frames``);
    ``lstm`` reads ``features`` (per-clip ``(D,)``, per-frame ``(T, D)`` or raw
    frames, turned into cheap 8x8 thumbnails).  Unset training fields take the
    paper's values for the model (``PAPER_SETTINGS``).  Writes
    ``<out>_metrics.json`` (mAP = mean over classes with a positive of
    scikit-learn's average precision), ``<out>_per_class.csv`` and
    ``<out>_scores.npz`` (y_true, scores, vocabulary, video, shot).
    """

    name = "movieclip_scene_classifier"
    version = "1"
    returns = "TaskResult; <out>_metrics.json, <out>_per_class.csv, <out>_scores.npz"

    class Config(Config):
        model: Literal["i3d", "slowfast", "r2plus1d", "timesformer", "swin", "lstm"] = Field(
            "swin", description="the paper's best model is Video Swin (Swin-B)"
        )
        frames: str = Field("frames", description="modality holding per-clip frames (the recipe key of a movieclip_frames expert)")
        features: str | None = Field(None, description="lstm: modality to read (unset: `frames`)")
        label_source: Literal["clip", "video", "file"] = Field(
            "clip",
            description="clip: the shots' CLIP labels; video: every shot takes its video's labels; file: the shot labels of `train_labels`",
        )
        taxonomy: str | None = Field(
            None,
            description="vocabulary file (CSV 'label' column or one per line); unset: the packaged 179 labels (label_source clip) or the run's vocabulary (video)",
        )
        labels: list[str] | None = Field(None, description="inline vocabulary instead of a taxonomy file")
        test_list: str | None = Field(
            None,
            description="human-verified test list, moviekit's CSV video,shot,labels or the authors' published lines '<video>/<shot file>.mp4 <idx> [<idx> ...]'; unset: the test split's shots with their training labels",
        )
        test_list_format: Literal["auto", "published", "moviekit"] = Field(
            "auto",
            description="format of `test_list` and `train_labels`: auto (detected from the first line), published (the authors' split_files/ lines) or moviekit (CSV)",
        )
        label_map: str | None = Field(
            None,
            description="label map of published-format lists (the authors' multi_label_thresh_0_4_0_1_label_map.json, {label: index}); unset: that file beside the list. With label_source file and no taxonomy/labels it is also the vocabulary",
        )
        train_labels: str | None = Field(
            None,
            description="label_source file: shot list (either format, like `test_list`) whose labels train the classifier, e.g. the authors' train_multi_label_thresh_0_4_0_1_150_labels.txt",
        )
        pretrained: str | None = Field(
            None,
            description="weights to start from (matching tensors are loaded): `kinetics` for the model's Kinetics-400 checkpoint in $MOVIEKIT_WEIGHTS/mmaction2-<model>-kinetics400/ (or the cache), or a local checkpoint file/folder (.safetensors, or a torch file read with weights_only=True); unset: from scratch",
        )
        backbone: dict[str, Any] = Field(
            default_factory=dict, description="overrides of the paper's mmaction2 backbone config (e.g. a small depth)"
        )
        head_in_channels: int | None = Field(
            None, description="input channels of the classifier; unset: the paper backbone's, or measured when `backbone` is overridden"
        )
        dropout: float | None = Field(None, ge=0, lt=1, description="classifier dropout; unset: mmaction2's default for the head")
        input_size: int | None = Field(None, ge=8, description="frames are resized to input_size^2 before the model; unset: 224")
        flip: bool = Field(True, description="random horizontal flip (ratio 0.5) while training")
        train_crop: Literal["multiscale", "random_resized", "rescale_crop", "none"] | None = Field(
            None,
            description="training crop, resized to input_size: unset: the paper's (i3d multiscale; timesformer rescale_crop; slowfast, r2plus1d, swin random_resized; lstm none)",
        )
        crop_scales: list[float] = Field(
            default_factory=lambda: [1.0, 0.8],
            min_length=1,
            description="multiscale: crop sides as fractions of the shorter side (the paper: 1, 0.8)",
        )
        crop_area: tuple[float, float] = Field(
            (0.08, 1.0), description="random_resized: range of the crop's area fraction (mmaction2's default; not in the paper)"
        )
        rescale: tuple[int, int] = Field(
            (256, 320), description="rescale_crop: shorter-side range of RandomRescale before the 224 crop (the paper: 256, 320)"
        )
        clip_len: int | None = Field(
            None,
            ge=1,
            description="frames per temporal view in the frames arrays; unset: the movieclip_frames expert's clip_len (the whole array is one view without one)",
        )
        test_clips: int | None = Field(
            None,
            ge=1,
            description="temporal views averaged per test shot (evenly spaced among the stored ones); unset: the paper's (10 i3d/slowfast/r2plus1d, 4 swin, 1 timesformer)",
        )
        test_crops: Literal[1, 3] | None = Field(
            None, description="3: ThreeCrop, 1: centre crop per temporal view; unset: the paper's 3 (lstm: 1, no cropping)"
        )
        test_size: int | None = Field(
            None,
            ge=8,
            description="side of the test crops; unset: the paper's ratio to input_size (256/224 for the 3D CNNs, 1 for the transformers)",
        )
        source_aspect: float | None = Field(
            None,
            gt=0,
            description="width/height of the original frames when the stored ones are squashed (movieclip_frames `resize: squash`); ThreeCrop windows are squares of the original; unset: the stored frames' own (they keep the aspect ratio by default)",
        )
        checkpoint_every: int = Field(10, ge=1, description="epochs between mid-task checkpoints (a killed run resumes from the last one)")
        epochs: int | None = Field(None, ge=1, description="unset: the paper's for the model")
        batch_size: int | None = Field(None, ge=1, description="unset: the paper's for the model")
        lr: float | None = Field(None, gt=0, description="unset: the paper's for the model")
        weight_decay: float | None = Field(None, ge=0, description="unset: the paper's for the model")
        clip_grad: float | None = Field(
            40.0, gt=0, description="maximum gradient norm (the paper: 40); the lstm baseline ignores it unless set explicitly"
        )
        max_steps: int | None = Field(None, ge=1, description="stop after this many optimiser steps (smoke tests)")
        lstm_hidden: int = Field(512, ge=1, description="lstm: hidden size (not given in the paper; the shot-scale LSTM's 512)")
        lstm_layers: int = Field(2, ge=1, description="lstm: number of LSTM layers")
        grid: int = Field(8, ge=1, description="lstm on raw frames: thumbnail grid of the cheap frame feature")
        pos_weight: bool = Field(True, description="per-class positive weights in the BCE")
        threshold: float = Field(0.5, gt=0, lt=1, description="sigmoid threshold of the thresholded metrics")
        eval_batch: int = Field(16, ge=1, description="shots per forward pass when scoring the test shots")
        out: str = Field("scene", description="prefix of the output files")
        model_name: str | None = Field(
            None,
            description="name of the trained scene classifier handed on (models/<name>.json + .safetensors, `ctx.model(name)`); default `out`",
        )

        @model_validator(mode="after")
        def _one_vocab(self) -> MovieclipSceneClassifier.Config:
            if self.taxonomy is not None and self.labels is not None:
                raise ValueError("give either `taxonomy` or `labels`, not both")
            if (self.label_source == "file") != (self.train_labels is not None):
                raise ValueError("`label_source: file` and `train_labels` go together: give both, or neither")
            return self

    @classmethod
    def example_config(cls, tmp_path: Path) -> dict[str, Any]:
        # the contract's items have per-clip 'visual' features and video labels a/b/c
        return {"model": "lstm", "features": "visual", "label_source": "video", "epochs": 2, "lstm_hidden": 8, "batch_size": 8}

    def weights(self) -> list[WeightsSpec]:
        cfg = self.config
        return [kinetics_spec(cfg.model, cfg.pretrained)] if cfg.pretrained and cfg.model != "lstm" else []

    def settings(self) -> dict[str, Any]:
        """The paper's settings for the model with the config's explicit values on top."""
        cfg = self.config
        s = dict(PAPER_SETTINGS[cfg.model])
        for key in ("epochs", "batch_size", "lr", "weight_decay", "input_size", "train_crop", "test_clips", "test_crops"):
            if getattr(cfg, key) is not None:
                s[key] = getattr(cfg, key)
        if s["input_size"] is not None:
            s["test_size"] = cfg.test_size or int(round(s["input_size"] * s["test_scale"]))
        if cfg.model != "lstm" or "clip_grad" in cfg.model_fields_set:
            s["clip_grad"] = cfg.clip_grad
        return s

    def vocabulary(self, ctx: Any) -> list[str]:
        cfg = self.config
        if cfg.label_source == "file" and cfg.labels is None and cfg.taxonomy is None and cfg.label_map is not None:
            from .published import read_label_map

            return read_label_map(cfg.label_map)
        if cfg.labels is not None or cfg.taxonomy is not None or cfg.label_source in ("clip", "file"):
            from .taxonomy import resolve_taxonomy

            return list(resolve_taxonomy(cfg.taxonomy, cfg.labels).labels)
        return list(ctx.vocabulary)

    # -- samples --

    def samples(
        self, items: list[Item], vocab: list[str], file_labels: dict[tuple[str, int], tuple[str, ...]] | None = None
    ) -> list[_Sample]:
        """One sample per clip with its training labels (from ``label_source``; ``file_labels`` for ``file``)."""
        index = set(vocab)
        source = self.config.label_source
        out = []
        for i, it in enumerate(items):
            by_shot = {lab.shot_index: lab.labels for lab in it.shot_labels}
            for j, c in enumerate(it.clips):
                if source == "file":
                    labs = list((file_labels or {}).get((it.id, c.shot_index), ()))
                else:
                    labs = by_shot.get(c.shot_index, []) if source == "clip" else it.video.labels
                labs = [lab for lab in labs if lab in index]
                out.append(_Sample(i, j, it.id, c.shot_index, labs))
        return out

    def view_length(self, ctx: Any, n_frames: int, notes: list[str]) -> int:
        """Frames per temporal view: ``clip_len``, else the ``frames`` expert's; the whole sequence when it does not divide it."""
        cfg = self.config
        expert = getattr(ctx, "experts", {}).get(cfg.features or cfg.frames if cfg.model == "lstm" else cfg.frames)
        clip_len = cfg.clip_len or (expert.config.clip_len if isinstance(expert, MovieclipFrames) else n_frames)
        if n_frames % clip_len:
            notes.append(f"{n_frames} frames per shot are not a whole number of {clip_len}-frame views: one view per shot")
            return n_frames
        return clip_len

    def _modality(self, items: list[Item], key: str, field: str) -> None:
        for it in items:
            if it.features is None or key not in it.features.arrays:
                has = sorted(it.features.arrays) if it.features else []
                raise MoviekitError(
                    f"{self.name}: `{field}`: item {it.id} has no '{key}' features (has {has}); "
                    + ("add a movieclip_frames expert under that key" if field == "frames" else "name one of its modalities")
                )

    # -- models --

    @classmethod
    def rebuild(cls, trained: TrainedModel) -> tuple[MovieclipSceneClassifier, Any]:
        """The task config and the network of a scene classifier this task trained (``ctx.model(name)``), with its
        trained weights, in eval mode."""
        part = trained.record.parts.get("model")
        if part is None or part.component.get("use") != cls.name:
            made_by = trained.record.task or (part.component.get("use") if part else "?")
            raise MoviekitError(f"model '{trained.name}' is not a {cls.name} model (it was trained by {made_by})")
        fields = {k: v for k, v in part.component.items() if k != "use"}
        task = cls(**{**fields, "pretrained": None})  # the weights are the trained model's
        example = np.zeros(part.build["example_shape"], np.float32)
        net = task._build(task.settings(), int(part.build["num_classes"]), example)
        trained.load_part("model", net)
        return task, net.eval()

    def _build(self, s: dict[str, Any], n_classes: int, example: np.ndarray) -> Any:
        cfg = self.config
        if cfg.model == "lstm":
            return lstm_classifier(example.shape[-1], n_classes, cfg.lstm_hidden, cfg.lstm_layers)
        return build_recognizer(
            cfg.model,
            n_classes,
            int(example.shape[0]),
            int(s["input_size"]),
            cfg.backbone,
            cfg.head_in_channels,
            cfg.dropout,
            cfg.pretrained,
            self.name,
        )

    def _optimizer(self, s: dict[str, Any], model: Any, steps_per_epoch: int) -> tuple[Any, Any, str]:
        import torch

        params = [p for p in model.parameters() if p.requires_grad]
        if s["optimizer"] == "sgd":
            opt = torch.optim.SGD(params, lr=s["lr"], momentum=s["momentum"], weight_decay=s["weight_decay"], nesterov=s["nesterov"])
        elif s["optimizer"] == "adamw":
            opt = torch.optim.AdamW(params, lr=s["lr"], betas=s["betas"], weight_decay=s["weight_decay"])
        else:
            opt = torch.optim.Adam(params, lr=s["lr"], betas=s["betas"], eps=s.get("eps", 1e-8), weight_decay=s["weight_decay"])
        if s["schedule"] == "step":
            return opt, torch.optim.lr_scheduler.MultiStepLR(opt, milestones=s["milestones"], gamma=STEP_GAMMA), "epoch"
        if s["schedule"] == "cosine":
            total = s["epochs"] * steps_per_epoch
            return opt, warmup_cosine(opt, int(round(s["warmup_epochs"] * steps_per_epoch)), total, peak_in_warmup=True), "iter"
        return opt, None, "epoch"

    def _video_batch(self, clips: Any, s: dict[str, Any], device: Any, boxes: list[Box], size: int, flip: Any = None) -> Any:
        """B uint8 ``(T, H, W, 3)`` clips (their H, W may differ) -> normalised ``(B, 1, 3, T, size, size)``: sample
        b's ``boxes[b]`` window resized to ``size``, mirrored where ``flip[b]``."""
        import torch

        def one(c: np.ndarray, box: Box) -> Any:
            x = torch.from_numpy(np.ascontiguousarray(c)).to(device).float().permute(0, 3, 1, 2)  # T C H W
            return crop_resize(x, box, size)

        x = torch.stack([one(c, box) for c, box in zip(clips, boxes, strict=True)])
        mean = torch.tensor(s["mean"], device=device).view(1, 1, 3, 1, 1)
        std = torch.tensor(s["std"], device=device).view(1, 1, 3, 1, 1)
        x = (x - mean) / std
        if flip is not None and flip.any():
            x[flip] = x[flip].flip(-1)
        return x.permute(0, 2, 1, 3, 4).unsqueeze(1).contiguous()

    def _train_inputs(self, arrays: Any, s: dict[str, Any], clip_len: int, device: Any, gen: Any) -> Any:
        """A training batch: one stored temporal view drawn per sample, then (video models) the paper's crop and flip.
        ``arrays``: B per-sample arrays (frames of different samples may differ in height and width)."""
        import torch

        n_views = max(1, len(arrays[0]) // clip_len)
        starts = torch.randint(n_views, (len(arrays),), generator=gen).tolist()
        views = [a[v * clip_len : (v + 1) * clip_len] for a, v in zip(arrays, starts)]
        if self.config.model == "lstm":
            return torch.from_numpy(np.stack(views)).to(device)
        cfg = self.config
        boxes = [train_crop_box(*v.shape[1:3], s["train_crop"], gen, cfg.crop_scales, cfg.crop_area, cfg.rescale) for v in views]
        flip = (torch.rand(len(views), generator=gen) < 0.5).to(device) if cfg.flip else None
        return self._video_batch(views, s, device, boxes, int(s["input_size"]), flip)

    def shot_scores(
        self,
        forward: Any,
        arrays: np.ndarray,
        s: dict[str, Any],
        clip_len: int,
        device: Any,
        autocast: Any = contextlib.nullcontext,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Test scores of shots: sigmoid probabilities of ``forward(view)`` averaged over ``test_clips`` temporal
        views x ``test_crops`` spatial crops (lstm: temporal views only).  Returns ``(scores (B, C), per_view (B, V, C))``."""
        import torch

        per_view = []
        with torch.no_grad():
            for x in self.test_views(arrays, s, clip_len, device):
                with autocast():
                    logits = forward(x)
                per_view.append(torch.sigmoid(logits.float()).cpu().numpy())
        stacked = np.stack(per_view, axis=1)
        return stacked.mean(1), stacked

    def test_views(self, arrays: Any, s: dict[str, Any], clip_len: int, device: Any) -> Any:
        """The model inputs of the test views of B shots (B per-shot arrays, or one ``(B, ...)`` array): for each of
        ``test_clips`` temporal views, ``test_crops`` ThreeCrop windows (squares of the frame's shorter side) resized to
        ``test_size`` (lstm: the temporal views as they are)."""
        import torch

        for v in view_starts(len(arrays[0]), clip_len, int(s["test_clips"])):
            views = [a[v : v + clip_len] for a in arrays]
            if self.config.model == "lstm":
                yield torch.from_numpy(np.ascontiguousarray(np.stack(views))).to(device)
                continue
            crops = [three_crop_boxes(*c.shape[1:3], int(s["test_crops"]), self.config.source_aspect) for c in views]
            for k in range(len(crops[0])):
                yield self._video_batch(views, s, device, [c[k] for c in crops], int(s["test_size"]))

    def run(self, ctx: Any) -> TaskResult:
        import torch

        cfg = self.config
        s = self.settings()
        vocab = self.vocabulary(ctx)
        items = ctx.items
        if not items:
            raise MoviekitError(f"{self.name}: the run has no items (all failed or were excluded: see failures.jsonl and exclusions.json)")
        key = cfg.frames if cfg.model != "lstm" else (cfg.features or cfg.frames)
        self._modality(items, key, "frames" if cfg.model != "lstm" or cfg.features is None else "features")
        from .published import read_shot_labels, read_verified_list

        file_labels = read_shot_labels(cfg.train_labels, vocab, cfg.test_list_format, cfg.label_map) if cfg.train_labels else None
        samples = self.samples(items, vocab, file_labels)
        notes: list[str] = []
        verified = read_verified_list(cfg.test_list, vocab, cfg.test_list_format, cfg.label_map) if cfg.test_list else None
        if verified is not None:
            by_key = {(x.video, x.shot): x for x in samples}
            test = []
            for v in verified:
                found = by_key.get((v.video, v.shot))
                if found is not None:
                    test.append(_Sample(found.item, found.clip, v.video, v.shot, list(v.labels)))
            missing = len(verified) - len(test)
            if missing:
                notes.append(f"{missing} of {len(verified)} shots of {cfg.test_list} are not among the run's clips")
            if not test:
                raise MoviekitError(
                    f"{self.name}: `test_list`: none of the shots of {cfg.test_list} is among the run's clips (check video ids and shot indices)"
                )
            held = {(x.video, x.shot) for x in test}
            train = [x for x in samples if (x.video, x.shot) not in held and items[x.item].video.split in (None, "train") and x.labels]
        else:
            train = [x for x in samples if items[x.item].video.split in (None, "train") and x.labels]
            test = [x for x in samples if items[x.item].video.split == "test" and x.labels]
            notes.append(
                "no test_list: scored on the test split's shots against their "
                + {"clip": "CLIP labels", "video": "video labels", "file": f"labels in {cfg.train_labels}"}[cfg.label_source]
            )
        if not train:
            raise MoviekitError(
                f"{self.name}: no training shot with labels in the vocabulary"
                + (
                    " (did the recipe run the movieclip_clip labeler?)"
                    if cfg.label_source == "clip"
                    else f" (do the video ids and shot indices of {cfg.train_labels} match the run's?)"
                    if cfg.label_source == "file"
                    else ""
                )
            )
        if not test:
            raise MoviekitError(f"{self.name}: no test shot with labels: give `test_list` or items in the test split")

        def arrays_of(sel: list[_Sample]) -> list[np.ndarray]:
            # one array per sample: frames that keep their aspect ratio differ in size from video to video
            return [np.asarray(items[x.item].features.arrays[key][x.clip]) for x in sel]

        def inputs_of(sel: list[_Sample]) -> Any:
            if cfg.model == "lstm":
                return np.concatenate([sequence_inputs(a[None], cfg.grid) for a in arrays_of(sel)])
            return arrays_of(sel)

        x_train = inputs_of(train)
        clip_len = self.view_length(ctx, len(x_train[0]), notes)
        y_train = multi_hot([x.labels for x in train], vocab)
        y_test = multi_hot([x.labels for x in test], vocab)
        torch.manual_seed(ctx.seed)
        model = self._build(s, len(vocab), x_train[0][:clip_len]).to(ctx.device)
        steps_per_epoch = -(-len(train) // s["batch_size"])
        opt, sched, per = self._optimizer(s, model, steps_per_epoch)
        pw = torch.from_numpy(pos_weights(y_train)).to(ctx.device) if cfg.pos_weight else None
        loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=pw)
        yt = torch.from_numpy(y_train).to(ctx.device)
        gen = torch.Generator().manual_seed(ctx.seed + 1)

        def forward(x: Any) -> Any:
            return model(x) if cfg.model == "lstm" else model(x, mode="tensor", stage="head")

        def step(idx: list[int]) -> Any:
            batch = x_train[idx] if isinstance(x_train, np.ndarray) else [x_train[i] for i in idx]
            return loss_fn(forward(self._train_inputs(batch, s, clip_len, ctx.device, gen)).float(), yt[idx])

        history = train_loop(
            model,
            step,
            len(train),
            opt,
            s["epochs"],
            s["batch_size"],
            ctx,
            ctx.seed,
            sched,
            per,
            s["clip_grad"],
            cfg.max_steps,
            checkpoint_every=cfg.checkpoint_every,
            tag=f"{cfg.out}-train",
            generators=[gen],
        )
        model.eval()
        scores = np.concatenate([
            self.shot_scores(forward, inputs_of(test[a : a + cfg.eval_batch]), s, clip_len, ctx.device, ctx.autocast)[0]
            for a in range(0, len(test), cfg.eval_batch)
        ])  # fmt: skip
        m_ap = mean_average_precision(y_test, scores)
        metrics, rows = classification_report(y_test, scores, vocab, cfg.threshold, ctx.seed)
        labels_from = label_provenance(getattr(ctx, "recipe", None)) if cfg.label_source == "clip" else None
        if labels_from and labels_from.get("test_only"):
            ctx.log(f"{self.name}: {labels_from['warning']}")
        metrics.update(
            {
                "map": m_ap,
                "model": cfg.model,
                **({"labels_from": labels_from} if labels_from else {}),
                "n_train": len(train),
                "n_test": len(test),
                "test_source": "test_list" if verified is not None else "test_split",
                **({"test_list_format": _list_format(cfg.test_list, cfg.test_list_format)} if cfg.test_list else {}),
                **(
                    {"train_labels": str(cfg.train_labels), "train_labels_format": _list_format(cfg.train_labels, cfg.test_list_format)}
                    if cfg.train_labels
                    else {}
                ),
                "settings": {k: (list(v) if isinstance(v, tuple) else v) for k, v in s.items()},
                "train_loss_first": history["step_loss"][0],
                "train_loss_last": history["step_loss"][-1],
                "step_loss": history["step_loss"],
                "epoch_loss": history["epoch_loss"],
            }
        )
        files = write_report(ctx.out_dir, cfg.out, metrics, rows)
        npz = f"{cfg.out}_scores.npz"
        np.savez(
            Path(ctx.out_dir) / npz,
            y_true=y_test,
            scores=scores,
            vocabulary=np.asarray(vocab),
            video=np.asarray([x.video for x in test]),
            shot=np.asarray([x.shot for x in test]),
        )
        files.append(npz)
        ctx.log(f"{self.name}: {cfg.model} on {len(train)} shots, mAP {m_ap:.4f} on {len(test)} test shots")
        summary = {k: v for k, v in metrics.items() if isinstance(v, (int, float, str)) and not isinstance(v, bool)}
        build = {"num_classes": len(vocab), "clip_len": int(clip_len), "example_shape": list(np.asarray(x_train[0][:clip_len]).shape)}
        part = ModelPart(kind="module", component={"use": self.name, **cfg.model_dump(mode="json")}, build=build)
        trained = TrainedModel.from_modules(
            cfg.model_name or cfg.out, {"model": (part, model)}, task=self.name, vocabulary=list(vocab),
            metrics=summary, meta={"settings": metrics["settings"]},
        )  # fmt: skip
        files += ctx.put_model(trained)
        return TaskResult(metrics=summary, files=files, notes=notes)


COMPONENTS = [MovieclipSceneClassifier]
