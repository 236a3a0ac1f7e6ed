"""What a person sees: each film once, and no placeholder record among the catalog titles."""

from __future__ import annotations

from fusionrec.agent.agent import distinct_titles
from fusionrec.types import Candidate


def test_a_film_listed_under_two_ids_is_shown_once(ml100k):
    by_id = {i.id: i for i in ml100k}
    assert by_id["246"].title == by_id["268"].title  # ML-100k lists Chasing Amy twice
    cands = [Candidate(by_id[i], 1.0 - n / 10, {}) for n, i in enumerate(["268", "1", "246", "2"])]
    assert [c.item.id for c in distinct_titles(cands)] == ["268", "1", "2"]


def test_the_catalog_titles_leave_out_the_placeholder(tiny_agent, ml100k):
    titles, _ = tiny_agent.catalog()
    assert any(i.title == "unknown" for i in ml100k)  # ML-100k item 267 has no real title
    assert "unknown" not in titles and "Toy Story" in titles
