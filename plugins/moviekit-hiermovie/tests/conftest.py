import pytest

from moviekit.testing import offline_env


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path):
    offline_env(monkeypatch, tmp_path)
