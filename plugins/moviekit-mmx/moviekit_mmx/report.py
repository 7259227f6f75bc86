"""A self-contained HTML report of an MMX-Trailer-20 run.

:class:`MMXReport` runs last in a recipe and gathers what the earlier MMX tasks
left in the run directory into one ``report.html``: the headline metrics
against the random baseline, the per-genre table (paper Table 2), the expert /
fusion ablation, precision-recall curves per expert (paper Fig. 9), t-SNE of the
coarse and fine embeddings (Fig. 1), the silhouette curve (Fig. 6),
retrieval examples with keyframes (Fig. 5), the sequence-length table (Table 5)
and genre scores along a few trailers (Fig. 8; both in ``sequence_report.py``).

Every input is optional; a missing or unreadable file gives a short note in
its section instead of an error.  Figures are PNGs made with matplotlib (Agg,
without pyplot) and embedded as base64, keyframes are embedded JPEGs, and the
page carries its own CSS, so the file can be mailed or archived on its own.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import html
import io
import json
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from moviekit import Config, Task, TaskResult, all_positive_from_supports, auprc_note, multilabel_metrics, per_class_metrics

from .probe import PROBE_KEY, probe_verdict

#: The task expected to write each input, named in the "not produced" notes.
PRODUCERS: dict[str, str] = {
    "metrics.json": "mmx_genre",
    "per_genre.csv": "mmx_genre",
    "scores/model.npz": "mmx_genre",
    "embeddings/coarse.npz": "mmx_genre",
    "ablation.csv": "mmx_ablation",
    "scores/expert_*.npz": "mmx_ablation",
    "scores/linear_probe.npz": "mmx_genre",
    "embeddings/fine.npz": "mmx_finetune",
    "silhouette.csv": "mmx_finetune",
    "retrieval.json": "mmx_retrieval",
    "seqlen.csv": "mmx_seqlen",
    "sequence_predictions/": "mmx_genre",
}

#: The six global metrics, in the order of the paper's tables.
METRICS: list[tuple[str, str]] = [
    ("auprc_micro", "AUPRC micro"),
    ("auprc_macro", "AUPRC macro"),
    ("auprc_weighted", "AUPRC weighted"),
    ("precision_weighted", "Precision (w)"),
    ("recall_weighted", "Recall (w)"),
    ("f1_weighted", "F1 (w)"),
]

#: Above this many points t-SNE runs on a fixed random subset (it is quadratic-ish and slow on 2 cores).
TSNE_MAX_POINTS = 3000

_esc = html.escape


class _NotProduced(Exception):
    """A section's input is absent from the run directory."""

    def __init__(self, *files: str):
        super().__init__(", ".join(files))
        self.files = files


class _Skipped(Exception):
    """A section switched off in the config; the message is the note's HTML."""


# -- small helpers -----------------------------------------------------------


def _num(value: Any) -> float | None:
    """A finite float, or None for blanks, NaN and junk."""
    if value is None or isinstance(value, bool):
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _fmt(value: Any, digits: int = 3) -> str:
    v = _num(value)
    return "–" if v is None else f"{v:.{digits}f}"


def _fmt_signed(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "–"
    cls = "pos" if value > 0 else "neg" if value < 0 else ""
    return f'<span class="{cls}">{value:+.{digits}f}</span>'


def _fmt_int(value: Any) -> str:
    v = _num(value)
    return "–" if v is None else str(int(round(v)))


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return [{(k or "").strip(): (v or "").strip() for k, v in row.items()} for row in csv.DictReader(f)]


def _load_npz(path: Path, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        missing = [k for k in keys if k not in data.files]
        if missing:
            raise ValueError(f"{path.name} lacks {', '.join(missing)}")
        return {k: data[k] for k in keys}


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _img(fig: Any, alt: str) -> str:
    return f'<img class="fig" src="data:image/png;base64,{_png(fig)}" alt="{_esc(alt)}">'


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _table(header: list[str], rows: list[list[str]], cls: str = "") -> str:
    """A table from already-escaped cell HTML; the first column is a row label."""
    head = "".join(f"<th>{h}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<{'th' if i == 0 else 'td'}>{c}</{'th' if i == 0 else 'td'}>" for i, c in enumerate(r)) + "</tr>" for r in rows
    )
    return f'<div class="scroll"><table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def safe_id(item_id: str) -> str:
    """A file-name-safe form of an id; unsafe ids get a short hash so two never collide."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", item_id).strip("._") or "item"
    if safe != item_id:
        safe = f"{safe[:60]}-{hashlib.sha1(item_id.encode()).hexdigest()[:8]}"
    return safe


def _genre_list(labels: Any) -> list[str]:
    if isinstance(labels, str):
        return [g for g in labels.split("|") if g]
    return [str(g) for g in labels or []]


def extract_keyframe(path: Path, time: float | None, width: int, reader: Any = None) -> Any:
    """The frame at ``time`` seconds (the middle of the video when None) as a PIL image ``width`` px wide.

    The frame comes from the core's reader (``pyav`` unless ``reader`` is given), upright as every
    other consumer of the run sees it (rotation metadata applied): the first frame at or after
    ``time``, or the last frame when ``time`` is past the end.
    """
    from PIL import Image

    from moviekit import Video, get_registry

    reader = reader or get_registry().create("pyav", "reader")
    img = Image.fromarray(reader.frame_at(Video(id=Path(path).stem, path=Path(path)), time))
    height = max(1, round(img.height * width / max(img.width, 1)))
    return img.resize((width, height))


# -- the task ------------------------------------------------------------------


class MMXReport(Task):
    """Writes a self-contained `report.html` (metrics, per-genre table, ablation, PR curves, t-SNE, silhouette, retrieval keyframes, Table 5, genres along trailers) from the files the earlier MMX tasks left in the run directory.

    Runs last in a recipe; every input is optional and a missing one gives a
    "not produced by this run" note in its section.
    """

    name = "mmx_report"
    takes = "the run directory: metrics.json, per_genre.csv, ablation.csv, scores/*.npz, embeddings/*.npz, silhouette.csv, retrieval.json, seqlen.csv, sequence_predictions/"
    returns = "report.html and keyframes/*.jpg"

    class Config(Config):
        title: str = Field("MMX-Trailer-20 run report", description="heading and <title> of the page")
        max_examples: int = Field(5, ge=0, description="retrieval queries shown (from retrieval.json 'examples')")
        tsne: bool = Field(True, description="compute the t-SNE plots of the coarse and fine embeddings (slow on large runs)")
        keyframe_width: int = Field(160, ge=16, le=1920, description="width in pixels of the retrieval keyframes")
        sequence_examples: int = Field(
            3, ge=0, description="trailers whose genre scores per sequence are shown (paper Fig. 8); 0 leaves it out"
        )

    def run(self, ctx: Any) -> TaskResult:
        from .sequence_report import section_seqlen, section_sequences

        out = Path(ctx.out_dir)
        self._out = out
        self._ctx = ctx
        self._keyframes: list[str] = []
        self._figures = 0
        self._metrics_json: dict[str, Any] | None = None
        self.__dict__.pop("_scores_cache", None)
        sections: list[tuple[str, str, Callable[[], str]]] = [
            ("metrics", "1. Headline metrics", self._section_metrics),
            ("per-genre", "2. Per-genre results", self._section_per_genre),
            ("ablation", "3. Experts and fusion (ablation)", self._section_ablation),
            ("pr", "4. Precision–recall curves", self._section_pr),
            ("tsne", "5. Embedding space before and after fine-tuning", self._section_tsne),
            ("silhouette", "6. Silhouette score during fine-tuning", self._section_silhouette),
            ("retrieval", "7. Retrieval examples", self._section_retrieval),
            ("seqlen", "8. Sequence length (Table 5)", lambda: section_seqlen(self)),
            ("sequences", "9. Genres along the trailer (Fig. 8)", lambda: section_sequences(self, self.config.sequence_examples)),
        ]
        parts, rendered = [], 0
        for anchor, title, render in sections:
            try:
                body = render()
                rendered += 1
            except _NotProduced as e:
                body = self._not_produced(e.files)
            except _Skipped as e:
                body = f'<p class="note">{e}</p>'
            except Exception as e:  # noqa: BLE001 - a report must never take the run down
                body = f'<p class="note error">Could not render this section: {_esc(type(e).__name__)}: {_esc(str(e))}</p>'
                ctx.log(f"[mmx_report] {title}: {type(e).__name__}: {e}")
            parts.append(f'<section id="{anchor}"><h2>{_esc(title)}</h2>\n{body}\n</section>')
        page = self._page(sections, parts)
        (out / "report.html").write_text(page, encoding="utf-8")
        return TaskResult(
            files=["report.html", *self._keyframes],
            metrics={"sections": rendered, "figures": self._figures, "keyframes": len(self._keyframes)},
        )

    # -- page ----------------------------------------------------------------
    def _page(self, sections: list[tuple[str, str, Callable[[], str]]], parts: list[str]) -> str:
        title = _esc(self.config.title)
        toc = "".join(f'<li><a href="#{a}">{_esc(t)}</a></li>' for a, t, _ in sections)
        return (
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{title}</title>'
            f"<style>{_CSS}</style></head><body><main>\n"
            f'<header><h1>{title}</h1><p class="sub">{_esc(self._out.name)}</p></header>\n'
            f"<nav><ol>{toc}</ol></nav>\n{self._overview()}\n" + "\n".join(parts) + "\n</main></body></html>\n"
        )

    def _not_produced(self, files: tuple[str, ...]) -> str:
        tasks = sorted({PRODUCERS.get(f, "") for f in files} - {""})
        names = ", ".join(f"<code>{_esc(f)}</code>" for f in files)
        add = ", ".join(f"<code>{_esc(t)}</code>" for t in tasks) or "the task that writes it"
        return f'<p class="note">Not produced by this run ({names} missing): add task {add} to the recipe.</p>'

    def _overview(self) -> str:
        ctx = self._ctx
        splits: dict[str, int] = {}
        for it in ctx.items:
            splits[str(it.video.split or "none")] = splits.get(str(it.video.split or "none"), 0) + 1
        split_txt = ", ".join(f"{_esc(k)}: {v}" for k, v in sorted(splits.items())) or "none"
        facts = (
            f"<p>{len(ctx.items)} items ({split_txt}); {len(ctx.vocabulary)} genres"
            + (f": {_esc(', '.join(ctx.vocabulary))}" if ctx.vocabulary else "")
            + ".</p>"
        )
        rows = []
        for key, result in (ctx.results or {}).items():
            metrics = getattr(result, "metrics", None) or {}
            shown = []
            for k, v in metrics.items():
                if isinstance(v, bool):
                    shown.append(f"{_esc(str(k))} = {'yes' if v else 'no'}")
                elif isinstance(v, (int, float)):
                    shown.append(f"{_esc(str(k))} = {_fmt(v) if isinstance(v, float) else v}")
                elif isinstance(v, str) and len(v) < 40:
                    shown.append(f"{_esc(str(k))} = {_esc(v)}")
            files = getattr(result, "files", None) or []
            rows.append([_esc(str(key)), "; ".join(shown[:10]) or "–", str(len(files))])
        tasks = (
            _table(["Task", "Headline metrics", "Files"], rows, "tasks")
            if rows
            else '<p class="note">No earlier task results were passed to the report.</p>'
        )
        return f'<section id="run"><h2>Run</h2>{facts}{tasks}</section>'

    # -- 1: headline metrics ---------------------------------------------------
    def _load_metrics(self) -> dict[str, Any]:
        if self._metrics_json is None:
            path = self._out / "metrics.json"
            if not path.is_file():
                raise _NotProduced("metrics.json")
            data = json.loads(path.read_text())
            if not isinstance(data, dict):
                raise ValueError("metrics.json is not an object")
            self._metrics_json = data
        return self._metrics_json

    def _section_metrics(self) -> str:
        m = self._load_metrics()
        rnd = m.get("random_baseline") if isinstance(m.get("random_baseline"), dict) else {}
        paper = m.get("paper_random") if isinstance(m.get("paper_random"), dict) else {}
        probe = m.get(PROBE_KEY) if isinstance(m.get(PROBE_KEY), dict) else None
        rows = []
        for key, label in METRICS:
            a, b = _num(m.get(key)), _num(rnd.get(key))
            cells = [_esc(label), _fmt(a), _fmt(b), _fmt_signed(a - b if a is not None and b is not None else None), _fmt(paper.get(key))]
            rows.append(cells + ([_fmt(probe.get(key))] if probe is not None else []))
        header = ["Metric", "Model", "Random baseline", "Margin", "Random (paper: every genre)"]
        table = _table(header + (["Linear probe"] if probe is not None else []), rows, "metrics")
        table += self._probe_verdict(m, probe)
        thr = _num(m.get("threshold"))
        thr_txt = f"<p>P/R/F1 use the decision threshold <strong>{thr:g}</strong> on the sigmoid scores.</p>" if thr is not None else ""
        thr_txt += (
            '<p class="caption">The random baseline is the expectation for uniformly random scores; the paper\'s "Random" row (Table 2) '
            "predicts every genre for every trailer, so it has P/R/F1 but no AUPRC.</p>"
        )
        thr_txt += f'<p class="caption">{_esc(auprc_note(m))}</p>'
        known = {k for k, _ in METRICS} | {"threshold", "random_baseline", "paper_random", "auprc_names", "auprc_note", PROBE_KEY}
        other = [
            [_esc(str(k)), _fmt(v) if isinstance(v, float) else _esc(str(v))]
            for k, v in m.items()
            if k not in known and isinstance(v, (int, float, str)) and not isinstance(v, bool)
        ]
        extra = (
            f"<details><summary>Other values in metrics.json ({len(other)})</summary>{_table(['Key', 'Value'], other)}</details>"
            if other
            else ""
        )
        return table + thr_txt + extra

    @staticmethod
    def _probe_verdict(m: dict[str, Any], probe: dict[str, Any] | None) -> str:
        """The plain sentence on the gated network against the linear probe (or why there is none)."""
        if probe is None:
            return '<p class="note">No linear-probe baseline in metrics.json (mmx_genre with <code>linear_probe: false</code>, or an older run).</p>'
        beats, text = probe_verdict(m, probe)
        cls = "pos" if beats else "neg"
        return (
            f'<p class="verdict {cls}" id="probe-verdict">{_esc(text)}</p>'
            f'<p class="caption">Linear probe: {_esc(str(probe.get("description", "")))}; C {_esc(str(probe.get("C", "")))}, '
            f"{_esc(str(probe.get('features', '')))} features.</p>"
        )

    # -- 2: per-genre table ----------------------------------------------------
    def _section_per_genre(self) -> str:
        """Table 2 of the paper: per-genre F1 at the task threshold (its Image row's support-weighted
        mean is its F1_w), then the same layout with per-genre AUPRC."""
        path = self._out / "per_genre.csv"
        if not path.is_file():
            raise _NotProduced("per_genre.csv")
        rows = [r for r in _read_csv(path) if r.get("genre")]
        if not rows:
            return '<p class="note">per_genre.csv has no rows.</p>'
        genres = [r["genre"] for r in rows]
        try:
            m = self._load_metrics()
        except _NotProduced:
            m = {}
        thr = self._threshold()
        f1_table, f1_computed = self._wide_table(rows, genres, m, "f1")
        auprc_table, auprc_computed = self._wide_table(rows, genres, m, "auprc")
        f1_foot = (
            f'<p class="caption">Per-genre F1 at the task threshold <strong>{thr:g}</strong> on the evaluation split, laid out like Table 2 of the paper; '
            'the last four columns are the global weighted metrics. <em>Random (paper: every genre)</em> is Table 2\'s "Random": every genre predicted '
            "for every trailer (per genre F1 = 2p/(1+p) for prevalence p, R<sub>w</sub> = 1). <em>Random (random scores)</em> is the expectation for "
            "uniformly random scores thresholded the same way (P/R/F1 averaged over seeded draws)."
        )
        auprc_foot = (
            '<p class="caption">Per-genre AUPRC, same layout. The random row is the expectation for uniformly random scores on the same targets '
            "(exact for AUPRC; on a small test set it is well above the genre's prevalence); predicting every genre ranks nothing, so it has no AUPRC row."
        )
        if f1_computed or auprc_computed:
            f1_foot += f" <sup>†</sup> Single-expert rows (and the linear probe's) are computed by this report from <code>scores/expert_*.npz</code> (<code>scores/linear_probe.npz</code>) (threshold {thr:g})."
        f1_foot += "</p>"
        auprc_foot += "</p>"
        note = f'<p class="caption" id="auprc-note">{_esc(auprc_note(m))}</p>' if m else ""
        long_rows = []
        for r in rows:
            a, b = _num(r.get("auprc")), _num(r.get("random_auprc"))
            long_rows.append(
                [
                    _esc(r["genre"]),
                    _fmt_int(r.get("support")),
                    _fmt(r.get("f1")),
                    _fmt(r.get("paper_random_f1")),
                    _fmt(a),
                    _fmt(b),
                    _fmt_signed(a - b if a is not None and b is not None else None),
                    _fmt(r.get("precision")),
                    _fmt(r.get("recall")),
                ]
            )
        long = _table(
            ["Genre", "Support", "F1", "F1 every genre", "AUPRC", "Random AUPRC", "Margin", "Precision", "Recall"], long_rows, "metrics"
        )
        return (
            f"<h3>F1 at threshold {thr:g} (Table 2)</h3>{f1_table}{f1_foot}<h3>AUPRC</h3>{auprc_table}{auprc_foot}{note}"
            f"<details><summary>Per-genre precision, recall, F1 and AUPRC</summary>{long}</details>"
        )

    def _paper_random(self, rows: list[dict[str, str]], m: dict[str, Any]) -> tuple[list[float | None], dict[str, Any]]:
        """Per-genre F1 and P/R/F1_w of predicting every genre: from the files, else from the supports and ``test_items``."""
        per = [_num(r.get("paper_random_f1")) for r in rows]
        glob = m.get("paper_random") if isinstance(m.get("paper_random"), dict) else {}
        n = _num(m.get("test_items"))
        supports = [_num(r.get("support")) for r in rows]
        if (any(v is None for v in per) or not glob) and n and all(s is not None for s in supports):
            try:
                computed = all_positive_from_supports(supports, int(n))
            except ValueError:
                computed = {}
            if computed:
                per = [v if v is not None else computed["f1_per_class"][j] for j, v in enumerate(per)]
                glob = glob or computed
        return per, glob

    def _wide_table(self, rows: list[dict[str, str]], genres: list[str], m: dict[str, Any], metric: str) -> tuple[str, list[str]]:
        """The Table 2 layout for per-genre ``metric`` (``f1`` or ``auprc``): support, random rows, single experts, model."""
        rnd = m.get("random_baseline") if isinstance(m.get("random_baseline"), dict) else {}
        glob = [
            ("f1_weighted", "F1<sub>w</sub>"),
            ("auprc_weighted", "AUPRC<sub>w</sub>"),
            ("precision_weighted", "P<sub>w</sub>"),
            ("recall_weighted", "R<sub>w</sub>"),
        ]
        header = ["F1" if metric == "f1" else "AUPRC", *(f'<span class="vert">{_esc(g)}</span>' for g in genres), *(h for _, h in glob)]
        table_rows = [["Support", *(_fmt_int(r.get("support")) for r in rows), *("–" for _ in glob)]]
        if metric == "f1":
            per, paper = self._paper_random(rows, m)
            table_rows.append(["Random (paper: every genre)", *(_fmt(v, 2) for v in per), *(_fmt(paper.get(k)) for k, _ in glob)])
            table_rows.append(["Random (random scores)", *("–" for _ in rows), *(_fmt(rnd.get(k)) for k, _ in glob)])
        else:
            table_rows.append(
                ["Random (random scores)", *(_fmt(r.get("random_auprc"), 2) for r in rows), *(_fmt(rnd.get(k)) for k, _ in glob)]
            )
        computed = []
        for name, data in self._scores_files():
            if name == "model" or isinstance(data, Exception):
                continue
            per_genre = self._per_genre_from_scores(data, genres, metric, self._threshold())
            if per_genre is None:
                continue
            g_metrics = self._global_from_scores(data)
            table_rows.append(
                [
                    f"{_esc('Linear probe' if name == PROBE_KEY else name)}<sup>†</sup>",
                    *(_fmt(per_genre.get(g), 2) for g in genres),
                    *(_fmt(g_metrics.get(k)) for k, _ in glob),
                ]
            )
            computed.append(name)
        table_rows.append(
            [
                "<strong>Model</strong>",
                *(f"<strong>{_fmt(r.get(metric), 2)}</strong>" for r in rows),
                *(f"<strong>{_fmt(m.get(k))}</strong>" for k, _ in glob),
            ]
        )
        return _table(header, table_rows, f"wide per-genre-{metric}"), computed

    def _threshold(self) -> float:
        try:
            thr = _num(self._load_metrics().get("threshold"))
        except Exception:  # noqa: BLE001
            thr = None
        return 0.5 if thr is None else thr

    @staticmethod
    def _per_genre_from_scores(
        data: dict[str, np.ndarray], genres: list[str], metric: str = "auprc", threshold: float = 0.5
    ) -> dict[str, float] | None:
        """Per-genre ``metric`` of a scores file (F1 and the like at ``threshold``), or None when no genre matches."""
        names = [str(g) for g in data["genres"]]
        if not set(genres) & set(names):
            return None
        y, s = data["y_true"].astype(int), data["scores"].astype(np.float64)
        rows = per_class_metrics(y, s, names, threshold)
        return {r["label"]: r[metric] for r in rows}

    def _global_from_scores(self, data: dict[str, np.ndarray]) -> dict[str, Any]:
        try:
            return multilabel_metrics(data["y_true"].astype(int), data["scores"].astype(np.float64), self._threshold())
        except ValueError:
            return {}

    # -- 3: ablation -------------------------------------------------------------
    def _section_ablation(self) -> str:
        path = self._out / "ablation.csv"
        if not path.is_file():
            raise _NotProduced("ablation.csv")
        rows = [r for r in _read_csv(path) if any(r.values())]
        if not rows:
            return '<p class="note">ablation.csv has no rows.</p>'
        keys = [k for k, _ in METRICS]
        models = [r for r in rows if r.get("fusion", "").lower() not in ("random", "probe")]  # a baseline is never "best"
        best = {k: max((v for r in models if (v := _num(r.get(k))) is not None), default=None) for k in keys}
        out_rows = []
        for r in rows:
            cells = [_esc(r.get("setting", "")), _esc(", ".join(_genre_list(r.get("experts", "")))), _esc(r.get("fusion", ""))]
            for k in keys:
                v = _num(r.get(k))
                txt = _fmt(v)
                cells.append(f"<strong>{txt}</strong>" if v is not None and v == best[k] else txt)
            out_rows.append(cells)
        table = _table(["Setting", "Experts", "Fusion", *(_esc(label) for _, label in METRICS)], out_rows, "metrics ablation")
        return (
            f'{table}<p class="caption">Best value per column among the trained settings in bold. <em>random</em>: expected metrics of uniformly random scores; '
            f'<em>random (paper: every genre)</em>: Table 2\'s "Random", every genre predicted (P/R/F1 only); '
            f"<em>linear probe</em>: a logistic regression on the experts' averaged clip features (a baseline, not bolded).</p>{gating_verdict(rows)}"
        )

    # -- 4: PR curves --------------------------------------------------------------
    def _scores_files(self) -> list[tuple[str, dict[str, np.ndarray] | Exception]]:
        if not hasattr(self, "_scores_cache"):
            folder = self._out / "scores"
            files = sorted(folder.glob("*.npz")) if folder.is_dir() else []
            files.sort(key=lambda p: (p.stem != "model", not p.stem.startswith("expert_"), p.stem))
            out: list[tuple[str, Any]] = []
            for p in files:
                name = p.stem[len("expert_") :] if p.stem.startswith("expert_") else p.stem
                try:
                    data = _load_npz(p, ("genres", "y_true", "scores"))
                    y, s = np.asarray(data["y_true"]), np.asarray(data["scores"])
                    if y.ndim != 2 or y.shape != s.shape or y.shape[1] != len(data["genres"]):
                        raise ValueError(f"{p.name}: y_true {y.shape}, scores {s.shape}, {len(data['genres'])} genres do not match")
                    out.append((name, data))
                except Exception as e:  # noqa: BLE001
                    out.append((name, e))
            self._scores_cache = out
        return self._scores_cache

    def _section_pr(self) -> str:
        files = self._scores_files()
        if not files:
            raise _NotProduced("scores/model.npz", "scores/expert_*.npz")
        from matplotlib import colormaps
        from sklearn.metrics import average_precision_score, precision_recall_curve

        cards = []
        for name, data in files:
            title = _scores_title(name)
            if isinstance(data, Exception):
                cards.append(
                    f'<figure class="card"><figcaption>{_esc(title)}</figcaption><p class="note error">Unreadable: {_esc(str(data))}</p></figure>'
                )
                continue
            y = np.asarray(data["y_true"]).astype(int)
            s = np.asarray(data["scores"], dtype=np.float64)
            genres = [str(g) for g in data["genres"]]
            if y.size == 0 or not y.any():
                cards.append(
                    f'<figure class="card"><figcaption>{_esc(title)}</figcaption><p class="note">No positive labels, so no curve.</p></figure>'
                )
                continue
            fig = _figure(6.4, 4.2)
            ax = fig.add_subplot()
            cmap = colormaps["tab20"]
            for j, g in enumerate(genres):
                if y[:, j].any():
                    p, r, _ = precision_recall_curve(y[:, j], s[:, j])
                    ax.plot(r, p, lw=0.9, alpha=0.75, color=cmap(j % 20), drawstyle="steps-post", label=g)
            present = y.any(axis=0)  # genres without a positive are left out, as in metrics.json
            yp, sp = y[:, present], s[:, present]
            p, r, _ = precision_recall_curve(yp.ravel(), sp.ravel())
            ap = average_precision_score(yp.ravel(), sp.ravel())
            ax.plot(r, p, lw=2.8, color="black", drawstyle="steps-post", label=f"micro (AP {ap:.3f})")
            ax.axhline(yp.mean(), color="grey", ls="--", lw=1, label=f"random ({yp.mean():.2f})")
            ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="Recall", ylabel="Precision")
            ax.set_title(f"{title} — micro AUPRC {ap:.3f}", fontsize=11)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False, ncol=1 if len(genres) <= 22 else 2)
            cards.append(
                f'<figure class="card">{_img(fig, "PR curves " + title)}<figcaption>{_esc(title)}: {y.shape[0]} items, {len(genres)} genres</figcaption></figure>'
            )
            self._figures += 1
        note = "" if any(n == "model" for n, _ in files) else self._not_produced(("scores/model.npz",))
        return (
            '<p class="caption">Precision–recall curves per scores file (paper Fig. 9): the micro-averaged curve in bold black, one thin line per genre, '
            "the dashed line is the label prevalence (a random scorer).</p>" + note + f'<div class="grid">{"".join(cards)}</div>'
        )

    # -- 5: t-SNE ----------------------------------------------------------------
    def _section_tsne(self) -> str:
        if not self.config.tsne:
            raise _Skipped("t-SNE is switched off in this report's config (<code>tsne: false</code>).")
        spaces = {}
        missing = []
        for space in ("coarse", "fine"):
            p = self._out / "embeddings" / f"{space}.npz"
            if p.is_file():
                spaces[space] = _load_npz(p, ("vectors", "labels"))
            else:
                missing.append(f"embeddings/{space}.npz")
        if not spaces:
            raise _NotProduced(*missing)
        from matplotlib import colormaps
        from matplotlib.lines import Line2D

        points, notes = {}, []
        for space, data in spaces.items():
            xy, note = _project_2d(np.asarray(data["vectors"], dtype=np.float64), seed=0)
            firsts = [(_genre_list(str(lab)) or ["(none)"])[0] for lab in data["labels"]]
            points[space] = (xy, firsts)
            if note:
                notes.append(f"{space}: {note}")
        genres = sorted({g for _, f in points.values() for g in f})
        cmap = colormaps["tab20" if len(genres) > 10 else "tab10"]
        colour = {g: cmap(i % cmap.N) for i, g in enumerate(genres)}
        fig = _figure(12, 5.4)
        axes = fig.subplots(1, 2)
        for ax, space in zip(axes, ("coarse", "fine")):
            ax.set_xticks([])
            ax.set_yticks([])
            if space not in points:
                ax.text(0.5, 0.5, f"embeddings/{space}.npz\nnot produced", ha="center", va="center", transform=ax.transAxes, color="grey")
                ax.set_title(f"{space}: missing")
                continue
            xy, firsts = points[space]
            for g in genres:
                idx = [i for i, f in enumerate(firsts) if f == g]
                if idx:
                    ax.scatter(xy[idx, 0], xy[idx, 1], s=14 if len(firsts) > 300 else 28, color=colour[g], alpha=0.8, linewidths=0, label=g)
            label = "coarse (after genre classification)" if space == "coarse" else "fine (after NT-Xent fine-tuning)"
            ax.set_title(f"{label}, N={len(firsts)}", fontsize=11)
        handles = [Line2D([], [], marker="o", ls="", color=colour[g], label=g) for g in genres]
        fig.legend(
            handles=handles,
            loc="outside lower center",
            ncol=min(len(genres), 10),
            fontsize=8,
            frameon=False,
            title="first genre",
            title_fontsize=8,
        )
        self._figures += 1
        missing_note = self._not_produced(tuple(missing)) if missing else ""
        note_html = "".join(f'<p class="note">{_esc(n)}</p>' for n in notes)
        return (
            '<p class="caption">t-SNE of the trailer embeddings from the coarse genre model and after fine-grained fine-tuning (paper Fig. 1), '
            "coloured by each trailer's first genre.</p>" + missing_note + note_html + _img(fig, "t-SNE of coarse and fine embeddings")
        )

    # -- 6: silhouette ---------------------------------------------------------------
    def _section_silhouette(self) -> str:
        path = self._out / "silhouette.csv"
        if not path.is_file():
            raise _NotProduced("silhouette.csv")
        rows = [(e, _num(r.get("silhouette")), _num(r.get("loss"))) for r in _read_csv(path) if (e := _num(r.get("epoch"))) is not None]
        pts = [(e, s) for e, s, _ in rows if s is not None]
        if not pts:
            return '<p class="note">silhouette.csv has no silhouette values.</p>'
        pts.sort()
        fig = _figure(7.5, 4)
        ax = fig.add_subplot()
        ax.plot([e for e, _ in pts], [s for _, s in pts], marker="o", ms=4, color="#1f5fa8", label="silhouette")
        first = pts[0]
        if first[0] == 0:
            ax.plot([first[0]], [first[1]], marker="*", ms=13, ls="", color="#1f5fa8", label="coarse model (epoch 0)")
        ax.margins(x=0.04, y=0.1)
        ax.set(xlabel="Fine-tuning epoch (0 = coarse model)", ylabel="Silhouette score (first genre)")
        ax.ticklabel_format(axis="y", useOffset=False)
        ax.grid(alpha=0.3)
        losses = sorted((e, loss) for e, _, loss in rows if loss is not None)
        if losses:
            ax2 = ax.twinx()
            ax2.plot([e for e, _ in losses], [loss for _, loss in losses], color="#d9822b", lw=1.2, ls="--", label="NT-Xent loss")
            ax2.set_ylabel("Loss", color="#d9822b")
            ax2.ticklabel_format(axis="y", useOffset=False)
            h1, l1 = ax.get_legend_handles_labels()
            h2, l2 = ax2.get_legend_handles_labels()
            ax.legend(h1 + h2, l1 + l2, fontsize=8, loc="upper right")
        self._figures += 1
        change = pts[-1][1] - first[1]
        trend = "falls" if change < 0 else "rises" if change > 0 else "stays flat"
        text = (
            f"<p>The silhouette score {trend} from {first[1]:.3f} (epoch {first[0]:g}) to {pts[-1][1]:.3f} (epoch {pts[-1][0]:g}). "
            "The paper (Fig. 6) reports a falling score: the tight coarse genre clusters break up into overlapping, finer-grained ones.</p>"
        )
        return _img(fig, "silhouette over epochs") + text

    # -- 7: retrieval ----------------------------------------------------------------
    def _section_retrieval(self) -> str:
        path = self._out / "retrieval.json"
        if not path.is_file():
            raise _NotProduced("retrieval.json")
        data = json.loads(path.read_text())
        neighbours = data.get("neighbours") or {}
        if not isinstance(neighbours, dict):
            raise ValueError("retrieval.json: 'neighbours' is not an object")
        examples = [str(q) for q in (data.get("examples") or list(neighbours))][: self.config.max_examples]
        k = int(_num(data.get("k")) or 0) or None
        items = {it.id: it for it in self._ctx.items}
        labels = self._labels_by_id()
        rows = []
        for q in examples:
            cards = [self._card(q, items.get(q), labels.get(q), "query", None)]
            found = neighbours.get(q)
            if found is None:
                cards.append('<div class="kf-note">no neighbours listed for this query</div>')
            for rank, nb in enumerate((found or [])[:k], 1):
                nid = str(nb.get("id")) if isinstance(nb, dict) else str(nb)
                score = _num(nb.get("score")) if isinstance(nb, dict) else None
                cards.append(self._card(nid, items.get(nid), labels.get(nid), f"#{rank}", score))
            rows.append(f'<div class="kf-row">{"".join(cards)}</div>')
        space, metric = _esc(str(data.get("space", "?"))), _esc(str(data.get("metric", "?")))
        intro = (
            f'<p class="caption">Nearest neighbours in the <strong>{space}</strong> embedding space by {metric} similarity (k={k if k else "?"}), '
            f"for {len(rows)} of {len(neighbours)} queries (paper Fig. 5). Each row: the query, then its neighbours with rank, similarity and genres; "
            "keyframes are the middle frame of each trailer's middle clip.</p>"
        )
        half = _num(data.get("half_top1"))
        if half is not None:
            intro += f"<p>Sanity check: {half:.1%} of trailers retrieve their own second half first from their first half (<code>half_top1</code>).</p>"
        return intro + ("".join(rows) if rows else '<p class="note">retrieval.json lists no example queries.</p>')

    def _labels_by_id(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for space in ("coarse", "fine"):
            p = self._out / "embeddings" / f"{space}.npz"
            if p.is_file():
                try:
                    data = _load_npz(p, ("ids", "labels"))
                    out.update({str(i): _genre_list(str(lab)) for i, lab in zip(data["ids"], data["labels"])})
                except Exception:  # noqa: BLE001
                    pass
        out.update({it.id: list(it.video.labels) for it in self._ctx.items})
        return out

    def _card(self, item_id: str, item: Any, genres: list[str] | None, tag: str, score: float | None) -> str:
        img = self._keyframe_html(item_id, item)
        meta = f'<span class="tag">{_esc(tag)}</span>' + (f' <span class="score">{score:.3f}</span>' if score is not None else "")
        gtxt = _esc(", ".join(genres)) if genres else "—"
        cls = "kf query" if tag == "query" else "kf"
        return f'<div class="{cls}" style="width:{self.config.keyframe_width}px">{img}<div class="meta">{meta}</div><div class="id" title="{_esc(item_id)}">{_esc(item_id)}</div><div class="genres">{gtxt}</div></div>'

    def _keyframe_html(self, item_id: str, item: Any) -> str:
        width = self.config.keyframe_width
        height = round(width * 9 / 16)
        path = getattr(getattr(item, "video", None), "path", None) if item is not None else None
        reason = "no video file"
        if path is not None and Path(path).is_file():
            try:
                rel = f"keyframes/{safe_id(item_id)}.jpg"
                target = self._out / rel
                if rel not in self._keyframes:
                    img = extract_keyframe(Path(path), _keyframe_time(item), width)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    img.convert("RGB").save(target, "JPEG", quality=85)
                    self._keyframes.append(rel)
                b64 = base64.b64encode(target.read_bytes()).decode("ascii")
                return f'<img src="data:image/jpeg;base64,{b64}" width="{width}" height="{height}" alt="keyframe of {_esc(item_id)}">'
            except Exception as e:  # noqa: BLE001
                reason = f"could not decode: {type(e).__name__}"
                self._ctx.log(f"[mmx_report] keyframe {item_id}: {type(e).__name__}: {e}")
        elif path is not None:
            reason = "video file not found"
        return f'<div class="placeholder" style="height:{height}px"><span>{_esc(item_id)}</span><small>{_esc(reason)}</small></div>'


def _keyframe_time(item: Any) -> float | None:
    """Seconds of the middle frame of the item's middle clip (None: the middle of the video)."""
    clips = list(getattr(item, "clips", None) or [])
    if not clips:
        return None
    c = clips[len(clips) // 2]
    return 0.5 * (float(c.start_time) + float(c.end_time))


def _project_2d(x: np.ndarray, seed: int = 0) -> tuple[np.ndarray, str]:
    """t-SNE to 2-D (perplexity min(30, (N-1)/3)); PCA for fewer than 5 points; a fixed subset above TSNE_MAX_POINTS."""
    n = len(x)
    x = x.reshape(n, -1) if n else x.reshape(0, 2)
    if n == 0:
        return np.zeros((0, 2)), "no embeddings"
    x = np.nan_to_num(x)
    if n < 5:
        centred = x - x.mean(axis=0)
        if n == 1 or not np.any(centred):
            return np.zeros((n, 2)), f"only {n} point(s): t-SNE needs at least 5, nothing to project"
        u, s, _ = np.linalg.svd(centred, full_matrices=False)
        xy = u[:, :2] * s[:2]
        if xy.shape[1] < 2:
            xy = np.hstack([xy, np.zeros((n, 1))])
        return xy, f"only {n} points: t-SNE needs at least 5, so a PCA projection is shown"
    from sklearn.manifold import TSNE

    note = ""
    if n > TSNE_MAX_POINTS:
        keep = np.sort(np.random.default_rng(seed).choice(n, TSNE_MAX_POINTS, replace=False))
        note = f"t-SNE on a fixed random subset of {TSNE_MAX_POINTS} of {n} points"
        xy_full = np.full((n, 2), np.nan)
        xy_full[keep] = TSNE(n_components=2, perplexity=min(30.0, (TSNE_MAX_POINTS - 1) / 3), init="pca", random_state=seed).fit_transform(
            x[keep]
        )
        return xy_full, note
    xy = TSNE(n_components=2, perplexity=min(30.0, (n - 1) / 3), init="pca", random_state=seed).fit_transform(x)
    return xy, note


def _scores_title(name: str) -> str:
    """How a ``scores/<name>.npz`` file is named in the report."""
    if name == "model":
        return "Full model"
    return "Linear probe" if name == PROBE_KEY else f"Expert: {name}"


def gating_verdict(rows: list[dict[str, str]], metric: str = "auprc_macro") -> str:
    """One honest sentence: did gating with all experts beat naive concatenation on ``metric``?"""
    all_experts = set()
    for r in rows:
        all_experts |= set(_genre_list(r.get("experts", "")))

    def pick(fusion: str) -> dict[str, str] | None:
        cands = [r for r in rows if r.get("fusion", "").lower() == fusion and _num(r.get(metric)) is not None]
        full = [r for r in cands if set(_genre_list(r.get("experts", ""))) == all_experts]
        pool = full or cands
        return max(pool, key=lambda r: len(_genre_list(r.get("experts", "")))) if pool else None

    gated, concat = pick("gated"), pick("concat")
    if gated is None or concat is None:
        missing = " and ".join(f"fusion={f}" for f, r in (("gated", gated), ("concat", concat)) if r is None)
        return f'<p class="verdict" id="gating-verdict">Gating vs naive concatenation cannot be compared: ablation.csv has no {missing} row with a {metric} value.</p>'
    g, c = _num(gated[metric]), _num(concat[metric])
    scope = "all experts" if set(_genre_list(gated.get("experts", ""))) == all_experts else "the most experts available"
    names = f"(<em>{_esc(gated.get('setting', 'gated'))}</em> vs <em>{_esc(concat.get('setting', 'concat'))}</em>)"
    if g > c:
        verb, cls = "beats", "pos"
    else:
        verb, cls = "does not beat", "neg"
    return (
        f'<p class="verdict {cls}" id="gating-verdict">On this data, collaborative gating with {scope} <strong>{verb}</strong> naive concatenation '
        f"on AUPRC macro: {g:.3f} vs {c:.3f} ({g - c:+.3f}) {names}. The paper reports gating ahead of concatenation by about 9 points.</p>"
    )


_CSS = """
:root { --fg:#1d2330; --muted:#5b6475; --line:#d9dee7; --bg:#ffffff; --soft:#f4f6fa; --accent:#1f5fa8; --pos:#1a7f37; --neg:#b42318; }
* { box-sizing: border-box; }
body { margin:0; background:var(--soft); color:var(--fg); font:14px/1.5 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width:1240px; margin:0 auto; padding:24px 28px 60px; background:var(--bg); min-height:100vh; }
header h1 { margin:0 0 2px; font-size:26px; }
header .sub { margin:0; color:var(--muted); font-family:ui-monospace, Menlo, Consolas, monospace; font-size:12px; }
nav ol { display:flex; flex-wrap:wrap; gap:4px 18px; padding:10px 0 12px; margin:12px 0 0; list-style:none; border-bottom:1px solid var(--line); }
nav a { color:var(--accent); text-decoration:none; font-size:13px; }
nav a:hover { text-decoration:underline; }
section { margin-top:30px; }
h2 { font-size:19px; margin:0 0 10px; padding-bottom:4px; border-bottom:2px solid var(--accent); }
p { margin:8px 0; max-width:95ch; }
.caption { color:var(--muted); font-size:13px; }
code { background:var(--soft); padding:1px 4px; border-radius:3px; font-size:12.5px; }
.scroll { overflow-x:auto; margin:8px 0; }
table { border-collapse:collapse; font-size:13px; font-variant-numeric:tabular-nums; }
th, td { padding:5px 10px; border-bottom:1px solid var(--line); text-align:right; white-space:nowrap; }
thead th { background:#e9edf4; border-bottom:2px solid #b9c2d0; text-align:center; font-weight:600; }
tbody th { text-align:left; font-weight:600; }
tbody tr:nth-child(even) { background:#fafbfd; }
table.tasks td { text-align:left; white-space:normal; }
table.wide { font-size:11.5px; }
table.wide th, table.wide td { padding:4px 5px; }
table.wide thead th { vertical-align:bottom; padding:6px 4px; }
table.wide td { min-width:34px; }
.vert { writing-mode:vertical-rl; transform:rotate(180deg); white-space:nowrap; display:inline-block; }
table.ablation td:nth-child(2), table.ablation td:nth-child(3) { text-align:left; }
table.wide tbody tr:last-child { background:#eef4fc; }
h3 { font-size:15px; margin:16px 0 4px; }
.pos { color:var(--pos); }
.neg { color:var(--neg); }
details { margin:10px 0; }
summary { cursor:pointer; color:var(--accent); font-size:13px; }
.note { background:#fff8e6; border-left:4px solid #e3a008; padding:8px 12px; color:#5c4500; font-size:13px; }
.note.error { background:#fdecea; border-left-color:var(--neg); color:#7a1a12; }
.verdict { font-size:14px; padding:8px 12px; border-left:4px solid var(--line); background:var(--soft); }
.verdict.pos { border-left-color:var(--pos); color:var(--fg); }
.verdict.neg { border-left-color:var(--neg); color:var(--fg); }
img.fig { max-width:100%; height:auto; display:block; margin:8px 0; }
.grid { display:grid; grid-template-columns:repeat(auto-fill, minmax(540px, 1fr)); gap:14px; }
figure.card { margin:0; padding:8px; border:1px solid var(--line); border-radius:6px; background:#fff; }
figure.card img.fig { margin:0 auto; }
figcaption { font-size:12px; color:var(--muted); text-align:center; }
.kf-row { display:flex; flex-wrap:wrap; gap:12px 10px; padding:10px 4px 12px; border-bottom:1px solid var(--line); align-items:flex-start; }
.kf { flex:0 0 auto; font-size:11.5px; }
.kf img { display:block; border-radius:4px; border:1px solid var(--line); object-fit:contain; background:#111; }
.kf.query img, .kf.query .placeholder { outline:3px solid var(--accent); outline-offset:1px; }
.kf .meta { margin-top:4px; display:flex; justify-content:space-between; }
.kf .tag { font-weight:600; color:var(--accent); }
.kf .score { font-variant-numeric:tabular-nums; color:var(--muted); }
.kf .id { font-family:ui-monospace, Menlo, Consolas, monospace; overflow:hidden; text-overflow:ellipsis; white-space:nowrap; }
.kf .genres { color:var(--muted); line-height:1.3; }
.kf-note { align-self:center; color:var(--muted); font-size:12px; }
.placeholder { background:#c9ced6; border-radius:4px; display:flex; flex-direction:column; align-items:center; justify-content:center; color:#3a404b; text-align:center; padding:4px; overflow:hidden; }
.placeholder span { font-family:ui-monospace, Menlo, Consolas, monospace; font-size:11px; word-break:break-all; }
.placeholder small { font-size:10px; color:#5b6475; }
"""


COMPONENTS = [MMXReport]
