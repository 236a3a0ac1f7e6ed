"""Fact check, grounded fallback and streaming of explanations."""

from __future__ import annotations

import pytest

from fusionrec.agent.evidence import TurnContext
from fusionrec.agent.explain import (
    GroundedExplainer,
    check_explanation,
    fact_check,
    fallback_explanation,
    quality_problems,
)
from fusionrec.types import Item

TOY = Item(
    "1",
    "Toy Story",
    1995,
    ["Animation", "Children's", "Comedy"],
    "Led by Woody, Andy's toys live happily in his room until Andy's birthday brings Buzz Lightyear onto the scene.",
)
TITLES = ["Toy Story", "Usual Suspects, The", "Star Wars", "Heat", "Jumanji", "Toy Story 2", "GoldenEye"]


def test_grounded_text_passes():
    text = "Toy Story fits because it is a funny animated comedy from 1995 (the 1990s) about Andy's toys."
    assert fact_check(text, TOY, TITLES) == []


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("Toy Story fits because it is like The Usual Suspects.", "names another title: Usual Suspects, The"),
        ("Toy Story fits because fans of Star Wars love it.", "names another title: Star Wars"),
        ("Toy Story fits because it came out in 1963.", "year not in the facts: 1963"),
        ("Toy Story fits because it feels like the 80s.", "decade not in the facts: 80s"),
        ("Toy Story fits because it is a gripping horror story.", "genre not in the facts: horror (Horror)"),
        ("Toy Story fits because it is a tense thriller.", "genre not in the facts: thriller (Thriller)"),
        ("Toy Story fits because Daredevil saves the toys.", "name not in the facts: Daredevil"),
        ("Toy Story fits because Tom Hanks voices Woody.", "name not in the facts: Hanks"),
    ],
)
def test_fact_check_flags(text, problem):
    assert problem in fact_check(text, TOY, TITLES)


def test_negated_genres_are_not_claims():
    assert fact_check("Toy Story fits because it is a light comedy from the 90s, no horror.", TOY, TITLES) == []
    assert fact_check("Toy Story fits: nothing scary, not a thriller.", TOY, TITLES) == []
    assert fact_check("Toy Story fits because it is a horror film, not a comedy.", TOY, TITLES) != []


def test_possessives_of_names_in_the_facts_are_not_flagged():
    assert fact_check("Toy Story fits because Woody's friends are Andy's toys.", TOY, TITLES) == []
    assert "name not in the facts: Hanks's" in fact_check("Toy Story fits because of Hanks's voice.", TOY, TITLES)


def test_words_of_the_facts_are_not_flagged():
    war = Item("9", "Some Film", 1990, ["Drama"], "A soldier returns from the war in 1945.")
    assert fact_check("Some Film fits because a soldier comes home from the war in 1945.", war, TITLES) == []
    # a one-word title at a sentence start is a word, not a reference
    assert fact_check("Heat waves make the toys melt in Toy Story, a 1995 comedy.", TOY, TITLES) == []


def test_quality_problems():
    assert quality_problems("too short") == ["too short to explain anything"]
    assert quality_problems("because " * 20) == ["repetitive text"]
    assert quality_problems("Toy Story fits because it is a warm comedy about toys.") == []


def test_fallback_is_built_from_facts_and_passes():
    text = fallback_explanation(TOY, "default")
    assert text.startswith(
        "Toy Story (1995) fits your request: it is an Animation, Children's and Comedy film."
    )
    assert "Led by Woody" in text
    assert fact_check(text, TOY, TITLES) == []
    bare = fallback_explanation(Item("2", "Nameless"), "concise")
    assert bare == "Nameless: a film in the catalog."


def test_check_explanation_replaces_bad_text():
    bad = check_explanation(
        "Toy Story fits because it was released in 1963 like Star Wars did.", TOY, "default", TITLES
    )
    assert bad.fallback and bad.explanation.problems != []
    assert bad.explanation.grounded and bad.explanation.text == fallback_explanation(TOY)
    assert "year not in the facts: 1963" in bad.raw_problems
    good = check_explanation(
        "Toy Story fits because it is a funny animated film about toys.", TOY, "default", TITLES
    )
    assert (
        not good.fallback and good.explanation.text.startswith("Toy Story fits") and good.explanation.grounded
    )


def test_streaming_yields_prefix_then_tokens(tiny_llm):
    model, tok = tiny_llm
    explainer = GroundedExplainer(model, tok, "default", max_new_tokens=8)
    ctx = TurnContext.from_request("a film for kids")
    pieces = list(explainer.stream(explainer.evidence(TOY, ctx), ctx))
    assert pieces[0] == "Toy Story fits because"
    assert 1 < len(pieces) <= 9 and explainer.stats.tokens <= 8  # one piece per generated token at most


def test_catalog_titles_open_as_people_write_them(tiny_llm):
    model, tok = tiny_llm
    explainer = GroundedExplainer(model, tok, "default", max_new_tokens=2)
    suspects = Item("12", "Usual Suspects, The", 1995, ["Crime"], "A boat has been destroyed.")
    ctx = TurnContext.from_request("a crime film")
    assert next(explainer.stream(explainer.evidence(suspects, ctx), ctx)) == "The Usual Suspects fits because"
