"""The chat's ranking on the request benchmark: does the LLM earn its place over the retrieval it re-ranks?

    .venv/bin/python benchmarks/chat_ranking.py                  # report half
    .venv/bin/python benchmarks/chat_ranking.py --summary docs/results/summary.json
    .venv/bin/python benchmarks/chat_ranking.py --tune           # tuning half: like and retrieval weights

Each typed request of `benchmarks/requests.jsonl` is the first turn of a fresh chat (`Agent.respond`
with explanations off), run as `fusionrec chat` runs it: constraints parsed, `agent.num_candidates`
candidates retrieved, then ranked. Systems, on the same turns:

- `retrieval`: the turn's candidates in retrieval order (what the ranker starts from);
- `shipped`: the default ranker, the shipped adapter's residual over its collaborative prior plus
  ``agent.chat_retrieval_weight`` x the standardised retrieval score;
- `zero-shot`: the base LLM's label logits (``agent.adapter=""``), what a user of another LLM gets.

``--dataset redial`` runs the same requests as chats over the ReDial catalog (``data.dataset=redial``,
where the chat takes the adapter's conversational path, `Agent.chat_task`), each target mapped to its
ReDial movie through the ML-100k match of `fusionrec data prepare redial` (requests without a matched
target are left out); ``--tune`` then grids ``agent.chat_prior_picks`` x ``agent.chat_prior_retrieval_weight``.

hit@1/5/10 with bootstrap intervals, paired bootstrap differences against `retrieval`, seconds per
ranked list. Writes benchmarks/results/chat_ranking.json (``--tune``: chat_ranking_tune.json) and, with
``--summary`` (report half), the summary's "chat_ranking" section.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from fusionrec import env  # noqa: E402

_spec = importlib.util.spec_from_file_location("request_bench", REPO / "benchmarks" / "requests.py")
bench = importlib.util.module_from_spec(_spec)  # the request benchmark's loader, hits and tables
_spec.loader.exec_module(bench)

SYSTEMS = {"shipped": [], "zero-shot": ["agent.adapter="]}  # name -> config overrides of the agent
WEIGHTS = (0.0, 0.5, 1.0, 2.0, 4.0)  # --tune: agent.chat_retrieval_weight
LIKE_WEIGHTS = (0.5, 1.0, 2.0)  # --tune: retrieval.like_weight
PICKS = (0, 10)  # --tune --dataset redial: agent.chat_prior_picks


def turns(agent: Any, requests: list[dict]) -> dict[str, Any]:
    """Per request: the retrieved candidates' order and the agent's ranking (and its seconds)."""
    from fusionrec.types import DialogueState, Turn

    out: dict[str, Any] = {"retrieval": {}, "ranked": {}, "seconds": []}
    for r in requests:
        t0 = time.perf_counter()
        events = agent.respond(DialogueState(), Turn("user", r["text"], []))
        for event in events:
            if event.kind == "retrieved":
                out["retrieval"][r["id"]] = [c.item.id for c in event.payload["candidates"]]
            elif event.kind == "ranked":
                out["ranked"][r["id"]] = [c.item.id for c in event.payload["ranking"].candidates]
                break
            elif event.kind == "error":
                raise RuntimeError(f"request {r['id']}: {event.payload}")
        events.close()  # no explanations: the turn ends at its ranked list
        out["seconds"].append(time.perf_counter() - t0)
    return out


def per_request(orders: dict[str, list[str]], requests: list[dict]) -> dict[str, dict[str, Any]]:
    return {r["id"]: {"ids": orders[r["id"]][: max(bench.KS)], **bench.hits(orders[r["id"]], r["targets"])}
            for r in requests}  # fmt: skip


def make_agent(home: Path, overrides: Sequence[str]) -> Any:
    from fusionrec.agent.agent import Agent

    return Agent(bench.config(home, ["agent.explain_top_k=0", *overrides]))


def run(requests: list[dict], home: Path, overrides: Sequence[str]) -> dict[str, Any]:
    """Every system of SYSTEMS on the same turns (they must retrieve the same candidates)."""
    from fusionrec.evaluation.metrics import latency_summary

    systems: dict[str, Any] = {}
    seconds: dict[str, Any] = {}
    for name, over in SYSTEMS.items():
        agent = make_agent(home, [*overrides, *over])
        got = turns(agent, requests)
        retrieved = per_request(got["retrieval"], requests)
        if systems.setdefault("retrieval", retrieved) != retrieved:
            raise RuntimeError(f"{name}: retrieved other candidates than the first system")
        systems[name] = per_request(got["ranked"], requests)
        seconds[name] = latency_summary(got["seconds"][1:])  # the first turn loads the models
        print(f"{name}: {agent.ranker_name}", flush=True)
    rows = bench.table({"systems": systems}, requests)
    paired = {f"{n} - retrieval": {k: bench.paired(systems[n], systems["retrieval"], requests, k)
                                   for k in ("hit@1", "hit@5")} for n in SYSTEMS}  # fmt: skip
    return {"systems": rows, "paired": paired, "seconds": seconds, "per_request": systems}


def redial_targets(home: Path, requests: list[dict]) -> list[dict]:
    """The requests with their targets mapped to ReDial movie ids (those with none left out)."""
    from fusionrec.data.prepare import load_prepared

    items = load_prepared(bench.config(home, []), "redial")[0]
    to_redial = {str(i.metadata["ml_item_id"]): i.id for i in items if i.metadata.get("ml_item_id")}
    mapped = [{**r, "targets": [to_redial[str(t)] for t in r["targets"] if str(t) in to_redial]} for r in requests]
    return [r for r in mapped if r["targets"]]


def tune(
    requests: list[dict], home: Path, overrides: Sequence[str], redial: bool = False, picks: Sequence[int] = PICKS
) -> dict[str, Any]:
    """Every (retrieval.like_weight, agent.chat_retrieval_weight) pair (with `redial`: every
    (agent.chat_prior_picks, agent.chat_prior_retrieval_weight) pair): the turn's retrieval and the shipped
    ranker's hit@1/5/10 (the like weight moves the candidates of "like X" requests)."""
    agent = make_agent(home, overrides)
    out: dict[str, Any] = {}
    for first in picks if redial else LIKE_WEIGHTS:
        for w in WEIGHTS:
            if redial:
                agent.cfg.agent.chat_prior_picks = int(first)
            else:
                agent.cfg.retrieval.like_weight = first  # the agent's own copy of the config (its retriever's too)
            setattr(agent.cfg.agent, "chat_prior_retrieval_weight" if redial else "chat_retrieval_weight", w)
            got = turns(agent, requests)
            rows = bench.table({"systems": {"retrieval": per_request(got["retrieval"], requests),
                                            "shipped": per_request(got["ranked"], requests)}}, requests)  # fmt: skip
            label = (f"chat_prior_picks={first} chat_prior_retrieval_weight={w}" if redial
                     else f"like_weight={first} chat_retrieval_weight={w}")  # fmt: skip
            out[label] = {f"{n} {k}": rows[n][k] for n in ("retrieval", "shipped") for k in ("hit@1", "hit@5", "hit@10")}
            print(f"{label}: {json.dumps(out[label])}", flush=True)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--half", choices=[*bench.HALVES, "all"], default="report")
    ap.add_argument("--home", default=str(REPO / ".fusionrec"), help="home with the ingested catalog and models")
    ap.add_argument("--tune", action="store_true", help="retrieval.like_weight x agent.chat_retrieval_weight grid on the tuning half")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    ap.add_argument("--dataset", default="movielens-100k", choices=["movielens-100k", "redial"],
                    help="the catalog the chats run over (redial: targets mapped to ReDial movies)")
    ap.add_argument("--picks", default=",".join(map(str, PICKS)), help="--tune --dataset redial: agent.chat_prior_picks values")
    ap.add_argument("--summary", default="", help="also write the 'chat_ranking' section of this summary file")
    ap.add_argument("--out", default="")
    ap.add_argument("overrides", nargs="*", help="section.key=value config overrides")
    args = ap.parse_args()
    env.configure(offline=True)
    import torch

    torch.set_num_threads(args.threads)
    home = Path(args.home)
    redial = args.dataset == "redial"
    overrides = [*args.overrides, *(["data.dataset=redial"] if redial else [])]
    try:
        requests = bench.load_requests(bench.REQUESTS)
        bench.config(home, overrides)
        if redial:
            requests = redial_targets(home, requests)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    half = "tune" if args.tune else args.half
    chosen = [r for r in requests if half == "all" or r["half"] == half]
    command = " ".join([".venv/bin/python", "benchmarks/chat_ranking.py", *sys.argv[1:]])
    started = time.perf_counter()
    result: dict[str, Any] = {"half": half, "n": len(chosen), "command": command}
    result["dataset"] = args.dataset
    result.update({"grid": tune(chosen, home, overrides, redial, [int(x) for x in args.picks.split(",")])} if args.tune else run(chosen, home, overrides))
    result["seconds_total"] = round(time.perf_counter() - started, 1)
    name = f"chat_ranking{'_redial' if redial else ''}{'_tune' if args.tune else ''}.json"
    out = Path(args.out or REPO / "benchmarks" / "results" / name)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    if not args.tune:
        for sys_name, row in result["systems"].items():
            cells = " ".join(f"hit@{k} {row[f'hit@{k}']:.3f}" for k in bench.KS)
            print(f"{sys_name:10s} {cells}")
        for pair, d in result["paired"].items():
            print(f"{pair}: hit@1 {d['hit@1'][0]:+.3f} [{d['hit@1'][1]:+.3f}, {d['hit@1'][2]:+.3f}], "
                  f"hit@5 {d['hit@5'][0]:+.3f} [{d['hit@5'][1]:+.3f}, {d['hit@5'][2]:+.3f}]")  # fmt: skip
    print(f"wrote {out}")
    if args.summary:
        if half != "report":
            print("error: --summary reports the report half only", file=sys.stderr)
            return 2
        from fusionrec.evaluation.summary import write_section

        section = {"n": result["n"], "half": half, "command": command,
                   "systems": {n: {k: round(r[k], 4) for k in ("hit@1", "hit@5", "hit@10")}
                               for n, r in result["systems"].items()},
                   "paired": result["paired"]}  # fmt: skip
        key = "chat_ranking_redial" if redial else "chat_ranking"
        write_section(Path(args.summary), key, section)
        print(f"wrote the '{key}' section of {args.summary}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
