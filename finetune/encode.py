"""Examples -> `Encoded` inputs, with the augmentations of the recipe.

- curriculum (LLaRA): each item of a ranking prompt (history and candidates) is a hybrid item
  token (title + soft token) with probability `p_hybrid`, else text only; `p_hybrid` rises from
  `augment.hybrid_start` to `augment.hybrid_end` over the first `curriculum_fraction` of training;
- modality dropout: each soft token of an alignment prompt (catalog vector, poster, ...) is dropped
  with probability `augment.modality_dropout` (at least one stays), and each hybrid token of a
  ranking prompt loses its soft token with the same probability.

Randomness comes from the `random.Random` the caller passes (seeded per step and micro-batch), so a
resumed run encodes exactly what an uninterrupted run would.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Collection, Sequence
from typing import Any

import numpy as np

from fusionrec.data.loo import LOOExample
from fusionrec.finetune.data import Datasets, ExplainExample, TurnExample
from fusionrec.finetune.prompts import (
    alignment_prompt,
    dialogue_rank_prompt,
    explanation_ids,
    seq_rank_prompt,
)
from fusionrec.finetune.recipe import Recipe
from fusionrec.finetune.tasks import Encoded, encode_lm, encode_rank


def curriculum(recipe: Recipe, step: int) -> float:
    """The probability that an item is shown as a hybrid item token at `step`."""
    a = recipe.augment
    span = max(1.0, a.curriculum_fraction * recipe.train.max_steps)
    frac = min(1.0, step / span) if a.curriculum_fraction > 0 else 1.0
    return a.hybrid_start + (a.hybrid_end - a.hybrid_start) * frac


class ExampleEncoder:
    """Builds the prompts of every task for one tokenizer, catalog and set of item vectors."""

    def __init__(
        self,
        tokenizer: Any,
        recipe: Recipe,
        data: Datasets,
        vectors: dict[str, dict[str, np.ndarray]],
        placeholder: int,
        fusion_inputs: Any = None,
        dialogue_vectors: dict[str, np.ndarray] | None = None,
    ) -> None:
        self.tokenizer, self.recipe, self.data = tokenizer, recipe, data
        self.vectors = vectors
        self.dialogue_vectors = dialogue_vectors or {}  # ReDial catalog item vectors (same projector)
        self.placeholder = placeholder
        self.fusion_inputs = fusion_inputs  # callable(LOOExample) -> dict | None

    # --- hybrid selection ------------------------------------------------------------------------
    def hybrid(
        self, ids: Sequence[str], p: float, rng: random.Random, vectors: dict[str, np.ndarray] | None = None
    ) -> set[str]:
        """Items that keep their soft token: chosen with probability p, then modality dropout."""
        drop = self.recipe.augment.modality_dropout
        item_vecs = self.vectors.get("item", {}) if vectors is None else vectors
        return {i for i in ids if i in item_vecs and rng.random() < p and rng.random() >= drop}

    def rank_prompt(
        self, build: Callable[..., Any], ex: Any, hybrid: Collection[str], dialogue: bool = False
    ) -> Any:
        """`build` (seq_rank_prompt or dialogue_rank_prompt) with this recipe's template and budgets,
        over the ML catalog or (`dialogue`) the ReDial one."""
        d = self.recipe.data
        return build(
            self.tokenizer,
            d.template,
            ex,
            self.data.dialogue_items if dialogue else self.data.items,
            self.dialogue_vectors if dialogue else self.vectors.get("item", {}),
            hybrid,
            max_tokens=d.max_prompt_tokens,
            overview_chars=d.overview_chars,
            placeholder=self.placeholder,
            scoring=d.scoring,
        )

    # --- tasks ----------------------------------------------------------------------------------------
    def ranking(self, ex: LOOExample, p_hybrid: float, rng: random.Random) -> Encoded:
        hybrid = self.hybrid([*ex.history, *ex.candidates], p_hybrid, rng)
        prompt = self.rank_prompt(seq_rank_prompt, ex, hybrid)
        enc = encode_rank("ranking", prompt, ex.candidates.index(ex.target), ex.prior)
        if self.fusion_inputs is not None:
            enc.fusion = self.fusion_inputs(ex)
        return enc

    def evaluation(self, ex: LOOExample) -> Encoded:
        """A validation prompt: every item hybrid, no dropout (what the agent builds at inference)."""
        hybrid = set(self.vectors.get("item", {}))
        prompt = self.rank_prompt(seq_rank_prompt, ex, hybrid)
        return encode_rank("ranking", prompt, ex.candidates.index(ex.target), ex.prior)

    def dialogue(self, ex: TurnExample, p_hybrid: float, rng: random.Random) -> Encoded:
        hybrid = self.hybrid(ex.candidates, p_hybrid, rng, self.dialogue_vectors)
        prompt = self.rank_prompt(dialogue_rank_prompt, ex, hybrid, dialogue=True)
        return encode_rank("dialogue", prompt, ex.candidates.index(ex.target), ex.prior)

    def dialogue_evaluation(self, ex: TurnExample) -> Encoded:
        """A ReDial validation prompt: every item hybrid (what the agent builds at inference)."""
        prompt = self.rank_prompt(dialogue_rank_prompt, ex, set(self.dialogue_vectors), dialogue=True)
        return encode_rank("dialogue", prompt, ex.candidates.index(ex.target), ex.prior)

    def explanation(self, ex: ExplainExample) -> Encoded:
        prompt, target = explanation_ids(
            self.tokenizer, self.recipe.data.template, self.data.items[ex.item], ex.request
        )
        return encode_lm("explanation", prompt, target)

    def alignment(self, item_id: str, rng: random.Random) -> Encoded:
        item = self.data.items[item_id]
        have = [m for m in self.recipe.augment.modalities if item_id in self.vectors.get(m, {})]
        if not have:
            raise ValueError(f"item {item_id} has no vector for any of {self.recipe.augment.modalities}")
        keep = [m for m in have if rng.random() >= self.recipe.augment.modality_dropout] or [rng.choice(have)]
        encoded, target = alignment_prompt(self.tokenizer, item, keep, self.placeholder)
        slots = [
            (pos, key, self.vectors[key][item_id])
            for pos, key in zip(encoded.positions, encoded.keys, strict=True)
        ]
        return encode_lm("alignment", encoded.input_ids, target, slots)

    def encode(self, task: str, example: Any, p_hybrid: float, rng: random.Random) -> Encoded:
        if task == "ranking":
            return self.ranking(example, p_hybrid, rng)
        if task == "dialogue":
            return self.dialogue(example, p_hybrid, rng)
        if task == "explanation":
            return self.explanation(example)
        if task == "alignment":
            return self.alignment(example, rng)
        raise ValueError(f"unknown task {task!r}")

    def pool(self, task: str) -> list[Any]:
        """The examples a task draws from."""
        return {
            "ranking": self.data.train,
            "dialogue": self.data.dialogues,
            "explanation": self.data.explain,
            "alignment": self.data.align,
        }[task]
