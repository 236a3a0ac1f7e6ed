"""Each metric against hand-computed cases."""

from __future__ import annotations

import math

import pytest

from fusionrec.evaluation import metrics as M

CANDS = [f"i{k}" for k in range(1, 21)]  # 20 candidates, ranked in this order


def test_target_at_rank_3_of_20():
    m = M.example_metrics(CANDS, "i3")
    assert m["hr@1"] == 0.0
    assert m["hr@5"] == 1.0
    assert m["hr@10"] == 1.0
    assert m["ndcg@5"] == pytest.approx(1 / math.log2(4))  # = 0.5
    assert m["ndcg@10"] == pytest.approx(0.5)
    assert m["mrr"] == pytest.approx(1 / 3)


def test_target_first_last_and_missing():
    first = M.example_metrics(CANDS, "i1")
    assert first == {"hr@1": 1.0, "hr@5": 1.0, "hr@10": 1.0, "ndcg@5": 1.0, "ndcg@10": 1.0, "mrr": 1.0}
    last = M.example_metrics(CANDS, "i20")
    assert last["hr@10"] == 0.0 and last["ndcg@10"] == 0.0
    assert last["mrr"] == pytest.approx(1 / 20)
    at7 = M.example_metrics(CANDS, "i7")
    assert at7["hr@5"] == 0.0 and at7["ndcg@5"] == 0.0
    assert at7["ndcg@10"] == pytest.approx(1 / math.log2(8))  # = 1/3
    missing = M.example_metrics(CANDS, "nope")
    assert set(missing.values()) == {0.0}
    assert M.rank_of(CANDS, "i12") == 12 and M.rank_of(CANDS, "x") is None


def test_kendall_tau():
    a = ["a", "b", "c", "d"]
    assert M.kendall_tau(a, a) == 1.0
    assert M.kendall_tau(a, a[::-1]) == -1.0
    assert M.kendall_tau(["a", "b", "c"], ["b", "a", "c"]) == pytest.approx(
        1 / 3
    )  # 2 concordant, 1 discordant


def test_bootstrap_interval_is_seeded_and_sane():
    values = [1.0] * 30 + [0.0] * 70
    lo, hi = M.bootstrap_ci(values, 500, seed=3)
    assert (lo, hi) == M.bootstrap_ci(values, 500, seed=3)  # same seed, same interval
    assert (lo, hi) != M.bootstrap_ci(values, 500, seed=4)
    assert lo < 0.3 < hi
    assert lo > 0.19 and hi < 0.41  # about mean +- 1.96 * sqrt(.21/100) = [0.21, 0.39]
    est = M.aggregate([0.5] * 10, 200, 0)
    assert (est.mean, est.lo, est.hi, est.n) == (0.5, 0.5, 0.5, 10)  # no spread, no interval
    assert M.bootstrap_ci([], 100) == (0.0, 0.0)
    assert M.aggregate([1.0, 0.0], 0).lo == 0.5  # resamples=0: no interval


def test_aggregate_metrics_and_ratio_and_latency():
    per = [M.example_metrics(CANDS, t) for t in ("i1", "i3", "i30")]
    agg = M.aggregate_metrics(per, 100, 0)
    assert agg["hr@1"]["mean"] == pytest.approx(1 / 3)
    assert agg["mrr"]["mean"] == pytest.approx((1 + 1 / 3 + 0) / 3)
    assert agg["hr@5"]["n"] == 3
    assert M.ratio([True, False, True, True]) == 0.75
    assert M.ratio([]) == 0.0
    lat = M.latency_summary([0.1, 0.2, 0.3, 0.4])
    assert lat["mean_s"] == pytest.approx(0.25) and lat["total_s"] == pytest.approx(1.0)
    assert lat["p50_s"] == pytest.approx(0.25) and lat["n"] == 4


def test_classify_invalid_answers():
    invalid = ["not a candidate: X", "duplicate: B", "unparseable: The Godfather", "unparseable: zzz qqq"]
    counts = M.classify_invalid(invalid, seen_titles=["Godfather, The", "Star Wars"])
    assert counts == {"not a candidate": 1, "unparseable": 1, "duplicate": 1, "already seen": 1}


def test_generative_summary_by_hand():
    records = [
        {"answers": ["t", "a"], "target": "t", "invalid_counts": {}},  # valid, hit
        {"answers": ["a", "t"], "target": "t", "invalid_counts": {"duplicate": 1}},  # invalid, miss
        {"answers": ["t"], "target": "t", "invalid_counts": {"not a candidate": 1}},  # invalid, hit
        {"answers": [], "target": "t", "invalid_counts": {"unparseable": 2}},  # nothing parsed
    ]
    s = M.generative_summary(records)
    assert s["valid_ratio"] == 0.25
    assert s["hr@1_unconditional"] == 0.5  # first answers: t, a, t, none
    assert s["hr@1_conditional_on_valid"] == 1.0  # the one valid record hit
    written = 5 + 4  # 5 parsed answers + 4 invalid ones
    assert s["rate_duplicate"] == pytest.approx(1 / written)
    assert s["rate_not_a_candidate"] == pytest.approx(1 / written)
    assert s["rate_unparseable"] == pytest.approx(2 / written)
    assert s["rate_already_seen"] == 0.0
    assert s["answers_per_example"] == pytest.approx(written / 4)


def test_paired_difference_identical_systems_is_zero():
    a = [1.0, 0.0, 1.0, 0.0, 0.5]
    assert M.paired_difference(a, list(a), 500, 0) == [0.0, 0.0, 0.0]


def test_paired_difference_resamples_the_same_users():
    a = [0.6, 0.1, 1.0, 0.3, 0.45, 0.8]
    b = [x - 0.05 - 0.01 * k for k, x in enumerate(a)]  # better on every user
    mean, lo, hi = M.paired_difference(a, b, 1000, 3)
    assert mean == pytest.approx(0.075)
    assert 0.05 <= lo <= mean <= hi <= 0.1  # unpaired intervals would straddle 0 (users vary a lot)
    assert M.paired_difference(a, b, 1000, 3) == [mean, lo, hi]  # seeded
    assert M.paired_difference(a, b, 0, 3) == [mean, mean, mean]
    with pytest.raises(ValueError, match="different lengths"):
        M.paired_difference(a, b[:-1], 10, 0)
