"""The leave-one-out and ReDial protocols on the real data."""

from __future__ import annotations

import json

import pytest

from fusionrec.data import redial_turns as R
from fusionrec.data.loo import SPLITS
from fusionrec.evaluation import protocols as P


@pytest.fixture(scope="module")
def loo(ml100k):
    items, interactions = ml100k
    ids = [i.id for i in items]
    return {s: P.build_loo(interactions, ids, s, seed=0) for s in SPLITS}


def test_leave_one_out_by_time_with_20_candidates(ml100k, loo):
    items, interactions = ml100k
    test, valid = loo["test"], loo["valid"]
    assert len(test) == len(valid) == 943  # every ML-100k user has at least 20 ratings
    seqs = P.user_sequences(interactions)
    rated = {u: set(s) for u, s in seqs.items()}
    times = {(str(x.user), str(x.item)): x.timestamp for x in interactions}
    for t, v in zip(test, valid, strict=True):
        assert t.user == v.user
        seq = seqs[t.user]
        assert t.target == seq[-1] and v.target == seq[-2]
        assert times[(t.user, t.target)] == max(times[(t.user, i)] for i in seq)
        assert len(t.candidates) == 20 == len(set(t.candidates)) and t.target in t.candidates
        negatives = set(t.candidates) - {t.target}
        assert not negatives & rated[t.user]  # negatives were never rated by the user
        assert t.history == seq[-21:-1] and t.target not in t.history  # 20 most recent, oldest first
        assert v.history == seq[-22:-2] and t.history[-1] == v.target
    positions = [t.candidates.index(t.target) for t in test]
    assert len(set(positions)) > 15  # the target is not always in the same slot


def test_same_seed_same_sets_other_seed_other_negatives(ml100k, loo):
    items, interactions = ml100k
    ids = [i.id for i in items]
    again = P.build_loo(interactions, ids, "test", seed=0)
    assert [e.to_dict() for e in again] == [e.to_dict() for e in loo["test"]]
    other = P.build_loo(interactions, ids, "test", seed=1)
    assert [e.target for e in other] == [e.target for e in loo["test"]]
    assert sum(a.candidates != b.candidates for a, b in zip(other, loo["test"], strict=True)) > 900


def test_identical_to_the_shared_candidate_builder(ml100k, loo):
    """The sets built here are the shared (`fusionrec.data.loo`) ones finetune saves with random negatives."""
    from fusionrec.data.loo import NegativeSampler, eval_examples, leave_one_out

    items, interactions = ml100k
    splits = leave_one_out(P.user_sequences(interactions))
    sampler = NegativeSampler([i.id for i in items])
    for split in SPLITS:
        theirs = eval_examples(splits, split, sampler, seed=0, num_candidates=20, history_len=20)
        assert [e.to_dict() for e in theirs] == [e.to_dict() for e in loo[split]]


def test_finetune_file_is_read_and_validated(tmp_path, ml100k, loo):
    from tests.conftest import make_config

    items, interactions = ml100k
    ids = [i.id for i in items]
    cfg = make_config("tiny", home=tmp_path)
    path = P.candidates_path(cfg, "test")
    path.parent.mkdir(parents=True)
    saved = [e.to_dict() for e in loo["test"][:5]]
    path.write_text(json.dumps(saved))
    got, info = P.load_loo(cfg, ids, interactions, "test")
    assert [e.to_dict() for e in got] == saved and info["source"] == "finetune file"
    saved[3]["candidates"] = [c for c in saved[3]["candidates"] if c != saved[3]["target"]]
    path.write_text(json.dumps(saved))
    with pytest.raises(P.ProtocolError, match=r"candidates_test.json: record 3: target .* not among"):
        P.load_loo(cfg, ids, interactions, "test")
    saved[3]["candidates"].append("99999")
    saved[3]["target"] = "99999"
    path.write_text(json.dumps(saved))
    with pytest.raises(P.ProtocolError, match="record 3: item 99999 is not in the catalog"):
        P.load_loo(cfg, ids, interactions, "test")
    path.write_text("{not json")
    with pytest.raises(P.ProtocolError, match="candidates_test.json: not valid JSON"):
        P.load_loo(cfg, ids, interactions, "test")
    path.unlink()  # no file: built here, same as ours
    built, info = P.load_loo(cfg, ids, interactions, "test")
    assert "built by evaluation" in info["source"]
    assert [e.to_dict() for e in built] == [e.to_dict() for e in loo["test"]]


def test_subsets_are_seeded_and_nested(loo):
    test = loo["test"]
    a = P.subset(test, 50, seed=0)
    assert [e.user for e in a] == [e.user for e in P.subset(test, 50, seed=0)]
    assert [e.user for e in a] != [e.user for e in P.subset(test, 50, seed=1)]
    small = P.subset(test, 10, seed=0)
    assert {e.user for e in small} <= {e.user for e in a}  # the LLM subset lies inside the eval subset
    assert [int(e.user) for e in a] == sorted(int(e.user) for e in a)  # original order kept
    assert len(P.subset(test, 0, 0)) == len(test)


def test_heldout_targets_never_train(data_cfg, ml100k, loo):
    items, interactions = ml100k
    ids = [i.id for i in items]
    held = P.heldout_pairs(data_cfg, ids, interactions, "test")
    train = P.train_interactions(interactions, held)
    pairs = {(str(x.user), str(x.item)) for x in train}
    assert all((e.user, e.target) not in pairs for e in loo["test"])
    assert len(train) == len(interactions) - 943
    held_v = P.heldout_pairs(data_cfg, ids, interactions, "valid")
    assert len(P.train_interactions(interactions, held_v)) == len(interactions) - 2 * 943


def test_redial_examples_by_hand():
    record = {
        "conversation_id": "c1",
        "messages": [
            {"role": "seeker", "text": "I loved Toy Story", "movie_ids": ["1"]},
            {"role": "recommender", "text": "Try Toy Story or Babe", "movie_ids": ["1", "8"]},
            {"role": "seeker", "text": "Seen Babe and Toy Story", "movie_ids": ["8", "1"]},
            {"role": "recommender", "text": "Then Heat", "movie_ids": ["6"]},
        ],
    }
    ex = R.redial_examples([record])
    assert [(e.turn, e.target, e.new) for e in ex] == [(1, "1", False), (1, "8", True), (3, "6", True)]
    assert ex[0].mentioned == ["1"] and [m["text"] for m in ex[0].context] == ["I loved Toy Story"]
    assert ex[2].mentioned == ["8", "1"] and len(ex[2].context) == 3  # most recent mention last
    assert "Then Heat" not in R.context_text(ex[2])  # the turn itself is never in its context
    assert R.mention_counts([record]) == {"1": 3, "8": 2, "6": 1}
    with pytest.raises(P.ProtocolError, match="record 0"):
        R.redial_examples([{"messages": []}])


def test_redial_examples_on_the_real_test_dialogues(data_cfg):
    from fusionrec.data.prepare import load_dialogues, load_prepared

    ids = {i.id for i in load_prepared(data_cfg, "redial")[0]}
    ex = [e for e in R.redial_examples(load_dialogues(data_cfg, "test")) if e.target in ids]
    assert len(ex) > 1000 and len({(e.conversation_id, e.turn) for e in ex}) > 1000
    assert 0 < sum(e.new for e in ex) < len(ex)
