"""The ML-100k leave-one-out run: every selected system on the same saved candidate sets.

Non-LLM systems rank all evaluated users (`eval.limit`); LLM systems a nested seeded subset
(`eval.llm_limit`), and the headline table compares every system on that common subset. A residual
adapter (residual.json + prior.json) is reported as three systems from one forward pass per user:
`lora-hybrid` (what the agent ranks by), `lora-llm` and `lora-prior`; the shipped ranker is compared
with the others by paired bootstrap differences on the users both ranked.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fusionrec.config import Config
from fusionrec.data.splits import user_sequences
from fusionrec.evaluation import protocols
from fusionrec.evaluation.baselines import (
    BPRRanker,
    PopularityRanker,
    RandomRanker,
    RetrievalRanker,
    SASRecRanker,
    load_cross,
    order_by,
)
from fusionrec.evaluation.llm import (
    LLMRanker,
    PromptSettings,
    checkpoint_settings,
    explain_check,
    find_adapter,
    liked_request,
    make_agent,
)
from fusionrec.evaluation.metrics import aggregate, ratio
from fusionrec.evaluation.records import Records
from fusionrec.evaluation.systems import (
    CLASSIC,
    RESIDUAL_VIEWS,
    llm_names,
    paired,
    parse_llm_name,
    select,
    shipped_system,
    summarize,
)
from fusionrec.evaluation.vectors import load_vectors
from fusionrec.retrieval.collaborative.bpr import train_bpr
from fusionrec.retrieval.collaborative.prior import PRIOR_FILE

log = logging.getLogger(__name__)
PROTOCOL = "ml100k-loo"


def open_retriever(cfg: Config) -> Any:
    """The Retriever over the ingested store (the agent's item vectors come from it), else None."""
    if not cfg.retrieval.server_url and not cfg.chroma_dir.is_dir():
        return None  # do not create an empty store
    try:
        from fusionrec.retrieval.search import Retriever

        return Retriever(cfg)
    except Exception as exc:  # no ingested catalog: the agent encodes item vectors itself
        log.info("no retriever for the agent's item vectors: %s", exc)
        return None


class LOORun:
    """Data, subsets and lazily built systems of one leave-one-out evaluation."""

    def __init__(self, cfg: Config, folder: Path) -> None:
        from fusionrec.data.prepare import load_prepared

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
        self.sequences = user_sequences(interactions)  # every item in time order, per user
        self.candidates = {e.key: e.candidates for e in self.all_examples}
        self.by_key = {e.key: e for e in self.all_examples}
        self._table: Any = None
        self._agents: dict[str, Any] = {}
        self.adapter = find_adapter(cfg)
        self.info: dict[str, Any] = {}

    @property
    def residual(self) -> bool:
        """Whether the adapter is a residual one (the agent then sets `residual` and `prior`)."""
        a = self.adapter
        return a is not None and (a / "residual.json").is_file() and (a / PRIOR_FILE).is_file()

    def prior_history(self, ex: Any) -> list[str]:
        """The user's full sequence before the target (test: training items + the validation item),
        what the finetune trainer's prior reads; the example's history when the target is unknown."""
        seq = self.sequences.get(ex.user, [])
        return seq[: seq.index(ex.target)] if ex.target in seq else list(ex.history)

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
            "max_prompt_tokens": a.max_prompt_tokens,
            "history_len": self.ecfg.history_len,
        }
        if prefix == "lora":
            base.update(checkpoint_settings(self.adapter))
        if template:
            base["template"] = template
        return PromptSettings(**base)

    def templates(self) -> list[str]:
        from fusionrec.agent.prompt import template_names

        return list(self.ecfg.templates) or template_names()

    def available(self) -> tuple[list[str], dict[str, str]]:
        """(available system names, unavailable ones with the reason)."""
        names = list(CLASSIC)
        default = self.cfg.agent.template
        names += llm_names("zeroshot", self.templates(), default)
        unavailable = {}
        if self.adapter is not None and self.adapter.is_dir():
            views = [f"lora-{v}" for v in RESIDUAL_VIEWS] if self.residual else ["lora-verbalizer"]
            names += [*views, "lora-generative"]
        elif self.adapter is not None:
            unavailable["lora"] = f"agent.adapter={self.adapter} is not a folder"
        else:
            from fusionrec.agent.adapter import resolve_adapter

            unavailable["lora"] = f"no adapter ({resolve_adapter(self.cfg)[1]})"
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
                self.train, list(self.items), ecfg.collab_dim, ecfg.bpr_epochs, ecfg.bpr_lr, ecfg.bpr_reg,
                ecfg.seed, progress=ecfg.progress,
            )  # fmt: skip
            self.info["bpr"] = {
                "seconds": model.seconds,
                "epochs": len(model.history),
                "final_loss": model.history[-1]["loss"] if model.history else None,
                "train_interactions": len(self.train),
                "dim": ecfg.collab_dim,
            }
            return BPRRanker(model)
        if name == "sasrec":
            from fusionrec.retrieval.collaborative.sasrec import train_sasrec

            epochs = {"epochs": ecfg.sasrec_epochs} if ecfg.sasrec_epochs > 0 else {}
            sas = train_sasrec(
                user_sequences(self.train), list(self.items), seed=ecfg.seed, progress=ecfg.progress, **epochs
            )
            self.info["sasrec"] = {
                "seconds": sas.seconds,
                "epochs": len(sas.history),
                "final_loss": sas.history[-1]["loss"] if sas.history else None,
                "train_interactions": len(self.train),
                "max_len": sas.max_len,
            }
            return SASRecRanker(sas)
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
        system = self.classic(name)
        for ex in self.bar(todo, name):
            t0 = time.perf_counter()
            if name == "bpr":
                order = system.rank(ex.key, ex.candidates, ex.history, user=ex.user)
            elif name == "sasrec":
                order = system.rank(ex.key, ex.candidates, self.prior_history(ex))
            else:
                order = system.rank(ex.key, ex.candidates, ex.history)
            records.add(
                ex.key,
                {"user": ex.user, "target": ex.target, "order": order, "seconds": time.perf_counter() - t0},
            )
        return records

    def run_llm(self, name: str) -> Records:
        prefix, method, template = parse_llm_name(name, "")
        if prefix == "lora" and method in RESIDUAL_VIEWS:
            return self.run_residual()[name]
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

    def run_residual(self) -> dict[str, Records]:
        """lora-hybrid, lora-llm and lora-prior: one forward pass per user (`Agent.score_views` on the
        LoRA prompt, the prior reading the user's full sequence before the target), three records."""
        records = {f"lora-{v}": Records(self.folder, PROTOCOL, f"lora-{v}") for v in RESIDUAL_VIEWS}
        todo = [e for e in self.llm_examples if any(e.key not in r for r in records.values())]
        if not todo:
            return records
        agent = self.agent("lora")
        if agent.residual is None:
            raise RuntimeError(f"{self.adapter}: the agent loaded no residual (residual.json + prior.json)")
        ranker = LLMRanker(agent, "verbalizer", self.settings("lora"), "lora-hybrid")
        for ex in self.bar(todo, "lora residual"):
            t0 = time.perf_counter()
            prompt = ranker.loo_prompt(self.items, ex.history, ex.candidates)
            views = agent.score_views(prompt, user=ex.user, history=self.prior_history(ex))
            seconds = time.perf_counter() - t0
            ids = [c.item.id for c in prompt.candidates]
            for view in RESIDUAL_VIEWS:
                rec = records[f"lora-{view}"]
                if ex.key not in rec:
                    rec.add(ex.key, {"user": ex.user, "target": ex.target, "order": order_by(ids, views[view]),
                                     "seconds": seconds, "prompt_tokens": len(prompt.encoded),
                                     "scores": [round(float(x), 5) for x in views[view]]})  # fmt: skip
        return records

    def prior_name(self) -> str | None:
        """The residual adapter's prior as "lora-prior: <name>", else None."""
        if not self.residual:
            return None
        agent = self._agents.get("lora")
        if agent is not None and agent.prior is not None:
            return f"lora-prior: {agent.prior.name}"
        from fusionrec.retrieval.collaborative.prior import Prior

        return f"lora-prior: {Prior.load(self.adapter).name}"

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
    from fusionrec.evaluation.ablations import llm_item_token_ablation, retrieval_ablations

    run = LOORun(cfg, folder)
    available, unavailable = run.available()
    chosen = select(available, wanted, unavailable)
    all_keys = [e.key for e in run.examples]
    llm_keys = [e.key for e in run.llm_examples]
    llm_on_all = len(llm_keys) == len(all_keys)
    systems: dict[str, Any] = {}
    explanations: dict[str, Any] = {}
    ran: dict[str, Records] = {}
    for name in chosen:
        if name in CLASSIC:
            rec = run.run_classic(name)
            kind = "baseline" if name != "retrieval" else "retrieval"
        else:
            rec = run.run_llm(name)
            kind = "llm"
        ran[name] = rec
        systems[name] = {
            "kind": kind,
            "all": run.summary(rec, all_keys) if kind != "llm" or llm_on_all else None,
            "common": run.summary(rec, llm_keys),
        }
        if kind == "llm":
            prefix, method, template = parse_llm_name(name, "")
            settings = run.settings(prefix, template)
            systems[name].update({"model": prefix, "method": method, "prompt": dataclasses.asdict(settings)})
            if prefix == "lora":
                systems[name]["adapter"] = str(run.adapter)
            if method in ("verbalizer", "hybrid") and not template:
                explanations[name] = run.run_explanations(prefix, rec)
    for name, ex in explanations.items():
        if ex:
            systems[name]["explanations"] = ex
    shipped = shipped_system(ran)
    pairs = paired(ran, shipped, all_keys, cfg.eval.bootstrap, cfg.eval.seed) if shipped else {}
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
        "shipped": shipped,
        "prior": run.prior_name() if any(n.startswith("lora-") for n in ran) else None,
        "paired": pairs,
    }
    if cfg.eval.ablations:
        section["ablations"] = retrieval_ablations(run)
        if run.ablation_examples:
            section["llm_ablations"] = llm_item_token_ablation(run)
    section["info"] = run.info
    return section
