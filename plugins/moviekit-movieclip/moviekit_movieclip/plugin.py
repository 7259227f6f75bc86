"""Entry point of moviekit-movieclip: registers its components with moviekit."""

import moviekit

#: The moviekit plugin API this plugin targets.
moviekit_api = "1.0"


@moviekit.hookimpl
def register_components(register):
    from . import hierarchy, labeler

    for module in (labeler, hierarchy):
        for cls in module.COMPONENTS:
            register(cls)
