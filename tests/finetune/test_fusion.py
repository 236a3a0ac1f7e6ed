"""Stage 2 trains retrieval's CrossModalFusion when a store is ingested; hard negatives from retrieval."""

from __future__ import annotations

import copy
import logging
import os
import random
import shutil
from pathlib import Path

import pytest
import torch

from fusionrec.data.loo import NegativeSampler
from fusionrec.finetune.data import load_datasets
from fusionrec.finetune.recipe import load_recipe
from fusionrec.finetune.run import train
from tests.conftest import TEST_HOME, make_config
from tests.finetune.conftest import SMALL

HOME = TEST_HOME / "finetune-fusion"
OVERRIDES = {**SMALL, "train.max_steps": 4, "tasks.fusion_weight": 1.0, "train.eval_at_start": False}


@pytest.fixture(scope="module")
def fusion_cfg(ft_cfg):
    """A home sharing the tiny models and prepared data, with a Chroma store of the items of a small run."""
    from fusionrec.retrieval.ingest import ingest

    HOME.mkdir(parents=True, exist_ok=True)
    for name, target in (("models", ft_cfg.models_dir), ("data", ft_cfg.data_dir)):  # shared, prepared once
        if not (HOME / name).exists():
            (HOME / name).symlink_to(target, target_is_directory=True)
    shutil.rmtree(HOME / "chroma", ignore_errors=True)
    shutil.rmtree(HOME / "checkpoints", ignore_errors=True)
    cfg = make_config("tiny", home=HOME)
    torch.set_num_threads(1)  # faster than 2 contended threads for tiny models
    data = load_datasets(cfg, load_recipe("tiny_smoke", OVERRIDES))
    ids = {i for e in data.train for i in [*e.history, *e.candidates]}  # fusion trains on these
    ingest(
        cfg,
        "movielens-100k",
        modalities=["text", "image"],
        progress=False,
        catalog=[data.items[i] for i in sorted(ids, key=int)],
    )
    return cfg


def _files(root: Path) -> set[str]:
    """Every file under `root` (the shared models and data links are not followed)."""
    return {os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs}


def test_stage2_trains_the_cross_modal_fusion(fusion_cfg, tmp_path, caplog):
    from fusionrec.retrieval.fusion import UNTRAINED_WARNING
    from fusionrec.retrieval.search import Retriever

    before = _files(HOME)
    result = train(fusion_cfg, load_recipe("tiny_smoke", OVERRIDES), str(tmp_path / "run"), progress=False)
    fusion_losses = [t["fusion"] for t in result.task_losses if "fusion" in t]
    assert fusion_losses, result.task_losses
    saved = result.last_dir / "cross_fusion.safetensors"
    assert saved.is_file()
    assert _files(HOME) - before == set()  # nothing written outside the run's own folder
    # live search keeps equal weights until the config names the trained file
    plain = Retriever(fusion_cfg)
    with caplog.at_level(logging.WARNING):
        plain.cross_module()
    assert plain.cross_trained is False and UNTRAINED_WARNING in caplog.text
    named = copy.deepcopy(fusion_cfg)
    named.retrieval.cross_weights = str(saved)
    retriever = Retriever(named)
    module = retriever.cross_module()
    assert retriever.cross_trained is True
    assert module.query_proj.weight.abs().sum() > 0  # moved away from the untrained (zero) query projection


def test_hard_negatives_come_from_retrieval(fusion_cfg):
    from fusionrec.data.prepare import load_prepared
    from fusionrec.retrieval.search import Retriever

    items, _ = load_prepared(fusion_cfg, "movielens-100k")
    titles = {i.id: i.title for i in items}
    retriever = Retriever(fusion_cfg)
    stored = set(retriever.store.all_ids("early"))
    sampler = NegativeSampler([i.id for i in items], titles, retriever, pool_k=30)
    history = sorted(stored, key=int)[:5]
    rated = set(history) | set(sorted(stored, key=int)[5:10])
    negs = sampler.sample(random.Random(0), rated, history, 19)
    assert len(set(negs)) == 19 and not set(negs) & rated
    assert set(negs) <= stored  # all from the retrieved pool (the store holds > 30 unrated items)
    assert sampler.strategy == "retrieval"
