"""The ablation tables as CSV and as the run's HTML report (the slides' verb, relation and role tables)."""

from __future__ import annotations

import csv
import html
import io
from pathlib import Path
from typing import Any


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    buf = io.StringIO()
    if rows:
        w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    Path(path).write_text(buf.getvalue())


def _fmt(v: Any) -> str:
    return f"{v:.1f}" if isinstance(v, float) else html.escape(str(v))


def html_table(title: str, rows: list[dict[str, Any]], note: str = "") -> str:
    if not rows:
        return f"<h2>{html.escape(title)}</h2><p>no rows</p>"
    head = "".join(f"<th>{html.escape(k)}</th>" for k in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{_fmt(v)}</td>" for v in r.values()) + "</tr>" for r in rows)
    return f"<h2>{html.escape(title)}</h2><p>{html.escape(note)}</p><table><tr>{head}</tr>{body}</table>"


def write_report(path: Path, title: str, sections: list[tuple[str, list[dict[str, Any]], str]], notes: list[str]) -> None:
    style = "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #aaa;padding:4px 8px;text-align:right}"
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>{style}</style></head><body><h1>{html.escape(title)}</h1>"
    ]
    parts += [html_table(*s) for s in sections]
    parts.append("<ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ul></body></html>")
    Path(path).write_text("".join(parts))
