"""Ranking benchmark: verbalizer vs generative ranking of 20 candidates, and one chat turn's latency.

1. The same retrieved candidate sets (20 each) and the same prompts are ranked by the verbalizer
   (one forward pass, label logits) and by generation (the model writes the letters, parsed back);
   prints both times and their ratio, and the generative answers' valid/invalid counts.
2. Scripted conversations through `Agent.respond`: latency of one turn up to the first
   explanation token (retrieve + rank + first token), p50/p95, with each stage's time.
3. Explanations for a fixed sample of items: how many the model's own text passes the fact check
   (the rest are replaced by the grounded fallback in the product).

Needs prepared models and an ingested catalog under the config's home (`fusionrec chat --prepare`).
Usage: python benchmarks/ranking.py [--config F] [--sets 5] [--out benchmarks/results/ranking.json]
       [section.key=value ...]   (e.g. paths.home=.fusionrec-test/agent)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

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
CONVERSATIONS = [
    [
        "a funny animated movie for kids",
        "no horror",
        "something newer",
        "more like the second",
        "from the 90s",
    ],
    ["a tense crime thriller", "not the first", "something older", "a comedy instead", "after 1995"],
]


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100)."""
    xs = sorted(values)
    if not xs:
        return float("nan")
    pos = (len(xs) - 1) * q / 100
    lo, hi = int(pos), min(int(pos) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def bench_ranking(agent, n_sets: int) -> dict:
    from agent.rank import parse_generated, rank_generative, rank_verbalizer

    rows = []
    warm = agent.build_prompt("warm up", agent.retriever.retrieve("warm up", k=20))
    rank_verbalizer(agent.model, agent.projectors, warm)  # first call pays one-off costs
    for request in REQUESTS[:n_sets]:
        cands = agent.retriever.retrieve(request, k=20)
        prompt = agent.build_prompt(request, cands)
        t0 = time.perf_counter()
        verb = rank_verbalizer(agent.model, agent.projectors, prompt)
        t1 = time.perf_counter()
        gen = rank_generative(agent.model, agent.tokenizer, agent.projectors, prompt)
        t2 = time.perf_counter()
        order, invalid = parse_generated(gen.raw_output, prompt.labels, prompt.candidates)
        valid = len(order)
        rows.append(
            {
                "request": request,
                "candidates": len(cands),
                "prompt_tokens": len(prompt.encoded),
                "verbalizer_s": t1 - t0,
                "generative_s": t2 - t1,
                "generated_valid": valid,
                "generated_invalid": len(invalid),
                "generated_text": gen.raw_output[:200],
                "top1_agree": verb.candidates[0].item.id == gen.candidates[0].item.id,
            }
        )
        print(
            f"  {request[:34]:34s} {len(prompt.encoded):5d} tok  verbalizer {t1 - t0:6.2f} s  "
            f"generative {t2 - t1:6.2f} s  valid {valid:2d} invalid {len(invalid):2d}",
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


def bench_turns(agent) -> dict:
    from fusionrec.types import DialogueState, Turn

    turns = []
    for script in CONVERSATIONS:
        state = DialogueState()
        for text in script:
            t0 = time.perf_counter()
            marks: dict[str, float] = {}
            events = agent.respond(state, Turn("user", text))
            for ev in events:
                now = time.perf_counter() - t0
                if ev.kind == "retrieved":
                    marks["retrieve_s"] = now
                elif ev.kind == "ranked":
                    marks["rank_s"] = now - marks.get("retrieve_s", 0.0)
                elif ev.kind == "explanation_token":
                    marks["first_token_s"] = now
                    events.close()  # the latency ends at the first explanation token
                    break
                elif ev.kind in {"error", "message"}:
                    break
            if "first_token_s" in marks:
                turns.append({"text": text, **marks})
                print(
                    f"  {text[:34]:34s} retrieve {marks['retrieve_s']:5.2f} s  rank {marks['rank_s']:5.2f} s  "
                    f"first token at {marks['first_token_s']:5.2f} s",
                    flush=True,
                )
    first = [t["first_token_s"] for t in turns]
    return {
        "turns": turns,
        "p50_s": percentile(first, 50),
        "p95_s": percentile(first, 95),
        "retrieve_p50_s": percentile([t["retrieve_s"] for t in turns], 50),
        "rank_p50_s": percentile([t["rank_s"] for t in turns], 50),
    }


def bench_explanations(agent, n: int) -> dict:
    """Raw fact-check pass rate of generated explanations (before the grounded fallback)."""
    import random

    from agent.explain import check_explanation
    from retrieval.prepare import load_prepared

    titles, genres = agent.catalog()
    items = [i for i in load_prepared(agent.cfg, agent.cfg.data.dataset)[0] if i.genres and len(i.text) > 60]
    rows = []
    for item in random.Random(11).sample(items, min(n, len(items))):
        t0 = time.perf_counter()
        raw = "".join(
            e.payload["text"]
            for e in agent.explain_events(item, f"a good {item.genres[0].lower()} movie", 1)
            if e.kind == "explanation_token"
        )
        res = check_explanation(raw, item, agent.template, titles, genres)
        rows.append(
            {"item": item.title, "raw": raw, "problems": res.raw_problems, "s": time.perf_counter() - t0}
        )
        print(
            f"  {item.title[:34]:34s} {'pass' if not res.raw_problems else 'FAIL: ' + '; '.join(res.raw_problems)}"
        )
    passed = sum(not r["problems"] for r in rows)
    return {"n": len(rows), "raw_pass": passed, "raw_pass_rate": passed / max(1, len(rows)), "items": rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="", help="TOML/YAML config")
    parser.add_argument("--sets", type=int, default=5, help="candidate sets for verbalizer vs generative")
    parser.add_argument(
        "--explain", type=int, default=20, help="explanations for the raw fact-check pass rate"
    )
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "ranking.json"))
    args, overrides = parser.parse_known_args(argv)
    from fusionrec import env
    from fusionrec.cli import resolve_config

    cfg = resolve_config(args.config, overrides)
    env.configure(offline=cfg.models.profile != "online")
    import torch

    from agent.agent import Agent
    from encoders.registry import source

    load_before = os.getloadavg()
    t0 = time.perf_counter()
    agent = Agent(cfg)
    agent.retriever  # noqa: B018
    load_s = time.perf_counter() - t0
    print(f"LLM {source(cfg, 'llm')} on {agent.model.device}, torch threads {torch.get_num_threads()}, "
          f"load average {load_before[0]:.1f} (loaded in {load_s:.1f} s)")  # fmt: skip
    print(f"1) ranking {cfg.agent.num_candidates} candidates, template '{cfg.agent.template}':")
    ranking = bench_ranking(agent, args.sets)
    print("2) chat turn latency (retrieve + rank + first explanation token):")
    turns = bench_turns(agent)
    print(f"3) explanations ({cfg.agent.max_new_tokens} new tokens at most): raw fact check")
    explanations = bench_explanations(agent, args.explain)
    result = {
        "llm": source(cfg, "llm"),
        "device": str(agent.model.device),
        "machine": {
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "platform": platform.platform(),
            "load_average_before": load_before[0],
            "load_average_after": os.getloadavg()[0],
        },
        "config": {
            k: getattr(cfg.agent, k)
            for k in (
                "num_candidates",
                "template",
                "overview_chars",
                "max_prompt_tokens",
                "max_new_tokens",
                "torch_threads",
            )
        },
        "ranking": ranking,
        "turn_latency": turns,
        "explanations": explanations,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print()
    print(f"{'measure':48s} {'value':>10s}")
    print(f"{'verbalizer: rank 20 candidates (mean)':48s} {ranking['verbalizer_mean_s']:9.2f}s")
    print(f"{'generative: rank 20 candidates (mean)':48s} {ranking['generative_mean_s']:9.2f}s")
    print(f"{'ratio generative / verbalizer':48s} {ranking['ratio_generative_over_verbalizer']:9.1f}x")
    print(
        f"{'generative answers valid / invalid':48s} "
        f"{ranking['generated_valid_total']:>4d} / {ranking['generated_invalid_total']:<4d}"
    )
    print(f"{'chat turn to first explanation token p50':48s} {turns['p50_s']:9.2f}s")
    print(f"{'chat turn to first explanation token p95':48s} {turns['p95_s']:9.2f}s")
    print(
        f"{'explanations passing the fact check unaided':48s} "
        f"{explanations['raw_pass']:>4d} / {explanations['n']:<4d}"
    )
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
