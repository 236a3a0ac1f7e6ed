"""Training examples from MovieLens-100k and ReDial.

MovieLens (sequential recommendation, leave-one-out by time; `fusionrec.data.loo` holds the split, the
example type, the negative sampler and the candidate-file reader the evaluation shares):
- each user's interactions are ordered by (timestamp, item id) — ties broken by the numeric item
  id, so the order is deterministic; the LAST one is the test target, the one before it the
  validation target, the rest is training;
- an example is (history, candidates, target): the up-to-`history_len` most recent items before
  the target (oldest first) and `num_candidates` candidates = the target + negatives the user
  never rated (any split), sampled with a seed per (user, position), or (`data.negatives=retrieval`)
  hard negatives from the ingested Chroma store, which must exist; candidates are shuffled with
  the same seed;
- every training position (sliding: the 2nd, 3rd ... training item) is an example with its own
  sampled candidates; the validation and test targets never appear in a training prompt of
  their user (they are rated, so never negatives, and come after every training target).

Candidate files (reused by the evaluation so every method ranks the same sets):
``cfg.data_dir/<dataset>/candidates_valid.json`` and ``candidates_test.json``, each a JSON list of
``{"user": str, "target": str, "history": [item id, ... oldest first, most recent last],
"candidates": [item id, ... shuffled, target included]}`` for every user, plus
``candidates_meta.json`` ({"seed", "negatives", "num_candidates", "history_len", "version"});
files whose meta matches the request are reused as they are.

ReDial (conversational, `data.redial`; over ReDial's own catalog): each (recommender message, movie it
names) of the train dialogues is an example (`fusionrec.data.redial_turns`): the seeker's last message
and the dialogue before it -> that movie, among the conversational prior's candidates
(`retrieval.collaborative.conversation`: the movies mentioned so far, then its top new movies) with the
prior's scores for residual scoring. A training example's prior leaves its own dialogue out; turns whose
target is not among the candidates cannot be supervised and are skipped. The valid dialogues are the
task's validation examples (prior from the train dialogues); the prior saved with the adapter counts
train + valid.

Explanations: targets are template sentences built only from the item's facts (genres, year,
first sentence of the overview), so they pass the agent's fact check by construction.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from fusionrec.agent.explain import first_sentence
from fusionrec.config import Config
from fusionrec.data.loo import (
    SPLITS,
    ExampleError,
    LOOExample,
    NegativeSampler,
    UserSplit,
    candidates_meta_path,
    candidates_path,
    eval_examples,
    leave_one_out,
    make_example,
    read_candidates,
)
from fusionrec.data.redial_turns import redial_examples, request_and_history
from fusionrec.data.splits import id_key, user_sequences
from fusionrec.retrieval.collaborative.conversation import ConversationPrior
from fusionrec.types import Item

log = logging.getLogger(__name__)

CANDIDATES_VERSION = 1
FILE_HISTORY_LEN = 20  # history kept in the candidate files (recipes may show fewer items)


# Examples cannot be built (too few items, malformed candidate file): the error of `fusionrec.data.loo`,
# under the name `finetune.run` reports.
DataError = ExampleError


@dataclass
class TurnExample:
    """A ReDial recommender turn: the seeker's request and the dialogue before it -> the named movie."""

    dialogue: str  # conversation id
    turn: int  # index of the recommender message in the dialogue
    request: str  # the seeker's last message
    history: list[tuple[str, str]]  # (user|assistant, text), oldest first
    target: str
    candidates: list[str]  # the conversational prior's candidates, in its order
    prior: list[float] = field(default_factory=list)  # the prior's standardised score per candidate


@dataclass
class ExplainExample:
    """An explanation target for `item` given a request (user message or liked titles)."""

    item: str
    request: str


def pick_users(splits: dict[str, UserSplit], max_users: int, seed: int) -> list[str]:
    """All users with a validation target, or a seeded sample of `max_users` of them (sorted by id)."""
    users = [u for u, s in splits.items() if s.valid is not None]
    if 0 < max_users < len(users):
        users = sorted(random.Random(f"{seed}:users").sample(users, max_users), key=id_key)
    return users


def train_examples(
    splits: dict[str, UserSplit],
    users: Iterable[str],
    sampler: NegativeSampler,
    seed: int,
    num_candidates: int = 20,
    history_len: int = 20,
    per_user: int = 0,
    min_history: int = 1,
) -> list[LOOExample]:
    """Sliding training examples: each training position with >= `min_history` items before it.

    `per_user` > 0 keeps each user's most recent positions only. Candidates are sampled per
    (seed, user, position), so a subset of users gets exactly the examples the full set would.
    """
    out = []
    for user in users:
        s = splits[user]
        rated = set(s.all_items)
        positions = list(range(max(1, min_history), len(s.train)))
        if per_user > 0:
            positions = positions[-per_user:]
        for pos in positions:
            rng = random.Random(f"{seed}:train:{user}:{pos}")
            out.append(make_example(user, s.train, pos, rated, sampler, num_candidates, history_len, rng))
    return out


# --- candidate files -------------------------------------------------------------------------------
def _meta(seed: int, sampler: NegativeSampler, num_candidates: int, history_len: int) -> dict[str, Any]:
    return {
        "seed": seed,
        "negatives": sampler.strategy,
        "num_candidates": num_candidates,
        "history_len": history_len,
        "version": CANDIDATES_VERSION,
    }


def candidate_sets(
    cfg: Config,
    dataset: str,
    splits: dict[str, UserSplit],
    sampler: NegativeSampler,
    seed: int,
    num_candidates: int = 20,
    history_len: int = 20,
    force: bool = False,
) -> dict[str, list[LOOExample]]:
    """Validation and test candidate sets for EVERY user: read when saved with the same settings, else written."""
    from fusionrec.data.catalog import atomic_write_text

    meta = _meta(seed, sampler, num_candidates, history_len)
    meta_path = candidates_meta_path(cfg, dataset)
    paths = {s: candidates_path(cfg, dataset, s) for s in SPLITS}
    if not force and meta_path.is_file() and all(p.is_file() for p in paths.values()):
        try:
            saved = json.loads(meta_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            saved = None
        if saved == meta:
            return {s: read_candidates(p) for s, p in paths.items()}
        log.warning("%s has other settings (%s); writing new candidate sets", meta_path, saved)
    out = {}
    for split, path in paths.items():
        out[split] = eval_examples(splits, split, sampler, seed, num_candidates, history_len)
        text = json.dumps([e.to_dict() for e in out[split]], indent=0) + "\n"
        atomic_write_text(path, text)
    atomic_write_text(meta_path, json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return out


def popularity(splits: dict[str, UserSplit]) -> dict[str, int]:
    """Training-interaction counts per item (validation and test targets excluded)."""
    counts: dict[str, int] = {}
    for s in splits.values():
        for i in s.train:
            counts[i] = counts.get(i, 0) + 1
    return counts


# --- ReDial ----------------------------------------------------------------------------------------
def turn_examples(
    records: Sequence[dict[str, Any]],
    prior: ConversationPrior,
    *,
    leave_out: bool,
    num_candidates: int = 20,
    max_mentioned: int = 5,
    context_turns: int = 6,
) -> list[TurnExample]:
    """Recommender turns of `records` -> examples whose target is among the prior's candidates; with
    `leave_out` each example's prior leaves its own dialogue out (the prior was counted on `records`)."""
    out = []
    for ex in redial_examples(records):
        if ex.target not in prior.index or not any(
            m["role"] == "seeker" and m["text"].strip() for m in ex.context
        ):
            continue
        own = ex.conversation_id if leave_out else None
        cands = prior.candidates(ex.mentioned, num_candidates, max_mentioned, leave_out=own)
        if ex.target in cands:
            request, history = request_and_history(ex.context, context_turns)
            out.append(
                TurnExample(
                    ex.conversation_id, ex.turn, request, history, ex.target, cands, prior.scores(len(cands))
                )
            )
    return out


# --- explanations and alignment targets ------------------------------------------------------------
def _joined(words: Sequence[str]) -> str:
    words = [w for w in words if w]
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + " and " + words[-1]


def explanation_target(item: Item) -> str:
    """The continuation after "<title> fits because": facts only (genres, year, first overview sentence)."""
    genres = _joined(item.genres)
    what = f"{'an' if genres[:1].lower() in 'aeiou' else 'a'} {genres} film" if genres else "a film"
    when = f" from {item.year}" if item.year else ""
    overview = first_sentence(item.text, 200, cut_mark=".")
    return f" it is {what}{when} that matches what you asked for." + (f" {overview}" if overview else "")


def alignment_target(item: Item) -> str:
    """What stage 1 teaches the LLM to say from an item's soft tokens: "Title (Year): genres"."""
    year = f" ({item.year})" if item.year else ""
    return f" {item.title}{year}: {', '.join(item.genres) or 'unknown genre'}"


def liked_request(titles: Sequence[str]) -> str:
    """A user request made from liked titles (explanation examples of the sequential data)."""
    titles = [t for t in titles if t]
    if not titles:
        return "Recommend me a good movie."
    return f"I liked {_joined(list(titles))}. What should I watch next?"


def explain_examples(
    train: Sequence[LOOExample], titles: dict[str, str], seed: int, limit: int = 0
) -> list[ExplainExample]:
    """Explanation examples: training targets with the user's recent likes as the request."""
    out = [
        ExplainExample(e.target, liked_request([titles.get(i, "") for i in e.history[-3:]])) for e in train
    ]
    if 0 < limit < len(out):
        out = random.Random(f"{seed}:explain").sample(out, limit)
    return out


@dataclass
class Datasets:
    """Everything a run trains and validates on."""

    items: dict[str, Item]
    splits: dict[str, UserSplit]
    users: list[str]
    train: list[LOOExample]
    valid: list[LOOExample]
    valid_all: list[LOOExample] = field(default_factory=list)  # every user's validation example (20 history items)
    dialogues: list[TurnExample] = field(default_factory=list)  # ReDial training turns
    dialogue_valid: list[TurnExample] = field(default_factory=list)  # ReDial validation turns
    dialogue_items: dict[str, Item] = field(default_factory=dict)  # the ReDial catalog
    conversation: ConversationPrior | None = None  # the prior saved with the adapter (train + valid)
    explain: list[ExplainExample] = field(default_factory=list)
    align: list[str] = field(default_factory=list)  # item ids for the alignment task
    popularity: dict[str, int] = field(default_factory=dict)
    sampler: str = "random"

    def summary(self) -> dict[str, Any]:
        return {
            "users": len(self.users),
            "train_examples": len(self.train),
            "valid_examples": len(self.valid),
            "dialogue_examples": len(self.dialogues),
            "dialogue_valid_examples": len(self.dialogue_valid),
            "explain_examples": len(self.explain),
            "align_items": len(self.align),
            "negatives": self.sampler,
        }


def open_retriever(cfg: Config, needed_for: str) -> Any:
    """The Retriever over the ingested Chroma store; DataError naming `needed_for` (the recipe setting
    that asks for the store, e.g. "data.negatives=retrieval") when there is none."""
    from fusionrec.retrieval.search import RetrievalError, Retriever
    from fusionrec.retrieval.store import StoreError

    if not cfg.retrieval.server_url and not cfg.chroma_dir.is_dir():  # do not create an empty store
        raise DataError(f"{needed_for} needs an ingested Chroma store: there is none at {cfg.chroma_dir} "
                        "(run `fusionrec ingest`)")  # fmt: skip
    try:
        return Retriever(cfg)
    except (RetrievalError, StoreError) as exc:
        raise DataError(f"{needed_for} needs an ingested Chroma store: {exc}") from None


def load_datasets(cfg: Config, recipe: Any, retriever: Any = None) -> Datasets:
    """Build every example set of a recipe (see the module docstring)."""
    from fusionrec.data.prepare import DatasetNotPrepared, load_prepared, prepare_dataset

    d = recipe.data
    if d.negatives == "retrieval" and retriever is None:  # hard negatives need the store: fail first
        retriever = open_retriever(cfg, "data.negatives=retrieval")
    try:
        items_list, interactions = load_prepared(cfg, d.dataset)
    except DatasetNotPrepared:
        prepare_dataset(cfg, d.dataset, verbose=False)
        items_list, interactions = load_prepared(cfg, d.dataset)
    items = {i.id: i for i in items_list}
    unknown = sorted({x.item for x in interactions} - set(items))
    if unknown:
        raise DataError(
            f"{d.dataset}: interactions name {len(unknown)} items not in items.jsonl (e.g. {unknown[:3]})"
        )
    splits = leave_one_out(user_sequences(interactions))
    titles = {i.id: i.title for i in items_list}
    sampler = NegativeSampler(list(items), titles, retriever if d.negatives == "retrieval" else None)
    sets = candidate_sets(cfg, d.dataset, splits, sampler, recipe.seed, d.num_candidates, FILE_HISTORY_LEN)
    users = pick_users(splits, d.max_users, recipe.seed)
    user_set = set(users)
    train = train_examples(
        splits, users, sampler, recipe.seed, d.num_candidates, d.history_len, d.train_per_user, d.min_history
    )
    valid = [
        LOOExample(e.user, e.target, e.history[-d.history_len :] if d.history_len > 0 else [], e.candidates)
        for e in sets["valid"]
        if e.user in user_set
    ]
    if 0 < d.val_users < len(valid):
        valid = valid[: d.val_users]
    turns = redial_turns(cfg, recipe) if d.redial else {}
    explain = explain_examples(train, titles, recipe.seed, d.explain_items)
    align = sorted({i for e in train for i in [e.target, *e.history]}, key=id_key)
    if 0 < d.align_items < len(align):
        align = sorted(random.Random(f"{recipe.seed}:align").sample(align, d.align_items), key=id_key)
    return Datasets(
        items, splits, users, train, valid, sets["valid"], explain=explain, align=align,
        popularity=popularity(splits), sampler=sampler.strategy, **turns,
    )  # fmt: skip


def redial_turns(cfg: Config, recipe: Any) -> dict[str, Any]:
    """The ReDial task's Datasets fields: training and validation turns, the catalog, the saved prior."""
    from fusionrec.data.prepare import DatasetNotPrepared, load_dialogues, load_prepared, prepare_dataset

    d = recipe.data
    try:
        items = load_prepared(cfg, "redial")[0]
    except DatasetNotPrepared:
        prepare_dataset(cfg, "redial", verbose=False)
        items = load_prepared(cfg, "redial")[0]
    train, valid = load_dialogues(cfg, "train"), load_dialogues(cfg, "valid")
    catalog = [i.id for i in items]
    fit = ConversationPrior.from_records(catalog, train)
    kw = {
        "num_candidates": d.num_candidates,
        "max_mentioned": d.redial_mentioned,
        "context_turns": d.redial_turns,
    }
    dialogues = turn_examples(train, fit, leave_out=True, **kw)
    if 0 < d.redial_max < len(dialogues):
        dialogues = random.Random(f"{recipe.seed}:redial").sample(dialogues, d.redial_max)
    return {
        "dialogues": dialogues,
        "dialogue_valid": turn_examples(valid, fit, leave_out=False, **kw),
        "dialogue_items": {i.id: i for i in items},
        "conversation": ConversationPrior.from_records(catalog, [*train, *valid]),
    }
