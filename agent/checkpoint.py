"""What a finetune checkpoint was trained with, read from its recipe (``config.yaml`` in its folder).

The file is read by the one settings loader (`fusionrec.settings`). The agent reads only the part
it uses (`AdapterRecipe`: the base model, the ranking prompt, the task weights); finetune reads the
whole recipe strictly (`finetune.recipe.load_saved_recipe`). The agent ranks with the prompt an
adapter was trained on (`adapter_settings`), and the evaluation reports it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fusionrec import settings

RECIPE_FILE = "config.yaml"
# recipe `data` keys that shape the ranking prompt; the first four are agent settings of the same name
AGENT_KEYS = ("template", "overview_chars", "max_prompt_tokens", "scoring")
PROMPT_KEYS = (*AGENT_KEYS, "history_len")


@dataclass
class TrainedOn:
    """What the trainer records beside the recipe (``trained_on:``)."""

    base_model: str = ""
    profile: str = ""
    dtype: str = ""
    placeholder_token_id: int = -1
    template: str = ""


DIALOGUE_CANDIDATES, DIALOGUE_MENTIONED, DIALOGUE_TURNS = 20, 5, 6  # the ReDial task's recipe defaults


@dataclass
class TrainedPrompt:
    """The recipe's prompt keys (None = the recipe does not set it)."""

    template: str | None = None
    overview_chars: int | None = None
    max_prompt_tokens: int | None = None
    history_len: int | None = None
    scoring: str | None = None
    dataset: str | None = None  # the catalog of the collaborative item table
    num_candidates: int | None = None  # ReDial: candidates per turn (mentioned + new)
    redial_mentioned: int | None = None  # ReDial: mentioned movies among the candidates
    redial_turns: int | None = None  # ReDial: dialogue messages in the prompt

    def dialogue(self) -> tuple[int, int, int]:
        """The ReDial task's (candidates per turn, mentioned movies among them, dialogue messages in the
        prompt), the recipe defaults where the recipe does not set them."""
        return (
            self.num_candidates or DIALOGUE_CANDIDATES,
            DIALOGUE_MENTIONED if self.redial_mentioned is None else self.redial_mentioned,
            self.redial_turns or DIALOGUE_TURNS,
        )


@dataclass
class TrainedTasks:
    weights: dict[str, float] | None = None


@dataclass
class TrainedModel:
    init_from: str = ""  # the checkpoint the run was warm-started from (a folder, or a name under checkpoints/)


@dataclass
class AdapterRecipe:
    """The part of a checkpoint's recipe the agent and the evaluation read."""

    trained_on: TrainedOn = field(default_factory=TrainedOn)
    data: TrainedPrompt = field(default_factory=TrainedPrompt)
    tasks: TrainedTasks = field(default_factory=TrainedTasks)
    model: TrainedModel = field(default_factory=TrainedModel)


def warm_start(init_from: str, checkpoints: Path | None) -> Path:
    """The folder `model.init_from` names: itself when absolute or present, else a name under `checkpoints`."""
    path = Path(init_from).expanduser()
    if not path.is_absolute() and not path.exists() and checkpoints is not None:
        path = checkpoints / init_from
    return path


def read_adapter_recipe(folder: Path) -> AdapterRecipe:
    """The recipe in `folder` (defaults without config.yaml); ValueError naming the file and the key."""
    path = Path(folder) / RECIPE_FILE
    return settings.load(AdapterRecipe, path if path.is_file() else None, partial=True)


def base_model(folder: Path) -> str:
    """The base model the checkpoint in `folder` was trained on ("" when its recipe does not say)."""
    return read_adapter_recipe(folder).trained_on.base_model


def trained_to_explain(folder: Path) -> bool:
    """Whether the checkpoint's LoRA learned explanations (its recipe's explanation weight > 0; True when
    the recipe does not say): a ranking-only adapter explains with the base model's weights."""
    weights = read_adapter_recipe(folder).tasks.weights
    return weights is None or weights.get("explanation", 1.0) > 0


def training_prompt(folder: Path) -> dict[str, Any]:
    """The prompt settings of the recipe in `folder` (its `data` keys among PROMPT_KEYS that it sets;
    {} when the folder has no config.yaml). ValueError naming the file and the key when one is bad."""
    data = dataclasses.asdict(read_adapter_recipe(folder).data)
    return {k: data[k] for k in PROMPT_KEYS if data[k] is not None}


def adapter_settings(folder: Path) -> dict[str, Any]:
    """The agent settings (`agent.<key>`) the adapter in `folder` ranks with: its recipe's prompt."""
    trained = training_prompt(folder)
    return {k: trained[k] for k in AGENT_KEYS if k in trained}
