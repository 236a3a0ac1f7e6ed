"""Evaluation protocols: ML-100k leave-one-out with 20 candidates, and ReDial recommender turns.

ML-100k leave-one-out (the protocol of `finetune/data.py`, which saves the sets to
``cfg.data_dir/movielens-100k/candidates_{valid,test}.json``): each user's items sorted by
(timestamp, item id); the last one is the test target, the one before the validation target; the
history is the up-to-`history_len` most recent items before the target (oldest first); the
candidates are the target plus `num_negatives` items the user never rated, sampled and shuffled by
`random.Random(f"{seed}:{split}:{user}")`. When the finetune file exists it is read (and
validated) instead, so both areas score exactly the same candidates (hard negatives included).

ReDial: every recommender message that names an ML-100k item is one example per named item; the
context is the messages before it and the items mentioned before it (`new` = not mentioned yet).
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fusionrec.config import Config
from fusionrec.types import Interaction
from retrieval.splits import id_key, user_sequences

ML100K = "movielens-100k"
SPLITS = ("valid", "test")


class ProtocolError(ValueError):
    """A candidate file or dialogue record is malformed; the message names the file and the record."""


@dataclass
class LOOExample:
    """One leave-one-out example: ids as strings, history oldest first, candidates in shown order."""

    user: str
    target: str
    history: list[str]
    candidates: list[str]

    @property
    def key(self) -> str:
        return f"user:{self.user}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class DialogueExample:
    """One ReDial recommender mention: the context before the turn and the ML item it names."""

    conversation_id: str
    turn: int  # index of the recommender message in the dialogue
    target: str  # ML-100k item id named in that message
    context: list[dict[str, str]] = field(default_factory=list)  # [{"role", "text"}] before the turn
    mentioned: list[str] = field(default_factory=list)  # ML ids mentioned before the turn, in order

    @property
    def key(self) -> str:
        return f"dialogue:{self.conversation_id}:{self.turn}:{self.target}"

    @property
    def new(self) -> bool:
        """Whether the target was not mentioned earlier in the dialogue."""
        return self.target not in self.mentioned


# --- ML-100k leave-one-out ------------------------------------------------------------------------
def build_loo(
    interactions: Sequence[Interaction],
    item_ids: Sequence[str],
    split: str = "test",
    seed: int = 0,
    num_negatives: int = 19,
    history_len: int = 20,
) -> list[LOOExample]:
    """The leave-one-out examples of one split, byte-for-byte what `finetune/data.py` saves with
    random negatives: users with at least 3 items; a `random.Random(f"{seed}:{split}:{user}")`
    samples the negatives from the never-rated items (catalog in id order) and shuffles the candidates."""
    if split not in SPLITS:
        raise ValueError(f"split {split!r}: expected one of {', '.join(SPLITS)}")
    catalog = sorted({str(i) for i in item_ids}, key=id_key)
    out = []
    for user, seq in user_sequences(interactions).items():
        if len(seq) < 3:
            continue
        pos = len(seq) - (2 if split == "valid" else 1)
        rng = random.Random(f"{seed}:{split}:{user}")
        rated = set(seq)
        pool = [i for i in catalog if i not in rated]
        if len(pool) < num_negatives:
            raise ProtocolError(f"user {user}: only {len(pool)} unrated items for {num_negatives} negatives")
        cands = [seq[pos], *rng.sample(pool, num_negatives)]
        rng.shuffle(cands)
        out.append(LOOExample(user, seq[pos], list(seq[max(0, pos - history_len) : pos]), cands))
    return out


def candidates_path(cfg: Config, split: str) -> Path:
    """Where `finetune/data.py` saves the candidate sets of a split."""
    return cfg.data_dir / ML100K / f"candidates_{split}.json"


def read_candidates(path: Path, item_ids: Iterable[str] | None = None) -> list[LOOExample]:
    """Read and validate a saved candidate file (a JSON list of {user, target, history, candidates})."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ProtocolError(f"{path}: not valid JSON ({exc})") from None
    if isinstance(data, dict) and isinstance(data.get("examples"), list):
        data = data["examples"]
    if not isinstance(data, list):
        raise ProtocolError(f"{path}: expected a JSON list of examples")
    known = {str(i) for i in item_ids} if item_ids is not None else None
    out = []
    for n, rec in enumerate(data):
        where = f"{path}: example {n}"
        if not isinstance(rec, dict) or not {"user", "target", "history", "candidates"} <= set(rec):
            raise ProtocolError(f"{where}: expected the keys user, target, history, candidates")
        ex = LOOExample(
            str(rec["user"]),
            str(rec["target"]),
            [str(i) for i in rec["history"]],
            [str(i) for i in rec["candidates"]],
        )
        if ex.target not in ex.candidates:
            raise ProtocolError(f"{where}: target {ex.target} is not among its candidates")
        if len(set(ex.candidates)) != len(ex.candidates):
            raise ProtocolError(f"{where}: duplicate candidates")
        if known is not None:
            bad = [i for i in [*ex.candidates, *ex.history] if i not in known]
            if bad:
                raise ProtocolError(f"{where}: item {bad[0]} is not in the catalog")
        out.append(ex)
    return out


def file_digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load_loo(
    cfg: Config, items_ids: Sequence[str], interactions: Sequence[Interaction], split: str = "test"
) -> tuple[list[LOOExample], dict[str, Any]]:
    """(examples, where they came from): the finetune file when present, else built here (seeded)."""
    path = candidates_path(cfg, split)
    ecfg = cfg.eval
    if path.is_file():
        examples = read_candidates(path, items_ids)
        info: dict[str, Any] = {"source": "finetune file", "path": str(path), "sha256": file_digest(path)}
        meta = path.with_name("candidates_meta.json")
        if meta.is_file():
            info["meta"] = json.loads(meta.read_text(encoding="utf-8"))
        return examples, info
    examples = build_loo(interactions, items_ids, split, ecfg.seed, ecfg.num_negatives, ecfg.history_len)
    digest = hashlib.sha256(json.dumps([e.to_dict() for e in examples]).encode()).hexdigest()
    return examples, {
        "source": "built by evaluation.protocols (finetune file not found)",
        "path": str(path),
        "sha256": digest,
        "seed": ecfg.seed,
        "num_negatives": ecfg.num_negatives,
        "history_len": ecfg.history_len,
    }


def heldout_pairs(cfg: Config, items_ids: Sequence[str], interactions: Sequence[Interaction], split: str):
    """(user, item) pairs the baselines must not train on: this split's targets and later ones."""
    splits = ["test"] if split == "test" else ["valid", "test"]
    pairs = set()
    for s in splits:
        pairs |= {(e.user, e.target) for e in load_loo(cfg, items_ids, interactions, s)[0]}
    return pairs


def train_interactions(interactions: Sequence[Interaction], heldout: set[tuple[str, str]]):
    """The interactions left for training once the held-out (user, item) pairs are removed."""
    return [x for x in interactions if (str(x.user), str(x.item)) not in heldout]


# --- subsets ---------------------------------------------------------------------------------------
def seeded_order(n: int, seed: int) -> list[int]:
    """A seeded permutation of range(n); its prefixes are the nested subsets (limit, llm_limit)."""
    return [int(i) for i in np.random.default_rng([int(seed), 7919]).permutation(n)]


def subset(examples: Sequence[Any], limit: int, seed: int) -> list[Any]:
    """At most `limit` examples (a seeded choice, kept in their original order); all when limit <= 0."""
    if limit <= 0 or limit >= len(examples):
        return list(examples)
    keep = sorted(seeded_order(len(examples), seed)[:limit])
    return [examples[i] for i in keep]


# --- ReDial ---------------------------------------------------------------------------------------
def redial_examples(records: Sequence[dict[str, Any]], path: str = "dialogues") -> list[DialogueExample]:
    """One example per (recommender message, ML item it names), with the context before it."""
    out = []
    for n, rec in enumerate(records):
        try:
            cid, messages = str(rec["conversation_id"]), rec["messages"]
        except (KeyError, TypeError):
            raise ProtocolError(f"{path}: record {n}: expected conversation_id and messages") from None
        mentioned: list[str] = []
        context: list[dict[str, str]] = []
        for t, m in enumerate(messages):
            ml_ids = [str(i) for i in m.get("ml_item_ids") or []]
            if m.get("role") == "recommender":
                for target in dict.fromkeys(ml_ids):
                    out.append(DialogueExample(cid, t, target, list(context), list(mentioned)))
            context.append({"role": str(m.get("role", "")), "text": str(m.get("text", ""))})
            mentioned.extend(i for i in ml_ids if i not in mentioned)
    return out


def mention_counts(records: Sequence[dict[str, Any]]) -> dict[str, int]:
    """How often each ML item is named in the given dialogues (the ReDial popularity baseline)."""
    counts: dict[str, int] = {}
    for rec in records:
        for m in rec.get("messages", []):
            for i in m.get("ml_item_ids") or []:
                counts[str(i)] = counts.get(str(i), 0) + 1
    return counts


def context_text(example: DialogueExample, turns: int = 6) -> str:
    """The last `turns` context messages as one query text ("Seeker: ... Recommender: ...")."""
    msgs = example.context[-turns:] if turns > 0 else example.context
    return " ".join(f"{m['role'].capitalize()}: {m['text']}" for m in msgs if m["text"].strip())
