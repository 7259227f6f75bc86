"""Exception types raised by moviekit.

Every error a user can cause derives from :class:`MoviekitError`, so the
command line can print it without a traceback.
"""

from __future__ import annotations


class MoviekitError(Exception):
    """Base class for errors that are reported to the user as plain messages."""


class RecipeError(MoviekitError):
    """A recipe failed to load or validate.

    ``problems`` holds one ``(dotted_key_path, message)`` pair per problem.
    """

    def __init__(self, source: str, problems: list[tuple[str, str]]):
        self.source = source
        self.problems = problems
        if len(problems) == 1:  # one problem: one line
            path, msg = problems[0]
            super().__init__(f"{source}: {path or '<root>'}: {msg}")
            return
        lines = [f"{source}: {len(problems)} problem(s) in the recipe"]
        for path, msg in problems:
            lines.append(f"  {path or '<root>'}: {msg}")
        super().__init__("\n".join(lines))


class PluginError(MoviekitError):
    """A plugin could not be loaded, or conflicts with another one."""


class UnknownComponentError(MoviekitError):
    """A component name is not registered."""


class WeightsNotFoundError(MoviekitError):
    """Model weights could not be found locally nor downloaded."""


class ItemError(MoviekitError):
    """One item (video) failed in one stage; the run records it and goes on."""

    def __init__(self, item: str, stage: str, message: str):
        self.item = item
        self.stage = stage
        self.message = message
        super().__init__(f"{item}: {stage}: {message}")


class DiskWriteError(MoviekitError, OSError):
    """A file could not be written (disk full, read-only or no permission): a problem of the whole run.

    Also an ``OSError``, so code that handled the original error still does."""


class RunInterrupted(KeyboardInterrupt):
    """SIGTERM or SIGINT ended a run; what had finished is stored and a rerun resumes from it."""

    def __init__(self, signum: int):
        import signal

        self.signum = signum
        self.name = signal.Signals(signum).name
        super().__init__(f"interrupted by {self.name}")

    @property
    def exit_code(self) -> int:
        """128 + the signal number: 130 for SIGINT, 143 for SIGTERM."""
        return 128 + self.signum
