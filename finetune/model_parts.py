"""The trainable parts of a run's `RecModel`, built from its recipe: the projectors, the LLM (frozen or
LoRA-wrapped) and retrieval's cross-modal fusion module. `resumed` is the run's own ``last/`` folder
when it resumes, `init` the stage-1 checkpoint of `model.init_from`; both None for a fresh start."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch

from fusionrec.finetune import checkpoint as ckpt
from fusionrec.finetune.recipe import Recipe


def build_projectors(
    recipe: Recipe, hidden: int, dims: dict[str, int], resumed: Path | None, init: Path | None
) -> Any:
    """Resumed, or from the stage-1 checkpoint, or fresh (seeded); one per modality of `dims` (its input
    size), in float32, frozen when `train.freeze_projectors`."""
    from fusionrec.agent.projector import Projectors

    if resumed is not None:
        projectors = Projectors.load(resumed, expect_out_dim=hidden)
    elif init is not None:
        projectors = Projectors.load(ckpt.require(init, "projectors.safetensors"), expect_out_dim=hidden)
    else:
        projectors = Projectors(hidden, seed=recipe.seed, hidden=recipe.model.projector_hidden or None)
    for m, dim in dims.items():
        projectors.get(m, dim)
    projectors.float()
    if recipe.train.freeze_projectors:
        projectors.requires_grad_(False)
    return projectors


def uses_lora(recipe: Recipe) -> bool:
    """Whether the recipe trains LoRA adapters (stage 2 with `lora.enabled`)."""
    return recipe.stage == 2 and recipe.lora.enabled


def adapt_llm(llm: Any, recipe: Recipe, init: Path | None) -> Any:
    """`llm` frozen (stage 1, or LoRA disabled) or LoRA-wrapped (stage 2; seeded, stage 1's adapter
    loaded when `init` has one); gradient checkpointing when `model.gradient_checkpointing`."""
    llm.requires_grad_(False)
    if uses_lora(recipe):
        from peft import LoraConfig, get_peft_model

        lo = recipe.lora
        lcfg = LoraConfig(
            r=lo.r,
            lora_alpha=lo.alpha,
            lora_dropout=lo.dropout,
            target_modules=list(lo.target_modules),
            task_type="CAUSAL_LM",
        )
        if lo.top_layers > 0:  # adapters on the last layers only: backward stops below them
            n_layers = int(llm.config.num_hidden_layers)
            lcfg.layers_to_transform = list(range(max(0, n_layers - lo.top_layers), n_layers))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(recipe.seed)
            llm = get_peft_model(llm, lcfg)
        if init is not None and (init / ckpt.ADAPTER_CONFIG).is_file():
            ckpt.load_adapter_weights(llm, init)
    if recipe.model.gradient_checkpointing:
        llm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        llm.config.use_cache = False
    return llm


def fusion_module(retriever: Any, resumed: Path | None) -> Any:
    """A trainable copy of the store's cross-modal fusion module, or the one saved in `resumed` (which
    must hold it)."""
    module = copy.deepcopy(retriever.cross_module()).train()
    if resumed is not None:
        from safetensors.torch import load_file

        path = ckpt.require(resumed, ckpt.FUSION_FILE) / ckpt.FUSION_FILE
        module.load_state_dict(load_file(str(path)))
    module.requires_grad_(True)
    return module
