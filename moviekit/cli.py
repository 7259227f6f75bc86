"""The `moviekit` command line."""

from __future__ import annotations

import inspect
import json
import platform
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from .components import KINDS
from .errors import MoviekitError
from .plugins import PLUGIN_API_VERSION, get_registry

app = typer.Typer(
    name="moviekit",
    help="Movie-understanding toolkit: run recipes, inspect plugins and components.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)

KIND_ALIASES = {**{k: k for k in KINDS}, **{k + "s": k for k in KINDS}, "datasets": "dataset", "sources": "dataset"}


class RichReporter:
    def __init__(self, progress: Progress):
        self.progress = progress
        self.tasks: dict[str, Any] = {}

    def stage(self, name: str, total: int | None) -> None:
        self.tasks[name] = self.progress.add_task(name, total=total)

    def advance(self, name: str, n: int = 1) -> None:
        if name in self.tasks:
            self.progress.advance(self.tasks[name], n)

    def done(self, name: str) -> None:
        if name in self.tasks:
            t = self.tasks[name]
            total = self.progress.tasks[t].total
            self.progress.update(t, completed=total if total is not None else 1, total=total if total is not None else 1)

    def log(self, message: str) -> None:
        self.progress.console.print(message, markup=False, highlight=False)


def _fail(message: str, code: int = 2) -> None:
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@app.command()
def run(
    recipe: Annotated[Path, typer.Argument(help="recipe YAML file")],
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="override a recipe key: a.b.c=value (YAML-typed)")] = None,
    output: Annotated[
        Optional[str], typer.Option("--output", "-o", help="run directory, a path or an fsspec URL (default run.output)")
    ] = None,
    fresh: Annotated[bool, typer.Option("--fresh", help="ignore cached artifacts and recompute everything")] = False,
    strict: Annotated[bool, typer.Option("--strict", help="stop at the first failed item")] = False,
) -> None:
    """Run a recipe end to end; resumes from finished artifacts unless --fresh."""
    from .recipe import load_recipe
    from .runner import run_recipe

    resolved = load_recipe(recipe, set_ or [])
    try:
        with Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        ) as progress:
            summary = run_recipe(resolved, output=output, fresh=fresh, strict=strict or None, reporter=RichReporter(progress))
    except KeyboardInterrupt as e:  # SIGINT, or SIGTERM turned into RunInterrupted by the runner
        raise typer.Exit(_interrupted(e)) from None
    table = Table(title=f"moviekit run: {resolved.name}")
    for col in ("stage", "computed", "reused", "failed", "excluded", "seconds"):
        table.add_column(col, justify="left" if col == "stage" else "right")
    for stage, st in summary["stages"].items():
        table.add_row(stage, str(st["computed"]), str(st["reused"]), str(st["failed"]), str(st["excluded"]), f"{st['seconds']:.1f}")
    console.print(table)
    for task, metrics in summary["tasks"].items():
        if metrics:
            mt = Table(title=f"{task}")
            mt.add_column("metric")
            mt.add_column("value", justify="right")
            for k, v in metrics.items():
                mt.add_row(k, f"{v:.4f}" if isinstance(v, float) else str(v))
            console.print(mt)
    console.print(
        f"reused {summary['reused_artifacts']} finished artifact(s); {summary['decodes']} video decode(s); output in {summary['output']}",
        highlight=False,
    )
    cache = summary["cache"]
    size = f"{_mib(cache['bytes'])} in {cache['artifacts']} artifact(s) at " if "bytes" in cache else ""  # a remote store is not walked
    console.print(f"cache: {size}{cache['root']} (this run wrote {_mib(cache['written_bytes'])})", highlight=False)
    if summary["failures"]:
        err_console.print(f"[bold red]{summary['failures']} item(s) failed[/]; see {summary['output'].rstrip('/')}/failures.jsonl")
        raise typer.Exit(1)


@app.command()
def validate(
    recipe: Annotated[Path, typer.Argument(help="recipe YAML file")],
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="override a recipe key: a.b.c=value")] = None,
    weights: Annotated[
        bool, typer.Option("--weights/--no-weights", help="also list the required weights not on this machine, with the key to set")
    ] = True,
) -> None:
    """Validate a recipe against the installed components without running it; list missing weights."""
    from .recipe import load_recipe

    resolved = load_recipe(recipe, set_ or [])
    console.print(f"[green]ok[/] {recipe}: {len(resolved.components)} component(s) valid", highlight=False)
    for line in _weights_report(resolved) if weights else []:
        console.print(line, markup=False, highlight=False, soft_wrap=True)


def _weights_report(resolved: Any) -> list[str]:
    """One line per required weights file of the recipe's components that is not on this machine (a run
    would stop on it before any data work, or download it when online), saying which key to set."""
    from .weights import available_offline, is_offline

    lines = []
    for path, rc in resolved.components.items():
        try:
            specs = rc.build().weights()
        except Exception as e:  # noqa: BLE001 - reported, validation of the recipe itself passed
            lines.append(f"weights? {path} ({rc.cls.name}): cannot list its weights ({type(e).__name__}: {e})")
            continue
        for spec in specs:
            ok, where = available_offline(spec)
            if ok or not spec.required:
                continue
            source = ""
            if spec.hub:
                source = f" Source: {spec.hub}" + (
                    " (downloaded on the first run online)." if not is_offline() else " (offline: not downloaded)."
                )
            lines.append(
                f"weights missing: {path} ({rc.cls.name}) '{spec.name}' ({spec.description or 'model weights'}) is not on this "
                f"machine (looked in {where}). Set `--set {path}.{spec.config_key}=/path/to/checkpoint` or put it in "
                f"$MOVIEKIT_WEIGHTS/{spec.name}.{source}"
            )
    return lines


@app.command("list")
def list_(
    what: Annotated[str, typer.Argument(help="`plugins`, or a component kind: " + ", ".join(KINDS))] = "plugins",
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """List installed plugins, or the components of one kind."""
    reg = get_registry()
    if what == "plugins":
        data = [p.as_dict() for p in reg.plugins.values()]
        if as_json:
            print(json.dumps({"api_version": PLUGIN_API_VERSION, "plugins": data}, indent=2))
            return
        table = Table(title=f"moviekit plugins (plugin API {PLUGIN_API_VERSION})")
        for col in ("plugin", "distribution", "version", "API", "components", "status"):
            table.add_column(col)
        for p in data:
            comps = "\n".join(f"{k}: {', '.join(v)}" for k, v in sorted(p["components"].items()))
            status = "[green]ok[/]" if p["status"] == "ok" else "[red]broken[/]\n" + "\n".join(p["errors"])
            table.add_row(p["name"], p["distribution"], p["version"], str(p["api_version"] or "-"), comps, status)
        console.print(table)
        return
    kind = KIND_ALIASES.get(what)
    if kind is None:
        _fail(f"unknown kind '{what}'; use plugins or one of: {', '.join(KINDS)}")
    rows = []
    for name in reg.names(kind):
        cls = reg.get(name)
        plugin = reg.plugin_of(name)
        rows.append({"name": name, "kind": kind, "plugin": plugin.name, "distribution": plugin.distribution, "description": cls.describe()})
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table(title=f"{kind} components")
    for col in ("name", "distribution", "description"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["name"], r["distribution"], r["description"])
    console.print(table)


@app.command()
def show(
    name: Annotated[str, typer.Argument(help="component name")],
    as_json: Annotated[bool, typer.Option("--json", help="print the JSON schema only")] = False,
) -> None:
    """Show a component's documentation and its config schema with defaults."""
    reg = get_registry()
    cls = reg.get(name)
    schema = cls.Config.model_json_schema()
    if as_json:
        print(json.dumps(schema, indent=2))
        return
    plugin = reg.plugin_of(name)
    console.print(
        f"[bold]{escape(name)}[/] ({cls.kind}) from {escape(plugin.name)} {escape(f'[{plugin.distribution} {plugin.version}]')}",
        highlight=False,
    )
    console.print(inspect.cleandoc(cls.__doc__ or ""), markup=False)
    console.print(f"takes: {cls.takes}\nreturns: {cls.returns}", markup=False, highlight=False)
    table = Table(title="config")
    for col in ("key", "type", "default", "description"):
        table.add_column(col)
    from .describe import config_rows

    for row in config_rows(cls):
        table.add_row(row["key"], row["type"], row["default"], row["description"])
    console.print(table)
    try:
        comp = cls()
    except Exception:  # noqa: BLE001 - components with required fields cannot be built without config
        return
    needs = comp.needs()
    if needs.frames or needs.audio or needs.flow:
        console.print(f"needs: {needs.model_dump(exclude_none=True)}", highlight=False)
    for w in comp.weights():
        console.print(
            f"weights: {w.name} {('package ' + w.package) if w.package else ''} {('hub ' + w.hub) if w.hub else ''}", highlight=False
        )


@app.command()
def doctor() -> None:
    """Report Python, torch, CUDA devices, the core's and each plugin's stacks, and which weights resolve offline."""
    from .doctor import core_checks, plugin_checks
    from .weights import available_offline, cache_root

    table = Table(title="moviekit doctor")
    table.add_column("check")
    table.add_column("result")
    table.add_row("python", f"{sys.version.split()[0]} ({platform.platform()})")
    try:
        import torch

        table.add_row("torch", torch.__version__)
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        devs = ", ".join(torch.cuda.get_device_name(i) for i in range(n)) or "none (CPU only)"
        table.add_row("CUDA devices", devs)
    except Exception as e:  # noqa: BLE001
        table.add_row("torch", f"[red]not importable: {e}[/]")
    reg = get_registry()
    for label, ok, detail in core_checks():
        table.add_row(label, _check_cell(ok, detail))
    for plugin, (label, ok, detail) in plugin_checks(reg):
        table.add_row(f"{label} ({plugin})", _check_cell(ok, detail))
    table.add_row("cache", str(cache_root()))
    for name in reg.names():
        cls = reg.get(name)
        try:
            specs = cls().weights()
        except Exception:  # noqa: BLE001 - needs config to say
            continue
        for spec in specs:
            ok, where = available_offline(spec)
            table.add_row(
                f"weights {spec.name} ({name})", f"[green]offline ok[/] {where}" if ok else f"[yellow]not local[/] (looked in {where})"
            )
    broken = [p for p in reg.plugins.values() if not p.ok]
    table.add_row("plugins", f"{len(reg.plugins) - len(broken)} ok, {len(broken)} broken")
    for p in broken:
        table.add_row(f"  broken: {p.name}", "; ".join(p.errors))
    console.print(table)


cache_app = typer.Typer(help="Show the artifact store's size, or prune it.", no_args_is_help=True)
app.add_typer(cache_app, name="cache")
CacheDir = Annotated[
    Optional[str],
    typer.Option(
        "--cache-dir",
        metavar="DIR|URL",
        help="artifact store: a folder or fsspec URL such as s3://bucket/prefix, as in run.cache_dir "
        "(default: $MOVIEKIT_CACHE/artifacts, where runs without run.cache_dir keep theirs)",
    ),
]


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n / 2**10:.1f} KiB"


def _cache_dir(cache_dir: str | None) -> str | Path:
    from .weights import cache_root

    return cache_dir or cache_root() / "artifacts"


@cache_app.command("show")
def cache_show(
    cache_dir: CacheDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Size per kind, number of artifacts and the root of the artifact store."""
    from .cache import is_default_store, staging_usage, usage

    root = _cache_dir(cache_dir)
    u = usage(root)
    if is_default_store(root):
        u["remote_run_staging"] = staging_usage()
    if as_json:
        print(json.dumps(u, indent=2))
        return
    table = Table(title=f"artifact store {u['root']} (format v{u['format']})")
    for col in ("kind", "artifacts", "size"):
        table.add_column(col, justify="left" if col == "kind" else "right")
    for kind, g in u["kinds"].items():
        table.add_row(kind, str(g["artifacts"]), _mib(g["bytes"]))
    for version, g in u["other_formats"].items():
        table.add_row(f"{version} (other format, not read)", str(g["artifacts"]), _mib(g["bytes"]))
    if u["temporary"]["files"]:
        table.add_row("temporary files", str(u["temporary"]["files"]), _mib(u["temporary"]["bytes"]))
    table.add_row("total", str(u["artifacts"]), _mib(u["bytes"]))
    console.print(table)
    if "local" in u:
        console.print(f"(counted with it: this machine's file-hash memos and checkpoints in {u['local']})", highlight=False, soft_wrap=True)
    if "remote_run_staging" in u:
        st = u["remote_run_staging"]
        console.print(
            f"(beside it, not counted: {st['folders']} local staging folder(s) of remote runs, {_mib(st['bytes'])} in {st['root']})",
            highlight=False,
            soft_wrap=True,
        )


@cache_app.command("prune")
def cache_prune(
    older_than: Annotated[
        Optional[float],
        typer.Option(
            "--older-than", help="delete what was not written or read for DAYS days (on an object store: not written)", metavar="DAYS"
        ),
    ] = None,
    run: Annotated[
        Optional[list[str]],
        typer.Option(
            "--run",
            metavar="RUN_DIR",
            help="keep only what this run (a folder or URL) used (its artifacts.json); repeat to keep several runs'",
        ),
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="delete every artifact")] = False,
    yes: Annotated[bool, typer.Option("--yes", help="really delete (default: a dry run that says what would go)")] = False,
    cache_dir: CacheDir = None,
) -> None:
    """Delete artifacts by age, by run or all; a dry run unless --yes.  Only the store's own files under its root are deleted.

    On the default store ($MOVIEKIT_CACHE/artifacts), --older-than also deletes the local staging folders
    of remote runs ($MOVIEKIT_CACHE/remote-runs) in which nothing was written for DAYS days."""
    from .cache import is_default_store, prune, prune_staging, read_manifest

    root = cache_dir
    if root is None and run:
        root = read_manifest(run[0])["cache"]
    res = prune(_cache_dir(root), older_than_days=older_than, keep_runs=list(run or []), everything=all_, dry_run=not yes)
    verb = "would delete" if res["dry_run"] else "deleted"
    kinds = ", ".join(f"{k}: {g['files']}" for k, g in sorted(res["by_kind"].items()))
    console.print(
        f"{verb} {res['files']} file(s), {_mib(res['bytes'])} in {res['root']}" + (f" ({kinds})" if kinds else ""), highlight=False
    )
    if older_than is not None and is_default_store(_cache_dir(root)):
        st = prune_staging(older_than, dry_run=not yes)
        console.print(
            f"{verb} {st['folders']} staging folder(s) of remote runs, {_mib(st['bytes'])} in {st['root']}", highlight=False, soft_wrap=True
        )
    if res["dry_run"]:
        console.print("dry run: add --yes to delete", highlight=False)


def _check_cell(ok: bool, detail: str) -> str:
    return f"[green]ok[/] {detail}" if ok else f"[yellow]unavailable[/] ({detail})"


@app.command("new-plugin")
def new_plugin(
    name: Annotated[str, typer.Argument(help="plugin distribution name, e.g. moviekit-myexpert")],
    dir_: Annotated[Path, typer.Option("--dir", help="parent folder of the new package")] = Path("."),
) -> None:
    """Scaffold a third-party plugin package with an example component and its tests."""
    from .scaffold import create_plugin

    path = create_plugin(name, dir_)
    console.print(f"created {path}\nnext: pip install -e {path} && pytest {path}", highlight=False)


def _interrupted(e: BaseException) -> int:
    """Say how the run was interrupted and that it resumes; the exit code is 128 + the signal."""
    from .errors import RunInterrupted

    cause: BaseException | None = e
    while cause is not None and not isinstance(cause, KeyboardInterrupt):
        cause = cause.__cause__ or cause.__context__
    name, code = ("SIGINT", 130)
    if isinstance(cause, RunInterrupted):
        name, code = cause.name, cause.exit_code
    err_console.print(
        f"[bold yellow]interrupted[/] by {name}: finished artifacts are stored; run the same command again to resume",
        highlight=False,
        soft_wrap=True,
    )
    return code


def _terminate_like_interrupt() -> None:
    """SIGTERM ends the command like Ctrl-C (cleanly, with a message) from the very start."""
    import signal

    from .errors import RunInterrupted

    def handler(signum: int, _frame: Any) -> None:
        raise RunInterrupted(signum)

    try:
        signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        pass


def main() -> None:
    _terminate_like_interrupt()
    reg = None
    try:
        reg = get_registry()
    except Exception as e:  # noqa: BLE001 - the core's own registry failing is reported, not fatal
        err_console.print(f"[red]plugin loading failed:[/] {e}")
    if reg is not None:
        for problem in reg.register_commands(app):
            err_console.print(f"[yellow]warning:[/] {problem}")
    try:
        rc = app(standalone_mode=False)
    except MoviekitError as e:
        err_console.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except (typer.Abort, KeyboardInterrupt) as e:
        sys.exit(_interrupted(e))
    except Exception as e:  # click usage errors
        import click

        if isinstance(e, click.ClickException):
            e.show()
            sys.exit(e.exit_code)
        raise
    sys.exit(rc if isinstance(rc, int) else 0)


if __name__ == "__main__":
    main()
