"""moviekit: a plugin toolkit for movie-understanding research.

The public API for plugin authors is everything imported here.
"""

from .clips import group_windows, make_clips, make_sequences
from .components import (
    AudioNeed,
    Component,
    Config,
    DatasetSource,
    Encoder,
    Expert,
    FrameNeed,
    Head,
    Labeler,
    Needs,
    Reader,
    Segmenter,
    Sink,
    Task,
    TaskResult,
    WeightsSpec,
    pool_track,
)
from .errors import ItemError, MoviekitError, PluginError, RecipeError, UnknownComponentError, WeightsNotFoundError
from .hookspecs import hookimpl
from .plugins import PLUGIN_API_VERSION, get_registry
from .records import (
    AudioChunk,
    Clip,
    Embeddings,
    FeatureSet,
    FrameBatch,
    Item,
    Labels,
    Predictions,
    Sequence,
    Shot,
    Track,
    Video,
    VideoInfo,
)
from .device import resolve_device
from .recipe import load_recipe
from .context import Reporter, TaskContext
from .models import ModelPart, ModelRecord, TrainedModel, build_part, load_model
from .runner import extract_videos, run_recipe
from .metrics import multilabel_metrics, per_class_metrics, random_baseline
from .tensors import mlp, multi_hot, pad_features
from .training import (
    TrainConfig,
    batches,
    classification_report,
    embed_items,
    feature_dims,
    fit_multilabel,
    pos_weights,
    predict_scores,
    run_batched,
    to_device,
    train_loop,
)
from .weights import resolve_checkpoint, resolve_weights
from . import backends
from .backends.openclip import weights_spec as open_clip_weights_spec
from .doctor import import_check
from .sources import VIDEO_EXTENSIONS, SplitConfig, deterministic_split

__version__ = "0.1.0"

__all__ = [
    "backends",
    "open_clip_weights_spec",
    "resolve_checkpoint",
    "resolve_device",
    "extract_videos",
    "load_recipe",
    "run_recipe",
    "TrainConfig",
    "batches",
    "classification_report",
    "embed_items",
    "feature_dims",
    "fit_multilabel",
    "pos_weights",
    "predict_scores",
    "run_batched",
    "to_device",
    "train_loop",
    "multilabel_metrics",
    "per_class_metrics",
    "random_baseline",
    "multi_hot",
    "mlp",
    "PLUGIN_API_VERSION",
    "AudioChunk",
    "AudioNeed",
    "Clip",
    "Component",
    "Config",
    "DatasetSource",
    "Embeddings",
    "Encoder",
    "Expert",
    "FeatureSet",
    "FrameBatch",
    "FrameNeed",
    "Head",
    "Item",
    "ItemError",
    "Labeler",
    "Labels",
    "MoviekitError",
    "Needs",
    "PluginError",
    "Predictions",
    "Reader",
    "RecipeError",
    "Segmenter",
    "Sequence",
    "Shot",
    "Sink",
    "Task",
    "TaskContext",
    "Reporter",
    "ModelPart",
    "ModelRecord",
    "TrainedModel",
    "build_part",
    "load_model",
    "TaskResult",
    "Track",
    "UnknownComponentError",
    "Video",
    "VideoInfo",
    "WeightsNotFoundError",
    "WeightsSpec",
    "get_registry",
    "group_windows",
    "hookimpl",
    "make_clips",
    "make_sequences",
    "pad_features",
    "pool_track",
    "resolve_weights",
    "VIDEO_EXTENSIONS",
    "import_check",
    "SplitConfig",
    "deterministic_split",
]
