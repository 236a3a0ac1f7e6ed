"""`fusionrec finetune [train|merge|sweep|ship]`: run a recipe, merge an adapter into its base, sweep
settings, copy a checkpoint's inference files into a small adapter folder.

fusionrec finetune --recipe finetune/recipes/stage1_align.yaml
fusionrec finetune --recipe stage2_lora --resume
fusionrec finetune --recipe tiny_smoke train.max_steps=10 models.profile=tiny   # recipe and config overrides
fusionrec finetune --recipe poster_projector        # the poster -> text-space projector (finetune.poster_projector)
fusionrec finetune merge --checkpoint .fusionrec/checkpoints/stage2_lora/best --output merged/
fusionrec finetune sweep --recipe tiny_smoke
fusionrec finetune ship --checkpoint .fusionrec/checkpoints/ranker_gpu/best --output agent/adapters/NAME
accelerate launch --config_file finetune/accelerate/cpu_2proc.yaml finetune/train_script.py --recipe tiny_smoke
"""

from __future__ import annotations

import copy
import itertools
import json
import random
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from fusionrec.config import Config
from fusionrec.finetune import checkpoint as ckpt
from fusionrec.finetune.recipe import Recipe, RecipeError, load_recipe, load_saved_recipe
from fusionrec.retrieval.collaborative.bpr import TABLE_FILE


# --- train -------------------------------------------------------------------------------------------
def train(
    cfg: Config,
    recipe: Recipe,
    output: str = "",
    resume: bool = False,
    progress: bool = True,
    stop_at: int | None = None,
) -> Any:
    """Run a recipe and return its `TrainResult` (see finetune.trainer)."""
    from fusionrec.finetune.trainer import Trainer

    trainer = Trainer(cfg, recipe, output, resume=resume, progress=progress)
    try:
        return trainer.train(stop_at=stop_at)
    finally:
        trainer.acc.wait_for_everyone()


def print_result(result: Any, recipe: Recipe) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"finetune {recipe.name} (stage {recipe.stage})")
    table.add_column("what")
    table.add_column("value", justify="right")
    first = result.losses[0] if result.losses else float("nan")
    last = result.losses[-1] if result.losses else float("nan")
    table.add_row("steps", str(result.steps))
    table.add_row("loss first -> last", f"{first:.4f} -> {last:.4f}")
    if result.evals:
        e0, e1 = result.evals[0], result.evals[-1]
        table.add_row(
            f"valid HR@1 (step {e0['step']} -> {e1['step']})", f"{e0['hr@1']:.3f} -> {e1['hr@1']:.3f}"
        )
        table.add_row("valid NDCG@10", f"{e0['ndcg@10']:.3f} -> {e1['ndcg@10']:.3f}")
    table.add_row(
        "popularity HR@1 / NDCG@10", f"{result.popularity['hr@1']:.3f} / {result.popularity['ndcg@10']:.3f}"
    )
    table.add_row("examples/s", f"{result.throughput.get('examples_per_s', 0):.2f}")
    table.add_row("tokens/s", f"{result.throughput.get('tokens_per_s', 0):.0f}")
    table.add_row("peak RSS (MiB)", f"{result.peak_rss_mb:.0f}")
    table.add_row("last checkpoint", str(result.last_dir))
    table.add_row("best checkpoint", str(result.best_dir or "-"))
    Console().print(table)


# --- merge -------------------------------------------------------------------------------------------
def merge_checkpoint(cfg: Config, checkpoint: str | Path, output: str | Path) -> Path:
    """Merge the LoRA adapter of `checkpoint` into its base model; write a plain transformers folder
    at `output` with the projectors (and the fusion module) copied beside it."""
    import torch
    from peft import PeftModel

    from fusionrec.models import registry

    folder = ckpt.require(checkpoint, ckpt.CONFIG_FILE, "projectors.safetensors")
    if not (folder / ckpt.ADAPTER_CONFIG).is_file():
        raise ckpt.CheckpointError(
            f"{folder / ckpt.ADAPTER_CONFIG} is missing: {folder} holds no LoRA adapter (a stage-1 "
            "checkpoint?), so there is nothing to merge; use the folder as agent.adapter directly"
        )
    trained_on = load_saved_recipe(folder).trained_on
    cfg = copy.deepcopy(cfg)
    if trained_on.profile:
        cfg.models.profile = trained_on.profile
    base_src = trained_on.base_model
    local = registry.local_path(base_src) if base_src else None
    if base_src and (local is None or local.exists()):
        cfg.models.llm = base_src
    base, tokenizer = registry.load_llm(cfg)
    model = PeftModel.from_pretrained(copy.deepcopy(base), str(folder))
    merged = model.merge_and_unload()
    merged.eval()
    out = Path(output).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        merged.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    for name in ("projectors.safetensors", "projectors.json", ckpt.FUSION_FILE, ckpt.CONFIG_FILE, TABLE_FILE):
        if (folder / name).is_file():
            shutil.copy2(folder / name, out / name)
    return out


# --- sweep -------------------------------------------------------------------------------------------
def sweep_trials(recipe: Recipe) -> list[dict[str, Any]]:
    """The settings to try: the first `trials` grid points, or `trials` random grid points (seeded)."""
    s = recipe.sweep
    grid = [
        {"lr": lr, "lora_r": r, "ranking_weight": rw, "explanation_weight": ew}
        for lr, r, rw, ew in itertools.product(s.lr, s.lora_r, s.ranking_weight, s.explanation_weight)
    ]
    if s.search == "random" and s.trials < len(grid):
        return random.Random(f"{recipe.seed}:sweep").sample(grid, s.trials)
    return grid[: s.trials]


def sweep(
    cfg: Config, recipe: Recipe, output: str = "", progress: bool = False
) -> tuple[list[dict[str, Any]], Path]:
    """Train one short run per trial; returns (rows sorted best first, the JSON file written)."""
    from fusionrec.finetune.trainer import output_dir_for

    root = Path(output).expanduser() if output else output_dir_for(cfg, recipe) / "sweep"
    rows = []
    for k, trial in enumerate(sweep_trials(recipe)):
        r = copy.deepcopy(recipe)
        r.name = f"{recipe.name}-trial{k}"
        r.train.lr = trial["lr"]
        r.lora.r = trial["lora_r"]
        r.lora.alpha = 2 * trial["lora_r"]
        r.tasks.weights = {
            **r.tasks.weights,
            "ranking": trial["ranking_weight"],
            "explanation": trial["explanation_weight"],
        }
        t0 = time.perf_counter()
        result = train(cfg, r, str(root / f"trial{k}"), progress=progress)
        final = result.evals[-1] if result.evals else {}
        rows.append(
            {
                "trial": k,
                **trial,
                "final_loss": result.losses[-1] if result.losses else None,
                "valid_hr@1": final.get("hr@1"),
                "valid_ndcg@10": final.get("ndcg@10"),
                "valid_loss": final.get("loss"),
                "best": result.best_metric,
                "seconds": round(time.perf_counter() - t0, 2),
                "checkpoint": str(result.best_dir or result.last_dir),
            }
        )
    key = recipe.train.metric
    sign = 1 if key == "loss" else -1
    rows.sort(key=lambda row: (row["best"] is None, sign * (row["best"] or 0.0), row["trial"]))
    root.mkdir(parents=True, exist_ok=True)
    path = root / "sweep.json"
    path.write_text(
        json.dumps({"recipe": recipe.path, "metric": key, "trials": rows}, indent=2), encoding="utf-8"
    )
    return rows, path


def print_sweep(rows: list[dict[str, Any]], path: Path, metric: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"sweep (best {metric} first) -> {path}")
    for col in ("trial", "lr", "LoRA r", "w rank", "w explain", "final loss", "HR@1", "NDCG@10", "s"):
        table.add_column(col, justify="right")

    def fmt(v: Any, spec: str) -> str:
        return "-" if v is None else format(v, spec)

    for row in rows:
        table.add_row(
            str(row["trial"]),
            fmt(row["lr"], ".1e"),
            str(row["lora_r"]),
            fmt(row["ranking_weight"], ".2f"),
            fmt(row["explanation_weight"], ".2f"),
            fmt(row["final_loss"], ".4f"),
            fmt(row["valid_hr@1"], ".3f"),
            fmt(row["valid_ndcg@10"], ".3f"),
            fmt(row["seconds"], ".1f"),
        )
    Console().print(table)


# --- the command ---------------------------------------------------------------------------------------
def finetune_command(cfg: Config, args: Any) -> int:
    from fusionrec.data.prepare import DatasetNotPrepared
    from fusionrec.finetune.data import DataError
    from fusionrec.finetune.poster_projector import is_projector_recipe, projector_command
    from fusionrec.finetune.trainer import TrainError

    action = getattr(args, "action", "train") or "train"
    try:
        if action == "merge":
            if not args.checkpoint or not args.output:
                print("error: merge needs --checkpoint DIR and --output DIR", file=sys.stderr)
                return 2
            out = merge_checkpoint(cfg, args.checkpoint, args.output)
            print(f"merged model written to {out}")
            return 0
        if action == "ship":
            from fusionrec.finetune.ship import ship

            if not args.checkpoint or not args.output:
                print("error: ship needs --checkpoint DIR and --output DIR", file=sys.stderr)
                return 2
            out = ship(args.checkpoint, args.output)
            size = sum(f.stat().st_size for f in out.iterdir() if f.is_file()) / 2**20
            print(f"adapter files written to {out} ({size:.1f} MiB); add its model card (README.md)")
            return 0
        default = "tiny_smoke" if action == "sweep" else cfg.finetune.recipe
        name, overrides = args.recipe or default, list(getattr(args, "overrides", None) or [])
        if action == "train" and is_projector_recipe(name):  # not an LLM recipe
            return projector_command(cfg, name, overrides, args.output)
        recipe = load_recipe(name, overrides)
        if action == "sweep":
            rows, path = sweep(cfg, recipe, args.output, progress=True)
            print_sweep(rows, path, recipe.train.metric)
            return 0
        result = train(cfg, recipe, args.output, resume=bool(args.resume))
        print_result(result, recipe)
        return 0
    except (RecipeError, ckpt.CheckpointError, TrainError, DataError, DatasetNotPrepared, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
