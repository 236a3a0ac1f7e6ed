"""Soft tokens: placeholder positions in a prompt whose input embeddings are replaced by vectors.

A prompt string carries slot markers (`slot("image:0")` -> "\\x00image:0\\x00"). `encode` splits the
string at the markers, tokenises the text pieces and puts ONE placeholder token id at each marker,
remembering the positions (a `mark` adds no token: it records where the text before it ends), so
nothing in the text (an item overview, a user message) can create or move a slot. `inputs_embeds` embeds the ids with the model's own embedding table and writes the
projected vectors over the placeholder positions; it works for plain and peft-wrapped models and
keeps gradients flowing into the vectors (for training the projectors).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

_MARK = "\x00"
_SLOT_RE = re.compile(r"\x00([^\x00]+)\x00")
# Tried in order when no placeholder token is configured: unused special tokens, then unk/pad/eos.
_PLACEHOLDER_CANDIDATES = ("<empty_output>", "<jupyter_script>", "<|reserved_special_token_0|>", "<unk>")


def slot(key: str) -> str:
    """The marker text for a soft-token slot named `key` (e.g. "image:0", "item:42")."""
    if _MARK in key or not key:
        raise ValueError(f"bad soft-token key {key!r}")
    return f"{_MARK}{key}{_MARK}"


def mark(key: str) -> str:
    """A position marker: adds no token; `encode` records the position of the token before it."""
    return slot("@" + key)


def sanitize(text: str, tokenizer: Any = None) -> str:
    """Text that is DATA (user messages, item fields): no slot markers, no special-token strings.

    Special tokens such as "<|im_start|>" inside data would otherwise be parsed as real control
    tokens; they are defused by inserting a space after the "<".
    """
    text = (text or "").replace(_MARK, "")
    specials = set(getattr(tokenizer, "all_special_tokens", []) or [])
    specials |= {str(t) for t in (getattr(tokenizer, "added_tokens_decoder", {}) or {}).values()}
    for tok in sorted(specials, key=len, reverse=True):
        if tok and tok in text:
            text = text.replace(tok, tok[:1] + " " + tok[1:])
    return text


def placeholder_id(tokenizer: Any, name: str = "") -> int:
    """The token id written at soft-token positions (its embedding is always overwritten)."""
    vocab = tokenizer.get_vocab()
    names = (name,) if name else _PLACEHOLDER_CANDIDATES
    for cand in names:
        if cand in vocab:
            return int(vocab[cand])
    if name:
        raise ValueError(f"agent.placeholder_token={name!r} is not a token of this tokenizer")
    for tid in (tokenizer.unk_token_id, tokenizer.pad_token_id, tokenizer.eos_token_id):
        if tid is not None:
            return int(tid)
    return 0


@dataclass
class EncodedPrompt:
    """Token ids of a prompt with the positions (and keys) of its soft-token slots."""

    input_ids: list[int]
    positions: list[int] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    marks: list[int] = field(default_factory=list)  # positions of the tokens that end at each `mark`
    text: str = ""  # the prompt with slots shown as "<soft:KEY>" (for logs and debugging)

    def __len__(self) -> int:
        return len(self.input_ids)


def encode(tokenizer: Any, text: str, placeholder: int) -> EncodedPrompt:
    """Tokenise `text`, one placeholder id per slot marker; markers never merge with text."""
    ids: list[int] = []
    positions: list[int] = []
    keys: list[str] = []
    marks: list[int] = []
    pieces = _SLOT_RE.split(text)
    for i, piece in enumerate(pieces):
        if i % 2 == 1 and piece.startswith("@"):
            if not ids:
                raise ValueError(f"position mark {piece!r} before any token")
            marks.append(len(ids) - 1)
        elif i % 2 == 1:
            positions.append(len(ids))
            keys.append(piece)
            ids.append(placeholder)
        elif piece:
            ids.extend(tokenizer.encode(piece, add_special_tokens=False))
    shown = _SLOT_RE.sub(lambda m: "" if m.group(1)[0] == "@" else f"<soft:{m.group(1)}>", text)
    return EncodedPrompt(ids, positions, keys, marks, shown)


def embedding_layer(model: Any) -> torch.nn.Module:
    """The input embedding table of a plain or peft-wrapped causal LM."""
    return model.get_input_embeddings()


def inputs_embeds(
    model: Any,
    input_ids: torch.Tensor,
    positions: Sequence[tuple[int, int]] | Sequence[int] = (),
    vectors: torch.Tensor | None = None,
) -> torch.Tensor:
    """Embeddings of `input_ids` (B, L) with `vectors` (n, H) written at `positions`.

    `positions` are (row, column) pairs, or plain columns when the batch has one row.
    """
    if input_ids.dim() == 1:
        input_ids = input_ids.unsqueeze(0)
    table = embedding_layer(model)
    embeds = table(input_ids.to(table.weight.device))
    if not positions:
        return embeds
    if vectors is None or vectors.shape[0] != len(positions):
        got = None if vectors is None else tuple(vectors.shape)
        raise ValueError(f"{len(positions)} soft-token positions but vectors of shape {got}")
    if vectors.shape[-1] != embeds.shape[-1]:
        raise ValueError(
            f"soft-token vectors are {vectors.shape[-1]}-d, the LLM hidden size is {embeds.shape[-1]}"
        )
    pairs = [(0, int(p)) if isinstance(p, int) else (int(p[0]), int(p[1])) for p in positions]
    rows = torch.tensor([r for r, _ in pairs], device=embeds.device)
    cols = torch.tensor([c for _, c in pairs], device=embeds.device)
    embeds = embeds.clone()
    embeds[rows, cols] = vectors.to(device=embeds.device, dtype=embeds.dtype)
    return embeds


def prompt_embeds(model: Any, prompt: EncodedPrompt, vectors: dict[str, torch.Tensor]) -> torch.Tensor:
    """(1, L, H) embeddings of an encoded prompt, its slots filled from `vectors` by key."""
    missing = [k for k in prompt.keys if k not in vectors]
    if missing:
        raise KeyError(f"no vector for soft-token slot(s) {missing}")
    device = embedding_layer(model).weight.device
    ids = torch.tensor([prompt.input_ids], dtype=torch.long, device=device)
    if not prompt.keys:
        return inputs_embeds(model, ids)
    stacked = torch.stack([vectors[k].reshape(-1) for k in prompt.keys])
    return inputs_embeds(model, ids, prompt.positions, stacked)
