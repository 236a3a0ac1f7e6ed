"""Non-LLM systems: random, popularity, BPR-MF, SASRec (both trained here, seeded) and retrieval-only.

Every system ranks a list of candidate ids for a context (a user's history, or the items mentioned
in a dialogue) and returns them best first; ties keep the candidates' given order, which the
protocol already shuffled, so no system profits from the order candidates are listed in.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from evaluation.vectors import VectorTable, blocks_of
from fusionrec.types import Interaction
from retrieval.collaborative import BPRModel


def order_by(candidates: Sequence[str], scores: Sequence[float]) -> list[str]:
    """Candidates by descending score; equal scores keep the given order."""
    idx = sorted(range(len(candidates)), key=lambda i: (-float(scores[i]), i))
    return [candidates[i] for i in idx]


def example_rng(seed: int, key: str) -> np.random.Generator:
    return np.random.default_rng([int(seed), zlib.crc32(key.encode())])


# --- random and popularity -------------------------------------------------------------------------
@dataclass
class RandomRanker:
    """A seeded random permutation per example (same seed and example -> same order)."""

    seed: int = 0
    name: str = "random"

    def rank(self, key: str, candidates: Sequence[str], context: Sequence[str] = ()) -> list[str]:
        perm = example_rng(self.seed, key).permutation(len(candidates))
        return [candidates[i] for i in perm]


@dataclass
class PopularityRanker:
    """Most interacted-with items first (counts from the training interactions or mentions)."""

    counts: Mapping[str, float]
    name: str = "popularity"

    @classmethod
    def from_interactions(cls, train: Sequence[Interaction]) -> PopularityRanker:
        counts: dict[str, float] = {}
        for x in train:
            counts[str(x.item)] = counts.get(str(x.item), 0.0) + 1.0
        return cls(counts)

    def rank(self, key: str, candidates: Sequence[str], context: Sequence[str] = ()) -> list[str]:
        return order_by(candidates, [self.counts.get(c, 0.0) for c in candidates])


@dataclass
class BPRRanker:
    """BPR-MF (retrieval.collaborative) scores: the user's factors, else the context items' mean."""

    model: BPRModel
    name: str = "bpr"

    def rank(
        self, key: str, candidates: Sequence[str], context: Sequence[str] = (), user: str = ""
    ) -> list[str]:
        if user:
            return order_by(candidates, self.model.scores(user, candidates))
        return order_by(candidates, self.model.item_scores(context, candidates))


@dataclass
class SASRecRanker:
    """SASRec (retrieval.sequential) next-item scores after the user's history (oldest first)."""

    model: Any  # retrieval.sequential.SASRecModel
    name: str = "sasrec"

    def rank(self, key: str, candidates: Sequence[str], context: Sequence[str] = ()) -> list[str]:
        return order_by(candidates, self.model.scores(list(context), list(candidates)))


# --- retrieval-only ---------------------------------------------------------------------------------
def retrieval_scores(
    table: VectorTable,
    history: Sequence[str],
    candidates: Sequence[str],
    modalities: Sequence[str],
    fusion: str,
    weights: Mapping[str, float],
    late_combine: str = "rrf",
    cross: Any = None,
) -> list[float]:
    """Similarity of each candidate to the user's history, per block, fused by `fusion`.

    The user's profile in a block is the unit mean of the history items' vectors there. early: one
    weighted concatenation per side (retrieval.fusion.early_fuse), cosine; late: per-block cosine
    rankings combined by RRF or the weighted score mean; cross: the cross-modal attention module
    (queried by the text profile) weighting the per-block cosines.
    """
    from retrieval.fusion import block_weight, early_fuse, rrf, weighted_sum

    blocks = [b for b in blocks_of(modalities) if b in table.blocks()]
    profile = {b: p for b in blocks if (p := table.profile(b, history)) is not None}
    blocks = [b for b in blocks if b in profile]
    if not blocks:
        return [0.0] * len(candidates)
    sims: dict[str, dict[str, float]] = {c: {} for c in candidates}
    for b in blocks:
        for c in candidates:
            v = table.get(b, c)
            if v is not None:
                sims[c][b] = float(v @ profile[b])
    if fusion == "early":
        layout = [(b, table.dims[b]) for b in blocks]
        user = early_fuse(layout, profile, weights)
        return [
            float(early_fuse(layout, {b: table.get(b, c) for b in blocks}, weights) @ user)
            for c in candidates
        ]
    if fusion == "late":
        if late_combine == "weighted":
            return [weighted_sum(sims[c], weights) for c in candidates]
        lists = [order_by([c for c in candidates if b in sims[c]], [sims[c][b] for c in candidates if b in sims[c]])
                 for b in blocks]  # fmt: skip
        fused = rrf(lists, [block_weight(weights, b) for b in blocks])
        return [fused.get(c, 0.0) for c in candidates]
    if fusion == "cross":
        return cross_scores(cross, table, profile, candidates, sims)
    raise ValueError(f"unknown fusion {fusion!r} (known: early, late, cross)")


def cross_scores(
    module: Any,
    table: VectorTable,
    profile: Mapping[str, np.ndarray],
    candidates: Sequence[str],
    sims: Mapping[str, Mapping[str, float]],
) -> list[float]:
    """Scores of `retrieval.fusion.CrossModalFusion` for one user (blocks it was not given are masked)."""
    import torch

    weights = cross_weights(module, table, profile, candidates, sims)
    blocks = module.blocks
    s = torch.tensor([[sims[c].get(b, 0.0) for b in blocks] for c in candidates], dtype=torch.float32)
    return (weights * s).sum(-1).tolist()


def cross_weights(
    module: Any,
    table: VectorTable,
    profile: Mapping[str, np.ndarray],
    candidates: Sequence[str],
    present: Mapping[str, Mapping[str, Any]],
) -> Any:
    """(n, M) attention weights over the module's blocks for each candidate (masked to `present`)."""
    import torch

    blocks = module.blocks
    query = profile.get("text")
    if query is None or query.shape[0] != module.query_dim:
        query = np.zeros(module.query_dim, dtype=np.float32)
    items = {}
    for b in blocks:
        dim = module.dims[b]
        rows = [table.get(b, c) for c in candidates]
        items[b] = torch.tensor(
            np.stack([r if r is not None and r.shape[0] == dim else np.zeros(dim, np.float32) for r in rows])[
                None
            ]
        )
    mask = torch.tensor([[[b in present[c] for b in blocks] for c in candidates]], dtype=torch.bool)
    with torch.inference_mode():
        w = module.weights(torch.tensor(query, dtype=torch.float32)[None], items, mask)
    return w[0]


def load_cross(cfg: Any, table: VectorTable) -> tuple[Any, bool]:
    """The trained cross-modal module when one fits the table's blocks, else an untrained one."""
    from retrieval.fusion import load_cross_fusion

    dims = {b: table.dims[b] for b in table.blocks()}
    query_dim = table.dims.get("text") or table.dims.get("image_text") or 1
    return load_cross_fusion(cfg, dims, query_dim)


@dataclass
class RetrievalRanker:
    """Candidates by similarity of their stored vectors to the user's history (or dialogue) vectors."""

    table: VectorTable
    modalities: Sequence[str]
    fusion: str
    weights: Mapping[str, float]
    late_combine: str = "rrf"
    cross: Any = None
    name: str = "retrieval"

    def scores(self, history: Sequence[str], candidates: Sequence[str]) -> list[float]:
        return retrieval_scores(
            self.table,
            history,
            candidates,
            self.modalities,
            self.fusion,
            self.weights,
            self.late_combine,
            self.cross,
        )

    def rank(self, key: str, candidates: Sequence[str], context: Sequence[str] = ()) -> list[str]:
        return order_by(candidates, self.scores(context, candidates))
