"""Fusion of modality vectors and scores: early (weighted concatenation), late (RRF / weighted sum)
and cross-modal (a small attention module whose weights the finetune recipes train).

Blocks are the vector spaces an item can have a vector in:

| block | item vector | query vectors that search it |
|---|---|---|
| ``text`` | text encoder(title, year, genres, overview, tags) | query text, audio transcript |
| ``image_text`` | poster in the text space (CLIP / zero-shot bridge) | image in text space [1] |
| ``image`` | poster, native image features | image, video frames (pooled) |
| ``audio`` | Whisper encoder states, pooled | audio (and a video's sound track) |
| ``video`` | sampled frames, native image features, pooled | video frames (pooled), image |
| ``tfidf`` | TF-IDF of the same text (optional) | query text, audio transcript |

[1] and the query text when ``retrieval.text_blocks`` lists it (not by default: the offline label
bridge does not really reach a text request).

Scores are reported per modality: ``image`` and ``image_text`` both count as ``image``. Only the
blocks a query really reaches vote, and an item is scored over the blocks it has (``pooled_rrf``,
``standardized`` + ``weighted_sum``, ``shared_blocks_cosine``): a missing poster or sound track
neither pulls it down nor up.

Two callers pick a strategy here: live retrieval scores a candidate pool with `pool_scores` (the
formulas above), the evaluation's retrieval-only baseline scores candidates against a user's
history profile with `profile_scores` (the fused cosine of whole early-fused vectors, RRF summed
over blocks, weighted means of raw cosines: the formulas its reported numbers were made with).
Both use `cross_inputs` for the cross-modal module, whose trained weights load only from the file
``retrieval.cross_weights`` names (`load_cross_fusion`).
"""

from __future__ import annotations

import json
import logging
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from fusionrec.config import Config
from fusionrec.vectors import l2_normalise

log = logging.getLogger(__name__)

BLOCKS = ("text", "image_text", "image", "audio", "video", "tfidf")
MODALITY_OF = {
    "text": "text",
    "image_text": "image",
    "image": "image",
    "audio": "audio",
    "video": "video",
    "tfidf": "tfidf",
}
FUSIONS = ("early", "late", "cross")  # retrieval.fusion
COMBINES = ("rrf", "weighted")  # retrieval.late_combine
RRF_K = 60  # the usual reciprocal-rank-fusion constant
UNTRAINED_WARNING = "cross-modal fusion is untrained: using equal weights per modality"


def block_weight(weights: Mapping[str, float], block: str) -> float:
    """A block's weight: its own key, else its modality's key (``image_text`` -> ``image``), else 1."""
    if block in weights:
        return float(weights[block])
    return float(weights.get(MODALITY_OF.get(block, block), 1.0))


# --- early fusion --------------------------------------------------------------------------------
def early_fuse(
    layout: Sequence[tuple[str, int]], parts: Mapping[str, np.ndarray | None], weights: Mapping[str, float]
) -> np.ndarray:
    """Weighted concatenation of the normalised block vectors; a missing block is zeros; unit length."""
    chunks = []
    for block, dim in layout:
        vec = parts.get(block)
        if vec is None:
            chunks.append(np.zeros(dim, dtype=np.float32))
            continue
        v = l2_normalise(vec)
        if v.shape[0] != dim:
            raise ValueError(f"block {block!r}: expected a {dim}-d vector, got {v.shape[0]}")
        chunks.append(block_weight(weights, block) * v)
    return l2_normalise(np.concatenate(chunks)) if chunks else np.zeros(0, dtype=np.float32)


def split_blocks(vec: np.ndarray, layout: Sequence[tuple[str, int]]) -> dict[str, np.ndarray]:
    """The blocks of an early-fused vector that are not all zeros (each normalised again)."""
    out, start = {}, 0
    v = np.asarray(vec, dtype=np.float32).reshape(-1)
    for block, dim in layout:
        part = v[start : start + dim]
        start += dim
        if np.any(part):
            out[block] = l2_normalise(part)
    return out


# --- late fusion ---------------------------------------------------------------------------------
def rrf(
    rankings: Sequence[Sequence[str]], weights: Sequence[float] | None = None, k: int = RRF_K
) -> dict[str, float]:
    """Reciprocal-rank fusion: score(id) = sum over lists of w / (k + rank), rank from 1."""
    scores: dict[str, float] = {}
    for li, ranking in enumerate(rankings):
        w = 1.0 if weights is None else float(weights[li])
        for rank, rid in enumerate(ranking, start=1):
            scores[rid] = scores.get(rid, 0.0) + w / (k + rank)
    return scores


def pooled_rrf(
    block_scores: Mapping[str, Mapping[str, float]], weights: Mapping[str, float], k: int = RRF_K
) -> dict[str, float]:
    """Reciprocal-rank fusion over a candidate pool, as a weighted mean over each item's own blocks.

    ``block_scores``: item id -> {block: exact score}. Each block ranks the items that have a score
    there (rank from 1); an item scores the weighted mean of 1 / (k + rank) over its blocks, so an
    item without a block (no poster, no audio) is neither pulled down by a missing vote nor up.
    """
    columns: dict[str, list[tuple[float, str]]] = {}
    for rid, scores in block_scores.items():
        for block, score in scores.items():
            columns.setdefault(block, []).append((score, rid))
    votes: dict[str, dict[str, float]] = {rid: {} for rid in block_scores}
    for block, column in columns.items():
        column.sort(key=lambda pair: -pair[0])
        for rank, (_, rid) in enumerate(column, start=1):
            votes[rid][block] = 1.0 / (k + rank)
    return {rid: weighted_sum(v, weights) for rid, v in votes.items()}


def standardized(block_scores: Mapping[str, Mapping[str, float]]) -> dict[str, dict[str, float]]:
    """Each block's scores as z-scores over the items that have the block (0 when they all tie).

    Blocks score on different scales (poster features are far more alike than overviews), so a raw
    weighted mean would favour items that have the high-scoring block; z-scores put them on one.
    """
    columns: dict[str, list[float]] = {}
    for scores in block_scores.values():
        for block, score in scores.items():
            columns.setdefault(block, []).append(score)
    stats = {b: (float(np.mean(v)), float(np.std(v))) for b, v in columns.items()}
    return {
        rid: {b: (s - stats[b][0]) / stats[b][1] if stats[b][1] > 0 else 0.0 for b, s in scores.items()}
        for rid, scores in block_scores.items()
    }


def shared_blocks_cosine(block_scores: Mapping[str, float], weights: Mapping[str, float]) -> float:
    """The early-fused cosine over the blocks the query and the item share: sum w^2 cos / sum w^2.

    Equal to the fused cosine (up to one factor) for an item that has all the query's blocks; an item
    lacking one is not pulled down by its zeros nor up by its shorter fused vector.
    """
    return weighted_sum(block_scores, {b: block_weight(weights, b) ** 2 for b in block_scores})


def weighted_sum(modality_scores: Mapping[str, float], weights: Mapping[str, float]) -> float:
    """Weighted mean of the modality scores the item has (weights of absent modalities drop out)."""
    total = norm = 0.0
    for modality, score in modality_scores.items():
        w = block_weight(weights, modality)
        total += w * score
        norm += w
    return total / norm if norm > 0 else 0.0


def modality_scores(block_scores: Mapping[str, float]) -> dict[str, float]:
    """Per-modality scores from per-block scores (a modality's blocks are averaged)."""
    sums: dict[str, list[float]] = {}
    for block, score in block_scores.items():
        sums.setdefault(MODALITY_OF.get(block, block), []).append(score)
    return {m: float(sum(v) / len(v)) for m, v in sums.items()}


# --- strategies ----------------------------------------------------------------------------------
def pool_scores(
    fusion: str,
    block_scores: Mapping[str, Mapping[str, float]],
    weights: Mapping[str, float],
    combine: str = "rrf",
    rrf_k: int = RRF_K,
) -> dict[str, float]:
    """Live retrieval's fused score of each pooled item from its block cosines (``early`` / ``late``).

    early: `shared_blocks_cosine`; late: `pooled_rrf` (``combine="rrf"``) or the weighted mean of
    `standardized` scores (``"weighted"``). ``cross`` needs the item vectors: `cross_scores`.
    """
    if fusion == "early":
        return {rid: shared_blocks_cosine(s, weights) for rid, s in block_scores.items()}
    if fusion != "late":
        raise ValueError(f"pool_scores: fusion {fusion!r} is not early or late")
    if combine == "rrf":  # ranks over the pool, each item over its blocks
        return pooled_rrf(block_scores, weights, rrf_k)
    return {rid: weighted_sum(z, weights) for rid, z in standardized(block_scores).items()}


def profile_scores(
    fusion: str,
    profile: Mapping[str, np.ndarray],
    items: Sequence[Mapping[str, np.ndarray | None]],
    weights: Mapping[str, float],
    combine: str = "rrf",
    cross: Any = None,
) -> list[float]:
    """Each item's similarity to a user's profile (unit vector per block), fused by `fusion`.

    Only the profile's blocks count; ``items[i][block]`` is the item's unit vector there or None.
    early: cosine of the whole early-fused vectors (`early_fuse`, blocks in the profile's order);
    late: per-block cosine rankings combined by `rrf` (summed, ties in the given order) or the
    `weighted_sum` of the cosines; cross: `CrossModalFusion` ``cross`` queried by the text profile.
    """
    blocks = list(profile)
    sims = [{b: float(v @ profile[b]) for b in blocks if (v := item.get(b)) is not None} for item in items]
    if fusion == "early":
        layout = [(b, int(np.asarray(profile[b]).shape[0])) for b in blocks]
        user = early_fuse(layout, profile, weights)
        return [float(early_fuse(layout, {b: item.get(b) for b in blocks}, weights) @ user) for item in items]
    if fusion == "late":
        if combine == "weighted":
            return [weighted_sum(s, weights) for s in sims]
        lists = []
        for b in blocks:
            have = [i for i, s in enumerate(sims) if b in s]
            lists.append(sorted(have, key=lambda i, b=b: (-sims[i][b], i)))
        fused = rrf(lists, [block_weight(weights, b) for b in blocks])
        return [fused.get(i, 0.0) for i in range(len(items))]
    if fusion == "cross":
        return cross_scores(cross, profile.get("text"), items, sims)
    raise ValueError(f"unknown fusion {fusion!r} (known: {', '.join(FUSIONS)})")


# --- cross-modal fusion --------------------------------------------------------------------------
class CrossModalFusion(nn.Module):
    """Attention over an item's block vectors, queried by the user's turn.

    query: the turn's text-space vector (B, Dq); keys: each block's item vector projected to
    ``hidden`` (B, N, M, H); values: the block's query-item similarity (B, N, M). The fused score
    is the attention-weighted sum of the similarities over the blocks both sides have. The query
    projection starts at zero and each block's bias at -log(blocks of its modality), so an untrained
    module weighs the modalities equally (image and its text-space bridge share the image's half).
    """

    def __init__(self, dims: Mapping[str, int], query_dim: int, hidden: int = 64) -> None:
        super().__init__()
        self.blocks = list(dims)
        self.dims = {b: int(d) for b, d in dims.items()}
        self.query_dim, self.hidden = int(query_dim), int(hidden)
        self.query_proj = nn.Linear(self.query_dim, self.hidden)
        nn.init.zeros_(self.query_proj.weight)
        nn.init.zeros_(self.query_proj.bias)
        self.key_proj = nn.ModuleDict({b: nn.Linear(d, self.hidden) for b, d in self.dims.items()})
        per_modality = Counter(MODALITY_OF.get(b, b) for b in self.blocks)
        prior = [-math.log(per_modality[MODALITY_OF.get(b, b)]) for b in self.blocks]
        self.block_bias = nn.Parameter(torch.tensor(prior, dtype=torch.float32))

    def weights(
        self, query: torch.Tensor, items: Mapping[str, torch.Tensor], mask: torch.Tensor
    ) -> torch.Tensor:
        """Attention weights (B, N, M) over the blocks; rows with no block are all zeros."""
        q = self.query_proj(query)  # B, H
        keys = torch.stack([self.key_proj[b](items[b]) for b in self.blocks], dim=-2)  # B, N, M, H
        logits = torch.einsum("bnmh,bh->bnm", keys, q) / math.sqrt(self.hidden) + self.block_bias
        logits = logits.masked_fill(~mask, float("-inf"))
        w = torch.nan_to_num(torch.softmax(logits, dim=-1), nan=0.0)
        return w * mask

    def forward(
        self, query: torch.Tensor, items: Mapping[str, torch.Tensor], sims: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(scores (B, N), weights (B, N, M)) for the block similarities ``sims`` (B, N, M)."""
        w = self.weights(query, items, mask)
        return (w * sims).sum(-1), w


def query_dim(dims: Mapping[str, int]) -> int:
    """The width of the vector that queries the cross-modal module: the text block's, else the bridge's."""
    return int(dims.get("text") or dims.get("image_text") or 1)


def cross_inputs(
    module: CrossModalFusion,
    turn: np.ndarray | None,
    items: Sequence[Mapping[str, np.ndarray | None]],
    block_scores: Sequence[Mapping[str, float]],
) -> dict[str, torch.Tensor]:
    """The module's inputs for one query and n items (a batch of one): ``query`` (1, Dq), ``items``
    {block: (1, n, D)}, ``sims`` (1, n, M) and ``mask`` (1, n, M), an item's block present where
    ``block_scores`` has it. A missing vector (or one of another width) is zeros."""
    blocks = module.blocks
    if turn is None or np.asarray(turn).shape[0] != module.query_dim:
        turn = np.zeros(module.query_dim, dtype=np.float32)
    vectors = {}
    for b in blocks:
        dim = module.dims[b]
        rows = [item.get(b) for item in items]
        rows = [r if r is not None and r.shape[0] == dim else np.zeros(dim, np.float32) for r in rows]
        vectors[b] = torch.tensor(np.stack(rows)[None])
    sims = [[[s.get(b, 0.0) for b in blocks] for s in block_scores]]
    mask = [[[b in s for b in blocks] for s in block_scores]]
    return {
        "query": torch.tensor(turn, dtype=torch.float32)[None],
        "items": vectors,
        "sims": torch.tensor(sims, dtype=torch.float32),
        "mask": torch.tensor(mask, dtype=torch.bool),
    }


def cross_scores(
    module: CrossModalFusion,
    turn: np.ndarray | None,
    items: Sequence[Mapping[str, np.ndarray | None]],
    block_scores: Sequence[Mapping[str, float]],
) -> list[float]:
    """The module's fused score of each item (see `cross_inputs`)."""
    if not items:
        return []
    inputs = cross_inputs(module, turn, items, block_scores)
    with torch.inference_mode():
        scores, _ = module(inputs["query"], inputs["items"], inputs["sims"], inputs["mask"])
    return scores[0].tolist()


def save_cross_fusion(module: Any, path: Path) -> Path:
    """Write the module's weights and shape (block dims, query dim, hidden) as safetensors."""
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"dims": json.dumps(module.dims), "query_dim": str(module.query_dim), "hidden": str(module.hidden)}
    save_file(
        {k: v.detach().contiguous().cpu() for k, v in module.state_dict().items()}, str(path), metadata=meta
    )
    return path


def load_cross_fusion(cfg: Config, dims: Mapping[str, int], query_dim: int) -> tuple[Any, bool]:
    """(module, trained): the module ``retrieval.cross_weights`` names when it fits these blocks, else
    an untrained one (logged). A named file that is missing or unreadable is a ValueError naming it."""
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    name = cfg.retrieval.cross_weights.strip()
    if not name:
        log.warning("%s (retrieval.cross_weights is empty)", UNTRAINED_WARNING)
        return CrossModalFusion(dims, query_dim).eval(), False
    path = Path(name).expanduser()
    key = f"retrieval.cross_weights={name}"
    if not path.is_file():
        raise ValueError(f"{key}: no such file (a trained run writes <run>/last/cross_fusion.safetensors)")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        saved_dims = json.loads(meta.get("dims", "{}"))
        saved_query = int(meta.get("query_dim", -1))
        if all(saved_dims.get(b) == d for b, d in dims.items()) and saved_query == query_dim:
            module = CrossModalFusion(saved_dims, saved_query, int(meta.get("hidden", 64)))
            module.load_state_dict(load_file(str(path)))
            return module.eval(), True
    except (SafetensorError, OSError, ValueError, RuntimeError, KeyError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValueError(f"{key}: not a cross-modal fusion module ({reason})") from None
    log.warning(
        "%s: trained for blocks %s (query %d-d), not %s (query %d-d); ignoring it",
        key,
        saved_dims,
        saved_query,
        dict(dims),
        query_dim,
    )
    log.warning(UNTRAINED_WARNING)
    return CrossModalFusion(dims, query_dim).eval(), False
