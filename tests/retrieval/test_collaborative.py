"""Collaborative item vectors: BPR factors + bias, standardised, appended to the text vector."""

from __future__ import annotations

import numpy as np

from fusionrec.retrieval.collaborative.bpr import collab_table, load_table, save_table, train_bpr, with_collab
from fusionrec.types import Interaction


def test_collab_table_is_standardised_and_appended(tmp_path):
    rng = np.random.default_rng(0)
    items = [str(i) for i in range(40)]
    train = [
        Interaction(str(u), items[j], 1.0, t)
        for u in range(30)
        for t, j in enumerate(rng.choice(20 if u % 2 else 40, size=8, replace=False))
    ]
    table = collab_table(train_bpr(train, items, dim=6, epochs=5, seed=0))
    assert set(table) == set(items)
    z = np.stack([table[i] for i in items])
    assert z.shape == (40, 7)  # 6 factors + the bias
    np.testing.assert_allclose(z.mean(0), 0.0, atol=1e-5)
    assert abs(np.linalg.norm(z, axis=1).mean() - 1.0) < 1e-5
    text = {"3": np.ones(4, np.float32), "unknown": np.ones(4, np.float32)}
    both = with_collab(text, table)
    np.testing.assert_array_equal(both["3"], np.concatenate([text["3"], table["3"]]))
    np.testing.assert_array_equal(both["unknown"][4:], np.zeros(7, np.float32))
    assert with_collab(text, {}) == text
    save_table(table, tmp_path / "c.safetensors")
    again = load_table(tmp_path / "c.safetensors")
    np.testing.assert_array_equal(again["5"], table["5"])
    assert load_table(tmp_path / "missing.safetensors") == {}
