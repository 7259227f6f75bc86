"""Genre scores for each sequence along a trailer (MMX-Trailer-20 §3.2 and the supplementary's Fig. 8).

Every sequence is classified on its own: ``k`` and the genre MLP ``l`` see it alone in the bottleneck's
first slot, like a one-sequence trailer (:meth:`TrailerModel.per_sequence`).  Which model that is depends
on the genre task's ``level``:

* ``trailer`` (default, the paper's model): ``k`` and ``l`` were trained on whole trailers, so the
  sequence scores are an inference-time approximation; the trailer's own score is ``l(k(all sequences))``.
* ``sequence`` (§3.2's variant, "adjusting k so that x becomes the logits"): ``k`` and ``l`` were trained
  on the sequences' logits pooled into the trailer's (:func:`moviekit_mmx.model.pool_sequence_logits`), so
  the trailer's score is exactly ``sigmoid(pool(sequence logits))``.

Written per trailer as ``sequence_predictions/<id>.json`` (the id made file-name safe) and as one table,
``sequence_predictions.csv``.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from moviekit import batches, pad_features, to_device, write_csv

#: The folder of the per-trailer files in the run directory.
SEQUENCE_DIR = "sequence_predictions"


def sequence_records(ctx: Any, encoder: Any, head: Any, cfg: Any) -> list[dict[str, Any]]:
    """One record per trailer of ``ctx.items``: its given genres, its trailer-level scores and, per whole
    sequence (clip span, times), the genre logits, sigmoid scores and the genres at ``cfg.threshold``."""
    import torch

    from .model import genre_modules

    net, out = genre_modules(encoder, head, cfg.level, cfg.sequence_pooling)
    vocab, thr = list(ctx.vocabulary), cfg.threshold
    records = []
    for batch in batches(ctx.items, cfg.batch_size):
        for m in (encoder, head, net, out):
            m.eval()
        feats, mask = to_device(*pad_features(batch, max_clips=cfg.max_clips), ctx.device)
        with torch.no_grad(), ctx.autocast():
            emb, owners = encoder.per_sequence(feats, mask)
            seq_logits = head(emb).float().cpu().numpy()
            trailer_logits = out(net(feats, mask)).float().cpu().numpy()
        per: dict[int, list[tuple[int, np.ndarray]]] = {}
        for (b, s), z in zip(owners, seq_logits):
            per.setdefault(b, []).append((s, z))
        for b, it in enumerate(batch):
            n = int(mask[b].sum())
            spans = encoder.sequence_spans(n)
            sequences = []
            for s, z in per.get(b, []):
                lo, hi = spans[s] if s < len(spans) else (0, n)  # a trailer shorter than one sequence: all its clips
                clips = it.clips[lo:hi]
                p = _sigmoid(z)
                sequences.append(
                    {
                        "sequence": s,
                        "clips": [lo, hi],
                        "start_time": round(clips[0].start_time, 3) if clips else None,
                        "end_time": round(clips[-1].end_time, 3) if clips else None,
                        "logits": _round(z),
                        "scores": _round(p),
                        "predicted": [g for g, q in zip(vocab, p) if q >= thr],
                    }
                )
            p = _sigmoid(trailer_logits[b])
            records.append(
                {
                    "id": it.id,
                    "split": it.video.split or "",
                    "given": list(it.video.labels),
                    "level": cfg.level,
                    **({"pooling": cfg.sequence_pooling} if cfg.level == "sequence" else {}),
                    "threshold": thr,
                    "genres": vocab,
                    "trailer": {"scores": _round(p), "predicted": [g for g, q in zip(vocab, p) if q >= thr]},
                    "sequences": sequences,
                }
            )
    return records


def write_sequence_predictions(ctx: Any, encoder: Any, head: Any, cfg: Any) -> list[str]:
    """``sequence_predictions/<id>.json`` per trailer and ``sequence_predictions.csv`` (one row per sequence);
    returns the files relative to the run directory."""
    from .report import safe_id

    records = sequence_records(ctx, encoder, head, cfg)
    folder = ctx.out_dir / SEQUENCE_DIR
    folder.mkdir(parents=True, exist_ok=True)
    files, rows = [], []
    for rec in records:
        rel = f"{SEQUENCE_DIR}/{safe_id(rec['id'])}.json"
        (ctx.out_dir / rel).write_text(json.dumps(rec, indent=1))
        files.append(rel)
        for seq in rec["sequences"]:
            scores = np.asarray(seq["scores"])
            rows.append(
                {
                    "id": rec["id"],
                    "sequence": seq["sequence"],
                    "start_time": "" if seq["start_time"] is None else seq["start_time"],
                    "end_time": "" if seq["end_time"] is None else seq["end_time"],
                    "predicted": "|".join(seq["predicted"]),
                    "top": "|".join(rec["genres"][i] for i in np.argsort(-scores, kind="stable")[:3]),
                    "scores": json.dumps(dict(zip(rec["genres"], seq["scores"]))),
                }
            )
    write_csv(ctx.out_dir / "sequence_predictions.csv", rows, empty_fields=("id", "sequence"))
    return ["sequence_predictions.csv", *files]


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(z, dtype=np.float64)))


def _round(v: np.ndarray) -> list[float]:
    return [round(float(x), 5) for x in v]
