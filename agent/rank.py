"""Ranking candidates with the LLM: the verbalizer (one forward pass) and the generative alternative.

`rank_verbalizer` reads the logits of the label tokens (A, B, C ...) at the answer position (or,
for a pointwise prompt, the logit of a score token at each candidate's hybrid item token) and
orders ALL candidates by them, so the result is always a permutation of the candidates and can
never name an item that was not offered (LlamaRec). `rank_generative` lets the model write the
ranking and parses labels or titles back to candidates; unparseable, duplicate and non-candidate
answers are recorded in `Ranking.invalid`, and candidates it left out follow in retrieval order.
Both can add the retrieval score (min-max normalised over the candidates) times a weight.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import torch

from fusionrec.agent import softtokens
from fusionrec.agent.decode import greedy_ids, stop_ids, stream_text
from fusionrec.agent.projector import Projectors
from fusionrec.agent.prompt import RankPrompt
from fusionrec.types import Candidate, Ranking


def soft_vectors(
    projectors: Projectors | None, prompt: RankPrompt, like: torch.Tensor
) -> dict[str, torch.Tensor]:
    """The projected vector of every slot of `prompt`, keyed by slot."""
    if not prompt.soft_inputs:
        return {}
    if projectors is None:
        raise ValueError("the prompt has soft-token slots but no projectors were given")
    out = {}
    for key, inp in prompt.soft_inputs.items():
        out[key] = projectors.project(inp.modality, inp.vector, like=like)[0]
    return out


def prompt_embeds(model: Any, projectors: Projectors | None, prompt: RankPrompt) -> torch.Tensor:
    """(1, L, H) input embeddings of a ranking prompt with its soft tokens spliced in."""
    weight = softtokens.embedding_layer(model).weight
    return softtokens.prompt_embeds(model, prompt.encoded, soft_vectors(projectors, prompt, weight))


def retrieval_scores(candidates: Sequence[Candidate]) -> list[float]:
    """Retrieval scores min-max normalised to [0, 1] over the candidates (all 0 when equal)."""
    raw = [float(c.score) for c in candidates]
    lo, hi = min(raw, default=0.0), max(raw, default=0.0)
    return [0.0 if hi == lo else (r - lo) / (hi - lo) for r in raw]


def _ordered(candidates: Sequence[Candidate], scores: Sequence[float]) -> tuple[list[Candidate], list[float]]:
    order = sorted(range(len(candidates)), key=lambda i: (-scores[i], i))
    return [candidates[i] for i in order], [float(scores[i]) for i in order]


def ordered_ranking(prompt: RankPrompt, scores: Sequence[float], method: str, raw: str = "") -> Ranking:
    """All of the prompt's candidates ordered by `scores` (ties by position): always a permutation."""
    if len(scores) != len(prompt.candidates):
        raise ValueError(f"{len(scores)} scores for {len(prompt.candidates)} candidates")
    cands, ordered = _ordered(prompt.candidates, scores)
    return Ranking(cands, ordered, method, raw_output=raw)


@torch.no_grad()
def label_logprobs(model: Any, projectors: Projectors | None, prompt: RankPrompt) -> torch.Tensor:
    """Log-probabilities over the candidates, shape (n,): of their label tokens at the answer position
    (listwise), or of the score token at each candidate's item token, normalised over the candidates (pointwise)."""
    embeds = prompt_embeds(model, projectors, prompt)
    if prompt.scoring == "pointwise":
        keep = torch.tensor(prompt.score_positions, device=embeds.device)
        logits = model(inputs_embeds=embeds, use_cache=False, logits_to_keep=keep).logits[0].float()
        return torch.log_softmax(logits[:, prompt.score_id], dim=-1)
    logits = model(inputs_embeds=embeds, use_cache=False, logits_to_keep=1).logits[0, -1].float()
    return torch.log_softmax(logits[prompt.label_ids], dim=-1)


def rank_verbalizer(
    model: Any,
    projectors: Projectors | None,
    prompt: RankPrompt,
    retrieval_weight: float = 0.0,
    prior: Sequence[float] | None = None,
) -> Ranking:
    """Rank every candidate by its label's log-probability (+ weight * normalised retrieval score).

    `prior`: the labels' log-probabilities for a content-free prompt (see `label_prior`); when given
    it is subtracted, removing the model's preference for a position ("A") whatever the candidates.
    """
    llm = label_logprobs(model, projectors, prompt).tolist()
    if prior is not None:
        if len(prior) != len(llm):
            raise ValueError(f"label prior has {len(prior)} values for {len(llm)} candidates")
        llm = [s - p for s, p in zip(llm, prior, strict=True)]
    ret = retrieval_scores(prompt.candidates)
    final = [s + retrieval_weight * r for s, r in zip(llm, ret, strict=True)]
    cands, scores = _ordered(prompt.candidates, final)
    probs = ", ".join(f"{lab}={s:.2f}" for lab, s in zip(prompt.labels, llm, strict=True))
    method = "verbalizer" if prior is None else "verbalizer-calibrated"
    if prompt.scoring == "pointwise":
        method += "-pointwise"
    return Ranking(cands, scores, method, raw_output=f"label log-probs: {probs}")


def content_free_candidates(n: int) -> list[Candidate]:
    """n placeholder candidates ("N/A") for measuring the model's label prior."""
    from fusionrec.types import Item

    return [Candidate(Item(f"n/a-{i}", "N/A"), 0.0) for i in range(n)]


def label_prior(model: Any, tokenizer: Any, template: Any, n: int, **prompt_kwargs: Any) -> list[float]:
    """Label log-probabilities for a content-free prompt of n "N/A" candidates (contextual calibration,
    Zhao et al. 2021): what the model prefers before it sees any candidate."""
    from fusionrec.agent.prompt import build_rank_prompt

    prompt = build_rank_prompt(tokenizer, template, "N/A", content_free_candidates(n), **prompt_kwargs)
    return label_logprobs(model, None, prompt).tolist()


def _norm(text: str) -> str:
    return re.sub(r"[^0-9a-z]+", " ", text.lower()).strip()


_LETTER_RUN = re.compile(r"(?:\(?[A-Za-z]\)?(?:[\s.):\-]+|$))+")


def _answers(text: str) -> list[str]:
    """The separate answers of a generated ranking; runs of bare letters ("A. C.B") split per letter."""
    out = []
    text = re.sub(r",\s*(The)\b(?=\s*(?:[,\n;]|$))", r" \1", text)  # "Usual Suspects, The" stays one answer
    for raw in re.split(r"[,\n;]+|\s+>\s+", text):
        answer = raw.strip().strip("*").strip()
        if not answer:
            continue
        if _LETTER_RUN.fullmatch(answer):
            out.extend(re.findall(r"[A-Za-z]", answer))
        else:
            out.append(answer)
    return out


def _match_label(answer: str, by_label: dict[str, int]) -> int | None:
    """The candidate index of "C", "(C)", "C." or "C) Title" / "C. Title"; None otherwise."""
    m = re.fullmatch(r"\(?([A-Za-z])\)?[.):]?", answer) or re.match(r"^\(?([A-Za-z])[.):]\s*\S", answer)
    return by_label.get(m.group(1).upper()) if m else None


def parse_generated(
    text: str, names: Sequence[str], candidates: Sequence[Candidate]
) -> tuple[list[int], list[str]]:
    """(candidate indices in the order written, invalid answers) from a generated ranking.

    Each comma/newline/semicolon separated answer may be a label ("C", "C.", "(C)", "C) Title") or a
    title; duplicates, answers naming no candidate and unreadable answers are invalid.
    """
    by_label = {n.upper(): i for i, n in enumerate(names)}
    by_title: dict[str, int] = {}
    for i, c in enumerate(candidates):
        by_title.setdefault(_norm(c.item.title), i)
        if c.item.year:
            by_title.setdefault(_norm(f"{c.item.title} ({c.item.year})"), i)
    order: list[int] = []
    invalid: list[str] = []
    for answer in _answers(text):
        idx = _match_label(answer, by_label)
        if idx is None:
            key = _norm(re.sub(r"^\d+[.)]\s*", "", answer))
            idx = by_title.get(key)
            if idx is None:
                idx = next((i for t, i in by_title.items() if len(key) > 3 and (key in t or t in key)), None)
            if idx is None:
                loose = re.match(r"^([A-Za-z])\s", answer)  # "A Toy Story": a label followed by its title
                idx = by_label.get(loose.group(1).upper()) if loose else None
        if idx is None:
            single = re.fullmatch(r"\(?([A-Za-z])\)?[.):]?", answer)
            kind = "not a candidate" if single else "unparseable"
            invalid.append(f"{kind}: {answer[:80]}")
            continue
        if idx in order:
            invalid.append(f"duplicate: {answer[:80]}")
            continue
        order.append(idx)
    return order, invalid


def rank_generative(
    model: Any,
    tokenizer: Any,
    projectors: Projectors | None,
    prompt: RankPrompt,
    retrieval_weight: float = 0.0,
    max_new_tokens: int | None = None,
) -> Ranking:
    """Let the model write the ranking; parse it back; count invalid answers; append the rest."""
    n = len(prompt.candidates)
    embeds = prompt_embeds(model, projectors, prompt)
    budget = max_new_tokens or 3 * n + 8
    text = "".join(stream_text(tokenizer, greedy_ids(model, embeds, budget, stop_ids(tokenizer, model))))
    order, invalid = parse_generated(text, prompt.labels, prompt.candidates)
    ret = retrieval_scores(prompt.candidates)
    gen = [0.0] * n
    for pos, i in enumerate(order):
        gen[i] = 1.0 + (n - pos) / n  # mentioned ones above every unmentioned one
    final = [g + retrieval_weight * r for g, r in zip(gen, ret, strict=True)]
    # unmentioned candidates keep retrieval order among themselves (ties broken by score, then index)
    order_all = sorted(range(n), key=lambda i: (-final[i], -ret[i], i))
    cands = [prompt.candidates[i] for i in order_all]
    return Ranking(
        cands, [final[i] for i in order_all], "generative", raw_output=text.strip(), invalid=invalid
    )
