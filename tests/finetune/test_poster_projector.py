"""The poster projector recipe: complete and commented, checked strictly, and `fusionrec finetune --recipe
poster_projector` trains a projector whose loss falls and that beats chance on held-out items."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest
import yaml

from fusionrec.finetune.poster_projector import (
    ProjectorRecipe,
    is_projector_recipe,
    load_projector_recipe,
    own_ranks,
    rank_summary,
)
from fusionrec.finetune.recipe import RECIPES_DIR, RecipeError, load_recipe
from fusionrec.settings import as_words
from tests.conftest import TEST_HOME, home_config

HOME = TEST_HOME / "poster-projector"
# small: 300 items (180 train, 60 valid, 60 test), one ridge and one linear contrastive candidate
SMALL = {
    "data.max_items": 300,
    "data.valid_fraction": 0.2,
    "data.test_fraction": 0.2,
    "search.ridge_alphas": [1.0],
    "search.contrastive_hidden": [0],
    "train.epochs": 8,
    "train.batch_size": 32,
}


def test_shipped_recipe_sets_every_key_with_a_comment():
    path = RECIPES_DIR / "poster_projector.yaml"
    data = yaml.safe_load(path.read_text())
    expected = dataclasses.asdict(ProjectorRecipe())
    expected.pop("path")
    assert set(data) == set(expected)
    for section, value in expected.items():
        if isinstance(value, dict):
            assert set(data[section]) == set(value), section
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        if re.match(r"^\s*[A-Za-z_]+:", line):
            assert "#" in line, f"{path}:{lineno}: key without a comment"
    assert is_projector_recipe("poster_projector") and not is_projector_recipe("tiny_smoke")
    assert load_projector_recipe("poster_projector", {"train.epochs": 3}).train.epochs == 3
    assert load_projector_recipe("poster_projector", ["train.epochs=4"]).train.epochs == 4
    with pytest.raises(RecipeError, match=r"poster_projector\.yaml: kind: unknown key"):
        load_recipe("poster_projector")  # the LLM trainer refuses it


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("train:\n  epochz: 3\n", r"bad\.yaml: train\.epochz: unknown key"),
        ("train:\n  epochs: 0\n", r"bad\.yaml: train\.epochs and eval_every must be >= 1"),
        ("metric: ndcg\n", r"bad\.yaml: metric must be one of mean_rank, hit@10, hit@1"),
        ("search:\n  ridge_alphas: []\n  contrastive_hidden: []\n", r"bad\.yaml: search: no candidate"),
        ("data:\n  test_fraction: 0.6\n  valid_fraction: 0.5\n", r"bad\.yaml: data\.valid_fraction \+ test"),
    ],
)
def test_bad_recipes_name_the_file_and_the_key(tmp_path, body, message):
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: poster_projector\n" + body)
    with pytest.raises(RecipeError, match=message):
        load_projector_recipe(str(bad))


def test_own_rank_retrieval_metrics():
    target = [[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]
    pred = [[1.0, 0.1], [1.0, 0.0], [-1.0, 0.2]]  # rows 0 and 2 find their own target, row 1 does not
    ranks = own_ranks(pred, target)
    assert list(ranks) == [0, 1, 0]
    assert rank_summary(ranks) == pytest.approx({"hit@1": 2 / 3, "hit@10": 1.0, "mean_rank": 4 / 3, "n": 3})


@pytest.fixture(scope="module")
def pp_cfg(offline_cfg, shared_data):
    """The offline models (EfficientNet-Lite0, MiniLM) and ML-100k prepared under HOME."""
    from fusionrec.data.prepare import prepare_dataset

    cfg = home_config(offline_cfg.models_dir, HOME, "offline")
    if not (cfg.data_dir / "movielens-100k" / "items.jsonl").is_file():
        prepare_dataset(cfg, "movielens-100k", verbose=False)
    return cfg


@pytest.mark.real
def test_cli_trains_a_projector_whose_loss_falls_and_beats_chance(pp_cfg, tmp_path, capsys):
    from fusionrec.cli import main
    from fusionrec.encoders.poster_projector import load_projector

    out = tmp_path / "pp"
    sets = as_words(SMALL)
    rc = main(["finetune", "--recipe", "poster_projector", "--output", str(out), *sets, f"paths.home={HOME}"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "models.poster_projector=" in printed and "bridge" in printed
    report = json.loads((out / "report.json").read_text())
    assert report["items"] == {"test": 60, "valid": 60, "train": 180}
    contrastive = next(c for c in report["candidates"] if c["method"] == "contrastive")
    losses = contrastive["losses"]
    assert len(losses) == 8 and losses[-1] < 0.8 * losses[0], losses
    test = report["test"]
    assert test["projector"]["n"] == test["bridge"]["n"] == 60
    assert test["projector"]["mean_rank"] < test["chance"]["mean_rank"] - 3  # held out: better than chance
    assert report["chosen"]["method"] in ("ridge", "contrastive")
    path = out / "poster_projector.safetensors"
    assert load_projector(path, 1280, 384, report["image_model"], report["text_model"]).out_dim == 384
