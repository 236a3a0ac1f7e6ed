"""`fusionrec data prepare`: files written, idempotent bytes, load_prepared, errors that say what to do."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fusionrec.cli import main
from fusionrec.data.catalog import read_items
from fusionrec.data.prepare import (
    DatasetNotPrepared,
    canonical_name,
    load_dialogues,
    load_prepared,
    load_report,
    prepare_command,
    prepare_dataset,
)
from tests.conftest import make_config

FILES = ("items.jsonl", "interactions.csv", "report.json")


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def home(tmp_path_factory, shared_data) -> Path:
    """One home where the CLI prepared ML-100k (the other tests read it)."""
    home = tmp_path_factory.mktemp("prepared")
    rc = main(["data", "prepare", "movielens-100k", f"paths.home={home}", f"paths.shared_data={shared_data}"])
    assert rc == 0
    return home


def test_cli_writes_the_files(home, capsys):
    out = home / "data" / "movielens-100k"
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES)
    assert not list(out.glob(".*.tmp"))
    header, first = (out / "interactions.csv").read_text(encoding="utf-8").splitlines()[:2]
    assert header == "user,item,rating,timestamp" and first == "196,242,3.0,881250949"
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert report["stats"]["items"] == 1682 and report["stats"]["interactions"] == 100_000
    assert report["counts"]["by_action"]["deduplicated"] == 64
    assert all({"file", "line", "item_id", "field", "reason", "action"} <= set(i) for i in report["issues"])


def test_cli_prints_summary(tmp_path, shared_data, capsys):
    rc = main(["data", "prepare", "ml-100k", f"paths.home={tmp_path}", f"paths.shared_data={shared_data}"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "movielens-100k: prepared" in out and "100,000" in out
    assert "duplicate id" in out and "deduplicated" in out and "64" in out
    assert f"wrote {tmp_path / 'data' / 'movielens-100k'}" in out


def test_load_prepared(home, shared_data):
    cfg = make_config("tiny", home=home)
    items, interactions = load_prepared(cfg, "movielens-100k")
    assert len(items) == 1682 and len(interactions) == 100_000
    assert items[0].id == "1" and items[0].title == "Toy Story"
    assert sum("image" in i.media for i in items) == 1663
    assert load_report(cfg, "movielens-100k")["dataset"] == "movielens-100k"


def test_load_prepared_missing_says_what_to_run(tmp_path):
    cfg = make_config("tiny", home=tmp_path)
    with pytest.raises(DatasetNotPrepared, match=r"run `fusionrec data prepare ml-latest-small`"):
        load_prepared(cfg, "ml-latest-small")


def test_prepare_is_idempotent(tmp_path, shared_data):
    cfg = make_config("tiny", home=tmp_path, overrides=[f"paths.shared_data={shared_data}"])
    out = prepare_dataset(cfg, "movielens-100k", verbose=False)
    before = _snapshot(out)
    assert prepare_dataset(cfg, "movielens-100k", verbose=False) == out
    assert _snapshot(out) == before


def test_prepare_redial_and_ml_latest(home, shared_data):
    cfg = make_config("tiny", home=home, overrides=[f"paths.shared_data={shared_data}"])
    out = prepare_dataset(cfg, "redial", verbose=False)
    assert {p.name for p in out.iterdir()} == {
        *FILES,
        *(f"dialogues_{s}.jsonl" for s in ("train", "valid", "test")),
    }
    splits = {s: load_dialogues(cfg, s) for s in ("train", "valid", "test")}
    ids = [d["conversation_id"] for s in splits.values() for d in s]
    assert [len(splits[s]) for s in ("train", "valid", "test")] == [500, 100, 1342]
    assert len(ids) == len(set(ids)) == 1942
    report = load_report(cfg, "redial")
    assert report["sources"]["ml100k_catalog"].endswith("movielens-100k/items.jsonl")  # the prepared copy
    assert report["sources"]["ml_latest_catalog"]  # ml-latest-small genres, raw files when not prepared
    assert report["stats"]["ml100k_matched_mentioned_movies"] > 100
    items, interactions = load_prepared(cfg, "redial")
    assert len(items) == 6924 and interactions

    out = prepare_dataset(cfg, "movielens-latest-small", verbose=False)
    assert out.name == "ml-latest-small"
    items, interactions = load_prepared(cfg, "ml-latest-small")
    assert (len(items), len(interactions)) == (9742, 100_836)


def test_prepare_user_catalog_through_cli(tmp_path, shared_data):
    (tmp_path / "p.jpg").write_bytes(
        (shared_data / "movielens-100k-posters" / "posters" / "1.jpg").read_bytes()
    )
    (tmp_path / "bad.jpg").write_bytes(b"GIF89a broken")
    cat = tmp_path / "shop.csv"
    cat.write_text(
        "id,title,year,image\n1,Lamp,2020,p.jpg\n2,,2021,\n1,Lamp again,2022,\n3,Chair,20x1,bad.jpg\n",
        encoding="utf-8",
    )
    home = tmp_path / "home"
    assert main(["data", "prepare", str(cat), f"paths.home={home}"]) == 0
    cfg = make_config("tiny", home=home)
    items, interactions = load_prepared(cfg, str(cat))
    assert [(i.id, i.year, sorted(i.media)) for i in items] == [("1", 2020, ["image"]), ("3", None, [])]
    assert interactions == []
    issues = load_report(cfg, "shop")["issues"]
    assert [(Path(i["file"]).name, i["line"], i["field"], i["reason"], i["action"]) for i in issues] == [
        ("shop.csv", 3, "title", "missing title", "dropped_row"),
        ("shop.csv", 4, "id", "duplicate id", "deduplicated"),
        ("shop.csv", 5, "year", "bad year", "dropped_field"),
        ("shop.csv", 5, "image", "corrupt image", "dropped_field"),
    ]
    assert read_items(home / "data" / "shop" / "items.jsonl") == items


def test_bad_names_and_sources_are_clear(tmp_path, capsys):
    cfg = make_config("tiny", home=tmp_path)
    assert canonical_name("ML-100K") == "movielens-100k"
    assert prepare_command(cfg, "netflix-prize") == 2
    assert "unknown dataset 'netflix-prize'" in capsys.readouterr().err
    assert prepare_command(cfg, "movielens-100k", source=str(tmp_path / "empty")) == 2
    assert "no u.item there" in capsys.readouterr().err
