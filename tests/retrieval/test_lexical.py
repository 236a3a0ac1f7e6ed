"""The request's words re-score a search's pool (`retrieval.lexical`, ``retrieval.lexical_weight``).

A real embedded Chroma store around the tiny text encoder's query vector: by text cosine a (0.9) leads
and b (0.5) trails, but only b's overview holds the request's rare words.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fusionrec import encoders
from fusionrec.config import Config
from fusionrec.retrieval.lexical import Lexicon, hybrid
from fusionrec.retrieval.search import Retriever
from fusionrec.types import Item
from tests.conftest import home_config
from tests.retrieval.test_block_votes import FUSIONS, at_cosine, fill

QUERY = "the lighthouse keeper from Pennsylvania"
OVERVIEWS = {
    "a": "Two brothers drive across the country after their father's funeral.",
    "b": "A lonely lighthouse keeper on the coast of Pennsylvania finds a stranger.",
    "c": "A keeper of secrets returns home.",
}


@pytest.fixture()
def words_home(tiny_cfg: Config, tmp_path: Path) -> Path:
    home = tmp_path / "home"
    cfg = home_config(tiny_cfg.models_dir, home, "tiny")
    text = encoders.load_text_encoder(cfg)
    q = text.encode([QUERY])[0]
    rng = np.random.default_rng(0)
    cosines = {"a": 0.9, "b": 0.5, "c": 0.45, "d": 0.4, "e": 0.3, "f": 0.2, "g": 0.1}
    vectors = {rid: {"text": at_cosine(q, cos, rng)} for rid, cos in cosines.items()}
    fill(cfg, {"text": int(q.shape[0])}, {"text": str(text.model_id)}, vectors, OVERVIEWS)
    return home


def retriever(tiny_cfg: Config, home: Path, overrides: list[str]) -> Retriever:
    return Retriever(home_config(tiny_cfg.models_dir, home, "tiny", overrides))


@pytest.mark.parametrize("fusion", list(FUSIONS))
def test_the_item_that_shares_the_rare_words_comes_first(tiny_cfg, words_home, fusion):
    got = retriever(tiny_cfg, words_home, FUSIONS[fusion]).retrieve(QUERY, k=7)
    assert got[0].item.id == "b"
    lexical = {c.item.id: c.modality_scores["lexical"] for c in got}
    assert lexical["b"] > lexical["c"] > 0 == lexical["a"]  # b shares two rare words, c one common one


@pytest.mark.parametrize("fusion", list(FUSIONS))
def test_weight_zero_is_the_dense_order(tiny_cfg, words_home, fusion):
    """The control: without the word match, the text cosines decide (so the test above can fail)."""
    got = retriever(tiny_cfg, words_home, [*FUSIONS[fusion], "retrieval.lexical_weight=0"]).retrieve(QUERY, k=3)
    assert [c.item.id for c in got] == ["a", "b", "c"]
    assert all("lexical" not in c.modality_scores for c in got)


def test_excluded_and_filtered_items_stay_out(tiny_cfg, words_home):
    ret = retriever(tiny_cfg, words_home, FUSIONS["early"])
    got = ret.retrieve(QUERY, exclude_ids=["b"], k=7)
    assert "b" not in {c.item.id for c in got} and len(got) == 6
    assert [c.item.id for c in ret.retrieve(QUERY, filters={"year_min": 2000}, k=7)] == []


def test_lexicon_scores_and_hybrid():
    items = [Item("x", "Fargo", 1996, [], "A pregnant police chief in Minnesota."), Item("y", "Heat", 1995, [], "A thief.")]
    lex = Lexicon([f"{i.title} {i.text}" for i in items])
    got = lex.scores("the police chief in Minnesota", items)
    assert got[0] > 0 == got[1]
    assert not lex.scores("nothing known here", items).any()
    fused = {"p": 3.0, "q": 2.0, "r": 1.0}
    assert hybrid(fused, {}, 5.0) == hybrid(fused, {"p": 0.2, "q": 0.2, "r": 0.2}, 5.0)  # a constant column: no vote
    assert max(hybrid(fused, {"r": 0.9}, 5.0).items(), key=lambda kv: kv[1])[0] == "r"
    assert max(hybrid(fused, {"r": 0.9}, 0.0).items(), key=lambda kv: kv[1])[0] == "p"
