"""Explanation benchmark: grounded explanations of the items the agent shows, on scripted chat turns.

Each turn is a request from `benchmarks/requests.jsonl` (one half: `--half report`, default, or
`tune`, the half used to shape the evidence and the decoder) sent through `Agent.respond` with the
configured (default) models, the shipped adapter and the ingested catalog, by a ML-100k user of the
leave-one-out validation split whose five most recent training items are the films they liked; every
fourth request is spoken (espeak-ng, an audio attachment) and after every eighth comes a poster
upload ("something like this poster": the poster of the user's last liked film). The top `explain_top_k`
shown items of each turn are explained by `Agent.explain_events` with the turn's state, candidates
and attachments, until `--n` explanations.

Per explanation: the raw text passes the fact check (with the evidence counting as facts) or not;
which pieces of evidence it cites (`agent.evidence.Evidence.cited`: year, genre, a refused genre,
two or more content words of the overview sentence, the liked film, the attachment); tokens and
seconds. With `--baseline` (default) the same items and requests are explained the previous way
(the whole facts in the prompt, unconstrained greedy, facts-only fact check) for a paired comparison;
`--cache-check K` re-generates the first K without the prefix cache and counts identical texts.

Prints a table; writes benchmarks/results/explanations.json, and with --markdown the first 20
examples, with --summary the summary's "explanations" section. `--recheck FILE` only re-runs the
fact check on the texts saved in FILE (e.g. after a change to the fact check).
Usage: python benchmarks/explanations.py [--half report] [--n 100] [--markdown docs/results/explanations.md]
       [--summary docs/results/summary.json] [section.key=value ...]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# this folder holds retrieval.py too: import the library from PYTHONPATH / the install, not from here
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
SPEECH_DIR = Path(tempfile.gettempdir()) / "fusionrec-bench-speech"
REQUESTS = ROOT / "benchmarks" / "requests.jsonl"
POSTER_TURNS = 4
KINDS = ("year", "genre", "constraint", "story", "liked", "media")
# fmt: off
COMMON = frozenset({
    "a", "an", "the", "and", "or", "but", "of", "in", "on", "at", "to", "for", "with", "from", "by", "as", "is",
    "are", "was", "were", "be", "his", "her", "their", "its", "this", "that", "who", "it", "you", "about",
    "movie", "film", "like", "something",
})  # words that make no phrase of the request specific
# fmt: on


def echoes(raw: str, request: str, evidence: list[str]) -> bool:
    """Does the generated text repeat a phrase of the request (three words, one of them a content word)
    that the evidence does not hold? Then it tells the request as the film's story: a falsehood the
    fact check cannot see."""
    said = re.findall(r"[a-z']+", request.lower())
    text = " ".join(re.findall(r"[a-z']+", raw.lower().split(" because ", 1)[-1]))
    held = " ".join(re.findall(r"[a-z']+", " ".join(evidence).lower()))
    for i in range(len(said) - 2):
        words = said[i : i + 3]
        phrase = " ".join(words)
        if any(w not in COMMON and len(w) > 3 for w in words) and phrase in text and phrase not in held:
            return True
    return False


def speech(text: str) -> Path:
    """A 16 kHz mono wav of `text` spoken by espeak-ng (made once per text, under /tmp)."""
    SPEECH_DIR.mkdir(parents=True, exist_ok=True)
    out = SPEECH_DIR / (hashlib.sha256(text.encode()).hexdigest()[:16] + ".wav")
    if not out.is_file():
        raw = out.with_suffix(".raw.wav")
        subprocess.run(["espeak-ng", "-s", "150", "-w", str(raw), text], check=True, capture_output=True)
        convert = ["ffmpeg", "-loglevel", "error", "-y", "-i", str(raw), "-ar", "16000", "-ac", "1", str(out)]
        subprocess.run(convert, check=True)
        raw.unlink()
    return out


def script(cfg: Any, half: str) -> list[dict[str, Any]]:
    """The turns: request text (or a spoken/poster attachment) and the user's liked films."""
    from fusionrec.data.loo import candidates_path, read_candidates
    from fusionrec.data.prepare import load_prepared

    items = {i.id: i for i in load_prepared(cfg, cfg.data.dataset)[0]}
    requests = [
        json.loads(line) for line in REQUESTS.read_text(encoding="utf-8").splitlines() if line.strip()
    ]
    requests = [r for r in requests if r["half"] == half]
    users = read_candidates(candidates_path(cfg, cfg.data.dataset, "valid"), items)
    users = random.Random(f"explanations:{half}").sample(users, len(requests) + POSTER_TURNS)
    turns = []
    for k, (req, user) in enumerate(zip(requests, users, strict=False)):
        spoken = k % 4 == 3
        atts = [("audio", str(speech(req["text"])))] if spoken else []
        text = "" if spoken else req["text"]
        turns.append(turn(req["id"], text, user.user, user.history[-5:], atts))
    every = max(1, len(requests) // POSTER_TURNS)
    for j, user in enumerate(users[len(requests) :]):  # a poster upload after every `every` requests
        poster = items[user.history[-1]].media.get("image", "")
        upload = turn(f"poster:{user.history[-1]}", "something like this poster", user.user,
                      user.history[-5:], [("image", poster)])  # fmt: skip
        turns.insert((j + 1) * every + j, upload)
    return turns


def turn(rid: str, text: str, user: str, liked: list[str], atts: list[tuple[str, str]]) -> dict[str, Any]:
    return {"request_id": rid, "text": text, "user": user, "liked": liked, "attachments": atts}


def baseline(agent: Any, item: Any, request: str) -> dict[str, Any]:
    """The previous explainer on the same item: the whole facts in the prompt, unconstrained greedy
    decoding, the facts-only fact check."""
    import torch

    from fusionrec.agent.decode import greedy_ids, stop_ids, stream_text
    from fusionrec.agent.explain import check_explanation
    from fusionrec.agent.prompt import explain_prompt

    t0 = time.perf_counter()
    text, opening = explain_prompt(agent.tokenizer, agent.template, item, request)
    table = agent.explainer.get_input_embeddings()
    embeds = table(
        torch.tensor([agent.tokenizer.encode(text, add_special_tokens=False)], device=table.weight.device)
    )
    acfg, stop = agent.cfg.agent, stop_ids(agent.tokenizer, agent.explainer)
    ids = greedy_ids(agent.explainer, embeds, acfg.max_new_tokens, stop, acfg.repetition_penalty)
    raw = opening + "".join(stream_text(agent.tokenizer, ids))
    titles, genres = agent.catalog()
    res = check_explanation(raw, item, agent.template, titles, genres, agent.tokenizer)
    return {"raw": raw, "pass": not res.fallback, "problems": res.raw_problems, "s": time.perf_counter() - t0}


def run(agent: Any, turns: list[dict[str, Any]], n: int, with_baseline: bool, cache_check: int) -> list[dict]:
    from fusionrec.agent.evidence import TurnContext
    from fusionrec.types import Attachment, DialogueState, Turn

    rows: list[dict] = []
    top = max(1, agent.cfg.agent.explain_top_k)
    agent.cfg.agent.explain_top_k = 0  # respond ranks; the explanations are run below with the turn's data
    for t in turns:
        if len(rows) >= n:
            break
        state = DialogueState(liked=list(t["liked"]))
        atts = [Attachment(kind, Path(p)) for kind, p in t["attachments"]]
        ranked = None
        for ev in agent.respond(state, Turn("user", t["text"], atts)):
            if ev.kind == "ranked":
                ranked = ev.payload
            elif ev.kind == "error":
                print(f"  turn {t['request_id']}: {ev.payload['message']}", flush=True)
        if ranked is None:
            continue
        heard = agent.retriever.last_query.transcripts if t["attachments"] else []
        request = (
            t["text"] or "; ".join(f'it says: "{h.strip()}"' for h in heard) or "something like my attachment"
        )
        for rank, cand in enumerate(ranked["shown"][:top], start=1):
            if len(rows) >= n:
                break
            cands = ranked["ranking"].candidates
            events = list(agent.explain_events(cand.item, request, rank, "", state, cands, atts))
            p = events[-1].payload
            ev = p["evidence"]
            row = {
                "request_id": t["request_id"], "user": t["user"], "request": request, "item": cand.item.title,
                "item_id": cand.item.id, "rank": rank, "evidence": ev.lines(), "raw": p["raw"],
                "pass": not p["fallback"], "problems": p["problems"], "cited": ev.cited(p["raw"]),
                "echoes_request": echoes(p["raw"], request, ev.lines()),
                "tokens": p["tokens"], "seconds": p["seconds"], "prefix_reused": p["prefix_reused"],
            }  # fmt: skip
            if len(rows) < cache_check:  # the same prompt again, without the turn's prefix cache
                explainer = agent.grounded_explainer()
                liked = agent.retriever.items(state.liked)
                ctx = TurnContext.from_state(request, state, liked, [a.kind for a in atts], cands)
                explainer.reuse_prefix = False
                row["uncached_same"] = "".join(explainer.stream(ev, ctx)) == p["raw"]
                explainer.reuse_prefix = True
            if with_baseline:
                row["baseline"] = baseline(agent, cand.item, request)
            rows.append(row)
            mark = "pass" if row["pass"] else "FAIL " + "; ".join(row["problems"])
            print(
                f"  {len(rows):3d} {t['request_id']:12s} {cand.item.title[:30]:30s} {mark} {row['cited']}",
                flush=True,
            )
    return rows


def summarise(rows: list[dict]) -> dict[str, Any]:
    from fusionrec.evaluation.metrics import aggregate, paired_difference

    passed = [float(r["pass"]) for r in rows]
    cited = [float(bool(r["cited"])) for r in rows]
    out: dict[str, Any] = {
        "sampled": len(rows),
        "raw_pass": aggregate(passed).as_dict(),
        "with_evidence": aggregate(cited).as_dict(),
        "cites": {k: sum(k in r["cited"] for r in rows) / max(1, len(rows)) for k in KINDS},
        "echoes_request": sum(r["echoes_request"] for r in rows) / max(1, len(rows)),
        "tokens_per_s": sum(r["tokens"] for r in rows) / max(1e-9, sum(r["seconds"] for r in rows)),
        "seconds_mean": sum(r["seconds"] for r in rows) / max(1, len(rows)),
        "prefix_reused": sum(r["prefix_reused"] for r in rows) / max(1, len(rows)),
    }
    same = [r["uncached_same"] for r in rows if "uncached_same" in r]
    if same:
        out["uncached_same"] = {"n": len(same), "identical": sum(same)}
    if all("baseline" in r for r in rows) and rows:
        base = [float(r["baseline"]["pass"]) for r in rows]
        out["baseline_raw_pass"] = aggregate(base).as_dict()
        out["raw_pass_minus_baseline"] = paired_difference(passed, base)
        evidence = [r["evidence"] for r in rows]
        out["baseline_echoes_request"] = sum(
            echoes(r["baseline"]["raw"], r["request"], e) for r, e in zip(rows, evidence, strict=True)
        ) / len(rows)
    return out


def markdown(rows: list[dict], summary: dict[str, Any], command: str, meta: dict[str, Any]) -> str:
    rp, we = summary["raw_pass"], summary["with_evidence"]
    lines = [
        "# Grounded explanations",
        "",
        "Evidence first (`agent/evidence.py`), then constrained greedy decoding (`agent/constrained.py`),",
        "then the fact check (`agent/explain.py`). Scripted chat turns over the real ML-100k catalog with the",
        "default (offline) models and the shipped adapter; see `benchmarks/explanations.py` for the protocol.",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {meta['threads']} torch thread(s), load average {meta['load_before']:.2f} -> "
        f"{meta['load_after']:.2f}.",
        "",
        "| measure | value |",
        "|---|---|",
        f"| explanations | {summary['sampled']} |",
        f"| raw pass (fact check, before any fallback) | {rp['mean']:.3f} [{rp['lo']:.3f}, {rp['hi']:.3f}] |",
        f"| cite at least one piece of evidence | {we['mean']:.3f} [{we['lo']:.3f}, {we['hi']:.3f}] |",
        "| cite: " + ", ".join(f"{k} {v:.2f}" for k, v in summary["cites"].items()) + " | share of explanations |",
        f"| tokens/s (generated tokens / generation seconds, prefill included) | {summary['tokens_per_s']:.1f} |",
        f"| seconds per explanation (mean) | {summary['seconds_mean']:.2f} |",
        f"| prompt prefix reused from the turn's cache | {summary['prefix_reused']:.2f} |",
        f"| retell a phrase of the request that the evidence lacks (not caught by the fact check) | {summary['echoes_request']:.2f} |",
    ]  # fmt: skip
    if "uncached_same" in summary:
        u = summary["uncached_same"]
        lines.append(f"| cached prefix gives the same text as no cache | {u['identical']}/{u['n']} |")
    if "baseline_raw_pass" in summary:
        b, d = summary["baseline_raw_pass"], summary["raw_pass_minus_baseline"]
        lines += [
            f"| previous explainer, raw pass (same items) | {b['mean']:.3f} [{b['lo']:.3f}, {b['hi']:.3f}] |",
            f"| raw pass difference, paired bootstrap | {d[0]:+.3f} [{d[1]:+.3f}, {d[2]:+.3f}] |",
            f"| previous explainer, retells the request | {summary['baseline_echoes_request']:.2f} |",
        ]
    lines += ["", "Intervals: 95 % bootstrap (paired for the difference).", "", "## 20 examples", ""]
    for k, r in enumerate(rows[:20], start=1):
        verdict = (
            "passes" if r["pass"] else "fails: " + "; ".join(r["problems"]) + " (the fallback was shown)"
        )
        lines += [
            f'**{k}. {r["item"]}** (rank {r["rank"]}) - request: "{r["request"]}"',
            "",
            "Evidence: " + " / ".join(r["evidence"][1:]),
            "",
            f"> {r['raw']}",
            "",
            f"Fact check: {verdict}; cites: {', '.join(r['cited']) or 'nothing'}.",
            "",
        ]
    return "\n".join(lines)


def recheck(cfg: Any, path: Path) -> dict[str, float]:
    """The fact check of today on the texts saved in `path` (decoding does not depend on it): the
    grounded texts with their evidence, the previous explainer's with the facts only."""
    from fusionrec.agent.explain import check_explanation
    from fusionrec.data.prepare import load_prepared

    items = {i.id: i for i in load_prepared(cfg, cfg.data.dataset)[0]}
    titles = sorted({i.title for i in items.values()})
    genres = sorted({g for i in items.values() for g in i.genres})
    rows = json.loads(path.read_text(encoding="utf-8"))["rows"]
    out: dict[str, float] = {"sampled": len(rows)}
    grounded = [
        check_explanation(
            r["raw"],
            items[r["item_id"]],
            cfg.agent.template,
            titles,
            genres,
            evidence="\n".join(r["evidence"]),
        )  # fmt: skip
        for r in rows
    ]
    out["raw_pass"] = sum(not g.fallback for g in grounded) / len(rows)
    if all("baseline" in r for r in rows):
        base = [check_explanation(r["baseline"]["raw"], items[r["item_id"]], cfg.agent.template, titles, genres)
                for r in rows]  # fmt: skip
        out["baseline_raw_pass"] = sum(not b.fallback for b in base) / len(rows)
    for r, g in zip(rows, grounded, strict=True):
        if g.fallback:
            print(f"  {r['item'][:30]:30s} {'; '.join(g.raw_problems)}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="", help="TOML/YAML config")
    parser.add_argument("--half", default="report", choices=("tune", "report"), help="requests.jsonl half")
    parser.add_argument("--n", type=int, default=100, help="explanations to measure")
    parser.add_argument("--no-baseline", action="store_true", help="skip the previous explainer")
    parser.add_argument(
        "--cache-check", type=int, default=20, help="explanations re-generated without the cache"
    )
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "explanations.json"))
    parser.add_argument("--markdown", default="", help="write the examples page here")
    parser.add_argument("--summary", default="", help="write the summary's explanations section here")
    parser.add_argument("--recheck", default="", help="only re-run the fact check on the texts in this JSON")
    args, overrides = parser.parse_known_args(argv)
    threads = " ".join(
        f"{k}={os.environ[k]}" for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS") if k in os.environ
    )
    args_text = shlex.join(argv if argv is not None else sys.argv[1:])
    command = f"{threads} .venv/bin/python benchmarks/explanations.py {args_text}".strip()
    from fusionrec import env
    from fusionrec.cli import resolve_config

    cfg = resolve_config(args.config, overrides)
    env.configure(offline=cfg.models.profile != "online")
    if args.recheck:
        print(json.dumps(recheck(cfg, Path(args.recheck)), indent=1))
        return 0
    import torch

    from fusionrec.agent.agent import Agent

    agent = Agent(cfg)
    turns = script(cfg, args.half)
    print(f"{len(turns)} turns ({args.half} half), {agent.ranker_name}", flush=True)
    meta = {"threads": torch.get_num_threads(), "load_before": os.getloadavg()[0]}
    rows = run(agent, turns, args.n, not args.no_baseline, args.cache_check)
    meta["load_after"] = os.getloadavg()[0]
    summary = summarise(rows)
    print(json.dumps(summary, indent=1))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"command": command, **meta, "summary": summary, "rows": rows}, indent=1),
                              encoding="utf-8")  # fmt: skip
    if args.markdown:
        Path(args.markdown).write_text(markdown(rows, summary, command, meta) + "\n", encoding="utf-8")
    if args.summary:
        from fusionrec.evaluation.summary import write_section

        section = {
            "sampled": summary["sampled"],
            "raw_pass": summary["raw_pass"]["mean"],
            "with_evidence": summary["with_evidence"]["mean"],
            "tokens_per_s": summary["tokens_per_s"],
            "raw_pass_ci": [summary["raw_pass"]["lo"], summary["raw_pass"]["hi"]],
            "command": command,
        }
        if "baseline_raw_pass" in summary:
            section["baseline_raw_pass"] = summary["baseline_raw_pass"]["mean"]
        write_section(Path(args.summary), "explanations", section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
