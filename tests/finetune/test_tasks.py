"""Task encodings and losses: training sees exactly what the agent ranks by at inference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fusionrec.agent.projector import Projectors
from fusionrec.agent.rank import label_logprobs
from fusionrec.data.loo import NegativeSampler
from fusionrec.finetune.data import train_examples
from fusionrec.finetune.prompts import alignment_prompt, explanation_ids, seq_rank_prompt
from fusionrec.finetune.tasks import (
    IGNORE,
    RecModel,
    collate,
    encode_lm,
    encode_rank,
    hr_ndcg,
    ranks_of_targets,
)


@pytest.fixture(scope="module")
def setup(ml100k, tiny_llm):
    items, splits = ml100k
    model, tokenizer = tiny_llm
    hidden = model.get_input_embeddings().weight.shape[-1]
    rng = np.random.default_rng(0)
    vectors = {i: rng.standard_normal(16).astype(np.float32) for i in items}
    examples = train_examples(
        splits, ["1", "2"], NegativeSampler(list(items)), seed=0, history_len=4, per_user=1
    )
    return items, model, tokenizer, Projectors(hidden, seed=3), vectors, examples


@pytest.mark.parametrize("scoring", ["listwise", "pointwise"])
def test_batched_label_logits_equal_the_agents_verbalizer(setup, scoring):
    """Two prompts of different lengths, left-padded in one batch, give the candidate log-probs that
    agent.rank.label_logprobs computes for each prompt alone (same soft tokens, same positions),
    for label logits at the answer (listwise) and score-token logits after each line (pointwise)."""
    items, model, tokenizer, projectors, vectors, examples = setup
    prompts = []
    for k, ex in enumerate(examples):
        hybrid = set(ex.candidates[: 10 + 5 * k]) | set(ex.history)  # different lengths and slots
        prompts.append(
            seq_rank_prompt(
                tokenizer,
                "concise",
                ex,
                items,
                vectors,
                hybrid,
                max_tokens=2048,
                overview_chars=0,
                placeholder=0,
                scoring=scoring,
            )
        )
    assert len(prompts[0].encoded) != len(prompts[1].encoded)
    assert all(p.scoring == scoring for p in prompts)
    encoded = [
        encode_rank("ranking", p, ex.candidates.index(ex.target))
        for p, ex in zip(prompts, examples, strict=True)
    ]
    rec = RecModel(model, projectors).eval()
    with torch.no_grad():
        logits = rec.label_logits(collate(encoded, tokenizer.pad_token_id))
    for row, prompt in enumerate(prompts):
        expected = label_logprobs(model, projectors, prompt)
        got = torch.log_softmax(logits[row], dim=-1)
        torch.testing.assert_close(got, expected, atol=2e-4, rtol=1e-4)


def test_ranking_loss_is_cross_entropy_over_label_logits(setup):
    items, model, tokenizer, projectors, vectors, examples = setup
    ex = examples[0]
    prompt = seq_rank_prompt(
        tokenizer,
        "concise",
        ex,
        items,
        vectors,
        set(ex.candidates),
        max_tokens=2048,
        overview_chars=0,
        placeholder=0,
    )
    enc = encode_rank("ranking", prompt, ex.candidates.index(ex.target))
    batch = collate([enc], tokenizer.pad_token_id)
    rec = RecModel(model, projectors)
    out = rec(batch)
    with torch.no_grad():
        expected = -label_logprobs(model, projectors, prompt)[enc.target]
    assert out["loss"].item() == pytest.approx(expected.item(), abs=1e-4)
    out["loss"].backward()  # gradients reach the item projector through the soft tokens
    assert projectors.by_key["item"].net[0].weight.grad.abs().sum() > 0
    projectors.zero_grad()


def test_lm_labels_cover_the_target_only(setup):
    items, model, tokenizer, projectors, vectors, _ = setup
    item = items["50"]
    prompt_ids, target_ids = explanation_ids(tokenizer, "concise", item, "Something with space ships.")
    assert tokenizer.decode(target_ids).startswith(
        " it is an Action, Adventure, Romance, Sci-Fi and War film from 1977"
    )
    explain = encode_lm("explanation", prompt_ids, target_ids)
    encoded, align_target = alignment_prompt(tokenizer, item, ["item"], placeholder=0)
    align = encode_lm(
        "alignment", encoded.input_ids, align_target, [(encoded.positions[0], "item", vectors["50"])]
    )
    assert tokenizer.decode(align_target) == " Star Wars (1977): Action, Adventure, Romance, Sci-Fi, War"
    for enc in (explain, align):
        batch = collate([enc, encode_lm(enc.task, [5, 6, 7], [8, 9])], tokenizer.pad_token_id)
        labels = batch.labels[0]
        supervised = (labels != IGNORE).nonzero().flatten().tolist()
        width = labels.shape[0]
        assert supervised == list(range(width - enc.target_len, width))
        assert labels[width - enc.target_len :].tolist() == enc.input_ids[-enc.target_len :]
        for r, c in batch.slot_index:
            assert batch.labels[r, c] == IGNORE
        assert (batch.labels[1] != IGNORE).sum() == 2
    # the loss equals a plain causal-LM loss on the unpadded example, restricted to the target
    rec = RecModel(model, projectors)
    batch = collate([explain], tokenizer.pad_token_id)
    with torch.no_grad():
        loss = rec(batch)["loss"]
        ids = torch.tensor([explain.input_ids])
        labels = ids.clone()
        labels[0, : len(prompt_ids)] = IGNORE
        ref = model(input_ids=ids, labels=labels).loss
    assert loss.item() == pytest.approx(ref.item(), abs=1e-4)


def test_ranks_and_metrics():
    logits = torch.tensor([[0.1, 0.9, 0.3], [0.5, 0.2, 0.1], [1.0, 1.0, 0.0]])
    ranks = ranks_of_targets(logits, torch.tensor([1, 2, 0]))
    assert ranks == [0, 2, 1]  # a tie counts against the target
    m = hr_ndcg(ranks)
    assert m["hr@1"] == pytest.approx(1 / 3)
    assert m["ndcg@10"] == pytest.approx((1 + 1 / np.log2(4) + 1 / np.log2(3)) / 3)
