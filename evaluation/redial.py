"""The ReDial run: every test recommender turn naming a ReDial movie, ranked over the ReDial catalog.

One example per (recommender message, catalog movie it names); the context is the messages before it
and the movies mentioned before it. Two variants: `all` (every named movie is a target; rankings may
hold movies already mentioned) and `new` (only targets not mentioned before; those movies are also
removed from the rankings). Baselines learn from the dialogues of the splits not evaluated (test run:
train + valid, 600 dialogues of the official train split):

- popularity: mentions in the training dialogues (ties: catalog order);
- repeat: the movies mentioned so far, most recent first, then popularity (in `new`: popularity);
- co-mention: how often each movie shares a training dialogue with the movies mentioned so far,
  then popularity;
- repeat+co-mention: the movies mentioned so far (most recent first), then co-mention;
- bpr: BPR-MF over (training dialogue, mentioned movie), item-to-item from the movies mentioned;
- retrieval: the Chroma store of the redial dataset queried with the last `eval.redial_context_turns`
  messages; its top `eval.redial_pool` (the rest counts as not found; one query per turn, cached);
- zeroshot-verbalizer: the base LLM re-ranks the top 20 retrieved (on `eval.redial_zeroshot_limit` of the
  LLM examples: 3.7 s each);
- lora-hybrid / lora-llm / lora-prior: the adapter trained on ReDial turns re-ranks the conversational
  prior's candidates (`evaluation.redial_lora`; on `--llm-limit` examples). lora-hybrid is the shipped
  system; it is compared with the others by paired bootstrap differences on the examples both ranked.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fusionrec.config import Config
from fusionrec.data import redial_turns
from fusionrec.evaluation import protocols, redial_lora
from fusionrec.evaluation.baselines import RandomRanker
from fusionrec.evaluation.llm import LLMRanker, PromptSettings, find_adapter, make_agent
from fusionrec.evaluation.metrics import aggregate, latency_summary, paired_difference, rank_of
from fusionrec.evaluation.records import Records
from fusionrec.evaluation.systems import select
from fusionrec.retrieval.collaborative.conversation import ConversationPrior
from fusionrec.types import Interaction, Turn

PROTOCOL = "redial"
DATASET = "redial"
KS = (1, 10, 50)
KEEP = 10  # ranked ids kept per record
LLM_HEAD = 20  # retrieved candidates the LLM re-ranks
BASELINES = ("random", "popularity", "repeat", "co-mention", "repeat+co-mention", "bpr", "retrieval")
PAIRED_WITH = ("popularity", "retrieval")
SHIPPED = "lora-hybrid"
SHIPPED_PAIRED_WITH = (
    "popularity",
    "retrieval",
    "repeat+co-mention",
    "lora-prior",
    "lora-llm",
    "zeroshot-verbalizer",
)


def dialogue_interactions(train: Sequence[Mapping[str, Any]]) -> list[Interaction]:
    """(training dialogue, each movie it mentions) pairs: BPR's implicit feedback."""
    return [
        Interaction(str(rec["conversation_id"]), mid, 1.0, 0)
        for rec in train
        for mid in dict.fromkeys(redial_turns.mentions(rec))
    ]


def run_redial(cfg: Config, folder: Path, wanted: str) -> dict[str, Any]:
    """Evaluate the selected systems on ReDial's evaluated split(s); returns the report section."""
    from tqdm import tqdm

    from fusionrec.data.prepare import load_dialogues, load_prepared

    ecfg = cfg.eval
    items, _ = load_prepared(cfg, DATASET)
    catalog = [i.id for i in items]
    known = set(catalog)
    splits = list(ecfg.redial_splits)
    if not splits or not set(splits) <= {"valid", "test"}:
        raise protocols.ProtocolError(f"eval.redial_splits={splits}: expected test and/or valid")
    test = [r for split in splits for r in load_dialogues(cfg, split)]
    train_splits = [s for s in ("train", "valid") if s not in splits]
    train = [r for s in train_splits for r in load_dialogues(cfg, s)]
    all_examples = redial_turns.redial_examples(test, "dialogues_" + "+".join(splits) + ".jsonl")
    all_examples = [e for e in all_examples if e.target in known]
    examples = protocols.subset(all_examples, ecfg.limit, ecfg.seed)
    n_llm = ecfg.llm_limit if ecfg.llm_limit > 0 else len(examples)
    llm_examples = protocols.subset(all_examples, min(n_llm, len(examples)), ecfg.seed)
    n_zero = min(ecfg.redial_zeroshot_limit or len(llm_examples), len(llm_examples))
    zeroshot_examples = protocols.subset(all_examples, n_zero, ecfg.seed)  # nested: a part of llm_examples

    adapter = find_adapter(cfg)
    why = redial_lora.unavailable_reason(adapter)
    available = [*BASELINES, "zeroshot-verbalizer", *(() if why else redial_lora.SYSTEMS)]
    unavailable = {"lora": why} if why else {}
    chosen = select(available, wanted, unavailable)
    counts = ConversationPrior.from_records(catalog, train)
    lora: list[redial_lora.DialogueRanker] = []  # one per run: the three views share its forward passes
    pool = ecfg.redial_pool if ecfg.redial_pool > 0 else len(catalog)
    retrievers: list[Any] = []
    retrieved: dict[tuple[str, int], list[Any]] = {}  # one query per turn, shared by its targets

    def retriever() -> Any:
        if not retrievers:
            from fusionrec.retrieval.search import Retriever

            retrievers.append(Retriever(cfg, DATASET))
        return retrievers[0]

    def hits_for(ex: redial_turns.DialogueExample) -> list[Any]:
        key = (ex.conversation_id, ex.turn)
        if key not in retrieved:
            query = redial_turns.context_text(ex, ecfg.redial_context_turns) or redial_turns.DEFAULT_REQUEST
            retrieved.clear()  # examples come turn by turn: only the current turn is kept
            retrieved[key] = retriever().retrieve(query, k=pool + len(ex.mentioned))
        return retrieved[key]

    def make_system(name: str) -> Callable[[redial_turns.DialogueExample, bool], list[str]]:
        """(example, new) -> ranked catalog ids for one system."""
        if name == "random":
            shuffle = RandomRanker(ecfg.seed)
            return lambda ex, new: shuffle.rank(
                ex.key + (":new" if new else ""), [c for c in catalog if not (new and c in ex.mentioned)]
            )
        if name == "popularity":
            return lambda ex, new: counts.order(exclude=ex.mentioned if new else ())
        if name == "repeat":
            return lambda ex, new: counts.order(
                counts.repeat(ex.mentioned), exclude=ex.mentioned if new else ()
            )
        if name == "co-mention":
            return lambda ex, new: counts.order(
                counts.co_mention(ex.mentioned), exclude=ex.mentioned if new else ()
            )
        if name == "repeat+co-mention":
            return lambda ex, new: counts.ranking(ex.mentioned, exclude=ex.mentioned if new else ())
        if name == "bpr":
            from fusionrec.retrieval.collaborative.bpr import train_bpr

            model = train_bpr(dialogue_interactions(train), catalog, ecfg.collab_dim, ecfg.bpr_epochs,
                              ecfg.bpr_lr, ecfg.bpr_reg, ecfg.seed, progress=ecfg.progress)  # fmt: skip
            rows = np.array([model.items[c] for c in catalog])
            factors, bias = model.item_factors[rows], model.item_bias[rows]

            def bpr(ex: redial_turns.DialogueExample, new: bool) -> list[str]:
                ctx = [counts.index[m] for m in ex.mentioned if m in counts.index]
                score = bias + (factors @ factors[ctx].mean(axis=0) if ctx else 0.0)
                return counts.order(score, exclude=ex.mentioned if new else ())

            return bpr

        def ids(ex: redial_turns.DialogueExample, new: bool) -> list[str]:
            return [c.item.id for c in hits_for(ex) if not (new and c.item.id in ex.mentioned)][:pool]

        if name == "retrieval":
            return ids
        if name in redial_lora.SYSTEMS:
            if not lora:
                assert adapter is not None
                agent = make_agent(cfg, adapter, None, DATASET)  # item vectors encoded as the trainer did
                lora.append(redial_lora.DialogueRanker(agent, adapter, counts, {i.id: i for i in items}))
            return lora[0].system(name)
        a = cfg.agent
        settings = PromptSettings(template=a.template, overview_chars=a.overview_chars,
                                  max_prompt_tokens=a.max_prompt_tokens)  # fmt: skip
        ranker = LLMRanker(make_agent(cfg, None, retriever()), "verbalizer", settings, name)

        def llm(ex: redial_turns.DialogueExample, new: bool) -> list[str]:
            hits = [c for c in hits_for(ex) if not (new and c.item.id in ex.mentioned)][:pool]
            head = hits[:LLM_HEAD]
            request, turns = redial_turns.request_and_history(ex.context, ecfg.redial_context_turns)
            history = [Turn(role, text) for role, text in turns]  # type: ignore[arg-type]
            return ranker.rank(request, head, history).order + [c.item.id for c in hits[len(head) :]]

        return llm

    systems_out: dict[str, Any] = {}
    records_by: dict[str, Records] = {}
    for name in chosen:
        records = records_by[name] = Records(folder, PROTOCOL, name)
        pool_examples = (
            zeroshot_examples if name.endswith("verbalizer") else llm_examples if name.startswith("lora-") else examples
        )
        todo = [e for e in pool_examples if e.key not in records]
        system = make_system(name) if todo else None
        for ex in tqdm(todo, desc=f"redial {name}", unit="turn", disable=not ecfg.progress, leave=False):
            rec: dict[str, Any] = {"target": ex.target, "new": ex.new}
            seconds = 0.0
            for variant, new in (("all", False), ("new", True)):
                if new and not ex.new:
                    continue
                t0 = time.perf_counter()
                order = system(ex, new)
                seconds += time.perf_counter() - t0
                rec[f"rank_{variant}"] = rank_of(order, ex.target)
                rec[f"top_{variant}"] = order[:KEEP]
            rec["seconds"] = seconds
            records.add(ex.key, rec)
        systems_out[name] = _summary([records.get(e.key) for e in pool_examples if e.key in records], ecfg)
    section: dict[str, Any] = {
        "protocol": PROTOCOL,
        "examples_total": len(all_examples),
        "examples": len(examples),
        "turns_total": len({(e.conversation_id, e.turn) for e in all_examples}),
        "turns": len({(e.conversation_id, e.turn) for e in examples}),
        "llm_examples": len(llm_examples),
        "llm_turns": len({(e.conversation_id, e.turn) for e in llm_examples}),
        "zeroshot_examples": len(zeroshot_examples),
        "dialogues": len(test),
        "splits": splits,
        "train_dialogues": len(train),
        "train_splits": train_splits,
        "new_targets": sum(e.new for e in all_examples),
        "new_examples": sum(e.new for e in examples),
        "pool": pool,
        "catalog": len(catalog),
        "unavailable": unavailable,
        "systems": systems_out,
    }
    non_llm = [n for n in systems_out if n in BASELINES and systems_out[n]["all"]["n"]]
    if non_llm:
        best = max(non_llm, key=lambda n: (_mean(systems_out[n], "all", 10), _mean(systems_out[n], "all", 1)))
        keys = [e.key for e in examples]
        section["best"] = best
        section["paired"] = {
            f"{best} - {other}": paired_rows(records_by[best], records_by[other], keys, ecfg)
            for other in PAIRED_WITH
            if other in records_by and other != best
        }
    if SHIPPED in records_by:
        keys = [e.key for e in llm_examples]
        section["shipped"] = SHIPPED
        section.setdefault("paired", {}).update({
            f"{SHIPPED} - {other}": paired_rows(records_by[SHIPPED], records_by[other], keys, ecfg)
            for other in SHIPPED_PAIRED_WITH
            if other in records_by
        })  # fmt: skip
    return section


def _mean(summary: Mapping[str, Any], variant: str, k: int) -> float:
    return float(summary[variant]["metrics"][f"recall@{k}"]["mean"])


def _hit(rec: Mapping[str, Any], variant: str, k: int) -> float:
    rank = rec.get(f"rank_{variant}")
    return 1.0 if rank is not None and rank <= k else 0.0


def paired_rows(a: Records, b: Records, keys: Sequence[str], ecfg: Any) -> dict[str, Any]:
    """Paired bootstrap [mean, lo, hi] of a - b per recall (the examples both ranked)."""
    common = [k for k in keys if k in a and k in b]
    ra, rb = [a.get(k) for k in common], [b.get(k) for k in common]
    out: dict[str, Any] = {
        f"R@{k}": paired_difference(
            [_hit(r, "all", k) for r in ra], [_hit(r, "all", k) for r in rb], ecfg.bootstrap, ecfg.seed
        )  # fmt: skip
        for k in KS
    }
    new = [(x, y) for x, y in zip(ra, rb, strict=True) if x["new"]]
    out["R@10_new"] = paired_difference(
        [_hit(x, "new", 10) for x, _ in new], [_hit(y, "new", 10) for _, y in new], ecfg.bootstrap, ecfg.seed
    )
    out["examples"], out["examples_new"] = len(common), len(new)
    return out


def _summary(recs: Sequence[dict[str, Any]], ecfg: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"n": len(recs), "latency": latency_summary([r["seconds"] for r in recs])}
    for variant in ("all", "new"):
        rows = [r for r in recs if f"rank_{variant}" in r]
        metrics = {
            f"recall@{k}": aggregate([_hit(r, variant, k) for r in rows], ecfg.bootstrap, ecfg.seed).as_dict()
            for k in KS
        }
        out[variant] = {"n": len(rows), "metrics": metrics}
    return out


def summary_section(section: Mapping[str, Any], command: str) -> dict[str, Any]:
    """The "redial" section of docs/results/summary.json from the report's ReDial section."""
    split = "official-test" if list(section["splits"]) == ["test"] else "+".join(section["splits"])
    systems = {}
    for name, s in section["systems"].items():
        row = {f"R@{k}": _mean(s, "all", k) for k in KS}
        row["R@10_new"] = _mean(s, "new", 10)
        row["examples"], row["examples_new"] = s["all"]["n"], s["new"]["n"]
        row["ci"] = {f"R@{k}": [s["all"]["metrics"][f"recall@{k}"][b] for b in ("lo", "hi")] for k in KS}
        row["ci"]["R@10_new"] = [s["new"]["metrics"]["recall@10"][b] for b in ("lo", "hi")]
        systems[name] = row
    return {
        "command": command,
        "split": split,
        "turns": section["turns"],
        "examples": section["examples"],
        "examples_new": section["new_examples"],
        "llm_examples": section["llm_examples"],
        "llm_turns": section.get("llm_turns", 0),
        "catalog": section["catalog"],
        "train_dialogues": section["train_dialogues"],
        "shipped": section.get("shipped") or section.get("best"),
        "note": (
            (
                "'shipped' is the trained LLM ranker (lora-hybrid: the adapter's dialogue residual over the "
                f"conversational prior) on {section['llm_examples']} examples; "
                if section.get("shipped")
                else "no adapter trained on ReDial turns was evaluated: 'shipped' is the best non-LLM system of "
                "this run by R@10 (all targets); "
            )
            + f"training and baselines used {section['train_dialogues']} dialogues of the official train "
            "split (10,006 in the full data)."
        ),  # fmt: skip
        "systems": systems,
        "paired": section.get("paired", {}),
    }
