"""Entry point of moviekit-movieclip: registers its components and the `moviekit movieclip` commands with moviekit."""

import moviekit

#: The moviekit plugin API this plugin targets.
moviekit_api = "1.1"


@moviekit.hookimpl
def register_components(register):
    from . import export, framefeatures, frames, heads, hierarchy, labeler, scenes, shotscale, tagsfile

    for module in (labeler, hierarchy, frames, framefeatures, scenes, shotscale, heads, tagsfile, export):
        for cls in module.COMPONENTS:
            register(cls)


@moviekit.hookimpl
def register_commands(cli):
    from .commands import add_commands

    add_commands(cli)


@moviekit.hookimpl
def doctor_checks():
    """The optional stacks of the scene classifier and the taxonomy hierarchy."""
    return [
        moviekit.import_check("mmaction2", "mmaction", "pip install moviekit-movieclip[mmaction]"),
        moviekit.import_check("pytorchvideo", "pytorchvideo", "pip install moviekit-movieclip[pytorchvideo]"),
        moviekit.import_check("sentence-transformers", "sentence_transformers", "pip install sentence-transformers"),
    ]
