"""`--resume` continues exactly: the same next losses as an uninterrupted run."""

from __future__ import annotations

import csv

import pytest

from fusionrec.finetune.checkpoint import CheckpointError
from fusionrec.finetune.recipe import load_recipe
from fusionrec.finetune.run import train
from tests.finetune.conftest import SMALL

STEPS, STOP = 8, 4
# LoRA dropout on: the resumed run must also restore the torch RNG exactly
OVERRIDES = {
    **SMALL,
    "train.max_steps": STEPS,
    "train.save_every": 100,
    "train.eval_every": 100,
    "lora.dropout": 0.1,
}


def test_resume_gives_the_same_next_losses(ft_cfg, tmp_path):
    recipe = load_recipe("tiny_smoke", OVERRIDES)
    full = train(ft_cfg, recipe, str(tmp_path / "full"), progress=False)
    assert len(full.losses) == STEPS

    part = train(ft_cfg, recipe, str(tmp_path / "part"), progress=False, stop_at=STOP)
    assert part.steps == STOP
    assert part.losses == pytest.approx(full.losses[:STOP], abs=1e-6)
    resumed = train(ft_cfg, recipe, str(tmp_path / "part"), resume=True, progress=False)
    assert resumed.steps == STEPS and len(resumed.losses) == STEPS - STOP
    assert resumed.losses == pytest.approx(full.losses[STOP:], abs=1e-5), (resumed.losses, full.losses[STOP:])
    assert [set(t) for t in resumed.task_losses] == [set(t) for t in full.task_losses[STOP:]]

    rows = [
        r for r in csv.DictReader((tmp_path / "part" / "metrics.csv").read_text().splitlines()) if r["loss"]
    ]
    assert [int(r["step"]) for r in rows] == list(range(1, STEPS + 1))  # no duplicated or lost rows


def test_resume_without_a_checkpoint_names_the_path(ft_cfg, tmp_path):
    recipe = load_recipe("tiny_smoke", OVERRIDES)
    with pytest.raises(CheckpointError, match=str(tmp_path / "empty" / "last")):
        train(ft_cfg, recipe, str(tmp_path / "empty"), resume=True, progress=False)
    bad = load_recipe("tiny_smoke", {**OVERRIDES, "model.init_from": str(tmp_path / "no-such-stage1")})
    with pytest.raises(CheckpointError, match="no-such-stage1"):
        train(ft_cfg, bad, str(tmp_path / "x"), progress=False)
