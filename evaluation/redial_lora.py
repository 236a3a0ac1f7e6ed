"""The trained ranker on ReDial turns: the adapter's dialogue residual over the conversational prior.

Per recommender turn (its targets share it) one forward pass, as the trainer's dialogue task built it
(`finetune.data.turn_examples`): the candidates are the conversational prior's (the movies mentioned so
far, then its top new movies), the prompt is the seeker's last message with the dialogue before it, and
`Agent.dialogue_views` gives three views: `lora-hybrid` (the residual mix), `lora-llm` and `lora-prior`.
The whole-catalog ranking is the candidates by the view, then the prior's order of the rest; `new` drops
the movies mentioned before. The prior is the evaluation's own (the dialogues of the splits not evaluated).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from fusionrec.agent.checkpoint import read_adapter_recipe
from fusionrec.agent.residual import DIALOGUE_RESIDUAL_FILE
from fusionrec.data.redial_turns import DialogueExample, request_and_history
from fusionrec.retrieval.collaborative.conversation import ConversationPrior
from fusionrec.types import Candidate, Item, Turn

SYSTEMS = ("lora-hybrid", "lora-llm", "lora-prior")


def unavailable_reason(adapter: Path | None) -> str:
    """Why the adapter cannot rank ReDial turns ("" when it can)."""
    if adapter is None or not adapter.is_dir():
        return "no adapter (agent.adapter)"
    if not (adapter / DIALOGUE_RESIDUAL_FILE).is_file():
        return f"{adapter} was not trained on ReDial turns (no {DIALOGUE_RESIDUAL_FILE})"
    return ""


class DialogueRanker:
    """One forward pass per turn, kept for the turn's targets and the three views (a few floats per turn)."""

    def __init__(
        self, agent: Any, adapter: Path, prior: ConversationPrior, items: Mapping[str, Item]
    ) -> None:
        self.agent, self.prior, self.items = agent, prior, items
        self.n, self.mentioned, self.turns = read_adapter_recipe(adapter).data.dialogue()
        self._views: dict[tuple[str, int], tuple[list[str], dict[str, list[float]]]] = {}

    def views(self, ex: DialogueExample) -> tuple[list[str], dict[str, list[float]]]:
        """(candidates in the prior's order, {"hybrid"|"llm"|"prior": score per candidate})."""
        key = (ex.conversation_id, ex.turn)
        if key not in self._views:
            cands = self.prior.candidates(ex.mentioned, self.n, self.mentioned)
            request, history = request_and_history(ex.context, self.turns)
            prompt = self.agent.build_prompt(
                request,
                [Candidate(self.items[i], 0.0) for i in cands],
                history=[Turn(role, text) for role, text in history],  # type: ignore[arg-type]
            )
            if [c.item.id for c in prompt.candidates] != cands:
                raise RuntimeError(f"{ex.key}: the prompt dropped candidates")
            self._views[key] = (cands, self.agent.dialogue_views(prompt, self.prior.scores(len(cands))))
        return self._views[key]

    def system(self, name: str) -> Callable[[DialogueExample, bool], list[str]]:
        """(example, new) -> the whole-catalog ranking of view `name` (lora-hybrid | lora-llm | lora-prior)."""
        view = name.removeprefix("lora-")

        def rank(ex: DialogueExample, new: bool) -> list[str]:
            if view == "prior":  # the prior's view needs no forward pass: its scores fall with the position
                cands = self.prior.candidates(ex.mentioned, self.n, self.mentioned)
                scores = self.prior.scores(len(cands))
            else:
                cands, views = self.views(ex)
                scores = views[view]
            head = [cands[k] for k in sorted(range(len(cands)), key=lambda k: -scores[k])]
            taken = set(cands)
            order = head + [c for c in self.prior.ranking(ex.mentioned) if c not in taken]
            return [c for c in order if c not in ex.mentioned] if new else order

        return rank
