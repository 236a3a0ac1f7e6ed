"""The chat on ReDial dialogues: does the conversational path put the recommender's next film higher?

    .venv/bin/python benchmarks/redial_chat.py --tune                 # validation dialogues: the grid
    .venv/bin/python benchmarks/redial_chat.py --summary docs/results/summary.json   # test dialogues

Each recommender message of a ReDial dialogue that names a film not mentioned before is replayed as a chat
turn over the ReDial catalog (`data.dataset=redial`, `fusionrec ingest --dataset redial` ran). The state
holds the dialogue before it: its messages as turns (`request_and_history`, as the trainer builds them),
the constraints of the seeker's earlier messages folded in, and every film mentioned so far as liked, so
kept out of the candidates, as a chat keeps them. The seeker's last message goes through `Agent.respond`
with explanations off. The targets are the films the message names that were not mentioned before ("new"):
a chat never offers a mentioned film again. A target outside the turn's 20 candidates is a miss.

The conversational prior counts training dialogues only: the train split when tuning on the validation
dialogues, train + valid when reporting on the test dialogues (as `fusionrec eval --protocol redial`).

Systems on the same turns: `retrieval` (the turn's retrieved films, in order), `chat` (the default path:
`agent.chat_prior=auto`, i.e. the adapter's dialogue residual over the conversational prior, which also
proposes `agent.chat_prior_picks` candidates), its `chat-prior` and `chat-llm` views (one forward pass),
and `chat-sequential` (`agent.chat_prior=sequential`, the path the chat took before; report only).
Writes benchmarks/results/redial_chat.json (`--tune`: redial_chat_tune.json) and, with ``--summary``,
the summary's "redial_chat" section.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from fusionrec import env  # noqa: E402

KS = (1, 5, 10)
PICKS = (0, 5, 10, 20)  # --tune: agent.chat_prior_picks
WEIGHTS = (0.0, 0.5, 1.0, 2.0, 4.0)  # --tune: agent.chat_prior_retrieval_weight (re-mixed from each run's views)


def config(home: Path, overrides: Sequence[str]) -> Any:
    from fusionrec.config import load_config

    base = [f"paths.home={home}", "data.dataset=redial", "agent.explain_top_k=0"]
    return load_config(None, [*base, *overrides])


def turns(cfg: Any, split: str, limit: int, seed: int) -> list[dict[str, Any]]:
    """Per recommender turn with new targets: id, context, films mentioned before, new targets."""
    from fusionrec.data.prepare import load_dialogues
    from fusionrec.data.redial_turns import redial_examples

    out: dict[tuple[str, int], dict[str, Any]] = {}
    for ex in redial_examples(load_dialogues(cfg, split), f"dialogues_{split}.jsonl"):
        if ex.new:
            t = out.setdefault((ex.conversation_id, ex.turn), {
                "id": f"{ex.conversation_id}:{ex.turn}", "conversation_id": ex.conversation_id,
                "context": ex.context, "mentioned": ex.mentioned, "targets": []})  # fmt: skip
            t["targets"].append(ex.target)
    chosen = list(out.values())
    if limit and len(chosen) > limit:
        chosen = sorted(random.Random(seed).sample(chosen, limit), key=lambda t: t["id"])
    return chosen


def state_of(turn: dict[str, Any], genres: Sequence[str], history_turns: int) -> tuple[Any, str]:
    """(DialogueState before the turn, the seeker's message the chat answers)."""
    from fusionrec.agent import dialogue
    from fusionrec.data.redial_turns import request_and_history
    from fusionrec.types import DialogueState, Turn

    request, history = request_and_history(turn["context"], history_turns)
    state = DialogueState()
    for role, text in history:
        if role == "user":
            dialogue.apply_update(state, dialogue.parse_turn(text, genres, []))
        state.turns.append(Turn(role, text, []))  # type: ignore[arg-type]
    state.liked = list(turn["mentioned"])
    return state, request


def replay(agent: Any, chosen: list[dict[str, Any]], history_turns: int) -> dict[str, Any]:
    """Per turn: the retrieved ids, the ranked ids, the views (ids, llm, prior, hybrid) and retrieval scores."""
    from fusionrec.types import Turn

    genres = agent.catalog()[1]
    out: dict[str, Any] = {}
    for t in chosen:
        state, request = state_of(t, genres, history_turns)
        t0 = time.perf_counter()
        got: dict[str, Any] = {"retrieval": [], "ranked": [], "views": {}, "candidates": {}}
        events = agent.respond(state, Turn("user", request, []))
        for event in events:
            if event.kind == "retrieved":
                got["retrieval"] = [c.item.id for c in event.payload["candidates"]]
            elif event.kind == "ranked":
                ranking = event.payload["ranking"]
                got["ranked"] = [c.item.id for c in ranking.candidates]
                got["candidates"] = {c.item.id: c for c in ranking.candidates}  # with their retrieval scores
                got["views"] = event.payload.get("views") or {}
                break
            elif event.kind == "error":
                raise RuntimeError(f"turn {t['id']}: {event.payload}")
        events.close()
        got["seconds"] = time.perf_counter() - t0
        out[t["id"]] = got
    return out


def view_order(views: dict[str, list], key: str) -> list[str]:
    """The candidates by one view's scores (ties: prompt order); [] for a turn without a list."""
    if not views:
        return []
    ids, s = views["ids"], views[key]
    return [ids[k] for k in sorted(range(len(ids)), key=lambda k: -s[k])]


def per_example(orders: dict[str, list[str]], chosen: list[dict[str, Any]]) -> list[dict[str, float]]:
    return [{f"R@{k}": float(target in orders[t["id"]][:k]) for k in KS} for t in chosen for target in t["targets"]]


def table(rows: dict[str, list[dict[str, float]]]) -> dict[str, dict[str, Any]]:
    from fusionrec.evaluation.metrics import aggregate

    out = {}
    for name, per in rows.items():
        row: dict[str, Any] = {}
        for k in KS:
            est = aggregate([p[f"R@{k}"] for p in per])
            row[f"R@{k}"], row[f"R@{k}_ci"] = round(est.mean, 4), [round(est.lo, 4), round(est.hi, 4)]
        out[name] = row
    return out


def remix(agent: Any, got: dict[str, Any], mentioned: Sequence[str], weight: float) -> list[str]:
    """The chat's order at another retrieval weight, from a run's LLM view (its prompt order kept): the
    agent's own prior scores (`Agent.conversation_scores`) and dialogue mix."""
    from fusionrec.agent.residual import mix
    from fusionrec.types import DialogueState

    if not got["views"]:  # nothing matched the turn's filters: no list
        return []
    ids = got["views"]["ids"]
    prior = agent.conversation_scores([got["candidates"][i] for i in ids], DialogueState(liked=list(mentioned)), weight)
    w = agent.dialogue_residual.weights()
    return view_order({"ids": ids, "mixed": mix(got["views"]["llm"], prior, w["prior_weight"], w["llm_weight"])}, "mixed")


def make_agent(cfg: Any, prior_splits: Sequence[str]) -> Any:
    """The agent with a conversational prior counted over `prior_splits` (never the evaluated dialogues)."""
    from fusionrec.agent.agent import Agent
    from fusionrec.data.prepare import load_dialogues, load_prepared
    from fusionrec.retrieval.collaborative.conversation import ConversationPrior

    agent = Agent(cfg)
    if agent.conversation is None:
        raise ValueError(f"agent.adapter={cfg.agent.adapter!r} was not trained on ReDial turns")
    catalog = [i.id for i in load_prepared(cfg, "redial")[0]]
    records = [r for s in prior_splits for r in load_dialogues(cfg, s)]
    agent.conversation = ConversationPrior.from_records(catalog, records)
    return agent


def tune(home: Path, overrides: Sequence[str], limit: int, seed: int, picks_grid: Sequence[int] = PICKS) -> dict[str, Any]:
    """Validation dialogues: each chat_prior_picks value runs once; each retrieval weight re-mixes its views."""
    cfg = config(home, overrides)
    chosen = turns(cfg, "valid", limit, seed)
    agent = make_agent(cfg, ["train"])
    grid: dict[str, Any] = {}
    for picks in picks_grid:
        agent.cfg.agent.chat_prior_picks = picks
        got = replay(agent, chosen, history_turns(agent))
        rows = {"retrieval": per_example({i: g["retrieval"] for i, g in got.items()}, chosen)}
        for weight in WEIGHTS:
            orders = {t["id"]: remix(agent, got[t["id"]], t["mentioned"], weight) for t in chosen}
            rows[f"chat picks={picks} weight={weight}"] = per_example(orders, chosen)
        rows[f"chat-prior picks={picks} (weight {agent.cfg.agent.chat_prior_retrieval_weight})"] = per_example(
            {i: view_order(g["views"], "prior") for i, g in got.items()}, chosen)
        res = table(rows)
        res[f"turns without a list, picks={picks}"] = sum(1 for g in got.values() if not g["ranked"])  # type: ignore[assignment]
        grid.update(res)
        for name, row in res.items():
            if not isinstance(row, dict):
                print(f"{name}: {row}", flush=True)
                continue
            print(f"{name:45s} " + " ".join(f"R@{k} {row[f'R@{k}']:.3f}" for k in KS), flush=True)
    return {"turns": len(chosen), "examples": sum(len(t["targets"]) for t in chosen), "grid": grid}


def history_turns(agent: Any) -> int:
    from fusionrec.agent.checkpoint import read_adapter_recipe

    return read_adapter_recipe(agent.adapter).data.dialogue()[2]


def report(home: Path, overrides: Sequence[str], limit: int, seed: int) -> dict[str, Any]:
    """Test dialogues: the default chat path against retrieval, its views and the sequential path."""
    from fusionrec.evaluation.metrics import latency_summary, paired_difference

    cfg = config(home, overrides)
    chosen = turns(cfg, "test", limit, seed)
    agent = make_agent(cfg, ["train", "valid"])
    n_hist = history_turns(agent)
    got = replay(agent, chosen, n_hist)
    if agent.chat_task() != "conversation":
        raise RuntimeError("the default chat did not take the conversational path on the ReDial catalog")
    ranker = agent.ranker_name
    seq = make_agent(config(home, [*overrides, "agent.chat_prior=sequential"]), ["train", "valid"])
    got_seq = replay(seq, chosen, n_hist)
    rows = {
        "retrieval": per_example({i: g["retrieval"] for i, g in got.items()}, chosen),
        "chat": per_example({i: g["ranked"] for i, g in got.items()}, chosen),
        "chat-prior": per_example({i: view_order(g["views"], "prior") for i, g in got.items()}, chosen),
        "chat-llm": per_example({i: view_order(g["views"], "llm") for i, g in got.items()}, chosen),
        "chat-sequential": per_example({i: g["ranked"] for i, g in got_seq.items()}, chosen),
    }
    paired = {f"chat - {b}": {f"R@{k}": [round(x, 4) for x in paired_difference(
        [p[f"R@{k}"] for p in rows["chat"]], [p[f"R@{k}"] for p in rows[b]])] for k in KS}
        for b in ("retrieval", "chat-prior", "chat-sequential")}  # fmt: skip
    return {
        "split": "official-test", "turns": len(chosen), "examples": sum(len(t["targets"]) for t in chosen),
        "ranker": ranker, "systems": table(rows), "paired": paired,
        "turns_without_list": sum(1 for g in got.values() if not g["ranked"]),
        "seconds_per_turn": {"chat": latency_summary([g["seconds"] for g in got.values()][1:]),
                             "chat-sequential": latency_summary([g["seconds"] for g in got_seq.values()][1:])},
        "per_turn": {i: {"targets": t["targets"], "chat": got[i]["ranked"][:10], "retrieval": got[i]["retrieval"][:10]}
                     for t in chosen for i in [t["id"]]},
    }  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--home", default=str(REPO / ".fusionrec"), help="home with the ReDial catalog ingested")
    ap.add_argument("--tune", action="store_true", help="the grid on the validation dialogues")
    ap.add_argument("--turns", type=int, default=300, help="seeded sample of turns (0 = all)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--picks", default=",".join(map(str, PICKS)), help="--tune: agent.chat_prior_picks values")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    ap.add_argument("--summary", default="", help="also write the 'redial_chat' section of this summary file")
    ap.add_argument("--out", default="")
    ap.add_argument("overrides", nargs="*", help="section.key=value config overrides")
    args = ap.parse_args()
    env.configure(offline=True)
    import torch

    torch.set_num_threads(args.threads)
    home = Path(args.home)
    command = " ".join([".venv/bin/python", "benchmarks/redial_chat.py", *sys.argv[1:]])
    started = time.perf_counter()
    try:
        if args.tune:
            picks = [int(x) for x in args.picks.split(",")]
            got = tune(home, args.overrides, args.turns, args.seed, picks)
        else:
            got = report(home, args.overrides, args.turns, args.seed)
        result: dict[str, Any] = {"command": command, **got}
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    result["seconds_total"] = round(time.perf_counter() - started, 1)
    out = Path(args.out or REPO / "benchmarks" / "results" / ("redial_chat_tune.json" if args.tune else "redial_chat.json"))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    if not args.tune:
        for name, row in result["systems"].items():
            print(f"{name:16s} " + " ".join(f"R@{k} {row[f'R@{k}']:.3f} {row[f'R@{k}_ci']}" for k in KS))
        for pair, d in result["paired"].items():
            print(f"{pair}: " + ", ".join(f"{k} {v[0]:+.3f} [{v[1]:+.3f}, {v[2]:+.3f}]" for k, v in d.items()))
    print(f"wrote {out}")
    if args.summary and not args.tune:
        from fusionrec.evaluation.summary import write_section

        keep = ("split", "turns", "examples", "ranker", "systems", "paired", "command")
        write_section(Path(args.summary), "redial_chat", {k: result[k] for k in keep})
        print(f"wrote the 'redial_chat' section of {args.summary}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
