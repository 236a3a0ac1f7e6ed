"""The ML-100k leave-one-out run: every selected system on the same saved candidate sets.

Non-LLM systems rank all evaluated users (`eval.limit`); LLM systems a nested seeded subset
(`eval.llm_limit`), and the headline table compares every system on that common subset.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evaluation import protocols
from evaluation.baselines import (
    BPRRanker,
    PopularityRanker,
    RandomRanker,
    RetrievalRanker,
    load_cross,
)
from evaluation.llm import (
    LLMRanker,
    PromptSettings,
    checkpoint_settings,
    explain_check,
    find_adapter,
    liked_request,
    make_agent,
)
from evaluation.metrics import aggregate, ratio
from evaluation.records import Records
from evaluation.systems import CLASSIC, llm_names, parse_llm_name, select, summarize
from evaluation.vectors import load_vectors
from fusionrec.config import Config
from retrieval.collaborative import train_bpr

log = logging.getLogger(__name__)
PROTOCOL = "ml100k-loo"


def open_retriever(cfg: Config) -> Any:
    """The Retriever over the ingested store (the agent's item vectors come from it), else None."""
    if not cfg.retrieval.server_url and not cfg.chroma_dir.is_dir():
        return None  # do not create an empty store
    try:
        from retrieval.search import Retriever

        return Retriever(cfg)
    except Exception as exc:  # no ingested catalog: the agent encodes item vectors itself
        log.info("no retriever for the agent's item vectors: %s", exc)
        return None


class LOORun:
    """Data, subsets and lazily built systems of one leave-one-out evaluation."""

    def __init__(self, cfg: Config, folder: Path) -> None:
        from retrieval.prepare import load_prepared

        self.cfg, self.folder, self.ecfg = cfg, folder, cfg.eval
        items, interactions = load_prepared(cfg, protocols.ML100K)
        self.items = {i.id: i for i in items}
        ids = [i.id for i in items]
        self.all_examples, self.source = protocols.load_loo(cfg, ids, interactions, self.ecfg.split)
        if not self.all_examples:
            raise protocols.ProtocolError("no leave-one-out examples: the interactions are empty")
        self.examples = protocols.subset(self.all_examples, self.ecfg.limit, self.ecfg.seed)
        n_llm = self.ecfg.llm_limit if self.ecfg.llm_limit > 0 else len(self.examples)
        self.llm_examples = protocols.subset(
            self.all_examples, min(n_llm, len(self.examples)), self.ecfg.seed
        )
        n_abl = min(self.ecfg.llm_ablation_limit, len(self.llm_examples))
        self.ablation_examples = (
            protocols.subset(self.all_examples, n_abl, self.ecfg.seed) if n_abl > 0 else []
        )
        heldout = protocols.heldout_pairs(cfg, ids, interactions, self.ecfg.split)
        self.train = protocols.train_interactions(interactions, heldout)
        self.candidates = {e.key: e.candidates for e in self.all_examples}
        self.by_key = {e.key: e for e in self.all_examples}
        self._table: Any = None
        self._agents: dict[str, Any] = {}
        self.adapter = find_adapter(cfg)
        self.info: dict[str, Any] = {}

    # --- shared pieces -----------------------------------------------------------------------------
    @property
    def table(self) -> Any:
        if self._table is None:
            self._table = load_vectors(self.cfg, list(self.items.values()))
        return self._table

    def agent(self, prefix: str) -> Any:
        if prefix not in self._agents:
            retriever = open_retriever(self.cfg)
            adapter = self.adapter if prefix == "lora" else None
            self._agents[prefix] = make_agent(self.cfg, adapter, retriever)
        return self._agents[prefix]

    def settings(self, prefix: str, template: str = "") -> PromptSettings:
        """Prompt settings of a model: the agent config's, or those a LoRA checkpoint was trained with."""
        a = self.cfg.agent
        base = {
            "template": a.template,
            "overview_chars": a.overview_chars,
            "max_tokens": a.max_prompt_tokens,
            "history": self.ecfg.prompt_history,
        }
        if prefix == "lora":
            base.update(checkpoint_settings(self.adapter))
        if template:
            base["template"] = template
        return PromptSettings(**base)

    def templates(self) -> list[str]:
        from agent.prompt import template_names

        return list(self.ecfg.templates) or template_names()

    def available(self) -> tuple[list[str], dict[str, str]]:
        """(available system names, unavailable ones with the reason)."""
        names = list(CLASSIC)
        default = self.cfg.agent.template
        names += llm_names("zeroshot", self.templates(), default)
        unavailable = {}
        if self.adapter is not None and self.adapter.is_dir():
            names += ["lora-verbalizer", "lora-generative"]
        else:
            why = f"no adapter: agent.adapter is empty and no checkpoint under {self.cfg.checkpoints_dir}"
            if self.adapter is not None:
                why = f"agent.adapter={self.adapter} is not a folder"
            unavailable["lora"] = why
        return names, unavailable

    def bar(self, iterable: Sequence[Any], desc: str) -> Any:
        from tqdm import tqdm

        return tqdm(iterable, desc=desc, unit="user", disable=not self.ecfg.progress, leave=False)

    # --- systems ------------------------------------------------------------------------------------
    def classic(self, name: str) -> Any:
        ecfg, rcfg = self.ecfg, self.cfg.retrieval
        if name == "random":
            return RandomRanker(ecfg.seed)
        if name == "popularity":
            return PopularityRanker.from_interactions(self.train)
        if name == "bpr":
            model = train_bpr(
                self.train, list(self.items), ecfg.bpr_dim, ecfg.bpr_epochs, ecfg.bpr_lr, ecfg.bpr_reg,
                ecfg.seed, progress=ecfg.progress,
            )  # fmt: skip
            self.info["bpr"] = {
                "seconds": model.seconds,
                "epochs": len(model.history),
                "final_loss": model.history[-1]["loss"] if model.history else None,
                "train_interactions": len(self.train),
                "dim": ecfg.bpr_dim,
            }
            return BPRRanker(model)
        if name == "retrieval":
            table = self.table
            cross, trained = load_cross(self.cfg, table) if rcfg.fusion == "cross" else (None, False)
            self.info["retrieval"] = {
                "fusion": rcfg.fusion,
                "late_combine": rcfg.late_combine,
                "modalities": table.modalities(),
                "vectors": table.source,
                "coverage": table.coverage(),
                "computed": table.computed,
                "cross_trained": trained,
            }
            return RetrievalRanker(
                table, table.modalities(), rcfg.fusion, rcfg.weights, rcfg.late_combine, cross
            )
        raise ValueError(name)

    def run_classic(self, name: str) -> Records:
        records = Records(self.folder, PROTOCOL, name)
        todo = [e for e in self.examples if e.key not in records]
        if not todo:
            return records
        import time

        system = self.classic(name)
        for ex in self.bar(todo, name):
            t0 = time.perf_counter()
            if name == "bpr":
                order = system.rank(ex.key, ex.candidates, ex.history, user=ex.user)
            else:
                order = system.rank(ex.key, ex.candidates, ex.history)
            records.add(
                ex.key,
                {"user": ex.user, "target": ex.target, "order": order, "seconds": time.perf_counter() - t0},
            )
        return records

    def run_llm(self, name: str) -> Records:
        prefix, method, template = parse_llm_name(name, "")
        records = Records(self.folder, PROTOCOL, name)
        todo = [e for e in self.llm_examples if e.key not in records]
        if not todo:
            return records
        ranker = LLMRanker(self.agent(prefix), method, self.settings(prefix, template), name)
        for ex in self.bar(todo, name):
            res = ranker.rank_loo(self.items, ex.history, ex.candidates)
            rec = {"user": ex.user, "target": ex.target, "order": res.order, "seconds": res.seconds,
                   "prompt_tokens": res.prompt_tokens}  # fmt: skip
            if method == "generative":
                rec.update({"answers": res.answers, "invalid": res.invalid, "raw": res.raw[:400]})
            records.add(ex.key, rec)
        return records

    def run_explanations(self, prefix: str, ranked: Records) -> dict[str, Any]:
        """Explain the top-1 item for the first `explain_sample` LLM users; fact-check pass rate."""
        n = min(self.ecfg.explain_sample, len(self.llm_examples))
        if n <= 0:
            return {}
        records = Records(self.folder, PROTOCOL, f"{prefix}-explanations")
        sample = [
            self.llm_examples[i]
            for i in sorted(protocols.seeded_order(len(self.llm_examples), self.ecfg.seed)[:n])
        ]
        todo = [e for e in sample if e.key not in records and e.key in ranked]
        if todo:
            agent = self.agent(prefix)
            titles = sorted({i.title for i in self.items.values()})
            genres = sorted({g for i in self.items.values() for g in i.genres})
            for ex in self.bar(todo, f"{prefix} explanations"):
                top = ranked.get(ex.key)["order"][0]
                ok, secs, problems, raw = explain_check(
                    agent, self.items[top], liked_request(self.items, ex.history), self.settings(prefix).template,
                    titles, genres,
                )  # fmt: skip
                records.add(
                    ex.key,
                    {"item": top, "passed": ok, "seconds": secs, "problems": problems, "text": raw[:400]},
                )
        recs = [records.get(e.key) for e in sample if e.key in records]
        passed = [bool(r["passed"]) for r in recs]
        est = aggregate([float(p) for p in passed], self.ecfg.bootstrap, self.ecfg.seed)
        return {
            "n": len(recs),
            "pass_rate": ratio(passed),
            "pass_rate_ci": [est.lo, est.hi],
            "mean_seconds": sum(r["seconds"] for r in recs) / len(recs) if recs else 0.0,
            "problems": sorted({p.split(":")[0] for r in recs for p in r["problems"]}),
            "examples": [
                {
                    "user": self.by_key[r["key"]].user,
                    "item": r["item"],
                    "text": r["text"],
                    "problems": r["problems"],
                }
                for r in recs[:3]
            ],  # fmt: skip
        }

    # --- summary ------------------------------------------------------------------------------------
    def seen_titles(self, rec: dict[str, Any]) -> list[str]:
        ex = self.by_key[rec["key"]]
        return [self.items[i].title for i in ex.history if i in self.items]

    def summary(self, records: Records, keys: Sequence[str]) -> dict[str, Any]:
        recs = [records.get(k) for k in keys if k in records]
        return summarize(recs, self.candidates, self.ecfg.bootstrap, self.ecfg.seed, self.seen_titles)


def run_loo(cfg: Config, folder: Path, wanted: str) -> dict[str, Any]:
    """Evaluate the selected systems; returns the protocol's section of the report."""
    from evaluation.ablations import llm_item_token_ablation, retrieval_ablations

    run = LOORun(cfg, folder)
    available, unavailable = run.available()
    chosen = select(available, wanted, unavailable)
    all_keys = [e.key for e in run.examples]
    llm_keys = [e.key for e in run.llm_examples]
    systems: dict[str, Any] = {}
    explanations: dict[str, Any] = {}
    for name in chosen:
        if name in CLASSIC:
            rec = run.run_classic(name)
            kind = "baseline" if name != "retrieval" else "retrieval"
        else:
            rec = run.run_llm(name)
            kind = "llm"
        systems[name] = {
            "kind": kind,
            "all": run.summary(rec, all_keys) if kind != "llm" else None,
            "common": run.summary(rec, llm_keys),
        }
        if kind == "llm":
            prefix, method, template = parse_llm_name(name, "")
            settings = run.settings(prefix, template)
            systems[name].update({"model": prefix, "method": method, "prompt": dataclasses.asdict(settings)})
            if prefix == "lora":
                systems[name]["adapter"] = str(run.adapter)
            if method == "verbalizer" and not template:
                explanations[prefix] = run.run_explanations(prefix, rec)
    for prefix, ex in explanations.items():
        if ex:
            systems[f"{prefix}-verbalizer"]["explanations"] = ex
    section: dict[str, Any] = {
        "protocol": PROTOCOL,
        "split": cfg.eval.split,
        "candidates": run.source,
        "users_total": len(run.all_examples),
        "users": len(run.examples),
        "llm_users": len(run.llm_examples),
        "llm_subset": f"seeded subset of {len(run.llm_examples)} users (eval.seed={cfg.eval.seed})"
        if len(run.llm_examples) < len(run.all_examples)
        else "all users",
        "train_interactions": len(run.train),
        "adapter": str(run.adapter) if run.adapter else None,
        "unavailable": unavailable,
        "systems": systems,
    }
    if cfg.eval.ablations:
        section["ablations"] = retrieval_ablations(run)
        if run.ablation_examples:
            section["llm_ablations"] = llm_item_token_ablation(run)
    section["info"] = run.info
    return section
