"""Ranking: the verbalizer is always a permutation; generative answers are parsed and invalid ones counted."""

from __future__ import annotations

import random

import numpy as np
import pytest

from fusionrec.agent.projector import Projectors
from fusionrec.agent.prompt import build_rank_prompt
from fusionrec.agent.rank import parse_generated, rank_generative, rank_verbalizer, retrieval_scores
from fusionrec.types import Candidate, Item
from tests.agent.conftest import make_candidates


@pytest.fixture(scope="module")
def proj(tiny_llm):
    return Projectors(tiny_llm[0].config.hidden_size, seed=0)


def _ids(cands):
    return [c.item.id for c in cands]


def test_verbalizer_is_always_a_permutation(tiny_llm, proj, ml100k):
    model, tok = tiny_llm
    rng = random.Random(0)
    for _ in range(25):
        n = rng.randint(1, 20)
        items = rng.sample(ml100k, n)
        cands = make_candidates(items, [rng.random() for _ in items])
        vecs = {i.id: np.random.default_rng(int(i.id)).standard_normal(24).astype(np.float32) for i in items}
        prompt = build_rank_prompt(
            tok, "default", rng.choice(["a comedy", "space", "no horror"]), cands, item_vectors=vecs
        )
        ranking = rank_verbalizer(model, proj, prompt, retrieval_weight=rng.choice([0.0, 0.5]))
        assert sorted(_ids(ranking.candidates)) == sorted(_ids(cands))
        assert len(ranking.scores) == n and ranking.scores == sorted(ranking.scores, reverse=True)
        assert ranking.method == "verbalizer" and ranking.invalid == []


def test_large_retrieval_weight_gives_retrieval_order(tiny_llm, proj, ml100k):
    model, tok = tiny_llm
    items = ml100k[:8]
    scores = [0.3, 0.9, 0.1, 0.5, 0.7, 0.2, 0.8, 0.4]
    prompt = build_rank_prompt(tok, "concise", "anything", make_candidates(items, scores))
    ranking = rank_verbalizer(model, proj, prompt, retrieval_weight=1000.0)
    assert [c.score for c in ranking.candidates] == sorted(scores, reverse=True)


def test_retrieval_scores_normalised():
    cands = make_candidates([Item(str(i), f"t{i}") for i in range(3)], [2.0, 4.0, 3.0])
    assert retrieval_scores(cands) == [0.0, 1.0, 0.5]
    assert retrieval_scores(cands[:1]) == [0.0]


@pytest.mark.parametrize(
    ("text", "order", "invalid"),
    [
        ("C, A, B, D", [2, 0, 1, 3], []),
        ("A. A.T.B.E", [0, 1, 4], ["duplicate: A", "not a candidate: T"]),
        ("B, B, Z, Heat, foo bar", [1, 2], ["duplicate: B", "not a candidate: Z", "unparseable: foo bar"]),
        ("A Clockwork Orange, Toy Story", [1, 0], []),
        ("1. Toy Story\n2. Heat\n3. Usual Suspects, The", [0, 2, 3], []),
        ("Emma, The Thing", [4], ["unparseable: The Thing"]),
        ("(C) (A)", [2, 0], []),
        ("C) Heat; A. Toy Story", [2, 0], []),
        ("", [], []),
    ],
)
def test_parse_generated(text, order, invalid):
    titles = ["Toy Story", "A Clockwork Orange", "Heat", "Usual Suspects", "Emma"]
    cands = [Candidate(Item(str(i), t), 0.0) for i, t in enumerate(titles)]
    got_order, got_invalid = parse_generated(text, list("ABCDE"), cands)
    assert got_order == order
    assert got_invalid == invalid


def test_generative_counts_invalid_and_still_returns_a_permutation(tiny_llm, proj, ml100k):
    model, tok = tiny_llm
    cands = make_candidates(ml100k[:6])
    prompt = build_rank_prompt(tok, "default", "a comedy", cands)
    ranking = rank_generative(model, tok, proj, prompt, max_new_tokens=12)
    assert ranking.method == "generative"
    assert sorted(_ids(ranking.candidates)) == sorted(_ids(cands))
    order, invalid = parse_generated(ranking.raw_output, prompt.labels, cands)
    assert ranking.invalid == invalid
    assert _ids(ranking.candidates)[: len(order)] == [cands[i].item.id for i in order]
    # the random tiny model writes no valid ranking: its answer is counted as invalid, never silently used
    assert ranking.raw_output and invalid and len(order) < len(cands), (ranking.raw_output, order, invalid)
    mentioned = {cands[i].item.id for i in order}  # the rest follow in retrieval order
    assert _ids(ranking.candidates)[len(order) :] == [i for i in _ids(cands) if i not in mentioned]


def test_calibrated_verbalizer_subtracts_the_label_prior(tiny_llm, proj, ml100k):
    from fusionrec.agent.rank import label_logprobs, label_prior

    model, tok = tiny_llm
    cands = make_candidates(ml100k[:7])
    prompt = build_rank_prompt(tok, "default", "a comedy", cands)
    prior = label_prior(model, tok, "default", 7)
    assert len(prior) == 7 and prior != label_logprobs(model, proj, prompt).tolist()
    ranking = rank_verbalizer(model, proj, prompt, prior=prior)
    assert ranking.method == "verbalizer-calibrated"
    assert sorted(_ids(ranking.candidates)) == sorted(_ids(cands))
    own = label_logprobs(model, proj, prompt).tolist()
    flat = rank_verbalizer(model, proj, prompt, prior=own)  # subtracting itself leaves ties: input order
    assert _ids(flat.candidates) == _ids(cands) and set(flat.scores) == {0.0}
    with pytest.raises(ValueError, match="6 values for 7 candidates"):
        rank_verbalizer(model, proj, prompt, prior=prior[:6])


def test_pointwise_scores_each_candidate_at_its_item_token(tiny_llm, proj, ml100k):
    """Pointwise: one score position per candidate, at its hybrid item token (text only: the end of
    its title); a candidate's score depends on what came before it, not on the candidates after it."""
    import torch

    from fusionrec.agent.rank import label_logprobs, prompt_embeds

    model, tok = tiny_llm
    items = ml100k[:6]
    vecs = {i.id: np.random.default_rng(int(i.id)).standard_normal(24).astype(np.float32) for i in items}

    def raw_scores(cands):
        prompt = build_rank_prompt(tok, "concise", "a comedy", cands, item_vectors=vecs, scoring="pointwise")
        keep = torch.tensor(prompt.score_positions)
        out = model(inputs_embeds=prompt_embeds(model, proj, prompt), logits_to_keep=keep)
        return prompt, out.logits[0, :, prompt.score_id].detach()

    prompt, first = raw_scores(make_candidates(items, [0.0] * 6))
    assert len(prompt.score_positions) == 6 and prompt.score_positions == sorted(prompt.score_positions)
    assert prompt.score_positions == prompt.encoded.positions  # every candidate has a vector here
    text_only = build_rank_prompt(
        tok, "concise", "a comedy", make_candidates(items, [0.0] * 6), scoring="pointwise"
    )
    for name, item, pos in zip(text_only.labels, items, text_only.score_positions, strict=True):
        line = tok.decode(text_only.encoded.input_ids[: pos + 1]).rsplit("\n", 1)[-1]
        assert line.startswith(f"{name}. <data>") and line.rstrip().endswith(f"({item.year})")
    _, swapped = raw_scores(make_candidates([*items[:3], items[5], items[4], items[3]], [0.0] * 6))
    torch.testing.assert_close(first[:3], swapped[:3])  # the first three did not see the rest
    assert not torch.allclose(first[3:], swapped[3:])
    logp = label_logprobs(model, proj, prompt)
    torch.testing.assert_close(logp, torch.log_softmax(first.float(), -1))
    ranking = rank_verbalizer(model, proj, prompt)
    assert ranking.method == "verbalizer-pointwise"
    assert sorted(_ids(ranking.candidates)) == sorted(i.id for i in items)
    with pytest.raises(ValueError, match="scoring"):
        build_rank_prompt(tok, "concise", "x", make_candidates(items, [0.0] * 6), scoring="pairwise")
