"""Dialogue state: constraints from the user's words, feedback, exclusions."""

from __future__ import annotations

import pytest

from fusionrec.agent import dialogue
from fusionrec.agent.dialogue import apply_update, excluded_ids, parse_turn, retrieval_filters
from fusionrec.types import DialogueState

GENRES = ["Action", "Animation", "Children's", "Comedy", "Crime", "Drama", "Horror", "Romance", "Sci-Fi",
          "Thriller", "Western"]  # fmt: skip
SHOWN_YEARS = [1990, 1994, 1995, 1996, 1997]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("no horror please", {"exclude_genres": {"Horror"}}),
        ("a comedy", {"include_genres": {"Comedy"}}),
        ("I want a sci-fi movie but no horror", {"include_genres": {"Sci-Fi"}, "exclude_genres": {"Horror"}}),
        ("anything but westerns", {"exclude_genres": {"Western"}}),
        (
            "not too scary, maybe a romantic drama",
            {"include_genres": {"Romance", "Drama"}, "exclude_genres": {"Horror"}},
        ),
        ("something newer", {"year_min": 1996, "relative_years": True}),
        ("something older", {"year_max": 1994, "relative_years": True}),
        ("from the 90s", {"year_min": 1990, "year_max": 1999}),
        ("movies from the eighties", {"year_min": 1980, "year_max": 1989}),
        ("after 2000", {"year_min": 2001}),
        ("since 1990", {"year_min": 1990}),
        ("before 1980", {"year_max": 1979}),
        ("between 1990 and 1980", {"year_min": 1980, "year_max": 1990}),
        ("from 1995", {"year_min": 1995, "year_max": 1995}),
        ("a funny movie for the kids", {}),  # hint words: no hard genre filter
        ("nothing scary", {"exclude_genres": {"Horror"}}),  # ... but a refusal counts
        ("an animated comedy", {"include_genres": {"Animation", "Comedy"}}),
        ("not that one", {"dislike": [1]}),
        ("not the first", {"dislike": [1]}),
        ("I don't like the third one", {"dislike": [3]}),
        ("more like the second", {"like": [2]}),
        ("something like number 4", {"like": [4]}),
        ("not the first, more like the last one", {"dislike": [1], "like": [-1]}),
    ],
)
def test_parse_turn(text, expected):
    up = parse_turn(text, GENRES, SHOWN_YEARS)
    got = {k: v for k, v in vars(up).items() if k != "notes" and v not in (None, False, [], set())}
    assert got == expected


def test_newer_without_shown_items_sets_nothing():
    assert parse_turn("something newer", GENRES, []).year_min is None


def test_constraints_accumulate_and_feed_retrieval():
    state = DialogueState(last_ranking=["10", "20", "30"], shown=["10", "20", "30"])
    apply_update(state, parse_turn("a comedy, no horror", GENRES))
    apply_update(state, parse_turn("from the 90s", GENRES))
    apply_update(state, parse_turn("no westerns either", GENRES))
    assert retrieval_filters(state) == {
        "genres": ["Comedy"],
        "exclude_genres": ["Horror", "Western"],
        "year_min": 1990,
        "year_max": 1999,
    }
    apply_update(state, parse_turn("actually a horror film, any year", GENRES))
    assert state.include_genres == {"Horror"} and state.exclude_genres == {"Western"}
    assert state.year_min is None and state.year_max is None


def test_feedback_and_exclusions():
    state = DialogueState(last_ranking=["10", "20", "30"], shown=["10", "20", "30", "40"])
    got = apply_update(state, parse_turn("not the first, more like the second", GENRES))
    assert got == {"liked": ["20"], "disliked": ["10"], "query_item": "20"}
    assert state.liked == ["20"] and state.disliked == ["10"]
    assert set(excluded_ids(state)) == {"10", "20", "30", "40"}
    assert dialogue.like(state, 1) == "10" and state.disliked == [] and state.liked == ["20", "10"]
    assert dialogue.dislike(state, 9) is None  # out of range
    dialogue.reset(state)
    assert state == DialogueState()


def test_newer_keeps_a_compatible_upper_bound():
    state = DialogueState()
    apply_update(state, parse_turn("from the 90s", GENRES))
    apply_update(state, parse_turn("something newer", GENRES, [1992, 1994, 1995]))
    assert (state.year_min, state.year_max) == (1995, 1999)
    apply_update(state, parse_turn("something newer", GENRES, [1998, 1999, 1999]))
    assert (state.year_min, state.year_max) == (2000, None)  # above the old bound: it goes


@pytest.mark.parametrize(
    ("text", "years"),
    [
        ("a teenager goes back to the 50s in a time machine", (None, None)),
        ("a war story set in 1942", (None, None)),
        ("a love story set in the sixties", (None, None)),
        ("a love story during the sixties, made in the 90s", (1990, 1999)),
        ("a comedy from the 90s", (1990, 1999)),
        ("a film in the 80s", (1980, 1989)),
    ],
)
def test_the_story_setting_is_not_a_release_year(text, years):
    up = parse_turn(text)
    assert (up.year_min, up.year_max) == years
