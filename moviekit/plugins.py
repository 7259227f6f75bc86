"""Plugin discovery, the component registry and plugin API version checks."""

from __future__ import annotations

import difflib
import importlib
import os
import traceback
from dataclasses import dataclass, field
from importlib import metadata
from types import ModuleType
from typing import Any

import pluggy

from . import hookspecs
from .components import KINDS, Component
from .errors import PluginError, UnknownComponentError

#: Version of the plugin API this core provides.  Plugins declare the version
#: they target as ``moviekit_api = "MAJOR.MINOR"``; the major must match and the
#: minor must not be newer than the core's.
#: 1.1 added the ``doctor_checks`` hook.
PLUGIN_API_VERSION = "1.1"
ENTRY_POINT_GROUP = "moviekit"
DEFAULT_PLUGINS = (
    "moviekit.default_plugins.media",
    "moviekit.default_plugins.segmenters",
    "moviekit.default_plugins.transnet",
    "moviekit.default_plugins.segment_command",
    "moviekit.default_plugins.datasets",
    "moviekit.default_plugins.formats",
    "moviekit.default_plugins.synthetic",
    "moviekit.default_plugins.generic",
    "moviekit.default_plugins.lvu",
)


@dataclass
class PluginInfo:
    """One loaded (or broken) plugin."""

    name: str
    distribution: str
    version: str
    api_version: str | None = None
    default: bool = False
    components: dict[str, list[str]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "api_version": self.api_version,
            "default": self.default,
            "status": "ok" if self.ok else "broken",
            "components": self.components,
            "errors": self.errors,
        }


@dataclass
class Registration:
    cls: type[Component]
    plugin: PluginInfo


def check_api_version(declared: Any) -> str | None:
    """An error message if ``declared`` is not compatible with this core, else None."""
    if declared is None:
        return f'does not declare the plugin API it targets (set moviekit_api = "{PLUGIN_API_VERSION}" in the plugin module)'
    try:
        major, minor = (int(x) for x in str(declared).split(".")[:2])
    except ValueError:
        return f"declares an unreadable plugin API version {declared!r} (expected 'MAJOR.MINOR')"
    core_major, core_minor = (int(x) for x in PLUGIN_API_VERSION.split("."))
    if major != core_major or minor > core_minor:
        return f"targets plugin API {declared} but this moviekit provides {PLUGIN_API_VERSION}"
    return None


def _allow_list() -> set[str] | None:
    raw = os.environ.get("MOVIEKIT_LOAD_PLUGINS")
    if raw is None:
        return None
    return {p.strip() for p in raw.split(",") if p.strip()}


class Registry:
    """All loaded plugins and the components they register."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.plugins: dict[str, PluginInfo] = {}
        self.components: dict[str, Registration] = {}
        self.conflicts: dict[str, list[str]] = {}

    # -- loading -----------------------------------------------------------
    def load(self, entry_points: bool = True) -> Registry:
        core_version = _dist_version("moviekit")
        for modname in DEFAULT_PLUGINS:
            info = PluginInfo(modname, "moviekit", core_version, PLUGIN_API_VERSION, default=True)
            self._add_module(info, lambda m=modname: importlib.import_module(m))
        if entry_points:
            allow = _allow_list()
            for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
                dist = ep.dist.name if ep.dist else ep.name
                if allow is not None and ep.name not in allow and dist not in allow:
                    continue
                info = PluginInfo(ep.name, dist, ep.dist.version if ep.dist else "unknown")
                self._add_module(info, ep.load)
        return self

    def add_plugin(self, module: ModuleType, name: str | None = None, distribution: str = "local") -> PluginInfo:
        """Register an already-imported plugin module (tests, notebooks)."""
        info = PluginInfo(name or module.__name__, distribution, getattr(module, "__version__", "0"))
        self._add_module(info, lambda: module)
        return info

    def _add_module(self, info: PluginInfo, load: Any) -> None:
        if info.name in self.plugins:
            return
        self.plugins[info.name] = info
        try:
            module = load()
        except BaseException as e:  # noqa: BLE001 - a broken plugin must never take a command down
            if isinstance(e, KeyboardInterrupt):
                raise
            info.errors.append(f"import failed: {type(e).__name__}: {e}")
            return
        if not info.default:
            info.api_version = getattr(module, "moviekit_api", None)
            problem = check_api_version(info.api_version)
            if problem:
                info.errors.append(problem)
                return
        try:
            self.pm.register(module, name=info.name)
        except Exception as e:  # noqa: BLE001
            info.errors.append(f"registration failed: {type(e).__name__}: {e}")
            return
        for impl in self.pm.hook.register_components.get_hookimpls():
            if impl.plugin_name == info.name:
                try:
                    impl.function(register=lambda cls, _info=info: self._register(cls, _info))
                except Exception as e:  # noqa: BLE001
                    tb = traceback.extract_tb(e.__traceback__)[-1]
                    info.errors.append(f"register_components raised {type(e).__name__}: {e} ({tb.filename}:{tb.lineno})")

    def _register(self, cls: type, info: PluginInfo) -> None:
        if not (isinstance(cls, type) and issubclass(cls, Component)) or cls.kind not in KINDS:
            raise PluginError(f"{cls!r} is not a moviekit component (subclass one of {', '.join(sorted(KINDS))})")
        if not cls.name:
            raise PluginError(f"{cls.__qualname__} has no `name`")
        existing = self.components.get(cls.name)
        if existing is not None:
            msg = (
                f"component name '{cls.name}' is provided by both {existing.plugin.name} "
                f"({existing.plugin.distribution}) and {info.name} ({info.distribution})"
            )
            # Only the newcomer is broken: the owner keeps its name.  A core (default) component
            # keeps resolving; between two third-party plugins the name is ambiguous, so using it
            # is an error naming both (the owner's other components still work).
            info.errors.append(msg + f"; {info.name}'s '{cls.name}' is not loaded")
            if not existing.plugin.default:
                self.conflicts.setdefault(cls.name, [existing.plugin.name]).append(info.name)
            return
        self.components[cls.name] = Registration(cls, info)
        info.components.setdefault(cls.kind, []).append(cls.name)

    # -- lookup ------------------------------------------------------------
    def names(self, kind: str | None = None) -> list[str]:
        return sorted(n for n, r in self.components.items() if kind is None or r.cls.kind == kind)

    def get(self, name: str, kind: str | None = None) -> type[Component]:
        if name in self.conflicts:
            raise PluginError(
                f"component name '{name}' is provided by more than one plugin: {', '.join(self.conflicts[name])}; "
                "uninstall one or restrict loading with MOVIEKIT_LOAD_PLUGINS"
            )
        reg = self.components.get(name)
        if reg is None or (kind is not None and reg.cls.kind != kind):
            raise UnknownComponentError(self.unknown_message(name, kind))
        return reg.cls

    def unknown_message(self, name: str, kind: str | None) -> str:
        candidates = self.names(kind)
        reg = self.components.get(name)
        if reg is not None and kind is not None:
            return f"'{name}' is a {reg.cls.kind}, not a {kind}; {kind}s: {', '.join(candidates) or '(none)'}"
        what = kind or "component"
        msg = f"unknown {what} '{name}'"
        close = difflib.get_close_matches(name, candidates, n=3, cutoff=0.6)
        if close:
            msg += f"; did you mean '{close[0]}'?"
        msg += f" Allowed: {', '.join(candidates) or '(none installed)'}"
        broken = [p.name for p in self.plugins.values() if not p.ok]
        if broken:
            msg += f" (broken plugins not loaded: {', '.join(broken)}; see `moviekit list plugins`)"
        return msg

    def plugin_of(self, name: str) -> PluginInfo:
        return self.components[name].plugin

    def create(self, name: str, kind: str | None = None, **config: Any) -> Component:
        return self.get(name, kind)(**config)

    def register_commands(self, cli: Any) -> list[str]:
        """Let each plugin add commands; a plugin that raises is reported, not fatal."""
        problems = []
        for impl in self.pm.hook.register_commands.get_hookimpls():
            commands = list(getattr(cli, "registered_commands", []))
            groups = list(getattr(cli, "registered_groups", []))
            try:
                impl.function(cli=cli)
                if hasattr(cli, "registered_commands"):
                    import typer.main

                    typer.main.get_command(cli)  # builds every command now, so a broken one fails here
            except Exception as e:  # noqa: BLE001
                if hasattr(cli, "registered_commands"):
                    cli.registered_commands[:] = commands
                    cli.registered_groups[:] = groups
                problems.append(f"{impl.plugin_name}: register_commands raised {type(e).__name__}: {e}")
                info = self.plugins.get(impl.plugin_name)
                if info is not None:
                    info.errors.append(problems[-1])
        return problems


def _dist_version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "0+unknown"


_registry: Registry | None = None


def get_registry(refresh: bool = False) -> Registry:
    """The process-wide registry, loaded on first use."""
    global _registry
    if _registry is None or refresh:
        _registry = Registry().load()
    return _registry
