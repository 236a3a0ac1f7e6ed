"""The shipped adapter: a small folder with a model card that the agent loads by default, and only
when it fits the configured LLM."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from fusionrec.agent.adapter import SHIPPED_ADAPTER, AgentError, resolve_adapter
from fusionrec.agent.agent import Agent, chat_mentions
from fusionrec.agent.dialogue import excluded_ids
from fusionrec.finetune.ship import KEEP, MAX_BYTES
from fusionrec.retrieval.search import Upload
from fusionrec.types import Candidate, DialogueState, Turn
from tests.agent.conftest import make_candidates
from tests.conftest import ingested_catalog


def test_the_shipped_folder_is_small_complete_and_has_a_model_card():
    files = {p.name for p in SHIPPED_ADAPTER.iterdir()}
    assert {
        "README.md",
        "adapter_model.safetensors",
        "projectors.safetensors",
        "prior.json",
        "residual.json",
    } <= files
    assert files <= {*KEEP, "README.md", "metrics.csv"}, files  # no optimizer / RNG state
    assert sum(p.stat().st_size for p in SHIPPED_ADAPTER.iterdir()) <= MAX_BYTES
    card = (SHIPPED_ADAPTER / "README.md").read_text()
    for needed in (
        "SmolLM2-135M-Instruct",
        "MovieLens",
        "non-commercial",
        "fusionrec finetune",
        "HR@1",
        "Date",
    ):
        assert needed in card, needed


def test_the_tiny_llm_does_not_take_the_shipped_adapter(tiny_agent_cfg, tiny_llm):
    cfg = dataclasses.replace(
        tiny_agent_cfg, agent=dataclasses.replace(tiny_agent_cfg.agent, adapter="shipped")
    )
    folder, why = resolve_adapter(cfg)
    assert folder is None and "zero-shot" in why
    agent = Agent(cfg, llm=tiny_llm)
    assert agent.residual is None and agent.ranker_name.startswith("zero-shot")


@pytest.mark.real
def test_the_real_llm_ranks_with_the_shipped_adapter_by_default(real_agent_cfg, ml100k):
    cfg = dataclasses.replace(
        real_agent_cfg, agent=dataclasses.replace(real_agent_cfg.agent, adapter="shipped")
    )
    agent = Agent(cfg)
    assert agent.adapter == SHIPPED_ADAPTER and agent.residual is not None and agent.prior is not None
    assert "shipped adapter" in agent.ranker_name and agent.cfg.agent.scoring == "pointwise"
    cands = make_candidates(ml100k[:20])
    prompt = agent.build_prompt("a light comedy", cands)
    ranking = agent.rank(prompt, history=[ml100k[30].id, ml100k[40].id])
    assert sorted(c.item.id for c in ranking.candidates) == sorted(c.item.id for c in cands)
    assert ranking.method.startswith("residual: shipped adapter")
    # it trained the item projector only: a poster or a voice note goes in as its labels / transcript
    assert agent.trained_kinds == {"item"}
    vec = np.ones(8, np.float32)
    uploads = [Upload("image", vec, ["comic book"]), Upload("audio", vec, [], "a comedy")]
    inputs = agent.attachment_inputs(uploads)
    assert [i.vector for i in inputs] == [None, None]
    assert [i.details for i in inputs] == ["looks like: comic book", 'it says: "a comedy"']


def test_the_conversational_chat_needs_an_adapter_trained_on_redial_turns(tiny_agent_cfg, tiny_llm):
    assert Agent(tiny_agent_cfg, llm=tiny_llm).chat_task() == "sequential"  # no adapter: auto stays sequential
    cfg = dataclasses.replace(
        tiny_agent_cfg, agent=dataclasses.replace(tiny_agent_cfg.agent, chat_prior="conversation")
    )
    with pytest.raises(AgentError, match="agent.chat_prior='conversation' needs an adapter trained on ReDial"):
        Agent(cfg, llm=tiny_llm)


@pytest.mark.real
def test_a_redial_catalog_chat_ranks_with_the_shipped_conversational_path(real_agent_cfg):
    """Over a ReDial catalog the chat ranks as the adapter's ReDial task: its dialogue residual over the
    conversational prior, which reads the films mentioned so far and proposes candidates of its own; over
    ML-100k the same settings keep the sequential path."""
    agent_cfg = dataclasses.replace(
        real_agent_cfg.agent, adapter="shipped", explain_top_k=0, num_candidates=10, chat_prior_picks=4
    )
    cfg = dataclasses.replace(
        real_agent_cfg, data=dataclasses.replace(real_agent_cfg.data, dataset="redial"), agent=agent_cfg
    )
    items = {i.id: i for i in ingested_catalog(cfg, ["text"], 400, dataset="redial")[:400]}
    agent = Agent(cfg)
    assert agent.chat_task() == "conversation" and "conversational prior" in agent.ranker_name
    assert agent.conversation is not None and agent.dialogue_residual is not None and agent.trained_kinds == {"item"}
    named = next(i for i in agent.conversation.ranking([]) if i in items and len(items[i].title) > 8)
    state = DialogueState()
    first = [e for e in agent.respond(state, Turn("user", f"I loved {items[named].title}. What else?", []))]
    assert named in state.liked, [e.payload for e in first if e.kind == "retrieved"]
    before = DialogueState(turns=list(state.turns), shown=list(state.shown), liked=list(state.liked))
    events = {e.kind: e.payload for e in agent.respond(state, Turn("user", "Anything else you would suggest?", []))}
    ranked, views = events["ranked"], events["ranked"]["views"]
    ids = [c.item.id for c in ranked["ranking"].candidates]
    assert len(ids) == 10 and sorted(ids) == sorted(views["ids"]) and ranked["ranker"] == agent.ranker_name
    assert not set(ids) & set(excluded_ids(before))  # mentioned and shown films stay out
    # the prior's best film that may be offered is a candidate, retrieved or proposed by the prior
    best = next(i for i in agent.conversation.ranking(chat_mentions(before)) if i in items and i not in excluded_ids(before))
    assert best in ids
    w = agent.dialogue_residual.weights()
    hybrid = [w["llm_weight"] * a + w["prior_weight"] * b for a, b in zip(views["llm"], views["prior"], strict=True)]
    assert np.allclose(hybrid, views["hybrid"])
    assert ids == [views["ids"][k] for k in np.argsort(-np.array(hybrid), kind="stable")]
    # agent.chat_prior_pool: the prior picks among retrieval's top N instead (here 14 made-up hits)
    agent.cfg.agent.chat_prior_pool = 14
    pool = [Candidate(items[i], 1.0 - k / 100) for k, i in enumerate([i for i in items if i != named][:14])]
    picked = [c.item.id for c in agent.prior_picks(pool, DialogueState(liked=[named]))]
    rest = {c.item.id for c in pool[6:]}
    assert picked[:6] == [c.item.id for c in pool[:6]]  # retrieval's first 10 - 4
    assert set(picked[6:]) == set([i for i in agent.conversation.ranking([named]) if i in rest][:4])
    ml = dataclasses.replace(real_agent_cfg, agent=agent_cfg)
    assert Agent(ml).chat_task() == "sequential"  # the ML-100k catalog: the sequential residual
