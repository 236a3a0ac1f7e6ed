"""Defaults for `fusionrec finetune`; each recipe YAML carries its own full settings."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class FinetuneConfig:
    recipe: str = "finetune/recipes/stage2_lora.yaml"  # recipe used when --config is not given
    output_dir: str = ""  # "" = <paths.home>/checkpoints/<recipe name>
