"""`train.max_minutes`: a budgeted run times its steps, lays its cosine schedule over the steps that fit,
and ends validated and saved inside its budget."""

from __future__ import annotations

import json

import pytest

from fusionrec.finetune.recipe import RecipeError, load_recipe
from fusionrec.finetune.run import train
from fusionrec.finetune.trainer import PROBE
from tests.finetune.conftest import SMALL

MAX_STEPS, MINUTES = 100_000, 0.3
OVERRIDES = {**SMALL, "train.max_steps": MAX_STEPS, "train.max_minutes": MINUTES, "train.warmup_steps": 2,
             "train.eval_every": 20, "train.save_every": 1_000_000}  # fmt: skip


def test_a_budgeted_run_fits_its_schedule_and_saves(ft_cfg, tmp_path):
    recipe = load_recipe("tiny_smoke", OVERRIDES)
    result = train(ft_cfg, recipe, str(tmp_path), progress=False)
    assert 0 < result.steps < MAX_STEPS
    state = json.loads((result.last_dir / "trainer_state.json").read_text())
    assert state["step"] == result.steps
    assert result.evals[-1]["step"] == result.steps  # validated where it stopped
    if result.steps > PROBE[1]:  # the schedule was fitted to the budget: it ends where the run stopped
        # (or a few steps later when timing jitter made the hard stop come first)
        assert result.steps <= state["schedule_steps"] <= 1.25 * result.steps + 2
        if state["schedule_steps"] == result.steps:  # fully decayed
            rows = (tmp_path / "metrics.csv").read_text().splitlines()
            header, last = rows[0].split(","), [r for r in rows[1:] if r.split(",")[1]][-1].split(",")
            lr = float(last[header.index("lr")])
            assert lr == pytest.approx(recipe.train.lr * recipe.train.min_lr_ratio, rel=0.05)


def test_a_negative_budget_is_refused():
    with pytest.raises(RecipeError, match="max_minutes"):
        load_recipe("tiny_smoke", {"train.max_minutes": -1})
