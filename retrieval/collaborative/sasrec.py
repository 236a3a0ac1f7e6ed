"""SASRec: a self-attentive sequential recommender (Kang & McAuley, 2018) in plain torch.

Items are rows of one embedding table (row 0 = padding) shared by the input and the output; a
causal pre-LayerNorm transformer over the left-padded, learned-position-embedded history gives a
state whose dot product with each item's embedding (+ an optional learned per-item bias) scores
that item as the next one. Trained on every position of every user's sequence (long sequences are
cut into windows of `max_len` steps) with a full softmax cross-entropy over the catalog; AdamW;
deterministic for a seed on the CPU. An empty history is scored from the mean training state.

Saved as safetensors weights + a JSON config (never pickle). Import this module lazily: it imports
torch at load time.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

WEIGHTS_FILE = "sasrec.safetensors"
CONFIG_FILE = "sasrec.json"
FORMAT_VERSION = 1


class _Block(nn.Module):
    """Pre-LayerNorm transformer block: causal self-attention, then a position-wise feed-forward."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.heads = heads
        self.dropout = dropout
        self.ln1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.ln2 = nn.LayerNorm(dim)
        self.ff = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Dropout(dropout), nn.Linear(dim, dim))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(
            q, k, v, attn_mask=allowed, dropout_p=self.dropout if self.training else 0.0
        )
        x = x + self.drop(self.out(a.transpose(1, 2).reshape(b, n, d)))
        return x + self.drop(self.ff(self.ln2(x)))


class SASRecNet(nn.Module):
    """Item + position embeddings -> causal transformer blocks -> final LayerNorm -> item logits."""

    def __init__(
        self, n_items: int, dim: int, layers: int, heads: int, max_len: int, dropout: float, item_bias: bool
    ) -> None:
        super().__init__()
        self.n_items, self.dim, self.max_len = n_items, dim, max_len
        self.item_emb = nn.Embedding(n_items + 1, dim, padding_idx=0)
        self.pos_emb = nn.Embedding(max_len, dim)
        self.emb_drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(_Block(dim, heads, dropout) for _ in range(layers))
        self.ln = nn.LayerNorm(dim)
        self.bias = nn.Parameter(torch.zeros(n_items + 1)) if item_bias else None
        # The state an empty history is scored with: the mean final state over training positions.
        self.register_buffer("empty_state", torch.zeros(dim))
        nn.init.normal_(self.item_emb.weight, std=dim**-0.5)
        nn.init.normal_(self.pos_emb.weight, std=dim**-0.5)
        with torch.no_grad():
            self.item_emb.weight[0].zero_()

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        """(B, L) left-padded item rows -> (B, L, dim) states (zero at padding)."""
        n = seq.shape[1]
        valid = seq > 0
        x = self.item_emb(seq) * math.sqrt(self.dim) + self.pos_emb.weight[self.max_len - n :]
        x = self.emb_drop(x) * valid[..., None]
        causal = torch.ones(n, n, dtype=torch.bool, device=seq.device).tril()
        # Causal, real keys only; every position may see itself (so padding rows never divide by 0).
        allowed = (causal & valid[:, None, :]) | torch.eye(n, dtype=torch.bool, device=seq.device)
        allowed = allowed[:, None]  # (B, 1, L, L): broadcast over heads
        for block in self.blocks:
            x = block(x, allowed) * valid[..., None]
        return self.ln(x)

    def logits(self, states: torch.Tensor) -> torch.Tensor:
        """(..., dim) states -> (..., n_items + 1) scores (column 0 is padding; ignore it)."""
        out = states @ self.item_emb.weight.T
        return out if self.bias is None else out + self.bias


@dataclass
class SASRecModel:
    """A trained SASRec network and its item table (row 0 = padding, item rows from 1)."""

    items: dict[str, int]
    net: nn.Module
    max_len: int
    history: list[dict[str, float]] = field(default_factory=list)  # per epoch: epoch, loss, seconds
    seconds: float = 0.0

    def scores(self, history: Sequence[str], candidates: Sequence[str]) -> list[float]:
        """Score of each candidate as the next item after `history` (oldest first; unknown ids skipped).

        An item never trained gets -inf; an empty history is scored from the mean training state.
        """
        return [float(s) for s in self.batch_scores([history], [candidates])[0]]

    def batch_scores(
        self, histories: Sequence[Sequence[str]], candidates: Sequence[Sequence[str]], batch_size: int = 256
    ) -> np.ndarray:
        """(B, n) scores: row b scores candidates[b] after histories[b] (every row has n candidates)."""
        if len(histories) != len(candidates):
            raise ValueError(f"{len(histories)} histories but {len(candidates)} candidate lists")
        if not len(histories):
            return np.zeros((0, 0), dtype=np.float32)
        n = len(candidates[0])
        if any(len(c) != n for c in candidates):
            raise ValueError("every candidate list must have the same length")
        cand = torch.tensor(
            [[self.items.get(str(c), 0) for c in row] for row in candidates], dtype=torch.long
        )
        out = np.empty((len(histories), n), dtype=np.float32)
        net = self.net.eval()
        with torch.no_grad():
            for start in range(0, len(histories), batch_size):
                rows = [self._rows(h) for h in histories[start : start + batch_size]]
                seq = _left_pad(rows, self.max_len)
                states = net(seq)[:, -1]
                empty = seq[:, -1] == 0
                if bool(empty.any()):
                    states[empty] = net.empty_state
                part = net.logits(states).gather(1, cand[start : start + batch_size])
                out[start : start + len(rows)] = part.numpy()
        out[cand.numpy() == 0] = -np.inf
        return out

    def _rows(self, history: Sequence[str]) -> list[int]:
        rows = [self.items[h] for h in map(str, history) if h in self.items]
        return rows[-self.max_len :]

    def save(self, folder: Path) -> None:
        """sasrec.safetensors (weights) + sasrec.json (config, item ids by row, training history)."""
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.net.state_dict().items()}
        save_file(state, str(folder / WEIGHTS_FILE))
        ids = sorted(self.items, key=self.items.__getitem__)
        if [self.items[i] for i in ids] != list(range(1, len(ids) + 1)):
            raise ValueError("item rows must be 1..n")
        net = self.net
        meta = {
            "version": FORMAT_VERSION,
            "config": {
                "dim": net.dim,
                "layers": len(net.blocks),
                "heads": net.blocks[0].heads if len(net.blocks) else 1,
                "max_len": self.max_len,
                "dropout": net.emb_drop.p,
                "item_bias": net.bias is not None,
            },
            "items": ids,
            "history": self.history,
            "seconds": self.seconds,
        }
        (folder / CONFIG_FILE).write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, folder: Path) -> SASRecModel:
        from safetensors.torch import load_file

        folder = Path(folder)
        meta = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
        if meta.get("version") != FORMAT_VERSION:
            raise ValueError(f"{folder / CONFIG_FILE}: unsupported SASRec format {meta.get('version')!r}")
        c = meta["config"]
        net = SASRecNet(
            len(meta["items"]), c["dim"], c["layers"], c["heads"], c["max_len"], c["dropout"], c["item_bias"]
        )
        net.load_state_dict(load_file(str(folder / WEIGHTS_FILE)))
        items = {item: k + 1 for k, item in enumerate(meta["items"])}
        return cls(items, net.eval(), c["max_len"], meta.get("history", []), float(meta.get("seconds", 0.0)))


def _left_pad(rows: Sequence[Sequence[int]], length: int) -> torch.Tensor:
    out = torch.zeros(len(rows), length, dtype=torch.long)
    for b, r in enumerate(rows):
        if r:
            out[b, length - len(r) :] = torch.tensor(r[-length:], dtype=torch.long)
    return out


def _windows(seq: Sequence[int], max_len: int) -> list[list[int]]:
    """Windows of up to max_len + 1 items, cut from the end, that together cover every transition once."""
    out = []
    end = len(seq)
    while end > 1:
        out.append(list(seq[max(0, end - max_len - 1) : end]))
        end -= max_len
    return out


def train_sasrec(
    sequences: Mapping[str, Sequence[str]],
    item_ids: Sequence[str],
    *,
    dim: int = 64,
    layers: int = 2,
    heads: int = 1,
    max_len: int = 50,
    dropout: float = 0.2,
    epochs: int = 30,
    lr: float = 3e-3,
    batch_size: int = 128,
    item_bias: bool = True,
    seed: int = 0,
    progress: bool = False,
) -> SASRecModel:
    """Train SASRec on user -> item ids in time order (training items only).

    Every transition seq[t] -> seq[t + 1] is a training target (full softmax over the catalog,
    padding masked); ids not in `item_ids` are dropped. CPU; deterministic for a seed (the global
    torch RNG is forked, so the caller's state is left as it was).
    """
    from tqdm import tqdm

    t0 = time.perf_counter()
    items = {}
    for i in map(str, item_ids):
        items.setdefault(i, len(items) + 1)
    rows: list[list[int]] = []
    for user in sorted(sequences, key=str):
        seq = [items[i] for i in map(str, sequences[user]) if i in items]
        rows.extend(_windows(seq, max_len))
    data = _left_pad(rows, max_len + 1) if rows else torch.zeros(0, max_len + 1, dtype=torch.long)
    inputs, targets = data[:, :-1], data[:, 1:]
    history: list[dict[str, Any]] = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed) * 1_000_003 + 7)
        gen = torch.Generator().manual_seed(int(seed) * 1_000_003 + 4242)
        net = SASRecNet(len(items), dim, layers, heads, max_len, dropout, item_bias)
        opt = torch.optim.AdamW(net.parameters(), lr=lr, betas=(0.9, 0.98), weight_decay=0.0)
        bar = tqdm(range(epochs), desc="sasrec", unit="epoch", disable=not progress, leave=False)
        for epoch in bar:
            te = time.perf_counter()
            net.train()
            perm = torch.randperm(len(data), generator=gen)
            total, count = 0.0, 0
            for start in range(0, len(perm), batch_size):
                idx = perm[start : start + batch_size]
                x, y = inputs[idx], targets[idx]
                mask = x > 0  # left padding: a real input always has a real target
                states = net(x)[mask]
                logits = net.logits(states)[:, 1:]  # drop the padding column
                loss = F.cross_entropy(logits, y[mask] - 1)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += float(loss.detach()) * int(mask.sum())
                count += int(mask.sum())
            history.append(
                {"epoch": epoch + 1, "loss": total / max(count, 1), "seconds": time.perf_counter() - te}
            )
            bar.set_postfix(loss=f"{history[-1]['loss']:.3f}")
        net.eval()
        with torch.no_grad():
            acc, n = torch.zeros(dim), 0
            for start in range(0, len(data), 512):
                x = inputs[start : start + 512]
                acc += net(x)[x > 0].sum(0)
                n += int((x > 0).sum())
            net.empty_state.copy_(acc / max(n, 1))
    return SASRecModel(items, net, max_len, history, time.perf_counter() - t0)
