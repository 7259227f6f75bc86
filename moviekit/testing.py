"""Test helpers for plugin authors, including the component contract.

In a plugin's tests::

    import pytest
    from moviekit.testing import check_component, components_of

    @pytest.mark.parametrize("name", components_of("my-plugin-distribution"))
    def test_contract(name, tmp_path):
        check_component(name, tmp_path)

The contract checks that each registered component builds from its default
(or ``example_config``) config, that its config schema serialises, and that it
runs on tiny synthetic input and returns the records its kind declares.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from .components import DatasetSource, Encoder, Expert, Head, Labeler, Needs, Reader, Segmenter, Sink, Task, TaskResult
from .plugins import Registry, get_registry
from .records import AudioChunk, Clip, FeatureSet, FrameBatch, Item, Labels, Shot, Track, Video, VideoInfo
from .store import ArtifactStore


def tiny_frames(n: int = 8, size: tuple[int, int] = (64, 48), fps: float = 12.0, seed: int = 0, start: int = 0) -> FrameBatch:
    """``n`` random RGB frames of ``size`` (width, height) with timestamps at ``fps``."""
    rng = np.random.default_rng(seed)
    w, h = size
    frames = rng.integers(0, 256, size=(n, h, w, 3), dtype=np.uint8)
    idx = np.arange(start, start + n)
    return FrameBatch(frames=frames, indices=idx, times=idx / fps)


def tiny_audio(seconds: float = 1.0, sample_rate: int = 16000, seed: int = 0) -> AudioChunk:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    samples = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(len(t))).astype(np.float32)
    return AudioChunk(samples=samples, sample_rate=sample_rate, start_time=0.0)


def write_test_video(
    path: str | Path,
    shots: list[tuple[int, int, int]] | None = None,
    size: tuple[int, int] = (64, 48),
    fps: int = 12,
    audio: bool = True,
    codec: str = "libx264",
) -> Path:
    """Write a small video of flat-coloured shots ``[(r, g, b) * frames...]``.

    ``shots`` is a list of RGB colours, each held for 12 frames, unless given
    as ``(colour_index, frames)`` pairs via the default.  Returns the path.
    """
    import av

    path = Path(path)
    colours = shots or [(200, 30, 30), (30, 200, 30), (30, 30, 200), (220, 220, 40)]
    w, h = size
    with av.open(str(path), "w") as out:
        vs = out.add_stream(codec, rate=fps)
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        as_ = out.add_stream("aac", rate=16000, layout="mono") if audio else None
        n = 0
        for colour in colours:
            for _ in range(12):
                img = np.empty((h, w, 3), np.uint8)
                img[:] = colour
                img[:, (n * 2) % w] = 255 - np.asarray(colour, np.uint8)
                frame = av.VideoFrame.from_ndarray(img, format="rgb24")
                frame.pts = n
                for p in vs.encode(frame):
                    out.mux(p)
                n += 1
        for p in vs.encode():
            out.mux(p)
        if as_ is not None:
            seconds = n / fps
            t = np.arange(int(seconds * 16000)) / 16000
            wave = (0.2 * np.sin(2 * np.pi * 330 * t)).astype(np.float32)
            step = as_.codec_context.frame_size or 1024
            for i in range(0, len(wave), step):
                chunk = wave[i : i + step]
                af = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="fltp", layout="mono")
                af.sample_rate = 16000
                af.pts = i
                for p in as_.encode(af):
                    out.mux(p)
            for p in as_.encode():
                out.mux(p)
    return path


def tiny_items(
    n: int = 12,
    vocabulary: tuple[str, ...] = ("a", "b", "c"),
    modalities: dict[str, tuple[int, ...]] | None = None,
    n_clips: int = 10,
    seed: int = 0,
) -> list[Item]:
    """Items with random features whose mean depends on their labels (so they are learnable)."""
    rng = np.random.default_rng(seed)
    modalities = modalities or {"visual": (16,), "audio": (8,)}
    items = []
    for i in range(n):
        k = 1 + i % min(2, len(vocabulary))
        labels = sorted(rng.choice(list(vocabulary), size=k, replace=False).tolist())
        arrays = {}
        for m, shape in modalities.items():
            base = np.zeros(shape, np.float32)
            for lab in labels:
                base.flat[vocabulary.index(lab) % base.size] += 2.0
            arrays[m] = (base + rng.standard_normal((n_clips, *shape))).astype(np.float32)
        vid = f"v{i:03d}"
        clips = [
            Clip(video_id=vid, index=j, shot_index=j, start_frame=j * 10, end_frame=j * 10 + 9, start_time=j, end_time=j + 0.9)
            for j in range(n_clips)
        ]
        split = "train" if i % 4 != 3 else "test"
        items.append(Item(video=Video(id=vid, labels=labels, split=split), clips=clips, features=FeatureSet(video_id=vid, arrays=arrays)))
    return items


def make_context(
    tmp_path: Path, items: list[Item] | None = None, vocabulary: list[str] | None = None, encoder: Any = None, head: Any = None
) -> Any:
    """A CPU :class:`~moviekit.runner.TaskContext` over ``items`` for testing a task."""
    import torch

    from .context import TaskContext
    from .recipe import Recipe, ResolvedRecipe

    items = items if items is not None else tiny_items()
    vocabulary = vocabulary or sorted({lab for it in items for lab in it.video.labels})
    resolved = ResolvedRecipe(source="<test>", raw={}, recipe=Recipe.model_validate({"dataset": {"use": "test"}}), components={})
    out = Path(tmp_path) / "run"
    out.mkdir(parents=True, exist_ok=True)
    return TaskContext(
        recipe=resolved,
        out_dir=out,
        items=items,
        vocabulary=vocabulary,
        device=torch.device("cpu"),
        precision="fp32",
        seed=0,
        workers=0,
        store=ArtifactStore(Path(tmp_path) / "store"),
        encoder=encoder,
        head=head,
    )


class RecordingSink(Sink):
    """A sink that keeps what it receives (for reader tests)."""

    def __init__(self) -> None:
        self.batches: list[FrameBatch] = []
        self.chunks: list[AudioChunk] = []

    def frames(self, batch: FrameBatch) -> None:
        self.batches.append(batch)

    def audio(self, chunk: AudioChunk) -> None:
        self.chunks.append(chunk)

    def close(self) -> Any:
        return self


def feed(sink: Sink, needs: Needs, n_frames: int = 24, fps: float = 12.0) -> Any:
    """Feed a sink tiny frames/audio shaped by ``needs`` and return ``close()``."""
    if needs.frames is not None:
        size = needs.frames.size or (64, 48)
        step = needs.frames.batch
        for s in range(0, n_frames, step):
            sink.frames(tiny_frames(min(step, n_frames - s), size, fps, seed=s, start=s))
    if needs.audio is not None:
        sink.audio(tiny_audio(n_frames / fps, needs.audio.sample_rate))
    return sink.close()


def components_of(distribution: str, registry: Registry | None = None) -> list[str]:
    """Names of the components registered by plugins of ``distribution``."""
    reg = registry or get_registry()
    return sorted(n for n, r in reg.components.items() if r.plugin.distribution == distribution)


def assert_storable(name: str, value: Any, what: str) -> None:
    """``value`` survives the artifact codec (what the store caches must be data: see :mod:`moviekit.codec`)."""
    from .codec import CodecError, decode, encode

    try:
        decode(encode(value))
    except CodecError as e:
        raise AssertionError(f"{name}: {what} cannot be stored in the artifact cache: {e}") from None


def check_component(name_or_cls: str | type, tmp_path: Path, config: dict[str, Any] | None = None, registry: Registry | None = None) -> Any:
    """Run the component contract; returns what the component produced."""
    reg = registry or get_registry()
    cls = reg.get(name_or_cls) if isinstance(name_or_cls, str) else name_or_cls
    tmp_path = Path(tmp_path)
    assert cls.name, f"{cls} has no name"
    assert cls.describe(), f"{cls.name}: add a docstring; `moviekit show` prints it"
    schema = cls.Config.model_json_schema()
    json.dumps(schema)
    cfg = config if config is not None else cls.example_config(tmp_path)
    comp = cls(cfg)
    comp.config.model_validate(comp.config.model_dump())
    for spec in comp.weights():
        assert spec.name, f"{cls.name}: weights spec without a name"
    video = Video(id="contract", path=tmp_path / "contract.mp4")
    info = VideoInfo(fps=12.0, num_frames=24, duration=2.0, width=64, height=48, has_audio=True)

    if isinstance(comp, DatasetSource):
        items = list(comp.items())
        assert all(isinstance(v, Video) for v in items), f"{cls.name}: items() must yield Video records"
        vocab = comp.vocabulary()
        assert isinstance(vocab, list)
        return items
    if isinstance(comp, Reader):
        path = write_test_video(tmp_path / "contract.mp4")
        video = Video(id="contract", path=path)
        probe = comp.probe(video)
        assert isinstance(probe, VideoInfo), f"{cls.name}: probe() must return a VideoInfo record"
        sink = RecordingSink()
        comp.read(
            video, [(Needs(frames=None, audio=None), RecordingSink()), (Needs.model_validate({"frames": {"fps": None}, "audio": {}}), sink)]
        )
        assert sum(len(b) for b in sink.batches) == probe.num_frames, f"{cls.name}: read() must deliver every frame"
        assert_storable(cls.name, probe, "probe()")
        return probe
    if isinstance(comp, Segmenter):
        shots = feed(comp.open(video, info), comp.needs())
        assert isinstance(shots, list) and all(isinstance(s, Shot) for s in shots), f"{cls.name}: close() must return list[Shot]"
        assert_storable(cls.name, shots, "close()")
        return shots
    if isinstance(comp, Expert):
        track = feed(comp.open(video, info), comp.needs())
        assert isinstance(track, Track), f"{cls.name}: close() must return a Track"
        assert_storable(cls.name, track, "close()")
        from .components import shape_matches

        shape = tuple(comp.feature_shape())
        assert shape_matches(track.values.shape[1:], shape), f"{cls.name}: track rows {track.values.shape[1:]} != feature_shape {shape}"
        clips = [Clip(video_id="contract", index=0, shot_index=0, start_frame=0, end_frame=12, start_time=0.0, end_time=1.0)]
        pooled = comp.pool(track, clips)
        assert shape_matches(pooled.shape, (1, *shape)), f"{cls.name}: pool() gave {pooled.shape}"
        assert np.isfinite(pooled).all(), f"{cls.name}: non-finite features"
        return pooled
    if isinstance(comp, Labeler):
        track = feed(comp.open(video, info), comp.needs())
        assert isinstance(track, Track)
        assert_storable(cls.name, track, "close()")
        shots = [Shot(video_id="contract", index=0, start_frame=0, end_frame=24, start_time=0.0, end_time=2.0)]
        labels = comp.label(video, track, shots)
        assert all(isinstance(x, Labels) for x in labels), f"{cls.name}: label() must return list[Labels]"
        return labels
    if isinstance(comp, Encoder):
        import torch

        from .tensors import pad_features

        items = tiny_items(n=3)
        module = comp.build({m: a.shape[1:] for m, a in items[0].features.arrays.items()})
        feats, mask = pad_features(items)
        with torch.no_grad():
            out = module(feats, mask)
        assert tuple(out.shape) == (3, comp.output_dim()), f"{cls.name}: output {tuple(out.shape)} != (3, {comp.output_dim()})"
        return out
    if isinstance(comp, Head):
        import torch

        module = comp.build(8, 3)
        with torch.no_grad():
            out = module(torch.zeros(2, 8))
        assert tuple(out.shape) == (2, 3), f"{cls.name}: head output {tuple(out.shape)} != (2, 3)"
        return out
    if isinstance(comp, Task):
        setup = cls.example_setup(tmp_path)

        def make(kind: str, spec: dict[str, Any]) -> Any:
            spec = dict(spec)
            return reg.create(spec.pop("use"), kind, **spec)

        encoder = make("encoder", setup.get("encoder", {"use": "mean_pool", "dim": 16, "hidden": 32}))
        head = make("head", setup.get("head", {"use": "mlp", "hidden": [16]}))
        ctx = make_context(tmp_path, encoder=encoder, head=head)
        for spec in setup.get("before", []):
            make("task", spec).run(ctx)
        result = comp.run(ctx)
        assert isinstance(result, TaskResult), f"{cls.name}: run() must return a TaskResult"
        assert_storable(cls.name, {"result": result, "shared": ctx.shared}, "its result and ctx.shared")
        for rel in result.files:
            assert (ctx.out_dir / rel).exists(), f"{cls.name}: reported file {rel} was not written"
        return result
    raise AssertionError(f"{cls.name}: unknown component kind {cls.kind}")


def offline_env(monkeypatch: Any, tmp_path: Path) -> None:
    """Make a test offline, with empty weights and cache folders, so that no hub is reached.

    Use it in an autouse fixture: ``offline_env(monkeypatch, tmp_path)``.
    """
    monkeypatch.setenv("MOVIEKIT_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("MOVIEKIT_WEIGHTS", str(Path(tmp_path) / "weights"))
    monkeypatch.setenv("MOVIEKIT_CACHE", str(Path(tmp_path) / "cache"))
