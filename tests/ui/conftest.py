"""UI fixtures: small ingested ML-100k catalogs (first CATALOG_ITEMS items) in homes of their own.

- tiny: TEST_HOME/"ui-tiny", text ingested with the tiny encoders; a tiny-profile Agent (random
  2-layer Llama) drives the session tests without a browser.
- offline: TEST_HOME/"ui", text + posters ingested with the real offline models; the browser test
  serves it with `fusionrec serve`. Prepared data and the Chroma store persist across sessions
  (ingest skips unchanged items), so only the first session pays for them.
Both homes link their models folder to the session's prepared models.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from fusionrec.config import Config
from tests.conftest import TEST_HOME, make_config

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


def home_config(models_dir: Path, home: Path, profile: str, overrides: list[str] | None = None) -> Config:
    """A config whose state lives in `home`, with `home/models` linked to the prepared models."""
    home.mkdir(parents=True, exist_ok=True)
    link = home / "models"
    if not link.exists():
        link.symlink_to(models_dir, target_is_directory=True)
    return make_config(profile, home=home, overrides=overrides)


def small_catalog(cfg: Config, modalities: list[str]) -> list:
    """Prepare ML-100k in cfg's home (once) and ingest its first CATALOG_ITEMS items.

    A stamp (item ids, modalities, the ingest hash version, fusion weights, the models manifest)
    skips the ~25 s that even a no-op ingest spends loading encoders; any change re-ingests.
    """
    from retrieval.ingest import HASH_VERSION, ingest
    from retrieval.prepare import load_prepared, prepare_dataset
    from retrieval.store import Store

    if not (cfg.data_dir / DATASET / "items.jsonl").is_file():
        prepare_dataset(cfg, DATASET, verbose=False)
    items = load_prepared(cfg, DATASET)[0][:CATALOG_ITEMS]
    manifest = cfg.models_dir / "manifest.json"
    key = json.dumps(
        [[i.id for i in items], modalities, HASH_VERSION, cfg.retrieval.weights,
         manifest.read_text() if manifest.is_file() else ""],
        sort_keys=True,
    )  # fmt: skip
    stamp = cfg.home / "ingested.sha256"
    digest = hashlib.sha256(key.encode()).hexdigest()
    if stamp.is_file() and stamp.read_text() == digest and Store(cfg).count("early") == len(items):
        return items
    ingest(cfg, DATASET, modalities=modalities, progress=False, catalog=items)
    stamp.write_text(digest)
    return items


@pytest.fixture(scope="session")
def ui_tiny_cfg(tiny_cfg: Config, shared_data) -> Config:
    cfg = home_config(tiny_cfg.models_dir, TINY_HOME, "tiny", FAST)
    small_catalog(cfg, ["text"])
    return cfg


@pytest.fixture(scope="session")
def tiny_agent(ui_tiny_cfg: Config):
    from agent.agent import Agent

    return Agent(ui_tiny_cfg)


@pytest.fixture(scope="session")
def ui_offline_cfg(offline_cfg: Config, shared_data) -> Config:
    """Offline models; the first CATALOG_ITEMS ML-100k items ingested with text and posters."""
    cfg = home_config(offline_cfg.models_dir, OFFLINE_HOME, "offline", FAST)
    small_catalog(cfg, ["text", "image"])
    return cfg


@pytest.fixture(scope="session")
def posters(shared_data: Path) -> Path:
    return shared_data / "movielens-100k-posters" / "posters"
