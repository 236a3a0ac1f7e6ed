"""A LoRA checkpoint (peft adapter + projectors + recipe) is found, loaded and evaluated."""

from __future__ import annotations

import copy
import json
import shutil

import pytest

from fusionrec.cli import main
from tests.evaluation.conftest import HOME, QUICK


@pytest.fixture(scope="module")
def adapter(eval_cfg, tmp_path_factory):
    """A real (tiny) checkpoint folder in the layout finetune writes: adapter, projectors, a collaborative
    item table (the item projector takes text vector + BPR vector), config.yaml (pointwise scoring)."""
    import numpy as np
    import torch
    from peft import LoraConfig, get_peft_model

    from agent.projector import Projectors
    from encoders.registry import load_llm, load_text_encoder
    from retrieval.collaborative import TABLE_FILE, save_table
    from retrieval.prepare import load_prepared

    folder = tmp_path_factory.mktemp("ckpt") / "best"
    model, _ = load_llm(eval_cfg)
    peft_model = get_peft_model(
        copy.deepcopy(model), LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"])
    )
    with torch.no_grad():  # a non-trivial adapter: B starts at zero
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=torch.Generator().manual_seed(1)) * 0.5)
    peft_model.save_pretrained(str(folder))
    proj = Projectors(int(model.get_input_embeddings().weight.shape[-1]), seed=7)
    proj.add("item", load_text_encoder(eval_cfg).dim + 5)
    proj.save(folder)
    rng = np.random.default_rng(0)
    items = load_prepared(eval_cfg, "movielens-100k")[0]
    save_table({i.id: rng.standard_normal(5).astype(np.float32) for i in items}, folder / TABLE_FILE)
    (folder / "config.yaml").write_text(
        "data:\n  template: concise\n  overview_chars: 0\n  max_prompt_tokens: 800\n  history_len: 5\n"
        "  scoring: pointwise\n"
    )
    return folder


def test_find_adapter_prefers_best_checkpoints(tmp_path, adapter):
    from evaluation.llm import checkpoint_settings, find_adapter
    from tests.conftest import make_config

    cfg = make_config("tiny", home=tmp_path)
    assert find_adapter(cfg) is None
    run = cfg.checkpoints_dir / "stage2_lora"
    shutil.copytree(adapter, run / "last")
    shutil.copytree(adapter, run / "best")
    assert find_adapter(cfg) == run / "best"
    cfg.agent.adapter = str(adapter)
    assert find_adapter(cfg) == adapter
    assert checkpoint_settings(adapter) == {
        "template": "concise",
        "overview_chars": 0,
        "max_tokens": 800,
        "history": 5,
        "scoring": "pointwise",
    }


def test_lora_system_is_evaluated_with_its_training_prompts(eval_cfg, adapter):
    folder = HOME / "reports" / "lora"
    shutil.rmtree(folder, ignore_errors=True)
    argv = ["eval", "--limit", "6", "--systems", "zeroshot-verbalizer,lora", "--name", "lora",
            "models.profile=tiny", f"paths.home={HOME}", *QUICK, f"agent.adapter={adapter}",
            "eval.explain_sample=0", "eval.llm_ablation_limit=2"]  # fmt: skip
    assert main(argv) == 0
    loo = json.loads((folder / "results.json").read_text())["protocols"]["ml100k-loo"]
    assert set(loo["systems"]) == {"zeroshot-verbalizer", "lora-verbalizer", "lora-generative"}
    lora = loo["systems"]["lora-verbalizer"]
    assert lora["adapter"] == str(adapter)
    assert (
        lora["prompt"]["template"] == "concise"
        and lora["prompt"]["max_tokens"] == 800
        and lora["prompt"]["history"] == 5
        and lora["prompt"]["scoring"] == "pointwise"
    )
    assert loo["systems"]["zeroshot-verbalizer"]["prompt"]["template"] == "default"
    abl = loo["llm_ablations"]  # item-token ablation on the adapter: text vectors + its BPR part
    assert abl["system"] == "lora-verbalizer" and abl["users"] == 2 and abl["projectors"] == "trained (adapter)"
    assert lora["common"]["n"] == 6 and lora["common"]["permutation_ratio"] == 1.0
    zs = [
        json.loads(x)["order"] for x in (folder / "records" / "ml100k-loo__zeroshot-verbalizer.jsonl").open()
    ]
    lo = [json.loads(x)["order"] for x in (folder / "records" / "ml100k-loo__lora-verbalizer.jsonl").open()]
    assert zs != lo  # the adapter (and its prompt) changes the rankings
