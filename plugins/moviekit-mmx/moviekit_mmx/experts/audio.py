"""``mmx_audio``: 16 kHz log-mel descriptors, or ``backend: vggish`` (VGG-style, 128-d); keeps
``descriptors_per_clip`` rows per clip for the model's NetVLAD."""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from moviekit import (
    AudioChunk,
    AudioNeed,
    Clip,
    Config,
    Expert,
    Needs,
    Sink,
    Track,
    Video,
    VideoInfo,
    WeightsSpec,
    resolve_checkpoint,
)

from .loading import load_into, torch_device


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
            self.embeddings = nn.Sequential(
                nn.Linear(512 * 6 * 4, 4096), nn.ReLU(True), nn.Linear(4096, 4096), nn.ReLU(True), nn.Linear(4096, 128)
            )

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
            "logmel",
            description="'logmel': grouped log-mel frames, offline (D=64); 'vggish': VGG-style 128-d embeddings from local weights",
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
        load_into(self.name, model, file)
        device = torch_device(self.config.device)
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

    def open(self, video: Video, info: VideoInfo) -> Sink:
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
