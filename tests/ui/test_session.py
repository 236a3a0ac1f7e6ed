"""Per-session state and the turn loop over a real tiny-profile Agent (no browser)."""

from __future__ import annotations

import copy
import shutil

import pytest

from fusionrec.ui.session import (
    SEARCHING,
    Session,
    chat_value,
    constraints_markdown,
    feedback,
    filter_values,
    reset,
    run_turn,
    set_filters,
)

BOUNDS = (1922, 1998)


def turn(agent, cfg, session, text, files=(), mic=None) -> list[str]:
    return list(run_turn(agent, cfg, session, text, files, mic))


@pytest.fixture()
def answered(tiny_agent, ui_tiny_cfg):
    """A session after one successful turn."""
    s = Session()
    steps = turn(tiny_agent, ui_tiny_cfg, s, "a comedy movie")
    return s, steps


def test_a_turn_fills_cards_chat_and_constraints(answered, tiny_agent):
    s, steps = answered
    k = tiny_agent.cfg.agent
    assert steps[0] == "chat" and steps[-1] == "state" and "cards" in steps
    assert [c.rank for c in s.cards] == list(range(1, len(s.cards) + 1))
    assert len(s.cards) == min(k.show_top_k, k.num_candidates)
    assert [c.item.id for c in s.cards] == s.state.last_ranking
    explained = [c for c in s.cards if c.explained]
    assert len(explained) == k.explain_top_k and all(c.explanation for c in explained)
    assert not any(c.streaming for c in s.cards)
    assert all(c.retrieval_rank and c.llm_score is not None for c in s.cards)
    assert all("text" in c.modality_scores for c in s.cards)
    assert s.method == "verbalizer" and "from 10 candidates" in s.note
    assert s.messages[0] == {"role": "user", "content": "a comedy movie"}
    reply = s.messages[-1]["content"]
    assert reply.startswith("Here is what I found") and s.cards[0].item.title in reply
    assert s.status.startswith("Last turn:")
    assert "Comedy" in constraints_markdown(s)  # "comedy" -> the Comedy constraint


def test_explanations_stream_token_by_token(tiny_agent, ui_tiny_cfg):
    s = Session()
    seen = []
    for what in run_turn(tiny_agent, ui_tiny_cfg, s, "an exciting adventure"):
        if what == "cards" and s.cards and s.cards[0].streaming:
            seen.append(s.cards[0].explanation)
    assert len(seen) >= 2 and all(b.startswith(a) for a, b in zip(seen, seen[1:], strict=False))


def test_feedback_changes_the_dialogue_state_and_undoes(answered):
    s, _ = answered
    first, second = s.cards[0].item, s.cards[1].item
    assert "like" in feedback(s, first.id, "like")
    assert s.state.liked == [first.id] and s.cards[0].feedback == "like"
    assert first.title in constraints_markdown(s)
    feedback(s, second.id, "dislike")
    assert s.state.disliked == [second.id]
    feedback(s, first.id, "dislike")  # switching sides
    assert first.id not in s.state.liked and first.id in s.state.disliked
    assert "removed" in feedback(s, first.id, "dislike")  # clicking again undoes
    assert first.id not in s.state.disliked and s.cards[0].feedback == ""
    assert "no longer" in feedback(s, "no-such-id", "like")
    with pytest.raises(ValueError, match="unknown feedback"):
        feedback(s, first.id, "love")


def test_liked_items_are_excluded_and_reach_the_next_turn(answered, tiny_agent, ui_tiny_cfg):
    s, _ = answered
    before = {c.item.id for c in s.cards}
    feedback(s, s.cards[0].item.id, "like")
    turn(tiny_agent, ui_tiny_cfg, s, "another one please")
    assert s.cards and not before & {c.item.id for c in s.cards}
    assert s.state.liked and s.state.liked[0] in before


def test_filter_panel_round_trip_and_effect(tiny_agent, ui_tiny_cfg):
    s = Session()
    set_filters(s, ["Drama"], ["Drama", "Horror"], 1990, 1980, BOUNDS)  # swapped years, overlap
    assert s.state.include_genres == {"Drama"} and s.state.exclude_genres == {"Horror"}
    assert (s.state.year_min, s.state.year_max) == (1980, 1990)
    assert filter_values(s, BOUNDS) == (["Drama"], ["Horror"], 1980, 1990)
    set_filters(s, [], [], *BOUNDS, BOUNDS)  # the panel's edges mean no bound
    assert s.state.year_min is None and s.state.year_max is None
    set_filters(s, ["Drama"], [], 1990, BOUNDS[1], BOUNDS)
    turn(tiny_agent, ui_tiny_cfg, s, "something good")
    assert s.cards and all("Drama" in c.item.genres and c.item.year >= 1990 for c in s.cards)
    md = constraints_markdown(s)
    assert "**Genres:** Drama" in md and "1990–…" in md and "Already shown" in md


def test_bad_upload_gets_a_chat_message_and_changes_nothing(answered, tiny_agent, ui_tiny_cfg, tmp_path):
    s, _ = answered
    bad = tmp_path / "broken.jpg"
    bad.write_text("not a jpeg")
    state_before, cards_before = copy.deepcopy(s.state), [c.item.id for c in s.cards]
    steps = turn(tiny_agent, ui_tiny_cfg, s, "like this poster", [str(bad)])
    assert steps[-1] == "chat"
    msg = s.messages[-1]["content"]
    assert msg.startswith("⚠ I could not use your upload") and "broken.jpg: not an image file" in msg
    assert s.messages[-2] == {"role": "user", "content": {"path": str(bad)}}
    assert s.state == state_before and [c.item.id for c in s.cards] == cards_before
    turn(tiny_agent, ui_tiny_cfg, s, "a thriller")  # the session goes on
    assert s.messages[-1]["content"].startswith("Here is what I found")


def test_a_poster_upload_reaches_the_agent(tiny_agent, ui_tiny_cfg, posters, tmp_path):
    poster = tmp_path / "poster.jpg"
    shutil.copy(posters / "1.jpg", poster)
    s = Session()
    turn(tiny_agent, ui_tiny_cfg, s, "something like this", [str(poster)])
    assert s.cards and s.state.turns[0].attachments[0].kind == "image"
    assert s.messages[1] == {"role": "user", "content": {"path": str(poster)}}


def test_empty_message_does_nothing_and_errors_are_shown(tiny_agent, ui_tiny_cfg):
    s = Session()
    assert turn(tiny_agent, ui_tiny_cfg, s, "   ") == [] and not s.messages
    long = "x" * (tiny_agent.cfg.agent.max_message_chars + 1)
    turn(tiny_agent, ui_tiny_cfg, s, long)
    assert s.messages[-1]["content"].startswith("⚠ Your message is too long")
    assert s.messages[-1]["content"] != SEARCHING and not s.cards


def test_sessions_are_independent_and_reset(answered, tiny_agent, ui_tiny_cfg):
    s, _ = answered
    other = Session()
    turn(tiny_agent, ui_tiny_cfg, other, "a scary horror film")
    assert other.state is not s.state and other.messages[0]["content"] == "a scary horror film"
    assert s.messages[0]["content"] == "a comedy movie"
    reset(s)
    assert s == Session() and other.cards


def test_chat_value_turns_frames_into_a_gallery():
    import gradio as gr

    s = Session(messages=[{"role": "assistant", "content": "", "gallery": ["/tmp/a.jpg", "/tmp/b.jpg"]}])
    s.messages.insert(0, {"role": "user", "content": "hi"})
    value = chat_value(s)
    assert value[0] == {"role": "user", "content": "hi"}
    assert isinstance(value[1]["content"], gr.Gallery) and value[1]["role"] == "assistant"
