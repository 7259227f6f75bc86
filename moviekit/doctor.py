"""What ``moviekit doctor`` checks: the core's own stacks, and the checks plugins give through the ``doctor_checks`` hook.

A check is ``(check, ok, detail)``.  :func:`import_check` is the common one (is a module importable,
and which version); plugins return such checks for their own stacks so the core names none of them.
"""

from __future__ import annotations

import importlib

Check = tuple[str, bool, str]

#: The libraries the core and its default plugins use (label -> module); open_clip/timm back the
#: optional open_clip backend (`moviekit.backends.openclip`).
CORE_STACKS = {
    "PyAV": "av",
    "PySceneDetect": "scenedetect",
    "OpenCV": "cv2",
    "scikit-learn": "sklearn",
    "safetensors": "safetensors",
    "open_clip": "open_clip",
    "timm": "timm",
}


def import_check(label: str, module: str, hint: str = "") -> Check:
    """``(label, ok, version or why not)`` for importing ``module``; ``hint`` says what to install when it fails."""
    try:
        m = importlib.import_module(module)
    except Exception as e:  # noqa: BLE001 - a missing or broken stack is reported, not raised
        why = f"{type(e).__name__}: {str(e)[:80]}"
        return (label, False, f"{why}; {hint}" if hint else why)
    return (label, True, str(getattr(m, "__version__", "")))


def core_checks() -> list[Check]:
    return [import_check(label, mod) for label, mod in CORE_STACKS.items()]


def plugin_checks(registry) -> list[tuple[str, Check]]:
    """``(plugin name, check)`` for every plugin's ``doctor_checks``; a plugin whose hook raises is one failed check."""
    out: list[tuple[str, Check]] = []
    for impl in registry.pm.hook.doctor_checks.get_hookimpls():
        try:
            checks = list(impl.function() or [])
        except Exception as e:  # noqa: BLE001 - a broken plugin must not take the doctor down
            checks = [("doctor_checks", False, f"raised {type(e).__name__}: {e}")]
        for check in checks:
            try:
                label, ok, detail = check
            except (TypeError, ValueError):
                label, ok, detail = "doctor_checks", False, f"returned {check!r}, expected (check, ok, detail)"
            out.append((impl.plugin_name, (str(label), bool(ok), str(detail))))
    return out
