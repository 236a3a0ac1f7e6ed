"""Prompts of every task, built with the agent's own prompt code so training and inference match.

- ranking (MovieLens): `agent.prompt.build_rank_prompt` with a fixed request and the user's
  history as item attachments (each a hybrid item token: the title as data + a soft-token slot for
  the item's projected embedding); the candidates are the agent's labelled hybrid item tokens.
- dialogue (ReDial, its own catalog): the same ranking prompt with the dialogue so far as turns.
- explanation: `agent.prompt.explain_prompt` + a grounded target sentence.
- alignment (stage 1): a short chat prompt with the item's soft tokens -> "Title (Year): genres".

`hybrid` says which items get their soft token (curriculum / dropout); the others are text only.
Nothing in a prompt reveals ids or time: items appear by title, year and genres only.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

import numpy as np

from fusionrec.agent import softtokens
from fusionrec.agent.prompt import (
    AttachmentInput,
    RankPrompt,
    build_rank_prompt,
    chat_text,
    data_text,
    explain_prompt,
    load_template,
)
from fusionrec.data.loo import LOOExample
from fusionrec.finetune.data import TurnExample, alignment_target, explanation_target
from fusionrec.types import Candidate, Item, Turn

SEQ_REQUEST = (
    "Recommend the movie I should watch next. The movies I watched are attached, the most recent last."
)
ALIGN_QUESTION = "Which movie do these features describe?"
ALIGN_PREFIX = "Movie:"
MODALITY_WORDS = {"item": "catalog", "image": "poster", "audio": "sound", "video": "trailer"}


def history_attachments(
    items: Sequence[Item], vectors: dict[str, np.ndarray], hybrid: Collection[str]
) -> list[AttachmentInput]:
    """The watched items as attachments of kind "item": title (data) + the item's soft token if hybrid."""
    out = []
    for it in items:
        vec = vectors.get(it.id) if it.id in hybrid else None
        year = f" ({it.year})" if it.year else ""
        out.append(AttachmentInput("item", vec, f"{it.title}{year}"))
    return out


def seq_rank_prompt(
    tokenizer: Any,
    template: str,
    example: LOOExample,
    items: dict[str, Item],
    vectors: dict[str, np.ndarray],
    hybrid: Collection[str],
    *,
    max_tokens: int,
    overview_chars: int,
    placeholder: int,
    scoring: str = "listwise",
) -> RankPrompt:
    """The ranking prompt of a MovieLens example (the same call the agent makes, history attached)."""
    cands = [Candidate(items[i], 0.0) for i in example.candidates]
    cand_vectors = {i: vectors[i] for i in example.candidates if i in hybrid and i in vectors}
    return build_rank_prompt(
        tokenizer,
        template,
        SEQ_REQUEST,
        cands,
        item_vectors=cand_vectors,
        attachments=history_attachments([items[i] for i in example.history], vectors, hybrid),
        max_tokens=max_tokens,
        overview_chars=overview_chars,
        placeholder=placeholder,
        scoring=scoring,
    )


def dialogue_rank_prompt(
    tokenizer: Any,
    template: str,
    example: TurnExample,
    items: dict[str, Item],
    vectors: dict[str, np.ndarray],
    hybrid: Collection[str],
    *,
    max_tokens: int,
    overview_chars: int,
    placeholder: int,
    scoring: str = "listwise",
) -> RankPrompt:
    """The ranking prompt of a ReDial turn: the dialogue as history, the seeker's last message as request
    (what the evaluation's agent builds for the same turn)."""
    cands = [Candidate(items[i], 0.0) for i in example.candidates]
    history = [Turn(role, text) for role, text in example.history]  # type: ignore[arg-type]
    return build_rank_prompt(
        tokenizer,
        template,
        example.request,
        cands,
        history=history,
        item_vectors={i: vectors[i] for i in example.candidates if i in hybrid and i in vectors},
        max_tokens=max_tokens,
        overview_chars=overview_chars,
        placeholder=placeholder,
        scoring=scoring,
    )


def explanation_ids(tokenizer: Any, template: str, item: Item, request: str) -> tuple[list[int], list[int]]:
    """(prompt ids, target ids): the agent's explanation prompt and the grounded target after it."""
    text, _ = explain_prompt(tokenizer, load_template(template), item, request)
    prompt = tokenizer.encode(text, add_special_tokens=False)
    target = tokenizer.encode(" " + data_text(explanation_target(item), tokenizer), add_special_tokens=False)
    return prompt, target


def alignment_prompt(
    tokenizer: Any, item: Item, modalities: Sequence[str], placeholder: int
) -> tuple[softtokens.EncodedPrompt, list[int]]:
    """(encoded prompt with one slot per modality, target ids "Title (Year): genres")."""
    lines = [f"The movie's {MODALITY_WORDS.get(m, m)} features: {softtokens.slot(m)}" for m in modalities]
    user = ALIGN_QUESTION + "\n" + "\n".join(lines)
    text = chat_text(tokenizer, [{"role": "user", "content": user}]) + ALIGN_PREFIX
    encoded = softtokens.encode(tokenizer, text, placeholder)
    target = tokenizer.encode(" " + data_text(alignment_target(item), tokenizer), add_special_tokens=False)
    return encoded, target
