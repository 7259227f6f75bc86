"""Video scene recognition trained on the CLIP shot labels (supplementary Sec. 4.1-4.2).

* ``movieclip_frames`` (Expert): keeps a small clip of frames per shot from the
  run's single decode, so that end-to-end video models can be trained without
  decoding the videos again.
* ``movieclip_scene_classifier`` (Task): multi-label scene classifiers trained on
  the shots' CLIP labels: the paper's mmaction2 recognizers (I3D, SlowFast,
  R(2+1)D, TimeSformer, Video Swin) with its settings as defaults, and a light
  2-layer LSTM baseline; BCE with per-class positive weights; mAP on a
  human-verified test list (format below).

Human-verified test list (``test_list``): a UTF-8 CSV file.  Blank lines and
lines starting with ``#`` are ignored; the first other line is the header,
which must name the columns ``video``, ``shot`` and ``labels`` (other columns
are allowed and ignored).  Each row is one verified shot:

* ``video``: the video id (``Video.id`` of the run's items);
* ``shot``: the 0-based index of the shot in the video (``Shot.index``, the
  ``shot`` of the CLIP labels);
* ``labels``: the scene labels the annotators kept, separated by ``;`` (at least
  one; shots marked "Not relevant" are left out of the list).

A (video, shot) pair appears once; labels must belong to the classifier's
vocabulary.  Errors name the file and line.
"""

from __future__ import annotations

import contextlib
import csv
import logging
import math
import sys
import types
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from moviekit import (
    Clip,
    Config,
    Expert,
    FrameBatch,
    FrameNeed,
    Item,
    ModelPart,
    MoviekitError,
    Needs,
    Sink,
    Task,
    TaskResult,
    Track,
    TrainedModel,
    Video,
    classification_report,
    multi_hot,
    pos_weights,
    train_loop,
)
from moviekit.backends.openclip import is_test_only

from .csvfile import iter_csv_records
from .heads import warmup_cosine, write_report

# -- the paper's settings ---------------------------------------------------------------------

KINETICS_MEAN = (123.675, 116.28, 103.53)
KINETICS_STD = (58.395, 57.12, 57.375)

#: Per-model defaults from the supplementary (Sec. 4.1, 4.2).  ``epochs`` of SlowFast and
#: everything of ``lstm`` are not in the paper: SlowFast uses mmaction2's Kinetics schedule
#: (256 epochs, warm-up 34 epochs), the LSTM baseline Adam (lr 1e-3) for 30 epochs, no crops
#: and the mean over the stored temporal views at test time.  Training crops (``train_crop``):
#: I3D multi-scale crop, TimeSformer RandomRescale(256, 320) + RandomCrop(224), the others
#: RandomResizedCrop.  Testing: ``test_clips`` x ``test_crops`` (ThreeCrop) views, probabilities
#: averaged; ``test_scale`` is the test crop's size over the training input size (256/224 for
#: the 3D CNNs, whose ThreeCrop is 256).
PAPER_SETTINGS: dict[str, dict[str, Any]] = {
    "i3d": {
        "optimizer": "sgd", "lr": 1e-3, "momentum": 0.9, "weight_decay": 1e-4, "nesterov": False,
        "schedule": "step", "milestones": [20, 40], "warmup_epochs": 0.0,
        "batch_size": 32, "epochs": 38, "clip_len": 32, "frame_interval": 2, "input_size": 224,
        "mean": KINETICS_MEAN, "std": KINETICS_STD, "clip_grad": 40.0,
        "train_crop": "multiscale", "test_clips": 10, "test_crops": 3, "test_scale": 256 / 224,
    },
    "slowfast": {
        "optimizer": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 1e-4, "nesterov": False,
        "schedule": "cosine", "milestones": [], "warmup_epochs": 34.0,
        "batch_size": 32, "epochs": 256, "clip_len": 32, "frame_interval": 2, "input_size": 224,
        "mean": KINETICS_MEAN, "std": KINETICS_STD, "clip_grad": 40.0,
        "train_crop": "random_resized", "test_clips": 10, "test_crops": 3, "test_scale": 256 / 224,
    },
    "r2plus1d": {
        "optimizer": "adam", "lr": 1e-4, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0,
        "schedule": "step", "milestones": [20, 40], "warmup_epochs": 0.0,
        "batch_size": 16, "epochs": 15, "clip_len": 8, "frame_interval": 8, "input_size": 224,
        "mean": KINETICS_MEAN, "std": KINETICS_STD, "clip_grad": 40.0,
        "train_crop": "random_resized", "test_clips": 10, "test_crops": 3, "test_scale": 256 / 224,
    },
    "timesformer": {
        "optimizer": "sgd", "lr": 5e-3, "momentum": 0.9, "weight_decay": 1e-4, "nesterov": True,
        "schedule": "step", "milestones": [5, 10], "warmup_epochs": 0.0,
        "batch_size": 8, "epochs": 15, "clip_len": 8, "frame_interval": 32, "input_size": 224,
        "mean": (127.5, 127.5, 127.5), "std": (127.5, 127.5, 127.5), "clip_grad": 40.0,
        "train_crop": "rescale_crop", "test_clips": 1, "test_crops": 3, "test_scale": 1.0,
    },
    "swin": {
        "optimizer": "adamw", "lr": 1e-4, "betas": (0.9, 0.999), "weight_decay": 0.05,
        "schedule": "cosine", "milestones": [], "warmup_epochs": 2.5,
        "batch_size": 32, "epochs": 9, "clip_len": 32, "frame_interval": 2, "input_size": 224,
        "mean": KINETICS_MEAN, "std": KINETICS_STD, "clip_grad": 40.0,
        "train_crop": "random_resized", "test_clips": 4, "test_crops": 3, "test_scale": 1.0,
    },
    "lstm": {
        "optimizer": "adam", "lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0,
        "schedule": "none", "milestones": [], "warmup_epochs": 0.0,
        "batch_size": 32, "epochs": 30, "clip_len": 32, "frame_interval": 2, "input_size": None,
        "mean": None, "std": None, "clip_grad": None,
        "train_crop": "none", "test_clips": 10, "test_crops": 1, "test_scale": 1.0,
    },
}
MMACTION_MODELS = ("i3d", "slowfast", "r2plus1d", "timesformer", "swin")
STEP_GAMMA = 0.1  # mmaction2's step policy


# -- mmaction2 --------------------------------------------------------------------------------


def _mmaction_registry() -> Any:
    """mmaction2's MODELS registry, imported lazily with the two known workarounds."""
    try:
        import mmaction
        import mmaction.utils.dependency as dependency
    except ImportError as e:
        raise MoviekitError(
            "the mmaction2 scene models need mmaction2: `pip install 'moviekit[mmaction]'` "
            "(mmaction2==1.2.0, mmengine==0.10.7, mmcv-lite==2.1.0)"
        ) from e
    # mmaction2's multimodal models clash with the installed `transformers`; they are not used here.
    dependency.WITH_MULTIMODAL = False
    # The mmaction2 1.2.0 wheel lacks the `localizers/drn` package that `mmaction.models.localizers`
    # imports, so `import mmaction.models` fails.  DRN (a temporal grounding model) is not used here:
    # register an empty stand-in module before the import when the package is missing.
    drn_dir = Path(mmaction.__file__).parent / "models" / "localizers" / "drn"
    if not drn_dir.is_dir() and "mmaction.models.localizers.drn" not in sys.modules:
        pkg = types.ModuleType("mmaction.models.localizers.drn")
        pkg.__path__ = []
        sub = types.ModuleType("mmaction.models.localizers.drn.drn")
        sub.DRN = None
        sys.modules["mmaction.models.localizers.drn"] = pkg
        sys.modules["mmaction.models.localizers.drn.drn"] = sub
    with warnings.catch_warnings():
        # mmcv-lite has no compiled ops; the deformable attention it warns about is not used here
        warnings.filterwarnings("ignore", message=".*MultiScaleDeformableAttention.*")
        import mmaction.models  # noqa: F401 - registers the models
        from mmaction.registry import MODELS
        from mmaction.utils import register_all_modules

        register_all_modules(init_default_scope=False)
    return MODELS


def backbone_config(model: str, clip_len: int, input_size: int) -> dict[str, Any]:
    """The paper's backbone of ``model`` as an mmaction2 config dict (no pretrained weights)."""
    if model == "i3d":  # ResNet50 I3D
        return dict(
            type="ResNet3d", depth=50, pretrained=None, pretrained2d=False, conv1_kernel=(5, 7, 7), conv1_stride_t=2,
            pool1_stride_t=2, conv_cfg=dict(type="Conv3d"), norm_eval=False,
            inflate=((1, 1, 1), (1, 0, 1, 0), (1, 0, 1, 0, 1, 0), (0, 1, 0)), zero_init_residual=False,
        )
    if model == "slowfast":  # ResNet50 SlowFast
        return dict(
            type="ResNet3dSlowFast", pretrained=None, resample_rate=8, speed_ratio=8, channel_ratio=8,
            slow_pathway=dict(type="resnet3d", depth=50, pretrained=None, lateral=True, conv1_kernel=(1, 7, 7), dilations=(1, 1, 1, 1),
                              conv1_stride_t=1, pool1_stride_t=1, inflate=(0, 0, 1, 1), norm_eval=False),
            fast_pathway=dict(type="resnet3d", depth=50, pretrained=None, lateral=False, base_channels=8, conv1_kernel=(5, 7, 7),
                              conv1_stride_t=1, pool1_stride_t=1, norm_eval=False),
        )
    if model == "r2plus1d":  # ResNet34 R(2+1)D
        return dict(
            type="ResNet2Plus1d", depth=34, pretrained=None, pretrained2d=False, norm_eval=False, conv_cfg=dict(type="Conv2plus1d"),
            norm_cfg=dict(type="BN3d", requires_grad=True), act_cfg=dict(type="ReLU"), conv1_kernel=(3, 7, 7), conv1_stride_t=1,
            pool1_stride_t=1, inflate=(1, 1, 1, 1), spatial_strides=(1, 2, 2, 2), temporal_strides=(1, 2, 2, 2), zero_init_residual=False,
        )
    if model == "timesformer":  # divided space-time attention, patch 16, 768-d, 12 heads, 12 layers
        return dict(
            type="TimeSformer", num_frames=clip_len, img_size=input_size, patch_size=16, embed_dims=768, num_heads=12,
            num_transformer_layers=12, in_channels=3, dropout_ratio=0.0, transformer_layers=None,
            attention_type="divided_space_time", norm_cfg=dict(type="LN", eps=1e-6),
        )
    if model == "swin":  # Swin-B: patch (2,4,4), 128-d, depths [2,2,18,2], heads [4,8,16,32], window (8,7,7)
        return dict(type="SwinTransformer3D", arch="base", pretrained=None, pretrained2d=False, patch_size=(2, 4, 4), window_size=(8, 7, 7),
                    drop_path_rate=0.3, patch_norm=True)
    raise MoviekitError(f"unknown mmaction2 model {model!r}; choose one of {', '.join(MMACTION_MODELS)}")


#: Head type and input channels of each paper backbone.
HEADS = {
    "i3d": ("I3DHead", 2048),
    "slowfast": ("SlowFastHead", 2304),
    "r2plus1d": ("I3DHead", 512),
    "timesformer": ("TimeSformerHead", 768),
    "swin": ("I3DHead", 1024),
}


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _quiet_mmengine() -> Any:
    from mmengine.logging import MMLogger

    logger = MMLogger.get_current_instance()
    old = logger.level
    logger.setLevel(logging.ERROR)
    return logger, old


def build_recognizer(
    model: str,
    num_classes: int,
    clip_len: int,
    input_size: int,
    backbone: dict[str, Any] | None = None,
    head_in_channels: int | None = None,
    dropout: float | None = None,
    pretrained: str | None = None,
    component: str = "movieclip_scene_classifier",
) -> Any:
    """An mmaction2 ``Recognizer3D`` for ``model`` with a ``num_classes`` head.

    ``backbone`` overrides fields of the paper's backbone config (e.g. a tiny depth for
    tests); the head's input channels are then measured with a dummy forward unless
    ``head_in_channels`` is given.  ``pretrained`` is a local mmaction2 checkpoint whose
    matching tensors are loaded (the classifier of another label set is skipped).
    """
    from mmengine.registry import DefaultScope

    if pretrained:
        _checkpoint_file(pretrained, component)  # fail before building a large model
    registry = _mmaction_registry()
    cfg_backbone = _merge(backbone_config(model, clip_len, input_size), backbone or {})
    head_type, channels = HEADS[model]
    logger, old = _quiet_mmengine()
    try:
        with DefaultScope.overwrite_default_scope("mmaction"):
            net = _build_in_scope(
                registry, cfg_backbone, head_type, head_in_channels or channels, num_classes,
                bool(backbone) and head_in_channels is None, dropout, clip_len, input_size,
            )
    finally:
        logger.setLevel(old)
    if pretrained:
        load_pretrained(net, pretrained, component)
    return net


def _build_in_scope(
    registry: Any, cfg_backbone: dict[str, Any], head_type: str, channels: int, num_classes: int,
    measure: bool, dropout: float | None, clip_len: int, input_size: int,
) -> Any:
    import torch

    if measure:  # the backbone was changed: measure its output channels with a dummy clip
        probe = registry.build(cfg_backbone)
        probe.eval()  # mmaction2's ResNet3d.train() returns None, so no chaining
        with torch.no_grad():
            out = probe(torch.zeros(1, 3, clip_len, input_size, input_size))
        outs = out if isinstance(out, (tuple, list)) else (out,)
        channels = int(sum(o.shape[1] if o.ndim > 2 else o.shape[-1] for o in outs))
    head = dict(type=head_type, num_classes=num_classes, in_channels=channels, multi_class=True)
    if head_type != "TimeSformerHead":
        head["spatial_type"] = "avg"
    if dropout is not None:
        head["dropout_ratio"] = dropout
    net = registry.build(dict(type="Recognizer3D", backbone=cfg_backbone, cls_head=head))
    net.init_weights()
    return net


def _checkpoint_file(path: str, component: str) -> Path:
    file = Path(path).expanduser()
    if not file.is_file():
        raise MoviekitError(
            f"{component}: `pretrained`: checkpoint {file} not found. Give the local path of an mmaction2 checkpoint of "
            "this model (for example the Kinetics-400 one from the mmaction2 model zoo, downloaded beforehand), "
            "or leave `pretrained` unset to train from scratch."
        )
    return file


def load_pretrained(net: Any, path: str, component: str = "movieclip_scene_classifier") -> dict[str, int]:
    """Load the tensors of a local mmaction2 checkpoint that match ``net`` by name and shape."""
    import torch

    file = _checkpoint_file(path, component)
    try:
        state = torch.load(file, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001
        raise MoviekitError(f"{component}: `pretrained`: {file} is not a readable torch checkpoint ({type(e).__name__}: {e})") from e
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    own = net.state_dict()
    keep = {k: v for k, v in state.items() if k in own and tuple(v.shape) == tuple(own[k].shape)}
    if not keep:
        raise MoviekitError(f"{component}: `pretrained`: no tensor of {file} matches the {type(net).__name__} being trained (wrong model?)")
    net.load_state_dict(keep, strict=False)
    return {"loaded": len(keep), "skipped": len(state) - len(keep)}


# -- the LSTM baseline and a cheap frame feature ----------------------------------------------


def cheap_frame_features(frames: np.ndarray, grid: int = 8) -> np.ndarray:
    """``(..., T, grid*grid*3)`` features of uint8 ``(..., T, H, W, 3)`` frames: the frame area-averaged
    to a ``grid`` x ``grid`` RGB thumbnail, in [0, 1].  A CPU-cheap stand-in for an image model."""
    import torch

    a = np.asarray(frames)
    lead = a.shape[:-3]
    x = torch.from_numpy(a.reshape(-1, *a.shape[-3:])).permute(0, 3, 1, 2).float() / 255.0
    x = torch.nn.functional.adaptive_avg_pool2d(x, grid)
    return x.reshape(*lead, -1).numpy().astype(np.float32)


def sequence_inputs(array: np.ndarray, grid: int = 8) -> np.ndarray:
    """Per-clip sequences ``(n, T, D)`` from a modality array: ``(n, D)`` -> T=1, ``(n, T, D)`` as is,
    ``(n, T, H, W, 3)`` frames -> :func:`cheap_frame_features`."""
    a = np.asarray(array)
    if a.ndim == 2:
        return a[:, None, :].astype(np.float32)
    if a.ndim == 3:
        return a.astype(np.float32)
    if a.ndim == 5 and a.shape[-1] == 3:
        return cheap_frame_features(a, grid)
    raise MoviekitError(f"cannot make per-frame sequences from features of shape {a.shape[1:]} per clip; expected (D,), (T, D) or (T, H, W, 3)")


def lstm_classifier(in_dim: int, num_classes: int, hidden: int = 512, layers: int = 2, dropout: float = 0.0) -> Any:
    """A ``layers``-layer LSTM over ``(B, T, in_dim)``; its last hidden state goes through a linear layer."""
    from torch import nn

    class LSTMClassifier(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = nn.LSTM(in_dim, hidden, num_layers=layers, batch_first=True, dropout=dropout if layers > 1 else 0.0)
            self.fc = nn.Linear(hidden, num_classes)

        def forward(self, x: Any, lengths: Any = None) -> Any:
            if lengths is not None:
                x = nn.utils.rnn.pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
            _, (h, _) = self.lstm(x)
            return self.fc(h[-1])

    return LSTMClassifier()


# -- the human-verified test list --------------------------------------------------------------


@dataclass(frozen=True)
class VerifiedShot:
    video: str
    shot: int
    labels: tuple[str, ...]
    line: int = 0


TEST_LIST_COLUMNS = ("video", "shot", "labels")


def read_test_list(path: str | Path, vocabulary: Iterable[str] | None = None) -> list[VerifiedShot]:
    """Parse a human-verified test list (format in the module docstring); errors name the file and line."""
    vocab = set(vocabulary) if vocabulary is not None else None
    out: list[VerifiedShot] = []
    seen: dict[tuple[str, int], int] = {}
    for rec in iter_csv_records(path, TEST_LIST_COLUMNS, what="test list", example=",".join(TEST_LIST_COLUMNS)):
        shot = rec.shot_index()
        labels = tuple(lab.strip() for lab in rec["labels"].split(";") if lab.strip())
        if not labels:
            raise rec.error("no labels (leave shots marked 'Not relevant' out of the list)")
        if vocab is not None:
            unknown = [lab for lab in labels if lab not in vocab]
            if unknown:
                raise rec.error(f"label(s) {', '.join(map(repr, unknown))} not in the classifier's vocabulary")
        key = (rec["video"], shot)
        if key in seen:
            raise rec.error(f"video {key[0]} shot {shot} is already listed on line {seen[key]}")
        seen[key] = rec.line
        out.append(VerifiedShot(rec["video"], shot, labels, rec.line))
    return out


def write_test_list(path: str | Path, shots: Iterable[VerifiedShot | tuple[str, int, Iterable[str]]]) -> Path:
    """Write a human-verified test list (the inverse of :func:`read_test_list`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(TEST_LIST_COLUMNS)
        for s in shots:
            video, shot, labels = (s.video, s.shot, s.labels) if isinstance(s, VerifiedShot) else s
            labels = list(labels)
            bad = [lab for lab in labels if ";" in lab]
            if bad:
                raise MoviekitError(f"label {bad[0]!r} contains ';', the label separator of the test list format")
            w.writerow([video, int(shot), ";".join(labels)])
    return path


def mean_average_precision(y_true: np.ndarray, scores: np.ndarray) -> float:
    """mAP: scikit-learn's average precision per class, averaged over the classes with a positive."""
    from sklearn.metrics import average_precision_score

    y_true = np.asarray(y_true).astype(int)
    scores = np.asarray(scores, np.float64)
    present = np.flatnonzero(y_true.sum(0) > 0)
    if len(present) == 0:
        raise MoviekitError("no positive label in the evaluation set: mAP is undefined")
    return float(np.mean([average_precision_score(y_true[:, j], scores[:, j]) for j in present]))


# -- per-shot frame clips from the shared decode ----------------------------------------------


class _FramesSink(Sink):
    def __init__(self, expert: MovieclipFrames):
        self.expert = expert
        self.kept: list[np.ndarray] = []
        self.times: list[np.ndarray] = []

    def frames(self, batch: FrameBatch) -> None:
        keep = np.ones(len(batch), bool)
        if self.expert.config.fps is None and self.expert.config.frame_interval > 1:
            keep = np.asarray(batch.indices) % self.expert.config.frame_interval == 0
        if keep.any():
            self.kept.append(np.asarray(batch.frames)[keep].astype(np.uint8, copy=False))
            self.times.append(np.asarray(batch.times, np.float64)[keep])

    def close(self) -> Track:
        return self.expert.windows(self.kept, self.times)


class MovieclipFrames(Expert):
    """Per-shot frame clips for end-to-end video models: ``clip_len`` frames, ``frame_interval`` apart, resized to ``size`` x ``size``, kept from the run's single decode.

    The reader hands every frame (or frames at ``fps`` when set); every
    ``frame_interval``-th is kept, resized (squashed) to ``size`` x ``size``.
    Each clip (shot) gets ``test_clips`` views of ``clip_len`` consecutive kept
    frames, centred in ``test_clips`` equal segments of the shot (one view: centred
    in the shot; looped when the shot is shorter), stored one after the other as
    uint8 ``(test_clips * clip_len, size, size, 3)``.  The scene classifier trains
    on one view drawn at random and averages its test scores over the views (the
    paper's multi-clip testing: 10 clips for I3D / SlowFast / R(2+1)D, 4 for Swin,
    1 for TimeSformer; fewer stored views are evenly subsampled).
    The defaults are the I3D / SlowFast / Swin settings (32 frames, interval 2,
    224); R(2+1)D uses 8 frames at interval 8, TimeSformer 8 at interval 32.
    Memory: the kept frames of a video (``size``² x 3 bytes each) during its
    decode, and ``test_clips`` x ``clip_len`` x ``size``² x 3 bytes per shot
    afterwards (about 48 MB per shot with the defaults), so lower ``size`` or
    ``test_clips`` for large datasets (``test_clips: 1`` keeps one clip per shot).  Use it with ``movieclip_scene_classifier``
    (and ``movieclip_shot_scale``); generic feature tasks cannot use raw frames.
    """

    name = "movieclip_frames"
    version = "1"
    returns = "Track of (test_clips * clip_len, size, size, 3) uint8 windows; per clip (test_clips * clip_len, size, size, 3) uint8 frames"

    class Config(Config):
        clip_len: int = Field(32, ge=1, description="frames per clip (I3D/SlowFast/Swin: 32; R(2+1)D, TimeSformer: 8)")
        frame_interval: int = Field(2, ge=1, description="keep every n-th decoded frame (I3D/SlowFast/Swin: 2; R(2+1)D: 8; TimeSformer: 32)")
        fps: float | None = Field(None, gt=0, description="sample frames at this rate instead of by frame_interval (the shot-scale model uses 4)")
        size: int = Field(224, ge=8, description="frames are resized (squashed) to size x size")
        batch: int = Field(16, ge=1, description="frames per batch asked of the reader")
        test_clips: int = Field(10, ge=1, description="temporal views (clips) kept per shot, evenly spaced, for multi-clip testing (the paper: 10 for I3D/SlowFast/R(2+1)D, 4 Swin, 1 TimeSformer); memory grows with it")

    @classmethod
    def example_config(cls, tmp_path: Path) -> dict[str, Any]:
        return {"clip_len": 4, "size": 16, "test_clips": 2}

    def needs(self) -> Needs:
        cfg = self.config
        return Needs(frames=FrameNeed(fps=cfg.fps, size=(cfg.size, cfg.size), batch=cfg.batch))

    def feature_shape(self) -> tuple[int, ...]:
        return (self.config.test_clips * self.config.clip_len, self.config.size, self.config.size, 3)

    def open(self, video: Video, info: dict[str, Any]) -> Sink:
        return _FramesSink(self)

    def windows(self, frames: list[np.ndarray], times: list[np.ndarray]) -> Track:
        """Kept frames packed into rows of ``test_clips * clip_len`` (the last padded with its last frame); a row's time is its first frame's."""
        t = self.feature_shape()[0]
        if not frames:
            return Track(times=np.zeros(0), values=np.zeros((0, *self.feature_shape()), np.uint8))
        f = np.concatenate(frames)
        ts = np.concatenate(times)
        n_rows = -(-len(f) // t)
        pad = n_rows * t - len(f)
        if pad:
            f = np.concatenate([f, np.repeat(f[-1:], pad, axis=0)])
        return Track(times=ts[::t].copy(), values=f.reshape(n_rows, t, *f.shape[1:]))

    def pool(self, track: Track, clips: list[Clip]) -> np.ndarray:
        t, k = self.config.clip_len, self.config.test_clips
        shape = track.values.shape[1:] if len(track.values) else self.feature_shape()
        out = np.zeros((len(clips), *shape), np.uint8)
        if len(track.times) == 0:
            return out
        frames = track.values.reshape(-1, *shape[1:])
        rows, row_len = np.asarray(track.times, np.float64), shape[0]
        dt = (rows[1] - rows[0]) / row_len if len(rows) > 1 else 0.0
        ftimes = (rows[:, None] + dt * np.arange(row_len)[None, :]).reshape(-1)
        for i, c in enumerate(clips):
            idx = np.flatnonzero((ftimes >= c.start_time) & (ftimes < c.end_time))
            if len(idx) == 0:
                dist = np.abs(ftimes - 0.5 * (c.start_time + c.end_time))
                idx = np.flatnonzero(dist == dist.min())
            if len(idx) >= t:  # view v is centred in the v-th of k equal segments of the shot
                starts = np.clip(np.floor((np.arange(k) + 0.5) * len(idx) / k - t / 2).astype(int), 0, len(idx) - t)
                idx = idx[(starts[:, None] + np.arange(t)[None, :]).reshape(-1)]
            else:
                idx = idx[np.tile(np.arange(t) % len(idx), k)]
            out[i] = frames[idx]
        return out


# -- spatial augmentation and test-time views (torch ops on the stored frames) -----------------

#: A crop window ``(top, left, height, width)`` in pixels of the stored frame.
Box = tuple[int, int, int, int]


def _uniform(gen: Any, low: float, high: float) -> float:
    import torch

    return low + (high - low) * float(torch.rand(1, generator=gen))


def _randint(gen: Any, n: int) -> int:
    import torch

    return int(torch.randint(n, (1,), generator=gen))


def train_crop_box(
    h: int, w: int, mode: str, gen: Any, scales: Sequence[float] = (1.0, 0.8), area: tuple[float, float] = (0.08, 1.0),
    rescale: tuple[int, int] = (256, 320), crop: int = 224,
) -> Box:
    """A random training crop of an ``h`` x ``w`` frame (the whole frame for ``none``).

    * ``multiscale`` (I3D, mmaction2's MultiScaleCrop): height and width are each a scale of
      ``scales`` times the shorter side (at most one step apart in the list), placed at one of
      five fixed positions (the four corners and the centre);
    * ``random_resized`` (RandomResizedCrop): a window of ``area`` fraction of the frame and aspect
      ratio in [3/4, 4/3] (log-uniform), anywhere; the whole frame after 10 failed draws;
    * ``rescale_crop`` (TimeSformer, RandomRescale(256, 320) + RandomCrop(224)): a square of
      ``crop / r`` times the shorter side, ``r`` uniform in ``rescale``, anywhere.

    The window is then resized to the model's input size by :func:`crop_resize`.
    """
    if mode == "multiscale":
        base = min(h, w)
        sizes = [max(1, int(base * sc)) for sc in scales]
        pairs = [(i, j) for i in range(len(sizes)) for j in range(len(sizes)) if abs(i - j) <= 1]
        i, j = pairs[_randint(gen, len(pairs))]
        ch, cw = min(sizes[i], h), min(sizes[j], w)
        dy, dx = h - ch, w - cw
        y, x = [(0, 0), (0, dx), (dy, 0), (dy, dx), (dy // 2, dx // 2)][_randint(gen, 5)]
        return y, x, ch, cw
    if mode == "random_resized":
        for _ in range(10):
            target = h * w * _uniform(gen, *area)
            ratio = math.exp(_uniform(gen, math.log(3 / 4), math.log(4 / 3)))
            cw, ch = int(round(math.sqrt(target * ratio))), int(round(math.sqrt(target / ratio)))
            if 0 < cw <= w and 0 < ch <= h:
                return _randint(gen, h - ch + 1), _randint(gen, w - cw + 1), ch, cw
        return 0, 0, h, w
    if mode == "rescale_crop":
        side = min(h, w, max(1, int(round(min(h, w) * crop / _uniform(gen, *rescale)))))
        return _randint(gen, h - side + 1), _randint(gen, w - side + 1), side, side
    if mode == "none":
        return 0, 0, h, w
    raise MoviekitError(f"unknown training crop {mode!r}; choose multiscale, random_resized, rescale_crop or none")


def three_crop_boxes(h: int, w: int, n_crops: int = 3, aspect: float | None = None) -> list[Box]:
    """Test-time crops of an ``h`` x ``w`` frame: mmaction2's ThreeCrop (``n_crops`` 3) or its centre crop (1).

    ThreeCrop takes squares of the original frame's shorter side at the start, centre and end of
    its longer side.  ``aspect`` is the original frame's width / height; the stored frame may be
    squashed (``movieclip_frames`` stores squares), so a square of the original is the window of
    the stored frame's full height and ``w / aspect`` of its width (landscape), or full width and
    ``h * aspect`` of its height (portrait).  Unset ``aspect``: ``w / h`` (frames not squashed).
    """
    a = aspect if aspect is not None else w / h
    ch, cw = (h, max(1, min(w, int(round(w / a))))) if a >= 1 else (max(1, min(h, int(round(h * a)))), w)
    along_width = cw < w or ch == h
    span = (w - cw) if along_width else (h - ch)
    offsets = [span // 2] if n_crops == 1 else [0, span // 2, span]
    return [(0, o, ch, cw) if along_width else (o, 0, ch, cw) for o in offsets]


def crop_resize(x: Any, box: Box, size: int) -> Any:
    """The ``box`` window of float frames ``x`` (``(..., C, H, W)``) bilinearly resized to ``size`` x ``size``."""
    import torch.nn.functional as F

    y0, x0, ch, cw = box
    win = x[..., y0 : y0 + ch, x0 : x0 + cw]
    if (ch, cw) == (size, size):
        return win
    lead = win.shape[:-3]
    out = F.interpolate(win.reshape(-1, *win.shape[-3:]), size=(size, size), mode="bilinear", align_corners=False)
    return out.reshape(*lead, *out.shape[-3:])


def view_starts(n_frames: int, clip_len: int, n_clips: int) -> list[int]:
    """First frames of the temporal views to score: the stored views are ``clip_len`` frames each; ``n_clips``
    of them, evenly spaced (all when fewer are stored)."""
    stored = max(1, n_frames // clip_len)
    if n_clips >= stored:
        return [v * clip_len for v in range(stored)]
    return [int((j + 0.5) * stored / n_clips) * clip_len for j in range(n_clips)]



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
        out["warning"] = f"the shot labels come from {model}, a tiny RANDOM open_clip model for tests only: they and these scores are meaningless"
    return out


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
    ``label_source: video`` uses each video's labels for all its shots).  Shots
    in ``test_list`` (format: module docstring of ``moviekit_movieclip.scenes``)
    are held out and scored against their verified labels; without a list the
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
        model: Literal["i3d", "slowfast", "r2plus1d", "timesformer", "swin", "lstm"] = Field("swin", description="the paper's best model is Video Swin (Swin-B)")
        frames: str = Field("frames", description="modality holding per-clip frames (the recipe key of a movieclip_frames expert)")
        features: str | None = Field(None, description="lstm: modality to read (unset: `frames`)")
        label_source: Literal["clip", "video"] = Field("clip", description="clip: the shots' CLIP labels; video: every shot takes its video's labels")
        taxonomy: str | None = Field(None, description="vocabulary file (CSV 'label' column or one per line); unset: the packaged 179 labels (label_source clip) or the run's vocabulary (video)")
        labels: list[str] | None = Field(None, description="inline vocabulary instead of a taxonomy file")
        test_list: str | None = Field(None, description="human-verified test list (CSV video,shot,labels); unset: the test split's shots with their training labels")
        pretrained: str | None = Field(None, description="local mmaction2 checkpoint to start from (matching tensors are loaded)")
        backbone: dict[str, Any] = Field(default_factory=dict, description="overrides of the paper's mmaction2 backbone config (e.g. a small depth)")
        head_in_channels: int | None = Field(None, description="input channels of the classifier; unset: the paper backbone's, or measured when `backbone` is overridden")
        dropout: float | None = Field(None, ge=0, lt=1, description="classifier dropout; unset: mmaction2's default for the head")
        input_size: int | None = Field(None, ge=8, description="frames are resized to input_size^2 before the model; unset: 224")
        flip: bool = Field(True, description="random horizontal flip (ratio 0.5) while training")
        train_crop: Literal["multiscale", "random_resized", "rescale_crop", "none"] | None = Field(
            None, description="training crop, resized to input_size: unset: the paper's (i3d multiscale; timesformer rescale_crop; slowfast, r2plus1d, swin random_resized; lstm none)")
        crop_scales: list[float] = Field(default_factory=lambda: [1.0, 0.8], min_length=1, description="multiscale: crop sides as fractions of the shorter side (the paper: 1, 0.8)")
        crop_area: tuple[float, float] = Field((0.08, 1.0), description="random_resized: range of the crop's area fraction (mmaction2's default; not in the paper)")
        rescale: tuple[int, int] = Field((256, 320), description="rescale_crop: shorter-side range of RandomRescale before the 224 crop (the paper: 256, 320)")
        clip_len: int | None = Field(None, ge=1, description="frames per temporal view in the frames arrays; unset: the movieclip_frames expert's clip_len (the whole array is one view without one)")
        test_clips: int | None = Field(None, ge=1, description="temporal views averaged per test shot (evenly spaced among the stored ones); unset: the paper's (10 i3d/slowfast/r2plus1d, 4 swin, 1 timesformer)")
        test_crops: Literal[1, 3] | None = Field(None, description="3: ThreeCrop, 1: centre crop per temporal view; unset: the paper's 3 (lstm: 1, no cropping)")
        test_size: int | None = Field(None, ge=8, description="side of the test crops; unset: the paper's ratio to input_size (256/224 for the 3D CNNs, 1 for the transformers)")
        source_aspect: float | None = Field(16 / 9, gt=0, description="width/height of the original frames (movieclip_frames squashes them to squares); ThreeCrop windows are squares of the original; unset: the stored frames' own")
        checkpoint_every: int = Field(10, ge=1, description="epochs between mid-task checkpoints (a killed run resumes from the last one)")
        epochs: int | None = Field(None, ge=1, description="unset: the paper's for the model")
        batch_size: int | None = Field(None, ge=1, description="unset: the paper's for the model")
        lr: float | None = Field(None, gt=0, description="unset: the paper's for the model")
        weight_decay: float | None = Field(None, ge=0, description="unset: the paper's for the model")
        clip_grad: float | None = Field(40.0, gt=0, description="maximum gradient norm (the paper: 40); the lstm baseline ignores it unless set explicitly")
        max_steps: int | None = Field(None, ge=1, description="stop after this many optimiser steps (smoke tests)")
        lstm_hidden: int = Field(512, ge=1, description="lstm: hidden size (not given in the paper; the shot-scale LSTM's 512)")
        lstm_layers: int = Field(2, ge=1, description="lstm: number of LSTM layers")
        grid: int = Field(8, ge=1, description="lstm on raw frames: thumbnail grid of the cheap frame feature")
        pos_weight: bool = Field(True, description="per-class positive weights in the BCE")
        threshold: float = Field(0.5, gt=0, lt=1, description="sigmoid threshold of the thresholded metrics")
        eval_batch: int = Field(16, ge=1, description="shots per forward pass when scoring the test shots")
        out: str = Field("scene", description="prefix of the output files")
        model_name: str | None = Field(None, description="name of the trained scene classifier handed on (models/<name>.json + .safetensors, `ctx.model(name)`); default `out`")

        @model_validator(mode="after")
        def _one_vocab(self) -> MovieclipSceneClassifier.Config:
            if self.taxonomy is not None and self.labels is not None:
                raise ValueError("give either `taxonomy` or `labels`, not both")
            return self

    @classmethod
    def example_config(cls, tmp_path: Path) -> dict[str, Any]:
        # the contract's items have per-clip 'visual' features and video labels a/b/c
        return {"model": "lstm", "features": "visual", "label_source": "video", "epochs": 2, "lstm_hidden": 8, "batch_size": 8}

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
        if cfg.labels is not None or cfg.taxonomy is not None or cfg.label_source == "clip":
            from .taxonomy import resolve_taxonomy

            return list(resolve_taxonomy(cfg.taxonomy, cfg.labels).labels)
        return list(ctx.vocabulary)

    # -- samples --

    def samples(self, items: list[Item], vocab: list[str]) -> list[_Sample]:
        index = set(vocab)
        out = []
        for i, it in enumerate(items):
            by_shot = {lab.shot_index: lab.labels for lab in it.shot_labels}
            for j, c in enumerate(it.clips):
                labs = by_shot.get(c.shot_index, []) if self.config.label_source == "clip" else it.video.labels
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

    def _build(self, s: dict[str, Any], n_classes: int, example: np.ndarray) -> Any:
        cfg = self.config
        if cfg.model == "lstm":
            return lstm_classifier(example.shape[-1], n_classes, cfg.lstm_hidden, cfg.lstm_layers)
        return build_recognizer(cfg.model, n_classes, int(example.shape[0]), int(s["input_size"]), cfg.backbone, cfg.head_in_channels, cfg.dropout, cfg.pretrained, self.name)

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
            factor = warmup_cosine(total, int(round(s["warmup_epochs"] * steps_per_epoch)))
            return opt, torch.optim.lr_scheduler.LambdaLR(opt, factor), "iter"
        return opt, None, "epoch"

    def _video_batch(self, clips: np.ndarray, s: dict[str, Any], device: Any, boxes: list[Box], size: int, flip: Any = None) -> Any:
        """uint8 ``(B, T, H, W, 3)`` -> normalised ``(B, 1, 3, T, size, size)``: sample b's ``boxes[b]`` window
        resized to ``size``, mirrored where ``flip[b]``."""
        import torch

        x = torch.from_numpy(np.ascontiguousarray(clips)).to(device).float().permute(0, 1, 4, 2, 3)  # B T C H W
        x = torch.stack([crop_resize(x[b], boxes[b], size) for b in range(len(x))])
        mean = torch.tensor(s["mean"], device=device).view(1, 1, 3, 1, 1)
        std = torch.tensor(s["std"], device=device).view(1, 1, 3, 1, 1)
        x = (x - mean) / std
        if flip is not None and flip.any():
            x[flip] = x[flip].flip(-1)
        return x.permute(0, 2, 1, 3, 4).unsqueeze(1).contiguous()

    def _train_inputs(self, arrays: np.ndarray, s: dict[str, Any], clip_len: int, device: Any, gen: Any) -> Any:
        """A training batch: one stored temporal view drawn per sample, then (video models) the paper's crop and flip."""
        import torch

        n_views = max(1, arrays.shape[1] // clip_len)
        starts = torch.randint(n_views, (len(arrays),), generator=gen).tolist()
        views = np.stack([a[v * clip_len : (v + 1) * clip_len] for a, v in zip(arrays, starts)])
        if self.config.model == "lstm":
            return torch.from_numpy(views).to(device)
        cfg = self.config
        h, w = views.shape[2:4]
        boxes = [train_crop_box(h, w, s["train_crop"], gen, cfg.crop_scales, cfg.crop_area, cfg.rescale) for _ in views]
        flip = (torch.rand(len(views), generator=gen) < 0.5).to(device) if cfg.flip else None
        return self._video_batch(views, s, device, boxes, int(s["input_size"]), flip)

    def shot_scores(
        self, forward: Any, arrays: np.ndarray, s: dict[str, Any], clip_len: int, device: Any, autocast: Any = contextlib.nullcontext,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Test scores of shots: sigmoid probabilities of ``forward(view)`` averaged over ``test_clips`` temporal
        views x ``test_crops`` spatial crops (lstm: temporal views only).  Returns ``(scores (B, C), per_view (B, V, C))``."""
        import torch

        starts = view_starts(arrays.shape[1], clip_len, int(s["test_clips"]))
        per_view = []
        with torch.no_grad():
            for v in starts:
                views = arrays[:, v : v + clip_len]
                if self.config.model == "lstm":
                    inputs = [torch.from_numpy(np.ascontiguousarray(views)).to(device)]
                else:
                    h, w = views.shape[2:4]
                    crops = three_crop_boxes(h, w, int(s["test_crops"]), self.config.source_aspect)
                    inputs = [self._video_batch(views, s, device, [box] * len(views), int(s["test_size"])) for box in crops]
                for x in inputs:
                    with autocast():
                        logits = forward(x)
                    per_view.append(torch.sigmoid(logits.float()).cpu().numpy())
        stacked = np.stack(per_view, axis=1)
        return stacked.mean(1), stacked

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
        samples = self.samples(items, vocab)
        notes: list[str] = []
        verified = read_test_list(cfg.test_list, vocab) if cfg.test_list else None
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
                raise MoviekitError(f"{self.name}: `test_list`: none of the shots of {cfg.test_list} is among the run's clips (check video ids and shot indices)")
            held = {(x.video, x.shot) for x in test}
            train = [x for x in samples if (x.video, x.shot) not in held and items[x.item].video.split in (None, "train") and x.labels]
        else:
            train = [x for x in samples if items[x.item].video.split in (None, "train") and x.labels]
            test = [x for x in samples if items[x.item].video.split == "test" and x.labels]
            notes.append("no test_list: scored on the test split's shots against their " + ("CLIP labels" if cfg.label_source == "clip" else "video labels"))
        if not train:
            raise MoviekitError(
                f"{self.name}: no training shot with labels in the vocabulary"
                + (" (did the recipe run the movieclip_clip labeler?)" if cfg.label_source == "clip" else "")
            )
        if not test:
            raise MoviekitError(f"{self.name}: no test shot with labels: give `test_list` or items in the test split")

        def arrays_of(sel: list[_Sample]) -> np.ndarray:
            return np.stack([np.asarray(items[x.item].features.arrays[key][x.clip]) for x in sel])

        def inputs_of(sel: list[_Sample]) -> np.ndarray:
            return sequence_inputs(arrays_of(sel), cfg.grid) if cfg.model == "lstm" else arrays_of(sel)

        x_train = inputs_of(train)
        clip_len = self.view_length(ctx, x_train.shape[1], notes)
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
            return loss_fn(forward(self._train_inputs(x_train[idx], s, clip_len, ctx.device, gen)).float(), yt[idx])

        history = train_loop(
            model, step, len(train), opt, s["epochs"], s["batch_size"], ctx, ctx.seed, sched, per, s["clip_grad"], cfg.max_steps,
            checkpoint_every=cfg.checkpoint_every, tag=f"{cfg.out}-train", generators=[gen],
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
            Path(ctx.out_dir) / npz, y_true=y_test, scores=scores, vocabulary=np.asarray(vocab),
            video=np.asarray([x.video for x in test]), shot=np.asarray([x.shot for x in test]),
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


COMPONENTS = [MovieclipFrames, MovieclipSceneClassifier]
