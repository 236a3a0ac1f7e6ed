"""The one L2 normaliser: vectors and matrix rows at unit length, zeros kept, float32 copies."""

from __future__ import annotations

import numpy as np
import pytest

from fusionrec.vectors import l2_normalise


def test_vectors_and_rows_get_unit_length_and_zeros_stay_zero():
    rng = np.random.default_rng(0)
    v = rng.normal(size=384)
    out = l2_normalise(v)
    assert out.dtype == np.float32 and out.shape == (384,)
    assert np.linalg.norm(out) == pytest.approx(1.0, abs=1e-6)
    assert np.allclose(out * np.linalg.norm(v), v, atol=1e-5)  # same direction
    rows = np.stack([v, np.zeros(384), 3 * v])
    got = l2_normalise(rows)
    assert got.shape == (3, 384) and not got[1].any()
    assert np.allclose(got[0], out, atol=1e-6) and np.allclose(got[2], out, atol=1e-6)
    zero = np.zeros(5, dtype=np.float32)
    assert not l2_normalise(zero).any() and l2_normalise(zero) is not zero  # a copy, never the input
    assert l2_normalise([3.0, 4.0]).tolist() == pytest.approx([0.6, 0.8])
