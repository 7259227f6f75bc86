"""The MMX-Trailer-20 network: expert projections, collaborative gating, sequences and the trailer bottleneck.

Shapes follow the paper's supplementary (section 7) with its defaults:

* every expert's clip feature is projected to ``expert_dim`` (768); an expert whose clip
  feature is a set of descriptors ``(F, D)`` (audio) is first aggregated by a learnable
  NetVLAD, as in the paper;
* the collaborative gating unit modulates each expert by an attention vector
  ``sigmoid(h(sum_{f != e} g([x_e, x_f])))``, passes it through a Gated Embedding Module,
  and fuses the experts into an L2-normalised ``clip_dim`` (128) clip vector;
* ``clips_per_sequence`` (9) clip vectors are concatenated (1152) and mapped by ``j`` to
  ``sequence_dim`` (256);
* up to ``max_sequences`` (40) sequence vectors are concatenated (10240) and mapped by the
  bottleneck ``k`` to the ``output_dim`` (2048) trailer embedding.

**Padding.** A trailer with fewer sequences than ``max_sequences`` has its sequences in the
first slots and zeros in the others (a mask zeroes whatever ``j`` would give for them), so
``k`` always sees real sequences in order from slot 0.  A trailer with more sequences keeps
``max_sequences`` of them evenly spaced over its length.  Only whole sequences count, as in
the paper (a trailing remainder of clips is dropped); a trailer with fewer clips than one
sequence keeps a single zero-padded sequence.  A sub-trailer (one half of a trailer for the
contrastive loss, or one sequence for sequence-level predictions) is placed from slot 0 too,
so it is embedded exactly like a shorter trailer.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field

from moviekit import Config, Encoder, group_windows, mlp


def _modules() -> dict[str, type]:
    """The torch modules, defined on first use so that importing the plugin stays cheap."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    class NetVLAD(nn.Module):
        """Learnable VLAD pooling of a set of descriptors ``(N, F, D)`` into ``(N, K * D)``.

        ``mask`` (N, F) marks real descriptors; a row of zeros contributes nothing either way.
        """

        def __init__(self, dim: int, clusters: int):
            super().__init__()
            self.assign = nn.Linear(dim, clusters)
            self.centroids = nn.Parameter(0.1 * torch.randn(clusters, dim))
            self.out_dim = clusters * dim

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            soft = torch.softmax(self.assign(x), dim=-1)  # (N, F, K)
            valid = (x.abs().sum(-1, keepdim=True) > 0).to(x.dtype)
            soft = soft * valid
            # sum_f a_fk (x_f - c_k) = sum_f a_fk x_f - c_k sum_f a_fk
            vlad = torch.einsum("nfk,nfd->nkd", soft, x) - soft.sum(1).unsqueeze(-1) * self.centroids
            vlad = F.normalize(vlad, dim=-1)  # intra-normalisation
            return F.normalize(vlad.flatten(1), dim=-1)

    class GatedEmbedding(nn.Module):
        """Gated Embedding Module: ``y = W x``; ``y * sigmoid(V y)``; L2-normalised."""

        def __init__(self, in_dim: int, out_dim: int):
            super().__init__()
            self.fc = nn.Linear(in_dim, out_dim)
            self.gate = nn.Linear(out_dim, out_dim)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.fc(x)
            return F.normalize(y * torch.sigmoid(self.gate(y)), dim=-1)

    class CollaborativeGating(nn.Module):
        """Attention of each expert from its pairwise relations with all the others."""

        def __init__(self, dim: int, n: int, hidden: int):
            super().__init__()
            self.n = n
            self.g = mlp([2 * dim, hidden, hidden], final_activation=True)
            self.h = mlp([hidden, hidden, dim])

        def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
            out = []
            for e in range(self.n):
                rel = sum(self.g(torch.cat([xs[e], xs[f]], dim=-1)) for f in range(self.n) if f != e)
                out.append(xs[e] * torch.sigmoid(self.h(rel)))
            return out

    class TrailerModel(nn.Module):
        def __init__(self, dims: dict[str, tuple[int, ...]], cfg: Any):
            super().__init__()
            self.cfg = cfg
            self.modalities = list(cfg.experts) if cfg.experts else sorted(dims)
            E = cfg.expert_dim
            proj = {}
            for m in self.modalities:
                shape = tuple(dims[m])
                norm = [nn.LayerNorm(shape[-1], elementwise_affine=False)] if cfg.input_norm else []
                if len(shape) == 1:
                    proj[m] = nn.Sequential(*norm, nn.Linear(shape[0], E))
                elif len(shape) == 2:
                    vlad = NetVLAD(shape[1], cfg.netvlad_clusters)
                    proj[m] = nn.Sequential(*norm, vlad, nn.Linear(vlad.out_dim, E))
                else:
                    raise ValueError(f"expert '{m}' has clip features of shape {shape}; expected (D,) or (descriptors, D)")
            self.proj = nn.ModuleDict(proj)
            n = len(self.modalities)
            self.fusion = "single" if n == 1 else cfg.fusion
            if self.fusion == "single":
                self.gem = nn.ModuleList([GatedEmbedding(E, cfg.clip_dim)])
            elif self.fusion == "gated":
                self.gating = CollaborativeGating(E, n, cfg.gating_hidden)
                self.gem = nn.ModuleList([GatedEmbedding(E, cfg.clip_dim) for _ in range(n)])
                self.fuse = nn.Linear(n * cfg.clip_dim, cfg.clip_dim)
            else:  # naive concatenation through an MLP
                self.concat = mlp([n * E, E, cfg.clip_dim])
            L = cfg.clips_per_sequence
            self.j = mlp([L * cfg.clip_dim, cfg.sequence_hidden, cfg.sequence_dim], final_activation=True, dropout=cfg.dropout)
            k_in = cfg.max_sequences * cfg.sequence_dim if cfg.sequence_fusion == "concat" else cfg.sequence_dim
            self.k = mlp([k_in, cfg.bottleneck_hidden, cfg.output_dim], final_activation=True, dropout=cfg.dropout)

        # -- clips ---------------------------------------------------------------
        def clip_vectors(self, features: dict[str, torch.Tensor], mask: torch.Tensor) -> torch.Tensor:
            """(B, T, clip_dim) L2-normalised clip vectors, zero where ``mask`` is False."""
            xs = []
            for m in self.modalities:
                x = features[m]
                B, T = x.shape[:2]
                xs.append(self.proj[m](x.reshape(B * T, *x.shape[2:]).float()).reshape(B, T, -1))
            if self.fusion == "single":
                c = self.gem[0](xs[0])
            elif self.fusion == "gated":
                gated = self.gating(xs)
                c = F.normalize(self.fuse(torch.cat([gem(x) for gem, x in zip(self.gem, gated)], dim=-1)), dim=-1)
            else:
                c = F.normalize(self.concat(torch.cat(xs, dim=-1)), dim=-1)
            return c * mask.unsqueeze(-1).to(c.dtype)

        # -- sequences -----------------------------------------------------------
        def sequence_spans(self, n_clips: int) -> list[tuple[int, int]]:
            """The ``[start, end)`` clips of each whole sequence of a trailer of ``n_clips`` clips
            (``clips_per_sequence`` consecutive clips, a remainder dropped: :func:`moviekit.group_windows`)."""
            return group_windows(n_clips, self.cfg.clips_per_sequence)

        def sequence_vectors(self, features: dict[str, torch.Tensor], mask: torch.Tensor) -> tuple[torch.Tensor, list[list[int]]]:
            """(B, S, sequence_dim) vectors and, per trailer, the indices of its real sequences."""
            c = self.clip_vectors(features, mask)
            B, T, D = c.shape
            L = self.cfg.clips_per_sequence
            S = max(1, -(-T // L))
            pad = S * L - T
            if pad:
                c = F.pad(c, (0, 0, 0, pad))
            seqs = self.j(c.reshape(B, S, L * D))
            # the reshape above is the batched form of sequence_spans over the padded clips; per trailer,
            # its whole sequences (or one zero-padded sequence when it has fewer clips than one)
            valid = [list(range(len(self.sequence_spans(int(n))))) or [0] for n in mask.sum(1).tolist()]
            return seqs, valid

        def pool(self, seqs: torch.Tensor, select: list[list[int]]) -> torch.Tensor:
            """(B, output_dim) embeddings of the selected sequences of each trailer, placed from slot 0."""
            B, S, D = seqs.shape
            M = self.cfg.max_sequences
            rows = []
            for b, idx in enumerate(select):
                if len(idx) > M:
                    keep = np.unique(np.linspace(0, len(idx) - 1, M).round().astype(int))
                    idx = [idx[i] for i in keep]
                chosen = seqs[b, idx]  # (n, D)
                if self.cfg.sequence_fusion == "concat":
                    rows.append(F.pad(chosen, (0, 0, 0, M - len(idx))).reshape(M * D))
                else:
                    rows.append(chosen.sum(0))
            return self.k(torch.stack(rows))

        def forward(self, features: dict[str, torch.Tensor], mask: torch.Tensor) -> torch.Tensor:
            seqs, valid = self.sequence_vectors(features, mask)
            return self.pool(seqs, valid)

        def halves(self, features: dict[str, torch.Tensor], mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[bool]]:
            """Embeddings of each trailer's first and second half of sequences; ``ok`` is False for one-sequence trailers."""
            seqs, valid = self.sequence_vectors(features, mask)
            first, second, ok = [], [], []
            for idx in valid:
                h = len(idx) // 2
                ok.append(h > 0)
                first.append(idx[:h] if h else idx)
                second.append(idx[h:])
            return self.pool(seqs, first), self.pool(seqs, second), ok

        def per_sequence(self, features: dict[str, torch.Tensor], mask: torch.Tensor) -> tuple[torch.Tensor, list[tuple[int, int]]]:
            """One embedding per real sequence, as if it were a trailer on its own, with (trailer, sequence) ids."""
            seqs, valid = self.sequence_vectors(features, mask)
            owners = [(b, s) for b, idx in enumerate(valid) for s in idx]
            emb = self.pool(seqs[[b for b, _ in owners]], [[s] for _, s in owners])
            return emb, owners

    class SequenceGenre(nn.Module):
        """Genre logits per sequence, pooled into the trailer's (MMX-Trailer-20 §3.2, sequence level).

        ``k`` and the genre MLP ``l`` map each sequence on its own (placed in slot 0, like a one-sequence
        trailer: :meth:`TrailerModel.per_sequence`) to genre logits; a trailer's logits are
        :func:`pool_sequence_logits` of its sequences'.  ``forward`` gives the trailer logits, so the core's
        multi-label training (``head(encoder(x))`` with an identity head) trains this at the sequence level.
        """

        def __init__(self, encoder: nn.Module, head: nn.Module, pooling: str):
            super().__init__()
            self.encoder, self.head, self.pooling = encoder, head, pooling

        def sequence_logits(self, features: dict[str, torch.Tensor], mask: torch.Tensor) -> tuple[torch.Tensor, list[tuple[int, int]]]:
            emb, owners = self.encoder.per_sequence(features, mask)
            return self.head(emb), owners

        def forward(self, features: dict[str, torch.Tensor], mask: torch.Tensor) -> torch.Tensor:
            logits, owners = self.sequence_logits(features, mask)
            return pool_sequence_logits(logits, [b for b, _ in owners], mask.shape[0], self.pooling)

    return {
        "NetVLAD": NetVLAD,
        "GatedEmbedding": GatedEmbedding,
        "CollaborativeGating": CollaborativeGating,
        "TrailerModel": TrailerModel,
        "SequenceGenre": SequenceGenre,
    }


#: How a trailer's genre logits come from its sequences' at the sequence level (§3.2 sums the sequence embeddings).
SEQUENCE_POOLING = ("sum", "mean")


def pool_sequence_logits(logits: Any, trailer_of: list[int], n_trailers: int, pooling: str = "sum") -> Any:
    """Trailer logits ``(n_trailers, G)`` from per-sequence logits ``(N, G)``, row ``i`` belonging to trailer
    ``trailer_of[i]``: their sum (``pooling="sum"``, as §3.2 sums a trailer's sequence embeddings) or their
    mean (``"mean"``: independent of the trailer's length).  A trailer without a sequence gets zeros."""
    import torch

    if pooling not in SEQUENCE_POOLING:
        raise ValueError(f"sequence pooling '{pooling}' is not one of {SEQUENCE_POOLING}")
    idx = torch.as_tensor(trailer_of, dtype=torch.long, device=logits.device)
    out = logits.new_zeros((n_trailers, logits.shape[1])).index_add(0, idx, logits)
    if pooling == "mean":
        counts = torch.bincount(idx, minlength=n_trailers).clamp(min=1).to(logits.dtype)
        out = out / counts.unsqueeze(1)
    return out


def genre_modules(encoder: Any, head: Any, level: str = "trailer", pooling: str = "sum") -> tuple[Any, Any]:
    """The ``(encoder, head)`` pair whose ``head(encoder(x))`` gives a trailer's genre logits at ``level``:

    * ``"trailer"`` (the paper's model, §3.2): ``k`` over the trailer's sequence slots, then ``l``;
    * ``"sequence"`` (§3.2's sequence-level variant): ``k`` and ``l`` on each sequence on its own, the
      sequences' logits pooled by ``pooling`` (:func:`pool_sequence_logits`); the head becomes the identity.

    Both share the modules' parameters, so training the pair trains ``encoder`` and ``head``.
    """
    if level == "trailer":
        return encoder, head
    if level != "sequence":
        raise ValueError(f"genre level '{level}' is not 'trailer' or 'sequence'")
    if not hasattr(encoder, "per_sequence"):
        raise ValueError("sequence-level genres need the mmx_gated encoder (it embeds each sequence on its own)")
    from torch import nn

    return _modules()["SequenceGenre"](encoder, head, pooling), nn.Identity()


class GatedTrailerEncoder(Encoder):
    """MMX-Trailer-20 trailer encoder: collaborative gating of experts per clip, 9-clip sequences, 2048-d bottleneck."""

    name = "mmx_gated"
    takes = "per-clip expert features {modality: (B, clips, D) or (B, clips, F, D)} and a clip mask"
    returns = "(B, 2048) trailer embeddings; also per-half and per-sequence embeddings"

    class Config(Config):
        experts: list[str] | None = Field(None, description="modalities to use, in this order; None uses every expert of the recipe")
        fusion: Literal["gated", "concat"] = Field(
            "gated",
            description="collaborative gating, or naive concatenation through an MLP (the ablation's baseline); one expert is passed straight to its GEM",
        )
        input_norm: bool = Field(
            True,
            description="standardise each expert feature (each descriptor for sets) over its dimensions before projecting; experts' raw scales differ by orders of magnitude",
        )
        expert_dim: int = Field(768, ge=1, description="each expert's clip feature is projected to this size")
        netvlad_clusters: int = Field(16, ge=1, description="NetVLAD clusters for experts that give descriptor sets (audio)")
        gating_hidden: int = Field(768, ge=1, description="hidden size of the pairwise g and the attention h MLPs")
        clip_dim: int = Field(128, ge=1, description="the L2-normalised clip vector")
        clips_per_sequence: int = Field(
            9, ge=1, description="clips per sequence (consecutive clips, a remainder dropped); the one place the sequence length is set"
        )
        sequence_hidden: int = Field(512, ge=1, description="hidden size of the sequence MLP j")
        sequence_dim: int = Field(256, ge=1, description="sequence vector size (output of j)")
        max_sequences: int = Field(40, ge=1, description="sequence slots of the bottleneck input (40 x 256 = 10240 in the paper)")
        sequence_fusion: Literal["concat", "sum"] = Field(
            "concat", description="concatenate sequence slots (paper supplementary) or sum them (paper section 3.2)"
        )
        bottleneck_hidden: int = Field(2048, ge=1, description="hidden size of the bottleneck MLP k")
        output_dim: int = Field(2048, ge=1, description="the trailer embedding (output of k)")
        dropout: float = Field(0.0, ge=0, lt=1, description="dropout inside j and k")

    def output_dim(self) -> int:
        return self.config.output_dim

    def build(self, dims: dict[str, tuple[int, ...]]) -> Any:
        missing = [m for m in (self.config.experts or []) if m not in dims]
        if missing:
            raise ValueError(f"encoder experts {missing} are not among the features {sorted(dims)}")
        return _modules()["TrailerModel"](dims, self.config)

    @classmethod
    def example_config(cls, tmp_path: Any) -> dict[str, Any]:
        return {
            "expert_dim": 16,
            "gating_hidden": 16,
            "clip_dim": 8,
            "clips_per_sequence": 3,
            "sequence_hidden": 16,
            "sequence_dim": 8,
            "max_sequences": 4,
            "bottleneck_hidden": 16,
            "output_dim": 16,
        }


def nt_xent(z1: Any, z2: Any, temperature: float = 0.5) -> Any:
    """NT-Xent (SimCLR) loss of paired rows ``z1[i]``, ``z2[i]``, averaged over all 2N anchors.

    Each anchor's positive is its pair; the other 2(N - 1) rows of the batch are its negatives.
    Under ``torchrun`` the batch is the global one: each rank's anchors are its own rows, its
    negatives every rank's rows (:func:`moviekit.distributed.gather_with_grad`); in one process
    that is the same computation.
    """
    import torch
    import torch.nn.functional as F

    from moviekit import gather_with_grad

    z1, z2 = F.normalize(z1.float(), dim=-1), F.normalize(z2.float(), dim=-1)
    n = z1.shape[0]
    all1, offset = gather_with_grad(z1, with_offset=True)
    all2 = gather_with_grad(z2)
    total = all1.shape[0]
    anchors = torch.cat([z1, z2], dim=0)
    sim = anchors @ torch.cat([all1, all2], dim=0).T / temperature  # (2n, 2N)
    own = torch.arange(n, device=z1.device) + offset
    selves = torch.cat([own, own + total])
    sim = sim.masked_fill(F.one_hot(selves, 2 * total).bool(), float("-inf"))
    target = torch.cat([own + total, own])
    return F.cross_entropy(sim, target)


COMPONENTS = [GatedTrailerEncoder]
