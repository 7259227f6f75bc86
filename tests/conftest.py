import pytest
from mkhelpers import make_fake_plugin


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Each test gets its own moviekit cache, so artifacts never leak between tests."""
    monkeypatch.setenv("MOVIEKIT_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def fake_plugin(tmp_path):
    def make(dist: str, module: str, source: str, version: str = "0.1.0"):
        return make_fake_plugin(tmp_path / "site", dist, module, source, version)

    return make
