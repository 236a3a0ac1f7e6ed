"""Candidate retrieval on the real ML-100k subset: text, posters, filters, exclusions, strategies."""

from __future__ import annotations

import logging
from argparse import Namespace
from dataclasses import replace
from pathlib import Path

import pytest

from fusionrec.media import MediaError
from fusionrec.retrieval.fusion import UNTRAINED_WARNING
from fusionrec.retrieval.search import RetrievalError, Retriever, search_command
from fusionrec.types import Attachment
from tests.retrieval.conftest import N_ITEMS, retrieval_config

pytestmark = pytest.mark.real


def _retriever(cfg, fusion: str = "early", combine: str = "rrf") -> Retriever:
    return Retriever(replace(cfg, retrieval=replace(cfg.retrieval, fusion=fusion, late_combine=combine)))


def _hit_rate(retriever: Retriever, items, k: int = 5) -> float:
    hits = 0
    for item in items:
        found = [c.item.id for c in retriever.retrieve(item.text, k=k)]
        hits += item.id in found
    return hits / len(items)


def _poster(item) -> list[Attachment]:
    return [Attachment("image", Path(item.media["image"]))]


def test_overview_finds_its_film_in_top5_for_80_percent(ret_cfg, ingested, sample):
    rate = _hit_rate(_retriever(ret_cfg), sample)
    assert rate >= 0.8, f"overview -> own film in top 5 for only {rate:.0%} of {len(sample)} items"


@pytest.mark.parametrize(("fusion", "combine"), [("late", "rrf"), ("late", "weighted"), ("cross", "rrf")])
def test_every_strategy_finds_the_film_from_its_overview(ret_cfg, ingested, sample, fusion, combine):
    rate = _hit_rate(_retriever(ret_cfg, fusion, combine), sample[:20])
    assert rate >= 0.8, f"{fusion}/{combine}: own film in top 5 for only {rate:.0%}"


@pytest.mark.parametrize("fusion", ["early", "late", "cross"])
def test_poster_query_returns_its_own_item_first(ret_cfg, ingested, sample, fusion):
    retriever = _retriever(ret_cfg, fusion)
    for item in sample[:10]:
        top = retriever.retrieve("", _poster(item), k=3)
        assert top[0].item.id == item.id, (
            f"{fusion}: poster of {item.id} ({item.title}) -> {top[0].item.title}"
        )
        assert top[0].modality_scores["image"] > 0.99
        assert "text" not in top[0].modality_scores  # an image query does not search overviews


def test_candidates_carry_per_modality_scores_and_stored_items(ret_cfg, ingested, catalog):
    retriever = _retriever(ret_cfg)
    cands = retriever.retrieve("Woody the cowboy and the other toys in Andy's room meet Buzz Lightyear", k=10)
    assert len(cands) == 10 and cands[0].item.title == "Toy Story"
    assert [c.score for c in cands] == sorted((c.score for c in cands), reverse=True)
    # a text request does not reach the poster bridge; its words match Toy Story's overview (Woody, Buzz)
    assert set(cands[0].modality_scores) == {"text", "lexical"} and cands[0].modality_scores["lexical"] > 0
    item = retriever.item("1")
    assert item.title == "Toy Story" and item.media["image"] == catalog[0].media["image"]
    assert retriever.item("1").tags, "auto-labels of the poster are merged into the tags"
    with pytest.raises(KeyError, match="9999"):
        retriever.item("9999")


@pytest.mark.parametrize("fusion", ["early", "late", "cross"])
def test_filters_and_exclusions_are_respected(ret_cfg, ingested, fusion):
    retriever = _retriever(ret_cfg, fusion)
    query = "a funny adventure with friends"
    comedies = retriever.retrieve(
        query, filters={"genres": ["Comedy"], "year_min": 1995, "year_max": 1996}, k=20
    )
    assert comedies
    assert all("Comedy" in c.item.genres and 1995 <= c.item.year <= 1996 for c in comedies)
    no_drama = retriever.retrieve(query, filters={"exclude_genres": ["Drama", "Comedy"]}, k=20)
    assert no_drama and all(not {"Drama", "Comedy"} & set(c.item.genres) for c in no_drama)
    first = retriever.retrieve(query, k=10)
    seen = [c.item.id for c in first[:5]]
    rest = retriever.retrieve(query, exclude_ids=seen, k=10)
    assert len(rest) == 10 and not set(seen) & {c.item.id for c in rest}
    before = {c.item.id: c.modality_scores for c in first}  # exact per-block cosines and word matches
    assert all(c.modality_scores == before[c.item.id] for c in rest if c.item.id in before)
    # without the word match (standardised over the pool, which the exclusion changes), excluding the
    # first five promotes the next five
    retriever.cfg.retrieval.lexical_weight = 0.0
    first = retriever.retrieve(query, k=10)
    rest = retriever.retrieve(query, exclude_ids=[c.item.id for c in first[:5]], k=10)
    assert {c.item.id for c in rest[:5]} == {c.item.id for c in first[5:10]}
    if fusion != "late":  # early and (untrained) cross scores do not depend on the pool: same order;
        # late fusion ranks (RRF) or standardises (weighted) over the pool, which the exclusion changes
        assert [c.item.id for c in rest[:5]] == [c.item.id for c in first[5:10]]


def test_filters_only_browse_the_catalog(ret_cfg, ingested):
    cands = _retriever(ret_cfg).retrieve("", filters={"genres": ["Western"]}, k=5)
    assert cands and all("Western" in c.item.genres and c.score == 0.0 for c in cands)


def test_untrained_cross_fusion_says_so(ret_cfg, ingested, caplog):
    retriever = _retriever(ret_cfg, "cross")
    with caplog.at_level(logging.WARNING):
        retriever.retrieve("space", k=3)
    assert UNTRAINED_WARNING in caplog.text and retriever.cross_trained is False


def test_bad_attachment_is_refused_with_its_path(ret_cfg, ingested, tmp_path):
    fake = tmp_path / "poster.jpg"
    fake.write_text("not an image")
    with pytest.raises(MediaError, match="poster.jpg"):
        _retriever(ret_cfg).retrieve("", [Attachment("image", fake)])


def test_search_command_prints_a_table(ret_cfg, ingested, capsys, sample, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    args = Namespace(query=sample[0].text, image=sample[0].media["image"], audio="", video="", k=5,
                     genre=[], year_min=None, year_max=1999)  # fmt: skip
    assert search_command(ret_cfg, args) == 0
    out = capsys.readouterr().out
    assert "5 candidates from movielens-100k (early fusion)" in out and "score" in out
    assert sample[0].title in out
    args.image = "/nonexistent.png"
    assert search_command(ret_cfg, args) == 2
    err = capsys.readouterr()
    assert "file not found" in err.err and not err.out


def test_empty_store_says_to_ingest(ret_cfg, ingested):
    with pytest.raises(RetrievalError, match="fusionrec ingest"):
        Retriever(retrieval_config(["retrieval.collection=nothing_here"]))
    with pytest.raises(RetrievalError, match=r"'redial' is not ingested .*ingested: movielens-100k\)"):
        Retriever(ret_cfg, "redial")


def test_subset_size(ingested):
    assert ingested.total == N_ITEMS
