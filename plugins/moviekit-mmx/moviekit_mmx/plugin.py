"""Entry point of moviekit-mmx: registers its components and commands with moviekit."""

import moviekit

#: The moviekit plugin API this plugin targets.
moviekit_api = "1.1"


@moviekit.hookimpl
def register_components(register):
    from . import experts, model, report, seqlen, tasks

    for module in (experts, model, tasks, seqlen, report):
        for cls in module.COMPONENTS:
            register(cls)


@moviekit.hookimpl
def register_commands(cli):
    from .commands import add_commands

    add_commands(cli)


@moviekit.hookimpl
def doctor_checks():
    """The stacks the MMX experts and retrieval use."""
    checks = [
        moviekit.import_check("faiss", "faiss", "pip install faiss-cpu"),
        moviekit.import_check("torchaudio", "torchaudio", "pip install torchaudio"),
        moviekit.import_check("EfficientNet-Lite", "efficientnet_lite_pytorch", "pip install efficientnet-lite-pytorch"),
        moviekit.import_check("mmaction2 (mmx_motion_kinetics)", "mmaction", "pip install 'moviekit-mmx[mmaction]'"),
    ]
    try:
        import cv2

        ok = hasattr(cv2, "optflow") and hasattr(cv2.optflow, "DualTVL1OpticalFlow_create")
    except Exception:  # noqa: BLE001 - reported as missing
        ok = False
    checks.append(("OpenCV TV-L1 flow", ok, "" if ok else "missing (install opencv-contrib-python)"))
    return checks
