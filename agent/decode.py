"""Greedy decoding from input embeddings (KV cache, repetition penalty) and streaming its text.

Used by the explainer and the generative ranker; the model may carry soft tokens in `embeds`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch


def stop_ids(tokenizer: Any, model: Any = None) -> set[int]:
    """Token ids that end a generation (eos, <|im_end|>, <|endoftext|>)."""
    ids = {tokenizer.eos_token_id}
    vocab = tokenizer.get_vocab()
    ids |= {vocab[t] for t in ("<|im_end|>", "<|endoftext|>", "</s>", "<|eot_id|>") if t in vocab}
    gen = getattr(model, "generation_config", None)
    eos = getattr(gen, "eos_token_id", None)
    ids |= set(eos if isinstance(eos, list) else [eos])
    return {int(i) for i in ids if i is not None}


@torch.no_grad()
def greedy_ids(
    model: Any,
    embeds: torch.Tensor,
    max_new_tokens: int,
    stop: set[int],
    repetition_penalty: float = 1.0,
) -> Iterator[int]:
    """Greedy decoding from input embeddings with a KV cache, one token id at a time (stop ids excluded)."""
    out = model(inputs_embeds=embeds, use_cache=True, logits_to_keep=1)
    cache, logits = out.cache, out.logits[0, -1].float()
    seen: list[int] = []
    device = embeds.device
    for _ in range(max_new_tokens):
        if repetition_penalty != 1.0 and seen:
            idx = torch.tensor(sorted(set(seen)), device=logits.device)
            vals = logits[idx]
            logits[idx] = torch.where(vals > 0, vals / repetition_penalty, vals * repetition_penalty)
        nxt = int(torch.argmax(logits))
        if nxt in stop:
            return
        seen.append(nxt)
        yield nxt
        out = model(
            input_ids=torch.tensor([[nxt]], device=device), cache=cache, use_cache=True, logits_to_keep=1
        )
        cache, logits = out.cache, out.logits[0, -1].float()


def stream_text(tokenizer: Any, ids: Iterator[int]) -> Iterator[str]:
    """Decode a stream of ids into text pieces, holding back incomplete characters."""
    got: list[int] = []
    emitted = ""
    for tid in ids:
        got.append(tid)
        text = tokenizer.decode(got, skip_special_tokens=True)
        if text.endswith("\ufffd"):
            continue
        if len(text) > len(emitted):
            yield text[len(emitted) :]
            emitted = text
    text = tokenizer.decode(got, skip_special_tokens=True)
    if len(text) > len(emitted):
        yield text[len(emitted) :]
