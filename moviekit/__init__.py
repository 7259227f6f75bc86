"""moviekit: a plugin toolkit for movie-understanding research.

The public API for plugin authors is everything imported here.
"""

from . import backends
from .backends.openclip import weights_spec as open_clip_weights_spec
from .clips import make_clips
from .codec import register_record
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
    shape_matches,
)
from .context import Reporter, TaskContext
from .default_plugins.formats import export_features_dir, write_features_dir
from .device import resolve_device
from .distributed import gather_with_grad
from .doctor import import_check
from .errors import DiskWriteError, ItemError, MoviekitError, PluginError, RecipeError, UnknownComponentError, WeightsNotFoundError
from .generated import ensure_generated, generated_dataset_dir
from .groups import gather, group_at, group_by_time, group_windows
from .hookspecs import hookimpl
from .metrics import (
    AUPRC_NAMES,
    all_positive_baseline,
    all_positive_from_supports,
    auprc_note,
    boundary_scores,
    multilabel_metrics,
    per_class_metrics,
    per_class_table,
    random_baseline,
    weighted_mean,
)
from .models import ModelPart, ModelRecord, TrainedModel, build_part, find_run_model, load_model
from .plugins import PLUGIN_API_VERSION, get_registry
from .recipe import load_recipe
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
    VideoInfo,
)
from .reporting import write_classification_report, write_csv
from .retrieval import IndexConfig, build_index, recall_at_k, search_index
from .runner import extract_videos, run_recipe
from .sources import VIDEO_EXTENSIONS, ListingSource, SplitConfig, deterministic_split, write_mp4
from .store import atomic_write_text
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
from .weights import resolve_checkpoint, resolve_weights

__version__ = "0.1.0"

__all__ = [
    "backends",
    "open_clip_weights_spec",
    "register_record",
    "DiskWriteError",
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
    "AUPRC_NAMES",
    "all_positive_baseline",
    "all_positive_from_supports",
    "auprc_note",
    "boundary_scores",
    "per_class_table",
    "weighted_mean",
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
    "VideoInfo",
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
    "shape_matches",
    "resolve_weights",
    "VIDEO_EXTENSIONS",
    "import_check",
    "SplitConfig",
    "deterministic_split",
    "write_mp4",
    "IndexConfig",
    "build_index",
    "search_index",
    "recall_at_k",
    "gather_with_grad",
    "export_features_dir",
    "write_features_dir",
    "atomic_write_text",
    "ensure_generated",
    "generated_dataset_dir",
    "ListingSource",
]
