"""The turn loop: prompts, ranking, explanations."""

from __future__ import annotations

import math
from dataclasses import dataclass

from fusionrec.settings import check_range

SCORINGS = ("listwise", "pointwise")  # how the verbalizer reads the candidates' scores (agent.scoring)
RANKERS = ("verbalizer", "generative")  # agent.ranker
EXPLAINERS = ("auto", "adapter", "base")  # agent.explain_with
ANSWER_LANGUAGES = ("auto", "user", "en")  # agent.answer_language
ATTACHMENT_TOKENS = ("trained", "always", "never")  # agent.attachment_tokens
CHAT_PRIORS = ("auto", "sequential", "conversation")  # agent.chat_prior
LIMITS: dict[str, tuple[float, float]] = {  # key -> (lowest, highest) accepted value
    "num_candidates": (1, 20),  # labels A..T
    "show_top_k": (1, 20),
    "explain_top_k": (0, 20),
    "max_new_tokens": (1, 1024),
    "max_prompt_tokens": (64, 131_072),
    "max_message_chars": (1, 100_000),
    "overview_chars": (0, 10_000),
    "retrieval_weight": (0, 1000),
    "chat_retrieval_weight": (0, 1000),
    "chat_prior_picks": (0, 20),
    "chat_prior_pool": (0, 10_000),
    "chat_prior_retrieval_weight": (0, 1000),
    "seed": (0, math.inf),
    "repetition_penalty": (1.0, 10.0),
    "query_turns": (0, 100),
    "torch_threads": (0, 1024),
    "max_attachment_mb": (1, 10_240),
}


@dataclass
class AgentConfig:
    num_candidates: int = 20  # candidates shown to the LLM (labels A..T, at most 20)
    ranker: str = "verbalizer"  # verbalizer (label logits, one pass) | generative (titles, parsed)
    scoring: str = "listwise"  # verbalizer: listwise (label logits at the answer) | pointwise (a score token at each candidate's item token; set by trained adapters)
    template: str = "default"  # prompt template name in agent/prompts/ (default | concise) or a .txt path
    calibrate: bool = False  # verbalizer: subtract the label prior of a content-free prompt (position bias)
    retrieval_weight: float = 0.0  # final score = LLM score + weight * retrieval score (min-max normalised)
    show_top_k: int = 5  # items shown per answer
    explain_top_k: int = 3  # items that get a generated explanation
    max_new_tokens: int = 60  # explanation length limit
    max_prompt_tokens: int = 1536  # dialogue is trimmed (oldest first), then overviews shortened, to fit
    max_message_chars: int = 2000  # longer user messages are refused with a clear reply
    adapter: str = "shipped"  # finetune checkpoint folder (LoRA + projectors + prior); "shipped" = the adapter in agent/adapters/ when it fits the LLM; "" = none (zero-shot)
    answer_language: str = "auto"  # explanations: auto (the user's language unless the LLM is the English-only SmolLM2) | user | en
    explain_with: str = "auto"  # explanations: auto (the adapter if it was trained to explain, else the base LLM) | adapter | base
    chat_retrieval_weight: float = 1.0  # residual ranker in a chat: weight of the standardised retrieval score added to the prior (chosen on the request benchmark's tuning half with the lexical re-scoring, docs/results/chat_ranking.md)
    chat_prior: str = "auto"  # a chat turn's prior: conversation (the adapter's dialogue residual over its conversational prior, as on ReDial turns) | sequential (its residual over the collaborative prior) | auto (conversation when that prior counts this catalog's films, e.g. data.dataset=redial)
    chat_prior_picks: int = 5  # conversation prior: candidates it proposes (its best films the filters allow), the rest from retrieval (docs/results/redial_chat.md)
    chat_prior_pool: int = 0  # conversation prior: it picks among retrieval's top N films (0 = among every film the filters allow)
    chat_prior_retrieval_weight: float = 1.0  # conversation prior: weight of the standardised retrieval score added to it (agent.chat_retrieval_weight's twin; docs/results/redial_chat.md)
    overview_chars: int = 200  # overview characters per candidate in the ranking prompt (0 = titles only)
    seed: int = 0  # seed of freshly initialised projectors (when no adapter is given)
    placeholder_token: str = ""  # token written at soft-token positions; "" = an unused special token
    repetition_penalty: float = 1.2  # explanation decoding (greedy); 1.0 = off
    query_turns: int = 2  # earlier user messages added to the retrieval query (keeps the topic)
    # >0: torch.set_num_threads(n) at Agent start; 0 = all cores for chat, cores / ui.concurrency for serve
    torch_threads: int = 0
    max_attachment_mb: int = 25  # larger uploads are refused with a clear reply
    attachment_tokens: str = "trained"  # uploads as soft tokens: trained (only kinds whose projector the adapter trained; the rest go in as text) | always | never

    def check(self) -> None:
        """Raise ValueError naming the key and its value when a setting is unknown or out of range."""
        for key, known in (("ranker", RANKERS), ("scoring", SCORINGS), ("explain_with", EXPLAINERS),
                           ("answer_language", ANSWER_LANGUAGES), ("attachment_tokens", ATTACHMENT_TOKENS),
                           ("chat_prior", CHAT_PRIORS)):
            if getattr(self, key) not in known:
                raise ValueError(f"agent.{key}={getattr(self, key)!r}: expected one of {', '.join(known)}")
        for key, (low, high) in LIMITS.items():
            check_range(f"agent.{key}", getattr(self, key), low, high)
