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

from fusionrec.evaluation.vectors import VectorTable, blocks_of
from fusionrec.retrieval.collaborative.bpr import BPRModel
from fusionrec.types import Interaction


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
    """BPR-MF (retrieval.collaborative.bpr) scores: the user's factors, else the context items' mean."""

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
    """SASRec (retrieval.collaborative.sasrec) next-item scores after the user's history (oldest first)."""

    model: Any  # retrieval.collaborative.sasrec.SASRecModel
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
    """Similarity of each candidate to the user's history in the blocks of `modalities`, fused by
    `fusion` (`retrieval.fusion.profile_scores`); the user's profile in a block is the unit mean of
    the history items' vectors there."""
    from fusionrec.retrieval.fusion import profile_scores

    blocks = [b for b in blocks_of(modalities) if b in table.blocks()]
    profile = {b: p for b in blocks if (p := table.profile(b, history)) is not None}
    if not profile:
        return [0.0] * len(candidates)
    return profile_scores(fusion, profile, _rows(table, candidates), weights, late_combine, cross)


def _rows(table: VectorTable, candidates: Sequence[str]) -> list[dict[str, np.ndarray | None]]:
    """Each candidate's vector in every block of the table (None where it has none)."""
    return [{b: table.get(b, c) for b in table.blocks()} for c in candidates]


def cross_weights(
    module: Any,
    table: VectorTable,
    profile: Mapping[str, np.ndarray],
    candidates: Sequence[str],
    present: Mapping[str, Mapping[str, Any]],
) -> Any:
    """(n, M) attention weights over the module's blocks for each candidate (masked to `present`)."""
    import torch

    from fusionrec.retrieval.fusion import cross_inputs

    blocks = [present[c] for c in candidates]
    inputs = cross_inputs(module, profile.get("text"), _rows(table, candidates), blocks)
    with torch.inference_mode():
        return module.weights(inputs["query"], inputs["items"], inputs["mask"])[0]


def load_cross(cfg: Any, table: VectorTable) -> tuple[Any, bool]:
    """The cross-modal module ``retrieval.cross_weights`` names when it fits the table's blocks, else
    an untrained one (`retrieval.fusion.load_cross_fusion`)."""
    from fusionrec.retrieval.fusion import load_cross_fusion, query_dim

    dims = {b: table.dims[b] for b in table.blocks()}
    return load_cross_fusion(cfg, dims, query_dim(table.dims))


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
