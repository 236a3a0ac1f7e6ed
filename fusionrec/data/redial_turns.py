"""ReDial recommender turns: what training (finetune) and evaluation both read.

Every recommender message that names a ReDial movie is one example per named movie; the context is the
messages before it and the movies mentioned before it, ordered by their latest mention (`new` = not
mentioned yet). `request_and_history` turns a context into the ranking prompt's request (the seeker's
last message) and dialogue history, the same way for training and evaluation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fusionrec.data.loo import ExampleError

DEFAULT_REQUEST = "a good movie"


@dataclass
class DialogueExample:
    """One ReDial recommender mention: the context before the turn and the ReDial movie it names."""

    conversation_id: str
    turn: int  # index of the recommender message in the dialogue
    target: str  # ReDial movie id named in that message
    context: list[dict[str, str]] = field(default_factory=list)  # [{"role", "text"}] before the turn
    mentioned: list[str] = field(default_factory=list)  # before the turn, most recent mention last

    @property
    def key(self) -> str:
        return f"dialogue:{self.conversation_id}:{self.turn}:{self.target}"

    @property
    def new(self) -> bool:
        """Whether the target was not mentioned earlier in the dialogue."""
        return self.target not in self.mentioned


def redial_examples(records: Sequence[dict[str, Any]], path: str = "dialogues") -> list[DialogueExample]:
    """One example per (recommender message, ReDial movie it names), with the context before it."""
    out = []
    for n, rec in enumerate(records):
        try:
            cid, messages = str(rec["conversation_id"]), rec["messages"]
        except (KeyError, TypeError):
            raise ExampleError(f"{path}: record {n}: expected conversation_id and messages") from None
        mentioned: list[str] = []
        context: list[dict[str, str]] = []
        for t, m in enumerate(messages):
            ids = list(dict.fromkeys(str(i) for i in m.get("movie_ids") or []))
            if m.get("role") == "recommender":
                for target in ids:
                    out.append(DialogueExample(cid, t, target, list(context), list(mentioned)))
            context.append({"role": str(m.get("role", "")), "text": str(m.get("text", ""))})
            mentioned = [i for i in mentioned if i not in ids] + ids
    return out


def mentions(record: Mapping[str, Any]) -> list[str]:
    """The ReDial movie ids a dialogue names, message by message, repeats kept."""
    return [str(i) for m in record.get("messages", []) for i in m.get("movie_ids") or []]


def mention_counts(records: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """How often each ReDial movie is named in the given dialogues (the ReDial popularity baseline)."""
    counts: dict[str, int] = {}
    for rec in records:
        for i in mentions(rec):
            counts[i] = counts.get(i, 0) + 1
    return counts


def context_text(example: DialogueExample, turns: int = 6) -> str:
    """The last `turns` context messages as one query text ("Seeker: ... Recommender: ...")."""
    msgs = example.context[-turns:] if turns > 0 else example.context
    return " ".join(f"{m['role'].capitalize()}: {m['text']}" for m in msgs if m["text"].strip())


def request_and_history(
    context: Sequence[Mapping[str, str]], turns: int = 6
) -> tuple[str, list[tuple[str, str]]]:
    """(request, history) of a ranking prompt from the last `turns` messages: consecutive messages of
    one side merged, the seeker's last message the request, what came before it (and any recommender
    message after it) the history as (user|assistant, text), oldest first."""
    merged: list[tuple[str, str]] = []
    for m in context[-turns:] if turns > 0 else context:
        text = " ".join(str(m.get("text", "")).split())
        if not text:
            continue
        role = "user" if m.get("role") == "seeker" else "assistant"
        if merged and merged[-1][0] == role:
            merged[-1] = (role, merged[-1][1] + " " + text)
        else:
            merged.append((role, text))
    last = max((k for k, (role, _) in enumerate(merged) if role == "user"), default=-1)
    if last < 0:
        return DEFAULT_REQUEST, merged
    return merged[last][1], merged[:last] + merged[last + 1 :]
