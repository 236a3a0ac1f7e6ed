"""Lexical match: a request's words against each pooled candidate's text, to re-score a search's pool.

Dense text vectors blur the rare words that identify a film (a name, a place, an object), and a
request that uses them should still find it. `Lexicon` holds the catalog's document frequencies over
its whole vocabulary (`encoders.text.TfidfEncoder` terms: words, English stop words out); a match is
the TF-IDF cosine of the request and an item's text (`retrieval.ingest.item_text`). `hybrid` adds it
to a strategy's fused scores as z-scores over the pool: ``z(fused) + retrieval.lexical_weight *
z(lexical)``, so it works on any strategy's scale (cosines, reciprocal ranks, z-score means).
Only the pool is re-scored: on the tuning half of `benchmarks/requests.jsonl` a pool of 2k + 10
candidates gave the same hits as matching the whole catalog (docs/results/requests.md).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

import numpy as np

from fusionrec.data.catalog import item_from_dict
from fusionrec.encoders.text import TfidfEncoder
from fusionrec.retrieval.collaborative.prior import standardise
from fusionrec.retrieval.ingest import item_text
from fusionrec.types import Item

VOCABULARY = 10_000_000  # no cap: the rare words are the ones that identify an item


class Lexicon:
    """Document frequencies of a catalog's item texts; item rows are built on first need and kept.

    A `Retriever` builds one on its first worded query and keeps it: items ingested while it runs are
    matched with the frequencies (and words) of that time until the process restarts."""

    def __init__(self, texts: Sequence[str]) -> None:
        self.tfidf = TfidfEncoder(max_features=VOCABULARY, name="lexicon").fit(texts)
        self._rows: dict[str, dict[int, float]] = {}

    @classmethod
    def from_documents(cls, documents: Sequence[str | None]) -> Lexicon:
        """From the store's documents (one item as JSON each, as ingestion writes them)."""
        return cls([item_text(item_from_dict(json.loads(d), "<chroma>", 0)) for d in documents if d])

    def scores(self, query: str, items: Sequence[Item]) -> np.ndarray:
        """The TF-IDF cosine of `query` and each item's text (0 where they share no known word)."""
        q = self.tfidf.weights(query)
        out = np.zeros(len(items), dtype=np.float64)
        if not q:
            return out
        for i, item in enumerate(items):
            row = self._rows.get(item.id)
            if row is None:
                row = self._rows[item.id] = self.tfidf.weights(item_text(item))
            out[i] = sum(v * row.get(col, 0.0) for col, v in q.items())
        return out


def hybrid(fused: Mapping[str, float], lexical: Mapping[str, float], weight: float) -> dict[str, float]:
    """``z(fused) + weight * z(lexical)`` over the pool's ids (a constant column contributes 0)."""
    ids = list(fused)
    f = standardise([fused[i] for i in ids])
    lex = standardise([lexical.get(i, 0.0) for i in ids])  # equal matches (up to rounding): no vote
    return {rid: float(a + weight * b) for rid, a, b in zip(ids, f, lex, strict=True)}
