"""Ranking benchmark: one scoring pass vs generating a full ranking of the same 20 candidates.

1. The same retrieved candidate sets (20 each) and the same listwise prompt (the zero-shot LLM,
   `agent.template`) are ranked by the verbalizer (one forward pass, label logits) and by
   generation: the model writes labels until all 20 are written, it stops, or 8 tokens per
   candidate are spent (no early cap). Prints both times, their ratio and the generated answers'
   valid/invalid counts.
2. The product's ranker (the configured adapter, e.g. the shipped residual ranker) on the same
   candidate sets: one pass, timed.
Chat-turn latency is `benchmarks/turn.py`; explanations are `benchmarks/explanations.py`.

Needs prepared models and an ingested catalog under the config's home (`fusionrec chat --prepare`).
Usage: python benchmarks/ranking.py [--config F] [--sets 5] [--out benchmarks/results/ranking.json]
       [section.key=value ...]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REQUESTS = [
    "a funny animated movie for kids",
    "a tense crime thriller",
    "a romantic drama set in the past",
    "a space adventure with aliens",
    "a scary horror movie",
    "a western with gunfights",
    "a documentary about music",
    "a war film",
]
TOKENS_PER_CANDIDATE = 8  # the generation budget: enough for "A, B, C, ..." or titles of all 20


def generate_full(agent: object, prompt: object) -> tuple[str, int, list[int], list[str]]:
    """Greedy generation until every candidate is named (or a stop token, or the budget):
    (text, tokens generated, candidate order, invalid answers)."""
    from fusionrec.agent.decode import greedy_ids, stop_ids
    from fusionrec.agent.rank import parse_generated, prompt_embeds

    n = len(prompt.candidates)
    embeds = prompt_embeds(agent.model, agent.projectors, prompt)
    ids: list[int] = []
    order: list[int] = []
    invalid: list[str] = []
    for tid in greedy_ids(agent.model, embeds, TOKENS_PER_CANDIDATE * n, stop_ids(agent.tokenizer, agent.model)):
        ids.append(tid)
        piece = agent.tokenizer.decode([tid], skip_special_tokens=True)
        if any(ch in piece for ch in ",;\n"):  # an answer ended: stop once all candidates are named
            order, invalid = parse_generated(agent.tokenizer.decode(ids, skip_special_tokens=True), prompt.labels, prompt.candidates)
            if len(order) == n:
                break
    text = agent.tokenizer.decode(ids, skip_special_tokens=True)
    order, invalid = parse_generated(text, prompt.labels, prompt.candidates)
    return text, len(ids), order, invalid


def bench_same_prompt(agent: object, sets: list[tuple[str, list]]) -> dict:
    from fusionrec.agent.rank import rank_verbalizer

    rows = []
    rank_verbalizer(agent.model, agent.projectors, agent.build_prompt(*sets[0]))  # one-off costs
    for request, cands in sets:
        prompt = agent.build_prompt(request, cands)
        t0 = time.perf_counter()
        verb = rank_verbalizer(agent.model, agent.projectors, prompt)
        t1 = time.perf_counter()
        text, tokens, order, invalid = generate_full(agent, prompt)
        t2 = time.perf_counter()
        rows.append(
            {
                "request": request,
                "candidates": len(cands),
                "prompt_tokens": len(prompt.encoded),
                "verbalizer_s": t1 - t0,
                "generative_s": t2 - t1,
                "generated_tokens": tokens,
                "generated_valid": len(order),
                "generated_invalid": len(invalid),
                "generated_text": text[:200],
                "top1_agree": bool(order) and verb.candidates[0].item.id == cands[order[0]].item.id,
            }
        )
        print(
            f"  {request[:34]:34s} {len(prompt.encoded):5d} tok  verbalizer {t1 - t0:6.2f} s  "
            f"generative {t2 - t1:6.2f} s ({tokens} tokens)  valid {len(order):2d} invalid {len(invalid):2d}",
            flush=True,
        )
    v = [r["verbalizer_s"] for r in rows]
    g = [r["generative_s"] for r in rows]
    return {
        "sets": rows,
        "verbalizer_mean_s": statistics.mean(v),
        "generative_mean_s": statistics.mean(g),
        "ratio_generative_over_verbalizer": statistics.mean(g) / statistics.mean(v),
        "generated_valid_total": sum(r["generated_valid"] for r in rows),
        "generated_invalid_total": sum(r["generated_invalid"] for r in rows),
        "candidates_total": sum(r["candidates"] for r in rows),
    }


def bench_product(agent: object, sets: list[tuple[str, list]]) -> dict:
    """The configured ranker (adapter + prior when there is one), one pass per set."""
    agent.rank(agent.build_prompt(*sets[0]))
    times, tokens = [], []
    for request, cands in sets:
        prompt = agent.build_prompt(request, cands)
        t0 = time.perf_counter()
        agent.rank(prompt)
        times.append(time.perf_counter() - t0)
        tokens.append(len(prompt.encoded))
    return {"ranker": agent.ranker_name, "mean_s": statistics.mean(times), "prompt_tokens_mean": statistics.mean(tokens)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="", help="TOML/YAML config")
    parser.add_argument("--sets", type=int, default=5, help="candidate sets (retrieved for fixed requests)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "ranking.json"))
    args, overrides = parser.parse_known_args(argv)
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
    from fusionrec import env
    from fusionrec.cli import resolve_config

    cfg = resolve_config(args.config, overrides)
    env.configure(offline=cfg.models.profile != "online")
    import torch

    from fusionrec.agent.agent import Agent
    from fusionrec.models.registry import source

    load_before = os.getloadavg()
    # generation needs the listwise prompt: the zero-shot LLM reads it (the product's adapter sets its
    # own prompt on its Agent's copy of the settings, never on `cfg`)
    listwise_cfg = dataclasses.replace(cfg, agent=dataclasses.replace(cfg.agent, adapter=""))
    product = Agent(cfg)
    zero_shot = Agent(listwise_cfg, retriever=product.retriever, llm=(product.explainer, product.tokenizer))
    sets = [(r, product.retriever.retrieve(r, k=20)) for r in REQUESTS[: args.sets]]
    print(f"LLM {source(cfg, 'llm')}, torch threads {torch.get_num_threads()}, load average {load_before[0]:.1f}")
    print(f"1) the same listwise prompt ('{listwise_cfg.agent.template}'): one pass vs a generated full ranking")
    same = bench_same_prompt(zero_shot, sets)
    print(f"2) the product's ranker: {product.ranker_name}")
    prod = bench_product(product, sets)
    result = {
        "command": " ".join(["python benchmarks/ranking.py", *(argv if argv is not None else sys.argv[1:])]),
        "llm": source(cfg, "llm"),
        "machine": {
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "platform": platform.platform(),
            "load_average_before": load_before[0],
            "load_average_after": os.getloadavg()[0],
        },
        "same_prompt": same,
        "product": prod,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print()
    print(f"{'measure':52s} {'value':>10s}")
    print(f"{'verbalizer: rank 20 candidates, one pass (mean)':52s} {same['verbalizer_mean_s']:9.2f}s")
    print(f"{'generative: write the full ranking (mean)':52s} {same['generative_mean_s']:9.2f}s")
    print(f"{'ratio generative / verbalizer':52s} {same['ratio_generative_over_verbalizer']:9.1f}x")
    print(
        f"{'generated answers valid / invalid (of ' + str(same['candidates_total']) + ')':52s} "
        f"{same['generated_valid_total']:>4d} / {same['generated_invalid_total']:<4d}"
    )
    print(f"{'product ranker, one pass (mean)':52s} {prod['mean_s']:9.2f}s")
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
