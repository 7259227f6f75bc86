"""The component contract, run over every component the core registers (like timm's model tests)."""

import pytest

from moviekit.testing import check_component, components_of

CORE = components_of("moviekit")


def test_core_registers_components_of_every_kind():
    from moviekit.plugins import get_registry

    kinds = {get_registry().get(n).kind for n in CORE}
    assert {"reader", "dataset", "expert", "encoder", "head", "task"} <= kinds


@pytest.mark.parametrize("name", CORE)
def test_contract(name, tmp_path):
    check_component(name, tmp_path)
