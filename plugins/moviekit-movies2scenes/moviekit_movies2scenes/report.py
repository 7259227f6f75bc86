"""``m2s_report``: one HTML page of a Movies2Scenes run: retrieval table, scene pairs with keyframes, SBD precision-recall curve, heads."""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from moviekit import Config, Task, TaskResult


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def window_strip(path: Path, frames: list[int], height: int = 48) -> np.ndarray | None:
    """The frames (by index) of a video side by side, decoded with PyAV; None when unreadable."""
    import av

    want, got = set(frames), {}
    try:
        with av.open(str(path)) as c:
            for i, f in enumerate(c.decode(video=0)):
                if i in want:
                    got[i] = f.to_ndarray(format="rgb24")
                if i > max(want):
                    break
    except Exception:  # noqa: BLE001 - a report never fails a run over a picture
        return None
    if not got:
        return None
    ims = [got[i] for i in frames if i in got]
    return np.concatenate(ims, axis=1)


class Report(Task):
    """Writes `report.html`: the place-retrieval table (learned vs frame-average vs random), example scene pairs with their keyframes, the SBD precision-recall curve, tagging and head results."""

    name = "m2s_report"

    class Config(Config):
        pairs: int = Field(6, ge=0, description="example scene pairs shown (the best-scored ones)")
        metadata: str = Field("cowatch", description="whose scene pairs to show")

    def run(self, ctx: Any) -> TaskResult:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        out = ctx.out_dir
        parts = [f"<h1>Movies2Scenes run: {html.escape(ctx.recipe.name)}</h1>", f"<p>{len(ctx.items)} movies.</p>"]
        ret = out / "place_retrieval.json"
        if ret.is_file():
            table = json.loads(ret.read_text())
            names = list(table)
            ks = [k for k in table[names[0]]["all"] if k.startswith("p@")]
            head = "".join(f"<th>{html.escape(n)} {k}</th>" for n in names for k in ks)
            rows = []
            for place in [*sorted(table[names[0]]["per_place"]), "all queries"]:
                cells = []
                for n in names:
                    r = table[n]["all"] if place == "all queries" else table[n]["per_place"][place]
                    cells += [f"<td>{r[k]:.1f}</td>" for k in ks]
                q = (table[names[0]]["all"] if place == "all queries" else table[names[0]]["per_place"][place])["queries"]
                rows.append(f"<tr><td>{html.escape(place)}</td><td>{q}</td>{''.join(cells)}</tr>")
            parts.append(
                f"<h2>Place retrieval (Table 2): precision %</h2><table border=1 cellspacing=0><tr><th>place</th><th>queries</th>{head}</tr>{''.join(rows)}</table>"
            )
        pr = out / "sbd_pr.json"
        if pr.is_file():
            curves = json.loads(pr.read_text())
            fig, ax = plt.subplots(figsize=(4.5, 3.5))
            for n, cv in curves.items():
                ax.plot(cv["recall"], cv["precision"], label=n)
            ax.set_xlabel("recall")
            ax.set_ylabel("precision")
            ax.set_title("Scene boundary detection (test)")
            ax.legend()
            parts.append(f"<h2>Scene boundary detection</h2><img src='{_png(fig)}'>")
            plt.close(fig)
        for fname, title in (
            ("sbd.json", "SBD metrics"),
            ("place_tagging.json", "Place tagging (mAP)"),
            ("scene_heads.json", "Scene heads (LVU-style, age-style)"),
        ):
            f = out / fname
            if f.is_file():
                m = json.loads(f.read_text())
                rows = "".join(
                    f"<tr><td>{html.escape(k)}</td><td>{v:.4f}</td></tr>"
                    if isinstance(v, float)
                    else f"<tr><td>{html.escape(k)}</td><td>{html.escape(str(v))}</td></tr>"
                    for k, v in m.items()
                )
                parts.append(f"<h2>{title}</h2><table border=1 cellspacing=0>{rows}</table>")
        pairs = (ctx.shared.get("m2s_scene_pairs") or {}).get(self.config.metadata) or []
        by_id = {it.id: it for it in ctx.items}
        shown = 0
        if pairs and self.config.pairs:
            parts.append(f"<h2>Example scene pairs ({html.escape(self.config.metadata)}), best scores</h2>")
            for p in sorted(pairs, key=lambda p: -p["score"]):
                if shown >= self.config.pairs:
                    break
                strips = []
                for m, s, n in ((p["a"], p["i"], p["len_a"]), (p["b"], p["j"], p["len_b"])):
                    it = by_id.get(m)
                    if it is None or it.video.path is None:
                        continue
                    mids = [(c.start_frame + c.end_frame) // 2 for c in it.clips[s : s + n]]
                    strip = window_strip(Path(it.video.path), mids)
                    if strip is not None:
                        strips.append((m, s, strip))
                if len(strips) != 2:
                    continue
                fig, axes = plt.subplots(2, 1, figsize=(6, 2.4))
                for ax, (m, s, strip) in zip(axes, strips, strict=True):
                    ax.imshow(strip)
                    ax.set_title(f"{m}, shots {s}..", fontsize=8)
                    ax.axis("off")
                parts.append(f"<p>score {p['score']:.3f}</p><img src='{_png(fig)}'>")
                plt.close(fig)
                shown += 1
        (out / "report.html").write_text("<html><body style='font-family:sans-serif'>" + "\n".join(parts) + "</body></html>")
        return TaskResult(metrics={"example_pairs": shown}, files=["report.html"])
