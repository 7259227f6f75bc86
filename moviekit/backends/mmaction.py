"""The mmaction2 back-end: one way for every plugin to import mmaction2's model registry, read the configs
its wheel ships and build a model from a config dict.

* :func:`registry`: mmaction2's ``MODELS`` registry, imported with the workarounds the 1.2.0 wheel needs
  (its multimodal models clash with the installed ``transformers``; its wheel lacks
  ``mmaction.models.localizers.drn``).
* :func:`config_file`, :func:`load_config`: a config of the installed wheel (``mmaction/.mim/configs``),
  named by its path under ``configs/`` as in the mmaction2 model zoo, as a plain dict with its ``_base_``
  files merged.
* :func:`build`: a module from a config dict, in mmaction2's registry scope, with mmengine's logging quiet.

mmaction2 (and mmengine) are imported only inside these functions.
"""

from __future__ import annotations

import logging
import sys
import types
import warnings
from pathlib import Path
from typing import Any

from ..errors import MoviekitError

#: What to install when mmaction2 is missing.
INSTALL = "pip install mmaction2==1.2.0 mmengine==0.10.7 mmcv-lite==2.1.0 importlib_metadata"


def _import_mmaction() -> Any:
    try:
        import mmaction
    except ImportError as e:
        raise MoviekitError(f"this model needs mmaction2, which is not installed: `{INSTALL}`") from e
    return mmaction


def registry() -> Any:
    """mmaction2's ``MODELS`` registry with every model registered."""
    mmaction = _import_mmaction()
    import mmaction.utils.dependency as dependency

    # Must be set before register_all_modules(): the multimodal models import `transformers` APIs that
    # the installed version no longer has.  None of them is used through this back-end.
    dependency.WITH_MULTIMODAL = False
    # `mmaction.models.localizers` imports its `drn` package, which the 1.2.0 wheel does not ship: an
    # empty stand-in (DRN, a temporal grounding model, is never built here) lets `mmaction.models` import.
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


def config_file(name: str) -> Path:
    """The installed wheel's config ``name`` (a path under mmaction2's ``configs/``, e.g.
    ``recognition/i3d/i3d_imagenet-pretrained-r50_8xb8-32x2x1-100e_kinetics400-rgb.py``)."""
    mmaction = _import_mmaction()
    root = Path(mmaction.__file__).parent / ".mim" / "configs"
    file = root / name
    if not file.is_file():
        raise MoviekitError(f"mmaction2 {getattr(mmaction, '__version__', '?')} ships no config {name!r} (looked in {root})")
    return file


def load_config(name: str) -> dict[str, Any]:
    """Config ``name`` of the installed wheel as a plain dict (``_base_`` files merged)."""
    from mmengine.config import Config

    return Config.fromfile(str(config_file(name))).to_dict()


def build(cfg: dict[str, Any]) -> Any:
    """The module that ``cfg`` (an mmaction2 config dict with a ``type``) describes, built in mmaction2's scope."""
    from mmengine.logging import MMLogger
    from mmengine.registry import DefaultScope

    models = registry()
    logger = MMLogger.get_current_instance()
    old = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with DefaultScope.overwrite_default_scope("mmaction"):
            return models.build(cfg)
    finally:
        logger.setLevel(old)
