"""Catalog schema: JSONL items and CSV interactions round-trip; bad lines name file, line and field."""

from __future__ import annotations

import json

import pytest

from fusionrec.data.catalog import (
    CatalogError,
    read_interactions,
    read_items,
    write_interactions,
    write_items,
)
from fusionrec.types import Interaction, Item

ITEMS = [
    Item(
        id="1",
        title="Misérables, Les",
        year=1995,
        genres=["Drama", "Musical"],
        text="Victor Hugo, retold.",
        tags=["classic", "french"],
        media={"image": "/abs/posters/1.jpg"},
        metadata={"tmdb_id": "48750", "runtime": 175, "vote_average": 7.0},
    ),
    Item(id="x-2", title="Untitled", year=None),
]


def test_items_round_trip_every_field_and_stable_bytes(tmp_path):
    path = write_items(tmp_path / "items.jsonl", ITEMS)
    assert read_items(path) == ITEMS
    first = path.read_bytes()
    lines = first.decode("utf-8").splitlines()
    assert len(lines) == 2
    assert set(json.loads(lines[0])) == {"id", "title", "year", "genres", "text", "tags", "media", "metadata"}
    assert "Misérables" in lines[0]  # UTF-8, not \\u escapes
    write_items(path, ITEMS)
    assert path.read_bytes() == first
    assert not list(tmp_path.glob(".*.tmp"))  # temp file renamed away


@pytest.mark.parametrize(
    ("line", "field", "reason"),
    [
        ('{"id": "3", "title": "A"', "json", "invalid JSON"),
        ('{"id": "3", "title": ""}', "title", "missing or empty"),
        ('{"id": "3"}', "title", "missing or empty"),
        ('{"id": "", "title": "A"}', "id", "missing or empty"),
        ('{"id": "3", "title": "A", "year": "1995"}', "year", "expected an integer"),
        ('{"id": "3", "title": "A", "genres": "Drama"}', "genres", "list of strings"),
        ('{"id": "3", "title": "A", "poster": "x.jpg"}', "poster", "unknown field"),
        ('{"id": "1", "title": "again"}', "id", "duplicate id '1' (first at line 1)"),
        ("[1, 2]", "record", "expected a JSON object"),
    ],
)
def test_read_items_errors_name_file_line_field(tmp_path, line, field, reason):
    path = tmp_path / "items.jsonl"
    path.write_text('{"id": "1", "title": "Ok"}\n' + line + "\n", encoding="utf-8")
    with pytest.raises(CatalogError) as err:
        read_items(path)
    assert (err.value.path, err.value.line, err.value.field) == (str(path), 2, field)
    assert str(err.value).startswith(f"{path}:2: {field}: ")
    assert reason in str(err.value)


def test_integer_ids_are_read_as_strings(tmp_path):
    path = tmp_path / "items.jsonl"
    path.write_text('{"id": 7, "title": "Seven"}\n', encoding="utf-8")
    assert read_items(path) == [Item(id="7", title="Seven")]


def test_interactions_round_trip(tmp_path):
    rows = [Interaction("196", "242", 3.0, 881250949), Interaction("u2", "x-2", 0.5, 0)]
    path = write_interactions(tmp_path / "interactions.csv", rows)
    assert path.read_text(encoding="utf-8").splitlines()[:2] == [
        "user,item,rating,timestamp",
        "196,242,3.0,881250949",
    ]
    assert read_interactions(path) == rows


@pytest.mark.parametrize(
    ("row", "field"),
    [("1,2,five,0", "rating"), ("1,2,3.0,yesterday", "timestamp"), ("1,2,3.0", "row"), (",2,3.0,0", "user")],
)
def test_read_interactions_errors(tmp_path, row, field):
    path = tmp_path / "interactions.csv"
    path.write_text(f"user,item,rating,timestamp\n1,2,4.0,10\n{row}\n", encoding="utf-8")
    with pytest.raises(CatalogError) as err:
        read_interactions(path)
    assert (err.value.line, err.value.field) == (3, field)
    assert str(err.value).startswith(f"{path}:3: {field}: ")


def test_read_interactions_checks_header(tmp_path):
    path = tmp_path / "interactions.csv"
    path.write_text("userId,movieId,rating,timestamp\n", encoding="utf-8")
    with pytest.raises(CatalogError, match=r":1: header: expected user,item,rating,timestamp"):
        read_interactions(path)
