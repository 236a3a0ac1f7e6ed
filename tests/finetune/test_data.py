"""Datasets: leave-one-out by time, seeded candidate files, ReDial examples, no leakage."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest

from fusionrec.data import redial_turns as R
from fusionrec.data.loo import (
    ExampleError,
    NegativeSampler,
    candidates_path,
    eval_examples,
    leave_one_out,
    read_candidates,
)
from fusionrec.data.splits import user_sequences
from fusionrec.evaluation import llm
from fusionrec.finetune.data import candidate_sets, explanation_target, train_examples, turn_examples
from fusionrec.finetune.prompts import seq_rank_prompt
from fusionrec.types import Interaction


def test_leave_one_out_orders_by_time_then_item_id():
    xs = [
        Interaction("u", "10", 5, 300),
        Interaction("u", "9", 4, 100),
        Interaction("u", "2", 3, 100),  # same second as "9": the smaller id comes first
        Interaction("u", "7", 3, 200),
        Interaction("u", "5", 3, 400),
        Interaction("v", "1", 3, 1),
    ]
    seqs = user_sequences(xs)
    assert seqs["u"] == ["2", "9", "7", "10", "5"]
    split = leave_one_out(seqs)
    assert (split["u"].train, split["u"].valid, split["u"].test) == (["2", "9", "7"], "10", "5")
    assert split["v"].valid is None and split["v"].train == ["1"]


def test_candidate_files_are_seeded_complete_and_reused(ft_cfg, ml100k, tmp_path):
    items, splits = ml100k
    sampler = NegativeSampler(list(items))
    sets = candidate_sets(ft_cfg, "movielens-100k", splits, sampler, seed=0)
    assert len(sets["valid"]) == len(sets["test"]) == 943
    for split in ("valid", "test"):
        path = candidates_path(ft_cfg, "movielens-100k", split)
        records = json.loads(path.read_text())
        assert set(records[0]) == {"user", "target", "history", "candidates"}
        for rec in records:
            s = splits[rec["user"]]
            assert rec["target"] == (s.valid if split == "valid" else s.test)
            assert len(rec["candidates"]) == 20 == len(set(rec["candidates"]))
            assert rec["target"] in rec["candidates"]
            negatives = set(rec["candidates"]) - {rec["target"]}
            assert not negatives & set(s.all_items), "a negative the user rated"
            assert rec["history"] == s.all_items[: s.all_items.index(rec["target"])][-20:]
    # the same seed gives the same sets; the saved files are read back as they are
    again = eval_examples(splits, "valid", sampler, seed=0)
    assert [e.candidates for e in again] == [e.candidates for e in sets["valid"]]
    other = eval_examples(splits, "valid", sampler, seed=1)
    assert [e.candidates for e in other] != [e.candidates for e in sets["valid"]]
    mtime = candidates_path(ft_cfg, "movielens-100k", "valid").stat().st_mtime_ns
    candidate_sets(ft_cfg, "movielens-100k", splits, sampler, seed=0)
    assert candidates_path(ft_cfg, "movielens-100k", "valid").stat().st_mtime_ns == mtime
    bad = tmp_path / "bad.json"
    bad.write_text('[{"user": "1", "target": "5", "history": [], "candidates": ["1", "2"]}]')
    with pytest.raises(ExampleError, match=r"bad\.json: record 0: target 5"):
        read_candidates(bad)


def test_no_valid_or_test_item_leaks_into_training_prompts(ft_cfg, ml100k, tiny_llm):
    """For 60 users, every training example (all sliding positions) and its rendered prompt:
    the user's validation and test items appear nowhere (not as history, candidate or target)."""
    items, splits = ml100k
    _, tokenizer = tiny_llm
    users = list(splits)[:60]
    train = train_examples(splits, users, NegativeSampler(list(items)), seed=0, history_len=20)
    assert len(train) > 3000
    held_out = {u: {splits[u].valid, splits[u].test} for u in users}
    title = {i: f"{it.title} ({it.year})" if it.year else it.title for i, it in items.items()}
    for ex in train:
        ids = {ex.target, *ex.history, *ex.candidates}
        assert not ids & held_out[ex.user], f"user {ex.user}: a held-out item in a training example"
    checked = 0
    for ex in train[::25]:  # rendered prompts of a sample: no held-out title, no ids, no timestamps
        hybrid = {*ex.history, *ex.candidates}
        prompt = seq_rank_prompt(
            tokenizer, "concise", ex, items, {}, hybrid, max_tokens=4096, overview_chars=0, placeholder=0
        )
        text = prompt.encoded.text
        for i in held_out[ex.user]:
            # the held-out title may legitimately be a prefix of another title; require the exact line
            assert f"<data>{title[i]} " not in text and f"<data>{title[i]}<" not in text
        assert not re.search(r"\d{6,}", text), "a timestamp-like number in a prompt"
        checked += 1
    assert checked > 100


def test_prompts_do_not_depend_on_item_ids(ml100k, tiny_llm):
    """Renaming every item id leaves the token ids of a training prompt unchanged."""
    items, splits = ml100k
    _, tokenizer = tiny_llm
    ex = train_examples(splits, ["1"], NegativeSampler(list(items)), seed=0, per_user=1)[0]
    renamed = {i: f"x{int(i) * 7 + 3}" for i in items}
    items2 = {renamed[i]: dataclasses.replace(it, id=renamed[i]) for i, it in items.items()}
    ex2 = dataclasses.replace(
        ex,
        target=renamed[ex.target],
        history=[renamed[i] for i in ex.history],
        candidates=[renamed[i] for i in ex.candidates],
    )
    kw = {"max_tokens": 4096, "overview_chars": 0, "placeholder": 0}
    a = seq_rank_prompt(tokenizer, "concise", ex, items, {}, set(), **kw)
    b = seq_rank_prompt(tokenizer, "concise", ex2, items2, {}, set(), **kw)
    assert a.encoded.input_ids == b.encoded.input_ids
    assert len(ex.history) == 20 and ex.target not in ex.history


def test_redial_turns_rank_the_conversational_priors_candidates_without_their_own_dialogue(ft_cfg):
    from fusionrec.data.prepare import load_dialogues, load_prepared
    from fusionrec.retrieval.collaborative.conversation import ConversationPrior

    catalog = [i.id for i in load_prepared(ft_cfg, "redial")[0]]
    train, test = load_dialogues(ft_cfg, "train"), load_dialogues(ft_cfg, "test")
    prior = ConversationPrior.from_records(catalog, train)
    examples = turn_examples(train, prior, leave_out=True, num_candidates=20, max_mentioned=5)
    assert 300 < len(examples) < len(R.redial_examples(train))  # targets outside the candidates are skipped
    assert not {e.dialogue for e in examples} & {str(r["conversation_id"]) for r in test}
    by_id = {str(r["conversation_id"]): r for r in train}
    for ex in examples[:40]:
        assert ex.target in ex.candidates and len(ex.candidates) == 20 and ex.request
        assert len(ex.prior) == 20 and ex.prior == sorted(ex.prior, reverse=True)
        # the prior a training turn sees is the one counted without its own dialogue
        others = ConversationPrior.from_records(
            catalog, [r for r in train if str(r["conversation_id"]) != ex.dialogue]
        )
        turn = next(
            t for t in R.redial_examples([by_id[ex.dialogue]]) if (t.turn, t.target) == (ex.turn, ex.target)
        )
        assert R.request_and_history(turn.context)[0] == ex.request
        assert ex.candidates == others.candidates(turn.mentioned, 20, 5)


def test_explanation_targets_pass_the_agents_fact_check(ml100k):
    from fusionrec.agent.explain import fact_check

    items, _ = ml100k
    titles = [i.title for i in items.values()]
    genres = sorted({g for i in items.values() for g in i.genres})
    sample = [items[str(i)] for i in range(1, 400, 20)]
    for item in sample:
        text = f"{item.title} fits because{explanation_target(item)}"
        assert fact_check(text, item, titles, genres) == [], (item.title, text)


def test_evaluation_builds_the_training_prompt_format(ml100k):
    """evaluation/llm.py mirrors finetune/prompts.py (it may not import finetune): same request, same history."""
    import numpy as np

    from fusionrec.finetune.prompts import SEQ_REQUEST, history_attachments

    items, _ = ml100k
    history = ["50", "181", "1", "12"]
    vectors = {i: np.full(4, float(k), dtype=np.float32) for k, i in enumerate(history)}
    assert llm.SEQ_REQUEST == SEQ_REQUEST
    ours = history_attachments([items[i] for i in history[-3:]], vectors, set(history))
    theirs = llm.history_attachments(items, history, vectors, n=3)
    assert [(a.kind, a.details) for a in ours] == [(a.kind, a.details) for a in theirs]
    assert all(np.array_equal(a.vector, b.vector) for a, b in zip(ours, theirs, strict=True))
