"""``movieclip_export_features`` (Task): the inputs of M_scene and M_trailer (supplementary Sec. 4.3, 5.1).

The paper trains its downstream heads on "1024 dimensional features from [the] best-performing Swin-B model
trained on MovieCLIP" (M_scene, M_trailer) and, for the comparison, on those of "Swin-B pretrained on
Kinetics400" (M_scene(Kin)).  This task writes such features as a core ``features_dir`` folder: each shot's
penultimate feature of the video classifier (the input of its last linear layer; 1024-d for Swin-B), averaged
over the classifier's test views, so that a later recipe trains ``movieclip_downstream`` on them with
``dataset: {use: features_dir, root: <run>/<features_dir>}``.  The trailer-level input (M_trailer) is the
mean over a trailer's shots: what ``movieclip_downstream`` takes from the per-shot folder, or written
directly with ``video_features_dir`` (the supplementary does not say how the shots are pooled).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from moviekit import (
    Clip,
    Config,
    FeatureSet,
    Item,
    MoviekitError,
    Task,
    TaskResult,
    WeightsSpec,
    export_features_dir,
)

from .scenes import MovieclipSceneClassifier
from .videomodels import KINETICS, kinetics_spec, penultimate_features, sequence_inputs

#: Kinetics-400 classes: the head built around a Kinetics checkpoint (its scores are not used).
KINETICS_CLASSES = 400


class MovieclipExportFeatures(Task):
    """Exports each shot's penultimate feature of the MovieCLIP video classifier (1024-d for Swin-B) as a `features_dir` folder, the input of M_scene / M_trailer; or those of the Kinetics-initialised network without scene training (M_scene(Kin)).

    ``source: trained`` takes the scene classifier trained earlier in the run
    (``ctx.model(model_name)``, from ``movieclip_scene_classifier`` or a recipe's
    ``models:``), ``source: kinetics`` builds ``model`` from its Kinetics-400
    checkpoint (``pretrained``) without scene training.  A shot's feature is
    the input of the classifier's last linear layer, averaged over the test views
    the classifier scores (``test_clips`` x ``test_crops``, the paper's per model
    unless set).  Writes ``<features_dir>/<modality>/<video>/<shot>.npy`` with
    ``labels.csv`` (the videos' labels and splits) and ``clips.csv``, and with
    ``video_features_dir`` one row per video, the mean over its shots.
    """

    name = "movieclip_export_features"
    version = "1"
    returns = "TaskResult; <features_dir>/ (features_dir layout) and optionally <video_features_dir>/"

    class Config(Config):
        source: Literal["trained", "kinetics"] = Field(
            "trained",
            description="trained: the run's trained scene classifier (M_scene, M_trailer); kinetics: the Kinetics-400 network without scene training (M_scene(Kin))",
        )
        model_name: str = Field("scene", description="source trained: name of the trained scene classifier (`ctx.model(name)`)")
        model: Literal["i3d", "slowfast", "r2plus1d", "timesformer", "swin"] = Field(
            "swin", description="source kinetics: the network (the paper's M_scene(Kin): Swin-B)"
        )
        pretrained: str = Field(
            KINETICS,
            description="source kinetics: `kinetics` ($MOVIEKIT_WEIGHTS/mmaction2-<model>-kinetics400/ or the cache) or a local checkpoint file/folder",
        )
        backbone: dict[str, Any] = Field(
            default_factory=dict, description="source kinetics: overrides of the paper's backbone config (tests use a tiny one)"
        )
        frames: str | None = Field(None, description="modality with the shots' frames; unset: the classifier's (`frames` or `features`)")
        clip_len: int | None = Field(
            None, ge=1, description="source kinetics: frames per temporal view; unset: the movieclip_frames expert's, else the whole array"
        )
        test_clips: int | None = Field(None, ge=1, description="temporal views averaged per shot; unset: the classifier's (the paper's)")
        test_crops: Literal[1, 3] | None = Field(None, description="spatial crops per view (3: ThreeCrop); unset: the classifier's")
        features_dir: str = Field("movieclip_features", description="output folder in the run directory (relative, no '..')")
        modality: str | None = Field(None, description="modality folder name; unset: `movieclip` (source trained) or `kinetics`")
        video_features_dir: str | None = Field(
            None, description="also write one row per video (the mean over its shots) to this folder of the run directory"
        )
        batch: int = Field(8, ge=1, description="shots per forward pass")

        @model_validator(mode="after")
        def _relative(self) -> MovieclipExportFeatures.Config:
            for key in ("features_dir", "video_features_dir"):
                value = getattr(self, key)
                if value is not None and (Path(value).is_absolute() or ".." in Path(value).parts or value.strip() in ("", ".")):
                    raise ValueError(f"`{key}` must be a folder inside the run directory (relative, no '..'), got {value!r}")
            return self

    @classmethod
    def example_setup(cls, tmp_path: Path) -> dict[str, Any]:
        # the contract's items have per-clip 'visual' features: the LSTM baseline is trained on them first
        scene = {"use": "movieclip_scene_classifier", "model": "lstm", "features": "visual", "label_source": "video"}
        return {"before": [{**scene, "epochs": 1, "lstm_hidden": 8, "batch_size": 8}]}

    @classmethod
    def example_config(cls, tmp_path: Path) -> dict[str, Any]:
        return {"model_name": "scene", "video_features_dir": "movieclip_video_features"}

    def weights(self) -> list[WeightsSpec]:
        cfg = self.config
        return [kinetics_spec(cfg.model, cfg.pretrained)] if cfg.source == "kinetics" else []

    def network(self, ctx: Any) -> tuple[MovieclipSceneClassifier, Any, int, dict[str, Any]]:
        """The classifier task (its settings and test views), its network in eval mode, the frames per temporal
        view, and what the network is."""
        cfg = self.config
        views = {k: getattr(cfg, k) for k in ("test_clips", "test_crops") if getattr(cfg, k) is not None}
        if cfg.source == "trained":
            trained = ctx.model(cfg.model_name)
            clf, net = MovieclipSceneClassifier.rebuild(trained)
            key = cfg.frames or (clf.config.features or clf.config.frames if clf.config.model == "lstm" else clf.config.frames)
            clf = MovieclipSceneClassifier(clf.config.model_copy(update={**views, "frames": key, "features": key}))
            clip_len = int(trained.record.parts["model"].build["clip_len"])
            about = {"source": "trained", "model_name": trained.name, "model": clf.config.model, "task": trained.record.task}
            return clf, net, clip_len, about
        key = cfg.frames or "frames"
        clf = MovieclipSceneClassifier(model=cfg.model, backbone=cfg.backbone, pretrained=cfg.pretrained, frames=key, **views)
        clf._modality(ctx.items, key, "frames")
        n_frames = int(np.asarray(ctx.items[0].features.arrays[key]).shape[1])
        clip_len = cfg.clip_len or clf.view_length(ctx, n_frames, [])
        net = clf._build(clf.settings(), KINETICS_CLASSES, np.zeros((clip_len, 1, 1, 3), np.float32)).eval()
        return clf, net, clip_len, {"source": "kinetics", "model": cfg.model, "pretrained": cfg.pretrained}

    def shot_features(self, clf: MovieclipSceneClassifier, net: Any, arrays: Any, clip_len: int, device: Any) -> np.ndarray:
        """``(B, D)`` penultimate features of B shots, averaged over the classifier's test views."""
        import torch

        model = clf.config.model
        if model == "lstm":
            arrays = np.concatenate([sequence_inputs(np.asarray(a)[None], clf.config.grid) for a in arrays])

        def forward(x: Any) -> Any:
            return net(x) if model == "lstm" else net(x, mode="tensor", stage="head")

        with torch.no_grad():
            views = clf.test_views(arrays, clf.settings(), clip_len, device)
            feats = [penultimate_features(net, forward, x).float().cpu().numpy() for x in views]
        return np.mean(feats, axis=0).astype(np.float32)

    def run(self, ctx: Any) -> TaskResult:
        cfg = self.config
        items = ctx.items
        if not items:
            raise MoviekitError(f"{self.name}: the run has no items (all failed or were excluded: see failures.jsonl and exclusions.json)")
        clf, net, clip_len, about = self.network(ctx)
        net = net.to(ctx.device)
        key = clf.config.frames
        clf._modality(items, key, "frames")
        modality = cfg.modality or ("movieclip" if cfg.source == "trained" else "kinetics")
        out_items, video_items = [], []
        for it in items:
            a = it.features.arrays[key]
            feats = [self.shot_features(clf, net, a[b : b + cfg.batch], clip_len, ctx.device) for b in range(0, len(a), cfg.batch)]
            f = np.concatenate(feats) if feats else np.zeros((0, 0), np.float32)
            out_items.append(Item(video=it.video, clips=it.clips, features=FeatureSet(video_id=it.id, arrays={modality: f})))
            if cfg.video_features_dir and len(f):
                whole = Clip(
                    video_id=it.id, index=0, shot_index=0,
                    start_frame=min(c.start_frame for c in it.clips), end_frame=max(c.end_frame for c in it.clips),
                    start_time=min(c.start_time for c in it.clips), end_time=max(c.end_time for c in it.clips),
                )  # fmt: skip
                arrays = {modality: f.mean(0, keepdims=True)}
                video_items.append(Item(video=it.video, clips=[whole], features=FeatureSet(video_id=it.id, arrays=arrays)))
        dim = int(next((x.features.arrays[modality].shape[1] for x in out_items if len(x.features.arrays[modality])), 0))
        files = export_features_dir(ctx.out_dir, cfg.features_dir, out_items, f"{self.name}.features_dir")
        if cfg.video_features_dir:
            files += export_features_dir(ctx.out_dir, cfg.video_features_dir, video_items, f"{self.name}.video_features_dir")
        ctx.log(f"{self.name}: {dim}-d {modality} features of {sum(len(x.clips) for x in out_items)} shots -> {cfg.features_dir}/")
        metrics = {
            **about,
            "dim": dim,
            "modality": modality,
            "n_videos": len(out_items),
            "n_shots": sum(len(x.clips) for x in out_items),
            "test_clips": int(clf.settings()["test_clips"]),
            "test_crops": 1 if clf.config.model == "lstm" else int(clf.settings()["test_crops"]),
            "features_dir": cfg.features_dir,
        }
        notes = [] if dim == 1024 else [f"the features are {dim}-d; the paper's M_scene / M_trailer take 1024-d Swin-B features"]
        return TaskResult(metrics=metrics, files=files, notes=notes)


COMPONENTS = [MovieclipExportFeatures]
