"""Merged model = base + adapter; the agent loads a checkpoint; the CLI: merge, sweep, clear errors."""

from __future__ import annotations

import argparse
import copy
import json

import pytest
import torch

from fusionrec.finetune.checkpoint import CheckpointError
from fusionrec.finetune.recipe import load_recipe
from fusionrec.finetune.run import finetune_command, merge_checkpoint, train
from fusionrec.settings import as_words
from tests.finetune.conftest import SMALL


@pytest.fixture(scope="module")
def trained(ft_cfg, tmp_path_factory):
    """A short stage-2 run whose LoRA weights are far from zero (high lr), and a stage-1 run."""
    out = tmp_path_factory.mktemp("merge")
    stage2 = load_recipe("tiny_smoke", {**SMALL, "train.max_steps": 3, "train.lr": 0.05})
    stage1 = load_recipe("stage1_align", {**SMALL, "train.max_steps": 1, "train.mixed_precision": "no"})
    return (
        train(ft_cfg, stage2, str(out / "s2"), progress=False),
        train(ft_cfg, stage1, str(out / "s1"), progress=False),
        out,
    )


def test_merged_model_gives_the_same_logits_as_base_plus_adapter(ft_cfg, trained, tiny_llm):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from fusionrec.agent.projector import Projectors

    result, _, out = trained
    merged_dir = merge_checkpoint(ft_cfg, result.last_dir, out / "merged")
    base, tokenizer = tiny_llm
    adapted = PeftModel.from_pretrained(copy.deepcopy(base), str(result.last_dir)).eval()
    merged = AutoModelForCausalLM.from_pretrained(str(merged_dir), dtype=torch.float32).eval()
    ids = torch.tensor([tokenizer.encode("Ranking: A, B, C for the user who liked Fargo (1996)")])
    with torch.no_grad():
        a = adapted(input_ids=ids).logits
        m = merged(input_ids=ids).logits
        b = base(input_ids=ids).logits
    torch.testing.assert_close(m, a, atol=1e-4, rtol=1e-4)
    assert (a - b).abs().max() > 1e-3, "the adapter changed nothing: the comparison would be vacuous"
    assert not any("lora" in k for k in merged.state_dict())
    proj = Projectors.load(merged_dir, expect_out_dim=base.config.hidden_size)
    assert set(proj.keys()) == {"item", "image"}
    assert (merged_dir / "tokenizer.json").is_file() and (merged_dir / "config.yaml").is_file()


def test_the_agent_loads_a_checkpoint(ft_cfg, trained, tiny_llm):
    from fusionrec.agent.agent import Agent

    result, _, _ = trained
    cfg = copy.deepcopy(ft_cfg)
    cfg.agent.adapter = str(result.best_dir)
    cfg.agent.template = "concise"
    agent = Agent(cfg, retriever=object(), llm=tiny_llm)
    assert hasattr(agent.model, "peft_config")
    assert set(agent.projectors.keys()) == {"item", "image"}


def test_missing_or_adapterless_checkpoints_give_clear_errors(ft_cfg, trained, tmp_path, capsys):
    _, stage1, _ = trained
    missing = tmp_path / "nowhere" / "best"
    with pytest.raises(CheckpointError, match=f"checkpoint not found: {missing}"):
        merge_checkpoint(ft_cfg, missing, tmp_path / "m")
    with pytest.raises(CheckpointError, match="adapter_config.json is missing.*nothing to merge"):
        merge_checkpoint(ft_cfg, stage1.last_dir, tmp_path / "m")
    args = argparse.Namespace(
        action="merge", checkpoint=str(missing), output=str(tmp_path / "m"), recipe="", resume=False, overrides=[]
    )
    assert finetune_command(ft_cfg, args) == 2
    assert str(missing) in capsys.readouterr().err


def test_cli_train_and_sweep(ft_cfg, tmp_path, capsys):
    from fusionrec.cli import main

    home = ft_cfg.paths.home
    sets = as_words({**SMALL, "train.max_steps": 2})  # recipe overrides: section.key=value, like the config's
    rc = main(
        [
            "finetune",
            "--recipe",
            "tiny_smoke",
            "--output",
            str(tmp_path / "cli"),
            *sets,
            "models.profile=tiny",
            f"paths.home={home}",
        ]
    )
    assert rc == 0
    assert "finetune tiny_smoke" in capsys.readouterr().out
    assert (tmp_path / "cli" / "last" / "adapter_model.safetensors").is_file()

    sets = as_words({**SMALL, "train.max_steps": 2, "train.eval_at_start": False})
    rc = main(
        [
            "finetune",
            "sweep",
            "--recipe",
            "tiny_smoke",
            "--output",
            str(tmp_path / "sweep"),
            *sets,
            "models.profile=tiny",
            f"paths.home={home}",
        ]
    )
    assert rc == 0
    report = json.loads((tmp_path / "sweep" / "sweep.json").read_text())
    assert len(report["trials"]) == 2
    assert {t["lr"] for t in report["trials"]} == {0.01} and {t["lora_r"] for t in report["trials"]} == {4, 8}
    assert all(t["valid_hr@1"] is not None and t["final_loss"] > 0 for t in report["trials"])
    assert "sweep (best hr@1 first)" in capsys.readouterr().out
