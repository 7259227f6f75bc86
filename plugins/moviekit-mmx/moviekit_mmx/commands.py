"""``moviekit mmx-retrieve``: query a finished MMX run's faiss index by trailer id or by a new video file."""

from __future__ import annotations

import contextlib
import difflib
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Annotated, Any, Optional

import numpy as np
import typer


def query_run(run_dir: Path, video_id: str | None = None, video: Path | None = None, k: int = 10) -> dict[str, Any]:
    """Neighbours of a trailer of the run (``video_id``) or of a new ``video`` file in the run's index.

    A new video goes through the run's own recipe (same segmenter and experts, with
    ``clips.min_clips`` lowered to 1) and its trained encoder; its genres are predicted
    with the run's genre head.  Returns ``{"query", "space", "neighbours": [...], "predicted": [...]}``.
    """
    import faiss
    import torch

    from moviekit import MoviekitError, Video, embed_items, extract_videos, load_model, load_recipe, run_batched

    from .model import genre_modules
    from .tasks import build_model, search

    run_dir = Path(run_dir)
    meta_path = run_dir / "index_ids.json"
    if not meta_path.is_file():
        raise MoviekitError(f"{run_dir}: no index_ids.json; is this the directory of a run with the mmx_retrieval task?")
    meta = json.loads(meta_path.read_text())
    ids, labels = meta["ids"], meta.get("labels", {})
    index = faiss.read_index(str(run_dir / "index.faiss"))
    if (video_id is None) == (video is None):
        raise MoviekitError("give exactly one of --id or --video")
    predicted: list[str] = []
    if video_id is not None:
        if video_id not in ids:
            close = difflib.get_close_matches(video_id, ids, n=3)
            raise MoviekitError(f"trailer id '{video_id}' is not in {meta_path}" + (f"; did you mean {', '.join(close)}?" if close else ""))
        row = ids.index(video_id)
        query = index.reconstruct(row)[None, :]
        exclude = {row}
        name = video_id
    else:
        if not Path(video).is_file():
            raise MoviekitError(f"video file not found: {video}")
        resolved = load_recipe(run_dir / "resolved.yaml", ["clips.min_clips=1"])
        items = extract_videos(resolved, [Video(id=Path(video).stem, path=Path(video))], output=run_dir / "queries")
        if not items:
            lines = (run_dir / "queries" / "failures.jsonl").read_text().splitlines()
            reasons = "; ".join(json.loads(line)["error"] for line in lines if line.strip())
            raise MoviekitError(f"{video}: could not extract features: {reasons or 'no clips found'}")
        ctx = SimpleNamespace(device=torch.device("cpu"), autocast=contextlib.nullcontext)
        model_file = str(meta.get("model", ""))
        if model_file.endswith(".pt"):
            raise MoviekitError(
                f"{meta_path}: names the pickled model {model_file} of an older moviekit, which is not loaded (it could run code); rerun the recipe to write models/*.json + .safetensors"
            )
        encoder, _ = build_model(load_model(run_dir / model_file))
        query = embed_items(encoder, items, ctx)
        coarse = run_dir / "models" / "coarse.json"
        if coarse.is_file():
            model = load_model(coarse)
            enc, head = build_model(model)
            if head is not None:
                trained = model.record.meta.get("train") or {}  # a sequence-level model pools its sequences' logits
                net, out = genre_modules(enc, head, trained.get("level", "trailer"), trained.get("sequence_pooling", "sum"))
                scores = run_batched(lambda f, m: torch.sigmoid(out(net(f, m))), [net, out], items, ctx)[0]
                thr = float(model.record.meta.get("threshold", 0.3))
                predicted = [g for g, s in sorted(zip(model.record.vocabulary, scores), key=lambda t: -t[1]) if s >= thr]
        exclude = set()
        name = str(video)
    scores, rows = search(index, np.asarray(query, dtype=np.float32), k + len(exclude))
    hits = [(int(r), float(s)) for r, s in zip(rows[0], scores[0]) if r >= 0 and int(r) not in exclude][:k]
    return {
        "query": name,
        "space": meta.get("space"),
        "predicted": predicted,
        "neighbours": [{"rank": i + 1, "id": ids[r], "score": s, "genres": labels.get(ids[r], [])} for i, (r, s) in enumerate(hits)],
    }


def add_commands(cli: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    @cli.command("mmx-retrieve")
    def mmx_retrieve(
        run_dir: Annotated[Path, typer.Argument(help="directory of a finished run with the mmx_retrieval task")],
        video_id: Annotated[Optional[str], typer.Option("--id", help="a trailer id of that run")] = None,
        video: Annotated[Optional[Path], typer.Option("--video", help="a new video file, embedded with the run's recipe and model")] = None,
        k: Annotated[int, typer.Option("-k", help="neighbours to show")] = 10,
        as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    ) -> None:
        """Nearest trailers (cosine, faiss) in an MMX run, for a trailer id or a new video file."""
        result = query_run(run_dir, video_id, video, k)
        if as_json:
            print(json.dumps(result, indent=1))
            return
        table = Table(title=f"nearest to {result['query']} ({result['space']} embeddings)")
        for col in ("rank", "id", "cosine", "genres"):
            table.add_column(col)
        for n in result["neighbours"]:
            table.add_row(str(n["rank"]), n["id"], f"{n['score']:.4f}", ", ".join(n["genres"]))
        console = Console()
        console.print(table)
        if result["predicted"]:
            console.print(f"predicted genres: {', '.join(result['predicted'])}", highlight=False)
