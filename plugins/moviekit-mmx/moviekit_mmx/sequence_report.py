"""Two sections of ``report.html``: the sequence-length study (supplementary Table 5, from ``seqlen.csv``) and
the genre scores of each sequence along a few trailers (Fig. 8, from ``sequence_predictions/<id>.json``).

Each is a function of the running :class:`moviekit_mmx.report.MMXReport` (its run directory, items and
figure counter) and raises the report's "not produced" note when its input is absent.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from .report import _esc, _figure, _fmt, _img, _NotProduced, _num, _read_csv, _Skipped, _table, safe_id
from .seqlen import PAPER_TABLE5, SEQLEN_FILE
from .sequence_genre import SEQUENCE_DIR

#: Table 5's four columns, then the other AUPRCs, as (seqlen.csv column, header).
_COLUMNS = [
    ("f1_weighted", "F1<sub>w</sub>"),
    ("auprc_weighted", "AUPRC<sub>w</sub>"),
    ("precision_weighted", "P<sub>w</sub>"),
    ("recall_weighted", "R<sub>w</sub>"),
    ("auprc_micro", "AUPRC micro"),
    ("auprc_macro", "AUPRC macro"),
]


def section_seqlen(report: Any) -> str:
    """Table 5: one row per sequence length, best F1_w in bold, with the paper's own row beside it."""
    path = report._out / SEQLEN_FILE
    if not path.is_file():
        raise _NotProduced(SEQLEN_FILE)
    rows = [r for r in _read_csv(path) if _num(r.get("clips_per_sequence")) is not None]
    if not rows:
        return f'<p class="note">{SEQLEN_FILE} has no rows.</p>'
    best = max((v for r in rows if (v := _num(r.get("f1_weighted"))) is not None), default=None)
    out = []
    for r in rows:
        length = int(_num(r["clips_per_sequence"]))
        cells = [str(length)]
        for k, _ in _COLUMNS:
            v = _num(r.get(k))
            cells.append(f"<strong>{_fmt(v)}</strong>" if k == "f1_weighted" and v is not None and v == best else _fmt(v))
        cells.append(f"{_esc(r.get('trailers_with_a_sequence', '–'))} / {_esc(r.get('trailers', '–'))}")
        cells.append(_esc(r.get("model", "")))
        paper = PAPER_TABLE5.get(length)
        cells.append(" / ".join(f"{v:.3f}" for v in paper) if paper else "–")
        out.append(cells)
    header = [
        "Clips per sequence",
        *(h for _, h in _COLUMNS),
        "Trailers with a whole sequence",
        "Model",
        "Paper (F1<sub>w</sub> / AUPRC<sub>w</sub> / P<sub>w</sub> / R<sub>w</sub>)",
    ]
    return _table(header, out, "metrics seqlen") + (
        '<p class="caption">The sequence-length study of the supplementary (Table 5): the encoder rebuilt with each <code>clips_per_sequence</code> '
        "and trained like <code>mmx_genre</code>, scored on the same split; AUPRC<sub>w</sub> is the paper's (PRC)<sub>w</sub>. <em>Model</em> says "
        "whether a row is the run's <code>mmx_genre</code> model itself or trained for the table. A trailer shorter than one sequence keeps one "
        "zero-padded sequence. The paper's figures are its MMX-Trailer-20 test split, not this data; it finds 9 clips best.</p>"
    )


def section_sequences(report: Any, examples: int) -> str:
    """Fig. 8: for a few trailers (test split first), the genre scores of each sequence as a heat map and a table."""
    if examples <= 0:
        raise _Skipped("Per-sequence genres switched off (<code>sequence_examples: 0</code>).")
    folder = report._out / SEQUENCE_DIR
    if not folder.is_dir():
        raise _NotProduced(f"{SEQUENCE_DIR}/")
    items = sorted(report._ctx.items, key=lambda it: it.video.split != "test")
    shown, level = [], None
    for it in items:
        path = folder / f"{safe_id(it.id)}.json"
        if not path.is_file():
            continue
        rec = json.loads(path.read_text())
        if not rec.get("sequences"):
            continue
        level = level or rec.get("level")
        shown.append(_trailer(report, rec))
        if len(shown) == examples:
            break
    if not shown:
        return f'<p class="note">{SEQUENCE_DIR}/ holds no trailer with sequences for the items of this run.</p>'
    how = (
        "trained at the sequence level (<code>level: sequence</code>, §3.2): each sequence's genre logits, pooled into the trailer's"
        if level == "sequence"
        else "from the trailer-level model (the default): each sequence given to it alone, as a one-sequence trailer, an approximation "
        "the paper's §3.2 trains for with <code>level: sequence</code>"
    )
    return (
        f'<p class="caption">Genre scores of each sequence along the trailer (paper Fig. 8), {how}. Genres the trailer is labelled with are '
        "in green; the others a sequence predicts (at the task threshold) are alternatives the sequence suggests on its own. "
        f"Every trailer's file is <code>{SEQUENCE_DIR}/&lt;id&gt;.json</code>.</p>" + "".join(shown)
    )


def _trailer(report: Any, rec: dict[str, Any]) -> str:
    genres = [str(g) for g in rec.get("genres") or []]
    given = set(rec.get("given") or [])
    seqs = rec["sequences"]
    scores = np.array([s.get("scores") or [0.0] * len(genres) for s in seqs], dtype=float)  # (S, G)
    fig = _figure(min(14.0, 2.5 + 0.35 * len(seqs)), 1.0 + 0.2 * len(genres))
    ax = fig.add_subplot()
    im = ax.imshow(scores.T, aspect="auto", vmin=0, vmax=1, cmap="viridis", interpolation="nearest")
    ax.set_yticks(range(len(genres)), genres, fontsize=7)
    for tick, g in zip(ax.get_yticklabels(), genres):
        if g in given:
            tick.set_color("#1a7f37")
            tick.set_fontweight("bold")
    step = max(1, len(seqs) // 20)
    ax.set_xticks(range(0, len(seqs), step), [str(seqs[i].get("sequence")) for i in range(0, len(seqs), step)], fontsize=7)
    ax.set_xlabel("Sequence")
    fig.colorbar(im, ax=ax, fraction=0.03, label="score")
    report._figures += 1

    def tagged(names: list[str]) -> str:
        return ", ".join(f'<span class="pos">{_esc(g)}</span>' if g in given else _esc(g) for g in names) or "—"

    rows = []
    for s in seqs:
        start, end = _num(s.get("start_time")), _num(s.get("end_time"))
        span = f"{start:.1f}–{end:.1f} s" if start is not None and end is not None else "–"
        rows.append([str(s.get("sequence")), span, tagged(list(s.get("predicted") or []))])
    trailer = rec.get("trailer") or {}
    head = (
        f"<h3>{_esc(str(rec.get('id')))} <small>({_esc(str(rec.get('split') or 'no split'))})</small></h3>"
        f"<p>Labelled: {tagged(sorted(given))}. Predicted for the whole trailer: {tagged(list(trailer.get('predicted') or []))}.</p>"
    )
    table = _table(["Sequence", "Time", "Predicted genres"], rows, "metrics")
    return (
        head
        + _img(fig, f"sequence genre scores of {rec.get('id')}")
        + f"<details><summary>Per-sequence predictions</summary>{table}</details>"
    )
