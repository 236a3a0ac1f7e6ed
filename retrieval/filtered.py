"""Filtered top-n search that stays fast on large catalogs: an in-memory index of one collection.

Chroma runs a ``where`` in SQLite and then walks its HNSW graph with the allowed ids: at 100k items a
genre + year filter takes 0.1-0.4 s, and the walk's top-50 is approximate (recall 0.12-0.59 against
brute force on random 384-d vectors; docs/results/retrieval.md). A `FilterIndex` holds one
collection's metadata as numpy columns and its unit vectors: a ``where`` of the shapes
`retrieval.store.build_where` makes (and Chroma's other operators on scalar fields: ``$eq $ne $gt $gte
$lt $lte $in $nin $and $or``) becomes a boolean mask, and the top-n is an exact dot product over the
rows it keeps (those rows alone when they are few, all rows then the mask otherwise): the same ids, in
the same order up to score ties, that Chroma's filter returns wherever its own search is exact (small
collections), and the exact answer where it is not. A ``where`` the index cannot read, or a collection
whose vectors exceed `VECTOR_CACHE_BYTES`, is left to Chroma (`FilterIndex.search` returns None).

The index of a collection is read on first use (pages of `PAGE` records) and read again after
`invalidate` (every `Store` write calls it) or when the collection's count has changed (checked at most
every `RECHECK_S`: another process's adds and deletes are seen within that time; its writes that keep
the count, after a restart).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

PAGE = 5000  # records per read (Chroma's SQLite refuses one read of ~33k records with their metadata)
VECTOR_CACHE_BYTES = 512 * 2**20  # above this a collection's filtered queries go to Chroma's own filter
GATHER_SHARE = 0.25  # below this share of kept rows, score the kept rows alone; else all rows
RECHECK_S = 1.0  # a cached index re-reads the count at most this often (Chroma's count: ~3.5 ms at 100k)
_OPS = ("$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin")
_INDEXES: dict[tuple[int, str], FilterIndex] = {}
_LOCK = threading.Lock()


def _kind(value: Any) -> str:
    """The column kind of a metadata value: bool, num or str ("" for anything else)."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "num"
    return "str" if isinstance(value, str) else ""


class _Column:
    """One metadata key over all rows: bool/num values in an array (missing: -1 / NaN), str values
    as value -> rows; `kind` is "" when the key holds mixed types (the index then cannot read it)."""

    def __init__(self, values: list[Any]) -> None:
        kinds = {_kind(v) for v in values if v is not None}
        self.kind = kinds.pop() if len(kinds) == 1 else ("none" if not kinds else "")
        self.size = len(values)
        if self.kind == "bool":
            self.array = np.array([-1 if v is None else int(v) for v in values], dtype=np.int8)
        elif self.kind == "num":
            self.array = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
        elif self.kind == "str":
            rows: dict[str, list[int]] = {}
            for i, v in enumerate(values):
                if v is not None:
                    rows.setdefault(v, []).append(i)
            self.rows = {v: np.asarray(r, dtype=np.int64) for v, r in rows.items()}

    def _member(self, values: Sequence[Any]) -> np.ndarray:
        if self.kind == "str":
            mask = np.zeros(self.size, dtype=bool)
            for v in values:
                mask[self.rows.get(v, [])] = True
            return mask
        return np.isin(self.array, [int(v) if self.kind == "bool" else v for v in values])

    def compare(self, op: str, value: Any) -> np.ndarray | None:
        """Rows where ``key op value`` holds, by Chroma's rules (a record without the key matches only
        $ne and $nin); None for a type or operator this column cannot answer."""
        values = value if op in ("$in", "$nin") else [value]
        if op not in _OPS or not isinstance(values, list) or not values or not all(map(_kind, values)):
            return None
        if self.kind == "none":  # no record has the key
            return np.full(self.size, op in ("$ne", "$nin"))
        if not self.kind or any(_kind(v) != self.kind for v in values):
            return None
        if op in ("$eq", "$in"):
            return self._member(values)
        if op in ("$ne", "$nin"):
            return ~self._member(values)
        if self.kind != "num":
            return None
        with np.errstate(invalid="ignore"):
            return {"$gt": np.greater, "$gte": np.greater_equal, "$lt": np.less, "$lte": np.less_equal}[op](
                self.array, value
            )


class FilterIndex:
    """Ids, metadata columns, hidden rows and (when they fit) unit vectors of one collection."""

    def __init__(self, ids: list[str], metadatas: list[dict[str, Any] | None], hidden: np.ndarray) -> None:
        self.ids = ids
        self.metadatas = [m or {} for m in metadatas]
        self.hidden = hidden  # rows never returned (placeholder titles)
        self.hidden_ids = frozenset(i for i, h in zip(ids, hidden, strict=True) if h)
        self.vectors: np.ndarray | None = None
        self.checked = 0.0  # time.monotonic() of the last count check
        self._columns: dict[str, _Column] = {}

    @property
    def size(self) -> int:
        return len(self.ids)

    def column(self, key: str) -> _Column:
        if key not in self._columns:
            self._columns[key] = _Column([m.get(key) for m in self.metadatas])
        return self._columns[key]

    def mask(self, where: Any) -> np.ndarray | None:
        """The rows a Chroma ``where`` keeps, or None when it has a shape this index does not read."""
        if not isinstance(where, dict) or len(where) != 1:
            return None
        key, cond = next(iter(where.items()))
        if key in ("$and", "$or"):
            if not isinstance(cond, list) or not cond:
                return None
            parts = [self.mask(c) for c in cond]
            if any(p is None for p in parts):
                return None
            return (np.logical_and if key == "$and" else np.logical_or).reduce(parts)
        if key.startswith("$"):
            return None
        if isinstance(cond, dict):
            if len(cond) != 1:
                return None
            op, value = next(iter(cond.items()))
        else:
            op, value = "$eq", cond
        return self.column(key).compare(op, value)

    def search(self, vector: np.ndarray, n: int, where: Any) -> list[tuple[str, float]] | None:
        """Exact top-n (id, cosine) among the rows ``where`` keeps (hidden rows never), best first;
        None when the index cannot answer (no cached vectors, a ``where`` it does not read)."""
        if self.vectors is None:
            return None
        keep = self.mask(where)
        if keep is None:
            return None
        rows = np.flatnonzero(keep & ~self.hidden)
        if rows.size == 0:
            return []
        q = np.asarray(vector, dtype=np.float32).ravel()
        q = q / max(float(np.linalg.norm(q)), 1e-30)
        few = rows.size < GATHER_SHARE * self.size  # copying many rows costs more than scoring all
        scores = self.vectors[rows] @ q if few else (self.vectors @ q)[rows]
        k = min(n, rows.size)
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(self.ids[rows[i]], float(scores[i])) for i in top]


def _read(col: Any, include: list[str], size: int) -> tuple[list[str], list[Any]]:
    """All (ids, values of the one included field) of a collection, in pages."""
    ids: list[str] = []
    values: list[Any] = []
    for offset in range(0, size, PAGE):
        got = col.get(include=include, limit=PAGE, offset=offset)
        ids += got["ids"]
        values += list(got[include[0]])
    return ids, values


def _build(col: Any, size: int, hidden_of: Callable[[dict[str, Any]], bool]) -> FilterIndex | None:
    """Read a collection's ids and metadata; None when it changed while being read."""
    ids, metas = _read(col, ["metadatas"], size)
    if len(ids) != size or len(set(ids)) != size:
        return None
    return FilterIndex(ids, metas, np.array([hidden_of(m or {}) for m in metas], dtype=bool))


def _fits(col: Any, size: int) -> bool:
    """Whether the collection's vectors (its ``dim`` from `Store.ensure`) fit `VECTOR_CACHE_BYTES`."""
    return size * int((col.metadata or {}).get("dim") or 1) * 4 <= VECTOR_CACHE_BYTES


def _read_vectors(col: Any, index: FilterIndex) -> None:
    """Add the collection's unit vectors to its index (left out when they changed while being read)."""
    ids, embs = _read(col, ["embeddings"], index.size)
    mat = np.asarray(embs, dtype=np.float32).reshape(index.size, -1)
    if ids == index.ids and mat.nbytes <= VECTOR_CACHE_BYTES:
        index.vectors = mat / np.maximum(np.linalg.norm(mat, axis=1, keepdims=True), 1e-30)


def index_for(
    client: Any, col: Any, hidden_of: Callable[[dict[str, Any]], bool], vectors: bool
) -> FilterIndex | None:
    """The current index of ``col``: cached, or read now when a write invalidated it or the count
    changed (checked at most every `RECHECK_S`); with its vectors when ``vectors`` and they fit.
    ``hidden_of(metadata)`` says which records are never returned. None when the collection changed
    while it was read."""
    key = (id(client), str(col.id))
    with _LOCK:
        index = _INDEXES.get(key)
        if index is None or time.monotonic() - index.checked > RECHECK_S:
            size = col.count()
            if index is None or index.size != size:
                index = _build(col, size, hidden_of)
                if index is None:
                    _INDEXES.pop(key, None)
                    return None
                _INDEXES[key] = index
            index.checked = time.monotonic()
        if vectors and index.vectors is None and index.size and _fits(col, index.size):
            _read_vectors(col, index)
        return index


def invalidate(client: Any, col: Any) -> None:
    """Forget the index of ``col`` (after a write to it)."""
    with _LOCK:
        _INDEXES.pop((id(client), str(col.id)), None)
