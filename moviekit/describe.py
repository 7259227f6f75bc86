"""Plain descriptions of commands and components, shared by ``moviekit show`` and the generated docs."""

from __future__ import annotations

import inspect
from typing import Any


def config_rows(cls: type) -> list[dict[str, str]]:
    """One row per config field of a component class: key, type, default, description."""
    schema = cls.Config.model_json_schema()
    props = schema.get("properties", {})
    rows = []
    for key, field in cls.Config.model_fields.items():
        p = props.get(key, {})
        typ = p.get("type") or " | ".join(x.get("type", "?") for x in p.get("anyOf", [])) or p.get("$ref", "?").split("/")[-1]
        default = "(required)" if field.is_required() else repr(field.get_default(call_default_factory=True))
        rows.append({"key": key, "type": str(typ), "default": default, "description": field.description or ""})
    return rows


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def components_markdown(registry: Any) -> str:
    """Every registered component with its plugin, documentation and config table, by kind."""
    lines = ["# Components", "", "Generated from the registry by `python docs/generate.py`; do not edit by hand.", ""]
    by_kind: dict[str, list[str]] = {}
    for name in registry.names():
        by_kind.setdefault(registry.get(name).kind, []).append(name)
    for kind in sorted(by_kind):
        lines += [f"## {kind}", ""]
        for name in sorted(by_kind[kind]):
            cls = registry.get(name)
            plugin = registry.plugin_of(name)
            lines += [f"### `{name}`", "", f"Plugin: `{plugin.distribution}`.", "", inspect.cleandoc(cls.__doc__ or "").strip(), ""]
            if cls.takes or cls.returns:
                lines += [f"Takes: {cls.takes or '-'}. Returns: {cls.returns or '-'}.", ""]
            rows = config_rows(cls)
            if rows:
                lines += ["| key | type | default | description |", "| --- | --- | --- | --- |"]
                lines += [f"| `{r['key']}` | {_cell(r['type'])} | `{_cell(r['default'])}` | {_cell(r['description'])} |" for r in rows]
                lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _command_section(cmd: Any, path: str) -> list[str]:
    ctx = cmd.context_class(cmd, info_name=path)
    lines = [
        f"## `{path}`",
        "",
        inspect.cleandoc(cmd.help or "").strip(),
        "",
        "```",
        " ".join([path, *cmd.collect_usage_pieces(ctx)]),
        "```",
        "",
    ]
    rows = []
    for param in cmd.params:
        if getattr(param, "hidden", False):
            continue
        record = param.get_help_record(ctx) if param.param_type_name == "option" else None
        if param.param_type_name == "argument":
            rows.append((str(param.name).upper(), getattr(param, "help", "") or ""))
        elif record:
            rows.append(record)
    if rows:
        lines += ["| argument / option | help |", "| --- | --- |"]
        lines += [f"| `{_cell(a)}` | {_cell(b)} |" for a, b in rows]
        lines.append("")
    return lines


def cli_markdown(app: Any) -> str:
    """Every command of the typer app (plugins' commands included) with usage and options."""
    import typer

    root = typer.main.get_command(app)
    lines = ["# Commands", "", "Generated from the live CLI by `python docs/generate.py`; do not edit by hand.", ""]

    def walk(cmd: Any, path: str) -> None:
        if hasattr(cmd, "commands"):  # a group (typer ships its own click)
            for name in sorted(cmd.commands):
                walk(cmd.commands[name], f"{path} {name}")
        else:
            lines.extend(_command_section(cmd, path))

    walk(root, "moviekit")
    return "\n".join(lines).rstrip() + "\n"
