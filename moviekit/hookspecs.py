"""pluggy hook specifications.

A plugin is a module (named by an entry point in the ``moviekit`` group) that
sets ``moviekit_api = "1.0"`` and implements some of these hooks with
``@moviekit.hookimpl``.
"""

from __future__ import annotations

from typing import Any, Callable

import pluggy

PROJECT = "moviekit"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_components(register: Callable[[type], None]) -> None:
    """Register component classes: call ``register(ComponentClass)`` once for each."""


@hookspec
def register_commands(cli: Any) -> None:
    """Add commands to the ``moviekit`` typer app (``cli.add_typer`` or ``cli.command``)."""
