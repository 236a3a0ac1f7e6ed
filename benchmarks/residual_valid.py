"""The shipped residual ranker on validation targets: does a test-time change let its LLM add more?

    .venv/bin/python benchmarks/residual_valid.py [--users 0] [--threads 2]

ML-100k leave-one-out, **validation** split only (each user's second-to-last interaction, the finetune
candidate file: 1 target + 19 unrated items); the test split is never read. Per user, the shipped
adapter's LLM scores the candidates twice, in the file's order (what `fusionrec eval` scores) and
reversed (each item token then sees other candidates before it), and the adapter's prior gives its
standardised components (BPR, SASRec, popularity). Reported, HR@1 and NDCG@10:

- the prior (the adapter's weights) and each component;
- the LLM alone: file order, reversed, the mean of both (test-time order averaging);
- the hybrid at the adapter's residual weights, with either LLM view;
- a grid of LLM weights (relative to the prior's), and the weight chosen on half of the users and
  evaluated on the other half (cross-fitted), paired against the prior (bootstrap 95% intervals);
- for how many users the prior's first place is right, the LLM's, both or neither;
- a confidence gate (`gated`: the LLM's weight high when its top-1 margin beats the prior's), its
  setting cross-fitted like the weight.

Per-user views go to `<home>/reports/residual-valid/views.jsonl` (resumable);
the numbers to benchmarks/results/residual_valid.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
# this folder holds retrieval.py too: import the library from the install, not from here
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from fusionrec import env  # noqa: E402

COMPONENTS = ("bpr", "sasrec", "popularity")
GRID = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.3, 1.6, 2.0)  # LLM weight / prior weight
GATE = [(hi, lo, c) for hi in (0.0, 0.2, 0.4, 0.8, 1.5, 3.0) for lo in (0.0, 0.2, 0.4) for c in (0.5, 1.0, 2.0)]
ORDERS = ("file", "reversed", "mean")


def collect(cfg: Any, path: Path, users: int) -> tuple[list[dict[str, Any]], dict[str, float], dict[str, float]]:
    """(per validation user: target, candidates, the LLM's scores in both orders, prior components;
    the prior's component weights; the residual's weights)."""
    from tqdm import tqdm

    from fusionrec.agent.rank import label_logprobs
    from fusionrec.evaluation.llm import LLMRanker
    from fusionrec.evaluation.loo import LOORun

    run = LOORun(cfg, path.parent)
    agent = run.agent("lora")
    if agent.residual is None or agent.prior is None:
        raise ValueError(f"{run.adapter}: not a residual adapter (residual.json + prior.json)")
    ranker = LLMRanker(agent, "verbalizer", run.settings("lora"), "lora-hybrid")
    done: dict[str, dict[str, Any]] = {}
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                rec = json.loads(line)
                done[rec["key"]] = rec
    examples = run.llm_examples[:users] if users else run.llm_examples
    with open(path, "a", encoding="utf-8") as fh:
        for ex in tqdm([e for e in examples if e.key not in done], desc="validation users"):
            cands = list(ex.candidates)
            rec: dict[str, Any] = {"key": ex.key, "target": ex.target, "candidates": cands}
            for order, listed in (("file", cands), ("reversed", cands[::-1])):
                prompt = ranker.loo_prompt(run.items, ex.history, listed)
                got = dict(zip([c.item.id for c in prompt.candidates],
                               label_logprobs(agent.model, agent.projectors, prompt).tolist(), strict=True))  # fmt: skip
                rec[f"llm_{order}"] = [round(got[c], 5) for c in cands]
            comps = agent.prior.components(ex.user, run.prior_history(ex), cands, COMPONENTS)
            rec.update({c: [round(float(x), 5) for x in z] for c, z in comps.items()})
            fh.write(json.dumps(rec) + "\n")
            fh.flush()
            done[ex.key] = rec
    return [done[e.key] for e in examples], dict(agent.prior.weights), agent.residual.weights()


def metrics(scores: np.ndarray, targets: np.ndarray) -> dict[str, np.ndarray]:
    """Per-user HR@1 and NDCG@10 of (users, candidates) scores (`fusionrec.metrics`: ties count against
    the target)."""
    from fusionrec.metrics import hit, ndcg, rank_by_score

    ranks = [rank_by_score(s, t) for s, t in zip(scores, targets, strict=True)]
    return {"HR@1": np.array([hit(r, 1) for r in ranks]), "NDCG@10": np.array([ndcg(r, 10) for r in ranks])}


def analyse(recs: Sequence[dict[str, Any]], weights: dict[str, float], residual: dict[str, float]) -> dict:
    """The views, the grid and the cross-fitted LLM weight (module docstring)."""
    from fusionrec.evaluation.metrics import aggregate, paired_difference

    targets = np.array([r["candidates"].index(r["target"]) for r in recs])
    comp = {c: np.array([r[c] for r in recs]) for c in COMPONENTS}
    prior = sum(weights.get(c, 0.0) * comp[c] for c in COMPONENTS)
    llm = {"file": np.array([r["llm_file"] for r in recs]), "reversed": np.array([r["llm_reversed"] for r in recs])}
    llm["mean"] = (llm["file"] + llm["reversed"]) / 2
    shipped = residual["llm_weight"] / residual["prior_weight"]
    views: dict[str, np.ndarray] = {"prior": prior, **{c: comp[c] for c in COMPONENTS}}
    views.update({f"llm ({o})": llm[o] for o in ORDERS})
    views.update({f"hybrid ({o})": prior + shipped * llm[o] for o in ORDERS})
    per = {name: metrics(s, targets) for name, s in views.items()}
    out: dict[str, Any] = {"users": len(recs), "prior_weights": weights, "llm_weight_ratio": round(shipped, 4)}
    out["views"] = {n: {k: aggregate(v).as_dict() for k, v in m.items()} for n, m in per.items()}
    out["paired"] = {
        f"hybrid ({o}) - prior": {k: paired_difference(per[f"hybrid ({o})"][k], per["prior"][k]) for k in ("HR@1", "NDCG@10")}
        for o in ORDERS
    }  # fmt: skip
    out["grid"] = {o: {str(g): float(metrics(prior + g * llm[o], targets)["HR@1"].mean()) for g in GRID} for o in ORDERS}
    out["crossfit"] = {o: crossfit(lambda g, o=o: metrics(prior + g * llm[o], targets), per["prior"]) for o in ORDERS}
    out["gate"] = {o: crossfit(lambda g, o=o: metrics(gated(prior, llm[o], g), targets), per["prior"], GATE) for o in ORDERS}
    p, q = per["prior"]["HR@1"] > 0, per["llm (file)"]["HR@1"] > 0
    out["top1_agreement"] = {  # whose first place is right, per user: how different the LLM's errors are
        "both": float((p & q).mean()), "prior only": float((p & ~q).mean()),
        "llm only": float((~p & q).mean()), "neither": float((~p & ~q).mean()),
    }  # fmt: skip
    return out


def gated(prior: np.ndarray, llm: np.ndarray, gate: tuple[float, float, float]) -> np.ndarray:
    """A confidence gate: standardised prior + w x standardised LLM, w = `hi` for the users whose LLM
    top-1 margin exceeds `c` x the prior's, else `lo`."""

    def z(a: np.ndarray) -> np.ndarray:
        return (a - a.mean(1, keepdims=True)) / np.maximum(a.std(1, keepdims=True), 1e-9)

    def margin(a: np.ndarray) -> np.ndarray:
        top = np.sort(a, axis=1)
        return top[:, -1] - top[:, -2]

    hi, lo, c = gate
    pz, lz = z(prior), z(llm)
    return pz + np.where(margin(lz) > c * margin(pz), hi, lo)[:, None] * lz


def crossfit(score: Callable[[Any], dict[str, np.ndarray]], prior: dict[str, np.ndarray], grid: Sequence = GRID) -> dict:
    """Choose the grid's setting on odd users, evaluate it on even users, and the other way round."""
    from fusionrec.evaluation.metrics import paired_difference

    n = len(prior["HR@1"])
    halves = [np.arange(n) % 2 == 0, np.arange(n) % 2 == 1]
    chosen, got = [], {k: np.zeros(n) for k in ("HR@1", "NDCG@10")}
    per = {g: score(g) for g in grid}
    for tune, held in (halves, halves[::-1]):
        best = max(grid, key=lambda g: per[g]["HR@1"][tune].mean())  # the first of equals: the smallest
        chosen.append(best)
        for k in got:
            got[k][held] = per[best][k][held]
    return {"chosen": chosen, **{f"{k} - prior": paired_difference(got[k], prior[k]) for k in got}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--users", type=int, default=0, help="first N of the seeded validation users (0 = all 943)")
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "residual_valid.json"))
    ap.add_argument("overrides", nargs="*", help="section.key=value config overrides")
    args = ap.parse_args()
    env.configure(offline=True)
    import torch

    from fusionrec.cli import resolve_config

    torch.set_num_threads(args.threads)
    base = ["agent.adapter=shipped", "agent.template=compact"]
    cfg = resolve_config("", [*base, *args.overrides, "eval.split=valid"])
    started = time.perf_counter()
    try:
        recs, weights, residual = collect(cfg, cfg.home / "reports" / "residual-valid" / "views.jsonl", args.users)
        result = analyse(recs, weights, residual)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    result = {"command": " ".join([".venv/bin/python", "benchmarks/residual_valid.py", *sys.argv[1:]]),
              **result, "seconds_total": round(time.perf_counter() - started, 1)}  # fmt: skip
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(f"{'view':22s} {'HR@1':>7s} {'NDCG@10':>8s}")
    for name, row in result["views"].items():
        print(f"{name:22s} {row['HR@1']['mean']:7.3f} {row['NDCG@10']['mean']:8.3f}")
    for pair, d in result["paired"].items():
        print(f"{pair}: " + ", ".join(f"{k} {v[0]:+.3f} [{v[1]:+.3f}, {v[2]:+.3f}]" for k, v in d.items()))
    for order, row in result["grid"].items():
        print(f"grid ({order}): " + " ".join(f"{g}:{v:.3f}" for g, v in row.items()))
    print("top-1 right: " + ", ".join(f"{k} {v:.3f}" for k, v in result["top1_agreement"].items()))
    for kind in ("crossfit", "gate"):
        for order, c in result[kind].items():
            hr = c["HR@1 - prior"]
            print(f"{kind} ({order}): chosen {c['chosen']}, HR@1 - prior {hr[0]:+.3f} [{hr[1]:+.3f}, {hr[2]:+.3f}]")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
