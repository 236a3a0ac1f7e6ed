"""LLM systems: the Agent's ranker (verbalizer or generative) over saved candidate sets.

`LLMRanker` runs exactly the agent's prompt builder and ranker (`agent.prompt.build_rank_prompt`,
`Agent.rank`) with a chosen prompt template, so prompt variants, the zero-shot model and a
LoRA-tuned checkpoint are compared on the same candidates. `ItemTokenAblation` re-scores one prompt
with different hybrid item tokens (none, one modality, several fused early in the LLM's embedding
space, or per-modality passes fused late / by the cross-modal attention weights).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fusionrec.agent.checkpoint import training_prompt
from fusionrec.config import Config
from fusionrec.evaluation.vectors import MODALITY_BLOCKS, NATIVE_BLOCK, PROJECTOR_OF, VectorTable
from fusionrec.retrieval.collaborative.bpr import with_collab
from fusionrec.types import Candidate, Item, Turn

# The leave-one-out request and history format of finetune/prompts.py (`SEQ_REQUEST`,
# `history_attachments`): the watched items are attachments of kind "item" (title as data + the
# item's soft token), so a LoRA checkpoint is evaluated on the prompts it was trained on.
SEQ_REQUEST = (
    "Recommend the movie I should watch next. The movies I watched are attached, the most recent last."
)


def history_attachments(
    items: Mapping[str, Item], history: Sequence[str], vectors: Mapping[str, np.ndarray] | None, n: int = 20
) -> list[Any]:
    """The `n` most recent watched items as attachments (vector None = title only)."""
    from fusionrec.agent.prompt import AttachmentInput

    out = []
    for i in history[-n:] if n > 0 else []:
        it = items[i]
        year = f" ({it.year})" if it.year else ""
        out.append(AttachmentInput("item", None if vectors is None else vectors.get(i), f"{it.title}{year}"))
    return out


def liked_request(items: Mapping[str, Item], history: Sequence[str]) -> str:
    """The explanation request of the leave-one-out protocol (the user's three latest titles)."""
    titles = [items[i].title for i in history[-3:] if i in items]
    if not titles:
        return "Recommend me a good movie."
    joined = titles[0] if len(titles) == 1 else ", ".join(titles[:-1]) + " and " + titles[-1]
    return f"I liked {joined}. What should I watch next?"


@dataclass
class PromptSettings:
    """What shapes a ranking prompt: template, overview length, token budget, history items."""

    template: str
    overview_chars: int
    max_prompt_tokens: int
    history_len: int = 20
    scoring: str = "listwise"


def checkpoint_settings(folder: Path | None) -> dict[str, Any]:
    """The PromptSettings a finetune checkpoint was trained with (`agent.checkpoint.training_prompt`)."""
    if folder is None:
        return {}
    return training_prompt(folder)


def find_adapter(cfg: Config) -> Path | None:
    """The adapter the agent would load (`agent.resolve_adapter`): `agent.adapter` as a folder, the
    shipped one when it fits the LLM, else None. Checkpoints it is not told about are never used."""
    from fusionrec.agent.adapter import resolve_adapter

    return resolve_adapter(cfg)[0]


def make_agent(cfg: Config, adapter: Path | None, retriever: Any = None, dataset: str = "") -> Any:
    """An Agent on a copy of `cfg` with `agent.adapter` set to `adapter` ("" = zero-shot)."""
    from fusionrec.agent.agent import Agent

    c = dataclasses.replace(cfg, agent=dataclasses.replace(cfg.agent, adapter=str(adapter or "")))
    return Agent(c, retriever=retriever, dataset=dataset)


@dataclass
class LLMResult:
    """One ranked example: the order, the model's own answers (generative), timing."""

    order: list[str]
    seconds: float
    answers: list[str] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)
    raw: str = ""
    prompt_tokens: int = 0


@dataclass
class LLMRanker:
    """The agent's ranking with one method and one prompt setting."""

    agent: Any
    method: str  # verbalizer | generative
    settings: PromptSettings
    name: str

    def prompt(
        self,
        request: str,
        candidates: Sequence[Candidate],
        history: Sequence[Turn] = (),
        attachments: Sequence[Any] = (),
        vectors: Any = True,
    ) -> Any:
        """The ranking prompt; `vectors` True = the agent's item vectors, a dict = these, None = none."""
        from fusionrec.agent.prompt import build_rank_prompt, load_template

        if vectors is True:
            vectors = self.agent.item_vectors([c.item for c in candidates])
        return build_rank_prompt(
            self.agent.tokenizer,
            load_template(self.settings.template),
            request,
            candidates,
            history=history,
            constraints="none",
            item_vectors=vectors or {},
            attachments=attachments,
            max_tokens=self.settings.max_prompt_tokens,
            overview_chars=self.settings.overview_chars,
            placeholder=self.agent.placeholder,
            scoring=self.settings.scoring,
        )

    def loo_prompt(
        self,
        items: Mapping[str, Item],
        history: Sequence[str],
        candidates: Sequence[str],
        vectors: Any = True,
    ):
        """The leave-one-out prompt: fixed request, watched items attached, candidates labelled."""
        cands = [Candidate(items[c], 0.0) for c in candidates]
        if vectors is True:
            vectors = self.agent.item_vectors([items[i] for i in dict.fromkeys([*history, *candidates])])
        atts = history_attachments(items, history, vectors, self.settings.history_len)
        return self.prompt(SEQ_REQUEST, cands, attachments=atts, vectors=vectors)

    def rank_prompt(self, prompt: Any, t0: float | None = None) -> LLMResult:
        from fusionrec.agent.rank import parse_generated

        t0 = time.perf_counter() if t0 is None else t0
        ranking = self.agent.rank(prompt, self.method)
        seconds = time.perf_counter() - t0
        order = [c.item.id for c in ranking.candidates]
        result = LLMResult(order, seconds, raw=ranking.raw_output, prompt_tokens=len(prompt.encoded))
        if self.method == "generative":
            idx, invalid = parse_generated(ranking.raw_output, prompt.labels, prompt.candidates)
            result.answers = [prompt.candidates[i].item.id for i in idx]
            result.invalid = list(invalid)
        return result

    def rank_loo(
        self, items: Mapping[str, Item], history: Sequence[str], candidates: Sequence[str]
    ) -> LLMResult:
        t0 = time.perf_counter()
        return self.rank_prompt(self.loo_prompt(items, history, candidates), t0)

    def rank(self, request: str, candidates: Sequence[Candidate], history: Sequence[Turn] = ()) -> LLMResult:
        t0 = time.perf_counter()
        return self.rank_prompt(self.prompt(request, candidates, history), t0)


def explain_check(
    agent: Any, item: Item, request: str, template: str, titles: Sequence[str], genres: Sequence[str]
):
    """Generate one explanation of `item` and fact-check it: (passed, seconds, problems, raw text)."""
    from fusionrec.agent.explain import explain

    t0 = time.perf_counter()
    res = explain(
        agent.explainer,
        agent.tokenizer,
        item,
        request,
        template=template,
        catalog_titles=titles,
        catalog_genres=genres,
        max_new_tokens=agent.cfg.agent.max_new_tokens,
        repetition_penalty=agent.cfg.agent.repetition_penalty,
    )
    return not res.raw_problems, time.perf_counter() - t0, list(res.raw_problems), res.raw


# --- item-token ablation ----------------------------------------------------------------------------
class MixProjectors:
    """Wraps the agent's projectors: a slot whose modality is "mix:<slot>" gets the weighted mean of
    several projected vectors (early fusion in the LLM's embedding space); other keys pass through."""

    def __init__(self, base: Any, parts: Mapping[str, list[tuple[str, np.ndarray, float]]]) -> None:
        self.base, self.parts = base, parts

    def project(self, key: str, vectors: Any, like: Any = None) -> Any:
        if not key.startswith("mix:"):
            return self.base.project(key, vectors, like=like)
        parts = self.parts[key[4:]]
        total = sum(w for _, _, w in parts)
        out = None
        for proj_key, vec, w in parts:
            p = self.base.project(proj_key, vec, like=like) * (w / total)
            out = p if out is None else out + p
        return out


def _modality_weight(weights: Mapping[str, float], modality: str) -> float:
    return float(weights.get(modality, 1.0))


@dataclass
class ItemTokenAblation:
    """Label log-probabilities of one prompt under different item tokens (verbalizer, one pass each)."""

    agent: Any
    table: VectorTable
    weights: Mapping[str, float]
    cross: Any = None
    passes: int = 0

    def _native(self, modality: str, item_id: str) -> np.ndarray | None:
        """The vector the modality's projector takes (the item projector's with the adapter's BPR part)."""
        v = self.table.get(NATIVE_BLOCK[modality], item_id)
        if v is not None and PROJECTOR_OF[modality] == "item" and self.agent.collab:
            v = with_collab({item_id: v}, self.agent.collab)[item_id]
        return v

    def _slot_vectors(self, candidates: Sequence[str], modalities: Sequence[str]) -> dict[str, list]:
        """Per candidate: [(projector key, native vector, weight)] for the requested modalities it has."""
        out = {}
        for c in candidates:
            parts = []
            for m in modalities:
                v = self._native(m, c)
                if v is not None:
                    parts.append((PROJECTOR_OF[m], v, _modality_weight(self.weights, m)))
            if not parts:  # an item with none of them keeps its text token
                parts.append((PROJECTOR_OF["text"], self._native("text", c), 1.0))
            out[c] = parts
        return out

    def logprobs(
        self, prompt: Any, modalities: Sequence[str] | None, slot_items: Mapping[str, str] | None = None
    ) -> np.ndarray:
        """(n,) label log-probs with the item slots (`slot_items`: slot key -> item id; default: the
        candidates' slots) filled from `modalities`; None = the prompt as built."""
        from fusionrec.agent.prompt import SoftInput
        from fusionrec.agent.rank import label_logprobs

        self.passes += 1
        if modalities is None:
            return label_logprobs(self.agent.model, self.agent.projectors, prompt).numpy()
        if slot_items is None:
            slot_items = {
                f"item:{lab}": c.item.id for lab, c in zip(prompt.labels, prompt.candidates, strict=True)
            }
        parts = self._slot_vectors(list(dict.fromkeys(slot_items.values())), modalities)
        soft, mix = dict(prompt.soft_inputs), {}
        for key, item_id in slot_items.items():
            if key in soft:
                mix[key] = parts[item_id]
                soft[key] = SoftInput(f"mix:{key}", np.zeros(1, np.float32))
        mixed = dataclasses.replace(prompt, soft_inputs=soft)
        return label_logprobs(self.agent.model, MixProjectors(self.agent.projectors, mix), mixed).numpy()

    def late(
        self, singles: Mapping[str, np.ndarray], modalities: Sequence[str], ids: Sequence[str]
    ) -> np.ndarray:
        """Weighted mean of per-modality log-probs over the modalities each candidate has."""
        out = np.zeros(len(ids))
        for k, c in enumerate(ids):
            have = [m for m in modalities if m == "text" or self.table.get(NATIVE_BLOCK[m], c) is not None]
            w = np.array([_modality_weight(self.weights, m) for m in have])
            out[k] = float(np.dot(w, [singles[m][k] for m in have]) / w.sum())
        return out

    def cross_fused(
        self,
        singles: Mapping[str, np.ndarray],
        modalities: Sequence[str],
        ids: Sequence[str],
        history: Sequence[str],
    ) -> np.ndarray:
        """Per-modality log-probs weighted by the cross-modal attention over the item's blocks."""
        from fusionrec.evaluation.baselines import cross_weights

        module = self.cross
        profile = {b: p for b in module.blocks if (p := self.table.profile(b, history)) is not None}
        present = {c: {b: 1 for b in module.blocks if self.table.get(b, c) is not None} for c in ids}
        w = cross_weights(module, self.table, profile, ids, present).numpy()  # (n, M)
        out = np.zeros(len(ids))
        for k, _c in enumerate(ids):
            per_mod = {
                m: sum(w[k, j] for j, b in enumerate(module.blocks) if b in MODALITY_BLOCKS[m])
                for m in modalities
            }
            total = sum(per_mod.values())
            if total <= 0:
                out[k] = float(np.mean([singles[m][k] for m in modalities]))
            else:
                out[k] = float(sum(per_mod[m] * singles[m][k] for m in modalities) / total)
        return out
