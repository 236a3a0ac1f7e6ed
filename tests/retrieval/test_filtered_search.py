"""Filtered search from the in-memory index (`retrieval.filtered`) returns what Chroma's exact filter
returns, on a seeded store small enough for Chroma's own search to be exact: the same ids, in the
same order, with the same scores; Chroma's filter still answers where the index cannot."""

from __future__ import annotations

import random

import numpy as np
import pytest

from fusionrec.retrieval import filtered
from fusionrec.retrieval.store import Store, build_where, chroma_server, genre_key, hidden, item_metadata
from fusionrec.types import Item
from tests.conftest import make_config

N, DIM = 600, 8  # Chroma's HNSW is exact at this size (checked below against brute force)
GENRES = ["Action", "Comedy", "Drama", "Horror", "Romance", "Sci-Fi", "Thriller"]  # + "Western", rare
RNG_SEED = 3


def _items() -> list[Item]:
    rng = random.Random(RNG_SEED)
    items = []
    for i in range(N):
        genres = rng.sample(GENRES, rng.randint(1, 3)) + (["Western"] if rng.random() < 0.03 else [])
        year = None if rng.random() < 0.1 else rng.randint(1920, 2019)
        items.append(Item(str(i), f"Film {i}", year, genres))
    return items


def _fill(store: Store, items: list[Item]) -> np.ndarray:
    vecs = np.random.default_rng(RNG_SEED).normal(size=(len(items), DIM)).astype(np.float32)
    store.ensure("text", DIM, "synthetic")
    store.upsert("text", [i.id for i in items], vecs, [item_metadata(i, "h", "synthetic") for i in items])
    return vecs


@pytest.fixture(scope="module")
def seeded(tmp_path_factory) -> tuple[Store, np.ndarray]:
    store = Store(make_config("offline", home=tmp_path_factory.mktemp("filtered")), "seeded")
    return store, _fill(store, _items())


SEEN = [str(i) for i in random.Random(1).sample(range(N), 40)]
CASES = {
    "genre": ({"genres": ["Comedy"]}, ()),
    "year range": ({"year_min": 1980, "year_max": 1999}, ()),
    "genre + year": ({"genres": ["Drama"], "year_min": 1990}, ()),
    "year_max only (unknown years dropped)": ({"year_max": 1950}, ()),
    "genres all + excluded genre + seen": (
        {"genres": ["Action", "Thriller"], "exclude_genres": ["Horror"]},
        SEEN,
    ),
    "seen ids only": ({}, SEEN),
    "almost all": ({"exclude_genres": ["Western"]}, SEEN[:3]),
    "nothing": ({"genres": ["Comedy"], "exclude_genres": ["Comedy"]}, ()),
    "fewer than n": ({"genres": ["Western", "Horror"]}, ()),
}


def _exact(store: Store, vec: np.ndarray, n: int, where: dict) -> list[tuple[str, float]]:
    """Chroma's own filtered query."""
    got = store.get("text").query(query_embeddings=[vec], n_results=n, where=where, include=["distances"])
    return [(rid, 1.0 - d) for rid, d in zip(got["ids"][0], got["distances"][0], strict=True)]


def _same(fast: list[tuple[str, float]], exact: list[tuple[str, float]]) -> None:
    """Same ids in the same order (a swap only between equal scores), same scores."""
    assert len(fast) == len(exact)
    for (fid, fs), (eid, es) in zip(fast, exact, strict=True):
        assert fs == pytest.approx(es, abs=1e-5)
        if fid != eid:
            assert dict(fast)[eid] == pytest.approx(fs, abs=1e-6), f"{fid} != {eid} at different scores"
    assert {i for i, _ in fast} == {i for i, _ in exact}


@pytest.mark.parametrize("case", list(CASES))
def test_index_returns_the_exact_filter_results(seeded, case):
    store, vecs = seeded
    where = build_where(*CASES[case])
    index = filtered.index_for(store.client, store.get("text"), hidden, vectors=True)
    kept = index.mask(where)
    assert kept is not None  # the index reads every shape build_where makes
    norm = vecs / np.linalg.norm(vecs, axis=1, keepdims=True)
    for q in np.random.default_rng(7).normal(size=(6, DIM)).astype(np.float32):
        for n in (10, 50):
            fast = store.query("text", q, n, where)
            assert fast == index.search(q, n, where)  # the index answered
            _same(fast, _exact(store, q, n, where))
            brute = np.argsort(-np.where(kept, norm @ (q / np.linalg.norm(q)), -np.inf))[: min(n, kept.sum())]
            assert [rid for rid, _ in fast] == [str(i) for i in brute]
    if case == "nothing":
        assert not kept.any() and store.query("text", vecs[0], 50, where) == []
    if case == "almost all":
        assert kept.mean() > 0.9


def test_chroma_filter_answers_what_the_index_cannot(seeded, monkeypatch):
    store, vecs = seeded
    where = build_where({"genres": ["Comedy"], "year_min": 1990}, SEEN)
    fast = store.query("text", vecs[5], 20, where)
    other = {"$or": [{genre_key("Horror"): True}, {"year": {"$lt": 1950}}]}
    _same(store.query("text", vecs[5], 20, other), _exact(store, vecs[5], 20, other))  # $or: the index
    odd = {"year": {"$gte": 1990, "$lte": 2000}}  # two operators in one clause: not an index shape
    assert filtered.index_for(store.client, store.get("text"), hidden, True).mask(odd) is None
    with pytest.raises(Exception, match="operator"):  # Chroma answers it, as before: it refuses it
        store.query("text", vecs[5], 20, odd)
    monkeypatch.setattr(filtered, "VECTOR_CACHE_BYTES", 0)  # vectors above the cap: Chroma's own filter
    filtered.invalidate(store.client, store.get("text"))
    _same(store.query("text", vecs[5], 20, where), fast)
    assert filtered.index_for(store.client, store.get("text"), hidden, True).vectors is None
    monkeypatch.undo()
    filtered.invalidate(store.client, store.get("text"))


def test_index_follows_writes_and_hides_placeholder_titles(tmp_path, monkeypatch):
    store = Store(make_config("offline", home=tmp_path), "writes")
    items = _items()[:100]
    vecs = _fill(store, items)
    comedy = build_where({"genres": ["Comedy"]})
    top = store.query("text", vecs[0], 5, comedy)
    # same count, new metadata and vector: the next query sees them
    target = next(i for i in items if "Comedy" not in i.genres)
    store.upsert(
        "text",
        [target.id],
        vecs[:1] * 2,
        [item_metadata(Item(target.id, "Now a comedy", 2000, ["Comedy"]), "h", "s")],
    )
    assert store.query("text", vecs[0], 5, comedy)[0][0] in {target.id, items[0].id}
    assert target.id in {rid for rid, _ in store.query("text", vecs[0], 5, comedy)}
    assert top != store.query("text", vecs[0], 5, comedy)
    # a record added behind the store's back: seen once the count is checked again (RECHECK_S)
    monkeypatch.setattr(filtered, "RECHECK_S", 3600.0)
    store.get("text").add(
        ids=["new"],
        embeddings=vecs[:1],
        metadatas=[item_metadata(Item("new", "x", 1990, ["Comedy"]), "h", "s")],
    )
    assert "new" not in [rid for rid, _ in store.query("text", vecs[0], 3, comedy)]
    monkeypatch.setattr(filtered, "RECHECK_S", 0.0)
    assert "new" in [rid for rid, _ in store.query("text", vecs[0], 3, comedy)]
    # a placeholder title: stored, never returned
    unknown = Item("267", "unknown", None, [])
    store.upsert("text", ["267"], vecs[:1], [item_metadata(unknown, "h", "s")])
    for where in (None, build_where({}, ["1"]), comedy):
        ids = [rid for rid, _ in store.query("text", vecs[0], 200, where)]
        assert "267" not in ids and (where is None or "1" not in ids)
    assert "267" in store.records("text", ["267"])  # stored (evaluation reads its vector), never searched
    assert len(store.query("text", vecs[0], 200)) == store.count("text") - 1


def test_server_store_uses_the_same_index(tmp_path):
    with chroma_server(tmp_path / "server-db") as url:
        store = Store(make_config("offline", home=tmp_path, overrides=[f"retrieval.server_url={url}"]), "srv")
        vecs = _fill(store, _items()[:300])
        for filters, exclude in (CASES["genre + year"], CASES["almost all"], CASES["nothing"]):
            where = build_where(filters, exclude)
            for q in vecs[:3]:
                _same(store.query("text", q, 30, where), _exact(store, q, 30, where))
