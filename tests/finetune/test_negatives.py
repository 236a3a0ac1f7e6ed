"""`data.negatives=retrieval` needs an ingested Chroma store: without one the run stops with one line
naming the setting and what is missing (it never falls back to random negatives)."""

from __future__ import annotations

import pytest

from fusionrec.finetune.data import DataError, load_datasets
from fusionrec.finetune.recipe import load_recipe
from fusionrec.finetune.run import train
from tests.conftest import make_config
from tests.finetune.conftest import SMALL

RETRIEVAL = {**SMALL, "data.negatives": "retrieval"}


def test_no_store_is_an_error_naming_the_setting(tmp_path):
    cfg = make_config("tiny", home=tmp_path)
    with pytest.raises(DataError) as err:
        load_datasets(cfg, load_recipe("tiny_smoke", RETRIEVAL))
    message = str(err.value)
    assert message.startswith("data.negatives=retrieval needs an ingested Chroma store: ")
    assert str(cfg.chroma_dir) in message and "fusionrec ingest" in message and "\n" not in message
    assert not cfg.chroma_dir.exists()  # asking did not create an empty store


def test_a_store_without_the_dataset_is_an_error_too(tmp_path):
    cfg = make_config("tiny", home=tmp_path)
    cfg.chroma_dir.mkdir(parents=True)
    with pytest.raises(
        DataError, match=r"^data\.negatives=retrieval needs an ingested Chroma store: .*not ingested"
    ):
        load_datasets(cfg, load_recipe("tiny_smoke", RETRIEVAL))


def test_the_trainer_stops_before_loading_anything(tmp_path):
    cfg = make_config("tiny", home=tmp_path / "home")  # no models, no data: the store is checked first
    with pytest.raises(DataError, match=r"data\.negatives=retrieval"):
        train(cfg, load_recipe("tiny_smoke", RETRIEVAL), str(tmp_path / "run"), progress=False)
    assert not (tmp_path / "run" / "last").exists()
