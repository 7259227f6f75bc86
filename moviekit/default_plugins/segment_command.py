"""The ``moviekit segment`` command: shots of video files as JSON or CSV, optionally cut into clip files.

It runs any registered segmenter (``--segmenter``, settings with ``--set key.path=value``) through
:func:`moviekit.default_plugins.segmenters.segment_file`, one decode per video; a bad video is
reported and the others are still written.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer  # for `moviekit segment`: annotations are evaluated in this module's namespace

from moviekit.default_plugins.segmenters import segment_file
from moviekit.hookspecs import hookimpl
from moviekit.records import Shot

SHOT_FIELDS = ("video", "index", "start_frame", "end_frame", "start_time", "end_time")


def _config_model_at(model: type, loc: tuple[Any, ...]) -> type | None:
    """The pydantic model that owns the key at ``loc`` inside ``model`` (for allowed-key hints)."""
    from pydantic import BaseModel

    for part in loc[:-1]:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        ann = getattr(field, "annotation", None)
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return None
        model = ann
    return model


def build_segmenter_config(cls: type, overrides: list[str]) -> Any:
    """``--set key.path=value`` overrides (YAML-typed) validated against ``cls.Config``."""
    from pydantic import ValidationError

    from moviekit.errors import MoviekitError
    from moviekit.recipe import _pydantic_problems, format_loc, parse_override

    data: dict[str, Any] = {}
    for text in overrides:
        parts, value = parse_override(text)
        node: Any = data
        for i, p in enumerate(parts[:-1]):
            nxt = node.setdefault(p, {}) if isinstance(node, dict) else None
            if not isinstance(nxt, dict):
                raise MoviekitError(f"--set {text}: '{format_loc(parts[: i + 1])}' is not a group of settings")
            node = nxt
        node[parts[-1]] = value
    try:
        return cls.Config.model_validate(data)
    except ValidationError as e:
        problems = _pydantic_problems(e, (), lambda loc: _config_model_at(cls.Config, loc))
        lines = [f"--set: invalid settings for segmenter '{cls.name}' (see `moviekit show {cls.name}`)"]
        lines += [f"  {path or '<root>'}: {msg}" for path, msg in problems]
        raise MoviekitError("\n".join(lines)) from None


def shot_rows(video: str, shots: list[Shot]) -> list[dict[str, Any]]:
    return [
        {
            "video": video,
            "index": s.index,
            "start_frame": s.start_frame,
            "end_frame": s.end_frame,
            "start_time": round(s.start_time, 6),
            "end_time": round(s.end_time, 6),
        }
        for s in shots
    ]


def export_clips(path: str | Path, shots: list[Shot], out_dir: str | Path, codec: str = "libx264") -> list[Path]:
    """Re-encode each shot's frames ``[start_frame, end_frame)`` to ``out_dir/<stem>-shot-NNNN.mp4``.

    One more decode of the video: video frames are counted in decode order (as the reader
    numbers them); audio, when the file has some, is cut at the shots' start and end times.
    """
    import av

    path = Path(path)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    shots = sorted(shots, key=lambda s: s.start_frame)
    written: list[Path] = []
    if not shots:
        return written
    with av.open(str(path)) as src:
        vin = src.streams.video[0]
        vin.thread_type = "AUTO"
        rate = vin.average_rate or vin.guessed_rate or Fraction(25)
        ain = src.streams.audio[0] if src.streams.audio else None
        audio = _AudioCutter(str(path), ain) if ain is not None else None
        current: dict[str, Any] | None = None
        k = 0  # next shot to open

        def close(cur: dict[str, Any]) -> None:
            out = cur["out"]
            for p in cur["vs"].encode():
                out.mux(p)
            if audio is not None:
                audio.write(out, cur["as"], cur["shot"].start_time, cur["shot"].end_time)
            out.close()
            written.append(cur["path"])

        try:
            index = 0
            for frame in src.decode(vin):
                if current is not None and index >= current["shot"].end_frame:
                    close(current)
                    current = None
                while current is None and k < len(shots) and shots[k].end_frame <= index:
                    k += 1
                if current is None and k < len(shots) and shots[k].start_frame <= index:
                    shot = shots[k]
                    k += 1
                    dest = out_dir / f"{path.stem}-shot-{shot.index:04d}.mp4"
                    out = av.open(str(dest), "w")
                    vs = out.add_stream(codec, rate=rate)
                    vs.width, vs.height, vs.pix_fmt = frame.width, frame.height, "yuv420p"
                    as_ = None
                    if audio is not None:
                        as_ = out.add_stream("aac", rate=audio.rate, layout=audio.layout)
                    current = {"shot": shot, "out": out, "vs": vs, "as": as_, "path": dest, "n": 0}
                if current is not None:
                    img = frame.reformat(format="yuv420p")
                    img.pts = current["n"]
                    img.time_base = 1 / Fraction(rate)
                    current["n"] += 1
                    for p in current["vs"].encode(img):
                        current["out"].mux(p)
                index += 1
            if current is not None:
                close(current)
                current = None
        finally:
            if current is not None:
                current["out"].close()
            if audio is not None:
                audio.container.close()
    return written


class _AudioCutter:
    """Streams a file's first audio stream (own demuxer) and hands out samples by time range."""

    def __init__(self, path: str, stream: Any):
        import av

        self.container = av.open(path)
        ain = self.container.streams.audio[0]
        self.rate = ain.codec_context.sample_rate or stream.rate or 48000
        self.layout = "mono" if ain.codec_context.layout.nb_channels == 1 else "stereo"
        self.resampler = av.AudioResampler(format="fltp", layout=self.layout, rate=self.rate)
        self.frames = self._iter(ain)
        self.buf = np.zeros((1 if self.layout == "mono" else 2, 0), np.float32)
        self.buf_start = 0.0  # time of buf[:, 0]

    def _iter(self, ain: Any) -> Any:
        first = True
        for frame in self.container.decode(ain):
            t = float(frame.time) if frame.time is not None else None
            for out in self.resampler.resample(frame):
                if first:
                    self.buf_start = max(t or 0.0, 0.0)
                    first = False
                yield out.to_ndarray()
        for out in self.resampler.resample(None):
            yield out.to_ndarray()

    def take(self, start: float, end: float) -> np.ndarray:
        """Samples in ``[start, end)``; earlier ones are dropped for good."""
        need_end = int(round((end - self.buf_start) * self.rate))
        while self.buf.shape[1] < need_end:
            chunk = next(self.frames, None)
            if chunk is None:
                break
            self.buf = np.concatenate([self.buf, chunk.astype(np.float32)], axis=1)
        a = max(0, int(round((start - self.buf_start) * self.rate)))
        b = max(a, min(need_end, self.buf.shape[1]))
        out = self.buf[:, a:b]
        self.buf = self.buf[:, b:]
        self.buf_start += b / self.rate
        return out

    def write(self, out: Any, stream: Any, start: float, end: float) -> None:
        import av

        samples = self.take(start, end)
        step = stream.codec_context.frame_size or 1024
        for i in range(0, samples.shape[1], step):
            af = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples[:, i : i + step]), format="fltp", layout=self.layout)
            af.sample_rate = self.rate
            af.pts = i
            for p in stream.encode(af):
                out.mux(p)
        for p in stream.encode():
            out.mux(p)


SEGMENT_HELP = """Find the shots of one or more videos and write them as JSON or CSV.

Each video is decoded once.  Every shot has: video (the path as given), index, start_frame,
end_frame (exclusive), start_time and end_time (seconds).  JSON is
{"videos": {VIDEO: list of shots}, "errors": {VIDEO: reason}}; CSV has one row per shot with
a header line.  Settings of the segmenter are given with --set key=value (YAML-typed, nested
keys with dots, e.g. --set content.threshold=20; see `moviekit show NAME`).

--export-clips DIR re-encodes every shot to DIR/<stem>/<stem>-shot-NNNN.mp4 (H.264, with the
audio of its time range when the video has audio); this decodes the video a second time.

A video that cannot be read is reported on stderr and skipped; the others are still written
and the exit code is then 1.  Bad settings or an unknown segmenter exit with code 2.
"""


@hookimpl
def register_commands(cli):
    import csv
    import io
    import json
    import sys

    from moviekit.errors import MoviekitError

    @cli.command("segment", help=SEGMENT_HELP)
    def segment(
        videos: Annotated[list[Path], typer.Argument(help="video files")],
        segmenter: Annotated[str, typer.Option("--segmenter", "-s", help="segmenter component name")] = "scenedetect",
        set_: Annotated[list[str] | None, typer.Option("--set", help="segmenter setting key.path=value (YAML-typed)")] = None,
        fmt: Annotated[str, typer.Option("--format", "-f", help="json or csv")] = "json",
        out: Annotated[Path | None, typer.Option("--out", "-o", help="output file (default stdout)")] = None,
        export: Annotated[Path | None, typer.Option("--export-clips", help="write each shot to DIR/<stem>/<stem>-shot-NNNN.mp4")] = None,
    ) -> None:
        from rich.console import Console
        from rich.markup import escape

        from moviekit.plugins import get_registry

        fmt = fmt.lower()
        if fmt not in ("json", "csv"):
            raise MoviekitError(f"--format must be json or csv, not '{fmt}'")
        cls = get_registry().get(segmenter, "segmenter")
        config = build_segmenter_config(cls, set_ or [])
        seg = cls(config)
        err = Console(stderr=True)
        results: dict[str, list[dict[str, Any]]] = {}
        errors: dict[str, str] = {}
        for video in videos:
            key = str(video)
            try:
                if not video.is_file():
                    raise MoviekitError(f"{video}: no such file")
                shots = segment_file(video, seg)
            except MoviekitError as e:
                reason = e.message if hasattr(e, "message") else str(e)
                reason = reason.removeprefix(f"{video}: ")
                errors[key] = reason
                err.print(f"[bold red]error:[/] {escape(key)}: {escape(reason)}", highlight=False, soft_wrap=True)
                continue
            results[key] = shot_rows(key, shots)
            if export is not None:
                try:
                    export_clips(video, shots, export / video.stem)
                except Exception as e:  # noqa: BLE001 - reported per video
                    errors[key] = f"exporting clips failed: {type(e).__name__}: {e}"
                    err.print(f"[bold red]error:[/] {escape(key)}: {escape(errors[key])}", highlight=False, soft_wrap=True)
        if fmt == "json":
            text = json.dumps({"videos": results, "errors": errors}, indent=2) + "\n"
        else:
            buf = io.StringIO()
            w = csv.DictWriter(buf, fieldnames=SHOT_FIELDS, lineterminator="\n")
            w.writeheader()
            for rows in results.values():
                w.writerows(rows)
            text = buf.getvalue()
        if out is None:
            sys.stdout.write(text)
            sys.stdout.flush()
        else:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(text)
        if errors:
            raise typer.Exit(1)
