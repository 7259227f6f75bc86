"""Helpers shared by moviekit's own tests."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def make_fake_plugin(root: Path, dist: str, module: str, source: str, version: str = "0.1.0") -> Path:
    """A real installed-looking distribution (dist-info + entry point) under ``root``.

    Put ``root`` on PYTHONPATH and importlib.metadata discovers its entry point.
    """
    root.mkdir(parents=True, exist_ok=True)
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[moviekit]\n{module} = {module}\n")
    return root


def run_cli(*args: str, env_extra: dict | None = None, pythonpath: Path | None = None, cwd: Path | None = None, timeout: int = 300):
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "moviekit", *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout)


#: A test plugin used by runner tests: a frame-count segmenter, a (slow) luma expert
#: and an expert that raises on chosen videos.
TESTKIT = '''
import time
import numpy as np
from pydantic import Field
import moviekit
from moviekit import Config, Expert, FrameNeed, Needs, Segmenter, Shot, Sink

moviekit_api = "1.0"


class EveryN(Segmenter):
    """Cuts every n frames."""
    name = "every_n"

    class Config(Config):
        n: int = 12

    def needs(self):
        return Needs(frames=FrameNeed(size=(8, 8)))

    def open(self, video, info):
        comp = self

        class S(Sink):
            count = 0
            def frames(self, batch):
                S.count += len(batch)
            def close(self):
                n, fps = comp.config.n, info.fps
                return [Shot(video_id=video.id, index=i, start_frame=s, end_frame=min(s + n, S.count),
                             start_time=s / fps, end_time=min(s + n, S.count) / fps)
                        for i, s in enumerate(range(0, S.count, n))]
        S.count = 0
        return S()


class Luma(Expert):
    """Mean luma per frame (optionally slow, to test resuming)."""
    name = "test_luma"

    class Config(Config):
        sleep: float = 0.0
        explode_on: str = Field("", description="raise for videos whose id contains this")

    def needs(self):
        return Needs(frames=FrameNeed(fps=6, size=(16, 16), batch=4))

    def feature_shape(self):
        return (2,)

    def open(self, video, info):
        if self.config.explode_on and self.config.explode_on in video.id:
            raise RuntimeError(f"exploded on {video.id}")
        return super().open(video, info)

    def encode_frames(self, batch):
        time.sleep(self.config.sleep)
        m = batch.frames.astype(np.float32).mean(axis=(1, 2)) / 255.0
        return np.stack([m.mean(1), m[:, 0]], axis=1)


@moviekit.hookimpl
def register_components(register):
    register(EveryN)
    register(Luma)
'''


def make_video_folder(root: Path, n: int = 4, labels: tuple[str, ...] = ("Drama", "Comedy")) -> Path:
    """``n`` small labelled test videos (with audio) and a labels.csv."""
    from moviekit.testing import write_test_video

    root.mkdir(parents=True, exist_ok=True)
    rows = ["video,labels,split"]
    palette = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (220, 220, 40), (240, 240, 240), (10, 10, 10)]
    for i in range(n):
        colours = [palette[(i + k) % len(palette)] for k in range(6)]
        write_test_video(root / f"v{i}.mp4", shots=colours)
        rows.append(f"v{i}.mp4,{labels[i % len(labels)]},{'test' if i % 2 else 'train'}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root
