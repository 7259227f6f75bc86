"""The component contract over every component moviekit-mmx registers, found in the registry (no hand-made list)."""

import pytest

from moviekit.plugins import get_registry
from moviekit.testing import check_component, components_of

DIST = "moviekit-mmx"


def test_every_component_class_of_the_plugin_is_registered():
    from moviekit_mmx import experts, model, report, seqlen, tasks

    declared = {c.name for m in (experts, model, tasks, seqlen, report) for c in m.COMPONENTS}
    assert declared == set(components_of(DIST))


@pytest.mark.parametrize("name", components_of(DIST))
def test_contract(name, tmp_path):
    assert get_registry().plugin_of(name).distribution == DIST
    check_component(name, tmp_path)
