"""Entry point of moviekit-mmx: registers its components and commands with moviekit."""

import moviekit

#: The moviekit plugin API this plugin targets.
moviekit_api = "1.0"


@moviekit.hookimpl
def register_components(register):
    from . import experts, model, report, tasks

    for module in (experts, model, tasks, report):
        for cls in module.COMPONENTS:
            register(cls)


@moviekit.hookimpl
def register_commands(cli):
    from .commands import add_commands

    add_commands(cli)
