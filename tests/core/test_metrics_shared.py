"""One set of rank metrics: training, the prior and the evaluation report the same numbers."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

from fusionrec import metrics as M
from fusionrec.evaluation import metrics as E
from fusionrec.retrieval.collaborative.prior import rank_metrics


def test_known_values():
    assert M.ndcg(0, 10) == 1.0 and M.hit(0, 1) == 1.0 and M.reciprocal_rank(0) == 1.0
    assert M.ndcg(1, 10) == pytest.approx(1 / math.log2(3)) and M.reciprocal_rank(1) == 0.5
    assert M.hit(1, 1) == 0.0 and M.hit(9, 10) == 1.0
    for r in (10, 11, 50, None):
        assert M.ndcg(r, 10) == 0.0 and M.hit(r, 10) == 0.0
    assert M.reciprocal_rank(None) == 0.0
    assert M.rank_in(["a", "b", "c"], "c") == 2 and M.rank_in(["a"], "z") is None
    assert M.rank_by_score([0.5, 0.9, 0.5], 0) == 2  # a tie counts against the target
    assert M.mean_metrics([], (1, 10), (10,), mrr=True) == {"hr@1": 0.0, "hr@10": 0.0, "ndcg@10": 0.0, "mrr": 0.0}
    m = M.mean_metrics([0, 1, 12], (1, 10), (10,), mrr=True)
    assert m["hr@1"] == pytest.approx(1 / 3) and m["hr@10"] == pytest.approx(2 / 3)
    assert m["ndcg@10"] == pytest.approx((1 + 1 / math.log2(3)) / 3)
    assert m["mrr"] == pytest.approx((1 + 1 / 2 + 1 / 13) / 3)


def test_finetune_prior_and_evaluation_agree():
    from fusionrec.finetune.tasks import hr_ndcg

    ranks = [0, 1, 2, 4, 9, 10, 19]  # 0-based
    ft = hr_ndcg(ranks)
    per_example = [E.example_metrics([f"i{j}" for j in range(20)], f"i{r}", (1, 10), (10,)) for r in ranks]
    for key in ("hr@1", "hr@10", "ndcg@10"):
        assert ft[key] == pytest.approx(np.mean([m[key] for m in per_example]))
    for r in ranks:  # the evaluation's ranks are 1-based
        assert E.ndcg_at(r + 1, 10) == M.ndcg(r, 10) and E.hit_at(r + 1, 10) == M.hit(r, 10)
        assert E.reciprocal_rank(r + 1) == M.reciprocal_rank(r)
    assert E.ndcg_at(None, 10) == 0.0 and E.rank_of(["a", "b"], "b") == 2
    scores = [-np.arange(20, dtype=float) for _ in ranks]  # candidate j ranked j-th
    prior = rank_metrics(scores, ranks)
    assert prior == {"HR@1": pytest.approx(ft["hr@1"]), "NDCG@10": pytest.approx(ft["ndcg@10"])}


def test_no_torch_at_import():
    code = "import sys, fusionrec.metrics; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
