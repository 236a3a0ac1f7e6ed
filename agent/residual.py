"""Residual scoring: final score = llm_weight x LLM score + prior_weight x prior score.

The LLM score is the verbalizer's logit at each candidate's item token; the prior score is the
collaborative prior's standardised mix (`retrieval.collaborative.prior`). `llm_weight` starts at 0, so at step 0
the hybrid ranks exactly like the prior, and training teaches the LLM the correction (ReZero-style:
the gradient of `llm_weight` is the LLM score's covariance with the residual, so it grows only as far
as the LLM helps). Setting either weight to 0 gives the "prior alone" and "LLM alone" rankings of the
same checkpoint. Saved as ``residual.json``; the ReDial task's own mix (over the conversational prior)
as ``residual_dialogue.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

RESIDUAL_FILE = "residual.json"
DIALOGUE_RESIDUAL_FILE = "residual_dialogue.json"


class Residual(nn.Module):
    """Two learned scalars that mix the LLM's and the prior's candidate scores."""

    def __init__(self, prior_weight: float = 1.0, llm_weight: float = 0.0, file: str = RESIDUAL_FILE) -> None:
        super().__init__()
        self.file = file  # where `save` writes it
        self.prior_weight = nn.Parameter(torch.tensor(float(prior_weight)))
        self.llm_weight = nn.Parameter(torch.tensor(float(llm_weight)))

    def forward(self, llm: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
        """(B, n) final scores; -inf entries of `llm` (padding) stay -inf."""
        out = self.llm_weight * llm.masked_fill(torch.isinf(llm), 0.0) + self.prior_weight * prior
        return out.masked_fill(torch.isinf(llm), float("-inf"))

    def weights(self) -> dict[str, float]:
        return {
            "prior_weight": float(self.prior_weight.detach()),
            "llm_weight": float(self.llm_weight.detach()),
        }

    def save(self, folder: Path) -> None:
        Path(folder, self.file).write_text(json.dumps(self.weights(), indent=1), encoding="utf-8")

    @classmethod
    def load(cls, folder: Path, file: str = RESIDUAL_FILE) -> Residual | None:
        """The saved weights, or None when the checkpoint was trained without residual scoring."""
        path = Path(folder, file)
        if not path.is_file():
            return None
        try:
            w = json.loads(path.read_text(encoding="utf-8"))
            return cls(float(w["prior_weight"]), float(w["llm_weight"]), file)
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: malformed residual weights ({exc})") from None


def mix(llm: list[float], prior: list[float], prior_weight: float, llm_weight: float) -> list[float]:
    """The residual score of each candidate (plain floats, for inference)."""
    return [llm_weight * a + prior_weight * b for a, b in zip(llm, prior, strict=True)]
