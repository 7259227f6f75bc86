"""``moviekit m2s embed`` / ``moviekit m2s retrieve``: embed a video's scenes with a finished run's scene encoder, and query the run's scenes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import numpy as np
import typer


def embed_video(
    run_dir: Path, video: Path, model: str = "m2s_scene_cowatch", window: int = 4, segmenter: str = "scenedetect"
) -> dict[str, Any]:
    """Shots and keyframes of ``video`` with the run's own recipe (``segmenter`` when the run used annotated shots), then its
    scenes (consecutive windows of ``window`` shots) embedded by the run's scene encoder: ``{"ids", "vectors": (n, d), "scenes"}``."""
    from moviekit import MoviekitError, Video, extract_videos, load_model, load_recipe

    from .common import Scene, load_network, scene_embeddings, shot_embeddings

    run_dir = Path(run_dir)
    if not (run_dir / "resolved.yaml").is_file():
        raise MoviekitError(f"{run_dir}: not a run directory (no resolved.yaml)")
    if not Path(video).is_file():
        raise MoviekitError(f"video file not found: {video}")
    trained = load_model(run_dir / "models" / model)
    import yaml

    raw = yaml.safe_load((run_dir / "resolved.yaml").read_text())
    if (raw.get("segmenter") or {}).get("use") == "m2s_annotated_shots":
        raw["segmenter"] = {"use": segmenter}  # a new video has no annotated shots: detect them
    (run_dir / "queries").mkdir(parents=True, exist_ok=True)
    (run_dir / "queries" / "query_recipe.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    resolved = load_recipe(run_dir / "queries" / "query_recipe.yaml", ["clips.min_clips=1"])
    items = extract_videos(resolved, [Video(id=Path(video).stem, path=Path(video))], output=run_dir / "queries")
    if not items:
        raise MoviekitError(f"{video}: could not extract shots and keyframes (see {run_dir / 'queries' / 'failures.jsonl'})")
    shot_net, scene_net = load_network(trained, "shot"), load_network(trained, "scene")
    emb = shot_embeddings(shot_net, items, trained.record.meta.get("modality", "keyframes"))
    n = len(items[0].clips)
    scenes = [Scene(0, k, list(range(s, min(n, s + window)))) for k, s in enumerate(range(0, n, window))]
    vectors = scene_embeddings(scene_net, emb, scenes)
    clips = items[0].clips
    rows = [{"scene": s.index, "start": clips[s.shots[0]].start_time, "end": clips[s.shots[-1]].end_time} for s in scenes]
    return {"ids": [f"{items[0].id}/{s.index}" for s in scenes], "vectors": vectors, "scenes": rows}


def retrieve(run_dir: Path, video: Path, model: str, k: int, window: int) -> list[dict[str, Any]]:
    """For each scene of ``video``, the ``k`` nearest scenes exported by the run (``m2s_export_scenes``)."""
    import csv

    from moviekit import MoviekitError

    from .metrics import knn_l2

    folder = run_dir / "scene_features" / "scene"
    if not folder.is_dir():
        raise MoviekitError(f"{run_dir}: no scene_features/ (add the m2s_export_scenes task to the recipe)")
    ids, vecs = [], []
    for d in sorted(folder.iterdir()):
        for f in sorted(d.glob("*.npy"), key=lambda p: int(p.stem)):
            ids.append(f"{d.name}/{f.stem}")
            vecs.append(np.load(f, allow_pickle=False))
    times = {}
    with open(run_dir / "scene_features" / "clips.csv", newline="") as fh:
        for r in csv.DictReader(fh):
            times[f"{r['video']}/{r['clip']}"] = (float(r["start_time"]), float(r["end_time"]))
    q = embed_video(run_dir, video, model, window)
    idx = knn_l2(np.stack(vecs), q["vectors"], k)
    return [
        {
            **s,
            "neighbours": [
                {"id": ids[j], "start": times.get(ids[j], (None, None))[0], "end": times.get(ids[j], (None, None))[1]} for j in row
            ],
        }
        for s, row in zip(q["scenes"], idx, strict=True)
    ]


def add_commands(cli: Any) -> None:
    app = typer.Typer(help="Movies2Scenes: embed a video's scenes with a trained run, or retrieve similar scenes.", no_args_is_help=True)

    @app.command("embed")
    def embed_cmd(
        run: Annotated[Path, typer.Argument(help="a finished Movies2Scenes run directory")],
        video: Annotated[Path, typer.Argument(help="the video to embed")],
        out: Annotated[Path, typer.Option(help="output .npz (ids, vectors) and a .json of the scenes beside it")] = Path("scenes.npz"),
        model: Annotated[str, typer.Option(help="the run's scene model")] = "m2s_scene_cowatch",
        window: Annotated[int, typer.Option(help="shots per scene")] = 4,
    ) -> None:
        """Embed the scenes of VIDEO with RUN's scene encoder."""
        res = embed_video(run, video, model, window)
        np.savez(out, ids=np.array(res["ids"]), vectors=res["vectors"])
        out.with_suffix(".json").write_text(json.dumps(res["scenes"], indent=1))
        typer.echo(f"{len(res['ids'])} scenes -> {out}")

    @app.command("retrieve")
    def retrieve_cmd(
        run: Annotated[Path, typer.Argument(help="a finished Movies2Scenes run directory (with scene_features/)")],
        video: Annotated[Path, typer.Argument(help="the query video")],
        k: Annotated[int, typer.Option(help="neighbours per scene")] = 5,
        model: Annotated[Optional[str], typer.Option(help="the run's scene model")] = "m2s_scene_cowatch",
        window: Annotated[int, typer.Option(help="shots per query scene")] = 4,
    ) -> None:
        """For each scene of VIDEO, the nearest scenes of RUN's movies."""
        typer.echo(json.dumps(retrieve(run, video, model or "m2s_scene_cowatch", k, window), indent=1))

    cli.add_typer(app, name="m2s")
