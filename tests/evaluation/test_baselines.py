"""Baselines on the real interactions; retrieval fusion and the ablations on hand-made vectors."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest

from fusionrec.evaluation import baselines as B
from fusionrec.evaluation import protocols as P
from fusionrec.evaluation.metrics import example_metrics
from fusionrec.evaluation.vectors import VectorTable
from fusionrec.retrieval.collaborative.bpr import train_bpr
from tests.conftest import make_config


def test_order_by_keeps_given_order_on_ties():
    assert B.order_by(["a", "b", "c", "d"], [1, 3, 1, 3]) == ["b", "d", "a", "c"]


def test_random_is_a_seeded_permutation():
    cands = [str(i) for i in range(20)]
    r = B.RandomRanker(seed=0)
    a = r.rank("user:1", cands)
    assert sorted(a) == sorted(cands) and a != cands
    assert a == B.RandomRanker(seed=0).rank("user:1", cands)
    assert a != r.rank("user:2", cands) and a != B.RandomRanker(seed=1).rank("user:1", cands)


def test_popularity_counts_training_interactions():
    from fusionrec.types import Interaction

    train = [Interaction("u", i, 5.0, 0) for i in ["b", "b", "c", "b", "c", "a"]]
    pop = B.PopularityRanker.from_interactions(train)
    assert pop.rank("k", ["a", "c", "x", "b"]) == ["b", "c", "a", "x"]


@pytest.fixture(scope="module")
def split(data_cfg, ml100k):
    items, interactions = ml100k
    ids = [i.id for i in items]
    examples = P.build_loo(interactions, ids, "test", seed=0)
    train = P.train_interactions(interactions, P.heldout_pairs(data_cfg, ids, interactions, "test"))
    return ids, examples, train


def _hr10(ranker, examples, **kw):
    hits = []
    for e in examples:
        order = ranker.rank(e.key, e.candidates, e.history, **({"user": e.user} if kw.get("user") else {}))
        hits.append(example_metrics(order, e.target)["hr@10"])
    return float(np.mean(hits))


def test_bpr_learns_and_is_deterministic(split):
    ids, examples, train = split
    model = train_bpr(train, ids, dim=16, epochs=6, seed=0)
    assert model.history[-1]["loss"] < model.history[0]["loss"]
    again = train_bpr(train, ids, dim=16, epochs=6, seed=0)
    assert np.array_equal(model.item_factors, again.item_factors)
    assert not np.array_equal(
        model.item_factors, train_bpr(train, ids, dim=16, epochs=6, seed=1).item_factors
    )
    bpr = _hr10(B.BPRRanker(model), examples, user=True)
    rnd = _hr10(B.RandomRanker(0), examples)
    assert rnd == pytest.approx(0.5, abs=0.06)  # 10 of 20 candidates
    assert bpr > rnd + 0.15
    # item-to-item scores (ReDial: no user, only the items mentioned): the user's own history ranks
    # the held-out item higher than another user's history does, and higher than popularity alone
    own = _hr10(B.BPRRanker(model), examples)
    shifted = [replace(e, history=examples[i - 1].history) for i, e in enumerate(examples)]
    other = _hr10(B.BPRRanker(model), shifted)
    bias_only = _hr10(B.BPRRanker(model), [replace(e, history=[]) for e in examples])
    assert own > other + 0.03 and own > bias_only + 0.02, (own, other, bias_only)


def _table() -> VectorTable:
    """Six items in four modalities: 'h1','h2' history; 'txt' matches in text, 'pic' in image,
    'snd' in audio, 'vid' in video; 'none' matches nowhere."""
    rng = np.random.default_rng(0)
    dims = {"text": 8, "image": 6, "image_text": 8, "audio": 4, "video": 6}
    user = {b: rng.normal(size=d) for b, d in dims.items()}
    vectors: dict[str, dict[str, np.ndarray]] = {b: {} for b in dims}

    def unit(v):
        return (v / np.linalg.norm(v)).astype(np.float32)

    for b, d in dims.items():
        for h in ("h1", "h2"):
            vectors[b][h] = unit(user[b] + 0.1 * rng.normal(size=d))
        for item in ("txt", "pic", "snd", "vid", "none"):
            vectors[b][item] = unit(rng.normal(size=d) - 0.5 * user[b])  # unlike the user
    vectors["text"]["txt"] = unit(user["text"])
    vectors["image"]["pic"] = unit(user["image"])
    vectors["image_text"]["pic"] = unit(user["image_text"])
    vectors["audio"]["snd"] = unit(user["audio"])
    vectors["video"]["vid"] = unit(user["video"])
    del vectors["audio"]["none"]  # an item without audio
    return VectorTable(vectors, dims, "hand-made")


CANDS = ["none", "snd", "vid", "pic", "txt"]
WEIGHTS = {"text": 1.0, "image": 1.0, "audio": 1.0, "video": 1.0}


def test_retrieval_fusion_follows_the_modalities_used(tmp_path):
    table = _table()
    hist = ["h1", "h2"]
    rank = {
        mods: B.RetrievalRanker(table, mods, "early", WEIGHTS).rank("k", CANDS, hist)
        for mods in [("text",), ("image",), ("audio",), ("video",)]
    }
    assert rank[("text",)][0] == "txt"
    assert rank[("image",)][0] == "pic"
    assert rank[("audio",)][0] == "snd"
    assert rank[("video",)][0] == "vid"
    weighted = B.RetrievalRanker(table, ("text", "audio"), "late", WEIGHTS, "weighted").rank("k", CANDS, hist)
    assert set(weighted[:2]) == {"txt", "snd"}
    rrf = B.RetrievalRanker(table, ("text", "audio"), "late", WEIGHTS, "rrf").scores(hist, CANDS)
    for c, s in zip(
        CANDS, rrf, strict=True
    ):  # sum over blocks of 1 / (60 + rank), items without audio skip it
        expect = 0.0
        for b in ("text", "audio"):
            have = [x for x in CANDS if table.get(b, x) is not None]
            if c in have:
                order = sorted(have, key=lambda x: -float(table.get(b, x) @ table.profile(b, hist)))
                expect += 1 / (60 + order.index(c) + 1)
        assert s == pytest.approx(expect)
    cross, trained = B.load_cross(make_config("tiny", home=tmp_path), table)
    assert not trained
    scores = B.RetrievalRanker(table, ("text", "audio"), "cross", WEIGHTS, cross=cross).scores(hist, CANDS)
    # untrained cross-modal attention = equal weights over the blocks each item has (text, audio)
    prof = {b: table.profile(b, hist) for b in ("text", "audio")}
    for c, s in zip(CANDS, scores, strict=True):
        sims = [float(table.get(b, c) @ prof[b]) for b in ("text", "audio") if table.get(b, c) is not None]
        assert s == pytest.approx(np.mean(sims), abs=1e-5)


def test_retrieval_ablations_and_contribution_on_four_modalities(tmp_path):
    from fusionrec.evaluation.ablations import retrieval_ablations

    table = _table()
    examples = [
        P.LOOExample("u1", "snd", ["h1", "h2"], CANDS),
        P.LOOExample("u2", "txt", ["h1", "h2"], CANDS),
    ]
    cfg = make_config("tiny", home=tmp_path, overrides=["eval.bootstrap=50", "retrieval.fusion=early"])
    cfg.retrieval.weights = WEIGHTS
    run = SimpleNamespace(cfg=cfg, ecfg=cfg.eval, table=table, examples=examples, bar=lambda xs, desc: xs)
    out = retrieval_ablations(run)
    rows = {(r["fusion"], r["modalities"]): r for r in out["rows"]}
    assert len(rows) == 15 and all(r["available"] for r in rows.values())
    assert out["available_modalities"] == ["text", "image", "audio", "video"]
    # text only finds 'txt' (user 2) but not 'snd' (user 1); adding audio finds 'snd' earlier
    assert (
        rows[("early", "text")]["metrics"]["mrr"]["mean"]
        < rows[("early", "text+audio")]["metrics"]["mrr"]["mean"]
    )
    contrib = out["contribution"]["dropped"]
    assert set(contrib) == {"text", "image", "audio", "video"}
    # the full early ranking is pic, snd, vid, none, txt; dropping a modality sends the item that
    # matches only there to the bottom: text swaps only vid/none (1 of 10 pairs discordant), audio
    # and video each flip 4 pairs, image moves pic from first to last and lifts txt (5 of 10 flipped)
    taus = {m: d["kendall_tau"]["mean"] for m, d in contrib.items()}
    assert taus == pytest.approx({"text": 0.8, "image": 0.0, "audio": 0.2, "video": 0.2})
    assert contrib["image"]["changed_top1"] == 1.0 and contrib["text"]["changed_top1"] == 0.0
    # without image, snd (user 1's target) comes first: hr@1 0 -> 1 for one of the two users
    assert contrib["image"]["delta_hr@1"]["mean"] == pytest.approx(0.5)
    assert contrib["audio"]["delta_hr@1"]["mean"] == 0.0


def test_missing_modality_is_reported_not_faked(tmp_path):
    from fusionrec.evaluation.ablations import retrieval_ablations

    table = _table()
    for b in ("audio", "video"):
        del table.vectors[b]
    examples = [P.LOOExample("u1", "txt", ["h1", "h2"], CANDS)]
    cfg = make_config("tiny", home=tmp_path, overrides=["eval.bootstrap=0"])
    run = SimpleNamespace(cfg=cfg, ecfg=cfg.eval, table=table, examples=examples, bar=lambda xs, desc: xs)
    out = retrieval_ablations(run)
    missing = [r for r in out["rows"] if not r["available"]]
    assert {r["modalities"] for r in missing} == {"text+audio", "text+video"}
    assert all("no audio" in r["reason"] or "no video" in r["reason"] for r in missing)
    assert not any(r["modalities"].startswith("all") for r in out["rows"])  # "all" = text+image, not repeated
    assert sum(r["modalities"] == "text+image" for r in out["rows"]) == 3
