"""Recipes: one YAML file per training run, read into typed sections by `fusionrec.settings`.

A recipe names everything a run needs (data, model, LoRA, optimisation, tasks, augmentation,
logging). Unknown keys and wrong types are errors that name the file and the key; keys are
overridden with ``section.key=value`` (``train.max_steps=10``). The recipe is copied into every
checkpoint as ``config.yaml`` (with ``trained_on``) and read back by the same loader
(`load_saved_recipe`), so a checkpoint says how it was made.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from fusionrec import settings
from fusionrec.agent.checkpoint import (
    DIALOGUE_CANDIDATES,
    DIALOGUE_MENTIONED,
    DIALOGUE_TURNS,
    RECIPE_FILE,
    TrainedOn,
)
from fusionrec.agent.config import SCORINGS
from fusionrec.settings import ConfigError

T = TypeVar("T")

RECIPES_DIR = Path(__file__).resolve().parent / "recipes"
TASKS = ("ranking", "dialogue", "explanation", "alignment")
# the sections a `fusionrec finetune` override may name (train.max_steps=10): a recipe's, and `search`
# of the poster-projector recipe; the app config's `data` section is not read by finetune
OVERRIDE_SECTIONS = ("data", "model", "lora", "train", "tasks", "augment", "sweep", "search")


class RecipeError(ConfigError):
    """A recipe file is missing, malformed, or names an unknown key or a bad value."""


@dataclass
class DataSection:
    dataset: str = "movielens-100k"
    max_users: int = 0
    history_len: int = 20
    num_candidates: int = DIALOGUE_CANDIDATES
    negatives: str = "random"
    train_per_user: int = 0
    min_history: int = 1
    val_users: int = 100
    redial: bool = False
    redial_max: int = 0
    redial_mentioned: int = DIALOGUE_MENTIONED
    redial_turns: int = DIALOGUE_TURNS
    template: str = "concise"
    scoring: str = "listwise"
    collab_dim: int = 0
    prior: str = ""
    overview_chars: int = 0
    max_prompt_tokens: int = 1024
    align_items: int = 0
    explain_items: int = 0


@dataclass
class ModelSection:
    profile: str = ""
    dtype: str = ""
    init_from: str = ""
    projector_hidden: int = 0
    gradient_checkpointing: bool = False


@dataclass
class LoraSection:
    enabled: bool = True
    r: int = 8
    alpha: int = 16
    dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"])
    top_layers: int = 0


@dataclass
class TrainSection:
    max_steps: int = 100
    micro_batch_size: int = 1
    grad_accum: int = 4
    lr: float = 2e-4
    projector_lr: float = 1e-3
    residual_lr: float = 0.01
    freeze_projectors: bool = False
    weight_decay: float = 0.0
    warmup_steps: int = 10
    min_lr_ratio: float = 0.1
    max_grad_norm: float = 1.0
    mixed_precision: str = "no"
    log_every: int = 10
    eval_every: int = 50
    save_every: int = 50
    metric: str = "hr@1"
    eval_at_start: bool = True
    cpu_threads: int = 0
    max_minutes: float = 0.0


@dataclass
class TasksSection:
    weights: dict[str, float] = field(
        default_factory=lambda: {"ranking": 1.0, "dialogue": 0.0, "explanation": 0.2, "alignment": 0.2}
    )
    fusion_weight: float = 0.1
    fusion_temperature: float = 0.05
    llm_loss_weight: float = 0.0


@dataclass
class AugmentSection:
    modalities: list[str] = field(default_factory=lambda: ["item", "image"])
    modality_dropout: float = 0.2
    hybrid_start: float = 0.0
    hybrid_end: float = 1.0
    curriculum_fraction: float = 0.5


@dataclass
class SweepSection:
    trials: int = 4
    search: str = "grid"
    lr: list[float] = field(default_factory=lambda: [1e-4, 5e-4])
    lora_r: list[int] = field(default_factory=lambda: [4, 8])
    ranking_weight: list[float] = field(default_factory=lambda: [1.0])
    explanation_weight: list[float] = field(default_factory=lambda: [0.0, 0.2])


@dataclass
class Recipe:
    name: str = "run"
    stage: int = 2
    seed: int = 0
    data: DataSection = field(default_factory=DataSection)
    model: ModelSection = field(default_factory=ModelSection)
    lora: LoraSection = field(default_factory=LoraSection)
    train: TrainSection = field(default_factory=TrainSection)
    tasks: TasksSection = field(default_factory=TasksSection)
    augment: AugmentSection = field(default_factory=AugmentSection)
    sweep: SweepSection = field(default_factory=SweepSection)
    path: str = settings.not_a_file_key()  # where it was read from (not a YAML key)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.pop("path")
        return d

    def dumps(self) -> str:
        import yaml

        return yaml.safe_dump(self.to_dict(), sort_keys=False)


def resolve_path(name: str) -> Path:
    """A recipe path, or a bare name of a shipped recipe (``tiny_smoke`` -> finetune/recipes/tiny_smoke.yaml)."""
    path = Path(name).expanduser()
    if path.is_file():
        return path
    base = Path(name).name  # "finetune/recipes/x.yaml" from another working directory
    for cand in (name, base):
        shipped = RECIPES_DIR / (cand if cand.endswith((".yaml", ".yml")) else f"{cand}.yaml")
        if shipped.is_file():
            return shipped
    known = ", ".join(sorted(p.stem for p in RECIPES_DIR.glob("*.yaml")))
    raise RecipeError(f"recipe not found: {name} (shipped recipes: {known})")


def validate(recipe: Recipe, where: str) -> Recipe:
    """Cross-field checks with messages naming the key."""
    if recipe.stage not in (1, 2):
        raise RecipeError(
            f"{where}: stage must be 1 (alignment) or 2 (LoRA + projectors), got {recipe.stage}"
        )
    unknown = [t for t in recipe.tasks.weights if t not in TASKS]
    if unknown:
        raise RecipeError(f"{where}: tasks.weights: unknown task(s) {unknown} (known: {', '.join(TASKS)})")
    if not any(w > 0 for w in recipe.tasks.weights.values()):
        raise RecipeError(f"{where}: tasks.weights: at least one task needs a weight > 0")
    if not 2 <= recipe.data.num_candidates <= 20:
        raise RecipeError(f"{where}: data.num_candidates must be 2..20 (labels A..T)")
    if recipe.data.scoring not in SCORINGS:
        raise RecipeError(f"{where}: data.scoring must be one of {', '.join(SCORINGS)}")
    if recipe.data.collab_dim < 0:
        raise RecipeError(f"{where}: data.collab_dim must be >= 0 (0 = no collaborative vectors)")
    if recipe.data.prior not in ("", "auto", "bpr", "sasrec", "popularity"):
        raise RecipeError(f"{where}: data.prior must be '', auto, bpr, sasrec or popularity")
    if recipe.data.prior and recipe.data.scoring != "pointwise":
        raise RecipeError(f"{where}: data.prior (residual scoring) needs data.scoring: pointwise")
    if recipe.data.negatives not in ("random", "retrieval"):
        raise RecipeError(f"{where}: data.negatives must be random or retrieval")
    if recipe.train.mixed_precision not in ("no", "bf16", "fp16"):
        raise RecipeError(f"{where}: train.mixed_precision must be no, bf16 or fp16")
    if recipe.train.metric not in ("hr@1", "ndcg@10", "loss"):
        raise RecipeError(f"{where}: train.metric must be hr@1, ndcg@10 or loss")
    if recipe.sweep.search not in ("grid", "random"):
        raise RecipeError(f"{where}: sweep.search must be grid or random")
    for m in recipe.augment.modalities:
        if m not in ("item", "image", "audio", "video"):
            raise RecipeError(f"{where}: augment.modalities: unknown modality {m!r}")
    if recipe.train.max_steps < 1 or recipe.train.grad_accum < 1 or recipe.train.micro_batch_size < 1:
        raise RecipeError(f"{where}: train.max_steps, grad_accum and micro_batch_size must be >= 1")
    if recipe.train.max_minutes < 0:
        raise RecipeError(f"{where}: train.max_minutes must be >= 0 (0 = no wall-clock budget)")
    return recipe


def read_recipe(name: str | Path) -> tuple[Path, dict[str, Any]]:
    """(path, raw top-level mapping) of a recipe (path or shipped name), e.g. to look at its ``kind``."""
    path = resolve_path(str(name))
    return path, settings.read_file(path, RecipeError)


def load_recipe_as(cls: type[T], name: str | Path, overrides: settings.Overrides | None = None) -> T:
    """A recipe of class `cls` (path or shipped name) read by `fusionrec.settings`, then
    ``section.key=value`` overrides (``["train.lr=1e-4"]`` or ``{"train.lr": 1e-4}``)."""
    path = resolve_path(str(name))
    recipe = settings.load(cls, path, overrides, RecipeError)
    recipe.path = str(path)  # type: ignore[attr-defined]
    return recipe


def load_recipe(name: str | Path, overrides: settings.Overrides | None = None) -> Recipe:
    """Read a training recipe (path or shipped name), apply overrides, check it."""
    recipe = load_recipe_as(Recipe, name, overrides)
    return validate(recipe, recipe.path)


@dataclass
class SavedRecipe(Recipe):
    """A checkpoint's ``config.yaml``: the recipe it was trained with and what it was trained on."""

    trained_on: TrainedOn = field(default_factory=TrainedOn)


def load_saved_recipe(folder: str | Path) -> SavedRecipe:
    """The recipe saved in a checkpoint folder (``config.yaml``), read and checked like a recipe file."""
    path = Path(folder).expanduser() / RECIPE_FILE
    if not path.is_file():
        raise RecipeError(f"{path}: missing (not a finetune checkpoint?)")
    recipe = settings.load(SavedRecipe, path, error=RecipeError)
    recipe.path = str(path)
    validate(recipe, recipe.path)
    return recipe
