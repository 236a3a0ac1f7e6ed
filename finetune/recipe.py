"""Recipes: one YAML file per training run, read into typed sections with strict key checking.

A recipe names everything a run needs (data, model, LoRA, optimisation, tasks, augmentation,
logging). Unknown keys and wrong types are errors that name the file and the key. The recipe is
copied into every checkpoint as ``config.yaml`` so a checkpoint says how it was made.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.config import SCORINGS

RECIPES_DIR = Path(__file__).resolve().parent / "recipes"
TASKS = ("ranking", "dialogue", "explanation", "alignment")


class RecipeError(ValueError):
    """A recipe file is missing, malformed, or names an unknown key or a bad value."""


@dataclass
class DataSection:
    dataset: str = "movielens-100k"
    max_users: int = 0
    history_len: int = 20
    num_candidates: int = 20
    negatives: str = "random"
    train_per_user: int = 0
    min_history: int = 1
    val_users: int = 100
    redial: bool = False
    redial_max: int = 0
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
    path: str = ""  # where it was read from (not a YAML key)

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


def _coerce(value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise RecipeError(f"{where}: expected true/false, got {value!r}")
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int | float) or float(value) != int(value):
            raise RecipeError(f"{where}: expected an integer, got {value!r}")
        return int(value)
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise RecipeError(f"{where}: expected a number, got {value!r}")
        try:
            return float(value)
        except ValueError:
            raise RecipeError(f"{where}: expected a number, got {value!r}") from None
    if hint is str:
        if value is None:
            return ""
        if not isinstance(value, str | int | float):
            raise RecipeError(f"{where}: expected a string, got {value!r}")
        return str(value)
    if origin is list:
        if not isinstance(value, list):
            raise RecipeError(f"{where}: expected a list, got {value!r}")
        (etype,) = typing.get_args(hint)
        return [_coerce(v, etype, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise RecipeError(f"{where}: expected a mapping, got {value!r}")
        _, vtype = typing.get_args(hint)
        return {str(k): _coerce(v, vtype, f"{where}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, where)
    raise RecipeError(f"{where}: unsupported type {hint}")


def _build(cls: Any, values: Any, where: str) -> Any:
    if not isinstance(values, dict):
        raise RecipeError(f"{where}: expected a mapping, got {values!r}")
    hints = typing.get_type_hints(cls)
    obj = cls()
    for key, value in values.items():
        if key not in hints or key == "path":
            known = ", ".join(k for k in hints if k != "path")
            raise RecipeError(f"{where}: unknown key '{key}' (known: {known})")
        setattr(obj, key, _coerce(value, hints[key], f"{where}.{key}" if where else key))
    return obj


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


def read_recipe(name: str | Path, overrides: dict[str, Any] | None = None) -> tuple[Path, dict[str, Any]]:
    """(path, raw mapping) of a recipe (path or shipped name) with ``{"train.lr": 1e-4, ...}`` applied."""
    import yaml

    path = resolve_path(str(name))
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise RecipeError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(data, dict):
        raise RecipeError(f"{path}: expected a mapping at the top level")
    for dotted, value in (overrides or {}).items():
        section, _, key = dotted.rpartition(".")
        target = data.setdefault(section, {}) if section else data
        if not isinstance(target, dict):
            raise RecipeError(f"override {dotted}: {section} is not a section")
        target[key] = value
    return path, data


def load_recipe(name: str | Path, overrides: dict[str, Any] | None = None) -> Recipe:
    """Read a recipe (path or shipped name), then apply ``{"train.lr": 1e-4, ...}`` overrides."""
    path, data = read_recipe(name, overrides)
    try:
        recipe = _build(Recipe, data, "")
    except RecipeError as exc:
        raise RecipeError(f"{path}: {exc}") from None
    recipe.path = str(path)
    return validate(recipe, str(path))


def recipe_from_dict(data: dict[str, Any], where: str = "<dict>") -> Recipe:
    """A recipe from a plain dict (a checkpoint's config.yaml)."""
    try:
        recipe = _build(Recipe, data, "")
    except RecipeError as exc:
        raise RecipeError(f"{where}: {exc}") from None
    recipe.path = where
    return validate(recipe, where)
