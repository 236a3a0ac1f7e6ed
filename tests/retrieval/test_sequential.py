"""SASRec: learns a next-item pattern popularity cannot see; deterministic, saved without pickle."""

from __future__ import annotations

import json
import random
from collections import Counter

import numpy as np
import pytest
import torch

from fusionrec.retrieval.collaborative.sasrec import CONFIG_FILE, WEIGHTS_FILE, SASRecModel, train_sasrec

CYCLE = [str(i) for i in range(1, 11)]  # the true next item of k is k + 1 (10 -> 1)
NOISE = ["n1", "n2", "n3"]  # popular items inserted at random: more frequent than any cycle item
ITEMS = CYCLE + NOISE
SMALL = {"dim": 16, "layers": 1, "max_len": 12, "dropout": 0.1, "epochs": 80, "lr": 5e-3, "batch_size": 32}


def synthetic(n_users: int = 60, steps: int = 12, seed: int = 0) -> dict[str, list[str]]:
    """Per user: the cycle from a random start with noise items between; the last two are cycle steps."""
    rng = random.Random(seed)
    out = {}
    for u in range(n_users):
        k = rng.randrange(10)
        seq = []
        for step in range(steps):
            seq.append(CYCLE[(k + step) % 10])
            if step < steps - 2 and rng.random() < 0.6:
                seq.append(rng.choice(NOISE))
        out[f"u{u}"] = seq
    return out


@pytest.fixture(scope="module")
def data() -> dict[str, list[str]]:
    return synthetic()


@pytest.fixture(scope="module")
def model(data) -> SASRecModel:
    return train_sasrec({u: s[:-1] for u, s in data.items()}, ITEMS, seed=0, **SMALL)


def test_sasrec_learns_the_next_item_where_popularity_fails(model, data):
    train = {u: s[:-1] for u, s in data.items()}
    counts = Counter(i for s in train.values() for i in s)
    assert min(counts[n] for n in NOISE) > max(counts[c] for c in CYCLE)
    users = sorted(data)
    scores = model.batch_scores([train[u] for u in users], [ITEMS] * len(users))
    sas_hr1 = np.mean(
        [ITEMS[int(np.argmax(row))] == data[u][-1] for u, row in zip(users, scores, strict=True)]
    )
    pop_top = max(ITEMS, key=lambda i: counts[i])
    pop_hr1 = np.mean([pop_top == data[u][-1] for u in users])
    assert sas_hr1 >= pop_hr1 + 0.6, (sas_hr1, pop_hr1)
    assert model.history[-1]["loss"] < model.history[0]["loss"]
    assert [h["epoch"] for h in model.history] == list(range(1, SMALL["epochs"] + 1))


def test_scores_are_finite_deterministic_and_survive_save_load(model, data, tmp_path):
    history = data["u0"][:-1]
    cands = ["3", "n1", "never-trained", "7"]
    s = model.scores(history, cands)
    assert s[2] == float("-inf")
    assert all(np.isfinite([s[0], s[1], s[3]]))
    empty = model.scores([], ["1", "n2", "?"])
    assert np.isfinite(empty[:2]).all() and empty[2] == float("-inf")
    assert model.scores(["?", *history], cands) == s  # unknown history ids are skipped

    rng_before = torch.get_rng_state()
    again = train_sasrec({u: q[:-1] for u, q in data.items()}, ITEMS, seed=0, **SMALL)
    assert torch.equal(torch.get_rng_state(), rng_before)  # the caller's RNG is left alone
    assert again.scores(history, cands) == s
    other = train_sasrec({u: q[:-1] for u, q in data.items()}, ITEMS, seed=1, **{**SMALL, "epochs": 2})
    assert other.scores(history, cands) != s

    model.save(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == sorted([CONFIG_FILE, WEIGHTS_FILE])
    meta = json.loads((tmp_path / "m" / CONFIG_FILE).read_text())
    assert meta["items"] == ITEMS and meta["config"]["dim"] == SMALL["dim"]
    loaded = SASRecModel.load(tmp_path / "m")
    assert loaded.items == model.items and loaded.max_len == model.max_len
    assert loaded.scores(history, cands) == s
    assert loaded.scores([], ["1", "n2", "?"]) == empty
    assert loaded.history == model.history


def test_batch_scores_match_scores_row_by_row(model, data):
    long = [c for _ in range(3) for c in CYCLE]  # longer than max_len: the most recent items count
    histories = [data["u1"][:-1], [], ["?", "?"], ["5"], long, data["u7"][:4]]
    candidates = [
        ["1", "2", "?"],
        ["n1", "3", "4"],
        ["5", "6", "7"],
        ["6", "n3", "1"],
        ["1", "2", "3"],
        ITEMS[:3],
    ]
    batch = model.batch_scores(histories, candidates, batch_size=4)
    assert batch.shape == (6, 3)
    for h, c, row in zip(histories, candidates, batch, strict=True):
        np.testing.assert_allclose(row, model.scores(h, c), rtol=1e-5, atol=1e-5)
    assert batch[0, 2] == -np.inf
    assert model.scores(["?", "?"], ["5", "6", "7"]) == model.scores([], ["5", "6", "7"])  # = empty
    assert model.scores(long, ["1"]) == model.scores(long[-SMALL["max_len"] :], ["1"])
    assert int(np.argmax(model.scores(["5"], CYCLE))) == CYCLE.index("6")
    assert model.batch_scores([], []).shape == (0, 0)
