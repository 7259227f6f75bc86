"""`moviekit doctor` takes each plugin's checks from the doctor_checks hook; the core names no method's stack."""

import inspect
import types

import moviekit
from moviekit import cli
from moviekit.doctor import CORE_STACKS, import_check, plugin_checks
from moviekit.plugins import Registry


def _plugin(name, fn):
    mod = types.ModuleType(name)
    mod.moviekit_api = moviekit.PLUGIN_API_VERSION
    mod.doctor_checks = moviekit.hookimpl(fn)
    return mod


def test_import_check():
    assert import_check("json", "json")[:2] == ("json", True)
    label, ok, detail = import_check("nope", "no_such_module_xyz", "pip install nope")
    assert label == "nope" and not ok and "ModuleNotFoundError" in detail and detail.endswith("pip install nope")


def test_plugin_checks_come_from_the_hook_and_a_raising_plugin_is_one_failed_check():
    reg = Registry()
    reg.add_plugin(_plugin("good", lambda: [("stack-a", True, "1.2"), ("stack-b", False, "install b")]), name="good")

    def broken():
        raise RuntimeError("boom")

    reg.add_plugin(_plugin("broken", broken), name="broken")
    reg.add_plugin(_plugin("odd", lambda: ["not a triple"]), name="odd")
    got = plugin_checks(reg)
    assert ("good", ("stack-a", True, "1.2")) in got and ("good", ("stack-b", False, "install b")) in got
    assert [c for p, c in got if p == "broken"] == [("doctor_checks", False, "raised RuntimeError: boom")]
    assert [c[1] for p, c in got if p == "odd"] == [False]


def test_first_party_plugins_report_their_stacks():
    got = {(p, c[0]) for p, c in plugin_checks(moviekit.get_registry())}
    assert ("mmx", "OpenCV TV-L1 flow") in got and ("movieclip", "mmaction2") in got


def test_core_doctor_names_no_method_stack():
    src = inspect.getsource(cli.doctor) + repr(CORE_STACKS)
    for method_stack in ("mmaction", "TVL1", "TV-L1", "pytorchvideo", "torchaudio", "faiss"):
        assert method_stack not in src
