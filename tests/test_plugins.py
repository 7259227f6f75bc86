import json

import pytest
from mkhelpers import run_cli

from moviekit.components import Expert
from moviekit.errors import PluginError, UnknownComponentError
from moviekit.plugins import PLUGIN_API_VERSION, Registry, check_api_version, get_registry

BROKEN = """
raise RuntimeError("boom at import")
"""

GOOD = """
import numpy as np
import moviekit
from moviekit import Expert, Needs, FrameNeed

moviekit_api = "1.0"

class Luma(Expert):
    \"\"\"Mean luma per frame.\"\"\"
    name = "fake_luma"
    def needs(self):
        return Needs(frames=FrameNeed(fps=2, size=(16, 16)))
    def feature_shape(self):
        return (1,)
    def encode_frames(self, batch):
        return batch.frames.mean(axis=(1, 2, 3))[:, None] / 255.0

@moviekit.hookimpl
def register_components(register):
    register(Luma)
"""


def test_default_plugins_register_generic_components():
    reg = get_registry()
    defaults = [p for p in reg.plugins.values() if p.default]
    assert defaults and all(p.distribution == "moviekit" for p in defaults)
    assert all(p.ok for p in defaults), [p.errors for p in defaults]
    assert "pyav" in reg.names("reader")
    assert "mlp" in reg.names("head")
    assert reg.plugin_of("mlp").default


def test_list_plugins_json_shows_components():
    res = run_cli("list", "plugins", "--json")
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert data["api_version"] == PLUGIN_API_VERSION
    comps = {n for p in data["plugins"] for names in p["components"].values() for n in names}
    assert {"pyav", "mlp", "color_histogram", "video_folder"} <= comps


def test_broken_plugin_is_listed_and_other_commands_work(fake_plugin):
    site = fake_plugin("moviekit-broken", "mk_broken", BROKEN)
    fake_plugin("moviekit-good", "mk_good", GOOD)
    res = run_cli("list", "plugins", "--json", pythonpath=site)
    assert res.returncode == 0, res.stderr
    plugins = {p["distribution"]: p for p in json.loads(res.stdout)["plugins"]}
    assert plugins["moviekit-broken"]["status"] == "broken"
    assert "boom at import" in plugins["moviekit-broken"]["errors"][0]
    assert plugins["moviekit-good"]["status"] == "ok"
    assert plugins["moviekit-good"]["components"] == {"expert": ["fake_luma"]}
    for args in (["list", "experts"], ["show", "fake_luma"], ["doctor"], ["--help"]):
        r = run_cli(*args, pythonpath=site)
        assert r.returncode == 0, (args, r.stdout, r.stderr)
    assert "fake_luma" in run_cli("list", "experts", pythonpath=site).stdout


def test_allow_list_limits_entry_point_plugins(fake_plugin):
    site = fake_plugin("moviekit-good", "mk_good", GOOD)
    fake_plugin("moviekit-broken", "mk_broken", BROKEN)
    res = run_cli("list", "plugins", "--json", pythonpath=site, env_extra={"MOVIEKIT_LOAD_PLUGINS": "moviekit-good"})
    dists = {p["distribution"] for p in json.loads(res.stdout)["plugins"]}
    assert "moviekit-good" in dists and "moviekit-broken" not in dists
    assert "moviekit" in dists  # default plugins always load
    res = run_cli("list", "plugins", "--json", pythonpath=site, env_extra={"MOVIEKIT_LOAD_PLUGINS": ""})
    assert {p["distribution"] for p in json.loads(res.stdout)["plugins"]} == {"moviekit"}


def test_api_version_is_checked(fake_plugin):
    site = fake_plugin("moviekit-future", "mk_future", GOOD.replace('moviekit_api = "1.0"', 'moviekit_api = "2.0"'))
    fake_plugin("moviekit-undeclared", "mk_undeclared", GOOD.replace('moviekit_api = "1.0"', "").replace("fake_luma", "fake_luma2"))
    plugins = {p["distribution"]: p for p in json.loads(run_cli("list", "plugins", "--json", pythonpath=site).stdout)["plugins"]}
    assert plugins["moviekit-future"]["status"] == "broken"
    assert "targets plugin API 2.0" in plugins["moviekit-future"]["errors"][0]
    assert "does not declare" in plugins["moviekit-undeclared"]["errors"][0]
    assert check_api_version("1.0") is None
    assert check_api_version("1.99") is not None
    assert check_api_version("one") is not None


def _module(name, cls_name, comp_name):
    import types

    import moviekit

    mod = types.ModuleType(name)
    mod.moviekit_api = "1.0"
    cls = type(cls_name, (Expert,), {"name": comp_name, "__doc__": "x", "feature_shape": lambda self: (1,)})

    @moviekit.hookimpl
    def register_components(register):
        register(cls)

    mod.register_components = register_components
    return mod


def test_two_providers_of_one_name_is_an_error_naming_both():
    reg = Registry().load(entry_points=False)
    reg.add_plugin(_module("plug_a", "A", "dup_expert"), distribution="dist-a")
    reg.add_plugin(_module("plug_b", "B", "dup_expert"), distribution="dist-b")
    with pytest.raises(PluginError) as e:
        reg.get("dup_expert")
    assert "plug_a" in str(e.value) and "plug_b" in str(e.value)
    assert any("dist-a" in err and "dist-b" in err for err in reg.plugins["plug_b"].errors)


def test_register_components_that_raises_is_reported():
    import types

    import moviekit

    mod = types.ModuleType("plug_raises")
    mod.moviekit_api = "1.0"

    @moviekit.hookimpl
    def register_components(register):
        raise ValueError("cannot register")

    mod.register_components = register_components
    reg = Registry().load(entry_points=False)
    info = reg.add_plugin(mod)
    assert not info.ok and "cannot register" in info.errors[0]
    assert "mlp" in reg.names()


def test_unknown_component_suggests_close_name():
    reg = get_registry()
    with pytest.raises(UnknownComponentError) as e:
        reg.get("color_histgram", "expert")
    assert "did you mean 'color_histogram'" in str(e.value)
    with pytest.raises(UnknownComponentError) as e:
        reg.get("mlp", "expert")
    assert "is a head, not a expert" in str(e.value) or "is a head" in str(e.value)


BAD_COMMAND = """
from __future__ import annotations
import moviekit

moviekit_api = "1.0"


@moviekit.hookimpl
def register_commands(cli):
    @cli.command("fine-cmd")
    def fine() -> None:
        print("fine")

    @cli.command("bad-cmd")
    def bad(x: NotImported) -> None:  # the annotation cannot be resolved when typer builds the command
        pass
"""


def test_plugin_command_that_cannot_be_built_is_dropped_not_fatal(fake_plugin):
    site = fake_plugin("moviekit-badcmd", "mk_badcmd", BAD_COMMAND)
    res = run_cli("list", "plugins", pythonpath=site)
    assert res.returncode == 0, res.stderr
    assert "mk_badcmd: register_commands raised" in res.stderr and "NotImported" in res.stderr
    assert run_cli("fine-cmd", pythonpath=site).returncode != 0  # the plugin's commands are all withdrawn
    assert run_cli("validate", "--help", pythonpath=site).returncode == 0
