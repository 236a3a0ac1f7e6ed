"""The turn loop: prompts, ranking, explanations."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class AgentConfig:
    num_candidates: int = 20  # candidates shown to the LLM (labels A..T, at most 20)
    ranker: str = "verbalizer"  # verbalizer (label logits, one pass) | generative (titles, parsed)
    template: str = "default"  # prompt template name in agent/prompts/
    retrieval_weight: float = 0.0  # final score = LLM score + weight * retrieval score
    show_top_k: int = 5  # items shown per answer
    explain_top_k: int = 3  # items that get a generated explanation
    max_new_tokens: int = 60  # explanation length limit
    max_prompt_tokens: int = 1536  # dialogue is trimmed (oldest first) to fit
    max_message_chars: int = 2000  # longer user messages are refused with a clear reply
    adapter: str = ""  # finetune checkpoint folder (LoRA adapter + projectors); "" = none
