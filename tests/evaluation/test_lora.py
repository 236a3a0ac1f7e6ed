"""A LoRA checkpoint (peft adapter + projectors + recipe) is found, loaded and evaluated."""

from __future__ import annotations

import json
import shutil

from fusionrec.cli import main
from tests.evaluation.conftest import HOME, QUICK


def test_find_adapter_ignores_checkpoints_it_is_not_told_about(tmp_path):
    """Only `agent.adapter` (via agent.resolve_adapter) chooses the adapter, never a checkpoint found."""
    from fusionrec.agent.adapter import resolve_adapter
    from fusionrec.evaluation.llm import find_adapter
    from tests.conftest import make_config

    cfg = make_config("tiny", home=tmp_path)
    for name in ("last", "best"):  # a finetune run's layout
        folder = cfg.checkpoints_dir / "stage2_lora" / name
        folder.mkdir(parents=True)
        (folder / "adapter_config.json").write_text("{}")
        (folder / "projectors.json").write_text("{}")
    for value in ("", "shipped"):
        cfg.agent.adapter = value
        got = find_adapter(cfg)
        assert got == resolve_adapter(cfg)[0]
        assert got is None or cfg.checkpoints_dir not in got.parents
    cfg.agent.adapter = ""
    assert find_adapter(cfg) is None
    cfg.agent.adapter = str(tmp_path / "mine")
    assert find_adapter(cfg) == tmp_path / "mine"


def test_checkpoint_settings_read_the_recipe(adapter):
    from fusionrec.evaluation.llm import checkpoint_settings

    assert checkpoint_settings(adapter) == {
        "template": "concise",
        "overview_chars": 0,
        "max_prompt_tokens": 800,
        "history_len": 5,
        "scoring": "pointwise",
    }


def _orders(folder, system: str) -> list[list[str]]:
    with (folder / "records" / f"ml100k-loo__{system}.jsonl").open() as f:
        return [json.loads(line)["order"] for line in f]


def _without_lora(adapter, folder):
    """A copy of the checkpoint whose LoRA adds nothing (every B matrix zero): same recipe,
    projectors and item table, so only the adapter's weights differ."""
    import torch
    from safetensors.torch import load_file, save_file

    shutil.copytree(adapter, folder)
    weights = folder / "adapter_model.safetensors"
    tensors = load_file(str(weights))
    assert any("lora_B" in k for k in tensors)
    save_file({k: torch.zeros_like(v) if "lora_B" in k else v for k, v in tensors.items()}, str(weights))
    return folder


def _eval(name: str, systems: str, adapter, *extra: str) -> dict:
    folder = HOME / "reports" / name
    shutil.rmtree(folder, ignore_errors=True)
    argv = ["eval", "--limit", "6", "--systems", systems, "--name", name, "models.profile=tiny",
            f"paths.home={HOME}", *QUICK, f"agent.adapter={adapter}", "eval.explain_sample=0", *extra]  # fmt: skip
    assert main(argv) == 0
    return json.loads((folder / "results.json").read_text())["protocols"]["ml100k-loo"]


def test_lora_system_is_evaluated_with_its_training_prompts(eval_cfg, adapter, tmp_path):
    loo = _eval("lora", "zeroshot-verbalizer,lora", adapter, "eval.llm_ablation_limit=2")
    assert set(loo["systems"]) == {"zeroshot-verbalizer", "lora-verbalizer", "lora-generative"}
    lora = loo["systems"]["lora-verbalizer"]
    assert lora["adapter"] == str(adapter)
    assert (
        lora["prompt"]["template"] == "concise"
        and lora["prompt"]["max_prompt_tokens"] == 800
        and lora["prompt"]["history_len"] == 5
        and lora["prompt"]["scoring"] == "pointwise"
    )
    assert loo["systems"]["zeroshot-verbalizer"]["prompt"]["template"] == "default"
    abl = loo["llm_ablations"]  # item-token ablation on the adapter: text vectors + its BPR part
    assert abl["system"] == "lora-verbalizer" and abl["users"] == 2 and abl["projectors"] == "trained (adapter)"
    assert lora["common"]["n"] == 6 and lora["common"]["permutation_ratio"] == 1.0
    # the LoRA weights are loaded and used: the same checkpoint with its LoRA zeroed (same prompts,
    # projectors and item table) ranks differently
    inert = _without_lora(adapter, tmp_path / "inert")
    loo_inert = _eval("lora-inert", "lora", inert)
    assert loo_inert["systems"]["lora-verbalizer"]["prompt"] == lora["prompt"]
    lo = _orders(HOME / "reports" / "lora", "lora-verbalizer")
    inert_lo = _orders(HOME / "reports" / "lora-inert", "lora-verbalizer")
    assert len(lo) == len(inert_lo) == 6
    assert lo != inert_lo


def test_a_malformed_recipe_is_named(tmp_path):
    import pytest

    from fusionrec.agent.checkpoint import training_prompt
    from fusionrec.evaluation.llm import checkpoint_settings

    assert training_prompt(tmp_path) == {} and checkpoint_settings(None) == {}
    (tmp_path / "config.yaml").write_text("data: [template: concise\n")
    with pytest.raises(ValueError, match=r"config\.yaml: not valid YAML"):
        checkpoint_settings(tmp_path)
    (tmp_path / "config.yaml").write_text("data: 3\n")
    with pytest.raises(ValueError, match=r"config\.yaml: `data` must be a mapping"):
        training_prompt(tmp_path)
