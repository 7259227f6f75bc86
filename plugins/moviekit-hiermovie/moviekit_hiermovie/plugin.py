"""Entry point of moviekit-hiermovie: registers its components with moviekit."""

import moviekit

#: The moviekit plugin API this plugin targets.
moviekit_api = "1.0"


@moviekit.hookimpl
def register_components(register):
    from .backbone import HierBackboneEncoder, HierBackboneExpert
    from .contextualizer import HierContextualizer
    from .frames import HierFrames
    from .lvu_heads import LVUHeads
    from .pretrain import BackbonePretrain, ContextPretrain
    from .synthetic import SyntheticVidSitu
    from .tasks import Ablation, VidSituHeads
    from .vidsitu import VidSitu

    for cls in (
        SyntheticVidSitu,
        VidSitu,
        HierFrames,
        HierBackboneExpert,
        HierBackboneEncoder,
        HierContextualizer,
        BackbonePretrain,
        ContextPretrain,
        VidSituHeads,
        Ablation,
        LVUHeads,
    ):
        register(cls)
