"""Recipes: complete and commented; each one trains on the tiny profile and its loss goes down."""

from __future__ import annotations

import csv
import re

import pytest
import yaml

from fusionrec.finetune.poster_projector import is_projector_recipe
from fusionrec.finetune.recipe import RECIPES_DIR, Recipe, RecipeError, load_recipe
from fusionrec.finetune.run import train
from tests.finetune.conftest import SMALL

RECIPES = sorted(p.stem for p in RECIPES_DIR.glob("*.yaml") if not is_projector_recipe(p.stem))  # LLM recipes


def test_shipped_recipes_set_every_key_with_a_comment():
    assert {"stage1_align", "stage2_lora", "tiny_smoke"} <= set(RECIPES)
    for name in RECIPES:
        path = RECIPES_DIR / f"{name}.yaml"
        data = yaml.safe_load(path.read_text())
        for section, value in Recipe().to_dict().items():
            assert section in data, f"{path}: section/key {section!r} missing"
            if isinstance(value, dict):
                assert set(value) == set(data[section]), f"{path}: [{section}] keys differ"
        for lineno, line in enumerate(path.read_text().splitlines(), start=1):
            if re.match(r"^\s*[A-Za-z_]+:", line):
                assert "#" in line, f"{path}:{lineno}: key without a comment: {line.strip()}"
        load_recipe(name)  # valid


def test_bad_recipes_name_the_file_and_the_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ntrain:\n  max_step: 3\n")
    with pytest.raises(RecipeError, match=r"bad\.yaml: train\.max_step|bad\.yaml: .*unknown key 'max_step'"):
        load_recipe(bad)
    bad.write_text("train:\n  lr: fast\n")
    with pytest.raises(RecipeError, match=r"bad\.yaml: train\.lr: expected a number"):
        load_recipe(bad)
    bad.write_text("tasks:\n  weights: {ranking: 1.0, chat: 1.0}\n")
    with pytest.raises(RecipeError, match=r"unknown task\(s\) \['chat'\]"):
        load_recipe(bad)
    with pytest.raises(RecipeError, match="recipe not found: nope"):
        load_recipe("nope")


# per recipe: extra overrides that make "the loss goes down" a sharp test on a random tiny LLM
EXTRA = {
    "stage1_align": {
        "train.max_steps": 6,
        "train.projector_lr": 0.05,
        "train.mixed_precision": "no",
        "data.align_items": 2,
        "augment.modality_dropout": 0.0,
    },
    "stage2_lora": {
        "train.max_steps": 8,
        "train.lr": 0.01,
        "train.projector_lr": 0.01,
        "train.mixed_precision": "no",
    },
    "tiny_smoke": {"train.max_steps": 8},
}


@pytest.mark.parametrize("name", ["stage1_align", "stage2_lora", "tiny_smoke"])
def test_recipe_trains_and_its_loss_goes_down(ft_cfg, tmp_path, name):
    recipe = load_recipe(name, {**SMALL, **EXTRA[name]})
    result = train(ft_cfg, recipe, str(tmp_path / name), progress=False)
    assert result.steps == recipe.train.max_steps
    task = "alignment" if recipe.stage == 1 else "ranking"
    series = [t[task] for t in result.task_losses if task in t]
    assert len(series) >= 3, result.task_losses
    first, last = series[0], sum(series[-2:]) / 2
    margin = 0.005 if task == "alignment" else 0.1
    assert last < first - margin, f"{name}: {task} loss {series}"
    # logs and checkpoints
    rows = list(csv.DictReader((tmp_path / name / "metrics.csv").read_text().splitlines()))
    train_rows = [r for r in rows if r["loss"]]
    assert [int(r["step"]) for r in train_rows] == list(range(1, recipe.train.max_steps + 1))
    assert all(float(r["tokens_per_s"]) > 0 for r in train_rows)
    assert any(r["valid_hr@1"] for r in rows)
    assert list((tmp_path / name / "tb").glob("events.out.tfevents.*"))
    last_dir = result.last_dir
    for f in (
        "projectors.safetensors",
        "projectors.json",
        "config.yaml",
        "trainer_state.json",
        "optimizer.safetensors",
    ):
        assert (last_dir / f).is_file(), f
    assert (last_dir / "adapter_config.json").is_file() == (recipe.stage == 2)
    if recipe.train.eval_every > 0:  # stage 1 validates only its untrained start (best = none)
        assert result.best_dir is not None and (result.best_dir / "projectors.safetensors").is_file()
    assert result.throughput["examples_per_s"] > 0 and result.peak_rss_mb > 0
    if name == "stage2_lora":
        assert result.data["dialogue_examples"] > 0
        # the seeded task draws (seed 0) pick dialogue micro-batches at steps 5 and 7: they train
        dialogue = [t["dialogue"] for t in result.task_losses if "dialogue" in t]
        assert dialogue and all(0 < x < float("inf") for x in dialogue), result.task_losses
