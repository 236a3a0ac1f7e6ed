"""What a finetune checkpoint was trained with, read from its recipe (``config.yaml`` in its folder).

The agent ranks with the prompt an adapter was trained on, and the evaluation reports it; both read
it here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

RECIPE_FILE = "config.yaml"
PROMPT_KEYS = ("template", "overview_chars", "max_prompt_tokens", "history_len", "scoring")


def _recipe(folder: Path) -> dict[str, Any]:
    """The recipe in `folder` as a mapping ({} without config.yaml); ValueError naming a bad file."""
    import yaml

    path = Path(folder) / RECIPE_FILE
    if not path.is_file():
        return {}
    try:
        recipe = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML ({exc})") from None
    recipe = {} if recipe is None else recipe
    if not isinstance(recipe, dict):
        raise ValueError(f"{path}: expected a YAML mapping (a finetune recipe)")
    return recipe


def base_model(folder: Path) -> str:
    """The base model the checkpoint in `folder` was trained on ("" when its recipe does not say)."""
    return str((_recipe(folder).get("trained_on") or {}).get("base_model", ""))


def trained_to_explain(folder: Path) -> bool:
    """Whether the checkpoint's LoRA learned explanations (its recipe's explanation weight > 0; True when
    the recipe does not say): a ranking-only adapter explains with the base model's weights."""
    weights = (_recipe(folder).get("tasks") or {}).get("weights")
    return not isinstance(weights, dict) or float(weights.get("explanation", 1.0)) > 0


def training_prompt(folder: Path) -> dict[str, Any]:
    """The prompt settings of the recipe in `folder` (its `data` keys among PROMPT_KEYS; {} when the
    folder has no config.yaml). ValueError naming the file when it is not a YAML mapping."""
    data = _recipe(folder).get("data") or {}
    if not isinstance(data, dict):
        raise ValueError(f"{Path(folder) / RECIPE_FILE}: `data` must be a mapping")
    return {k: data[k] for k in PROMPT_KEYS if k in data}
