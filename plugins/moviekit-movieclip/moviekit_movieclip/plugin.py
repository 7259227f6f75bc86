"""Entry point of moviekit-movieclip: registers its components and the `moviekit movieclip` commands with moviekit."""

import moviekit

#: The moviekit plugin API this plugin targets.
moviekit_api = "1.0"


@moviekit.hookimpl
def register_components(register):
    from . import heads, hierarchy, labeler, scenes, shotscale, tagsfile

    for module in (labeler, hierarchy, scenes, shotscale, heads, tagsfile):
        for cls in module.COMPONENTS:
            register(cls)


@moviekit.hookimpl
def register_commands(cli):
    from .commands import add_commands

    add_commands(cli)
