"""The ReDial run: for each recommender turn naming an ML-100k movie, rank the catalog.

Two variants: `all` (every named movie is a target; the ranking may hold movies already mentioned)
and `new` (only targets not mentioned before; movies already mentioned are removed from the
ranking). Random, popularity (mention counts in the train dialogues, ties by ML-100k popularity)
and BPR (item-to-item from the mentioned movies) rank the whole catalog; retrieval-only ranks the
top `eval.redial_pool` retrieved by the dialogue text (the rest counts as not found); the LLM
re-ranks the top 20 retrieved with the dialogue as history (the rest keeps retrieval order).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evaluation import protocols
from evaluation.baselines import BPRRanker, PopularityRanker, RandomRanker, order_by
from evaluation.llm import LLMRanker, PromptSettings, checkpoint_settings, find_adapter, make_agent
from evaluation.metrics import aggregate, latency_summary, rank_of
from evaluation.records import Records
from evaluation.systems import select
from fusionrec.config import Config
from fusionrec.types import Turn
from retrieval.collaborative import train_bpr

log = logging.getLogger(__name__)
PROTOCOL = "redial"
KS = (1, 10, 50)
KEEP = 50  # ranked ids kept per record


def _role(role: str) -> str:
    return "user" if role == "seeker" else "assistant"


def run_redial(cfg: Config, folder: Path, wanted: str) -> dict[str, Any]:
    """Evaluate the selected systems on ReDial's test dialogues; returns the report section."""
    from tqdm import tqdm

    from retrieval.prepare import load_dialogues, load_prepared

    ecfg = cfg.eval
    items, interactions = load_prepared(cfg, protocols.ML100K)
    catalog = [i.id for i in items]
    by_id = {i.id: i for i in items}
    test = [r for split in ecfg.redial_splits for r in load_dialogues(cfg, split)]
    train = load_dialogues(cfg, "train") if "train" not in ecfg.redial_splits else []
    all_examples = protocols.redial_examples(test, "dialogues_" + "+".join(ecfg.redial_splits) + ".jsonl")
    all_examples = [e for e in all_examples if e.target in by_id]
    examples = protocols.subset(all_examples, ecfg.limit, ecfg.seed)
    n_llm = ecfg.llm_limit if ecfg.llm_limit > 0 else len(examples)
    llm_examples = protocols.subset(all_examples, min(n_llm, len(examples)), ecfg.seed)

    adapter = find_adapter(cfg)
    available = ["random", "popularity", "bpr", "retrieval", "zeroshot-verbalizer"]
    unavailable = {}
    if adapter is not None and adapter.is_dir():
        available.append("lora-verbalizer")
    else:
        from agent.agent import resolve_adapter

        unavailable["lora"] = (
            f"agent.adapter={adapter} is not a folder"
            if adapter
            else f"no adapter ({resolve_adapter(cfg)[1]})"
        )
    chosen = select(available, wanted, unavailable)

    mentions = protocols.mention_counts(train)
    ml_pop = PopularityRanker.from_interactions(interactions).counts
    retriever = None
    pool = ecfg.redial_pool if ecfg.redial_pool > 0 else len(catalog)

    def retrieved(ex: protocols.DialogueExample, new: bool) -> list[Any]:
        nonlocal retriever
        if retriever is None:
            from retrieval.search import Retriever

            retriever = Retriever(cfg)
        query = protocols.context_text(ex, ecfg.redial_context_turns) or "a good movie"
        exclude = ex.mentioned if new else ()
        return retriever.retrieve(query, exclude_ids=exclude, k=pool)

    def ranking(name: str, ex: protocols.DialogueExample, new: bool, system: Any) -> list[str]:
        cands = [c for c in catalog if not (new and c in ex.mentioned)]
        if name == "random":
            return system.rank(ex.key + (":new" if new else ""), cands)
        if name == "popularity":
            return order_by(cands, [mentions.get(c, 0) + ml_pop.get(c, 0.0) / 1e6 for c in cands])
        if name == "bpr":
            return system.rank(ex.key, cands, ex.mentioned)
        hits = retrieved(ex, new)
        ids = [c.item.id for c in hits]
        if name == "retrieval":
            return ids
        head = hits[:20]
        history = [Turn(_role(m["role"]), m["text"]) for m in ex.context[-ecfg.redial_context_turns :]]
        request = (
            next((m["text"] for m in reversed(ex.context) if m["role"] == "seeker"), "") or "a good movie"
        )
        res = system.rank(request, head, history[:-1] if history and history[-1].text == request else history)
        return res.order + ids[len(head) :]

    systems_out: dict[str, Any] = {}
    agents: dict[str, Any] = {}
    for name in chosen:
        records = Records(folder, PROTOCOL, name)
        pool_examples = llm_examples if name.endswith("verbalizer") else examples
        todo = [e for e in pool_examples if e.key not in records]
        system: Any = None
        if todo:
            if name == "random":
                system = RandomRanker(ecfg.seed)
            elif name == "bpr":
                system = BPRRanker(train_bpr(interactions, catalog, ecfg.bpr_dim, ecfg.bpr_epochs, ecfg.bpr_lr,
                                             ecfg.bpr_reg, ecfg.seed, progress=ecfg.progress))  # fmt: skip
            elif name.endswith("verbalizer"):
                prefix = name.split("-")[0]
                if prefix not in agents:
                    agents[prefix] = make_agent(cfg, adapter if prefix == "lora" else None)
                a = cfg.agent
                settings = {
                    "template": a.template,
                    "overview_chars": a.overview_chars,
                    "max_tokens": a.max_prompt_tokens,
                }
                if prefix == "lora":
                    settings.update(checkpoint_settings(adapter))
                system = LLMRanker(agents[prefix], "verbalizer", PromptSettings(**settings), name)
        for ex in tqdm(todo, desc=f"redial {name}", unit="turn", disable=not ecfg.progress, leave=False):
            rec: dict[str, Any] = {"target": ex.target, "new": ex.new}
            seconds = 0.0
            for variant, new in (("all", False), ("new", True)):
                if new and not ex.new:
                    continue
                t0 = time.perf_counter()
                order = ranking(name, ex, new, system)
                seconds += time.perf_counter() - t0
                rec[f"rank_{variant}"] = rank_of(order, ex.target)
                rec[f"top_{variant}"] = order[:10]
            rec["seconds"] = seconds
            records.add(ex.key, rec)
        keys = [e.key for e in pool_examples]
        systems_out[name] = _summary([records.get(k) for k in keys if k in records], ecfg)
    return {
        "protocol": PROTOCOL,
        "examples_total": len(all_examples),
        "examples": len(examples),
        "llm_examples": len(llm_examples),
        "dialogues": len(test),
        "splits": list(ecfg.redial_splits),
        "new_targets": sum(e.new for e in all_examples),
        "pool": pool,
        "catalog": len(catalog),
        "unavailable": unavailable,
        "systems": systems_out,
    }


def _summary(recs: Sequence[dict[str, Any]], ecfg: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"n": len(recs), "latency": latency_summary([r["seconds"] for r in recs])}
    for variant in ("all", "new"):
        rows = [r for r in recs if f"rank_{variant}" in r]
        metrics = {}
        for k in KS:
            hits = [
                1.0 if r[f"rank_{variant}"] is not None and r[f"rank_{variant}"] <= k else 0.0 for r in rows
            ]
            metrics[f"recall@{k}"] = aggregate(hits, ecfg.bootstrap, ecfg.seed).as_dict()
        out[variant] = {"n": len(rows), "metrics": metrics}
    return out
