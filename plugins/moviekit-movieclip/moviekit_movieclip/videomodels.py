"""The video models of the MovieCLIP scene classifier (supplementary Sec. 4.1-4.2) and how to build them.

* :data:`PAPER_SETTINGS`: the paper's per-model optimiser, schedule, clip and view settings;
* the paper's mmaction2 recognizers (I3D, SlowFast, R(2+1)D, TimeSformer, Video Swin):
  :func:`backbone_config`, :func:`build_recognizer`, :func:`load_pretrained`;
* the light baseline: :func:`lstm_classifier` over :func:`sequence_inputs` (a cheap per-frame feature).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from moviekit import (
    MoviekitError,
    WeightsSpec,
    resolve_checkpoint,
)
from moviekit.backends import mmaction as mmaction_backend

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
        "optimizer": "sgd",
        "lr": 1e-3,
        "momentum": 0.9,
        "weight_decay": 1e-4,
        "nesterov": False,
        "schedule": "step",
        "milestones": [20, 40],
        "warmup_epochs": 0.0,
        "batch_size": 32,
        "epochs": 38,
        "clip_len": 32,
        "frame_interval": 2,
        "input_size": 224,
        "mean": KINETICS_MEAN,
        "std": KINETICS_STD,
        "clip_grad": 40.0,
        "train_crop": "multiscale",
        "test_clips": 10,
        "test_crops": 3,
        "test_scale": 256 / 224,
    },
    "slowfast": {
        "optimizer": "sgd",
        "lr": 0.1,
        "momentum": 0.9,
        "weight_decay": 1e-4,
        "nesterov": False,
        "schedule": "cosine",
        "milestones": [],
        "warmup_epochs": 34.0,
        "batch_size": 32,
        "epochs": 256,
        "clip_len": 32,
        "frame_interval": 2,
        "input_size": 224,
        "mean": KINETICS_MEAN,
        "std": KINETICS_STD,
        "clip_grad": 40.0,
        "train_crop": "random_resized",
        "test_clips": 10,
        "test_crops": 3,
        "test_scale": 256 / 224,
    },
    "r2plus1d": {
        "optimizer": "adam",
        "lr": 1e-4,
        "betas": (0.9, 0.999),
        "eps": 1e-8,
        "weight_decay": 0.0,
        "schedule": "step",
        "milestones": [20, 40],
        "warmup_epochs": 0.0,
        "batch_size": 16,
        "epochs": 15,
        "clip_len": 8,
        "frame_interval": 8,
        "input_size": 224,
        "mean": KINETICS_MEAN,
        "std": KINETICS_STD,
        "clip_grad": 40.0,
        "train_crop": "random_resized",
        "test_clips": 10,
        "test_crops": 3,
        "test_scale": 256 / 224,
    },
    "timesformer": {
        "optimizer": "sgd",
        "lr": 5e-3,
        "momentum": 0.9,
        "weight_decay": 1e-4,
        "nesterov": True,
        "schedule": "step",
        "milestones": [5, 10],
        "warmup_epochs": 0.0,
        "batch_size": 8,
        "epochs": 15,
        "clip_len": 8,
        "frame_interval": 32,
        "input_size": 224,
        "mean": (127.5, 127.5, 127.5),
        "std": (127.5, 127.5, 127.5),
        "clip_grad": 40.0,
        "train_crop": "rescale_crop",
        "test_clips": 1,
        "test_crops": 3,
        "test_scale": 1.0,
    },
    "swin": {
        "optimizer": "adamw",
        "lr": 1e-4,
        "betas": (0.9, 0.999),
        "weight_decay": 0.05,
        "schedule": "cosine",
        "milestones": [],
        "warmup_epochs": 2.5,
        "batch_size": 32,
        "epochs": 9,
        "clip_len": 32,
        "frame_interval": 2,
        "input_size": 224,
        "mean": KINETICS_MEAN,
        "std": KINETICS_STD,
        "clip_grad": 40.0,
        "train_crop": "random_resized",
        "test_clips": 4,
        "test_crops": 3,
        "test_scale": 1.0,
    },
    "lstm": {
        "optimizer": "adam",
        "lr": 1e-3,
        "betas": (0.9, 0.999),
        "eps": 1e-8,
        "weight_decay": 0.0,
        "schedule": "none",
        "milestones": [],
        "warmup_epochs": 0.0,
        "batch_size": 32,
        "epochs": 30,
        "clip_len": 32,
        "frame_interval": 2,
        "input_size": None,
        "mean": None,
        "std": None,
        "clip_grad": None,
        "train_crop": "none",
        "test_clips": 10,
        "test_crops": 1,
        "test_scale": 1.0,
    },
}
MMACTION_MODELS = ("i3d", "slowfast", "r2plus1d", "timesformer", "swin")
STEP_GAMMA = 0.1  # mmaction2's step policy


# -- mmaction2 --------------------------------------------------------------------------------


def _mmaction_registry() -> Any:
    """mmaction2's MODELS registry, imported lazily by the core's back-end (with its known workarounds)."""
    return mmaction_backend.registry()


def backbone_config(model: str, clip_len: int, input_size: int) -> dict[str, Any]:
    """The paper's backbone of ``model`` as an mmaction2 config dict (no pretrained weights)."""
    if model == "i3d":  # ResNet50 I3D
        return dict(
            type="ResNet3d",
            depth=50,
            pretrained=None,
            pretrained2d=False,
            conv1_kernel=(5, 7, 7),
            conv1_stride_t=2,
            pool1_stride_t=2,
            conv_cfg=dict(type="Conv3d"),
            norm_eval=False,
            inflate=((1, 1, 1), (1, 0, 1, 0), (1, 0, 1, 0, 1, 0), (0, 1, 0)),
            zero_init_residual=False,
        )
    if model == "slowfast":  # ResNet50 SlowFast
        return dict(
            type="ResNet3dSlowFast",
            pretrained=None,
            resample_rate=8,
            speed_ratio=8,
            channel_ratio=8,
            slow_pathway=dict(
                type="resnet3d",
                depth=50,
                pretrained=None,
                lateral=True,
                conv1_kernel=(1, 7, 7),
                dilations=(1, 1, 1, 1),
                conv1_stride_t=1,
                pool1_stride_t=1,
                inflate=(0, 0, 1, 1),
                norm_eval=False,
            ),
            fast_pathway=dict(
                type="resnet3d",
                depth=50,
                pretrained=None,
                lateral=False,
                base_channels=8,
                conv1_kernel=(5, 7, 7),
                conv1_stride_t=1,
                pool1_stride_t=1,
                norm_eval=False,
            ),
        )
    if model == "r2plus1d":  # ResNet34 R(2+1)D
        return dict(
            type="ResNet2Plus1d",
            depth=34,
            pretrained=None,
            pretrained2d=False,
            norm_eval=False,
            conv_cfg=dict(type="Conv2plus1d"),
            norm_cfg=dict(type="BN3d", requires_grad=True),
            act_cfg=dict(type="ReLU"),
            conv1_kernel=(3, 7, 7),
            conv1_stride_t=1,
            pool1_stride_t=1,
            inflate=(1, 1, 1, 1),
            spatial_strides=(1, 2, 2, 2),
            temporal_strides=(1, 2, 2, 2),
            zero_init_residual=False,
        )
    if model == "timesformer":  # divided space-time attention, patch 16, 768-d, 12 heads, 12 layers
        return dict(
            type="TimeSformer",
            num_frames=clip_len,
            img_size=input_size,
            patch_size=16,
            embed_dims=768,
            num_heads=12,
            num_transformer_layers=12,
            in_channels=3,
            dropout_ratio=0.0,
            transformer_layers=None,
            attention_type="divided_space_time",
            norm_cfg=dict(type="LN", eps=1e-6),
        )
    if model == "swin":  # Swin-B: patch (2,4,4), 128-d, depths [2,2,18,2], heads [4,8,16,32], window (8,7,7)
        return dict(
            type="SwinTransformer3D",
            arch="base",
            pretrained=None,
            pretrained2d=False,
            patch_size=(2, 4, 4),
            window_size=(8, 7, 7),
            drop_path_rate=0.3,
            patch_norm=True,
        )
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
    ``head_in_channels`` is given.  ``pretrained`` (``kinetics`` or a local checkpoint, see
    :func:`kinetics_spec`) names weights whose matching tensors are loaded (the classifier of
    another label set is skipped).
    """
    from mmengine.registry import DefaultScope

    if pretrained:
        checkpoint_file(model, pretrained, component)  # fail before building a large model
    registry = _mmaction_registry()
    cfg_backbone = _merge(backbone_config(model, clip_len, input_size), backbone or {})
    head_type, channels = HEADS[model]
    logger, old = _quiet_mmengine()
    try:
        with DefaultScope.overwrite_default_scope("mmaction"):
            net = _build_in_scope(
                registry,
                cfg_backbone,
                head_type,
                head_in_channels or channels,
                num_classes,
                bool(backbone) and head_in_channels is None,
                dropout,
                clip_len,
                input_size,
            )
    finally:
        logger.setLevel(old)
    if pretrained:
        load_pretrained(net, model, pretrained, component)
    return net


def _build_in_scope(
    registry: Any,
    cfg_backbone: dict[str, Any],
    head_type: str,
    channels: int,
    num_classes: int,
    measure: bool,
    dropout: float | None,
    clip_len: int,
    input_size: int,
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


#: ``pretrained: kinetics`` names the model's Kinetics-400 checkpoint, looked up in ``$MOVIEKIT_WEIGHTS`` and the cache.
KINETICS = "kinetics"


def kinetics_spec(model: str, pretrained: str, config_key: str = "pretrained") -> WeightsSpec:
    """The weights of ``pretrained``: ``kinetics`` -> ``mmaction2-<model>-kinetics400`` (a folder in
    ``$MOVIEKIT_WEIGHTS`` or the moviekit cache holding the mmaction2 model zoo's Kinetics-400 checkpoint of the
    paper's backbone), anything else a local checkpoint file or folder.  Nothing is downloaded."""
    if pretrained == KINETICS:
        return WeightsSpec(
            name=f"mmaction2-{model}-kinetics400",
            description=f"mmaction2 {model} Kinetics-400 checkpoint (the paper's backbone, from the mmaction2 model zoo)",
            config_key=config_key,
        )
    return WeightsSpec(name=f"mmaction2-{model}", description=f"mmaction2 {model} checkpoint", path=pretrained, config_key=config_key)


def checkpoint_file(model: str, pretrained: str, component: str, config_key: str = "pretrained") -> Path:
    """The local checkpoint file of ``pretrained`` (see :func:`kinetics_spec`); a clear error naming the component,
    its config key and where to put the file when it is absent."""
    hint = (
        f"\nDownload the Kinetics-400 checkpoint of the paper's {model} from the mmaction2 model zoo beforehand, "
        f"or leave `{config_key}` unset to train from scratch."
    )
    return resolve_checkpoint(kinetics_spec(model, pretrained, config_key), component, hint)


def read_state_dict(file: Path, component: str, config_key: str = "pretrained") -> dict[str, Any]:
    """The tensors of a checkpoint file, never unpickling code: ``.safetensors``, or a torch file read with
    ``weights_only=True`` (mmaction2's ``{"state_dict": ..., "meta": ...}`` or a bare state dict)."""
    import torch

    if file.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(file))
        except Exception as e:  # noqa: BLE001
            raise MoviekitError(f"{component}: `{config_key}`: {file} is not a readable safetensors file ({type(e).__name__}: {e})") from e
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001
        raise MoviekitError(
            f"{component}: `{config_key}`: {file} cannot be read as tensors only (torch.load weights_only=True: {type(e).__name__}: "
            f"{str(e).splitlines()[0] if str(e) else ''}). moviekit never unpickles a checkpoint (it could run code). If you trust "
            'the file, convert it once to safetensors: python -c "import torch, safetensors.torch as st; '
            "c = torch.load('IN.pth', weights_only=False); st.save_file(c.get('state_dict', c), 'OUT.safetensors')\""
        ) from e
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    if not isinstance(state, dict) or not all(hasattr(v, "shape") for v in state.values()):
        raise MoviekitError(f"{component}: `{config_key}`: {file} holds no state dict of tensors")
    return state


def load_pretrained(
    net: Any, model: str, pretrained: str, component: str = "movieclip_scene_classifier", config_key: str = "pretrained"
) -> dict[str, int]:
    """Load the tensors of a local checkpoint (:func:`checkpoint_file`) that match ``net`` by name and shape
    (the classifier of another label set is skipped)."""
    file = checkpoint_file(model, pretrained, component, config_key)
    state = read_state_dict(file, component, config_key)
    own = net.state_dict()
    keep = {k: v for k, v in state.items() if k in own and tuple(v.shape) == tuple(own[k].shape)}
    if not keep:
        raise MoviekitError(
            f"{component}: `{config_key}`: no tensor of {file} matches the {type(net).__name__} being trained (wrong model?)"
        )
    net.load_state_dict(keep, strict=False)
    return {"loaded": len(keep), "skipped": len(state) - len(keep)}


def penultimate_layer(net: Any) -> Any:
    """The classifier's last linear layer, whose input is the network's penultimate feature: mmaction2's
    ``cls_head.fc_cls`` (for Swin-B the 1024-d pooled backbone feature), or the LSTM baseline's ``fc``."""
    head = getattr(net, "cls_head", None)
    layer = getattr(head, "fc_cls", None) if head is not None else getattr(net, "fc", None)
    if layer is None:
        raise MoviekitError(f"{type(net).__name__} has no classifier layer (cls_head.fc_cls or fc) to take penultimate features from")
    return layer


def penultimate_features(net: Any, forward: Any, x: Any) -> Any:
    """``(B, D)`` inputs of :func:`penultimate_layer` while ``forward(x)`` runs (the features the classifier scores)."""
    got: list[Any] = []
    hook = penultimate_layer(net).register_forward_pre_hook(lambda _m, args: got.append(args[0].detach()))
    try:
        forward(x)
    finally:
        hook.remove()
    return got[-1].reshape(got[-1].shape[0], -1)


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
    raise MoviekitError(
        f"cannot make per-frame sequences from features of shape {a.shape[1:]} per clip; expected (D,), (T, D) or (T, H, W, 3)"
    )


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
