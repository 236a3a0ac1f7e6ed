"""The Chroma store with synthetic vectors: batching, filters in `where`, client caching, recreation."""

from __future__ import annotations

import numpy as np
import pytest

from fusionrec.retrieval.store import (
    MAX_BATCH,
    Store,
    StoreError,
    build_where,
    genre_key,
    item_metadata,
    open_client,
    parse_server_url,
)
from fusionrec.types import Item
from tests.conftest import make_config


@pytest.fixture()
def store(tmp_path):
    return Store(make_config("offline", home=tmp_path))


def _items() -> list[Item]:
    return [
        Item("1", "Toy Story", 1995, ["Animation", "Children's", "Comedy"]),
        Item("2", "GoldenEye", 1995, ["Action", "Adventure", "Thriller"]),
        Item("3", "Sci-Fi Comedy", 1999, ["Comedy", "Sci-Fi"]),
        Item("4", "Old Drama", 1950, ["Drama"]),
        Item("5", "Unknown year", None, ["Comedy"]),
    ]


def _fill(store: Store) -> np.ndarray:
    items = _items()
    vecs = np.random.default_rng(0).normal(size=(len(items), 8)).astype(np.float32)
    store.ensure("text", 8, "synthetic")
    store.upsert(
        "text", [i.id for i in items], vecs, [item_metadata(i, "h" + i.id, "synthetic") for i in items]
    )
    return vecs


def test_client_is_cached_per_path(tmp_path):
    cfg = make_config("offline", home=tmp_path)
    assert open_client(cfg) is open_client(make_config("offline", home=tmp_path))
    assert (tmp_path / "chroma").is_dir()


def test_server_url_parsing():
    assert parse_server_url("http://127.0.0.1:8123") == ("127.0.0.1", 8123, False)
    assert parse_server_url("http://localhost/") == ("localhost", 8000, False)
    assert parse_server_url("https://chroma.example") == ("chroma.example", 443, True)
    for bad in ("ftp://x:1", "localhost", "notaurl", "http://h:99999", "http://h:1/api"):
        with pytest.raises(StoreError, match="server_url"):
            parse_server_url(bad)


def test_unreachable_server_says_how_to_start_one(tmp_path):
    cfg = make_config("offline", home=tmp_path, overrides=["retrieval.server_url=http://127.0.0.1:9"])
    with pytest.raises(StoreError, match="chroma run"):
        open_client(cfg)


def test_query_returns_itself_first_with_cosine_similarity(store):
    vecs = _fill(store)
    hits = store.query("text", vecs[2], 3)
    assert hits[0][0] == "3" and hits[0][1] == pytest.approx(1.0, abs=1e-5)
    assert len(hits) == 3 and hits[0][1] >= hits[1][1] >= hits[2][1]


@pytest.mark.parametrize(
    ("filters", "exclude", "expected"),
    [
        ({"genres": ["comedy"]}, (), {"1", "3", "5"}),
        ({"genres": ["Comedy", "sci-fi"]}, (), {"3"}),
        ({"exclude_genres": ["Comedy"]}, (), {"2", "4"}),
        ({"year_min": 1990}, (), {"1", "2", "3"}),
        ({"year_max": 1996}, (), {"1", "2", "4"}),  # unknown year (-1) is dropped by a bound
        ({"year_min": 1990, "year_max": 1996}, (), {"1", "2"}),
        ({}, ("1", "3"), {"2", "4", "5"}),
        ({"genres": ["Comedy"], "year_min": 1990}, ("1",), {"3"}),
    ],
)
def test_filters_run_inside_chroma(store, filters, exclude, expected):
    vecs = _fill(store)
    hits = store.query("text", vecs[0], 10, where=build_where(filters, exclude))
    assert {rid for rid, _ in hits} == expected


def test_build_where_shapes():
    assert build_where(None) is None
    assert build_where({"genres": ["Film-Noir"]}) == {genre_key("Film-Noir"): True}
    assert genre_key("Children's") == "g_children_s"
    with pytest.raises(ValueError, match="unknown filter"):
        build_where({"genre": ["Comedy"]})


def test_upsert_batches_above_chroma_limit_and_stays_unique(store):
    n = MAX_BATCH + 700
    ids = [str(i) for i in range(n)]
    vecs = np.random.default_rng(1).normal(size=(n, 4)).astype(np.float32)
    metas = [{"item_id": i, "content_hash": "a"} for i in ids]
    store.ensure("text", 4, "synthetic")
    store.upsert("text", ids, vecs, metas)
    store.upsert("text", ids[:10], vecs[:10], [{"item_id": i, "content_hash": "b"} for i in ids[:10]])
    assert store.count("text") == n
    got = store.metadatas("text", ["0", "9", "10", "missing"])
    assert got["0"]["content_hash"] == "b" and got["10"]["content_hash"] == "a" and "missing" not in got


def test_ensure_recreates_on_another_model(store):
    _fill(store)
    assert store.ensure("text", 8, "synthetic").count() == 5
    assert store.ensure("text", 8, "other-model").count() == 0
    assert store.ensure("text", 16, "other-model").metadata["dim"] == 16
    assert store.kinds() == ["text"]
    assert store.get("image") is None and store.query("image", np.ones(4), 3) == []


def test_each_dataset_has_its_own_collections(tmp_path):
    """Names that share a prefix ("a", "a_image", "a.b") never see or drop each other's records."""
    cfg = make_config("offline", home=tmp_path)
    stores = {name: Store(cfg, name) for name in ("a", "a_image", "a.b", "ml-100k")}
    for s in stores.values():
        s.ensure("text", 8, "m")
        s.ensure("early", 8, "m")
    a = stores["a"]
    assert stores["ml-100k"].dataset == "movielens-100k" and a.name("text") == "catalog.a.text"
    assert a.datasets() == ["a", "a.b", "a_image", "movielens-100k"]
    assert all(s.kinds() == ["early", "text"] for s in stores.values())
    vecs = np.eye(8, dtype=np.float32)[:2]
    a.upsert("text", ["1", "2"], vecs, [item_metadata(i, "h", "m") for i in _items()[:2]])
    a.drop("early")
    assert a.kinds() == ["text"] and a.count("text") == 2
    assert [stores[n].count("text") for n in ("a_image", "a.b")] == [0, 0]
    assert stores["a_image"].kinds() == ["early", "text"]
