"""The component contract over every component of moviekit-movies2scenes."""

import pytest

from moviekit.testing import check_component, components_of

COMPONENTS = components_of("moviekit-movies2scenes")


def test_plugin_registers_its_components():
    assert {"synthetic_movies", "movie_folder", "m2s_keyframes", "m2s_shot_encoder", "m2s_movie_encoder", "m2s_scene_pairs",
            "m2s_scene_encoder", "m2s_place_retrieval", "m2s_sbd", "m2s_report"} <= set(COMPONENTS)  # fmt: skip


@pytest.mark.parametrize("name", COMPONENTS)
def test_contract(name, tmp_path):
    check_component(name, tmp_path)
