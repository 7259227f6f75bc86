"""MMX-Trailer-20 tasks: coarse genre classification, the ablation, NT-Xent fine-grained
fine-tuning, and faiss retrieval over the trailer embeddings.

They hand the trained networks on as :class:`moviekit.TrainedModel` records (``coarse`` from
``mmx_genre``, ``fine`` from ``mmx_finetune``; ``models/<name>.json + .safetensors`` in the run
directory) and write their outputs into the run directory (see each task's docstring), where
``mmx_report`` finds them.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

import moviekit
from moviekit import (
    AUPRC_NAMES,
    Config,
    IndexConfig,
    ModelPart,
    MoviekitError,
    Task,
    TaskResult,
    TrainConfig,
    TrainedModel,
    all_positive_baseline,
    auprc_note,
    classification_report,
    embed_items,
    evaluation_split,
    feature_dims,
    fit_multilabel,
    mlp,
    multi_hot,
    multilabel_metrics,
    pad_features,
    predict_scores,
    run_batched,
    selection_split,
    to_device,
    train_loop,
    warmup_cosine,
    write_classification_report,
    write_csv,
)
from moviekit.models import init_from

from .probe import PROBE_DESCRIPTION, PROBE_KEY, PROBE_SETTING, mean_features, probe_scores, probe_verdict

HEADLINE = ("auprc_micro", "auprc_macro", "auprc_weighted", "precision_weighted", "recall_weighted", "f1_weighted")

#: The thresholded metrics of the paper's "Random" row (Table 2): predicting every genre has no ranking, so no AUPRC.
PAPER_RANDOM_KEYS = ("precision_weighted", "recall_weighted", "f1_weighted")

#: The name of that row in ``ablation.csv`` and the report.
PAPER_RANDOM_SETTING = "random (paper: every genre)"


def paper_metrics(metrics: dict[str, Any], rows: list[dict[str, Any]], y_test: np.ndarray) -> None:
    """Adds the paper's random row (predict every genre, MMX-Trailer-20 §4 / Table 2) and the AUPRC
    naming note to ``metrics``, and each genre's all-positive F1 (``2p/(1+p)``) to ``rows``."""
    paper = all_positive_baseline(y_test)
    paper["description"] = "MMX-Trailer-20 Table 2 'Random': every genre predicted for every trailer (R_w = 1, per genre F1 = 2p/(1+p))"
    metrics["paper_random"] = paper
    metrics["auprc_names"] = dict(AUPRC_NAMES)
    metrics["auprc_note"] = auprc_note(metrics)
    for row, f1 in zip(rows, paper["f1_per_class"], strict=True):
        row["paper_random_f1"] = f1


class GenreTrainConfig(TrainConfig):
    """The paper's coarse-genre training: BCE with positive weights, Adam + AMSGrad, lr 3e-5, batch 32, 200 epochs, threshold 0.3."""

    epochs: int = Field(200, ge=1)
    lr: float = Field(3e-5, gt=0, description="learning rate")
    batch_size: int = Field(32, ge=1)
    amsgrad: bool = Field(True, description="Adam with the AMSGrad variant")
    threshold: float = Field(0.3, gt=0, lt=1, description="sigmoid threshold for predicted genres")
    level: Literal["trailer", "sequence"] = Field(
        "trailer",
        description="trailer: k over the trailer's sequences, then l (the paper's model, §3.2); sequence: k and l give genre "
        "logits for each sequence on its own, pooled into the trailer's and trained so (§3.2's sequence-level variant)",
    )
    sequence_pooling: Literal["sum", "mean"] = Field(
        "sum", description="with level: sequence, a trailer's logits are the sum (§3.2 sums sequences) or the mean of its sequences' logits"
    )
    linear_probe: bool = Field(
        True, description="also fit and score the linear-probe baseline (logistic regression on averaged expert features)"
    )
    probe_c: float = Field(
        1.0, gt=0, description="inverse L2 strength C of the linear probe's logistic regression (scikit-learn's default)"
    )
    probe_max_iter: int = Field(1000, ge=1, description="lbfgs iterations of each of the linear probe's logistic regressions")


#: Fields of GenreTrainConfig that do not change the trained network (the ablation compares the rest).
_NOT_TRAINING = {"threshold", "checkpoint_every", "linear_probe", "probe_c", "probe_max_iter"}


# -- helpers ---------------------------------------------------------------------------


def _train_splits(ctx: Any) -> tuple[list, list, str, list, dict[str, tuple[int, ...]]]:
    """Train items, selection items, the evaluated split's name and items (the core's rule:
    test, else val; never train), and the feature dims."""
    train = ctx.split("train")
    if not train:
        raise MoviekitError("no train items to train on")
    evaluated, test = evaluation_split(ctx)
    return train, selection_split(ctx, evaluated), evaluated, test, feature_dims(train)


def _parts(ctx: Any, comp: Any, dims: dict) -> tuple[ModelPart, ModelPart]:
    """The model-record parts of ``comp``'s encoder and the recipe's genre head."""
    encoder = ModelPart(
        kind="encoder",
        component={"use": comp.name, **comp.config.model_dump(mode="json")},
        build={"dims": {k: list(v) for k, v in dims.items()}},
    )
    head = ModelPart(
        kind="head",
        component={"use": ctx.head.name, **ctx.head.config.model_dump(mode="json")},
        build={"in_dim": comp.output_dim(), "out_dim": len(ctx.vocabulary)},
    )
    return encoder, head


def _fit(
    ctx: Any, comp: Any, dims: dict, train: list, val: list, cfg: Any, tag: str, init: str | None = None
) -> tuple[Any, Any, dict[str, Any]]:
    """Build ``comp``'s encoder and the recipe's head (started from model ``init`` when given), and
    train them for multi-label genres."""
    encoder = comp.build(dims)
    head = ctx.head.build(comp.output_dim(), len(ctx.vocabulary))
    if init:
        enc_part, head_part = _parts(ctx, comp, dims)
        started = init_from(ctx.model(init), {"encoder": (enc_part, encoder), "head": (head_part, head)}, vocabulary=ctx.vocabulary)
        ctx.log(f"{tag}: started from model '{init}' ({', '.join(started)})")
    encoder, head = encoder.to(ctx.device), head.to(ctx.device)
    history = fit_multilabel(ctx, *_genre_pair(encoder, head, cfg), train, val, cfg, tag=tag)
    return encoder, head, history


def _genre_pair(encoder: Any, head: Any, cfg: Any) -> tuple[Any, Any]:
    """``(encoder, head)`` giving trailer logits at the config's ``level`` (:func:`moviekit_mmx.model.genre_modules`)."""
    from .model import genre_modules

    try:
        return genre_modules(encoder, head, cfg.level, cfg.sequence_pooling)
    except ValueError as e:
        raise MoviekitError(f"level: {e}") from e


def _variant_seed(seed: int, setting: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{setting}".encode()).digest()[:8], "little") >> 1


def variant_scores(
    ctx: Any, cfg: Any, setting: str, update: dict[str, Any], dims: dict, train: list, val: list, test: list
) -> tuple[np.ndarray, str]:
    """Test scores of the recipe's encoder with ``update`` applied to its config (an ablation setting, a
    sequence length), trained like ``mmx_genre`` with ``cfg``; and where they come from: ``"mmx_genre"`` (this
    run's model is that very variant: :func:`genre_model_scores`), ``"store"`` (kept by an interrupted run of
    this task) or ``"trained"``.  Each variant trains from its own seed, so a resumed task equals a fresh one."""
    import torch

    variant = ctx.encoder.config.model_copy(update=update)
    coarse = genre_model_scores(ctx, cfg, variant, dims, train, test)
    if coarse is not None:
        return coarse, "mmx_genre"
    key = f"{ctx.task_key}-{setting}"
    cached = ctx.store.get("mmx-ablation", key)
    if cached is not None:
        return cached, "store"
    with torch.random.fork_rng():
        torch.manual_seed(_variant_seed(ctx.seed, setting))
        encoder, head, _ = _fit(ctx, type(ctx.encoder)(variant), dims, train, val, cfg, tag=f"mmx-{setting}")
    scores = predict_scores(*_genre_pair(encoder, head, cfg), test, ctx, cfg.batch_size, cfg.max_clips)
    ctx.store.put("mmx-ablation", key, scores)
    return scores, "trained"


def genre_model_scores(ctx: Any, cfg: Any, encoder_config: Any, dims: dict, train: list, test: list) -> np.ndarray | None:
    """The test scores of this run's ``coarse`` mmx_genre model when it is exactly the model ``cfg`` and
    ``encoder_config`` would train (same items, encoder config and training settings, not started from another model)."""
    model = ctx.models.get("coarse")
    if model is None or model.record.task != GenreClassification.name:
        return None
    meta = model.record.meta
    if meta.get("init") or meta.get("train") != _train_fields(cfg) or meta.get("data") != _data_digest(ctx, train, test):
        return None
    encoder = model.record.parts["encoder"]

    def normal(c: dict[str, Any], d: dict) -> dict[str, Any]:
        return {**{k: v for k, v in c.items() if k != "use"}, "experts": c.get("experts") or sorted(d)}

    mine, theirs = normal(encoder_config.model_dump(mode="json"), dims), normal(encoder.component, encoder.build["dims"])
    if encoder.component.get("use") != ctx.encoder.name or mine != theirs:
        return None
    path = ctx.out_dir / meta.get("test_scores", "scores/model.npz")
    if not path.is_file():
        return None
    with np.load(path) as saved:
        if saved["ids"].tolist() != [it.id for it in test]:
            return None
        return saved["scores"]


def _data_digest(ctx: Any, train: list, test: list) -> str:
    """What a genre model was trained and scored on (ids, labels, splits, vocabulary)."""
    rows = [[it.id, it.video.split or "", list(it.video.labels)] for it in (*train, *test)]
    return hashlib.sha256(json.dumps([rows, list(ctx.vocabulary)]).encode()).hexdigest()


def _save_scores(path: Path, items: list, vocabulary: list[str], scores: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    y = multi_hot([it.video.labels for it in items], vocabulary)
    np.savez(path, ids=np.array([it.id for it in items]), genres=np.array(vocabulary), y_true=y, scores=scores.astype(np.float32))


def save_embeddings(path: Path, items: list, vectors: np.ndarray) -> None:
    """``ids``, ``vectors``, ``labels`` ("|"-joined) and ``split`` of items, as an .npz file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        path,
        ids=np.array([it.id for it in items]),
        vectors=vectors.astype(np.float32),
        labels=np.array(["|".join(it.video.labels) for it in items]),
        split=np.array([it.video.split or "" for it in items]),
    )


def _train_fields(cfg: Any) -> dict[str, Any]:
    """The fields of a genre training config that determine the trained model."""
    return cfg.model_dump(mode="json", include=set(GenreTrainConfig.model_fields) - _NOT_TRAINING)


def linear_probe(ctx: Any, experts: list[str], train: list, test: list, y_test: np.ndarray, cfg: Any) -> tuple[dict[str, Any], np.ndarray]:
    """The linear-probe baseline's metrics (those of the network, at its threshold) and test scores: a
    one-vs-rest logistic regression on the ``experts``' clip features averaged per trailer, fitted on ``train``."""
    x_train, x_test = (mean_features(part, experts, cfg.max_clips) for part in (train, test))
    y_train = multi_hot([it.video.labels for it in train], ctx.vocabulary)
    scores = probe_scores(x_train, y_train, x_test, cfg.probe_c, cfg.probe_max_iter, cfg.pos_weight, ctx.seed)
    metrics = multilabel_metrics(y_test, scores, cfg.threshold)
    metrics.update(
        description=PROBE_DESCRIPTION, experts=list(experts), features=int(x_train.shape[1]),
        C=cfg.probe_c, max_iter=cfg.probe_max_iter, balanced=cfg.pos_weight,
    )  # fmt: skip
    return metrics, scores


def label_augmentation(items: list, vocabulary: list[str], scores: np.ndarray, threshold: float, source: str) -> list[dict[str, Any]]:
    """Label augmentation (MMX-Trailer-20 §4.5, Table 4): per trailer the given genres, those the network
    predicts at ``threshold``, the added and the missed ones, and every genre's score; ``source`` names the model."""
    rows = []
    for it, s in zip(items, scores, strict=True):
        predicted = [g for g, p in zip(vocabulary, s) if p >= threshold]
        given = list(it.video.labels)
        rows.append(
            {
                "id": it.id,
                "split": it.video.split or "",
                "given": "|".join(given),
                "predicted": "|".join(predicted),
                "added": "|".join(g for g in predicted if g not in given),
                "missed": "|".join(g for g in given if g not in predicted),
                "source": source,
                "scores": json.dumps({g: round(float(p), 4) for g, p in zip(vocabulary, s)}),
            }
        )
    return rows


def build_model(model: TrainedModel, device: Any = "cpu") -> tuple[Any, Any | None]:
    """The encoder (and genre head, when the model has one) of an MMX model record, in eval mode.

    Every part is rebuilt, the head too when only the encoder is used: building draws random
    initial weights (then overwritten), and a seeded run draws the same numbers as before.
    """
    encoder = model.build("encoder").to(device).eval()
    head = model.build("head").to(device).eval() if "head" in model.record.parts else None
    return encoder, head


def _mmx_model(ctx: Any, name: str) -> tuple[TrainedModel, Any, Any | None]:
    """Model ``name`` of this run (or of the recipe's ``models:``), its encoder and genre head (None without one) on the run's device."""
    if name not in ctx.models and name in ("coarse", "fine"):
        raise MoviekitError(
            f"no '{name}' MMX model in this run: put the {'mmx_genre' if name == 'coarse' else 'mmx_finetune'} task before this one, or load one under the recipe's `models:`"
        )
    model = ctx.model(name)
    encoder, head = build_model(model, ctx.device)
    return model, encoder, head


def _primary_labels(items: list) -> np.ndarray:
    return np.array([it.video.labels[0] if it.video.labels else "" for it in items])


def silhouette(vectors: np.ndarray, labels: np.ndarray) -> float | None:
    """Cosine silhouette of ``vectors`` grouped by ``labels``; None when undefined."""
    from sklearn.metrics import silhouette_score

    n_labels = len(set(labels.tolist()))
    if n_labels < 2 or n_labels >= len(labels):
        return None
    return float(silhouette_score(vectors, labels, metric="cosine"))


def _sequences_of(item: Any, encoder: Any, max_clips: int | None = None) -> int:
    """Whole sequences of ``item`` as the encoder groups its (at most ``max_clips``) clips."""
    n = item.features.num_clips if item.features is not None else len(item.clips)
    return len(encoder.sequence_spans(min(n, max_clips or n)))


def _setup(*before: dict[str, Any]) -> dict[str, Any]:
    from .model import GatedTrailerEncoder

    return {
        "encoder": {"use": "mmx_gated", **GatedTrailerEncoder.example_config(None)},
        "head": {"use": "mlp", "hidden": [16]},
        "before": list(before),
    }


# -- tasks ---------------------------------------------------------------------------


class GenreClassification(Task):
    """Coarse multi-label genre classification (MMX-Trailer-20 §3.2): trains the encoder and genre MLP on the
    train split and evaluates on test.

    Writes ``metrics.json`` (AUPRC micro/macro/weighted with scikit-learn's names, ``auprc_names`` and
    ``auprc_note`` saying the paper swaps micro and macro, ``classes_dropped``, weighted P/R/F1, the same
    under ``random_baseline`` (expected random scores), P/R/F1 under ``paper_random`` (Table 2's
    "Random": every genre predicted) and the same six metrics under ``linear_probe`` (a one-vs-rest logistic
    regression on averaged expert features, with ``model_beats_probe`` and its ``verdict``)), ``per_genre.csv``
    (with support, ``random_auprc`` and ``paper_random_f1``), ``predictions.csv`` (the coarse network's genres
    for every trailer: given, predicted, added, missed), per-sequence genre scores (Fig. 8:
    ``sequence_predictions/<id>.json`` per trailer and ``sequence_predictions.csv``), ``scores/model.npz``,
    ``scores/linear_probe.npz``, ``embeddings/coarse.npz`` and the trained model ``coarse``
    (``models/coarse.json + .safetensors``: encoder and genre head). With no test split it evaluates on val and says so
    (``evaluated_split``). ``init`` starts the encoder (and the head, when its shape and genres fit) from a trained model.
    ``level: sequence`` trains §3.2's sequence-level variant (genre logits per sequence, pooled into the trailer's).
    """

    name = "mmx_genre"
    requires = frozenset({"encoder", "head"})

    @classmethod
    def example_config(cls, tmp_path):
        return {"epochs": 3}

    @classmethod
    def example_setup(cls, tmp_path):
        return _setup()

    class Config(GenreTrainConfig):
        sequence_predictions: bool = Field(
            True, description="also predict genres for each sequence on its own (needs the mmx_gated encoder)"
        )
        init: str | None = Field(
            None,
            description="start from this trained model (of an earlier task, or the recipe's `models:`): its encoder, and its head when shape and genres fit",
        )

    def run(self, ctx) -> TaskResult:
        cfg = self.config
        train, val, evaluated, test, dims = _train_splits(ctx)
        encoder, head, history = _fit(ctx, ctx.encoder, dims, train, val, cfg, tag="mmx-genre", init=cfg.init)
        all_scores = predict_scores(*_genre_pair(encoder, head, cfg), ctx.items, ctx, cfg.batch_size, cfg.max_clips)
        row = {it.id: i for i, it in enumerate(ctx.items)}
        scores = all_scores[[row[it.id] for it in test]]
        y_test = multi_hot([it.video.labels for it in test], ctx.vocabulary)
        metrics, rows = classification_report(y_test, scores, ctx.vocabulary, cfg.threshold, ctx.seed)
        paper_metrics(metrics, rows, y_test)
        out = ctx.out_dir
        probe = None
        if cfg.linear_probe:
            experts = list(getattr(ctx.encoder.config, "experts", None) or sorted(dims))
            probe, probe_test = linear_probe(ctx, experts, train, test, y_test, cfg)
            beats, verdict = probe_verdict(metrics, probe)
            metrics[PROBE_KEY] = {**probe, "model_beats_probe": beats, "verdict": verdict}
            _save_scores(out / "scores" / "linear_probe.npz", test, ctx.vocabulary, probe_test)
        metrics.update(history=history, train_items=len(train), selection_items=len(val), test_items=len(test), evaluated_split=evaluated)
        files = write_classification_report(out, metrics, rows, per_class_file="per_genre.csv", label_column="genre")
        _save_scores(out / "scores" / "model.npz", test, ctx.vocabulary, scores)
        files.append("scores/model.npz")
        if probe is not None:
            files.append("scores/linear_probe.npz")
        write_csv(
            out / "predictions.csv", label_augmentation(ctx.items, ctx.vocabulary, all_scores, cfg.threshold, "coarse"), empty_fields=()
        )
        files.append("predictions.csv")
        if cfg.sequence_predictions and hasattr(encoder, "per_sequence"):
            from .sequence_genre import write_sequence_predictions

            files += write_sequence_predictions(ctx, encoder, head, cfg)
        vectors = embed_items(encoder, ctx.items, ctx, cfg.batch_size, cfg.max_clips)
        save_embeddings(out / "embeddings" / "coarse.npz", ctx.items, vectors)
        files.append("embeddings/coarse.npz")
        summary = {k: metrics[k] for k in HEADLINE}
        summary["random_auprc_macro"] = metrics["random_baseline"]["auprc_macro"]
        summary["margin_auprc_macro"] = metrics["auprc_macro"] - summary["random_auprc_macro"]
        summary["paper_random_f1_weighted"] = metrics["paper_random"]["f1_weighted"]
        summary["classes_dropped"] = metrics["classes_dropped"]
        if probe is not None:
            summary["linear_probe_auprc_macro"] = probe["auprc_macro"]
            summary["beats_linear_probe"] = metrics[PROBE_KEY]["model_beats_probe"]
        summary["evaluated_split"] = evaluated
        enc_part, head_part = _parts(ctx, ctx.encoder, dims)
        meta = {
            "threshold": cfg.threshold, "train": _train_fields(cfg), "init": cfg.init, "evaluated_split": evaluated,
            "test_scores": "scores/model.npz", "data": _data_digest(ctx, train, test),
        }  # fmt: skip
        model = TrainedModel.from_modules(
            "coarse", {"encoder": (enc_part, encoder), "head": (head_part, head)}, task=self.name,
            input_dims={k: list(v) for k, v in dims.items()}, vocabulary=list(ctx.vocabulary), metrics=summary, meta=meta,
        )  # fmt: skip
        files += ctx.put_model(model)
        return TaskResult(metrics=summary, files=files)


class Ablation(Task):
    """The paper's ablation (Table 2): each expert alone, gated pairs, naive concatenation vs collaborative
    gating of all experts; each trained and evaluated like ``mmx_genre``. The full gated setting reuses the run's
    ``mmx_genre`` model (its test scores, ``scores/model.npz``) when that was trained in this run on the same items
    with the same encoder and training settings, so both report one model. Writes ``ablation.csv`` (one row per setting, then
    ``linear probe``: the logistic-regression baseline on averaged expert features, ``random``: expected metrics of random scores, and ``random (paper: every genre)``: Table 2's "Random", every
    genre predicted, P_w/R_w/F1_w only) and ``scores/expert_<name>.npz`` for the single experts."""

    name = "mmx_ablation"
    requires = frozenset({"encoder", "head"})

    @classmethod
    def example_config(cls, tmp_path):
        return {"epochs": 2}

    @classmethod
    def example_setup(cls, tmp_path):
        return _setup()

    class Config(GenreTrainConfig):
        settings: list[str] | None = Field(
            None,
            description="settings as FUSION:EXPERT+EXPERT (fusion single|gated|concat); None runs every expert alone, "
            "every gated pair, and all experts concatenated and gated",
        )
        pairs: bool = Field(True, description="include the gated pairs in the default settings")

    def default_settings(self, modalities: list[str]) -> list[str]:
        out = [f"single:{m}" for m in modalities]
        if self.config.pairs and len(modalities) > 2:
            out += [f"gated:{a}+{b}" for a, b in itertools.combinations(modalities, 2)]
        if len(modalities) > 1:
            out += [f"concat:{'+'.join(modalities)}", f"gated:{'+'.join(modalities)}"]
        return out

    def run(self, ctx) -> TaskResult:
        cfg = self.config
        train, val, evaluated, test, dims = _train_splits(ctx)
        base = list(getattr(ctx.encoder.config, "experts", None) or sorted(dims))
        settings = cfg.settings or self.default_settings(base)
        parsed = []
        for setting in settings:  # every setting is checked before any is trained
            fusion, _, names = setting.partition(":")
            experts = [n for n in names.split("+") if n]
            if fusion not in ("single", "gated", "concat") or not experts or any(e not in dims for e in experts):
                raise MoviekitError(
                    f"mmx_ablation.settings: '{setting}' is not FUSION:EXPERT+... with fusion single|gated|concat and experts from {sorted(dims)}"
                )
            parsed.append((setting, fusion, experts))
        y_test = multi_hot([it.video.labels for it in test], ctx.vocabulary)
        rows, files = [], []
        for setting, fusion, experts in parsed:
            update = {"experts": experts, "fusion": "gated" if fusion == "single" else fusion}
            scores, source = variant_scores(ctx, cfg, f"ablation-{setting}", update, dims, train, val, test)
            if source == "mmx_genre":  # the very model mmx_genre trained and reported: not trained twice
                ctx.log(f"ablation {setting}: the mmx_genre model (same encoder and training settings)")
            elif source == "trained":
                ctx.log(f"ablation {setting}: done")
            metrics, _ = classification_report(y_test, scores, ctx.vocabulary, cfg.threshold, ctx.seed)
            rows.append({"setting": setting, "experts": "|".join(experts), "fusion": fusion, **{k: round(metrics[k], 4) for k in HEADLINE}})
            if fusion == "single":
                _save_scores(ctx.out_dir / "scores" / f"expert_{experts[0]}.npz", test, ctx.vocabulary, scores)
                files.append(f"scores/expert_{experts[0]}.npz")
        if cfg.linear_probe:
            probe, _ = linear_probe(ctx, base, train, test, y_test, cfg)
            rows.append(
                {"setting": PROBE_SETTING, "experts": "|".join(base), "fusion": "probe", **{k: round(probe[k], 4) for k in HEADLINE}}
            )
        baseline = metrics["random_baseline"]
        rows.append({"setting": "random", "experts": "", "fusion": "random", **{k: round(baseline[k], 4) for k in HEADLINE}})
        paper = all_positive_baseline(y_test)
        rows.append(
            {
                "setting": PAPER_RANDOM_SETTING,
                "experts": "",
                "fusion": "random",
                **dict.fromkeys(HEADLINE, ""),
                **{k: round(paper[k], 4) for k in PAPER_RANDOM_KEYS},
            }
        )
        write_csv(ctx.out_dir / "ablation.csv", rows)
        result = {"settings": len(settings), "evaluated_split": evaluated}
        by = {r["setting"]: r for r in rows}
        everything = "+".join(base)
        if f"gated:{everything}" in by and f"concat:{everything}" in by:
            g, c = by[f"gated:{everything}"]["auprc_macro"], by[f"concat:{everything}"]["auprc_macro"]
            result.update(gated_auprc_macro=g, concat_auprc_macro=c, gating_beats_concat=bool(g > c))
        if f"gated:{everything}" in by and PROBE_SETTING in by:
            result.update(probe_auprc_macro=by[PROBE_SETTING]["auprc_macro"])
            result.update(gating_beats_probe=bool(by[f"gated:{everything}"]["auprc_macro"] > by[PROBE_SETTING]["auprc_macro"]))
        return TaskResult(metrics=result, files=["ablation.csv", *files])


class FineGrained(Task):
    """Fine-grained fine-tuning (MMX-Trailer-20 §3.3): NT-Xent (τ 0.5) between the embeddings of the two halves
    of each trailer's sequences, through a projection head m, n → 128 that is dropped afterwards; Adam with
    AMSGrad as in the coarse stage (§4.2 changes only the learning rate), lr 1e-4, 10 warm-up epochs then
    cosine annealing, 50 epochs. Records the cosine silhouette score of the trailer embeddings (grouped by
    each trailer's first genre) per epoch in ``silhouette.csv``; writes ``embeddings/fine.npz`` and the
    fine-tuned encoder, with the coarse model's genre head kept unchanged, as model ``fine``
    (``models/fine.json + .safetensors``). Label augmentation (§4.5, Table 4): ``label_augmentation.csv``, the
    genres the fine-tuned network (or, selected, the coarse one) predicts at threshold 0.3 for every trailer,
    the model named in the metrics. Trains on the core's epoch loop (checkpoints and resume, optional gradient clipping)."""

    name = "mmx_finetune"

    @classmethod
    def example_config(cls, tmp_path):
        return {"epochs": 2, "warmup_epochs": 1}

    @classmethod
    def example_setup(cls, tmp_path):
        return _setup({"use": "mmx_genre", "epochs": 2})

    class Config(Config):
        epochs: int = Field(50, ge=1)
        lr: float = Field(1e-4, gt=0)
        warmup_epochs: int = Field(10, ge=0, description="linear warm-up epochs before cosine annealing")
        temperature: float = Field(0.5, gt=0, description="NT-Xent temperature τ")
        batch_size: int = Field(32, ge=2, description="trailers per batch (2 halves each)")
        projection: list[int] = Field(default_factory=lambda: [512, 128], description="sizes of the projection head m, n")
        weight_decay: float = Field(0.0, ge=0)
        max_clips: int | None = Field(None, ge=1)
        silhouette_split: Literal["all", "train", "val", "test"] = Field("all", description="items the silhouette is computed on")
        init: str = Field(
            "coarse", description="the trained model whose encoder is fine-tuned: mmx_genre's `coarse`, or one of the recipe's `models:`"
        )
        clip_grad: float | None = Field(None, gt=0, description="clip the gradient norm to this value; None does not clip")
        checkpoint_every: int = Field(10, ge=1, description="epochs between mid-task checkpoints (a killed run resumes from the last)")
        amsgrad: bool = Field(
            True,
            description="Adam with the AMSGrad variant: the paper's coarse-stage optimiser, which §4.2 keeps for the self-supervised stage (it changes only the learning rate)",
        )
        label_augmentation: Literal["fine", "coarse", "off"] = Field(
            "fine",
            description="label augmentation (§4.5, Table 4) from the fine-tuned network (the paper's: its encoder with the kept genre head), "
            "from the coarse network fine-tuning started from, or off",
        )
        threshold: float = Field(0.3, gt=0, lt=1, description="sigmoid threshold of the augmented labels (§4.5: 0.30)")

    def optimizer(self, params: Any) -> Any:
        """Adam (AMSGrad unless ``amsgrad: false``) over ``params`` at the task's learning rate and weight decay."""
        import torch

        cfg = self.config
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay, amsgrad=cfg.amsgrad)

    def run(self, ctx) -> TaskResult:
        import torch

        from .model import nt_xent

        cfg = self.config
        start, encoder, head = _mmx_model(ctx, cfg.init)
        if not hasattr(encoder, "halves"):
            raise MoviekitError("mmx_finetune needs the mmx_gated encoder (it splits trailers into halves of sequences)")
        if cfg.label_augmentation != "off" and head is None:
            raise MoviekitError(
                f"mmx_finetune.label_augmentation: model '{cfg.init}' has no genre head to predict labels with; "
                "start from mmx_genre's `coarse` or set label_augmentation: off"
            )
        # the coarse network's labels, before fine-tuning changes its encoder in place
        coarse_scores = (
            predict_scores(encoder, head, ctx.items, ctx, cfg.batch_size, cfg.max_clips) if cfg.label_augmentation == "coarse" else None
        )
        train = [it for it in ctx.split("train") if _sequences_of(it, encoder, cfg.max_clips) >= 2]
        if len(train) < 2:
            raise MoviekitError("mmx_finetune needs at least 2 trailers with 2 or more sequences (lower the encoder's clips_per_sequence?)")
        skipped = len(ctx.split("train")) - len(train)
        proj = mlp([encoder.cfg.output_dim, *cfg.projection]).to(ctx.device)
        model = torch.nn.ModuleDict({"encoder": encoder, "proj": proj})  # the genre head is not trained: NT-Xent has no genre term
        opt = self.optimizer(model.parameters())
        sched = warmup_cosine(opt, cfg.warmup_epochs, cfg.epochs)
        sil_items = ctx.items if cfg.silhouette_split == "all" else ctx.split(cfg.silhouette_split)
        labels = _primary_labels(sil_items)

        def sil() -> float | None:
            return silhouette(embed_items(encoder, sil_items, ctx, cfg.batch_size, cfg.max_clips), labels)

        kept: dict[str, Any] = {"rows": [{"epoch": 0, "loss": "", "silhouette": sil(), "lr": ""}]}

        def step(idx: list[int]) -> Any:
            feats, mask = to_device(*pad_features([train[i] for i in idx], max_clips=cfg.max_clips), ctx.device)
            a, b, _ = encoder.halves(feats, mask)
            return nt_xent(proj(a), proj(b), cfg.temperature)

        def record(epoch: int, history: dict[str, Any]) -> None:
            kept["rows"].append({"epoch": epoch, "loss": history["epoch_loss"][-1], "silhouette": sil(), "lr": history["lr"][-1]})

        train_loop(
            model, step, len(train), opt, cfg.epochs, cfg.batch_size, ctx, seed=ctx.seed, scheduler=sched, clip_grad=cfg.clip_grad,
            checkpoint_every=cfg.checkpoint_every, tag="mmx-finetune", on_epoch_end=record, extra_state=kept,
            min_batch=2,  # NT-Xent needs a negative: a last (global) batch of one trailer is skipped
        )  # fmt: skip
        rows = kept["rows"]
        write_csv(ctx.out_dir / "silhouette.csv", rows)
        vectors = embed_items(encoder, ctx.items, ctx, cfg.batch_size, cfg.max_clips)
        save_embeddings(ctx.out_dir / "embeddings" / "fine.npz", ctx.items, vectors)
        first, last = rows[0]["silhouette"], rows[-1]["silhouette"]
        metrics = {"final_loss": rows[-1]["loss"], "silhouette_before": first, "silhouette_after": last, "trailers": len(train)}
        files = ["silhouette.csv", "embeddings/fine.npz"]
        metrics["label_augmentation"] = cfg.label_augmentation
        if cfg.label_augmentation != "off":
            source = "fine" if cfg.label_augmentation == "fine" else start.name
            scores = (
                predict_scores(encoder, head, ctx.items, ctx, cfg.batch_size, cfg.max_clips) if coarse_scores is None else coarse_scores
            )
            aug = label_augmentation(ctx.items, start.record.vocabulary, scores, cfg.threshold, source)
            write_csv(ctx.out_dir / "label_augmentation.csv", aug, empty_fields=())
            files.append("label_augmentation.csv")
            metrics.update(
                label_augmentation_model=source, labels_added=sum(len(r["added"].split("|")) for r in aug if r["added"]),
                trailers_with_added=sum(bool(r["added"]) for r in aug),
            )  # fmt: skip
        meta = {k: v for k, v in start.record.meta.items() if k not in ("test_scores", "data")}
        meta["finetune"] = cfg.model_dump(mode="json")
        meta["from"] = start.name
        parts = {"encoder": (start.record.parts["encoder"], encoder)}
        if head is not None:  # kept unchanged from the coarse model, so the fine-tuned network still predicts genres (§4.5)
            parts["head"] = (start.record.parts["head"], head)
            meta["head"] = f"the genre head of '{start.name}', unchanged by fine-tuning"
        fine = TrainedModel.from_modules(
            "fine", parts, task=self.name,
            input_dims=start.record.input_dims, vocabulary=start.record.vocabulary, metrics=metrics, meta=meta,
        )  # fmt: skip
        files += ctx.put_model(fine)
        notes = [f"{skipped} train trailer(s) with fewer than 2 sequences were left out of the contrastive loss"] if skipped else []
        return TaskResult(metrics=metrics, files=files, notes=notes)


def _unit_rows(x: np.ndarray) -> np.ndarray:
    import faiss

    x = np.ascontiguousarray(x, dtype=np.float32).copy()
    faiss.normalize_L2(x)
    return x


def build_index(vectors: np.ndarray, config: IndexConfig | None = None) -> Any:
    """A faiss inner-product index over L2-normalised rows (cosine similarity); exact unless ``config`` says otherwise."""
    return moviekit.build_index(_unit_rows(vectors), config, metric="ip")


def search(index: Any, queries: np.ndarray, k: int, config: IndexConfig | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(scores, rows) of the ``k`` nearest rows of ``index`` to each query, by cosine."""
    return moviekit.search_index(index, _unit_rows(queries), k, config)


class Retrieval(Task):
    """Cosine retrieval over the 2048-d trailer embeddings with faiss: writes ``index.faiss`` (+ ``index_ids.json``),
    the top-k neighbours of every trailer (``retrieval.json``, ``neighbours.csv``), and a sanity check: the
    share of trailers whose first-half embedding retrieves their own second half first (``half_top1``)."""

    name = "mmx_retrieval"

    @classmethod
    def example_setup(cls, tmp_path):
        return _setup({"use": "mmx_genre", "epochs": 2})

    class Config(Config):
        space: Literal["latest", "coarse", "fine"] = Field(
            "latest", description="which trained model's embeddings: the latest (fine after mmx_finetune)"
        )
        k: int = Field(10, ge=1, description="neighbours per trailer")
        examples: int = Field(5, ge=0, description="query trailers shown in the report")
        batch_size: int = Field(32, ge=1)
        max_clips: int | None = Field(None, ge=1)
        index: IndexConfig = Field(
            default_factory=IndexConfig,
            description="the faiss index: flat (exact, the default), hnsw or ivf (approximate: faster on many trailers)",
        )

    def run(self, ctx) -> TaskResult:
        import faiss

        cfg = self.config
        space = ("fine" if "fine" in ctx.models else "coarse") if cfg.space == "latest" else cfg.space
        _, encoder, _ = _mmx_model(ctx, space)
        items = ctx.items
        vectors = embed_items(encoder, items, ctx, cfg.batch_size, cfg.max_clips)
        index = build_index(vectors, cfg.index)
        faiss.write_index(index, str(ctx.out_dir / "index.faiss"))
        ids = [it.id for it in items]
        (ctx.out_dir / "index_ids.json").write_text(
            json.dumps(
                {"space": space, "ids": ids, "labels": {it.id: it.video.labels for it in items}, "model": f"models/{space}.json"}, indent=1
            )
        )
        scores, rows = search(index, vectors, cfg.k + 1, cfg.index)
        neighbours: dict[str, list[dict[str, Any]]] = {}
        top1: dict[int, int] = {}  # query row -> nearest other row
        table = []
        for i, qid in enumerate(ids):
            hits = [(int(r), float(s)) for r, s in zip(rows[i], scores[i]) if r >= 0 and int(r) != i][: cfg.k]
            neighbours[qid] = [{"id": ids[r], "score": round(s, 5)} for r, s in hits]
            if hits:
                top1[i] = hits[0][0]
            for rank, (r, s) in enumerate(hits, 1):
                table.append(
                    {
                        "query": qid,
                        "rank": rank,
                        "neighbour": ids[r],
                        "score": round(s, 5),
                        "query_genres": "|".join(items[i].video.labels),
                        "neighbour_genres": "|".join(items[r].video.labels),
                    }
                )
        write_csv(ctx.out_dir / "neighbours.csv", table, empty_fields=())
        jac = [_jaccard(items[i].video.labels, items[top].video.labels) for i, top in top1.items()]
        rng = np.random.default_rng(ctx.seed)
        rand = (
            [
                _jaccard(items[i].video.labels, items[(i + 1 + int(rng.integers(len(items) - 1))) % len(items)].video.labels)
                for i in range(len(items))
            ]
            if len(items) > 1
            else [0.0]
        )
        half = half_retrieval(encoder, items, ctx, cfg.batch_size, cfg.max_clips)
        test = ctx.split("test")
        examples = [it.id for it in (test or items)[: cfg.examples]]
        payload = {"space": space, "metric": "cosine", "k": cfg.k, "neighbours": neighbours, "examples": examples, "half_top1": half}
        (ctx.out_dir / "retrieval.json").write_text(json.dumps(payload, indent=1))
        metrics = {
            "space": space,
            "half_top1": half,
            "top1_genre_jaccard": float(np.mean(jac)) if jac else 0.0,
            "random_genre_jaccard": float(np.mean(rand)),
        }
        return TaskResult(metrics=metrics, files=["index.faiss", "index_ids.json", "retrieval.json", "neighbours.csv"])


def _jaccard(a: list[str], b: list[str]) -> float:
    sa, sb = set(a), set(b)
    return len(sa & sb) / len(sa | sb) if sa | sb else 0.0


def half_retrieval(encoder: Any, items: list, ctx: Any, batch_size: int = 32, max_clips: int | None = None) -> float | None:
    """Share of trailers whose first-half embedding has their own second half as nearest neighbour
    among all second halves (trailers with 2 or more sequences); None when fewer than 2 qualify."""
    usable = [it for it in items if _sequences_of(it, encoder, max_clips) >= 2]
    if len(usable) < 2:
        return None
    both = run_batched(lambda f, m: _cat_halves(encoder, f, m), [encoder], usable, ctx, batch_size, max_clips)
    d = both.shape[1] // 2
    index = build_index(both[:, d:])
    _, rows = search(index, both[:, :d], 1)
    return float(np.mean(rows[:, 0] == np.arange(len(usable))))


def _cat_halves(encoder: Any, feats: Any, mask: Any) -> Any:
    import torch

    a, b, _ = encoder.halves(feats, mask)
    return torch.cat([a, b], dim=1)


COMPONENTS = [GenreClassification, Ablation, FineGrained, Retrieval]
