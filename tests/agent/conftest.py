"""Agent fixtures: homes with the prepared ML-100k catalog ingested, one per model profile.

- tiny: TEST_HOME/"agent-tiny", the first TINY_ITEMS items ingested (text) with the tiny encoders;
  the agent uses the tiny 2-layer Llama (SmolLM2's tokenizer) - fast unit tests of the whole loop.
- offline: TEST_HOME/"agent", the whole ML-100k catalog ingested (text) with MiniLM; the agent uses
  the real SmolLM2-135M-Instruct. Prepared data and the Chroma store persist across sessions
  (ingest skips unchanged items), so only the first session pays for them.
Both homes link their models folder to the session's prepared models.
"""

from __future__ import annotations

import pytest

from fusionrec.config import Config
from tests.conftest import TEST_HOME, home_config, ingested_catalog

DATASET = "movielens-100k"
TINY_ITEMS = 300
TINY_HOME = TEST_HOME / "agent-tiny"
OFFLINE_HOME = TEST_HOME / "agent"
FAST = [
    "agent.explain_top_k=1",
    "agent.max_new_tokens=24",
    "agent.num_candidates=10",
    "agent.overview_chars=120",
    "agent.torch_threads=1",
    "agent.adapter=",
]  # keep turns short on 2 shared cores (one torch thread: far faster when the cores are oversubscribed);
# the zero-shot LLM (tests/agent/test_shipped.py covers the shipped adapter)


@pytest.fixture(scope="session")
def tiny_agent_cfg(tiny_cfg: Config, shared_data) -> Config:
    """Tiny models; the first TINY_ITEMS ML-100k items ingested (text)."""
    cfg = home_config(tiny_cfg.models_dir, TINY_HOME, "tiny", FAST)
    ingested_catalog(cfg, ["text"], TINY_ITEMS)
    return cfg


@pytest.fixture(scope="session")
def tiny_agent(tiny_agent_cfg: Config):
    from fusionrec.agent.agent import Agent

    return Agent(tiny_agent_cfg)


@pytest.fixture(scope="session")
def ml100k(tiny_agent_cfg: Config) -> list:
    """The prepared ML-100k items (real titles, years, genres, overviews)."""
    from fusionrec.data.prepare import load_prepared

    return load_prepared(tiny_agent_cfg, DATASET)[0]


@pytest.fixture(scope="session")
def real_agent_cfg(offline_cfg: Config, shared_data) -> Config:
    """The real offline models; the whole ML-100k catalog ingested (text, MiniLM)."""
    cfg = home_config(offline_cfg.models_dir, OFFLINE_HOME, "offline", FAST)
    ingested_catalog(cfg, ["text"])
    return cfg


@pytest.fixture(scope="session")
def real_agent(real_agent_cfg: Config):
    """An Agent over SmolLM2-135M-Instruct (loaded once; the registry caches the model)."""
    from fusionrec.agent.agent import Agent

    return Agent(real_agent_cfg)


@pytest.fixture(scope="session")
def tiny_llm(tiny_cfg: Config):
    """(model, tokenizer): the tiny 2-layer Llama with SmolLM2's real tokenizer."""
    from fusionrec.models.registry import load_llm

    return load_llm(tiny_cfg)


def make_candidates(items: list, scores: list[float] | None = None) -> list:
    """Candidates from catalog items (retrieval scores descending unless given)."""
    from fusionrec.types import Candidate

    scores = scores or [1.0 - 0.01 * i for i in range(len(items))]
    return [Candidate(item, s) for item, s in zip(items, scores, strict=True)]
