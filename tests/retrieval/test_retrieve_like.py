"""`Retriever.retrieve_like`: "more like this one" searches with the liked item's stored vector."""

from __future__ import annotations

import numpy as np
import pytest

from fusionrec.retrieval.search import Retriever
from fusionrec.vectors import l2_normalise

pytestmark = pytest.mark.real


def test_more_like_an_item_ranks_by_cosine_to_its_stored_vector(ret_cfg, ingested, subset):
    ret = Retriever(ret_cfg)
    liked, shown = subset[0].id, [subset[1].id, subset[2].id]
    got = ret.retrieve_like(liked, exclude_ids=shown, k=10)
    ids = [c.item.id for c in got]
    assert len(ids) == 10 and liked not in ids and not set(shown) & set(ids)
    stored = ret.store.records("early", [liked, *ids])
    anchor = l2_normalise(stored[liked][0])
    cosines = [float(l2_normalise(stored[i][0]) @ anchor) for i in ids]
    assert [c.score for c in got] == pytest.approx(cosines, abs=1e-4)
    assert all(c.modality_scores == {"liked_item": c.score} for c in got)
    assert cosines == sorted(cosines, reverse=True)
    # the turn's own vectors pull the search toward the request; filters still hold
    query = ret.query_vectors("a children's animated film")
    mixed = ret.retrieve_like(liked, query, {"genres": ["Children's"]}, shown, 10)
    assert mixed and all("Children's" in c.item.genres for c in mixed)
    assert [c.item.id for c in mixed] != ids


def test_an_item_not_stored_falls_back_to_the_query(ret_cfg, ingested):
    ret = Retriever(ret_cfg)
    query = ret.query_vectors("a detective in a rainy city")
    fallback = ret.retrieve_like("no-such-item", query, k=5)
    assert [c.item.id for c in fallback] == [c.item.id for c in ret.retrieve(query=query, k=5)]
    assert not any("liked_item" in c.modality_scores for c in fallback)
    assert np.isfinite([c.score for c in fallback]).all()


def test_the_like_weight_sets_how_much_the_liked_item_counts(ret_cfg, ingested, subset):
    import dataclasses

    from fusionrec.retrieval.fusion import early_fuse

    liked = subset[0].id
    rankings = []
    for weight in (0.5, 8.0):
        cfg = dataclasses.replace(ret_cfg, retrieval=dataclasses.replace(ret_cfg.retrieval, like_weight=weight))
        ret = Retriever(cfg)
        query = ret.query_vectors("a detective in a rainy city")
        got = ret.retrieve_like(liked, query, k=10)
        stored = ret.store.records("early", [liked, *(c.item.id for c in got)])
        turn = early_fuse(ret.layout, query.blocks, cfg.retrieval.weights)
        searched = l2_normalise(weight * l2_normalise(stored[liked][0]) + turn)
        cosines = [float(l2_normalise(stored[c.item.id][0]) @ searched) for c in got]
        assert [c.modality_scores["liked_item"] for c in got] == pytest.approx(cosines, abs=1e-4)
        assert [c.score for c in got] == sorted((c.score for c in got), reverse=True)
        rankings.append([c.item.id for c in got])
    assert rankings[0] != rankings[1]  # the request leads at 0.5, the liked film at 8


def test_the_request_words_re_score_the_like_search(ret_cfg, ingested, subset):
    """A "like X" turn's own words re-score the pool (retrieval.lexical_weight); at 0 the cosine decides."""
    import dataclasses

    liked, request = subset[0].id, "a detective in a rainy city"
    orders = {}
    for weight in (0.0, 1.5):
        cfg = dataclasses.replace(ret_cfg, retrieval=dataclasses.replace(ret_cfg.retrieval, lexical_weight=weight))
        ret = Retriever(cfg)
        got = ret.retrieve_like(liked, ret.query_vectors(request), k=10)
        assert liked not in {c.item.id for c in got} and len(got) == 10
        orders[weight] = [c.item.id for c in got]
        if weight == 0:
            assert all(c.modality_scores == {"liked_item": c.score} for c in got)
        else:
            assert all(c.modality_scores.keys() == {"liked_item", "lexical"} for c in got)
    assert orders[0.0] != orders[1.5]
