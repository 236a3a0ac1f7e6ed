"""Retrieval fixtures: the real ML-100k catalog, prepared once per session, and one ingested store.

Home: TEST_HOME/"retrieval" with its models folder linked to the session's prepared offline
models; the Chroma store there is emptied at session start (so the first ingest really writes),
while prepared data, generated media and the TF-IDF fit are reused across sessions.
"""

from __future__ import annotations

import random
import shutil

import pytest

from fusionrec.config import Config
from tests.conftest import TEST_HOME, make_config

DATASET = "movielens-100k"
N_ITEMS = 200  # the subset most tests ingest (text + image)
HOME = TEST_HOME / "retrieval"


@pytest.fixture(scope="package", autouse=True)
def one_torch_thread():
    """One intra-op thread: on a shared 2-core machine, torch's spinning threads made a single
    poster forward pass 35x slower (1.3 s vs 0.04 s) than one thread does."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def retrieval_config(overrides: list[str] | None = None) -> Config:
    return make_config("offline", home=HOME, overrides=overrides)


@pytest.fixture(scope="session")
def ret_cfg(offline_cfg: Config, shared_data) -> Config:
    """Offline models, the ML-100k catalog prepared under HOME, an empty Chroma store."""
    from fusionrec.data.prepare import prepare_dataset

    HOME.mkdir(parents=True, exist_ok=True)
    link = HOME / "models"
    if not link.exists():
        link.symlink_to(offline_cfg.models_dir, target_is_directory=True)
    shutil.rmtree(HOME / "chroma", ignore_errors=True)
    cfg = retrieval_config()
    if not (cfg.data_dir / DATASET / "items.jsonl").is_file():
        prepare_dataset(cfg, DATASET, verbose=False)
    return cfg


@pytest.fixture(scope="session")
def catalog(ret_cfg: Config) -> list:
    from fusionrec.data.prepare import load_prepared

    return load_prepared(ret_cfg, DATASET)[0]


@pytest.fixture(scope="session")
def subset(catalog) -> list:
    """N_ITEMS items: the first ones plus the first five without a poster."""
    no_poster = [i for i in catalog if "image" not in i.media][:5]
    return catalog[: N_ITEMS - len(no_poster)] + no_poster


@pytest.fixture(scope="session")
def ingested(ret_cfg: Config, subset):
    """The subset ingested with text + image (the collections of every fusion strategy)."""
    from fusionrec.retrieval.ingest import ingest

    return ingest(ret_cfg, DATASET, modalities=["text", "image"], progress=False, catalog=subset)


@pytest.fixture(scope="session")
def unique_posters(catalog) -> set[str]:
    """Ids of items whose poster file no other item shares (26 ML-100k posters are shared)."""
    import hashlib
    from collections import Counter
    from pathlib import Path

    digest = {
        i.id: hashlib.sha256(Path(i.media["image"]).read_bytes()).hexdigest()
        for i in catalog
        if "image" in i.media
    }
    counts = Counter(digest.values())
    return {item_id for item_id, d in digest.items() if counts[d] == 1}


@pytest.fixture(scope="session")
def sample(subset, unique_posters) -> list:
    """50 of the ingested items with an overview and a poster of their own, drawn with a fixed seed."""
    pool = [i for i in subset if len(i.text) > 40 and i.id in unique_posters]
    return random.Random(7).sample(pool, 50)
