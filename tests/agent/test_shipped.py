"""The shipped adapter: a small folder with a model card that the agent loads by default, and only
when it fits the configured LLM."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from fusionrec.agent.agent import SHIPPED_ADAPTER, Agent, resolve_adapter
from fusionrec.finetune.ship import KEEP, MAX_BYTES
from fusionrec.retrieval.search import Upload
from tests.agent.conftest import make_candidates


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
