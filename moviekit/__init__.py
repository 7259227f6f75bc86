"""moviekit: a plugin toolkit for movie-understanding research.

The public API for plugin authors is everything imported here.
"""

from .clips import make_clips
from .groups import gather, group_at, group_by_time, group_windows
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
    Shot,
    Track,
    Video,
)
from .device import resolve_device
from .recipe import load_recipe
from .context import Reporter, TaskContext
from .models import ModelPart, ModelRecord, TrainedModel, build_part, find_run_model, load_model
from .reporting import write_classification_report, write_csv
from .runner import extract_videos, run_recipe
from .metrics import multilabel_metrics, per_class_metrics, random_baseline
from .tensors import mlp, multi_hot, pad_features
from .training import (
    TrainConfig,
    batches,
    classification_report,
    embed_items,
    evaluation_split,
    feature_dims,
    fit_multilabel,
    pos_weights,
    predict_scores,
    run_batched,
    selection_split,
    to_device,
    train_loop,
    warmup_cosine,
    warmup_cosine_factor,
)
from .weights import open_clip_weights_spec, resolve_checkpoint, resolve_weights
from .default_plugins.formats import write_movieclip_json

__version__ = "0.1.0"

__all__ = [
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
    "evaluation_split",
    "feature_dims",
    "fit_multilabel",
    "pos_weights",
    "predict_scores",
    "run_batched",
    "selection_split",
    "to_device",
    "train_loop",
    "warmup_cosine",
    "warmup_cosine_factor",
    "write_classification_report",
    "write_csv",
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
    "Shot",
    "Sink",
    "Task",
    "TaskContext",
    "Reporter",
    "ModelPart",
    "ModelRecord",
    "TrainedModel",
    "build_part",
    "find_run_model",
    "load_model",
    "TaskResult",
    "Track",
    "UnknownComponentError",
    "Video",
    "WeightsNotFoundError",
    "WeightsSpec",
    "get_registry",
    "gather",
    "group_at",
    "group_by_time",
    "group_windows",
    "hookimpl",
    "make_clips",
    "pad_features",
    "pool_track",
    "resolve_weights",
    "write_movieclip_json",
]
