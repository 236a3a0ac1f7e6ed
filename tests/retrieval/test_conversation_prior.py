"""The conversational prior of ReDial turns on hand-made dialogues: counts, orders, leave-one-out, candidates."""

from __future__ import annotations

import numpy as np
import pytest

from fusionrec.data import redial_turns as R
from fusionrec.retrieval.collaborative.conversation import ConversationPrior

CATALOG = ["a", "b", "c", "d", "e"]


def dialogue(cid: str, *turns: tuple[str, list[str]]) -> dict:
    return {
        "conversation_id": cid,
        "messages": [{"role": role, "text": " ".join(ids) or "hi", "movie_ids": ids} for role, ids in turns],
    }


# training: d is the most mentioned; a shares two dialogues with c, one with b and one with d
TRAIN = [
    dialogue("t1", ("seeker", ["a"]), ("recommender", ["c", "d"])),
    dialogue("t2", ("seeker", ["a", "b"]), ("recommender", ["c"])),
    dialogue("t3", ("seeker", ["d"]), ("recommender", ["e", "d"])),
]


@pytest.fixture(scope="module")
def prior() -> ConversationPrior:
    return ConversationPrior.from_records(CATALOG, TRAIN)


def test_popularity_counts_training_mentions(prior):
    assert dict(zip(CATALOG, prior.popularity, strict=True)) == {"a": 2, "b": 1, "c": 2, "d": 3, "e": 1}
    assert prior.order() == ["d", "a", "c", "b", "e"]  # ties: catalog order


def test_repeat_puts_the_most_recent_mention_first(prior):
    (ex,) = R.redial_examples(
        [dialogue("x", ("seeker", ["e", "b"]), ("seeker", ["e"]), ("recommender", ["c"]))]
    )
    assert ex.mentioned == ["b", "e"]  # e was mentioned again last
    assert prior.order(prior.repeat(ex.mentioned)) == ["e", "b", "d", "a", "c"]  # then popularity
    assert prior.order(prior.repeat(ex.mentioned), exclude=ex.mentioned) == ["d", "a", "c"]  # "new"


def test_co_mention_backs_off_to_popularity(prior):
    # with a: c (2 dialogues) > d, b (1 each; d more popular) > a, e (0; by popularity)
    assert prior.order(prior.co_mention(["a"])) == ["c", "d", "b", "a", "e"]
    assert prior.order(prior.co_mention([])) == prior.order()
    assert prior.order(prior.co_mention(["a"]), exclude=["a"]) == ["c", "d", "b", "e"]


def test_repeat_then_co_mention(prior):
    mentioned = ["b", "a"]  # a most recent; co-mention with a and b: c 3, d 1
    assert prior.ranking(mentioned) == ["a", "b", "c", "d", "e"]
    assert prior.ranking(mentioned, exclude=mentioned) == ["c", "d", "e"]


def test_leaving_a_dialogue_out_equals_counting_without_it(prior):
    for k, rec in enumerate(TRAIN):
        without = ConversationPrior.from_records(CATALOG, TRAIN[:k] + TRAIN[k + 1 :])
        cid = rec["conversation_id"]
        assert np.array_equal(prior.pop(cid), without.popularity)
        for mentioned in (["a"], ["d"], ["a", "b"], ["e", "c"]):
            assert np.array_equal(prior.co_mention(mentioned, cid), without.co_mention(mentioned)), (
                cid,
                mentioned,
            )
            assert prior.ranking(mentioned, leave_out=cid) == without.ranking(mentioned)
    assert np.array_equal(prior.pop("not-a-dialogue"), prior.popularity)


def test_candidates_are_recent_mentions_then_new_movies_in_the_prior_order(prior, tmp_path):
    assert prior.candidates(["b", "a"], n=4, max_mentioned=1) == [
        "a",
        "c",
        "d",
        "e",
    ]  # b: only 1 mention kept
    assert prior.candidates(["b", "a"], n=3, max_mentioned=5) == ["a", "b", "c"]
    assert prior.candidates([], n=2) == ["d", "a"]
    s = np.array(ConversationPrior.scores(5))
    assert np.all(np.diff(s) < 0) and abs(s.mean()) < 1e-9 and abs(s.std() - 1) < 1e-9
    prior.save(tmp_path)
    again = ConversationPrior.load(tmp_path)
    assert again is not None and again.ranking(["a"]) == prior.ranking(["a"])
    assert ConversationPrior.load(tmp_path / "none") is None
    (tmp_path / "conversation_prior.json").write_text("{")
    with pytest.raises(ValueError, match="conversation_prior.json: malformed"):
        ConversationPrior.load(tmp_path)


def test_request_and_history_take_the_seekers_last_message():
    context = [
        {"role": "seeker", "text": "hi"},
        {"role": "recommender", "text": "hello"},
        {"role": "seeker", "text": "I like"},
        {"role": "seeker", "text": " sci-fi"},
        {"role": "recommender", "text": "ok, let me think"},
    ]
    request, history = R.request_and_history(context, turns=6)
    assert request == "I like sci-fi"  # consecutive seeker messages merged
    assert history == [("user", "hi"), ("assistant", "hello"), ("assistant", "ok, let me think")]
    assert R.request_and_history(context, turns=1) == (R.DEFAULT_REQUEST, [("assistant", "ok, let me think")])


def test_scores_of_follow_the_prior_order_among_the_given_ids(prior):
    # with a mentioned: c > d > b > a (repeat puts a first) ; the scores fall along that order, whatever
    # order the ids come in, and an id outside the catalog comes last
    ids = ["b", "zz", "d", "c"]
    got = dict(zip(ids, prior.scores_of(["a"], ids), strict=True))
    assert got["c"] > got["d"] > got["b"] > got["zz"]
    assert sorted(got.values(), reverse=True) == pytest.approx(ConversationPrior.scores(4))
    assert prior.covers(["a", "b", "x", "y"]) == 0.5 and prior.covers([]) == 0.0
