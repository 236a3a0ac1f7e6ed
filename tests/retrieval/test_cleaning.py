"""Row validation: every dropped row or field lands in the report with file, line and reason."""

from __future__ import annotations

import json
import math
import wave
from pathlib import Path

import pytest

from fusionrec.data.cleaning import (
    CleaningReport,
    RawItem,
    check_media,
    clean_interactions,
    clean_items,
    parse_year,
    split_list,
)


@pytest.fixture(scope="module")
def poster(shared_data: Path) -> Path:
    return shared_data / "movielens-100k-posters" / "posters" / "1.jpg"


@pytest.mark.parametrize(
    ("value", "year"),
    [(1995, 1995), ("1995", 1995), (" 1995.0 ", 1995), (1995.0, 1995), ("", None), (None, None)],
)
def test_parse_year_accepts(value, year):
    assert parse_year(value) == year


@pytest.mark.parametrize("value", ["19x5", "1995.5", 1995.5, "95 AD", 12, 3021, True, "-1995"])
def test_parse_year_rejects(value):
    with pytest.raises(ValueError):
        parse_year(value)


def test_split_list():
    assert split_list("Drama| Comedy ||drama") == ["Drama", "Comedy"]
    assert split_list(["a", " ", "b"]) == ["a", "b"]
    assert split_list(None) == []


def test_check_media_real_and_broken_images(tmp_path, poster):
    assert check_media(poster, "image") == ("", "")
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(poster.read_bytes()[:600])
    assert check_media(truncated, "image")[0] == "corrupt image"
    garbage = tmp_path / "garbage.jpg"
    garbage.write_bytes(b"this is not a picture")
    reason, detail = check_media(garbage, "image")
    assert reason == "corrupt image" and str(garbage) in detail
    assert check_media(tmp_path / "missing.jpg", "image")[0] == "file not found"
    empty = tmp_path / "empty.png"
    empty.touch()
    assert check_media(empty, "image")[0] == "empty file"


def test_check_media_audio_video_signatures(tmp_path):
    wav = tmp_path / "tone.wav"
    with wave.open(str(wav), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\x00\x00" * 800)
    assert check_media(wav, "audio") == ("", "")
    text = tmp_path / "notes.mp3"
    text.write_text("hello", encoding="utf-8")
    assert check_media(text, "audio")[0] == "unrecognised audio file"
    mp4 = tmp_path / "clip.mp4"
    mp4.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 32)
    assert check_media(mp4, "video") == ("", "")


def test_clean_items_reports_each_problem(tmp_path, poster):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    f = str(tmp_path / "src.csv")
    raw = [
        RawItem("1", "Good", f, 2, year="1995", genres="Drama|Comedy", media={"image": str(poster)}),
        RawItem("2", "  ", f, 3),
        RawItem("1", "Second copy", f, 4),
        RawItem("3", "Broken poster", f, 5, media={"image": str(broken)}),
        RawItem("4", "Bad year", f, 6, year="19x5"),
        RawItem("", "No id", f, 7),
        RawItem("5", "Remote", f, 8, media={"image": "https://example.org/a.jpg", "smell": "x"}),
    ]
    report = CleaningReport("t")
    items = clean_items(raw, report)
    assert [i.id for i in items] == ["1", "3", "4", "5"]
    assert (
        items[0].year == 1995
        and items[0].genres == ["Drama", "Comedy"]
        and items[0].media == {"image": str(poster)}
    )
    assert items[1].media == {} and items[2].year is None
    got = {(i.line, i.item_id, i.field, i.reason, i.action) for i in report.issues}
    assert got == {
        (3, "2", "title", "missing title", "dropped_row"),
        (4, "1", "id", "duplicate id", "deduplicated"),
        (5, "3", "image", "corrupt image", "dropped_field"),
        (6, "4", "year", "bad year", "dropped_field"),
        (7, "", "id", "missing id", "dropped_row"),
        (8, "5", "image", "remote media", "dropped_field"),
        (8, "5", "smell", "unknown media kind", "dropped_field"),
    }
    assert all(i.file == f for i in report.issues)
    assert report.find("duplicate id")[0].detail == "first at src.csv:2"


def test_clean_interactions(tmp_path):
    report = CleaningReport("t")
    rows = [
        ("u1", "1", "4", "100", 2),
        ("u1", "1", "four", "101", 3),
        ("u2", "99", "3", "102", 4),
        ("u3", "1", "nan", "103", 5),
        ("", "1", "3", "104", 6),
        ("u4", "1", "2.5", "soon", 7),
    ]
    out = clean_interactions(rows, {"1"}, "ratings.csv", report)
    assert [(x.user, x.rating, x.timestamp) for x in out] == [("u1", 4.0, 100), ("u4", 2.5, 0)]
    assert [(i.line, i.reason, i.action) for i in report.issues] == [
        (3, "non-numeric rating", "dropped_row"),
        (4, "unknown item", "dropped_row"),
        (5, "non-numeric rating", "dropped_row"),
        (6, "missing user", "dropped_row"),
        (7, "bad timestamp", "dropped_field"),
    ]
    assert not any(math.isnan(x.rating) for x in out)


def test_report_counts_and_json(tmp_path):
    report = CleaningReport("t", stats={"items": 2})
    report.add("a.csv", 3, "1", "title", "missing title", "dropped_row")
    report.add("a.csv", 4, "1", "title", "missing title", "dropped_row")
    report.add("a.csv", 5, "2", "id", "duplicate id", "deduplicated")
    with pytest.raises(ValueError, match="unknown action"):
        report.add("a.csv", 6, "2", "id", "x", "ignored")
    d = json.loads(report.dumps())
    assert d["counts"] == {
        "by_action": {"dropped_row": 2, "deduplicated": 1},
        "by_reason": {"missing title [dropped_row]": 2, "duplicate id [deduplicated]": 1},
        "total": 3,
    }
    assert d["issues"][0] == {
        "file": "a.csv",
        "line": 3,
        "item_id": "1",
        "field": "title",
        "reason": "missing title",
        "action": "dropped_row",
        "detail": "",
    }
    assert CleaningReport.from_dict(d).issues == report.issues
