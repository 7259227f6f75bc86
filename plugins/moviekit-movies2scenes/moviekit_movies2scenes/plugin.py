"""Entry point of moviekit-movies2scenes: registers its components and commands with moviekit."""

import moviekit

#: The moviekit plugin API this plugin targets.
moviekit_api = "1.0"


@moviekit.hookimpl
def register_components(register):
    from . import data, downstream, experts, export, pairs, report, synthetic, train_movie, train_scene, train_shot

    for cls in (
        synthetic.SyntheticMovies, data.MovieFolder, *experts.COMPONENTS, train_shot.ShotEncoderTask, train_movie.MovieEncoderTask,
        pairs.ScenePairsTask, train_scene.SceneEncoderTask, *downstream.COMPONENTS, export.ExportScenes, report.Report,
    ):  # fmt: skip
        register(cls)


@moviekit.hookimpl
def register_commands(cli):
    from .commands import add_commands

    add_commands(cli)
