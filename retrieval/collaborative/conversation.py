"""The conversational prior of ReDial turns: counts over training dialogues, no model.

Scores over a catalog from the movies a dialogue has mentioned so far:
- repeat: the mentioned movies, the most recent highest;
- co-mention: how many training dialogues name each movie together with a mentioned one;
- popularity: mentions in the training dialogues.
`order` ranks the catalog by such scores (the first decides, the next break its ties, then popularity,
then catalog order). The prior the residual ranker reads is repeat, then co-mention (the best count
system on ReDial's validation dialogues, `docs/results/redial.md`): `candidates` are the mentioned
movies (most recent first) and its top new movies, in its order, and `scores` turn that order into
standardised scores. `leave_out` drops one training dialogue's counts, so a training example drawn from
that dialogue is scored as out-of-sample as a test turn. Saved beside an adapter as
``conversation_prior.json`` (the catalog and each training dialogue's mentions).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fusionrec.data.redial_turns import mentions

PRIOR_FILE = "conversation_prior.json"


class ConversationPrior:
    """Mention counts of training dialogues over a catalog (ids in catalog order)."""

    def __init__(self, catalog: Sequence[str], dialogues: Mapping[str, Sequence[str]]) -> None:
        self.catalog = [str(c) for c in catalog]
        self.index = {c: k for k, c in enumerate(self.catalog)}
        self.dialogues = {
            str(d): [str(i) for i in ids if str(i) in self.index] for d, ids in dialogues.items()
        }
        self.popularity = np.zeros(len(self.catalog))
        self.co: dict[int, dict[int, float]] = {}
        for ids in self.dialogues.values():
            self._count(ids)

    @classmethod
    def from_records(cls, catalog: Sequence[str], records: Sequence[Mapping[str, Any]]) -> ConversationPrior:
        """The prior of these dialogue records (each record's mentions, repeats kept)."""
        return cls(catalog, {str(r["conversation_id"]): mentions(r) for r in records})

    def _count(self, ids: Sequence[str]) -> None:
        """Add one dialogue's mentions (leave-one-out subtracts them at scoring time, `pop`/`co_mention`)."""
        for i in ids:
            self.popularity[self.index[i]] += 1.0
        distinct = [self.index[i] for i in dict.fromkeys(ids)]
        for a in distinct:
            row = self.co.setdefault(a, {})
            for b in distinct:
                if b != a:
                    row[b] = row.get(b, 0.0) + 1.0

    # --- scores ------------------------------------------------------------------------------------
    def pop(self, leave_out: str | None = None) -> np.ndarray:
        """Mentions per catalog movie (without dialogue `leave_out`)."""
        if leave_out is None or leave_out not in self.dialogues:
            return self.popularity
        out = self.popularity.copy()
        for i in self.dialogues[leave_out]:
            out[self.index[i]] -= 1.0
        return out

    def repeat(self, mentioned: Sequence[str]) -> np.ndarray:
        """The mentioned movies (oldest to most recent mention), the most recent highest; 0 elsewhere."""
        score = np.zeros(len(self.catalog))
        for pos, mid in enumerate(mentioned, start=1):
            if mid in self.index:
                score[self.index[mid]] = pos
        return score

    def co_mention(self, mentioned: Sequence[str], leave_out: str | None = None) -> np.ndarray:
        """Summed training co-occurrence counts with the mentioned movies (without dialogue `leave_out`)."""
        score = np.zeros(len(self.catalog))
        for mid in mentioned:
            for k, n in self.co.get(self.index.get(mid, -1), {}).items():
                score[k] += n
        own = [self.index[i] for i in dict.fromkeys(self.dialogues.get(leave_out or "", []))]
        if own:
            own_set = set(own)
            for mid in mentioned:
                a = self.index.get(mid, -1)
                if a in own_set:
                    for b in own:
                        if b != a:
                            score[b] -= 1.0
        return score

    def order(
        self, *scores: np.ndarray, exclude: Sequence[str] = (), leave_out: str | None = None
    ) -> list[str]:
        """Catalog ids by the scores (the first decides, the next break its ties), then popularity, then
        catalog order; `exclude` left out."""
        keys = [np.arange(len(self.catalog)), -self.pop(leave_out), *(-s for s in reversed(scores))]
        idx = np.lexsort(keys)
        drop = {self.index[i] for i in exclude if i in self.index}
        return [self.catalog[k] for k in idx if k not in drop]

    def ranking(
        self, mentioned: Sequence[str], exclude: Sequence[str] = (), leave_out: str | None = None
    ) -> list[str]:
        """The prior's whole-catalog order: repeat, then co-mention, then popularity."""
        return self.order(
            self.repeat(mentioned),
            self.co_mention(mentioned, leave_out),
            exclude=exclude,
            leave_out=leave_out,
        )

    def candidates(
        self, mentioned: Sequence[str], n: int = 20, max_mentioned: int = 5, leave_out: str | None = None
    ) -> list[str]:
        """What the LLM re-ranks, `n` in all: the `max_mentioned` most recently mentioned catalog movies,
        then the prior's top movies not mentioned; in the prior's order."""
        recent = [m for m in reversed(mentioned) if m in self.index][: min(max_mentioned, n)]
        fresh = self.ranking(mentioned, exclude=mentioned, leave_out=leave_out)[: n - len(recent)]
        return recent + fresh

    def covers(self, ids: Sequence[str]) -> float:
        """The share of `ids` that are movies of this prior's catalog (0 for none)."""
        ids = list(ids)
        return sum(1 for i in ids if str(i) in self.index) / len(ids) if ids else 0.0

    def scores_of(
        self, mentioned: Sequence[str], ids: Sequence[str], leave_out: str | None = None
    ) -> list[float]:
        """`scores` of `ids` (any order) by their place in the prior's order among them; ids outside the
        catalog come last, in their given order."""
        wanted = {str(i) for i in ids}
        order = [i for i in self.ranking(mentioned, leave_out=leave_out) if i in wanted]
        order += [str(i) for i in ids if str(i) not in self.index]
        place = {i: k for k, i in enumerate(order)}
        s = self.scores(len(order))
        return [s[place[str(i)]] for i in ids]

    @staticmethod
    def scores(n: int) -> list[float]:
        """Standardised prior scores of `n` candidates in the prior's order (-log(1 + position))."""
        x = np.array([-math.log1p(k) for k in range(n)])
        sd = x.std()
        return ((x - x.mean()) / sd).tolist() if sd > 0 else [0.0] * n

    # --- persistence -------------------------------------------------------------------------------
    def save(self, folder: Path) -> None:
        data = {"catalog": self.catalog, "dialogues": self.dialogues}
        Path(folder, PRIOR_FILE).write_text(json.dumps(data, separators=(",", ":")), encoding="utf-8")

    @classmethod
    def load(cls, folder: Path) -> ConversationPrior | None:
        """The prior saved in `folder`, or None when it has none (ValueError naming a malformed file)."""
        path = Path(folder, PRIOR_FILE)
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(data["catalog"], data["dialogues"])
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"{path}: malformed conversational prior ({exc})") from None
