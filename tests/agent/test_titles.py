"""Films named in a message: found in the catalog's title forms, never recommended back."""

from __future__ import annotations

import pytest

from fusionrec.agent.titles import TitleFinder, variants
from fusionrec.types import DialogueState, Turn


@pytest.fixture(scope="module")
def finder(ml100k) -> TitleFinder:
    return TitleFinder((i.id, i.title) for i in ml100k)


def found(finder: TitleFinder, message: str) -> list[tuple[str, bool, bool]]:
    return [(n.ids[0], n.refused, n.model) for n in finder.find(message)]


def test_catalog_forms_with_the_article_moved():
    assert variants("Usual Suspects, The") == {"usual suspects the", "the usual suspects", "usual suspects"}
    assert variants("Seven (Se7en)") == {"seven"}


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("something like Star Wars but funnier", [("50", False, True)]),
        ("a heist movie like the usual suspects", [("12", False, True)]),
        ("not Star Wars again, something like Toy Story", [("50", True, False), ("1", False, True)]),
        ("anything but Chasing Amy", [("246", True, False)]),
        ("I loved Heat", [("273", False, False)]),
        ("Heat", [("273", False, False)]),
    ],
)
def test_named_films_refusals_and_models(finder, message, expected):
    assert found(finder, message) == expected


@pytest.mark.parametrize(
    "message",
    [
        "a movie about the game of chess",
        "heat and dust",
        "Speed matters, an action film",
        "first contact",
        "kids",
    ],
)
def test_ordinary_words_are_not_titles(finder, message):
    assert found(finder, message) == []


def test_duplicate_records_of_one_film_are_named_together(finder):
    (film,) = finder.find("anything but Chasing Amy")
    assert film.ids == ("246", "268")


def test_a_named_film_is_liked_and_never_recommended_back(tiny_agent):
    state = DialogueState()
    events = list(tiny_agent.respond(state, Turn("user", "something like Star Wars", [])))
    shown = next(e.payload["shown"] for e in events if e.kind == "ranked")
    assert state.liked == ["50"] and "50" not in [c.item.id for c in shown]
    assert any(
        "Star Wars" in n for n in next(e.payload["understood"] for e in events if e.kind == "retrieved")
    )
