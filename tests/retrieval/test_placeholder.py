"""A placeholder title ("unknown": ML-100k item 267) gets a report line and is never retrieved, while
the prepared catalog keeps the row, so interactions, leave-one-out sets and stored vectors stay."""

from __future__ import annotations

import pytest

from fusionrec.data.cleaning import CleaningReport, RawItem, clean_items, is_placeholder_title
from fusionrec.data.loaders.movielens import find_ml100k, load_ml100k
from tests.conftest import home_config
from tests.retrieval.conftest import DATASET

pytestmark = pytest.mark.real


@pytest.mark.parametrize(
    ("title", "year", "placeholder"),
    [
        ("unknown", None, True),
        ("Unknown", 2011, False),  # a real film (ml-latest-small lists two)
        ("N/A", None, True),
        ("(untitled)", None, True),
        ("???", None, True),
        ("None", None, True),
        ("9", None, False),
        ("Nil by Mouth", None, False),
        ("", None, False),  # missing, not a placeholder: that row is dropped
    ],
)
def test_placeholder_titles(title, year, placeholder):
    assert is_placeholder_title(title, year) is placeholder


def test_clean_items_keeps_the_row_and_reports_it_hidden(tmp_path):
    f = str(tmp_path / "items.csv")
    raw = [RawItem("1", "unknown", f, 2), RawItem("2", "Unknown", f, 3, year=2011), RawItem("3", " ", f, 4)]
    report = CleaningReport("t")
    items = clean_items(raw, report)
    assert [i.id for i in items] == ["1", "2"]
    assert [(i.line, i.item_id, i.reason, i.action) for i in report.issues] == [
        (2, "1", "placeholder title", "hidden"),
        (4, "3", "missing title", "dropped_row"),
    ]
    assert report.to_dict()["counts"]["by_reason"]["placeholder title [hidden]"] == 1


def test_ml100k_item_267_is_reported_once_and_kept_with_its_ratings(offline_cfg, shared_data):
    ds = load_ml100k(*find_ml100k(offline_cfg, download=False), verify_media=False)
    [line] = ds.report.find("placeholder title")
    assert (line.item_id, line.line, line.action, line.detail) == ("267", 267, "hidden", "'unknown'")
    assert "267" in {i.id for i in ds.items} and len(ds.items) == 1682
    assert sum(x.item == "267" for x in ds.interactions) == 9  # leave-one-out inputs unchanged


def test_placeholder_item_is_stored_but_never_retrieved(offline_cfg, catalog, tmp_path):
    from fusionrec.retrieval.ingest import ingest
    from fusionrec.retrieval.search import Retriever

    cfg = home_config(offline_cfg.models_dir, tmp_path / "home", "offline")
    by_id = {i.id: i for i in catalog}
    chosen = [by_id[str(i)] for i in range(260, 275)]
    assert by_id["267"].title == "unknown" and by_id["267"].text  # TMDB gave it another film's overview
    ingest(cfg, DATASET, modalities=["text"], progress=False, catalog=chosen)
    ret = Retriever(cfg)
    for query, filters in [(by_id["267"].text, None), ("unknown", None), ("a film", {"year_max": 2000})]:
        got = [c.item.id for c in ret.retrieve(query, filters=filters, k=len(chosen))]
        assert "267" not in got and len(got) >= 10
    assert ret.item("267").title == "unknown"  # by id (history, evaluation vectors) it is still there
