"""Evaluation protocols: ML-100k leave-one-out with 20 candidates, and ReDial recommender turns.

ML-100k leave-one-out (`fusionrec.data.loo`, shared with finetune, which saves the sets to
``cfg.data_dir/movielens-100k/candidates_{valid,test}.json``): each user's items sorted by
(timestamp, item id); the last one is the test target, the one before the validation target; the
history is the up-to-`history_len` most recent items before the target (oldest first); the
candidates are the target plus `num_negatives` items the user never rated, sampled and shuffled by
`random.Random(f"{seed}:{split}:{user}")`. When the finetune file exists it is read (and
validated) instead, so both areas score exactly the same candidates (hard negatives included).

ReDial turns (`fusionrec.data.redial_turns`, shared with finetune): every recommender message that
names a ReDial movie is one example per named movie.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fusionrec.config import Config
from fusionrec.data import loo
from fusionrec.data.loo import ExampleError, LOOExample, NegativeSampler, eval_examples, leave_one_out
from fusionrec.data.splits import user_sequences
from fusionrec.types import Interaction

ML100K = "movielens-100k"

# A candidate file or dialogue record is malformed (the message names the file and the record): the
# error of `fusionrec.data.loo`, under the name `fusionrec eval` reports.
ProtocolError = ExampleError


# --- ML-100k leave-one-out ------------------------------------------------------------------------
def build_loo(
    interactions: Sequence[Interaction],
    item_ids: Sequence[str],
    split: str = "test",
    seed: int = 0,
    num_negatives: int = 19,
    history_len: int = 20,
) -> list[LOOExample]:
    """The leave-one-out examples of one split with random negatives (`fusionrec.data.loo.eval_examples`,
    what finetune saves with random negatives): users with at least 3 items."""
    splits = leave_one_out(user_sequences(interactions))
    return eval_examples(
        splits, split, NegativeSampler(map(str, item_ids)), seed, num_negatives + 1, history_len
    )


def candidates_path(cfg: Config, split: str) -> Path:
    """Where finetune saves the ML-100k candidate sets of a split."""
    return loo.candidates_path(cfg, ML100K, split)


def file_digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load_loo(
    cfg: Config, items_ids: Sequence[str], interactions: Sequence[Interaction], split: str = "test"
) -> tuple[list[LOOExample], dict[str, Any]]:
    """(examples, where they came from): the finetune file when present, else built here (seeded)."""
    path = candidates_path(cfg, split)
    ecfg = cfg.eval
    if path.is_file():
        examples = loo.read_candidates(path, items_ids)
        info: dict[str, Any] = {"source": "finetune file", "path": str(path), "sha256": file_digest(path)}
        meta = loo.candidates_meta_path(cfg, ML100K)
        if meta.is_file():
            info["meta"] = json.loads(meta.read_text(encoding="utf-8"))
        return examples, info
    examples = build_loo(interactions, items_ids, split, ecfg.seed, ecfg.num_negatives, ecfg.example_history)
    digest = hashlib.sha256(json.dumps([e.to_dict() for e in examples]).encode()).hexdigest()
    return examples, {
        "source": "built by evaluation.protocols (finetune file not found)",
        "path": str(path),
        "sha256": digest,
        "seed": ecfg.seed,
        "num_negatives": ecfg.num_negatives,
        "history_len": ecfg.example_history,
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
