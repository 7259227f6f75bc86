"""``mmx_seqlen``: the sequence-length study of MMX-Trailer-20 (supplementary §5, Table 5).

The encoder owns the sequence length (``clips_per_sequence`` of ``mmx_gated``); for each length the
recipe's encoder is rebuilt with that length and trained exactly like ``mmx_genre`` (the ablation's
:func:`moviekit_mmx.tasks.variant_scores`: the run's ``mmx_genre`` model itself for the length it was
trained with, when trained alike), and scored on the evaluation split with the same metrics.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import Field, field_validator

from moviekit import MoviekitError, Task, TaskResult, group_windows, multi_hot, multilabel_metrics, write_csv

from .tasks import GenreTrainConfig, _save_scores, _setup, _train_splits, variant_scores

#: Table 5's columns first (F1_w, AU(PRC)_w, P_w, R_w), then the other global metrics.
COLUMNS = ("f1_weighted", "auprc_weighted", "precision_weighted", "recall_weighted", "auprc_micro", "auprc_macro")

#: Table 5 as printed: sequence length -> (F1_w, AU(PRC)_w, P_w, R_w), on MMX-Trailer-20's test split.
PAPER_TABLE5: dict[int, tuple[float, float, float, float]] = {
    1: (0.456, 0.451, 0.475, 0.484),
    5: (0.493, 0.518, 0.428, 0.625),
    9: (0.564, 0.583, 0.554, 0.611),
    20: (0.495, 0.503, 0.493, 0.576),
}

#: The file the task writes in the run directory, and its key in ``metrics.json``.
SEQLEN_FILE = "seqlen.csv"
METRICS_KEY = "sequence_length"


def seqlen_row(length: int, y_true: Any, scores: Any, threshold: float, with_sequence: int, source: str) -> dict[str, Any]:
    """One row of Table 5: the global metrics of ``scores`` at ``threshold`` for sequence length ``length``."""
    m = multilabel_metrics(y_true, scores, threshold)
    return {
        "clips_per_sequence": length,
        **{k: float(m[k]) for k in COLUMNS},
        "trailers_with_a_sequence": with_sequence,
        "trailers": len(y_true),
        "model": source,
    }


class SequenceLength(Task):
    """Table 5 of MMX-Trailer-20 (supplementary §5): genre classification with 1, 5, 9 and 20 clips per sequence.

    For each of ``lengths`` the recipe's ``mmx_gated`` encoder is rebuilt with that ``clips_per_sequence`` and
    trained like ``mmx_genre`` (same settings and splits; the run's ``mmx_genre`` model is reused for its own
    length when trained alike), then scored on the test split (val without one). Writes ``seqlen.csv`` (one row
    per length: F1_w, AUPRC_w, P_w, R_w, AUPRC micro and macro, how many evaluated trailers hold at least one whole
    sequence, and which model), ``seqlen/scores_<L>.npz``, and the rows under ``sequence_length`` in
    ``metrics.json`` (merged into the file ``mmx_genre`` wrote; put this task after it). Trailers shorter than one
    sequence keep one zero-padded sequence, as the encoder does everywhere."""

    name = "mmx_seqlen"
    requires = frozenset({"encoder", "head"})

    @classmethod
    def example_config(cls, tmp_path):
        return {"epochs": 2, "lengths": [1, 3]}

    @classmethod
    def example_setup(cls, tmp_path):
        return _setup()

    class Config(GenreTrainConfig):
        lengths: list[int] = Field(
            default_factory=lambda: [1, 5, 9, 20],
            min_length=1,
            description="clips per sequence to compare (Table 5: 1, 5, 9, 20); each trains its own encoder",
        )

        @field_validator("lengths")
        @classmethod
        def _check_lengths(cls, v: list[int]) -> list[int]:
            bad = [n for n in v if n < 1]
            if bad:
                raise ValueError(f"sequence lengths must be at least 1 clip, got {bad}")
            if len(set(v)) != len(v):
                raise ValueError(f"sequence lengths repeat: {v}")
            return v

    def run(self, ctx) -> TaskResult:
        cfg = self.config
        if ctx.encoder is None or "clips_per_sequence" not in type(ctx.encoder.config).model_fields:
            raise MoviekitError("mmx_seqlen needs the mmx_gated encoder (its clips_per_sequence is the sequence length)")
        train, val, evaluated, test, dims = _train_splits(ctx)
        y_test = multi_hot([it.video.labels for it in test], ctx.vocabulary)
        clips = [it.features.num_clips if it.features is not None else len(it.clips) for it in test]
        rows, files = [], []
        for length in cfg.lengths:
            scores, source = variant_scores(ctx, cfg, f"seqlen-{length}", {"clips_per_sequence": length}, dims, train, val, test)
            ctx.log(f"sequence length {length}: {'the mmx_genre model' if source == 'mmx_genre' else source}")
            whole = sum(1 for n in clips if group_windows(min(n, cfg.max_clips or n), length))
            rows.append(seqlen_row(length, y_test, scores, cfg.threshold, whole, source))
            rel = f"seqlen/scores_{length}.npz"  # not under scores/, which the report shows as experts
            _save_scores(ctx.out_dir / rel, test, ctx.vocabulary, scores)
            files.append(rel)
        write_csv(ctx.out_dir / SEQLEN_FILE, rows)
        path = ctx.out_dir / "metrics.json"
        try:
            merged = json.loads(path.read_text()) if path.is_file() else {}
        except ValueError as e:
            raise MoviekitError(f"{path}: not valid JSON ({e}); rerun the mmx_genre task that writes it") from e
        merged = merged if isinstance(merged, dict) else {}
        merged[METRICS_KEY] = {
            "description": "MMX-Trailer-20 Table 5: each clips_per_sequence trained like mmx_genre; F1_w, AUPRC_w, P_w, R_w first",
            "evaluated_split": evaluated,
            "threshold": cfg.threshold,
            "rows": rows,
        }
        path.write_text(json.dumps(merged, indent=2, default=float))
        best = max(rows, key=lambda r: r["f1_weighted"])
        metrics: dict[str, Any] = {f"f1_weighted_len{r['clips_per_sequence']}": r["f1_weighted"] for r in rows}
        metrics.update(best_length=best["clips_per_sequence"], evaluated_split=evaluated)
        return TaskResult(metrics=metrics, files=[SEQLEN_FILE, "metrics.json", *files])


COMPONENTS = [SequenceLength]
