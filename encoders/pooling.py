"""Pooling a sequence of vectors (video frames, audio windows) into one vector.

`mean_pool` is the default. `AttentionPooling` learns a score per element
(``w · tanh(W x)``, softmax over time); it starts with zero weights, which makes it exactly the
mean, so an untrained module is a safe default and fine-tuning can only move it from there.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from fusionrec.vectors import l2_normalise

__all__ = ["AttentionPooling", "mean_pool", "pool"]


def mean_pool(vectors: np.ndarray, mask: np.ndarray | None = None, normalise: bool = True) -> np.ndarray:
    """Mean over the first axis of (n, dim), over the rows where `mask` is true; then L2-normalised."""
    v = np.asarray(vectors, dtype=np.float32)
    if v.ndim != 2 or v.shape[0] == 0:
        raise ValueError(f"mean_pool expects a non-empty (n, dim) array, got shape {v.shape}")
    if mask is not None:
        m = np.asarray(mask, dtype=bool)
        if not m.any():
            raise ValueError("mean_pool: the mask selects no rows")
        v = v[m]
    out = v.mean(axis=0)
    return l2_normalise(out) if normalise else out


class AttentionPooling(nn.Module):
    """Attention pooling over time: softmax(w · tanh(W x)) weighted sum of the rows of x.

    Zero-initialised scorer, so the untrained module returns the (masked) mean.
    """

    def __init__(self, dim: int, hidden: int = 128) -> None:
        super().__init__()
        self.dim, self.hidden = dim, hidden
        self.proj = nn.Linear(dim, hidden)
        self.score = nn.Linear(hidden, 1, bias=False)
        nn.init.zeros_(self.score.weight)

    def weights(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Attention weights (batch, time) for x (batch, time, dim); masked rows get weight 0."""
        logits = self.score(torch.tanh(self.proj(x))).squeeze(-1)
        if mask is not None:
            logits = logits.masked_fill(~mask.bool(), float("-inf"))
        return torch.softmax(logits, dim=-1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """(batch, time, dim) -> (batch, dim); (time, dim) -> (dim,)."""
        single = x.dim() == 2
        if single:
            x = x.unsqueeze(0)
            mask = None if mask is None else mask.unsqueeze(0)
        pooled = torch.einsum("bt,btd->bd", self.weights(x, mask), x)
        return pooled[0] if single else pooled

    def pool(self, vectors: np.ndarray, normalise: bool = True) -> np.ndarray:
        """numpy convenience: (n, dim) -> (dim,), no gradient."""
        param = next(self.parameters())
        with torch.inference_mode():
            x = torch.as_tensor(np.asarray(vectors, dtype=np.float32), device=param.device, dtype=param.dtype)
            out = self(x).float().cpu().numpy()
        return l2_normalise(out) if normalise else out

    def save(self, path: str | Path) -> None:
        """Weights as safetensors (dim and hidden in the metadata)."""
        from safetensors.torch import save_file

        tensors = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        save_file(tensors, str(path), metadata={"dim": str(self.dim), "hidden": str(self.hidden)})

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> AttentionPooling:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118 (safe_open has no __iter__)
        module = cls(int(meta["dim"]), int(meta.get("hidden", 128)))
        module.load_state_dict(tensors)
        return module.to(device).eval()


def pool(vectors: np.ndarray, method: str = "mean", module: AttentionPooling | None = None) -> np.ndarray:
    """Pool (n, dim) into one unit vector with "mean" or "attention" (a zero-init module if none given)."""
    if method == "mean":
        return mean_pool(vectors)
    if method == "attention":
        v = np.asarray(vectors, dtype=np.float32)
        if v.ndim != 2 or v.shape[0] == 0:
            raise ValueError(f"attention pooling expects a non-empty (n, dim) array, got shape {v.shape}")
        module = module or AttentionPooling(v.shape[1]).eval()
        return module.pool(v)
    raise ValueError(f"unknown pooling {method!r} (known: mean, attention)")
