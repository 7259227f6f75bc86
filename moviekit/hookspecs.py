"""pluggy hook specifications.

A plugin is a module (named by an entry point in the ``moviekit`` group) that
sets ``moviekit_api = "1.0"`` and implements some of these hooks with
``@moviekit.hookimpl``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

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


@hookspec
def doctor_checks() -> list[tuple[str, bool, str]]:
    """Checks ``moviekit doctor`` shows for this plugin's own stack.

    Return a list of ``(check, ok, detail)``: ``check`` names what was checked (e.g.
    ``"mmaction2"``), ``ok`` says whether it is usable, ``detail`` is a version or what to install.
    Must be cheap and must not raise for a missing optional stack (report it with ``ok=False``);
    :func:`moviekit.import_check` builds the common "is this module importable" check.
    """
