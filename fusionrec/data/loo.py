"""Leave-one-out examples and candidate files: what training (finetune) and evaluation both read.

Each user's items in time order (`fusionrec.data.splits.user_sequences`): the LAST one is the test target,
the one before it the validation target, the rest is training (`leave_one_out`; users with fewer
than 3 items train only). A validation/test example (`eval_examples`) is (history, candidates,
target): the up-to-`history_len` most recent items before the target (oldest first) and the target
plus negatives the user never rated, sampled (`NegativeSampler`: uniform, or hard ones from
retrieval) and shuffled by `random.Random(f"{seed}:{split}:{user}")`.

Candidate files (written by `finetune.data.candidate_sets`, read by both areas so every method ranks
the same sets): ``cfg.data_dir/<dataset>/candidates_{valid,test}.json``, each a JSON list of
``{"user", "target", "history": [oldest first], "candidates": [shuffled, target included]}``, beside
``candidates_meta.json`` (the settings they were built with).
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fusionrec.config import Config
from fusionrec.data.splits import id_key
from fusionrec.text import one_line

SPLITS = ("valid", "test")
CANDIDATES_META = "candidates_meta.json"


class ExampleError(ValueError):
    """Examples cannot be built or read (too few items, a malformed candidate file or record); the
    message names the file and the record."""


@dataclass
class LOOExample:
    """One next-item example: history (oldest first) -> target among the candidates (shown order)."""

    user: str
    target: str
    history: list[str]
    candidates: list[str]
    position: int = -1  # index of the target in the user's ordered sequence (-1 = valid/test)
    prior: list[float] = field(default_factory=list)  # the collaborative prior's score per candidate

    @property
    def key(self) -> str:
        return f"user:{self.user}"

    def to_dict(self) -> dict[str, Any]:
        """The candidate-file record: user, target, history, candidates."""
        return {"user": self.user, "target": self.target, "history": self.history, "candidates": self.candidates}


@dataclass
class UserSplit:
    """One user's ordered items split leave-one-out."""

    user: str
    train: list[str]
    valid: str | None
    test: str | None

    @property
    def all_items(self) -> list[str]:
        return self.train + [i for i in (self.valid, self.test) if i is not None]


def leave_one_out(sequences: dict[str, list[str]]) -> dict[str, UserSplit]:
    """Last item = test, second last = validation, the rest = training (users with < 3 items: train only)."""
    out = {}
    for user, seq in sequences.items():
        if len(seq) >= 3:
            out[user] = UserSplit(user, seq[:-2], seq[-2], seq[-1])
        else:
            out[user] = UserSplit(user, list(seq), None, None)
    return out


# --- negatives -------------------------------------------------------------------------------------
class NegativeSampler:
    """Negatives a user never rated: uniform with a seed, or hard ones from retrieval (top-k, sampled)."""

    def __init__(
        self,
        catalog_ids: Iterable[str],
        titles: dict[str, str] | None = None,
        retriever: Any = None,
        pool_k: int = 50,
    ) -> None:
        self.catalog_ids = sorted(set(catalog_ids), key=id_key)
        self.titles = titles or {}
        self.retriever = retriever
        self.pool_k = pool_k

    @property
    def strategy(self) -> str:
        return "retrieval" if self.retriever is not None else "random"

    def sample(self, rng: random.Random, rated: set[str], history: Sequence[str], n: int) -> list[str]:
        """`n` distinct item ids not in `rated`; retrieval ones first when a retriever is set."""
        chosen: list[str] = []
        if self.retriever is not None and history:
            query = "; ".join(self.titles.get(i, "") for i in history[-5:])
            try:
                hits = self.retriever.retrieve(query, exclude_ids=sorted(rated), k=self.pool_k)
            except Exception as exc:  # asked for retrieval negatives: no silent switch to random ones
                raise ExampleError(f"data.negatives=retrieval: the search failed ({one_line(str(exc))})") from None
            pool = [c.item.id for c in hits if c.item.id not in rated]
            chosen = rng.sample(pool, min(n, len(pool)))
        if len(chosen) < n:
            taken = rated | set(chosen)
            pool = [i for i in self.catalog_ids if i not in taken]
            if len(pool) < n - len(chosen):
                raise ExampleError(f"only {len(pool)} unrated items left for negatives, {n} needed")
            chosen += rng.sample(pool, n - len(chosen))
        return chosen


def make_example(
    user: str,
    seq: Sequence[str],
    pos: int,
    rated: set[str],
    sampler: NegativeSampler,
    num_candidates: int,
    history_len: int,
    rng: random.Random,
) -> LOOExample:
    """The example whose target is seq[pos]: history before it, target + sampled negatives, shuffled."""
    target = seq[pos]
    history = list(seq[max(0, pos - history_len) : pos])
    try:
        negatives = sampler.sample(rng, rated, history, num_candidates - 1)
    except ExampleError as exc:
        raise ExampleError(f"user {user}: {exc}") from None
    candidates = [target, *negatives]
    rng.shuffle(candidates)
    return LOOExample(user, target, history, candidates, pos)


def eval_examples(
    splits: dict[str, UserSplit],
    split: str,
    sampler: NegativeSampler,
    seed: int,
    num_candidates: int = 20,
    history_len: int = 20,
    users: Iterable[str] | None = None,
) -> list[LOOExample]:
    """Validation or test examples (one per user with a validation target), seeded per (seed, split, user)."""
    if split not in SPLITS:
        raise ExampleError(f"split must be one of {SPLITS}, got {split!r}")
    out = []
    for user in users if users is not None else splits:
        s = splits[user]
        if s.valid is None:
            continue
        seq = s.all_items
        pos = len(seq) - (2 if split == "valid" else 1)
        rng = random.Random(f"{seed}:{split}:{user}")
        ex = make_example(user, seq, pos, set(seq), sampler, num_candidates, history_len, rng)
        ex.position = -1
        out.append(ex)
    return out


# --- candidate files -------------------------------------------------------------------------------
def candidates_path(cfg: Config, dataset: str, split: str) -> Path:
    """Where the candidate sets of one split of `dataset` are saved."""
    return cfg.data_dir / dataset / f"candidates_{split}.json"


def candidates_meta_path(cfg: Config, dataset: str) -> Path:
    """The settings the saved candidate sets of `dataset` were built with."""
    return cfg.data_dir / dataset / CANDIDATES_META


def read_candidates(path: Path, item_ids: Iterable[str] | None = None) -> list[LOOExample]:
    """Read and validate a candidate file: every target among its candidates, no duplicate candidate
    and, given `item_ids`, every history item and candidate in the catalog (ExampleError naming the
    file and the record otherwise)."""
    path = Path(path)
    try:
        records = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ExampleError(f"{path}: missing (`fusionrec finetune` writes it)") from None
    except json.JSONDecodeError as exc:
        raise ExampleError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(records, list):
        raise ExampleError(f"{path}: expected a JSON list of records")
    known = {str(i) for i in item_ids} if item_ids is not None else None
    out = []
    for n, rec in enumerate(records):
        where = f"{path}: record {n}"
        if not isinstance(rec, dict) or not {"user", "target", "history", "candidates"} <= set(rec):
            raise ExampleError(f"{where}: expected the keys user, target, history, candidates")
        try:
            ex = LOOExample(
                str(rec["user"]),
                str(rec["target"]),
                [str(i) for i in rec["history"]],
                [str(i) for i in rec["candidates"]],
            )
        except TypeError:
            raise ExampleError(f"{where}: history and candidates must be lists of item ids") from None
        if ex.target not in ex.candidates:
            raise ExampleError(f"{where}: target {ex.target} is not among its candidates")
        if len(set(ex.candidates)) != len(ex.candidates):
            raise ExampleError(f"{where}: duplicate candidates")
        if known is not None:
            bad = [i for i in [*ex.candidates, *ex.history] if i not in known]
            if bad:
                raise ExampleError(f"{where}: item {bad[0]} is not in the catalog")
        out.append(ex)
    return out
