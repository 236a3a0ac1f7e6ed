"""Only the blocks a query really reaches vote, and an item missing a block is not moved by it.

Real embedded Chroma stores under tmp_path, filled with vectors placed at chosen cosines from the
query vectors that the real tiny encoders make, searched by `retrieval.search.Retriever` with every
fusion strategy.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fusionrec import encoders
from fusionrec.config import Config
from fusionrec.data.catalog import item_to_dict
from fusionrec.retrieval.fusion import (
    early_fuse,
    pooled_rrf,
    shared_blocks_cosine,
    standardized,
    weighted_sum,
)
from fusionrec.retrieval.search import QueryVectors, Retriever
from fusionrec.retrieval.store import Store, item_metadata
from fusionrec.types import Item
from fusionrec.vectors import l2_normalise
from tests.conftest import home_config

QUERY = "a quiet film about the sea"
FUSIONS = {
    "early": ["retrieval.fusion=early"],
    "late rrf": ["retrieval.fusion=late", "retrieval.late_combine=rrf"],
    "late weighted": ["retrieval.fusion=late", "retrieval.late_combine=weighted"],
    "cross": ["retrieval.fusion=cross"],
}


def at_cosine(anchor: np.ndarray, cos: float, rng: np.random.Generator) -> np.ndarray:
    """A unit vector whose cosine with `anchor` is `cos`."""
    a = l2_normalise(anchor)
    u = rng.normal(size=a.shape)
    u = l2_normalise(u - (u @ a) * a)
    return (cos * a + np.sqrt(1 - cos**2) * u).astype(np.float32)


def fill(
    cfg: Config,
    dims: dict[str, int],
    model_ids: dict[str, str],
    vectors: dict[str, dict],
    overviews: dict[str, str] | None = None,
) -> None:
    """Block collections, the early collection (fused as ingest fuses) and item documents (overview
    "overview <id>" unless `overviews` gives one)."""
    store = Store(cfg)
    layout = list(dims.items())
    for block, dim in layout:
        store.ensure(block, dim, model_ids[block])
    store.ensure("early", sum(dims.values()), "early", {"layout": json.dumps(layout)})
    text = overviews or {}
    items = {rid: Item(rid, f"Film {rid}", 1990, ["Drama"], text.get(rid, f"overview {rid}")) for rid in vectors}

    def rows(ids: list[str], model_id: str) -> tuple[list[dict], list[str]]:
        metas = [item_metadata(items[r], "hash", model_id) for r in ids]
        return metas, [json.dumps(item_to_dict(items[r])) for r in ids]

    for block, _ in layout:
        have = [r for r in vectors if block in vectors[r]]
        store.upsert(block, have, np.stack([vectors[r][block] for r in have]), *rows(have, model_ids[block]))
    fused = np.stack([early_fuse(layout, vectors[r], cfg.retrieval.weights) for r in vectors])
    store.upsert("early", list(vectors), fused, *rows(list(vectors), "early"))


@pytest.fixture()
def bridge_home(tiny_cfg: Config, tmp_path: Path) -> Path:
    """Text + poster-bridge blocks around the tiny encoders' vectors for QUERY.

    By text cosine: a 0.9 > n 0.83 (no poster) > b 0.8 > c..g. The bridge block says the opposite:
    b matches QUERY's bridge vector exactly, a is far from it.
    """
    home = tmp_path / "home"
    cfg = home_config(tiny_cfg.models_dir, home, "tiny")
    text, image = encoders.load_text_encoder(cfg), encoders.load_image_encoder(cfg)
    q, qi = text.encode([QUERY])[0], image.encode_text([QUERY])[0]
    rng = np.random.default_rng(0)
    vectors = {
        "a": {"text": at_cosine(q, 0.9, rng), "image_text": at_cosine(qi, -0.5, rng)},
        "n": {"text": at_cosine(q, 0.83, rng)},
        "b": {"text": at_cosine(q, 0.8, rng), "image_text": l2_normalise(qi)},
    }
    for i, cos in enumerate([0.5, 0.4, 0.3, 0.2, 0.1]):
        vectors["cdefg"[i]] = {"text": at_cosine(q, cos, rng), "image_text": at_cosine(qi, 0.6 + cos / 2, rng)}
    dims = {"text": int(q.shape[0]), "image_text": int(qi.shape[0])}
    fill(cfg, dims, {"text": str(text.model_id), "image_text": "bridge"}, vectors)
    return home


def retriever(tiny_cfg: Config, home: Path, overrides: list[str]) -> Retriever:
    return Retriever(home_config(tiny_cfg.models_dir, home, "tiny", overrides))


@pytest.mark.parametrize("fusion", list(FUSIONS))
def test_text_request_gets_no_vote_from_the_poster_bridge(tiny_cfg, bridge_home, fusion):
    ret = retriever(tiny_cfg, bridge_home, FUSIONS[fusion])
    assert set(ret.query_vectors(QUERY).blocks) == {"text"}
    got = ret.retrieve(QUERY, k=4)
    assert [c.item.id for c in got] == ["a", "n", "b", "c"]  # the text order: n neither up nor down
    assert all(set(c.modality_scores) - {"lexical"} == {"text"} for c in got)  # lexical: a word match, no block


def test_the_bridge_votes_when_text_blocks_lists_it(tiny_cfg, bridge_home):
    """The control: the same store with the bridge reached puts b first (so the test above can fail)."""
    ret = retriever(tiny_cfg, bridge_home, [*FUSIONS["early"], "retrieval.text_blocks=text,image_text"])
    assert set(ret.query_vectors(QUERY).blocks) == {"text", "image_text"}
    got = ret.retrieve(QUERY, k=3)
    assert got[0].item.id == "b" and "image" in got[0].modality_scores


def test_one_query_can_name_its_text_blocks(tiny_cfg, bridge_home):
    """The cross-fusion trainer reaches the bridge for its queries without touching the config."""
    ret = retriever(tiny_cfg, bridge_home, FUSIONS["early"])
    assert set(ret.query_vectors(QUERY, text_blocks=("text", "image_text")).blocks) == {"text", "image_text"}
    assert set(ret.query_vectors(QUERY).blocks) == {"text"} and ret.cfg.retrieval.text_blocks == ["text", "tfidf"]


@pytest.mark.parametrize("combine", ["rrf", "weighted"])
def test_item_without_audio_is_not_pulled_by_the_audio_vote(tiny_cfg, tmp_path, combine):
    """x has the best text and no sound. Summing votes (or raw cosines, high for every Whisper
    vector) put items with sound first, y's only average; each item over its own blocks keeps x."""
    home = tmp_path / "home"
    overrides = ["retrieval.fusion=late", f"retrieval.late_combine={combine}",
                 'retrieval.weights={"text": 1.0, "audio": 1.0}']  # fmt: skip
    cfg = home_config(tiny_cfg.models_dir, home, "tiny", overrides)
    rng = np.random.default_rng(1)
    q = {"text": l2_normalise(rng.normal(size=8)), "audio": l2_normalise(rng.normal(size=6))}
    vectors = {"x": {"text": at_cosine(q["text"], 0.9, rng)}}
    vectors["y"] = {"text": at_cosine(q["text"], 0.86, rng), "audio": at_cosine(q["audio"], 0.95, rng)}
    for i, (t, a) in enumerate([(0.4, 0.99), (0.3, 0.97), (0.2, 0.93), (0.1, 0.91)]):
        vectors[f"z{i}"] = {"text": at_cosine(q["text"], t, rng), "audio": at_cosine(q["audio"], a, rng)}
    fill(cfg, {"text": 8, "audio": 6}, {"text": "t", "audio": "a"}, vectors)
    ret = Retriever(cfg)
    ranked = sorted(ret._late(QueryVectors(blocks=q), None, k=3), key=lambda s: -s[1])
    assert ranked[0][0] == "x" and set(ranked[0][2]) == {"text"}
    assert {rid for rid, _, mods in ranked if mods.keys() == {"text", "audio"}} == {"y", "z0", "z1", "z2", "z3"}


def test_pooled_votes_are_means_over_each_items_own_blocks():
    scores = {"x": {"text": 0.9}, "y": {"text": 0.8, "audio": 0.99}, "z": {"text": 0.1, "audio": 0.5}}
    votes = pooled_rrf(scores, {"text": 1.0, "audio": 1.0}, k=0)
    assert votes == pytest.approx({"x": 1.0, "y": (1 / 2 + 1 / 1) / 2, "z": (1 / 3 + 1 / 2) / 2})
    z = standardized(scores)
    assert z["y"]["audio"] == pytest.approx(1.0) and z["z"]["audio"] == pytest.approx(-1.0)
    assert weighted_sum(z["x"], {"text": 1.0, "audio": 5.0}) == pytest.approx(z["x"]["text"])
    # early: weights act squared (both sides carry them); a missing block drops out of the mean
    assert shared_blocks_cosine({"text": 0.6, "image": 0.2}, {"text": 1.0, "image": 0.5}) == pytest.approx(
        (0.6 + 0.25 * 0.2) / 1.25
    )
    assert shared_blocks_cosine({"text": 0.6}, {"text": 1.0, "image": 0.5}) == pytest.approx(0.6)
