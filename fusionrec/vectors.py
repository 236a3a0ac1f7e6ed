"""Vector arithmetic shared by the encoders, retrieval and evaluation."""

from __future__ import annotations

import numpy as np


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """A float32 copy of a vector or of each row of a matrix at unit length (zeros stay zeros).

    A single vector's norm is ``np.linalg.norm(x)`` (a dot product), a matrix's row norms are taken
    along the last axis (numpy sums the two in different orders: the last bit can differ).
    """
    x = np.asarray(x, dtype=np.float32)
    norm = np.linalg.norm(x) if x.ndim == 1 else np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / np.where(norm > 0, norm, 1)).astype(np.float32)
