"""The ReDial loader's splits: the three official files, their counts, and no test dialogue in training."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from fusionrec.data.loaders import DataSourceError
from fusionrec.data.loaders.movielens import find_ml_latest, load_ml_latest
from fusionrec.data.loaders.redial import DIALOGUE_FILES, MOVIES_CSV, SPLITS, find_redial, load_redial
from tests.conftest import make_config


@pytest.fixture(scope="module")
def cfg(shared_data: Path, tmp_path_factory):
    return make_config(
        "tiny", home=tmp_path_factory.mktemp("home"), overrides=[f"paths.shared_data={shared_data}"]
    )


@pytest.fixture(scope="module")
def redial(cfg):
    return load_redial(find_redial(cfg), None, load_ml_latest(*find_ml_latest(cfg)).items)


def _raw_ids(path: Path) -> set[str]:
    return {
        str(json.loads(x)["conversationId"])
        for x in path.read_text(encoding="utf-8").splitlines()
        if x.strip()
    }


def test_the_three_files_with_their_counts(redial, shared_data):
    counts = {
        s: (len(redial.dialogues[s]), sum(len(d["messages"]) for d in redial.dialogues[s])) for s in SPLITS
    }
    assert counts == {"train": (500, 9_095), "valid": (100, 1_872), "test": (1342, 23_952)}
    test_ids = {d["conversation_id"] for d in redial.dialogues["test"]}
    assert test_ids == _raw_ids(shared_data / "redial" / DIALOGUE_FILES["test"])  # the whole official test
    recommender_turns = sum(
        1
        for d in redial.dialogues["test"]
        for m in d["messages"]
        if m["role"] == "recommender" and m["movie_ids"]
    )
    assert recommender_turns > 1000
    assert len(redial.items) == 6924


def test_no_test_dialogue_reaches_training(redial):
    ids = {s: {d["conversation_id"] for d in redial.dialogues[s]} for s in SPLITS}
    assert not (ids["test"] & (ids["train"] | ids["valid"])) and not ids["train"] & ids["valid"]
    train_seekers = {d["seeker_id"] for d in redial.dialogues["train"]}
    assert redial.interactions and {x.user for x in redial.interactions} <= train_seekers


def test_a_test_id_in_a_training_file_is_dropped_there(tmp_path, shared_data):
    src = shared_data / "redial"
    shutil.copy(src / MOVIES_CSV, tmp_path / MOVIES_CSV)
    test_lines = (src / DIALOGUE_FILES["test"]).read_text(encoding="utf-8").splitlines()[:3]
    train_lines = (src / DIALOGUE_FILES["train"]).read_text(encoding="utf-8").splitlines()[:2]
    (tmp_path / DIALOGUE_FILES["test"]).write_text("\n".join(test_lines) + "\n", encoding="utf-8")
    (tmp_path / DIALOGUE_FILES["train"]).write_text(
        "\n".join([*train_lines, test_lines[1]]) + "\n", encoding="utf-8"
    )
    (tmp_path / DIALOGUE_FILES["valid"]).write_text(test_lines[2] + "\n{not json\n", encoding="utf-8")
    ds = load_redial(tmp_path)
    assert [len(ds.dialogues[s]) for s in SPLITS] == [2, 0, 3]
    problems = {(Path(i.file).name, i.reason) for i in ds.report.issues}
    assert (DIALOGUE_FILES["train"], "duplicate id") in problems
    assert (DIALOGUE_FILES["valid"], "duplicate id") in problems
    assert (DIALOGUE_FILES["valid"], "malformed dialogue") in problems


def test_a_missing_file_is_named(tmp_path, shared_data):
    shutil.copy(shared_data / "redial" / MOVIES_CSV, tmp_path / MOVIES_CSV)
    shutil.copy(shared_data / "redial" / DIALOGUE_FILES["test"], tmp_path / DIALOGUE_FILES["test"])
    cfg = make_config("tiny", home=tmp_path / "home")
    with pytest.raises(DataSourceError, match="missing train_subset_500.jsonl, valid_subset_100.jsonl"):
        find_redial(cfg, source=str(tmp_path))


def test_movies_join_ml_latest(redial):
    troopers = next(i for i in redial.items if i.metadata["redial_name"] == "Super Troopers (2001)")
    assert troopers.metadata["ml_latest_id"] == "5110" and troopers.metadata["imdb_id"] == "tt0247745"
    assert troopers.genres == ["Comedy", "Crime", "Mystery"]
    assert redial.report.stats["ml_latest_matched_movies"] > 3500
    assert redial.report.stats["ml100k_match"].startswith("skipped")
