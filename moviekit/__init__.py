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
)
from .runner import TaskContext
from .tensors import pad_features
from .weights import resolve_weights

__version__ = "0.1.0"

__all__ = [
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
    "TaskResult",
    "Track",
    "UnknownComponentError",
    "Video",
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
]
