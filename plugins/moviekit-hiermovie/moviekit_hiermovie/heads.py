"""VidSitu's three heads on (contextualized) event tokens, and the role text vocabulary.

* verbs: an MLP per event over the verb vocabulary;
* relations: an MLP over ``[h_i, h_3, one-hot slot]`` for events 1, 2, 4, 5 (VidSitu pairs each
  event with event 3);
* roles: a small GRU decoder, initialised from the event's token, that writes the event's
  roles as text (``ARG0 ... ARG1 ... ASCN ...``), trained with teacher forcing and decoded greedily.
"""

from __future__ import annotations

from typing import Any

PAD, BOS, EOS, UNK = 0, 1, 2, 3
SPECIALS = ["<pad>", "<bos>", "<eos>", "<unk>"]
#: Event indices paired with event 3 (index 2) by the relation head.
REL_SLOTS = (0, 1, 3, 4)


def build_vocab(texts: list[str]) -> list[str]:
    return SPECIALS + sorted({w for t in texts for w in t.split()})


def encode_text(text: str, index: dict[str, int], max_len: int) -> list[int]:
    ids = [index.get(w, UNK) for w in text.split()][: max_len - 1] + [EOS]
    return ids + [PAD] * (max_len - len(ids))


def build_heads(
    in_dim: int, n_verbs: int, n_relations: int, vocab_size: int, hidden: int = 512, role_dim: int = 256, dropout: float = 0.1
) -> Any:
    import torch
    from torch import nn

    from moviekit import mlp

    class VidSituHeads(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.verb = mlp([in_dim, hidden, n_verbs], dropout=dropout)
            self.relation = mlp([2 * in_dim + len(REL_SLOTS), hidden, n_relations], dropout=dropout)
            self.role_init = nn.Linear(in_dim, role_dim)
            self.role_emb = nn.Embedding(vocab_size, role_dim, padding_idx=PAD)
            self.role_gru = nn.GRU(role_dim, role_dim, batch_first=True)
            self.role_out = nn.Linear(role_dim, vocab_size)

        def verbs(self, h: torch.Tensor) -> torch.Tensor:
            return self.verb(h)

        def relations(self, h: torch.Tensor) -> torch.Tensor:
            B = h.shape[0]
            slots = torch.eye(len(REL_SLOTS), device=h.device, dtype=h.dtype).expand(B, -1, -1)
            pairs = torch.cat([h[:, list(REL_SLOTS)], h[:, 2:3].expand(-1, len(REL_SLOTS), -1), slots], -1)
            return self.relation(pairs)

        def role_logits(self, h: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
            """Teacher forcing: ``h`` (N, D), ``targets`` (N, L) -> (N, L, vocab)."""
            inp = torch.cat([torch.full_like(targets[:, :1], BOS), targets[:, :-1]], 1)
            h0 = torch.tanh(self.role_init(h)).unsqueeze(0)
            out, _ = self.role_gru(self.role_emb(inp), h0)
            return self.role_out(out)

        @torch.no_grad()
        def generate(self, h: torch.Tensor, max_len: int) -> torch.Tensor:
            state = torch.tanh(self.role_init(h)).unsqueeze(0)
            tok = torch.full((h.shape[0], 1), BOS, dtype=torch.long, device=h.device)
            out = []
            for _ in range(max_len):
                o, state = self.role_gru(self.role_emb(tok), state)
                tok = self.role_out(o).argmax(-1)
                out.append(tok)
            return torch.cat(out, 1)

    return VidSituHeads()


def decode_text(ids: list[int], vocab: list[str]) -> str:
    words = []
    for i in ids:
        if i == EOS:
            break
        if i >= len(SPECIALS):
            words.append(vocab[i])
    return " ".join(words)
