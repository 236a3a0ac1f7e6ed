"""Several catalogs in one home: nothing of one dataset is lost or shown when another is ingested.

The probe of the issue through the real CLI: catalog `a` (ids 1-16), then catalog `b` (ids 11-16,
other titles) in the same home. TF-IDF vectors keep each command to a few seconds.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.reliability.conftest import cli, error_line, new_home

A_IDS, B_IDS = range(1, 17), range(11, 17)


def _write_catalog(path: Path, ids: range) -> None:
    tag = path.stem.upper()
    rows = [
        {"id": str(i), "title": f"{tag} film {i}", "year": 1990 + i, "genres": ["Drama"],
         "text": f"A {tag} story number {i} about friendship and a long journey."}
        for i in ids
    ]  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def _titles(table: str) -> list[str]:
    """The title column of a `fusionrec search` table."""
    return [cell.strip() for line in table.splitlines() if "│" in line for cell in [line.split("│")[3]]]


@pytest.fixture(scope="module")
def two_catalogs(tmp_path_factory, tiny_cfg) -> Path:
    """Home with `a` then `b` prepared and ingested (the second ingest must not touch the first)."""
    home = new_home(tmp_path_factory.mktemp("catalogs"), tiny_cfg)
    for name, ids, expected in (("a", A_IDS, "16 written, 0 unchanged, 0 media errors"),
                                ("b", B_IDS, "6 written, 0 unchanged, 0 media errors")):  # fmt: skip
        _write_catalog(home / f"{name}.jsonl", ids)
        assert cli(home, "data", "prepare", f"{name}.jsonl").rc == 0
        ingested = cli(home, "ingest", "--dataset", name, "--modalities", "tfidf")
        assert ingested.rc == 0 and expected in ingested.out, ingested.out + ingested.err
        assert "removed" not in ingested.out
    return home


def test_second_catalog_keeps_the_first(two_catalogs: Path) -> None:
    found = cli(two_catalogs, "search", "friendship journey", "--k", "20", "data.dataset=a")
    assert found.rc == 0, found.err
    assert "16 candidates from a " in found.out
    titles = _titles(found.out)
    assert sorted(titles) == sorted(f"A film {i}" for i in A_IDS)  # ids 11-16 still hold a's items
    found = cli(two_catalogs, "search", "friendship journey", "--dataset", "b")
    assert found.rc == 0 and "6 candidates from b " in found.out, found.err
    assert sorted(_titles(found.out)) == sorted(f"B film {i}" for i in B_IDS)
    again = cli(two_catalogs, "ingest", "--dataset", "a", "--modalities", "tfidf")
    assert "0 written, 16 unchanged" in again.out and "removed" not in again.out, again.out


def test_searching_a_dataset_never_ingested_names_the_ingested_ones(two_catalogs: Path) -> None:
    line = error_line(cli(two_catalogs, "search", "friendship", "data.dataset=c"))
    assert "'c' is not ingested" in line and "ingested: a, b" in line
    assert "fusionrec ingest --dataset c" in line


def test_same_stem_in_two_formats_is_refused(home: Path) -> None:
    _write_catalog(home / "b.jsonl", B_IDS)
    assert cli(home, "data", "prepare", "b.jsonl").rc == 0
    before = (home / "data" / "b" / "items.jsonl").read_bytes()
    (home / "b.csv").write_text("id,title\n1,Other\n", encoding="utf-8")
    line = error_line(cli(home, "data", "prepare", "b.csv"))
    assert str(home / "b.csv") in line and str(home / "b.jsonl") in line
    assert (home / "data" / "b" / "items.jsonl").read_bytes() == before
    assert cli(home, "data", "prepare", "b.jsonl").rc == 0  # the same file again is fine


def test_a_non_utf8_row_drops_only_that_row(home: Path) -> None:
    path = home / "mixed.csv"
    path.write_bytes(b"id,title\n1,Am\xc3\xa9lie\n2,Mis\xe9rables\n3,Heat\n")  # row 2 (line 3): latin-1
    done = cli(home, "data", "prepare", "mixed.csv")
    assert done.rc == 0, done.err
    assert "not UTF-8" in done.out and "mixed.csv:3" in done.out, done.out
    items = (home / "data" / "mixed" / "items.jsonl").read_text(encoding="utf-8")
    assert [json.loads(x)["id"] for x in items.splitlines()] == ["1", "3"]
