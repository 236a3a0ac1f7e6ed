"""Collaborative item vectors: BPR matrix factorisation on implicit feedback, and the item table
that the hybrid item token carries next to the item's text vector (LLaRA feeds a sequential
recommender's item embeddings to the LLM the same way).

`train_bpr` is also the evaluation's BPR baseline. `collab_table` turns a trained model into one
vector per item — the item factors and the item bias, standardised per dimension and scaled to unit
norm on average, so they sit beside the unit-norm text vector — and `with_collab` appends it to
item vectors (zeros for an item the model never saw). Tables are saved as safetensors.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fusionrec.types import Interaction

TABLE_FILE = "collab.safetensors"


@dataclass
class BPRModel:
    """Matrix factorisation trained with the BPR pairwise loss on implicit feedback."""

    users: dict[str, int]
    items: dict[str, int]
    user_factors: np.ndarray
    item_factors: np.ndarray
    item_bias: np.ndarray
    history: list[dict[str, float]] = field(default_factory=list)  # per epoch: loss, seconds
    seconds: float = 0.0

    def scores(self, user: str, candidates: Sequence[str]) -> list[float]:
        """u . v_i + b_i; an unknown user gets the bias only; an unknown item -inf."""
        u = self.users.get(str(user))
        return self._biased_dot(None if u is None else self.user_factors[u], candidates)

    def item_scores(self, context: Sequence[str], candidates: Sequence[str]) -> list[float]:
        """Item-to-item: mean factor similarity to the context items (+ bias); bias only without one."""
        ctx = [self.items[c] for c in context if c in self.items]
        return self._biased_dot(self.item_factors[ctx].mean(axis=0) if ctx else None, candidates)

    def _biased_dot(self, query: np.ndarray | None, candidates: Sequence[str]) -> list[float]:
        """b_i (+ query . v_i when there is a query) per candidate; -inf for an item never trained."""
        out = []
        for c in candidates:
            j = self.items.get(c)
            if j is None:
                out.append(float("-inf"))
                continue
            s = float(self.item_bias[j])
            if query is not None:
                s += float(query @ self.item_factors[j])
            out.append(s)
        return out


def train_bpr(
    train: Sequence[Interaction],
    item_ids: Sequence[str],
    dim: int = 32,
    epochs: int = 40,
    lr: float = 0.05,
    reg: float = 0.002,
    seed: int = 0,
    batch_size: int = 1024,
    progress: bool = False,
) -> BPRModel:
    """Mini-batch SGD on the BPR loss, one uniformly sampled never-rated negative per positive.

    Torch on the CPU (index_add_ scatters the updates; deterministic for a seed); seconds on ML-100k.
    """
    import torch
    from tqdm import tqdm

    t0 = time.perf_counter()
    gen = torch.Generator().manual_seed(int(seed) * 1_000_003 + 4242)
    items = {str(i): k for k, i in enumerate(item_ids)}
    users: dict[str, int] = {}
    pairs = []
    for x in train:
        j = items.get(str(x.item))
        if j is None:
            continue
        pairs.append((users.setdefault(str(x.user), len(users)), j))
    pairs_t = torch.unique(torch.tensor(pairs, dtype=torch.long).reshape(-1, 2), dim=0)
    n_users, n_items = len(users), len(items)
    pu, pi = pairs_t[:, 0], pairs_t[:, 1]
    rated = torch.zeros(n_users, n_items, dtype=torch.bool)
    rated[pu, pi] = True
    U = torch.randn(n_users, dim, generator=gen, dtype=torch.float64) * 0.1
    V = torch.randn(n_items, dim, generator=gen, dtype=torch.float64) * 0.1
    b = torch.zeros(n_items, dtype=torch.float64)
    history = []
    for epoch in tqdm(range(epochs), desc="bpr", unit="epoch", disable=not progress, leave=False):
        te = time.perf_counter()
        perm = torch.randperm(len(pu), generator=gen)
        loss = 0.0
        for start in range(0, len(perm), batch_size):
            idx = perm[start : start + batch_size]
            u, i = pu[idx], pi[idx]
            j = torch.randint(0, n_items, (len(idx),), generator=gen)
            for _ in range(3):  # resample negatives the user rated
                clash = rated[u, j]
                if not bool(clash.any()):
                    break
                j[clash] = torch.randint(0, n_items, (int(clash.sum()),), generator=gen)
            uu, vi, vj = U[u], V[i], V[j]
            x = (uu * (vi - vj)).sum(1) + b[i] - b[j]
            g = torch.sigmoid(-x)  # d(-log sigmoid(x)) / d(-x)
            loss += float(torch.nn.functional.softplus(-x).sum())
            U.index_add_(0, u, lr * (g[:, None] * (vi - vj) - reg * uu))
            V.index_add_(0, i, lr * (g[:, None] * uu - reg * vi))
            V.index_add_(0, j, lr * (-g[:, None] * uu - reg * vj))
            b.index_add_(0, i, lr * (g - reg * b[i]))
            b.index_add_(0, j, lr * (-g - reg * b[j]))
        history.append({"epoch": epoch + 1, "loss": loss / len(perm), "seconds": time.perf_counter() - te})
    return BPRModel(users, items, U.numpy(), V.numpy(), b.numpy(), history, time.perf_counter() - t0)


def collab_table(model: BPRModel) -> dict[str, np.ndarray]:
    """Per item: [factors, bias], each dimension standardised over items, scaled to unit mean norm."""
    raw = np.concatenate([model.item_factors, model.item_bias[:, None]], axis=1).astype(np.float64)
    z = (raw - raw.mean(0)) / (raw.std(0) + 1e-8)
    z /= float(np.linalg.norm(z, axis=1).mean()) or 1.0
    return {item: z[j].astype(np.float32) for item, j in model.items.items()}


def with_collab(
    vectors: Mapping[str, np.ndarray], table: Mapping[str, np.ndarray], lookup: bool = True
) -> dict[str, np.ndarray]:
    """Each vector with the item's collaborative vector appended (zeros for an item not in `table`);
    `lookup=False`: zeros for every item (items of another catalog, ReDial's, whose ids must not pick up
    the table's vectors)."""
    if not table:
        return dict(vectors)
    zero = np.zeros_like(next(iter(table.values())))
    return {
        k: np.concatenate([np.asarray(v, dtype=np.float32), table.get(k, zero) if lookup else zero])
        for k, v in vectors.items()
    }


def save_table(table: Mapping[str, np.ndarray], path: Path) -> None:
    from safetensors.numpy import save_file

    save_file({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in table.items()}, str(path))


def load_table(path: Path) -> dict[str, np.ndarray]:
    """A saved table; {} when the file does not exist (a checkpoint trained without one)."""
    if not Path(path).is_file():
        return {}
    from safetensors.numpy import load_file

    return dict(load_file(str(path)))
