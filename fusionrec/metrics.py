"""Rank metrics shared by training, the collaborative prior and the evaluation (one relevant item).

A rank here is 0-based: the number of candidates placed before the target (0 = first). None means
the target was not ranked at all and scores 0 on every metric. Ranks from scores count ties against
the target. Pure python/numpy.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np


def rank_in(ranked: Sequence[str], target: str) -> int | None:
    """0-based position of `target` in `ranked` (best first), None when absent."""
    for i, rid in enumerate(ranked):
        if rid == target:
            return i
    return None


def rank_by_score(scores: Sequence[float] | np.ndarray, target: int) -> int:
    """0-based rank of the candidate at index `target` by descending score (ties count against it)."""
    s = np.asarray(scores)
    return int((s >= s[target]).sum()) - 1


def hit(rank: int | None, k: int) -> float:
    """HR@k of one example: 1 when the target is in the top k."""
    return 1.0 if rank is not None and rank < k else 0.0


def ndcg(rank: int | None, k: int) -> float:
    """NDCG@k of one example: 1 / log2(rank + 2) inside the top k, else 0."""
    return 1.0 / math.log2(rank + 2) if rank is not None and rank < k else 0.0


def reciprocal_rank(rank: int | None) -> float:
    """MRR term of one example: 1 / (rank + 1), 0 when absent."""
    return 1.0 / (rank + 1) if rank is not None else 0.0


def mean_metrics(
    ranks: Iterable[int | None], hr_ks: Sequence[int] = (1, 10), ndcg_ks: Sequence[int] = (10,), mrr: bool = False
) -> dict[str, float]:
    """Means over examples: {"hr@k": ..., "ndcg@k": ..., ["mrr"]}; every value 0 for no ranks."""
    ranks = list(ranks)
    n = max(1, len(ranks))
    out = {f"hr@{k}": sum(hit(r, k) for r in ranks) / n for k in hr_ks}
    out.update({f"ndcg@{k}": sum(ndcg(r, k) for r in ranks) / n for k in ndcg_ks})
    if mrr:
        out["mrr"] = sum(reciprocal_rank(r) for r in ranks) / n
    return out
