"""The ReDial protocol: count baselines on hand-made dialogues, and the "new" filter on the real test split."""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest

from fusionrec.evaluation import protocols as P
from fusionrec.evaluation.redial import CatalogScores, dialogue_interactions, run_redial, summary_section
from tests.evaluation.conftest import HOME

CATALOG = ["a", "b", "c", "d", "e"]


def _dialogue(cid: str, *turns: tuple[str, list[str]]) -> dict:
    return {
        "conversation_id": cid,
        "messages": [{"role": role, "text": " ".join(ids) or "hi", "movie_ids": ids} for role, ids in turns],
    }


# training: d is the most mentioned; a shares two dialogues with c, one with b and one with d
TRAIN = [
    _dialogue("t1", ("seeker", ["a"]), ("recommender", ["c", "d"])),
    _dialogue("t2", ("seeker", ["a", "b"]), ("recommender", ["c"])),
    _dialogue("t3", ("seeker", ["d"]), ("recommender", ["e", "d"])),
]


@pytest.fixture(scope="module")
def scores() -> CatalogScores:
    return CatalogScores(CATALOG, TRAIN)


def test_popularity_counts_training_mentions(scores):
    assert dict(zip(CATALOG, scores.popularity, strict=True)) == {"a": 2, "b": 1, "c": 2, "d": 3, "e": 1}
    assert scores.order() == ["d", "a", "c", "b", "e"]  # ties: catalog order


def test_repeat_puts_the_most_recent_mention_first(scores):
    (ex,) = P.redial_examples(
        [_dialogue("x", ("seeker", ["e", "b"]), ("seeker", ["e"]), ("recommender", ["c"]))]
    )
    assert ex.mentioned == ["b", "e"]  # e was mentioned again last
    assert scores.order(scores.repeat(ex.mentioned)) == ["e", "b", "d", "a", "c"]  # then popularity
    assert scores.order(scores.repeat(ex.mentioned), exclude=ex.mentioned) == ["d", "a", "c"]  # "new"


def test_co_mention_backs_off_to_popularity(scores):
    # with a: c (2 dialogues) > d, b (1 each; d more popular) > a, e (0; by popularity)
    assert scores.order(scores.co_mention(["a"])) == ["c", "d", "b", "a", "e"]
    assert scores.order(scores.co_mention([])) == scores.order()
    assert scores.order(scores.co_mention(["a"]), exclude=["a"]) == ["c", "d", "b", "e"]


def test_repeat_then_co_mention(scores):
    mentioned = ["b", "a"]  # a most recent; co-mention with a and b: c 3, d 1
    assert scores.order(scores.repeat(mentioned), scores.co_mention(mentioned)) == ["a", "b", "c", "d", "e"]
    assert scores.order(scores.repeat(mentioned), scores.co_mention(mentioned), exclude=mentioned) == [
        "c",
        "d",
        "e",
    ]


def test_bpr_feedback_is_one_pair_per_dialogue_and_movie():
    pairs = {(x.user, x.item) for x in dialogue_interactions(TRAIN)}
    assert len(pairs) == len(dialogue_interactions(TRAIN)) == 3 + 3 + 2


def test_new_filter_removes_exactly_the_already_mentioned_targets(data_cfg):
    """Real test split: popularity and repeat; `new` holds the targets not mentioned before, and its
    rankings never hold a movie mentioned before."""
    cfg = dataclasses.replace(data_cfg, eval=dataclasses.replace(data_cfg.eval, limit=300, bootstrap=50))
    folder = HOME / "reports" / "redial-new-filter"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    section = run_redial(cfg, folder, "popularity,repeat,co-mention,repeat+co-mention")
    from fusionrec.data.prepare import load_dialogues, load_prepared

    known = {i.id for i in load_prepared(cfg, "redial")[0]}
    examples = P.subset(
        [e for e in P.redial_examples(load_dialogues(cfg, "test")) if e.target in known], 300, cfg.eval.seed
    )
    repeated = [e for e in examples if e.target in e.mentioned]
    assert section["examples"] == 300 and 0 < len(repeated) < 300
    assert section["train_dialogues"] == 600 and section["train_splits"] == ["train", "valid"]
    for name, s in section["systems"].items():
        assert s["all"]["n"] == 300 and s["new"]["n"] == 300 - len(repeated), name
    from fusionrec.evaluation.records import Records

    rec = Records(folder, "redial", "repeat")
    for e in examples:
        r = rec.get(e.key)
        assert ("rank_new" in r) == (e.target not in e.mentioned)
        recent = [m for m in e.mentioned[::-1] if m in known][:10]
        assert r["top_all"][: len(recent)] == recent  # repeat: the most recent mention first
        if "top_new" in r:
            assert not set(r["top_new"]) & set(e.mentioned)
    # repeat finds every already-mentioned target within the movies mentioned so far
    assert all(rec.get(e.key)["rank_all"] <= len(e.mentioned) for e in repeated)
    summary = summary_section(section, "cmd")
    assert summary["split"] == "official-test" and summary["turns"] <= summary["examples"] == 300
    assert summary["shipped"] in {"popularity", "repeat", "co-mention", "repeat+co-mention"}
    best = summary["shipped"]
    assert set(summary["paired"]) == (set() if best == "popularity" else {f"{best} - popularity"})
    assert all(np.isfinite(v) for row in summary["systems"].values() for v in (row["R@10"], row["R@10_new"]))
