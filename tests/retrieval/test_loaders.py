"""Loaders on the real data (ML-100k, ml-latest-small, ReDial) and on users' own CSV/JSONL catalogs."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from fusionrec.config import Config
from fusionrec.data.catalog import CatalogError
from fusionrec.data.loaders import DataSourceError, TitleIndex, display_title, split_title_year, title_keys
from fusionrec.data.loaders.download import fetch
from fusionrec.data.loaders.generic import dataset_name, load_generic
from fusionrec.data.loaders.movielens import find_ml100k, find_ml_latest, load_ml100k, load_ml_latest
from fusionrec.data.loaders.redial import SPLITS, find_redial, load_redial
from tests.conftest import make_config


@pytest.fixture(scope="module")
def cfg(shared_data: Path, tmp_path_factory) -> Config:
    return make_config(
        "tiny", home=tmp_path_factory.mktemp("home"), overrides=[f"paths.shared_data={shared_data}"]
    )


@pytest.fixture(scope="module")
def ml100k(cfg):
    t0 = time.perf_counter()
    ds = load_ml100k(*find_ml100k(cfg))
    ds.seconds = time.perf_counter() - t0
    return ds


@pytest.fixture(scope="module")
def latest(cfg):
    return load_ml_latest(*find_ml_latest(cfg))


@pytest.fixture(scope="module")
def redial(cfg, ml100k, latest):
    return load_redial(find_redial(cfg), ml100k.items, latest.items)


# --- titles ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "title", "year"),
    [
        ("Toy Story (1995)", "Toy Story", 1995),
        ("Usual Suspects, The (1995)", "Usual Suspects, The", 1995),
        (
            "Land Before Time III: The Time of the Great Giving (1995) (V)",
            "Land Before Time III: The Time of the Great Giving (V)",
            1995,
        ),
        ("Death Note: Desu nôto (2006–2007)", "Death Note: Desu nôto", 2006),
        ("Police Academy  (1984)", "Police Academy", 1984),
        ("Babylon 5", "Babylon 5", None),
        ("unknown", "unknown", None),
    ],
)
def test_split_title_year(raw, title, year):
    assert split_title_year(raw) == (title, year)


def test_display_title_and_keys():
    assert display_title("Usual Suspects, The") == "The Usual Suspects"
    assert display_title("Misérables, Les") == "Les Misérables"
    assert display_title("City of Lost Children, The (Cité des enfants perdus, La)") == (
        "The City of Lost Children (Cité des enfants perdus, La)"
    )
    assert title_keys("City of Lost Children, The (Cité des enfants perdus, La) (1995)") == [
        "the city of lost children",
        "la cite des enfants perdus",
    ]
    assert title_keys("Dumb & Dumber (1994)") == title_keys("dumb and  dumber")


# --- ML-100k -----------------------------------------------------------------------------
def test_ml100k_counts_and_speed(ml100k):
    assert len(ml100k.items) == 1682
    assert len(ml100k.interactions) == 100_000
    assert len({x.user for x in ml100k.interactions}) == 943
    assert {i.id for i in ml100k.items} == {str(n) for n in range(1, 1683)}
    assert sum("image" in i.media for i in ml100k.items) == 1663
    assert sum(bool(i.text) for i in ml100k.items) >= 1650
    assert ml100k.seconds < 5, f"loading ML-100k took {ml100k.seconds:.1f} s"


def test_ml100k_item_fields(ml100k):
    by_id = {i.id: i for i in ml100k.items}
    toy = by_id["1"]
    assert (toy.title, toy.year, toy.genres) == ("Toy Story", 1995, ["Animation", "Children's", "Comedy"])
    assert toy.text.startswith("Led by Woody")
    assert Path(toy.media["image"]).is_absolute() and Path(toy.media["image"]).is_file()
    assert toy.metadata["imdb_id"] == "tt0114709" and toy.metadata["tmdb_id"] == "862"
    assert toy.metadata["original_language"] == "en" and toy.metadata["runtime"] == 81
    assert toy.metadata["vote_average"] == pytest.approx(7.9)
    assert toy.metadata["release_date"] == "1995-01-01"
    suspects = next(i for i in ml100k.items if i.title == "Usual Suspects, The")
    assert suspects.metadata["display_title"] == "The Usual Suspects"


def test_ml100k_latin1_titles_decoded(ml100k):
    by_id = {i.id: i for i in ml100k.items}
    assert by_id["543"].title == "Misérables, Les"
    assert by_id["543"].metadata["display_title"] == "Les Misérables"
    assert by_id["1104"].title == "C'est arrivé près de chez vous"
    assert not any("\ufffd" in i.title or "Ã" in i.title for i in ml100k.items)


def test_ml100k_report(ml100k):
    report = ml100k.report
    dups = report.find("duplicate id", "deduplicated")
    assert len(dups) == 1746 - 1682
    assert all(Path(d.file).name == "items.csv" and d.line > 1 for d in dups)
    assert {d.item_id for d in dups} >= {"56", "72"}
    placeholder = report.find("placeholder title")
    assert [(p.item_id, p.line, Path(p.file).name) for p in placeholder] == [("267", 267, "u.item")]
    assert ml100k.report.stats["items_with_image"] == 1663


# --- ml-latest-small ---------------------------------------------------------------------
def test_ml_latest_counts(latest):
    assert len(latest.items) == 9742
    assert len(latest.interactions) == 100_836
    assert len({x.user for x in latest.interactions}) == 610
    assert latest.report.issues == []
    assert latest.report.stats["items_with_youtube_id"] == 8678


def test_ml_latest_fields(latest):
    by_id = {i.id: i for i in latest.items}
    toy = by_id["1"]
    assert (toy.title, toy.year) == ("Toy Story", 1995)
    assert toy.genres == ["Adventure", "Animation", "Children", "Comedy", "Fantasy"]
    assert "pixar" in toy.tags and toy.metadata["youtube_id"] == "K26_sDKnvMU"
    assert toy.metadata["imdb_id"] == "tt0114709"
    assert any(i.genres == [] for i in latest.items)  # "(no genres listed)"
    assert not any("(no genres listed)" in i.genres for i in latest.items)
    assert {x.rating for x in latest.interactions} >= {0.5, 5.0}


# --- ReDial ------------------------------------------------------------------------------
def test_redial_splits_are_the_official_files(redial):
    ids = {s: {d["conversation_id"] for d in redial.dialogues[s]} for s in SPLITS}
    assert {s: len(v) for s, v in ids.items()} == {"train": 500, "valid": 100, "test": 1342}
    assert not (ids["train"] & ids["valid"] or ids["train"] & ids["test"] or ids["valid"] & ids["test"])
    assert all(d["split"] == s for s in SPLITS for d in redial.dialogues[s])


def test_redial_messages(redial):
    first = next(d for d in redial.dialogues["test"] if d["conversation_id"] == "20001")
    msg = first["messages"][0]
    assert msg["role"] == "seeker" and msg["raw_text"] == "Hi I am looking for a movie like @111776"
    assert msg["text"] == "Hi I am looking for a movie like Super Troopers (2001)"
    assert msg["movie_ids"] == ["111776"]
    assert first["messages"][1]["role"] == "recommender"
    assert first["movies"]["111776"]["seeker"] == {"suggested": 0, "seen": 1, "liked": 1}
    all_msgs = [m for s in SPLITS for d in redial.dialogues[s] for m in d["messages"]]
    assert len(all_msgs) == 23_952 + 9_095 + 1_872
    assert not any(re.search(r"@\d+", m["text"]) for m in all_msgs)
    assert {m["role"] for m in all_msgs} == {"seeker", "recommender"}


def test_redial_matches_ml100k(redial, ml100k):
    stats = redial.report.stats
    assert stats["mentioned_movies"] > 2007  # 2,007 in the test split alone
    assert 0.05 < stats["ml100k_match_rate_mentioned_movies"] < 0.5
    ml_title = {i.id: (i.title, i.year) for i in ml100k.items}
    fargo = next(i for i in redial.items if i.metadata["redial_name"] == "Fargo (1996)")
    assert ml_title[fargo.metadata["ml_item_id"]] == ("Fargo", 1996)
    assert fargo.genres and fargo.text  # enriched from the ML-100k item
    wizard = next(i for i in redial.items if i.metadata["redial_name"] == "The Wizard of Oz (1939)")
    assert ml_title[wizard.metadata["ml_item_id"]] == ("Wizard of Oz, The", 1939)
    assert all(
        set(r.keys()) >= {"seeker", "recommender"}
        for d in redial.dialogues["test"]
        for r in d["movies"].values()
    )
    assert {x.rating for x in redial.interactions} == {0.0, 1.0}


def test_title_index_prefers_exact_year():
    from fusionrec.types import Item

    idx = TitleIndex([Item("1", "Heat", 1995), Item("2", "Heat", 1986), Item("3", "Cure, The", 1995)])
    assert idx.match("Heat (1995)") == ("1", "exact")
    assert idx.match("Heat (1987)") == ("2", "year+-1")
    assert idx.match("Heat") == (None, "ambiguous")
    assert idx.match("The Cure (1995)") == ("3", "exact")
    assert idx.match("Nothing (1995)") == (None, "none")


# --- users' own catalogs -----------------------------------------------------------------
def _write_bad_csv(folder: Path, poster: Path) -> Path:
    (folder / "img").mkdir()
    (folder / "img" / "good.jpg").write_bytes(poster.read_bytes())
    (folder / "img" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated garbage")
    path = folder / "my films.csv"
    path.write_text(
        "id,title,year,genres,overview,image,director\n"
        "a1,First Film,1999,Drama|Comedy,A story.,img/good.jpg,Someone\n"
        "a2,,2001,Drama,No title here,,\n"
        "a1,Duplicate Film,2002,,,,\n"
        "a3,Broken Poster,2003,,,img/broken.jpg,\n"
        "a4,Bad Year,19x5,,,,\n"
        '"a5","Multi\nline title",2005,,,,\n'
        "a6,Short row\n",
        encoding="utf-8",
    )
    return path


def test_generic_csv_bad_rows(tmp_path, shared_data):
    poster = shared_data / "movielens-100k-posters" / "posters" / "1.jpg"
    path = _write_bad_csv(tmp_path, poster)
    ds = load_generic(path)
    assert ds.name == "my_films" == dataset_name(path)
    assert dataset_name("elsewhere/redial.csv") == "redial_catalog"  # never clobbers a builtin dataset
    by_id = {i.id: i for i in ds.items}
    assert list(by_id) == ["a1", "a3", "a4", "a5"]
    a1 = by_id["a1"]
    assert (a1.title, a1.year, a1.genres, a1.text) == ("First Film", 1999, ["Drama", "Comedy"], "A story.")
    assert a1.media == {"image": str(tmp_path / "img" / "good.jpg")} and a1.metadata == {
        "director": "Someone"
    }
    assert by_id["a3"].media == {} and by_id["a4"].year is None
    got = {(i.line, i.item_id, i.field, i.reason, i.action) for i in ds.report.issues}
    assert got == {
        (3, "a2", "title", "missing title", "dropped_row"),
        (4, "a1", "id", "duplicate id", "deduplicated"),
        (5, "a3", "image", "corrupt image", "dropped_field"),
        (6, "a4", "year", "bad year", "dropped_field"),
        (9, "a6", "row", "wrong column count", "dropped_row"),
    }
    assert all(i.file == str(path) for i in ds.report.issues)


def test_generic_jsonl(tmp_path, shared_data):
    poster = shared_data / "movielens-100k-posters" / "posters" / "50.jpg"
    (tmp_path / "p.jpg").write_bytes(poster.read_bytes())
    path = tmp_path / "cat.jsonl"
    rows = [
        {
            "id": 1,
            "title": "Star Wars",
            "year": 1977,
            "genres": ["Sci-Fi"],
            "description": "Space.",
            "image": "p.jpg",
            "studio": "Lucasfilm",
        },
        "not json {",
        {
            "id": "2",
            "title": "Tags",
            "tags": "space|opera",
            "metadata": {"k": 1},
            "media": {"audio": "missing.wav"},
        },
        [1, 2],
    ]
    path.write_text(
        "\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n", encoding="utf-8"
    )
    (tmp_path / "cat.interactions.csv").write_text(
        "user,item,rating,timestamp\nu1,1,5,10\nu1,2,x,11\nu2,9,3,12\n", encoding="utf-8"
    )
    ds = load_generic(path)
    one, two = ds.items
    assert (one.id, one.text, one.media["image"], one.metadata) == (
        "1",
        "Space.",
        str(tmp_path / "p.jpg"),
        {"studio": "Lucasfilm"},
    )
    assert two.tags == ["space", "opera"] and two.media == {} and two.metadata == {"k": 1}
    got = [(i.line, i.reason, Path(i.file).name) for i in ds.report.issues]
    assert got == [
        (2, "invalid JSON", "cat.jsonl"),
        (4, "not a JSON object", "cat.jsonl"),
        (3, "file not found", "cat.jsonl"),
        (3, "non-numeric rating", "cat.interactions.csv"),
        (4, "unknown item", "cat.interactions.csv"),
    ]
    assert [(x.user, x.item, x.rating) for x in ds.interactions] == [("u1", "1", 5.0)]


def test_generic_structural_errors(tmp_path):
    no_title = tmp_path / "a.csv"
    no_title.write_text("id,name\n1,x\n", encoding="utf-8")
    with pytest.raises(CatalogError, match=r"a\.csv:1: header: missing column 'title'"):
        load_generic(no_title)
    with pytest.raises(DataSourceError, match="catalog file not found"):
        load_generic(tmp_path / "nope.csv")


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_a_non_utf8_row_is_dropped_and_reported(tmp_path, suffix):
    """One latin-1 byte drops that row (reported with file and line), not the whole catalog."""
    path = tmp_path / f"b{suffix}"
    rows = ["1,ok", "2,Mis\xe9rables", "3,fine"]
    if suffix == ".jsonl":
        rows = [json.dumps({"id": r[0], "title": r[2:]}, ensure_ascii=False) for r in rows]
    head = "id,title\n" if suffix == ".csv" else ""
    path.write_bytes((head + "\n".join(rows) + "\n").encode("latin-1"))
    ds = load_generic(path)
    assert [i.id for i in ds.items] == ["1", "3"]
    (issue,) = ds.report.find(reason="not UTF-8")
    assert (Path(issue.file).name, issue.line, issue.action) == (
        path.name,
        2 + (suffix == ".csv"),
        "dropped_row",
    )
    assert "0xe9" in issue.detail


# --- sources -----------------------------------------------------------------------------
def test_missing_source_is_explained(tmp_path, cfg, monkeypatch):
    with pytest.raises(
        DataSourceError, match=r"no u\.item there nor in its movielens-100k/ or ml-100k/ folder"
    ):
        find_ml100k(cfg, source=str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataSourceError) as err:
        fetch("movielens-100k", tmp_path / "raw", [tmp_path / "movielens-100k"])
    msg = str(err.value)
    assert "no local copy of movielens-100k found" in msg and "Offline mode" in msg and "--source" in msg
    assert not (tmp_path / "raw").exists()


def test_source_can_be_the_dataset_folder_itself(cfg, shared_data):
    folder, posters = find_ml100k(cfg, source=str(shared_data / "movielens-100k"))
    assert folder == (shared_data / "movielens-100k").resolve()
    assert posters == (shared_data / "movielens-100k-posters").resolve()
    assert find_redial(cfg, source=str(shared_data)) == (shared_data / "redial").resolve()
