"""UI fixtures: small ingested ML-100k catalogs (first CATALOG_ITEMS items) in homes of their own.

- tiny: TEST_HOME/"ui-tiny", text ingested with the tiny encoders; a tiny-profile Agent (random
  2-layer Llama) drives the session tests without a browser.
- offline: TEST_HOME/"ui", text + posters ingested with the real offline models; the browser test
  serves it with `fusionrec serve`. Prepared data and the Chroma store persist across sessions
  (ingest skips unchanged items), so only the first session pays for them.
Both homes link their models folder to the session's prepared models.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fusionrec.config import Config
from tests.conftest import TEST_HOME, home_config, ingested_catalog

DATASET = "movielens-100k"
CATALOG_ITEMS = 100
TINY_HOME = TEST_HOME / "ui-tiny"
OFFLINE_HOME = TEST_HOME / "ui"
FAST = [
    "agent.explain_top_k=2",
    "agent.max_new_tokens=24",
    "agent.num_candidates=10",
    "agent.overview_chars=120",
]  # short turns on 2 shared cores


@pytest.fixture(scope="package", autouse=True)
def one_torch_thread():
    """One intra-op torch thread: much faster than two spinning threads on a shared 2-core machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def ui_tiny_cfg(tiny_cfg: Config, shared_data) -> Config:
    cfg = home_config(tiny_cfg.models_dir, TINY_HOME, "tiny", FAST)
    ingested_catalog(cfg, ["text"], CATALOG_ITEMS)
    return cfg


@pytest.fixture(scope="session")
def tiny_agent(ui_tiny_cfg: Config):
    from fusionrec.agent.agent import Agent

    return Agent(ui_tiny_cfg)


@pytest.fixture(scope="session")
def ui_offline_cfg(offline_cfg: Config, shared_data) -> Config:
    """Offline models; the first CATALOG_ITEMS ML-100k items ingested with text and posters."""
    cfg = home_config(offline_cfg.models_dir, OFFLINE_HOME, "offline", FAST)
    ingested_catalog(cfg, ["text", "image"], CATALOG_ITEMS)
    return cfg


@pytest.fixture(scope="session")
def posters(shared_data: Path) -> Path:
    return shared_data / "movielens-100k-posters" / "posters"
