"""Evaluation fixtures: a home with the real ML-100k (and ReDial) prepared and the catalog ingested.

Home: TEST_HOME/"evaluation", models linked to the session's prepared models. The tiny profile
(random-weight encoders and a 2-layer Llama with SmolLM2's tokenizer) keeps the LLM systems fast;
the catalog is ingested once with text + image (ingest skips unchanged items in later sessions).
"""

from __future__ import annotations

import copy

import pytest

from fusionrec.config import Config
from tests.conftest import TEST_HOME, home_config, ingested_catalog, make_config

HOME = TEST_HOME / "evaluation"
QUICK = [
    "eval.llm_limit=8",
    "eval.llm_ablation_limit=3",
    "eval.explain_sample=2",
    "eval.bootstrap=200",
    "eval.bpr_epochs=10",
    "eval.sasrec_epochs=1",
    "eval.progress=false",
    "eval.threads=1",
    "agent.max_new_tokens=16",
]


def eval_config(overrides: list[str] | None = None) -> Config:
    return make_config("tiny", home=HOME, overrides=[*QUICK, *(overrides or [])])


@pytest.fixture(scope="package", autouse=True)
def one_torch_thread():
    """One intra-op thread: much faster than torch's default on the shared 2-core machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def data_cfg(shared_data) -> Config:
    """ML-100k and ReDial prepared under HOME (no models needed)."""
    from fusionrec.data.prepare import prepare_dataset

    cfg = eval_config()
    for name in ("movielens-100k", "redial"):
        # redial is re-prepared every session (~2 s), so a home made by an older loader is never stale
        if name == "redial" or not (cfg.data_dir / name / "items.jsonl").is_file():
            prepare_dataset(cfg, name, verbose=False)
    return cfg


@pytest.fixture(scope="session")
def ml100k(data_cfg: Config) -> tuple[list, list]:
    """(items, interactions) of the prepared ML-100k."""
    from fusionrec.data.prepare import load_prepared

    return load_prepared(data_cfg, "movielens-100k")


@pytest.fixture(scope="session")
def eval_cfg(tiny_cfg: Config, data_cfg: Config) -> Config:
    """Tiny models linked into HOME; the ML-100k catalog ingested (text + image)."""
    home_config(tiny_cfg.models_dir, HOME, "tiny")  # links HOME/models
    ingested_catalog(data_cfg, ["text", "image"])
    return data_cfg


@pytest.fixture(scope="session")
def llm_cfg(tiny_cfg: Config, data_cfg: Config) -> Config:
    """Tiny models linked into HOME and ML-100k prepared, no catalog ingested (the agent encodes the
    item vectors it needs itself)."""
    home_config(tiny_cfg.models_dir, HOME, "tiny")
    return data_cfg


@pytest.fixture(scope="session")
def adapter(llm_cfg: Config, tmp_path_factory):
    """A real (tiny) checkpoint folder in the layout finetune writes: adapter, projectors, a collaborative
    item table (the item projector takes text vector + BPR vector), config.yaml (pointwise scoring)."""
    import numpy as np
    import torch
    from peft import LoraConfig, get_peft_model

    from fusionrec.agent.projector import Projectors
    from fusionrec.data.prepare import load_prepared
    from fusionrec.encoders import load_text_encoder
    from fusionrec.models.registry import load_llm
    from fusionrec.retrieval.collaborative.bpr import TABLE_FILE, save_table

    folder = tmp_path_factory.mktemp("ckpt") / "best"
    model, _ = load_llm(llm_cfg)
    peft_model = get_peft_model(
        copy.deepcopy(model), LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"])
    )
    with torch.no_grad():  # a non-trivial adapter: B starts at zero
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=torch.Generator().manual_seed(1)) * 0.5)
    peft_model.save_pretrained(str(folder))
    proj = Projectors(int(model.get_input_embeddings().weight.shape[-1]), seed=7)
    proj.add("item", load_text_encoder(llm_cfg).dim + 5)
    proj.save(folder)
    rng = np.random.default_rng(0)
    items = load_prepared(llm_cfg, "movielens-100k")[0]
    save_table({i.id: rng.standard_normal(5).astype(np.float32) for i in items}, folder / TABLE_FILE)
    (folder / "config.yaml").write_text(
        "data:\n  template: concise\n  overview_chars: 0\n  max_prompt_tokens: 800\n  history_len: 5\n"
        "  scoring: pointwise\n"
    )
    return folder
