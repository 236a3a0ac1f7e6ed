"""Finetune fixtures: the tiny profile with ML-100k (and ReDial) prepared under TEST_HOME/"finetune".

The models folder there links to the session's tiny models; prepared data and cached item
vectors are reused across sessions. Runs write into pytest's tmp folders.
"""

from __future__ import annotations

import pytest

from fusionrec.config import Config
from tests.conftest import TEST_HOME, make_config

HOME = TEST_HOME / "finetune"
DATASET = "movielens-100k"

# small, fast settings shared by the training tests (recipe overrides)
SMALL = {
    "model.profile": "tiny",
    "model.init_from": "",
    "data.max_users": 4,
    "data.train_per_user": 1,
    "data.val_users": 4,
    "data.align_items": 4,
    "data.explain_items": 4,
    "data.redial_max": 4,
    "data.history_len": 3,
    "train.micro_batch_size": 2,
    "train.grad_accum": 2,
    "train.warmup_steps": 1,
    "train.log_every": 1,
    "train.cpu_threads": 1,
}


def finetune_config(overrides: list[str] | None = None) -> Config:
    return make_config("tiny", home=HOME, overrides=overrides)


@pytest.fixture(scope="session")
def ft_cfg(tiny_cfg: Config, shared_data) -> Config:
    """Tiny models, ML-100k and ReDial prepared under HOME."""
    from fusionrec.data.prepare import prepare_dataset

    HOME.mkdir(parents=True, exist_ok=True)
    link = HOME / "models"
    if not link.exists():
        link.symlink_to(tiny_cfg.models_dir, target_is_directory=True)
    cfg = finetune_config()
    for name in (DATASET, "redial"):
        if not (cfg.data_dir / name / "items.jsonl").is_file():
            prepare_dataset(cfg, name, verbose=False)
    return cfg


@pytest.fixture(scope="session")
def ml100k(ft_cfg: Config):
    """(items by id, leave-one-out splits) of the real ML-100k."""
    from fusionrec.data.loo import leave_one_out
    from fusionrec.data.prepare import load_prepared
    from fusionrec.data.splits import user_sequences

    items, interactions = load_prepared(ft_cfg, DATASET)
    return {i.id: i for i in items}, leave_one_out(user_sequences(interactions))


@pytest.fixture(scope="session")
def tiny_llm(ft_cfg: Config):
    from fusionrec.models.registry import load_llm

    return load_llm(ft_cfg)
