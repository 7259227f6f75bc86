"""``movieclip_clip``: zero-shot scene labelling of shots with CLIP and the MovieCLIP taxonomy."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from moviekit import Config, FrameBatch, FrameNeed, Labeler, Labels, Needs, Shot, Sink, Track, Video, VideoInfo, WeightsSpec, resolve_device
from moviekit.backends import openclip

from . import scoring
from .taxonomy import Taxonomy, resolve_taxonomy


def shot_frame_rows(times: np.ndarray, shot: Shot, max_gap: float = float("inf")) -> np.ndarray:
    """Indices of the frames of ``times`` inside ``[shot.start_time, shot.end_time)``.

    When none is (a shot shorter than the sampling period), the frame nearest the
    shot's midpoint, provided it lies within ``max_gap`` seconds of the shot;
    otherwise none.
    """
    times = np.asarray(times, dtype=np.float64)
    if len(times) == 0:
        return np.zeros(0, np.int64)
    inside = np.flatnonzero((times >= shot.start_time) & (times < shot.end_time))
    if len(inside):
        return inside
    mid = 0.5 * (shot.start_time + shot.end_time)
    best = int(np.argmin(np.abs(times - mid)))
    gap = max(shot.start_time - times[best], times[best] - shot.end_time, 0.0)
    return np.asarray([best]) if gap <= max_gap else np.zeros(0, np.int64)


class _ClipSink(Sink):
    def __init__(self, labeler: MovieclipClip):
        self.labeler = labeler
        self.times: list[np.ndarray] = []
        self.values: list[np.ndarray] = []

    def frames(self, batch: FrameBatch) -> None:
        if len(batch):
            self.times.append(np.asarray(batch.times, np.float64))
            self.values.append(self.labeler.frame_scores(batch.frames).astype(np.float32))

    def close(self) -> Track:
        return Track.concat(self.times, self.values, (len(self.labeler.taxonomy),))


class MovieclipClip(Labeler):
    """MovieCLIP labelling: CLIP zero-shot scores of the 179 scene labels per sampled frame, averaged per shot into CLIPSceneScores; top-k labels and thresholded multi-labels.

    Each label becomes a prompt (default ``"A photo of {}, a type of background
    location"``, the paper's choice; several ``templates`` are ensembled by
    averaging their normalised text embeddings).  For every frame sampled at
    ``fps``, the cosine similarities between its CLIP image embedding and the
    label embeddings are scaled by ``logit_scale`` (100) and soft-maxed over the
    labels; a shot's CLIPSceneScore of a label is the mean of those
    probabilities over the frames in the shot (a shot without a sampled frame
    uses the frame nearest its midpoint, if within ``1 / fps`` of the shot; else
    it gets empty Labels).  ``Labels.scores`` holds the ``top_k``
    (5) labels and their scores, best first; ``Labels.labels`` the multi-label
    assignment: top-1 if >= ``top1_threshold`` (0.4), ranks 2..k if >=
    ``topk_threshold`` (0.1), nothing when the top-1 fails and ``require_top1``.
    Text embeddings are computed once per component; frames are batched.
    """

    name = "movieclip_clip"
    version = "1"
    returns = "Track of per-frame label probabilities (n, n_labels); per shot Labels with top-k CLIPSceneScores"

    class Config(Config):
        model: str = Field("ViT-B-32", description="open_clip architecture (open_clip.list_models()); the paper uses ViT-B/32")
        pretrained: str = Field(
            "openai",
            description="pretrained tag (looked up in $MOVIEKIT_WEIGHTS/open_clip-<model>-<tag> and the cache, downloaded only "
            "when online) or a local checkpoint file/folder",
        )
        taxonomy: str | None = Field(
            None, description="taxonomy file (CSV with a 'label' column, or one label per line); unset: the packaged 179 MovieCLIP labels"
        )
        labels: list[str] | None = Field(None, description="inline labels instead of a taxonomy file")
        templates: list[str] = Field(
            default_factory=lambda: [scoring.DEFAULT_TEMPLATE],
            description="prompt templates with one '{}' (or the names background, location, people_background, "
            "people_location, reference: the authors' script's 'a photo of a {}, a type of background location'); more than one are ensembled",
        )
        logit_scale: float = Field(scoring.LOGIT_SCALE, gt=0, description="scale of the cosine similarities before the softmax over labels")
        fps: float | None = Field(
            1.0, gt=0, description="frames per second sampled for scoring; null scores every frame (as the authors' tagging script)"
        )
        resize_mode: Literal["shortest", "squash", "longest"] | None = Field(
            None,
            description="how frames are fitted to the model's input: unset uses the model's own (CLIP: shortest side then centre crop)",
        )
        top_k: int = Field(scoring.TOP_K, ge=1, description="labels (with scores) kept per shot")
        top1_threshold: float = Field(scoring.TOP1_THRESHOLD, ge=0, le=1, description="minimum top-1 CLIPSceneScore for a label")
        topk_threshold: float = Field(
            scoring.TOPK_THRESHOLD, ge=0, le=1, description="minimum CLIPSceneScore of the labels ranked 2..top_k"
        )
        require_top1: bool = Field(
            True, description="no labels at all for a shot whose top-1 is below top1_threshold (the paper's reading)"
        )
        batch: int = Field(32, ge=1, description="frames per forward pass (also asked of the reader)")
        device: str = Field("auto", description="'auto' (CUDA when available, else CPU), 'cpu', 'cuda', 'cuda:N'")

        @field_validator("templates")
        @classmethod
        def _templates(cls, v: list[str]) -> list[str]:
            if not v:
                raise ValueError("give at least one prompt template")
            out = [scoring.check_template(t) for t in v]
            if len(set(out)) != len(out):
                raise ValueError("a prompt template is given twice")
            return out

        @model_validator(mode="after")
        def _one_taxonomy(self) -> MovieclipClip.Config:
            if self.taxonomy is not None and self.labels is not None:
                raise ValueError("give either `taxonomy` or `labels`, not both")
            return self

    @classmethod
    def example_config(cls, tmp_path: Path) -> dict[str, Any]:
        # the backend's tiny RANDOM model for the contract test (test-only; never a default)
        return {
            "model": openclip.TINY_MODEL,
            "pretrained": str(openclip.tiny_checkpoint(Path(tmp_path) / "tiny_clip")),
            "device": "cpu",
            "batch": 8,
        }

    # -- setup --------------------------------------------------------------------------------

    @property
    def taxonomy(self) -> Taxonomy:
        tax = self.__dict__.get("_taxonomy")
        if tax is None:
            tax = self.__dict__["_taxonomy"] = resolve_taxonomy(self.config.taxonomy, self.config.labels)
        return tax

    def needs(self) -> Needs:
        return Needs(frames=FrameNeed(fps=self.config.fps, batch=self.config.batch))

    def weights(self) -> list[WeightsSpec]:
        return [openclip.weights_spec(self.config.model, self.config.pretrained)[0]]

    def _load(self) -> openclip.OpenClip:
        clip = self.__dict__.get("_clip")
        if clip is None:
            cfg = self.config
            clip = openclip.load(self.name, "pretrained", cfg.model, cfg.pretrained, resolve_device(cfg.device), cfg.resize_mode)
            self.__dict__["_clip"] = clip
        return clip

    def text_embeddings(self) -> np.ndarray:
        """``(n_labels, dim)`` L2-normalised label embeddings (templates ensembled); computed once."""
        cached = self.__dict__.get("_text")
        if cached is not None:
            return cached
        import torch

        clip = self._load()
        labels = self.taxonomy.labels
        per_template = []
        with torch.inference_mode():
            for template in self.config.templates:
                prompts = scoring.make_prompts(labels, template)
                rows = []
                for s in range(0, len(prompts), 256):
                    tokens = clip.tokenizer(prompts[s : s + 256]).to(clip.device)
                    rows.append(clip.model.encode_text(tokens, normalize=True).float().cpu().numpy())
                per_template.append(np.concatenate(rows))
        text = scoring.ensemble_text_embeddings(np.stack(per_template)).astype(np.float32)
        self.__dict__["_text"] = text
        return text

    # -- scoring ------------------------------------------------------------------------------

    def image_embeddings(self, frames: np.ndarray) -> np.ndarray:
        """``(n, dim)`` L2-normalised CLIP image embeddings of RGB ``(n, H, W, 3)`` uint8 frames."""
        import torch
        from PIL import Image

        clip = self._load()
        out = []
        with torch.inference_mode():
            for s in range(0, len(frames), self.config.batch):
                x = torch.stack([clip.preprocess(Image.fromarray(np.ascontiguousarray(f))) for f in frames[s : s + self.config.batch]])
                out.append(clip.model.encode_image(x.to(clip.device), normalize=True).float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.text_embeddings().shape[1]), np.float32)

    def frame_scores(self, frames: np.ndarray) -> np.ndarray:
        """``(n, n_labels)`` per-frame softmax probabilities over the taxonomy."""
        sims = scoring.cosine_similarity(self.image_embeddings(frames), self.text_embeddings())
        return scoring.frame_probabilities(sims, self.config.logit_scale)

    def open(self, video: Video, info: VideoInfo) -> Sink:
        self.text_embeddings()  # loads the model: fails before decoding when the weights are missing
        return _ClipSink(self)

    def shot_scores(self, track: Track, shot: Shot) -> np.ndarray | None:
        """``(n_labels,)`` CLIPSceneScores of one shot from the per-frame track; None when no frame is usable.

        The frames in the shot are averaged; a shot without one uses the frame nearest its midpoint
        if that is within one sampling period (``1 / fps``) of the shot.
        """
        rows = shot_frame_rows(track.times, shot, max_gap=1.0 / self.config.fps if self.config.fps else 0.0)
        if len(rows) == 0:
            return None
        return scoring.aggregate_shot(np.asarray(track.values, np.float64)[rows].reshape(len(rows), len(self.taxonomy)))

    def label(self, video: Video, track: Track, shots: list[Shot]) -> list[Labels]:
        cfg = self.config
        labels = self.taxonomy.labels
        out = []
        for shot in shots:
            scores = self.shot_scores(track, shot)
            if scores is None:  # no sampled frame in or near the shot
                out.append(Labels(video_id=video.id, shot_index=shot.index))
                continue
            ranked = scoring.top_k(scores, labels, cfg.top_k)
            assigned = scoring.assign_labels(ranked, cfg.top1_threshold, cfg.topk_threshold, cfg.require_top1)
            out.append(Labels(video_id=video.id, shot_index=shot.index, scores=dict(ranked), labels=assigned))
        return out


COMPONENTS = [MovieclipClip]
