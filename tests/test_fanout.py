"""Consumers of one decode running concurrently (moviekit.fanout) and the thread budget (moviekit.threads)."""

import json
import subprocess
import sys
import threading
import types
import weakref

import numpy as np
import pytest
from mkhelpers import TESTKIT, make_video_folder

from moviekit.components import AudioNeed, FrameNeed, Needs, Sink
from moviekit.default_plugins.generic import ColorHistogram
from moviekit.default_plugins.media import PyAVReader
from moviekit.default_plugins.segmenters import SceneDetectSegmenter
from moviekit.fanout import Fanout, ThreadedSink
from moviekit.plugins import Registry
from moviekit.recipe import validate
from moviekit.records import FrameBatch, Video
from moviekit.runner import Runner
from moviekit.testing import RecordingSink, tiny_frames, write_test_video
from moviekit.threads import library_threads, per_consumer_threads, thread_budget


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    path = tmp_path_factory.mktemp("fan") / "v.mp4"
    palette = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (220, 220, 40), (240, 240, 240), (10, 10, 10)]
    write_test_video(path, shots=palette, size=(96, 64))
    return Video(id="v", path=path)


class Raises(Sink):
    """Raises on its ``n``-th batch."""

    def __init__(self, n: int):
        self.n, self.seen = n, 0

    def frames(self, batch):
        self.seen += 1
        if self.seen == self.n:
            raise ValueError("consumer broke")

    def close(self):
        return self.seen


def _consumers(video, reader):
    """(needs, sink) of real components plus recorders; two share one need."""
    info = reader.probe(video)
    seg = SceneDetectSegmenter()
    hist = ColorHistogram(fps=6, size=(32, 32))
    hist2 = ColorHistogram(fps=6, size=(32, 32), bins=(4, 4, 4))
    frames_rec, audio_rec = RecordingSink(), RecordingSink()
    return [
        (seg.needs(), seg.open(video, info)),
        (hist.needs(), hist.open(video, info)),
        (hist2.needs(), hist2.open(video, info)),  # the same FrameNeed as `hist`: one shared batch
        (Needs(frames=FrameNeed(fps=None, size=(48, 32), batch=5)), frames_rec),
        (Needs(audio=AudioNeed(sample_rate=16000, chunk_seconds=0.5)), audio_rec),
    ]


def _summary(outcomes):
    """Everything the consumers returned, as bytes, so equality means byte-equal features."""
    shots, h1, h2, frames, audio = (value for value, _ in outcomes)
    return {
        "shots": [s.model_dump() for s in shots],
        "hist": (h1.times.tobytes(), h1.values.tobytes()),
        "hist2": (h2.times.tobytes(), h2.values.tobytes()),
        "frames": [(b.frames.tobytes(), b.indices.tobytes(), b.times.tobytes()) for b in frames.batches],
        "audio": [(c.samples.tobytes(), c.start_time) for c in audio.chunks],
    }


def _run(video, concurrent, threads=None):
    reader = PyAVReader()
    consumers = _consumers(video, reader)
    with Fanout([s for _, s in consumers], concurrent=concurrent, threads=threads) as fan:
        reader.read(video, [(n, w) for (n, _), w in zip(consumers, fan.sinks)])
        outcomes = fan.close()
    assert all(err is None for _, err in outcomes), outcomes
    return _summary(outcomes)


def test_concurrent_consumers_give_byte_equal_results_to_serial(video):
    # reference: the reader calling the sinks itself, with no fan-out layer at all
    reader = PyAVReader()
    consumers = _consumers(video, reader)
    reader.read(video, consumers)
    direct = _summary([(s.close(), None) for _, s in consumers])
    serial = _run(video, concurrent=False)
    concurrent = _run(video, concurrent=True)
    assert len(direct["shots"]) >= 3 and direct["hist"][1] and len(direct["frames"]) == 72 // 5 + 1 and direct["audio"]
    assert serial == direct
    assert concurrent == direct
    assert _run(video, concurrent=True, threads=1) == direct


def test_consumers_with_the_same_need_share_one_read_only_batch(video):
    reader = PyAVReader()
    need = Needs(frames=FrameNeed(fps=4, size=(32, 32), batch=4))
    a, b, c = RecordingSink(), RecordingSink(), RecordingSink()
    reader.read(video, [(need, a), (need, b), (Needs(frames=FrameNeed(fps=4, size=(32, 32), batch=3)), c)])
    assert len(a.batches) == len(b.batches) > 1
    assert all(x is y for x, y in zip(a.batches, b.batches))
    assert not a.batches[0].frames.flags.writeable
    with pytest.raises(ValueError):
        a.batches[0].frames[0, 0, 0] = 1
    # a consumer alone with its need gets a batch it may write to
    assert c.batches[0].frames.flags.writeable
    np.testing.assert_array_equal(np.concatenate([x.frames for x in a.batches]), np.concatenate([x.frames for x in c.batches]))


@pytest.mark.parametrize("concurrent", [False, True])
def test_a_raising_consumer_fails_only_itself(video, concurrent):
    reader = PyAVReader()
    good = _consumers(video, reader)
    bad = Raises(2)
    sinks = [s for _, s in good] + [bad]
    needs = [n for n, _ in good] + [Needs(frames=FrameNeed(fps=None, size=(16, 16), batch=4))]
    with Fanout(sinks, concurrent=concurrent) as fan:
        reader.read(video, list(zip(needs, fan.sinks)))
        outcomes = fan.close()
    value, error = outcomes[-1]
    assert value is None and isinstance(error, ValueError) and "consumer broke" in str(error)
    assert bad.seen == 2  # no batch after the failure reached it
    assert all(err is None for _, err in outcomes[:-1])
    assert _summary(outcomes[:-1]) == _run(video, concurrent=False)


def test_a_slow_consumer_blocks_the_reader_after_depth_batches():
    """Backpressure: a stuck consumer holds at most depth + 1 batches; the producer waits."""
    release = threading.Event()
    got = []

    class Stuck(Sink):
        def frames(self, batch):
            release.wait()
            got.append(int(batch.indices[0]))

        def close(self):
            return len(got)

    sink = ThreadedSink(Stuck(), depth=2)
    feeder = threading.Thread(target=lambda: [sink.frames(tiny_frames(1, start=i)) for i in range(20)])
    feeder.start()
    feeder.join(timeout=2.0)
    assert feeder.is_alive(), "the producer should be blocked by the full queue"
    assert sink.submitted == 3  # one being worked on + two queued
    release.set()
    feeder.join()
    sink.start_close()
    assert sink.finish() == (20, None)
    assert got == list(range(20))


def test_memory_stays_bounded_with_a_slow_consumer(video):
    """Counting live batches during a real decode: a slow consumer never has more than depth + 1."""
    live = set()
    peak = [0]

    def track(batch: FrameBatch):
        key = id(batch)
        live.add(key)
        weakref.finalize(batch, live.discard, key)
        peak[0] = max(peak[0], len(live))

    class Slow(Sink):
        def __init__(self):
            self.n = 0

        def frames(self, batch):
            track(batch)
            for _ in range(20):  # some real work, so the reader runs ahead of it
                np.sort(np.random.default_rng(0).random(20000))
            self.n += 1

        def close(self):
            return self.n

    class Fast(Sink):
        def __init__(self):
            self.n = 0

        def frames(self, batch):
            track(batch)
            self.n += 1

        def close(self):
            return self.n

    reader = PyAVReader()
    need_slow = Needs(frames=FrameNeed(fps=None, size=(16, 16), batch=2))
    need_fast = Needs(frames=FrameNeed(fps=None, size=(24, 16), batch=2))
    with Fanout([Slow(), Fast()], depth=2) as fan:
        reader.read(video, [(need_slow, fan.sinks[0]), (need_fast, fan.sinks[1])])
        (n_slow, e1), (n_fast, e2) = fan.close()
    assert e1 is None and e2 is None and n_slow == n_fast == 36
    # each consumer: at most 1 in work + 2 queued; the fast one may hold one more just handed over
    assert peak[0] <= 2 * (2 + 1) + 1


def test_the_decode_failing_stops_the_consumer_threads(video):
    class Boom(PyAVReader):
        def read(self, video, consumers):
            for _, sink in consumers:
                sink.frames(tiny_frames(2))
            raise RuntimeError("decode failed")

    rec = RecordingSink()
    with pytest.raises(RuntimeError, match="decode failed"):
        with Fanout([rec, RecordingSink()]) as fan:
            Boom().read(video, [(Needs(frames=FrameNeed()), s) for s in fan.sinks])
    assert all(not s.thread.is_alive() for s in fan.sinks)


# -- through the runner ----------------------------------------------------------------------

BADKIT = '''
import numpy as np
import moviekit
from moviekit import Config, Expert, FrameNeed, Needs

moviekit_api = "1.0"


class Breaks(Expert):
    """Raises on its second batch for videos whose id contains `on`."""
    name = "test_breaks"

    class Config(Config):
        on: str = "v1"

    def needs(self):
        return Needs(frames=FrameNeed(fps=None, size=(8, 8), batch=4))

    def feature_shape(self):
        return (1,)

    def open(self, video, info):
        self._n, self._id = 0, video.id
        return super().open(video, info)

    def encode_frames(self, batch):
        self._n += 1
        if self._n == 2 and self.config.on in self._id:
            raise RuntimeError("broke mid-stream")
        return batch.frames.mean(axis=(1, 2, 3))[:, None].astype(np.float32)


@moviekit.hookimpl
def register_components(register):
    register(Breaks)
'''


@pytest.fixture
def registry():
    reg = Registry().load(entry_points=False)
    for name, src, dist in (("mk_testkit", TESTKIT, "moviekit-testkit"), ("mk_badkit", BADKIT, "moviekit-badkit")):
        mod = types.ModuleType(name)
        exec(compile(src, name, "exec"), mod.__dict__)
        assert reg.add_plugin(mod, distribution=dist).ok
    return reg


def test_runner_fails_only_the_item_and_keeps_the_other_consumers_work(tmp_path, registry):
    root = make_video_folder(tmp_path / "videos", n=3)
    data = {
        "dataset": {"use": "video_folder", "root": str(root)},
        "segmenter": {"use": "every_n", "n": 12},
        "experts": {"luma": {"use": "test_luma"}, "breaks": {"use": "test_breaks"}},
        "clips": {"min_clips": 1},
        "tasks": [{"use": "export_features"}],
        "run": {"device": "cpu", "cache_dir": str(tmp_path / "cache")},
    }
    summary = Runner(validate(data, registry=registry), output=tmp_path / "out", registry=registry).run()
    failures = [json.loads(x) for x in (tmp_path / "out" / "failures.jsonl").read_text().splitlines()]
    assert [f["item"] for f in failures] == ["v1"]
    assert (failures[0]["stage"], failures[0]["component"]) == ("consumer", "experts.breaks")
    assert "RuntimeError: broke mid-stream" in failures[0]["error"]
    assert summary["items"] == 2
    # the segmenter's and luma's results for v1 were stored: without the broken expert, v1 needs no decode
    del data["experts"]["breaks"]
    runner = Runner(validate(data, registry=registry), output=tmp_path / "out2", registry=registry)
    s2 = runner.run()
    assert runner.decodes == 0 and s2["items"] == 3 and s2["stages"]["extract"]["reused"] == 3 * 2
    # and a serial run gives the same features as the concurrent one
    data["run"]["consumers"] = "serial"
    Runner(validate(data, registry=registry), output=tmp_path / "out3", registry=registry, fresh=True).run()
    a, b = np.load(tmp_path / "out2" / "features.npz"), np.load(tmp_path / "out3" / "features.npz")
    assert sorted(a.files) == sorted(b.files) and all(a[k].tobytes() == b[k].tobytes() for k in a.files)


# -- thread budget and light start-up --------------------------------------------------------


def test_thread_budget_splits_between_consumers_and_workers(monkeypatch):
    monkeypatch.delenv("MOVIEKIT_THREADS", raising=False)
    assert per_consumer_threads(2, 5) == 1
    assert per_consumer_threads(16, 5) == 3
    assert thread_budget(8, workers=2) == 4
    monkeypatch.setenv("MOVIEKIT_THREADS", "6")
    assert thread_budget(0) == 6 and per_consumer_threads(0, 2) == 3
    assert thread_budget(4) == 4  # the recipe's value wins over the environment


def test_library_threads_sizes_and_restores_torch_and_opencv():
    import cv2
    import torch

    t0, c0 = torch.get_num_threads(), cv2.getNumThreads()
    with library_threads(1):
        assert torch.get_num_threads() == 1 and cv2.getNumThreads() == 1
    assert (torch.get_num_threads(), cv2.getNumThreads()) == (t0, c0)


def test_registry_and_versions_do_not_import_heavy_stacks():
    code = (
        "import sys, json\n"
        "from moviekit.plugins import get_registry\n"
        "from moviekit.runner import environment_versions\n"
        "reg = get_registry(); v = environment_versions(reg)\n"
        "heavy = [m for m in ('torch', 'torchvision', 'torchaudio', 'open_clip', 'mmaction', 'sentence_transformers', 'timm') if m in sys.modules]\n"
        "print(json.dumps({'heavy': heavy, 'torch': v['torch'], 'n': len(reg.names()), 'plugins': sorted(reg.plugins)}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    # a plugin importing one of these at module level (instead of where a component is built) fails here
    assert result["heavy"] == [], f"loading the plugins {result['plugins']} imported {result['heavy']}"
    assert result["n"] > 5
    assert result["torch"][0].isdigit()  # the version is still recorded
